//! The pharmacist dosing-alert queue: every `DOSE-*` finding in the audit log, newest first,
//! with the patient, the drug, the computed numbers and the limit, and a status that is never
//! stored in place: it is the latest `dosing_alert.*` row in `audit_events` for that finding.
//!
//! - [`list`]: the queue, filtered by status, rule and time window (bound parameters only).
//! - [`act`]: acknowledge / escalate / resolve one alert with a note; appended through the
//!   [`AuditWriter`] (never an UPDATE), after checking the transition against [`AlertStatus`].
//!
//! The HTTP routes (`/v1/dosing-alerts`, `/pharmacy`) live in [`crate::web`].

pub mod status;

use crate::audit::{AuditError, AuditWriter, EventRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

pub use status::{AlertAction, AlertStatus, TransitionError};

/// The prefix of the rules this queue shows.
pub const RULE_PREFIX: &str = "DOSE-";
/// The `audit_events.kind` prefix of queue actions; the status follows the dot.
pub const EVENT_PREFIX: &str = "dosing_alert.";
/// The most rows one page returns.
pub const MAX_LIMIT: i64 = 500;
/// The longest note kept with an action, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// Which alerts to list. Every filter is optional; all are bound parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    pub status: Option<AlertStatus>,
    /// An exact rule id (`DOSE-MAX-DAILY`); anything else simply matches nothing.
    pub rule: Option<String>,
    /// Evaluated at or after.
    pub from: Option<DateTime<Utc>>,
    /// Evaluated before.
    pub to: Option<DateTime<Utc>>,
    /// An exact patient reference (`Patient/123`).
    pub patient: Option<String>,
    /// Rows per page, 1..=[`MAX_LIMIT`] (default 100).
    pub limit: Option<i64>,
}

/// Which finding an action is about: the decision and the finding's position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AlertKey {
    pub decision_id: Uuid,
    pub finding_index: i32,
}

impl AlertKey {
    /// `<decision uuid>.<finding index>`, the id used in URLs.
    pub fn id(&self) -> String {
        format!("{}.{}", self.decision_id, self.finding_index)
    }

    pub fn parse(id: &str) -> Option<AlertKey> {
        let (decision, index) = id.rsplit_once('.')?;
        let finding_index: i32 = index.parse().ok().filter(|i| *i >= 0)?;
        Some(AlertKey {
            decision_id: Uuid::parse_str(decision).ok()?,
            finding_index,
        })
    }
}

