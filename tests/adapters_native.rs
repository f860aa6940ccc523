//! The native order-set adapter against `fixtures/native/`, and the decision schema against a
//! serialized `Decision`.

use orderguard::adapters::native::{DECISION_SCHEMA, NativeOrderSet, ORDER_SET_SCHEMA};
use orderguard::adapters::{AdapterError, InputKind, detect, translate_any};
use orderguard::decision::{
    Action, ActionKind, Decision, Evaluation, Finding, MissingInput, Number, PathwayRef, Severity,
    Suggestion, Texts, Unrecognized,
};
use orderguard::domain::{Dose, Field, OrderRef, RecordSection, Route};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/native")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn error_paths(name: &str) -> BTreeSet<String> {
    match NativeOrderSet::parse(&fixture(name)) {
        Err(AdapterError::Invalid { errors }) => {
            for e in &errors {
                // Messages never echo the values sent (they may be patient data).
                assert!(
                    !e.message.contains("dizzy") && !e.message.contains("12/03/1950"),
                    "{e:?}"
                );
            }
            errors.into_iter().map(|e| e.path).collect()
        }
        other => panic!("{name}: expected schema errors, got {other:?}"),
    }
}

#[test]
fn invalid_fixtures_report_every_error_at_its_path() {
    let cases: &[(&str, &[&str])] = &[
        (
            "invalid-dose-unit-type.json",
            &[
                "/medications/0/dose/unit",
                "/medications/0/frequency/period_unit",
            ],
        ),
        (
            "invalid-missing-fields.json",
            &[
                "/patient",
                "/medications/0",
                "/medications/0/dose",
                "/medications/1",
            ],
        ),
        (
            "invalid-misspelt-and-formats.json",
            &[
                "/evaluated_at",
                "/patient/birth_date",
                "/patient/sex",
                "/patient/flags/0",
                "/medications/0",
            ],
        ),
        (
            "invalid-conflicting-dose.json",
            &[
                "/medications/0",
                "/medications/0/frequency/frequency",
                "/medications/0/frequency/period",
                "/services/0/duration/unit",
            ],
        ),
        ("invalid-no-patient.json", &["", "/focus"]),
    ];
    for (name, expected) in cases {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(error_paths(name), expected, "{name}");
    }
}

#[test]
fn the_full_fixture_translates_every_field() {
    let set = NativeOrderSet::parse(&fixture("valid-vcf-full.json")).unwrap();
    assert_eq!(
        set.evaluated_at.unwrap().to_rfc3339(),
        "2026-11-23T08:00:00+00:00"
    );
    let t = set.to_domain().unwrap();
    assert_eq!(t.user_ref.as_deref(), Some("Practitioner/dr-demo"));
    assert_eq!(t.encounter_ref.as_deref(), Some("Encounter/enc-1"));
    assert_eq!(t.patient_ref.as_deref(), Some("Patient/demo-1"));
    let p = &t.patient;
    assert_eq!(
        p.diagnoses[0].onset_or_recorded().unwrap().to_rfc3339(),
        "2026-11-18T00:00:00+00:00"
    );
    assert_eq!(p.labs.len(), 2);
    assert!(
        p.labs[0]
            .code
            .codes_in("http://loinc.org")
            .any(|c| c == "33914-3")
    );
    assert_eq!(p.imaging.len(), 1);
    assert_eq!(
        p.active_medications[0].frequency.given().unwrap().per_day(),
        3.0
    );
    assert_eq!(
        p.absent_sections,
        BTreeSet::new(),
        "every section was supplied"
    );

    let oxy = &t.orders.medications[0];
    assert_eq!(oxy.dose.given().unwrap().max().to_mg(), Some(5.0));
    assert_eq!(oxy.frequency.given().unwrap().max_per_day(), 4.0);
    assert!(oxy.as_needed);
    assert_eq!(oxy.route, Field::Given(Route::Oral));
    assert_eq!(oxy.supply_duration.given().unwrap().days(), 5.0);
    assert_eq!(oxy.dispense_quantity.given().unwrap().value(), 20.0);
    let calcitonin = &t.orders.medications[1];
    assert_eq!(calcitonin.route, Field::Given(Route::Nasal));
    assert_eq!(calcitonin.supply_duration.given().unwrap().days(), 28.0);
    let bed_rest = &t.orders.services[0];
    assert_eq!(bed_rest.planned_duration.given().unwrap().days(), 7.0);
    assert!(t.orders.in_focus(&OrderRef("med-oxy".into())));
    assert!(!t.orders.in_focus(&OrderRef("med-calcitonin".into())));
}

