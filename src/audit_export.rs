//! The audit log as FHIR R4 `AuditEvent`s: `GET /v1/audit-events?patient=&from=&to=` answers a
//! `Bundle` (type `searchset`) of them, for a hospital's audit repository (IHE BALP / ATNA
//! style) or a patient's accounting of disclosures.
//!
//! One AuditEvent per stored row, oldest first:
//! - a decision (`decisions`): action `E`, agents user (requestor) + client + orderguard, entities
//!   patient, each order a finding was about, the pathway version, the decision itself;
//! - clinician feedback on a card (`feedback`): action `C`, the client as requestor;
//! - a later event (`audit_events`: pharmacist actions `dosing_alert.*` (action `U`), audit
//!   reads (`R`), replays (`E`)): the staff member or program as requestor;
//! - a refused request (`rejected_requests`, only when no patient is asked for): outcome `4`.
//!
//! Every element follows the R4 AuditEvent cardinalities ([`validate`] checks them): `type`
//! 1..1 Coding, `recorded` 1..1 instant, `agent` 1..* each with `requestor` 1..1, `source` 1..1
//! with `observer` 1..1, `entity.name` and `entity.query` never both (sev-1), no empty values.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

pub const MAX_COUNT: i64 = 1000;
pub const DEFAULT_COUNT: i64 = 100;

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const SECURITY_ROLE: &str = "http://terminology.hl7.org/CodeSystem/extra-security-role-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// orderguard's own code system for what kind of row an event is.
pub const SUBTYPE_SYSTEM: &str = "urn:orderguard:audit-event";

/// What to export. The window applies to each row's own time (decision evaluated, feedback
/// received, event occurred, request refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportQuery {
    /// An exact patient reference (`Patient/123`); `None`: every row, refused requests too.
    pub patient: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub count: i64,
    pub offset: i64,
}

/// One page of AuditEvents, and whether more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPage {
    pub events: Vec<Value>,
    pub more: bool,
}