/// A number of the finding with its name and unit, e.g. `daily_amount` 4000 `mg/day`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantity {
    pub name: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The latest action on an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastAction {
    pub at: DateTime<Utc>,
    pub by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One row of the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DosingAlert {
    pub id: String,
    pub decision_id: Uuid,
    pub finding_index: i32,
    pub evaluated_at: DateTime<Utc>,
    pub rule_id: String,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_ref: Option<String>,
    /// The drug (ingredient, supplement, or the two drugs of a combination), when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drug: Option<String>,
    /// The computed number the rule compared (daily amount, MME/day, renal value, interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// What it was compared with (limit, threshold, cutoff, label interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Quantity>,
    /// Every number and text the finding was recorded with.
    pub numbers: Value,
    pub labels: Value,
    pub pathway_version: String,
    pub status: AlertStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no dosing alert {0}")]
    NotFound(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the action could not be recorded: {0}")]
    Audit(#[from] AuditError),
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The columns every queue query selects; the status comes from the latest event.
const SELECT: &str = "SELECT f.decision_id, f.evaluated_at, f.finding_index, f.rule_id, \
        f.severity, f.order_ref, f.numbers, f.labels, d.patient_ref, d.user_ref, \
        d.encounter_ref, d.pathway_version, e.kind AS last_kind, e.occurred_at AS last_at, \
        e.actor AS last_actor, e.payload ->> 'note' AS last_note \
    FROM findings f \
    JOIN decisions d ON d.decision_id = f.decision_id AND d.evaluated_at = f.evaluated_at \
    LEFT JOIN LATERAL ( \
        SELECT ev.kind, ev.occurred_at, ev.actor, ev.payload FROM audit_events ev \
        WHERE ev.decision_id = f.decision_id AND ev.kind LIKE 'dosing_alert.%' \
          AND ev.payload ->> 'finding_index' = f.finding_index::text \
        ORDER BY ev.occurred_at DESC, ev.event_id DESC LIMIT 1 \
    ) e ON true \
    WHERE f.rule_id LIKE 'DOSE-%'";

/// The queue, newest first.
pub async fn list(pool: &PgPool, query: &AlertQuery) -> Result<Vec<DosingAlert>, sqlx::Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    if let Some(rule) = &query.rule {
        sql.push(" AND f.rule_id = ").push_bind(rule.clone());
    }
    if let Some(from) = query.from {
        sql.push(" AND f.evaluated_at >= ").push_bind(from);
    }
    if let Some(to) = query.to {
        sql.push(" AND f.evaluated_at < ").push_bind(to);
    }
    if let Some(patient) = &query.patient {
        sql.push(" AND d.patient_ref = ").push_bind(patient.clone());
    }
    match query.status {
        None => {}
        Some(AlertStatus::Open) => {
            sql.push(" AND e.kind IS NULL");
        }
        Some(status) => {
            sql.push(" AND e.kind = ").push_bind(status.event_kind());
        }
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    sql.push(" ORDER BY f.evaluated_at DESC, f.decision_id DESC, f.finding_index LIMIT ")
        .push_bind(limit);
    let rows = sql.build().fetch_all(pool).await?;
    rows.iter().map(alert_from_row).collect()
}

/// One alert, with its current status.
pub async fn get(pool: &PgPool, key: AlertKey) -> Result<Option<DosingAlert>, sqlx::Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    sql.push(" AND f.decision_id = ")
        .push_bind(key.decision_id)
        .push(" AND f.finding_index = ")
        .push_bind(key.finding_index);
    let row = sql.build().fetch_optional(pool).await?;
    row.as_ref().map(alert_from_row).transpose()
}

/// What [`act`] recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionOutcome {
    pub id: String,
    pub action: AlertAction,
    pub from: AlertStatus,
    pub status: AlertStatus,
    pub event_kind: String,
}

/// Serializes check-then-append within this process, so two clicks on the same alert cannot
/// both pass the transition check. (Two service instances can still race; both actions are
/// then in the log and the later one is the status.)
static ACTIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Applies `action` to the alert: checks the transition from its current status (read from
/// `pool`, which must be the audit database itself, not a lagging replica), then appends a
/// `dosing_alert.<new status>` event through `writer` and returns once it is durable.
/// `actor` is the staff subject (never a token); `note` must already be validated.
pub async fn act(
    pool: &PgPool,
    writer: &AuditWriter,
    key: AlertKey,
    action: AlertAction,
    note: Option<&str>,
    actor: &str,
) -> Result<ActionOutcome, QueueError> {
    let _turn = ACTIONS.lock().await;
    let alert = get(pool, key)
        .await?
        .ok_or_else(|| QueueError::NotFound(key.id()))?;
    let next = alert.status.after(action)?;
    let mut payload = json!({
        "finding_index": key.finding_index,
        "evaluated_at": alert.evaluated_at,
        "rule_id": alert.rule_id,
        "action": action.as_str(),
        "from": alert.status.as_str(),
    });
    if let Some(note) = note.filter(|n| !n.is_empty()) {
        payload["note"] = json!(note);
    }
    let event_kind = next.event_kind();
    writer
        .record_event(EventRecord {
            kind: event_kind.clone(),
            actor: actor.to_owned(),
            decision_id: Some(key.decision_id),
            payload,
        })
        .await?;
    Ok(ActionOutcome {
        id: key.id(),
        action,
        from: alert.status,
        status: next,
        event_kind,
    })
}

/// Trims a note and checks it: at most [`MAX_NOTE_CHARS`] characters, no control characters
/// other than line breaks and tabs. `Err` is the message for the `note` field.
pub fn clean_note(note: Option<&str>) -> Result<Option<String>, String> {
    let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("must be at most {MAX_NOTE_CHARS} characters"));
    }
    if note
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters".into());
    }
    Ok(Some(note.to_owned()))
}

fn alert_from_row(row: &sqlx::postgres::PgRow) -> Result<DosingAlert, sqlx::Error> {
    let decision_id: Uuid = row.try_get("decision_id")?;
    let finding_index: i32 = row.try_get("finding_index")?;
    let numbers: Value = row.try_get("numbers")?;
    let labels: Value = row.try_get("labels")?;
    let last_kind: Option<String> = row.try_get("last_kind")?;
    let status = match &last_kind {
        None => AlertStatus::Open,
        // A kind this version does not know (written by a newer one) is shown as escalated:
        // never silently as open or resolved.
        Some(kind) => AlertStatus::from_event_kind(kind).unwrap_or(AlertStatus::Escalated),
    };
    let last_action = match (
        last_kind,
        row.try_get::<Option<DateTime<Utc>>, _>("last_at")?,
    ) {
        (Some(_), Some(at)) => Some(LastAction {
            at,
            by: row.try_get("last_actor")?,
            note: row.try_get("last_note")?,
        }),
        _ => None,
    };
    let (value, limit) = compared(&numbers, &labels);
    Ok(DosingAlert {
        id: AlertKey {
            decision_id,
            finding_index,
        }
        .id(),
        decision_id,
        finding_index,
        evaluated_at: row.try_get("evaluated_at")?,
        rule_id: row.try_get("rule_id")?,
        severity: row.try_get("severity")?,
        patient_ref: row.try_get("patient_ref")?,
        user_ref: row.try_get("user_ref")?,
        encounter_ref: row.try_get("encounter_ref")?,
        order_ref: row.try_get("order_ref")?,
        drug: drug(&labels),
        value,
        limit,
        numbers,
        labels,
        pathway_version: row.try_get("pathway_version")?,
        status,
        last_action,
    })
}