#[test]
fn ranges_unknown_units_and_missing_sections() {
    let t = NativeOrderSet::parse(&fixture("valid-dose-range-prn.json"))
        .unwrap()
        .to_domain()
        .unwrap();
    let m = &t.orders.medications[0];
    assert!(matches!(m.dose, Field::Given(Dose::Range { .. })));
    assert_eq!(m.frequency.given().unwrap().max_per_day(), 6.0);
    assert_eq!(
        t.patient.absent_sections,
        BTreeSet::from([
            RecordSection::Imaging,
            RecordSection::Medications,
            RecordSection::ServiceRequests
        ])
    );

    let t = NativeOrderSet::parse(&fixture("valid-unknown-unit-and-code.json"))
        .unwrap()
        .to_domain()
        .unwrap();
    let m = &t.orders.medications[0];
    assert_eq!(m.dose.unreadable().unwrap().raw, "teaspoon");
    assert_eq!(m.frequency.unreadable().unwrap().field, "frequency_code");
    let s = &t.orders.services[0];
    assert!(s.do_not_perform);
    assert_eq!(s.planned_duration.given().unwrap().days(), 3.0);

    let t = NativeOrderSet::parse(&fixture("valid-minimal.json"))
        .unwrap()
        .to_domain()
        .unwrap();
    assert_eq!(t.patient.absent_sections.len(), 5);
}

#[test]
fn auto_detection_routes_both_kinds() {
    let native: Value = serde_json::from_slice(&fixture("valid-minimal.json")).unwrap();
    assert_eq!(detect(&native), InputKind::Native);
    let (kind, translated) = translate_any(&fixture("valid-vcf-full.json")).unwrap();
    assert_eq!(kind, InputKind::Native);
    assert_eq!(
        translated.evaluated_at.unwrap().to_rfc3339(),
        "2026-11-23T08:00:00+00:00"
    );
    let cds = br#"{"hook":"order-sign","hookInstance":"x","context":{"userId":"u","patientId":"p","draftOrders":{"resourceType":"Bundle"}}}"#;
    assert_eq!(translate_any(cds).unwrap().0, InputKind::CdsHooks);
    assert!(matches!(
        translate_any(b"{\"patient\": 1}}"),
        Err(AdapterError::Json { .. })
    ));
}

fn decision_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(DECISION_SCHEMA).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn decision_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {}", e.instance_path().as_str(), e))
        .collect()
}