/// Rows of every audit table in the window, as AuditEvents, oldest first.
pub async fn export(pool: &PgPool, query: &ExportQuery) -> Result<ExportPage, sqlx::Error> {
    let count = query.count.clamp(1, MAX_COUNT);
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new("SELECT * FROM (");

    // Decisions, with the orders their findings were about.
    sql.push(
        "SELECT 'decision' AS source, d.decision_id AS id, d.recorded_at AS at, \
            d.patient_ref, d.user_ref, d.client_id, d.encounter_ref, d.pathway_id, \
            d.pathway_version, d.pathway_hash, d.decision_id, NULL::uuid AS card_uuid, \
            jsonb_build_object('hook', d.hook, 'channel', d.channel, \
                'finding_count', d.finding_count, 'evaluated_at', d.evaluated_at, \
                'orders', (SELECT jsonb_agg(DISTINCT f.order_ref) FROM findings f \
                    WHERE f.decision_id = d.decision_id AND f.evaluated_at = d.evaluated_at \
                      AND f.order_ref IS NOT NULL)) AS detail \
         FROM decisions d WHERE d.evaluated_at >= ",
    )
    .push_bind(query.from)
    .push(" AND d.evaluated_at < ")
    .push_bind(query.to);
    if let Some(patient) = &query.patient {
        sql.push(" AND d.patient_ref = ").push_bind(patient.clone());
    }

    // Feedback, with the decision it answers.
    sql.push(
        " UNION ALL SELECT 'feedback', fb.feedback_id, fb.received_at, d.patient_ref, \
            d.user_ref, fb.client_id, d.encounter_ref, d.pathway_id, d.pathway_version, \
            d.pathway_hash, fb.decision_id, fb.card_uuid, \
            jsonb_build_object('outcome', fb.outcome, 'override_reason_code', \
                fb.override_reason_code, 'orders', (SELECT jsonb_agg(DISTINCT f.order_ref) \
                FROM findings f WHERE f.card_uuid = fb.card_uuid AND f.order_ref IS NOT NULL)) \
         FROM feedback fb LEFT JOIN LATERAL (SELECT * FROM decisions d0 \
            WHERE d0.decision_id = fb.decision_id LIMIT 1) d ON true \
         WHERE fb.received_at >= ",
    )
    .push_bind(query.from)
    .push(" AND fb.received_at < ")
    .push_bind(query.to);
    if let Some(patient) = &query.patient {
        sql.push(" AND d.patient_ref = ").push_bind(patient.clone());
    }

    // Later events (pharmacist actions, audit reads, replays), with their decision if any.
    sql.push(
        " UNION ALL SELECT 'event', ev.event_id, ev.occurred_at, d.patient_ref, ev.actor, \
            NULL, d.encounter_ref, d.pathway_id, d.pathway_version, d.pathway_hash, \
            ev.decision_id, NULL, \
            jsonb_build_object('kind', ev.kind, 'payload', ev.payload, 'orders', \
                (SELECT jsonb_agg(DISTINCT f.order_ref) FROM findings f \
                 WHERE f.decision_id = ev.decision_id AND f.order_ref IS NOT NULL \
                   AND f.finding_index::text = ev.payload ->> 'finding_index')) \
         FROM audit_events ev LEFT JOIN LATERAL (SELECT * FROM decisions d0 \
            WHERE d0.decision_id = ev.decision_id LIMIT 1) d ON true \
         WHERE ev.occurred_at >= ",
    )
    .push_bind(query.from)
    .push(" AND ev.occurred_at < ")
    .push_bind(query.to);
    if let Some(patient) = &query.patient {
        sql.push(" AND d.patient_ref = ").push_bind(patient.clone());
    } else {
        // Refused requests carry no patient: only in an export of everything.
        sql.push(
            " UNION ALL SELECT 'rejection', r.rejection_id, r.rejected_at, NULL, NULL, \
                r.client_id, NULL, NULL, NULL, NULL, NULL, NULL, \
                jsonb_build_object('route', r.route, 'reason', r.reason, 'status', r.status) \
             FROM rejected_requests r WHERE r.rejected_at >= ",
        )
        .push_bind(query.from)
        .push(" AND r.rejected_at < ")
        .push_bind(query.to);
    }
    sql.push(") rows ORDER BY at, id LIMIT ")
        .push_bind(count + 1)
        .push(" OFFSET ")
        .push_bind(query.offset.max(0));

    let rows = sql.build().fetch_all(pool).await?;
    let more = rows.len() as i64 > count;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows.iter().take(count as usize) {
        events.push(audit_event(&Stored::from_row(row)?));
    }
    Ok(ExportPage { events, more })
}

/// One exported row, whatever table it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub source: String,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub patient_ref: Option<String>,
    /// The user who signed (decisions) or the staff member / program (events).
    pub user_ref: Option<String>,
    pub client_id: Option<String>,
    pub encounter_ref: Option<String>,
    pub pathway_id: Option<String>,
    pub pathway_version: Option<String>,
    pub pathway_hash: Option<String>,
    pub decision_id: Option<Uuid>,
    pub card_uuid: Option<Uuid>,
    pub detail: Value,
}

