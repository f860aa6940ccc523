//! The CDS Hooks adapter against the real requests in `shared/conformance/`: every well-formed
//! request parses and translates, every broken one is refused with a JSON error, and the
//! clinically relevant fields of a few are read as a pharmacist would read them.

use orderguard::adapters::{AdapterError, CdsHooksRequest, Translated};
use orderguard::domain::{Dose, DoseForm, DoseUnit, Field, RecordSection};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ORDERGUARD_SHARED") {
        return PathBuf::from(dir);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if beside.is_dir() {
        beside
    } else {
        PathBuf::from("/work/shared")
    }
}

fn conformance(relative: &str) -> PathBuf {
    shared_dir().join("conformance").join(relative)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

/// Files of the two request folders, split into: (well-formed requests, invalid JSON, other).
fn request_files() -> (Vec<PathBuf>, Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    json_files(&conformance("cds-hooks"), &mut files);
    json_files(&conformance("opioid-cds/cds-r4/requests"), &mut files);
    let (mut requests, mut broken, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for file in files {
        match serde_json::from_slice::<Value>(&std::fs::read(&file).unwrap()) {
            Err(_) => broken.push(file),
            Ok(v) if v.get("hook").is_some() && v.get("context").is_some() => requests.push(file),
            Ok(_) => other.push(file),
        }
    }
    (requests, broken, other)
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn translate(bytes: &[u8]) -> Translated {
    CdsHooksRequest::parse(bytes).unwrap().to_domain().unwrap()
}

/// The opioid-cds files end in a stray `}`; the service refuses them, the spot checks below
/// read them as their authors meant them.
fn without_stray_brace(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let trimmed = text.trim_end();
    assert!(trimmed.ends_with("}\n}") || trimmed.ends_with('}'));
    trimmed.as_bytes()[..trimmed.len() - 1].to_vec()
}

#[test]
fn every_well_formed_request_translates() {
    let (requests, _, _) = request_files();
    let expected = [
        "order-sign-request-DeviceRequest-with-nulls.json",
        "order-select-request-R4-composed.json",
        "order-sign-request-R4-composed.json",
        "order_select_hook_request.json",
        "order_sign_hook_request.json",
        "order-select-request-R4-no-medication-yet.json",
        "order-select-request-R4-sandbox-shape.json",
        "request-patient-view.json",
        "request-with-extension.json",
        "noPrefetch.json",
        "request-example-rec-11-patient-view-benzo-trigger-with-opioid.json",
    ];
    let mut names: Vec<String> = requests.iter().map(|p| name(p)).collect();
    names.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "the set of well-formed requests changed");
    for path in &requests {
        let bytes = std::fs::read(path).unwrap();
        let request =
            CdsHooksRequest::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", name(path)));
        let translated = request
            .to_domain()
            .unwrap_or_else(|e| panic!("{}: {e}", name(path)));
        if request.hook == "patient-view" {
            assert!(
                translated.orders.medications.is_empty() && translated.orders.services.is_empty()
            );
        }
    }
}

#[test]
fn every_file_with_a_stray_brace_is_a_json_error() {
    let (_, broken, _) = request_files();
    assert_eq!(broken.len(), 22, "{broken:?}");
    for path in &broken {
        assert!(
            path.to_string_lossy().contains("opioid-cds"),
            "{}",
            path.display()
        );
        match CdsHooksRequest::parse(&std::fs::read(path).unwrap()) {
            Err(AdapterError::Json { message, .. }) => {
                assert!(
                    message.contains("trailing characters"),
                    "{}: {message}",
                    name(path)
                )
            }
            other => panic!("{}: {other:?}", name(path)),
        }
        // Without the stray brace each of them is a request this adapter reads.
        translate(&without_stray_brace(path));
    }
}

/// The hooks library's contexts (R4, STU3, DSTU2, older copies) are fragments; put into an
/// envelope they must translate, with the medication's dose read whatever the FHIR version.
#[test]
fn context_fragments_of_every_fhir_version_translate() {
    for (file, hook, has_dose) in [
        (
            "cds-hooks/hooks-library/order-select-context-R4.json",
            "order-select",
            true,
        ),
        (
            "cds-hooks/hooks-library/order-select-context-STU3.json",
            "order-select",
            true,
        ),
        (
            "cds-hooks/hooks-library/order-select-context-DSTU2.json",
            "order-select",
            true,
        ),
        (
            "cds-hooks/hooks-library/order-sign-context-R4.json",
            "order-sign",
            true,
        ),
        (
            "cds-hooks/hooks-library/order-sign-context-STU3.json",
            "order-sign",
            true,
        ),
        (
            "cds-hooks/hooks-library/order-sign-context-DSTU2.json",
            "order-sign",
            true,
        ),
        (
            "cds-hooks/cds-hooks-docs/order-select-context-R4.json",
            "order-select",
            true,
        ),
        (
            "cds-hooks/cds-hooks-docs/order-sign-context-R4.json",
            "order-sign",
            true,
        ),
        (
            "cds-hooks/spec-2.0/context-draftOrders-medicationrequest.json",
            "order-sign",
            false,
        ),
        (
            "cds-hooks/spec-2.0/context-draftOrders-with-medicationRequestId.json",
            "order-sign",
            false,
        ),
    ] {
        let fragment: Value =
            serde_json::from_slice(&std::fs::read(conformance(file)).unwrap()).unwrap();
        let mut context = fragment["context"].clone();
        context
            .as_object_mut()
            .unwrap()
            .entry("userId")
            .or_insert(json!("Practitioner/x"));
        context
            .as_object_mut()
            .unwrap()
            .entry("patientId")
            .or_insert(json!("x"));
        let body = json!({"hook": hook, "hookInstance": "h", "context": context});
        let t = translate(&serde_json::to_vec(&body).unwrap());
        let medication = t
            .orders
            .medications
            .first()
            .unwrap_or_else(|| panic!("{file}: no medication"));
        assert_eq!(
            matches!(medication.dose, Field::Given(_)),
            has_dose,
            "{file}: dose not read: {:?}",
            medication.dose
        );
    }
}

#[test]
fn rec_08_fentanyl_order_is_read_with_dose_and_frequency() {
    let path = conformance(
        "opioid-cds/cds-r4/requests/OpioidCDSREC08/request-example-rec-08-mme-greater-than-fifty.json",
    );
    let t = translate(&without_stray_brace(&path));
    let order = &t.orders.medications[0];
    assert_eq!(
        order.reference.as_str(),
        "MedicationRequest/example-rec-08-mme-greater-than-fifty-context"
    );
    let dose = order.dose.given().expect("dose read").max();
    assert_eq!(
        (dose.value(), dose.unit()),
        (1.0, DoseUnit::Count(DoseForm::Patch))
    );
    let frequency = order.frequency.given().expect("frequency read");
    assert!((frequency.min_interval_days() - 3.0).abs() < 1e-9);
    // The request carries no route at all: absent, not guessed.
    assert_eq!(order.route, Field::Absent);
    assert_eq!(order.supply_duration.given().unwrap().days(), 30.0);
    assert_eq!(order.dispense_quantity.given().unwrap().value(), 30.0);
    // In these files the prefetch object closes after item1 (the stray brace at the end is
    // its lost partner), so item2.. sit at the top level and are not prefetch: only the
    // Patient arrived, and the other sections are reported absent rather than assumed empty.
    assert!(t.patient.birth_date.is_some());
    assert!(
        t.patient
            .absent_sections
            .contains(&RecordSection::Medications)
    );
    assert!(!t.patient.absent_sections.contains(&RecordSection::Patient));
}

#[test]
fn dose_range_file_yields_a_range() {
    let path = conformance(
        "opioid-cds/cds-r4/requests/OpioidCDSREC08OrderSign/request-example-rec-08-order-sign-mme-doseRange.json",
    );
    let t = translate(&without_stray_brace(&path));
    let order = &t.orders.medications[0];
    match order.dose {
        Field::Given(Dose::Range { low, high }) => {
            assert_eq!((low.value(), high.value()), (1.0, 2.0));
            assert_eq!(high.unit(), DoseUnit::Count(DoseForm::Tablet));
        }
        ref other => panic!("{other:?}"),
    }
    // q4-6h: 6 a day nominal, the ceiling uses the shorter period.
    let f = order.frequency.given().unwrap();
    assert_eq!(f.max_per_day(), 6.0);
    assert_eq!(f.period_max(), Some(6.0));
}

#[test]
fn multiple_dose_rate_file_reads_the_ordered_entry() {
    for file in [
        "opioid-cds/cds-r4/requests/OpioidCDSREC08/request-example-rec-08-multiple-doseRate.json",
        "opioid-cds/cds-r4/requests/OpioidCDSREC08OrderSign/request-example-rec-08-order-sign-multiple-doseRate.json",
    ] {
        let t = translate(&without_stray_brace(&conformance(file)));
        let dose = t.orders.medications[0].dose.given().expect("dose").max();
        assert_eq!(
            (dose.value(), dose.unit()),
            (1.0, DoseUnit::Count(DoseForm::Patch)),
            "{file}"
        );
    }
    let t = translate(&without_stray_brace(&conformance(
        "opioid-cds/cds-r4/requests/OpioidCDSREC08/request-example-rec-08-multiple-doseRate.json",
    )));
    assert_eq!(
        t.orders.focus.as_ref().unwrap()[0].as_str(),
        "MedicationRequest/example-rec-08-mme-greater-than-fifty-context"
    );
}

#[test]
fn hooks_library_order_select_reads_the_dose_object() {
    let t = translate(
        &std::fs::read(conformance(
            "cds-hooks/hooks-library/order-select-request-R4-composed.json",
        ))
        .unwrap(),
    );
    assert_eq!(
        t.orders.medications.len(),
        1,
        "NutritionOrder is ignored, not an error"
    );
    let order = &t.orders.medications[0];
    let dose = order.dose.given().unwrap().max();
    assert_eq!((dose.value(), dose.unit()), (5.0, DoseUnit::Millilitre));
    assert_eq!(order.frequency.given().unwrap().per_day(), 2.0);
    assert_eq!(order.supply_duration.given().unwrap().days(), 10.0);
    assert_eq!(t.orders.focus.as_ref().unwrap().len(), 2);
    assert!(t.notes.iter().any(|n| n.contains("NutritionOrder")));
}

#[test]
fn crd_request_with_nulls_is_accepted() {
    let bytes = std::fs::read(conformance(
        "cds-hooks/crd-ri/order-sign-request-DeviceRequest-with-nulls.json",
    ))
    .unwrap();
    let request = CdsHooksRequest::parse(&bytes).unwrap();
    assert_eq!(request.fhir_authorization, None);
    let t = request.to_domain().unwrap();
    assert!(t.orders.medications.is_empty() && t.orders.services.is_empty());
    assert_eq!(
        t.patient.birth_date,
        chrono::NaiveDate::from_ymd_opt(1970, 7, 4)
    );
    assert!(!t.patient.absent_sections.contains(&RecordSection::Patient));
    assert!(
        t.patient
            .absent_sections
            .contains(&RecordSection::Conditions)
    );
}

#[test]
fn sandbox_shapes_are_read() {
    let t = translate(
        &std::fs::read(conformance(
            "cds-hooks/sandbox-derived/order-select-request-R4-sandbox-shape.json",
        ))
        .unwrap(),
    );
    let dose = t.orders.medications[0].dose.given().unwrap().max();
    assert_eq!(
        dose.unit(),
        DoseUnit::Count(DoseForm::Tablet),
        "{{pill}} in code only"
    );
    let t = translate(
        &std::fs::read(conformance(
            "cds-hooks/sandbox-derived/order-select-request-R4-no-medication-yet.json",
        ))
        .unwrap(),
    );
    assert!(t.orders.medications[0].medication.is_empty());
}

#[test]
fn no_prefetch_means_every_section_is_absent() {
    let t = translate(
        &std::fs::read(conformance(
            "opioid-cds/cds-r4/requests/OpioidCDSREC08OrderSign/noPrefetch.json",
        ))
        .unwrap(),
    );
    assert_eq!(
        t.patient.absent_sections.len(),
        6,
        "{:?}",
        t.patient.absent_sections
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        if let Ok(request) = CdsHooksRequest::parse(&bytes) {
            let _ = request.to_domain();
        }
        let _ = CdsHooksRequest::from_value(value);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(request) = CdsHooksRequest::parse(&bytes) {
            let _ = request.to_domain();
        }
    }

    #[test]
    fn arbitrary_contexts_never_panic(draft in arb_json(), prefetch in arb_json()) {
        let body = json!({"hook": "order-select", "hookInstance": "x",
            "context": {"userId": "u", "patientId": "p", "selections": ["MedicationRequest/a"],
                        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]}},
            "prefetch": {"item1": prefetch}});
        if let Ok(request) = CdsHooksRequest::parse(&serde_json::to_vec(&body).unwrap()) {
            let _ = request.to_domain();
        }
    }
}