/// The drug a finding is about, from the texts it was recorded with.
pub fn drug(labels: &Value) -> Option<String> {
    let text = |k: &str| {
        labels
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(name) = text("ingredient").or_else(|| text("supplement")) {
        return Some(name.to_owned());
    }
    match (text("first"), text("second")) {
        (Some(a), Some(b)) => Some(format!("{a} + {b}")),
        (Some(a), None) | (None, Some(a)) => Some(a.to_owned()),
        (None, None) => text("drug").or_else(|| text("class")).map(str::to_owned),
    }
}

/// Names of the numbers rule kinds compute, then names of what they compare them with, in the
/// order they are looked for (see the `.number(..)` calls in `src/engine/rules/dose_*.rs`,
/// `opioid_mme.rs` and `supplement_*.rs`).
const VALUE_NAMES: &[&str] = &[
    "daily_amount",
    "mme_per_day",
    "renal_value",
    "interval_days",
];
const LIMIT_NAMES: &[&str] = &[
    "limit",
    "threshold",
    "cutoff",
    "label_interval_days",
    "target",
];

/// The computed number and the limit it was compared with, with units.
pub fn compared(numbers: &Value, labels: &Value) -> (Option<Quantity>, Option<Quantity>) {
    let empty = Map::new();
    let numbers = numbers.as_object().unwrap_or(&empty);
    let pick = |names: &[&str]| -> Option<Quantity> {
        names.iter().find_map(|name| {
            numbers.get(*name).map(|value| Quantity {
                name: (*name).to_owned(),
                value: value.clone(),
                unit: unit_of(name, labels),
            })
        })
    };
    (pick(VALUE_NAMES), pick(LIMIT_NAMES))
}

fn unit_of(name: &str, labels: &Value) -> Option<String> {
    let label = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_owned);
    match name {
        "mme_per_day" | "threshold" => Some("MME/day".into()),
        "interval_days" | "label_interval_days" => Some("days".into()),
        // The patient's value is in the measure the lab gave; the cutoff in the label's.
        "renal_value" | "cutoff" => {
            let measure = if name == "cutoff" {
                label("label_measure").or_else(|| label("measure"))
            } else {
                label("measure")
            };
            Some(match measure.as_deref() {
                Some("eGFR") => "mL/min/1.73 m²".into(),
                _ => "mL/min".into(),
            })
        }
        _ => label("unit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_round_trip_and_reject_garbage() {
        let key = AlertKey {
            decision_id: Uuid::now_v7(),
            finding_index: 3,
        };
        assert_eq!(AlertKey::parse(&key.id()), Some(key));
        for bad in [
            "",
            "x.1",
            "0192f0c4-0000-7000-8000-000000000000",
            "0192f0c4-0000-7000-8000-000000000000.-1",
            "0192f0c4-0000-7000-8000-000000000000.1'; DROP TABLE findings;--",
        ] {
            assert_eq!(AlertKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_compared_numbers_carry_their_units() {
        let (value, limit) = compared(
            &json!({"daily_amount": 4875, "limit": 3000}),
            &json!({"ingredient": "acetaminophen", "unit": "mg/day"}),
        );
        assert_eq!(value.as_ref().unwrap().value, json!(4875));
        assert_eq!(value.unwrap().unit.as_deref(), Some("mg/day"));
        assert_eq!(limit.as_ref().unwrap().name, "limit");
        assert_eq!(limit.unwrap().unit.as_deref(), Some("mg/day"));

        let (value, limit) = compared(&json!({"mme_per_day": 120, "threshold": 90}), &json!({}));
        assert_eq!(value.unwrap().unit.as_deref(), Some("MME/day"));
        assert_eq!(limit.unwrap().value, json!(90));

        let (value, limit) = compared(
            &json!({"renal_value": 22, "cutoff": 30}),
            &json!({"measure": "eGFR", "label_measure": "creatinine clearance"}),
        );
        assert_eq!(value.unwrap().unit.as_deref(), Some("mL/min/1.73 m²"));
        let limit = limit.unwrap();
        assert_eq!(limit.value, json!(30));
        assert_eq!(limit.unit.as_deref(), Some("mL/min"));

        assert_eq!(compared(&json!({}), &json!({})), (None, None));
    }

    #[test]
    fn the_drug_comes_from_the_recorded_texts() {
        assert_eq!(
            drug(&json!({"ingredient": "ibuprofen"})).as_deref(),
            Some("ibuprofen")
        );
        assert_eq!(
            drug(&json!({"supplement": "Vitamin D"})).as_deref(),
            Some("Vitamin D")
        );
        assert_eq!(
            drug(&json!({"first": "oxycodone", "second": "lorazepam"})).as_deref(),
            Some("oxycodone + lorazepam")
        );
        assert_eq!(drug(&json!({})), None);
    }

    #[test]
    fn notes_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(clean_note(None), Ok(None));
        assert_eq!(clean_note(Some("   ")), Ok(None));
        assert_eq!(
            clean_note(Some("  called prescriber\n")),
            Ok(Some("called prescriber".into()))
        );
        assert!(clean_note(Some(&"x".repeat(MAX_NOTE_CHARS + 1))).is_err());
        assert!(clean_note(Some(&"é".repeat(MAX_NOTE_CHARS))).is_ok());
        assert!(clean_note(Some("a\u{0}b")).is_err());
    }
}