impl Stored {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Stored, sqlx::Error> {
        Ok(Stored {
            source: row.try_get("source")?,
            id: row.try_get("id")?,
            at: row.try_get("at")?,
            patient_ref: row.try_get("patient_ref")?,
            user_ref: row.try_get("user_ref")?,
            client_id: row.try_get("client_id")?,
            encounter_ref: row.try_get("encounter_ref")?,
            pathway_id: row.try_get("pathway_id")?,
            pathway_version: row.try_get("pathway_version")?,
            pathway_hash: row.try_get("pathway_hash")?,
            decision_id: row.try_get("decision_id")?,
            card_uuid: row.try_get("card_uuid")?,
            detail: row
                .try_get::<Option<Value>, _>("detail")?
                .unwrap_or(Value::Null),
        })
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// A FHIR Reference for a stored reference: `Type/id` as a literal reference, anything else
/// as an identifier in `system`.
fn reference(value: &str, system: &str) -> Value {
    let literal = value.split_once('/').is_some_and(|(t, id)| {
        t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && t.chars().all(|c| c.is_ascii_alphanumeric())
            && !id.is_empty()
            && !id.contains('/')
    });
    if literal {
        json!({"reference": value})
    } else {
        json!({"identifier": {"system": system, "value": value}})
    }
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The AuditEvent for one stored row.
pub fn audit_event(row: &Stored) -> Value {
    let kind = text(&row.detail, "kind").unwrap_or("event");
    let (subtype, action, outcome) = match row.source.as_str() {
        "decision" => (
            coding(
                SUBTYPE_SYSTEM,
                "decision",
                "Clinical decision support decision",
            ),
            "E",
            "0",
        ),
        "feedback" => (
            coding(SUBTYPE_SYSTEM, "feedback", "Clinician feedback on a card"),
            "C",
            "0",
        ),
        "rejection" => (
            coding(SUBTYPE_SYSTEM, "rejected-request", "Request refused"),
            "E",
            "4",
        ),
        _ => {
            let action = if kind.starts_with(crate::pharmacy::EVENT_PREFIX) {
                "U"
            } else if kind.contains("read") || kind.contains("export") {
                "R"
            } else {
                "E"
            };
            (coding(SUBTYPE_SYSTEM, kind, kind), action, "0")
        }
    };

    // Agents: who asked (requestor), the system it came through, and orderguard.
    let mut agents = Vec::new();
    let human = row.user_ref.as_deref().filter(|u| !u.is_empty());
    if let Some(user) = human {
        let system = if row.source == "event" {
            "urn:orderguard:staff"
        } else {
            "urn:orderguard:user"
        };
        agents.push(json!({
            "type": {"coding": [coding(SECURITY_ROLE, "humanuser", "human user")]},
            "who": reference(user, system),
            "requestor": true,
        }));
    }
    if row.source != "event" {
        let who = match row.client_id.as_deref().filter(|c| !c.is_empty()) {
            Some(client) => {
                json!({"identifier": {"system": "urn:orderguard:client", "value": client}})
            }
            None => json!({"display": "unauthenticated client"}),
        };
        agents.push(json!({
            "type": {"coding": [coding(DCM, "110153", "Source Role ID")]},
            "who": who,
            "requestor": human.is_none(),
        }));
    }
    agents.push(json!({
        "type": {"coding": [coding(DCM, "110152", "Destination Role ID")]},
        "who": {"display": "orderguard"},
        "requestor": false,
    }));

    // Entities: the patient, the orders, the pathway version, the decision.
    let mut entities = Vec::new();
    if let Some(patient) = row.patient_ref.as_deref().filter(|p| !p.is_empty()) {
        entities.push(json!({
            "what": reference(patient, "urn:orderguard:patient"),
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }));
    }
    if let Some(orders) = row.detail.get("orders").and_then(Value::as_array) {
        for order in orders.iter().filter_map(Value::as_str) {
            entities.push(json!({
                "what": reference(order, "urn:orderguard:order"),
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
            }));
        }
    }
    if let (Some(id), Some(version)) = (row.pathway_id.as_deref(), row.pathway_version.as_deref()) {
        let mut pathway = json!({
            "what": {"identifier": {"system": format!("urn:orderguard:pathway:{id}"), "value": version}},
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "5", "Master file"),
            "name": format!("{id} {version}"),
        });
        if let Some(hash) = row.pathway_hash.as_deref().filter(|h| !h.is_empty()) {
            pathway["detail"] = json!([{"type": "content-sha256", "valueString": hash}]);
        }
        entities.push(pathway);
    }
    if let Some(decision) = row.decision_id {
        let mut entity = json!({
            "what": {"identifier": {"system": "urn:orderguard:decision", "value": decision.to_string()}},
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "3", "Report"),
        });
        let mut details = Vec::new();
        if let Some(n) = row.detail.get("finding_count").and_then(Value::as_i64) {
            details.push(json!({"type": "finding-count", "valueString": n.to_string()}));
        }
        if let Some(card) = row.card_uuid {
            details.push(json!({"type": "card-uuid", "valueString": card.to_string()}));
        }
        if let Some(outcome) = text(&row.detail, "outcome") {
            details.push(json!({"type": "feedback-outcome", "valueString": outcome}));
        }
        if let Some(reason) = text(&row.detail, "override_reason_code") {
            details.push(json!({"type": "override-reason", "valueString": reason}));
        }
        if let Some(payload) = row.detail.get("payload") {
            for key in ["rule_id", "finding_index", "action", "from", "note"] {
                match payload.get(key) {
                    Some(Value::String(s)) if !s.is_empty() => {
                        details.push(json!({"type": key, "valueString": s}));
                    }
                    Some(Value::Number(n)) => {
                        details.push(json!({"type": key, "valueString": n.to_string()}));
                    }
                    _ => {}
                }
            }
        }
        if !details.is_empty() {
            entity["detail"] = Value::Array(details);
        }
        entities.push(entity);
    }
    if row.source == "rejection"
        && let Some(route) = text(&row.detail, "route")
    {
        entities.push(json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "name": route,
        }));
    }

    let mut event = Map::new();
    event.insert("resourceType".into(), json!("AuditEvent"));
    event.insert("id".into(), json!(row.id.to_string()));
    event.insert(
        "type".into(),
        coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
    );
    event.insert("subtype".into(), json!([subtype]));
    event.insert("action".into(), json!(action));
    event.insert("recorded".into(), json!(instant(row.at)));
    event.insert("outcome".into(), json!(outcome));
    if row.source == "rejection" {
        let status = row
            .detail
            .get("status")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let reason = text(&row.detail, "reason").unwrap_or("refused");
        event.insert(
            "outcomeDesc".into(),
            json!(format!("HTTP {status}: {reason}")),
        );
    }
    if row.source == "decision" {
        event.insert(
            "purposeOfEvent".into(),
            json!([{"coding": [coding(ACT_REASON, "TREAT", "treatment")]}]),
        );
    }
    event.insert("agent".into(), Value::Array(agents));
    event.insert(
        "source".into(),
        json!({
            "observer": {"display": concat!("orderguard ", env!("CARGO_PKG_VERSION"))},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        }),
    );
    if !entities.is_empty() {
        event.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(event)
}

