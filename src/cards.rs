//! Renders a [`Decision`] as a CDS Hooks 2.0 response: one card per finding, with the rule id
//! as `source.topic`, the suggestions as FHIR actions, and override reasons on warning and
//! critical cards. The spec forbids null and empty fields in a response (only `"cards": []` may
//! be empty), so every optional field is omitted rather than emptied.

use crate::decision::{ActionKind, Decision, Finding, Severity};
use crate::domain::codes::system;
use serde_json::{Map, Value, json};

/// Override reasons offered on every warning and critical card (pathway-spec, system
/// `urn:orderguard:override-reason`).
pub const OVERRIDE_REASONS: &[(&str, &str)] = &[
    ("patient-declined", "Patient declined"),
    ("contraindicated", "Contraindicated for this patient"),
    ("already-addressed", "Already addressed"),
    ("clinical-judgment", "Clinical judgment"),
    ("palliative-care", "Palliative or end-of-life care"),
    ("benefit-outweighs-risk", "Benefit outweighs risk"),
    ("data-incorrect", "Patient data is incorrect"),
];

/// The response for `decision`. `draft_orders` is the request's draftOrders Bundle (when it has
/// one): an `update` action carries the whole updated resource, built by merging the finding's
/// patch into the order the clinician drafted.
pub fn render(decision: &Decision, draft_orders: Option<&Value>) -> Value {
    let label = format!(
        "orderguard {} pathway v{}",
        decision.pathway.id.to_uppercase(),
        decision.pathway.version
    );
    let cards: Vec<Value> = decision
        .evaluation
        .findings
        .iter()
        .enumerate()
        .map(|(index, finding)| card(decision, index, finding, &label, draft_orders))
        .collect();
    json!({ "cards": cards })
}

fn card(
    decision: &Decision,
    index: usize,
    finding: &Finding,
    source_label: &str,
    draft_orders: Option<&Value>,
) -> Value {
    let card_uuid = decision.card_uuid(index);
    let mut card = Map::new();
    card.insert("uuid".into(), Value::String(card_uuid.to_string()));
    card.insert(
        "summary".into(),
        Value::String(finding.summary().to_owned()),
    );
    if !finding.detail().is_empty() {
        card.insert("detail".into(), Value::String(finding.detail().to_owned()));
    }
    card.insert(
        "indicator".into(),
        Value::String(finding.severity.as_str().into()),
    );
    card.insert(
        "source".into(),
        json!({
            "label": source_label,
            "topic": { "system": system::RULES, "code": finding.rule_id, "display": finding.rule_id },
        }),
    );
    let suggestions: Vec<Value> = finding
        .suggestions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let actions: Vec<Value> = s.actions.iter().map(|a| action(a, draft_orders)).collect();
            json!({
                "label": s.label,
                "uuid": suggestion_uuid(card_uuid, i, &s.id),
                "actions": actions,
            })
        })
        .collect();
    if !suggestions.is_empty() {
        card.insert("suggestions".into(), Value::Array(suggestions));
        card.insert(
            "selectionBehavior".into(),
            Value::String("at-most-one".into()),
        );
    }
    if finding.severity >= Severity::Warning {
        let reasons: Vec<Value> = OVERRIDE_REASONS
            .iter()
            .map(|(code, display)| json!({ "system": system::OVERRIDE_REASON, "code": code, "display": display }))
            .collect();
        card.insert("overrideReasons".into(), Value::Array(reasons));
    }
    Value::Object(card)
}

/// Suggestion uuids are derived from the card uuid and the pathway's suggestion id, so feedback
/// (`acceptedSuggestions[].id`) can be traced back to which fix was taken.
pub fn suggestion_uuid(card: uuid::Uuid, index: usize, id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(card.as_bytes())
        .chain_update((index as u64).to_be_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn action(a: &crate::decision::Action, draft_orders: Option<&Value>) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(a.kind));
    out.insert(
        "description".into(),
        Value::String(a.description.to_string()),
    );
    match a.kind {
        ActionKind::Create => {
            if let Some(resource) = &a.resource {
                out.insert("resource".into(), resource.to_value());
            }
        }
        ActionKind::Delete => {
            if let Some(id) = &a.resource_id {
                out.insert("resourceId".into(), Value::String(id.to_string()));
            }
        }
        ActionKind::Update => {
            if let Some(id) = &a.resource_id {
                let mut resource = find_resource(draft_orders, id)
                    .cloned()
                    .unwrap_or_else(|| skeleton(id));
                if let Some(patch) = &a.resource {
                    merge(&mut resource, &patch.as_value());
                }
                out.insert("resource".into(), resource);
            }
        }
    }
    Value::Object(out)
}