/// JSON values biased towards the keys the adapter reads, so that the walk goes deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "resourceType",
        "MedicationRequest",
        "dosageInstruction",
        "doseAndRate",
        "doseQuantity",
        "doseRange",
        "low",
        "high",
        "value",
        "unit",
        "code",
        "timing",
        "repeat",
        "frequency",
        "period",
        "periodUnit",
        "boundsPeriod",
        "start",
        "end",
        "entry",
        "resource",
        "hook",
        "context",
        "draftOrders",
        "Bundle",
        "dispenseRequest",
        "expectedSupplyDuration",
        "medicationReference",
        "reference",
        "contained",
        "coding",
        "route",
        "occurrencePeriod",
        "Patient",
        "birthDate",
        "Condition",
        "Observation",
        "valueQuantity",
        "status",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(|f| json!(f)),
        (-5i64..100).prop_map(|i| json!(i)),
        prop::sample::select(vec![
            "mg",
            "d",
            "h",
            "BID",
            "2023-05",
            "ordered",
            "MedicationRequest",
            "Bundle",
            "#m",
            "2023-05-01T10:00-06:00",
            "2023-05-01T1\u{e9}:00-06:0",
            "Q8H",
            "x"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

/// Found by the bad-input corpus: a 1.5 MB `patientId` was accepted and then refused by the
/// audit database's index, taking its batchmates down with it. Each reference the audit log
/// indexes or keeps is bounded, at its own path; a reference at the bound is still read.
#[test]
fn an_overlong_reference_is_refused_at_its_path() {
    use orderguard::adapters::cds_hooks::MAX_REFERENCE_CHARS;
    let request = |pointer: &str, value: String| {
        let mut r = json!({
            "hook": "order-sign",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": "1", "encounterId": "2",
                        "draftOrders": {"resourceType": "Bundle", "entry": []}}
        });
        *r.pointer_mut(pointer).unwrap() = Value::String(value);
        serde_json::to_vec(&r).unwrap()
    };
    for pointer in [
        "/hookInstance",
        "/context/userId",
        "/context/patientId",
        "/context/encounterId",
    ] {
        let at_bound = "é".repeat(MAX_REFERENCE_CHARS);
        assert!(
            CdsHooksRequest::parse(&request(pointer, at_bound)).is_ok(),
            "{pointer} at the bound"
        );
        let over = "x".repeat(MAX_REFERENCE_CHARS + 1);
        match CdsHooksRequest::parse(&request(pointer, over)) {
            Err(AdapterError::Malformed { path, .. }) => assert_eq!(path, pointer),
            other => panic!("{pointer}: {other:?}"),
        }
    }
}

/// Found by the bad-input corpus: two draft orders with one id were both read; a card's
/// suggestion (update / delete by id) could not say which it meant.
#[test]
fn duplicate_draft_order_ids_are_refused_at_the_second() {
    let order = json!({"resource": {"resourceType": "MedicationRequest", "id": "oxy",
        "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"text": "oxycodone 5 mg tablet"}}});
    let service = json!({"resource": {"resourceType": "ServiceRequest", "id": "oxy",
        "status": "draft", "intent": "order", "code": {"text": "bed rest"}}});
    let request = |entries: Vec<Value>| {
        serde_json::to_vec(&json!({
            "hook": "order-sign",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": "1",
                        "draftOrders": {"resourceType": "Bundle", "entry": entries}}
        }))
        .unwrap()
    };
    // The same id on two resource types is two references.
    let fine = CdsHooksRequest::parse(&request(vec![order.clone(), service])).unwrap();
    assert_eq!(fine.to_domain().unwrap().orders.medications.len(), 1);
    let twice = CdsHooksRequest::parse(&request(vec![order.clone(), order])).unwrap();
    match twice.to_domain() {
        Err(AdapterError::Malformed { path, .. }) => {
            assert_eq!(path, "/context/draftOrders/entry/1/resource/id")
        }
        other => panic!("{other:?}"),
    }
}