/// A searchset Bundle of `events`; `self_url` and `next_url` are the page links.
pub fn bundle(
    events: Vec<Value>,
    self_url: &str,
    next_url: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        links.push(json!({"relation": "next", "url": next}));
    }
    let entries: Vec<Value> = events
        .into_iter()
        .map(|event| {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            json!({
                "fullUrl": format!("urn:uuid:{id}"),
                "resource": event,
                "search": {"mode": "match"},
            })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(now),
        "link": links,
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// What is wrong with `bundle` as an R4 searchset Bundle of AuditEvents (empty: nothing),
/// each problem with its FHIRPath-like location.
pub fn validate_bundle(bundle: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    no_empty_values(bundle, "Bundle", &mut problems);
    if bundle["resourceType"] != "Bundle" {
        problems.push("Bundle.resourceType: must be Bundle".into());
    }
    if bundle["type"] != "searchset" {
        problems.push("Bundle.type: must be searchset".into());
    }
    for (i, entry) in bundle["entry"].as_array().into_iter().flatten().enumerate() {
        let at = format!("Bundle.entry[{i}]");
        if text(entry, "fullUrl").is_none() {
            problems.push(format!("{at}.fullUrl: required in a searchset"));
        }
        if !matches!(
            entry["search"]["mode"].as_str(),
            Some("match" | "include" | "outcome")
        ) {
            problems.push(format!(
                "{at}.search.mode: must be match, include or outcome"
            ));
        }
        for p in validate(&entry["resource"]) {
            problems.push(format!("{at}.resource.{p}"));
        }
    }
    problems
}

/// What is wrong with `event` as an R4 AuditEvent (empty: nothing). Checks the elements the
/// base resource requires and the coded values' fixed sets; locations start at `AuditEvent`.
pub fn validate(event: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fail = |p: String| problems.push(p);
    if event["resourceType"] != "AuditEvent" {
        fail("resourceType: must be AuditEvent".into());
    }
    if !is_coding(&event["type"]) {
        fail("type: required, a Coding with system and code".into());
    }
    for (i, s) in event["subtype"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !is_coding(s) {
            fail(format!(
                "subtype[{i}]: must be a Coding with system and code"
            ));
        }
    }
    if !event["subtype"].is_null() && !event["subtype"].is_array() {
        fail("subtype: must be an array".into());
    }
    if let Some(action) = event.get("action")
        && !matches!(action.as_str(), Some("C" | "R" | "U" | "D" | "E"))
    {
        fail("action: must be one of C, R, U, D, E".into());
    }
    match event["recorded"].as_str() {
        Some(r) if is_instant(r) => {}
        _ => fail("recorded: required, an instant with seconds and a time zone".into()),
    }
    if let Some(outcome) = event.get("outcome")
        && !matches!(outcome.as_str(), Some("0" | "4" | "8" | "12"))
    {
        fail("outcome: must be one of 0, 4, 8, 12".into());
    }
    match event["agent"].as_array() {
        Some(agents) if !agents.is_empty() => {
            for (i, agent) in agents.iter().enumerate() {
                if !agent["requestor"].is_boolean() {
                    fail(format!("agent[{i}].requestor: required, a boolean"));
                }
                if let Some(t) = agent.get("type")
                    && !is_codeable_concept(t)
                {
                    fail(format!("agent[{i}].type: must be a CodeableConcept"));
                }
                if let Some(who) = agent.get("who")
                    && !is_reference(who)
                {
                    fail(format!("agent[{i}].who: must be a Reference"));
                }
            }
        }
        _ => fail("agent: required, at least one".into()),
    }
    match event.get("source") {
        Some(source) if source.is_object() => {
            if !source.get("observer").is_some_and(is_reference) {
                fail("source.observer: required, a Reference".into());
            }
            for (i, t) in source["type"].as_array().into_iter().flatten().enumerate() {
                if !is_coding(t) {
                    fail(format!("source.type[{i}]: must be a Coding"));
                }
            }
        }
        _ => fail("source: required".into()),
    }
    for (i, entity) in event["entity"].as_array().into_iter().flatten().enumerate() {
        if entity.get("name").is_some() && entity.get("query").is_some() {
            fail(format!(
                "entity[{i}]: sev-1, name and query must not both be present"
            ));
        }
        if let Some(what) = entity.get("what")
            && !is_reference(what)
        {
            fail(format!("entity[{i}].what: must be a Reference"));
        }
        for key in ["type", "role"] {
            if let Some(c) = entity.get(key)
                && !is_coding(c)
            {
                fail(format!("entity[{i}].{key}: must be a Coding"));
            }
        }
        for (j, d) in entity["detail"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let values = ["valueString", "valueBase64Binary"]
                .iter()
                .filter(|k| d.get(**k).is_some())
                .count();
            if text(d, "type").is_none() || values != 1 {
                fail(format!(
                    "entity[{i}].detail[{j}]: needs type and exactly one value[x]"
                ));
            }
        }
    }
    problems
}

fn is_coding(v: &Value) -> bool {
    v.is_object() && text(v, "system").is_some() && text(v, "code").is_some()
}

fn is_codeable_concept(v: &Value) -> bool {
    v.is_object()
        && (text(v, "text").is_some()
            || v["coding"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(is_coding)))
}

fn is_reference(v: &Value) -> bool {
    v.is_object()
        && (text(v, "reference").is_some()
            || text(v, "display").is_some()
            || (text(&v["identifier"], "value").is_some()))
}

fn is_instant(s: &str) -> bool {
    // An R4 instant: seconds required, and a zone (Z or ±hh:mm).
    s.len() >= 20
        && s.as_bytes()
            .get(19)
            .is_some_and(|c| matches!(c, b'.' | b'Z' | b'+' | b'-'))
        && DateTime::parse_from_rfc3339(s).is_ok()
}

/// FHIR JSON has no null, no empty string, no empty array or object.
fn no_empty_values(v: &Value, at: &str, problems: &mut Vec<String>) {
    match v {
        Value::Null => problems.push(format!("{at}: null is not allowed")),
        Value::String(s) if s.is_empty() => problems.push(format!("{at}: empty string")),
        Value::Array(items) => {
            if items.is_empty() {
                problems.push(format!("{at}: empty array"));
            }
            for (i, item) in items.iter().enumerate() {
                no_empty_values(item, &format!("{at}[{i}]"), problems);
            }
        }
        Value::Object(members) => {
            if members.is_empty() {
                problems.push(format!("{at}: empty object"));
            }
            for (k, item) in members {
                no_empty_values(item, &format!("{at}.{k}"), problems);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(source: &str) -> Stored {
        Stored {
            source: source.into(),
            id: Uuid::now_v7(),
            at: "2026-11-30T10:00:00.123456Z".parse().unwrap(),
            patient_ref: Some("Patient/p1".into()),
            user_ref: Some("Practitioner/dr-a".into()),
            client_id: Some("https://ehr.example.org".into()),
            encounter_ref: None,
            pathway_id: Some("vcf".into()),
            pathway_version: Some("1.2.0".into()),
            pathway_hash: Some("ab".repeat(32)),
            decision_id: Some(Uuid::now_v7()),
            card_uuid: None,
            detail: json!({"finding_count": 2, "orders": ["MedicationRequest/med-1"]}),
        }
    }

    #[test]
    fn a_decision_is_a_valid_audit_event_with_user_client_and_orderguard() {
        let event = audit_event(&stored("decision"));
        assert_eq!(validate(&event), Vec::<String>::new());
        let agents = event["agent"].as_array().unwrap();
        assert_eq!(agents.len(), 3);
        assert_eq!(agents[0]["who"]["reference"], "Practitioner/dr-a");
        assert_eq!(agents[0]["requestor"], true);
        assert_eq!(agents[1]["requestor"], false);
        assert_eq!(agents[2]["who"]["display"], "orderguard");
        let entities = event["entity"].as_array().unwrap();
        assert_eq!(entities[0]["what"]["reference"], "Patient/p1");
        assert_eq!(entities[1]["what"]["reference"], "MedicationRequest/med-1");
        assert_eq!(entities[2]["what"]["identifier"]["value"], "1.2.0");
        assert_eq!(event["recorded"], "2026-11-30T10:00:00.123456Z");
        assert_eq!(event["action"], "E");
    }

    #[test]
    fn without_a_user_the_client_is_the_requestor_and_odd_references_become_identifiers() {
        let mut row = stored("feedback");
        row.user_ref = None;
        row.patient_ref = Some("12345".into());
        let event = audit_event(&row);
        assert_eq!(validate(&event), Vec::<String>::new());
        assert_eq!(event["agent"][0]["requestor"], true);
        assert_eq!(event["entity"][0]["what"]["identifier"]["value"], "12345");
    }

    #[test]
    fn the_validator_names_what_r4_requires() {
        let mut event = audit_event(&stored("decision"));
        event.as_object_mut().unwrap().remove("type");
        event["agent"][1]
            .as_object_mut()
            .unwrap()
            .remove("requestor");
        event["recorded"] = json!("2026-11-30");
        event["source"].as_object_mut().unwrap().remove("observer");
        event["entity"][2]["query"] = json!("cXVlcnk=");
        let problems = validate(&event);
        for expected in [
            "type: required",
            "agent[1].requestor: required",
            "recorded: required",
            "source.observer: required",
            "entity[2]: sev-1",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected} not in {problems:?}"
            );
        }
    }

    #[test]
    fn a_bundle_is_a_searchset_without_empty_values() {
        let now = Utc::now();
        let b = bundle(
            vec![
                audit_event(&stored("event")),
                audit_event(&stored("rejection")),
            ],
            "http://x/v1/audit-events",
            None,
            now,
        );
        assert_eq!(validate_bundle(&b), Vec::<String>::new());
        let empty = bundle(Vec::new(), "http://x/v1/audit-events", None, now);
        assert!(empty.get("entry").is_none());
        assert_eq!(validate_bundle(&empty), Vec::<String>::new());
        let mut broken = b.clone();
        broken["entry"][0]["resource"]["agent"] = json!([]);
        assert!(!validate_bundle(&broken).is_empty());
    }
}