/// `ResourceType/id` inside a draftOrders Bundle.
fn find_resource<'a>(bundle: Option<&'a Value>, reference: &str) -> Option<&'a Value> {
    let (resource_type, id) = reference.split_once('/')?;
    bundle?
        .get("entry")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("resource"))
        .find(|r| {
            r.get("resourceType").and_then(Value::as_str) == Some(resource_type)
                && r.get("id").and_then(Value::as_str) == Some(id)
        })
}

fn skeleton(reference: &str) -> Value {
    let (resource_type, id) = reference
        .split_once('/')
        .unwrap_or(("MedicationRequest", reference));
    json!({ "resourceType": resource_type, "id": id })
}

/// JSON merge patch (RFC 7386) without deletions: objects merge, everything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// True when a JSON value holds no null, "", [] or {} anywhere, the one exception being the
/// top-level `"cards": []` (CDS Hooks 2.0 forbids the rest in responses).
pub fn has_no_empty_fields(response: &Value) -> bool {
    fn clean(v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty() && a.iter().all(clean),
            Value::Object(o) => !o.is_empty() && o.values().all(clean),
            _ => true,
        }
    }
    match response.get("cards").and_then(Value::as_array) {
        Some(cards) => cards.iter().all(clean),
        None => clean(response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Action, Evaluation, PathwayRef, Suggestion, Texts};
    use uuid::Uuid;

    fn decision(findings: Vec<Finding>) -> Decision {
        Decision {
            decision_id: Uuid::now_v7(),
            pathway: PathwayRef {
                id: "vcf".into(),
                version: "1".into(),
                content_hash: "h".into(),
            },
            evaluated_at: chrono::Utc::now(),
            evaluation: Evaluation {
                findings,
                ..Evaluation::default()
            },
        }
    }

    fn finding(severity: Severity, suggestions: Vec<Suggestion>) -> Finding {
        Finding {
            rule_id: "VCF-OPIOID-DURATION".into(),
            severity,
            order_ref: Some(crate::domain::OrderRef("MedicationRequest/m1".into())),
            texts: Texts::new("Opioid for 14 days", "Limit to 7 days."),
            numbers: Default::default(),
            labels: Default::default(),
            suggestions,
            citations: Default::default(),
        }
    }

    #[test]
    fn no_findings_is_an_empty_card_list() {
        let response = render(&decision(vec![]), None);
        assert_eq!(response, json!({"cards": []}));
        assert!(has_no_empty_fields(&response));
    }

    #[test]
    fn warning_cards_carry_topic_override_reasons_and_no_empty_fields() {
        let response = render(&decision(vec![finding(Severity::Warning, vec![])]), None);
        let card = &response["cards"][0];
        assert_eq!(card["source"]["topic"]["code"], "VCF-OPIOID-DURATION");
        assert_eq!(card["source"]["topic"]["system"], "urn:orderguard:rules");
        assert_eq!(card["overrideReasons"].as_array().unwrap().len(), 7);
        assert!(
            card["overrideReasons"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["display"].is_string())
        );
        assert!(card.get("suggestions").is_none() && card.get("selectionBehavior").is_none());
        assert!(has_no_empty_fields(&response));
    }

    #[test]
    fn info_cards_offer_no_override_reasons() {
        let response = render(&decision(vec![finding(Severity::Info, vec![])]), None);
        assert!(response["cards"][0].get("overrideReasons").is_none());
    }

    #[test]
    fn update_merges_the_patch_into_the_drafted_order() {
        let patch = json!({"dispenseRequest": {"expectedSupplyDuration": {"value": 7, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}});
        let suggestion = Suggestion {
            id: "shorten".into(),
            label: "Limit to 7 days".into(),
            actions: vec![Action {
                kind: ActionKind::Update,
                description: "Shorten".into(),
                resource: Some(patch.into()),
                resource_id: Some("MedicationRequest/m1".into()),
            }],
        };
        let bundle = json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "draft",
            "dispenseRequest": {"quantity": {"value": 60}, "expectedSupplyDuration": {"value": 14, "unit": "days"}}}}]});
        let response = render(
            &decision(vec![finding(Severity::Warning, vec![suggestion])]),
            Some(&bundle),
        );
        let card = &response["cards"][0];
        assert_eq!(card["selectionBehavior"], "at-most-one");
        let resource = &card["suggestions"][0]["actions"][0]["resource"];
        assert_eq!(resource["status"], "draft");
        assert_eq!(resource["dispenseRequest"]["quantity"]["value"], 60);
        assert_eq!(
            resource["dispenseRequest"]["expectedSupplyDuration"]["value"],
            7
        );
        assert!(has_no_empty_fields(&response));
    }

    #[test]
    fn empty_checker_catches_nulls_and_empties() {
        assert!(!has_no_empty_fields(&json!({"cards": [{"summary": ""}]})));
        assert!(!has_no_empty_fields(&json!({"cards": [{"links": []}]})));
        assert!(!has_no_empty_fields(&json!({"cards": [{"detail": null}]})));
    }
}