#[test]
fn a_serialized_decision_follows_the_decision_schema() {
    let decision = Decision {
        decision_id: uuid::Uuid::now_v7(),
        pathway: PathwayRef {
            id: "vcf".into(),
            version: "1.0.0".into(),
            content_hash: "ab".repeat(32),
        },
        evaluated_at: chrono::Utc::now(),
        evaluation: Evaluation {
            findings: vec![
                Finding {
                    rule_id: "DOSE-MME-90".into(),
                    severity: Severity::Warning,
                    order_ref: Some(OrderRef("med-oxy".into())),
                    texts: Texts::new(
                        "Opioid dose is 120 MME/day (limit 90)",
                        "oxycodone 20 mg x 4/day x 1.5 = **120 MME/day**",
                    ),
                    numbers: [
                        ("mme_per_day".into(), Number::from(120.0)),
                        ("limit".into(), Number::from(90)),
                    ]
                    .into(),
                    labels: Default::default(),
                    suggestions: vec![Suggestion {
                        id: "reduce".into(),
                        label: "Reduce to 10 mg every 6 hours".into(),
                        actions: vec![
                            Action {
                                kind: ActionKind::Delete,
                                description: "Remove the current order".into(),
                                resource: None,
                                resource_id: Some("MedicationRequest/med-oxy".into()),
                            },
                            Action {
                                kind: ActionKind::Create,
                                description: "Order oxycodone 10 mg q6h".into(),
                                resource: Some(
                                    json!({"resourceType": "MedicationRequest", "status": "draft"})
                                        .into(),
                                ),
                                resource_id: None,
                            },
                        ],
                    }],
                    citations: vec![
                        "CDC Clinical Practice Guideline for Prescribing Opioids, 2022".into(),
                    ]
                    .into(),
                },
                Finding {
                    rule_id: "BEDREST-MAX".into(),
                    severity: Severity::Info,
                    order_ref: None,
                    texts: Texts::new("Bed rest beyond 3 days", "-"),
                    numbers: Default::default(),
                    labels: Default::default(),
                    suggestions: vec![],
                    citations: Default::default(),
                },
            ],
            unrecognized: vec![Unrecognized {
                order_ref: OrderRef("x".into()),
                label: "mystery".into(),
            }],
            missing_inputs: vec![MissingInput {
                input: "renal_function".into(),
                rules: vec!["DOSE-RENAL".into()],
            }],
        },
    };
    let validator = decision_validator();
    let value = serde_json::to_value(&decision).unwrap();
    assert_eq!(decision_errors(&validator, &value), Vec::<String>::new());

    // The schema can fail: a summary of 140 characters and an unknown severity are refused.
    let mut bad = value.clone();
    bad["findings"][0]["summary"] = json!("x".repeat(140));
    bad["findings"][1]["severity"] = json!("fatal");
    let errors = decision_errors(&validator, &bad);
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn the_order_set_schema_documents_every_property() {
    // Every property in the schema carries a description (directly or through its $ref).
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let documented = prop.get("description").is_some() || prop.get("$ref").is_some();
                let is_constraint_only = prop
                    .as_object()
                    .is_some_and(|o| o.keys().all(|k| k == "minItems"));
                if !documented && !is_constraint_only {
                    missing.push(format!("{path}/{name}"));
                }
                walk(prop, &format!("{path}/{name}"), missing);
            }
        }
        if let Some(defs) = node.get("$defs").and_then(Value::as_object) {
            for (name, def) in defs {
                walk(def, &format!("{path}/$defs/{name}"), missing);
            }
        }
        for key in ["items", "allOf", "anyOf"] {
            match node.get(key) {
                Some(Value::Array(items)) => items.iter().for_each(|i| walk(i, path, missing)),
                Some(item @ Value::Object(_)) => walk(item, path, missing),
                _ => {}
            }
        }
    }
    for schema in [ORDER_SET_SCHEMA, DECISION_SCHEMA] {
        let schema: Value = serde_json::from_str(schema).unwrap();
        let mut missing = Vec::new();
        walk(&schema, "", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }
}

#[test]
fn messages_are_in_the_clients_terms() {
    let messages = |name: &str| match NativeOrderSet::parse(&fixture(name)) {
        Err(AdapterError::Invalid { errors }) => errors
            .into_iter()
            .map(|e| format!("{} {}", e.path, e.message))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let conflicting = messages("invalid-conflicting-dose.json");
    assert!(
        conflicting.contains(&"/medications/0 give dose or dose_range, not both".to_string()),
        "{conflicting:?}"
    );
    let missing = messages("invalid-missing-fields.json");
    assert!(
        missing.contains(&"/medications/1 needs at least one code (codes) or a text".to_string()),
        "{missing:?}"
    );
    assert!(
        missing.contains(&"/medications/0/dose \"unit\" is a required property".to_string()),
        "{missing:?}"
    );
}

/// Found by the bad-input corpus: two orders with one id were both read, and a finding's
/// `order_ref` could not say which one it meant. The second is refused at its own path.
#[test]
fn duplicate_order_ids_are_refused_at_the_second() {
    let mut set: Value = serde_json::from_slice(&fixture("valid-vcf-full.json")).unwrap();
    let copy = set["medications"][0].clone();
    set["medications"].as_array_mut().unwrap().push(copy);
    set["services"][0]["id"] = set["medications"][1]["id"].clone();
    let order_set = NativeOrderSet::from_value(set).unwrap();
    match order_set.to_domain() {
        Err(AdapterError::Invalid { errors }) => {
            let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["/medications/2/id", "/services/0/id"], "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
}
