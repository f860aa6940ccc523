//! Recording the clinical fixture cases (`fixtures/cases/`) as real decisions through a real
//! audit writer, the way the service records them: shared by the queue, route and browser tests
//! (included with `#[path]`, so each test crate compiles its own copy of this one file).

use chrono::{DateTime, Utc};
use orderguard::adapters::InputKind;
use orderguard::audit::{AuditRecord, AuditWriter, Channel, RequestMeta};
use orderguard::decide;
use orderguard::decision::Decision;
use orderguard::pathway::Plan;
use serde_json::{Value, json};

/// Evaluates case `file` for patient `Patient/<patient>` at `at` and records it durably (CDS
/// Hooks cases as `cds-hooks` calls with their hook, the others as native calls).
pub async fn record_case(
    writer: &AuditWriter,
    file: &str,
    patient: &str,
    at: DateTime<Utc>,
) -> Decision {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cases")
        .join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut input: Value = serde_json::from_slice(&bytes).unwrap();
    if input.get("hook").is_some() {
        input["context"]["patientId"] = json!(patient);
    } else {
        input["patient"]["reference"] = json!(format!("Patient/{patient}"));
    }
    let mut prepared = decide::prepare(&serde_json::to_vec(&input).unwrap())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let decision = decide::decide(&Plan::builtin(), &mut prepared, at, uuid::Uuid::now_v7());
    let response = serde_json::to_vec(&decide::render(&prepared, &decision)).unwrap();
    let mut meta = RequestMeta::new(match prepared.kind {
        InputKind::CdsHooks => Channel::CdsHooks,
        InputKind::Native => Channel::Native,
    });
    meta.hook = prepared.hook.take();
    meta.hook_instance = prepared.hook_instance.take();
    meta.patient_ref = prepared.patient_ref.take();
    meta.user_ref = prepared
        .user_ref
        .take()
        .or_else(|| Some("Practitioner/dr-case".into()));
    meta.encounter_ref = prepared.encounter_ref.take();
    let record = AuditRecord::from_decision(
        &decision,
        meta,
        std::mem::take(&mut prepared.canonical_input),
        response,
    );
    writer
        .record(record)
        .await
        .expect("the decision is recorded");
    decision
}
