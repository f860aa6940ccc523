//! Golden regression net for the engine and its renderings: every input below is decided at a
//! fixed time with a nil decision id, and the whole output — the native decision JSON (findings
//! with their summaries, details, numbers, suggestions and citations; unrecognized orders;
//! missing inputs) and, for CDS Hooks requests, the cards — must equal the committed file in
//! `tests/golden/engine/` byte for byte. Performance work on the engine must not change a
//! single byte of what it decides; this test is what says so.
//!
//! Inputs: every case of `fixtures/cases/` at its own `now` and at two later times (other
//! fracture-age windows), the valid native examples, the 20-order CDS Hooks request of the
//! bytes-to-cards benchmark, and the parsed input of `benches/engine.rs` with variations
//! (order-select focus on each order, no birth date, no labs, conditions not supplied).
//!
//! After an intended change of behaviour, regenerate and review the diff:
//! `ORDERGUARD_BLESS=1 cargo test --test engine_golden`.

#[path = "../benches/support/realistic_input.rs"]
#[allow(dead_code)]
mod realistic;

use chrono::{DateTime, Duration, Utc};
use orderguard::decide;
use orderguard::decision::Decision;
use orderguard::domain::{EvaluationInput, RecordSection};
use orderguard::pathway::Plan;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    root().join("tests/golden/engine")
}

fn blessing() -> bool {
    std::env::var_os("ORDERGUARD_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Compares `got` with the golden file `name`; writes it instead when blessing. Returns a
/// description of the first difference, if any.
fn check(name: &str, got: &Value) -> Option<String> {
    let path = golden_dir().join(format!("{name}.json"));
    let mut text = serde_json::to_string_pretty(got).unwrap();
    text.push('\n');
    if blessing() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return None;
    }
    let want = match std::fs::read_to_string(&path) {
        Ok(w) => w,
        Err(e) => {
            return Some(format!(
                "{name}: no golden file {} ({e}); run with ORDERGUARD_BLESS=1",
                path.display()
            ));
        }
    };
    if want == text {
        return None;
    }
    let line = want
        .lines()
        .zip(text.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| want.lines().count().min(text.lines().count()));
    Some(format!(
        "{name}: differs from {} at line {}:\n    want: {}\n    got:  {}",
        path.display(),
        line + 1,
        want.lines().nth(line).unwrap_or("<end>"),
        text.lines().nth(line).unwrap_or("<end>")
    ))
}

fn decide_bytes(plan: &Plan, bytes: &[u8], now: DateTime<Utc>) -> Value {
    let mut prepared = decide::prepare(bytes).unwrap();
    let decision = decide::decide(plan, &mut prepared, now, uuid::Uuid::nil());
    let mut out = json!({ "decision": serde_json::to_value(&decision).unwrap() });
    if prepared.hook.is_some() {
        out["cards"] = decide::render(&prepared, &decision);
    }
    out
}

fn decide_parsed(plan: &Plan, input: &EvaluationInput) -> Value {
    let decision = Decision {
        decision_id: uuid::Uuid::nil(),
        pathway: plan.reference.clone(),
        evaluated_at: input.now,
        evaluation: orderguard::engine::evaluate(plan, input),
    };
    json!({
        "decision": serde_json::to_value(&decision).unwrap(),
        "cards": orderguard::cards::render(&decision, None),
    })
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn engine_output_equals_the_golden_files() {
    let plan = Plan::builtin();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut run = |name: String, got: Value| {
        checked += 1;
        failures.extend(check(&name, &got));
    };

    let cases = root().join("fixtures/cases");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(cases.join("expected.json")).unwrap()).unwrap();
    for (file, expect) in expected.as_object().unwrap() {
        let bytes = std::fs::read(cases.join(file)).unwrap();
        let now: DateTime<Utc> = expect["now"].as_str().unwrap().parse().unwrap();
        let name = stem(Path::new(file));
        for (suffix, at) in [
            ("", now),
            ("+30d", now + Duration::days(30)),
            ("+400d", now + Duration::days(400)),
        ] {
            run(
                format!("case-{name}{suffix}"),
                decide_bytes(&plan, &bytes, at),
            );
        }
    }

    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let mut natives: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/native"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| stem(p).starts_with("valid-"))
        .collect();
    natives.sort();
    for path in natives {
        let bytes = std::fs::read(&path).unwrap();
        run(
            format!("native-{}", stem(&path)),
            decide_bytes(&plan, &bytes, now),
        );
    }
    let sign = root().join("fixtures/cds-hooks/order-sign-20-orders.json");
    run(
        "cds-order-sign-20-orders".into(),
        decide_bytes(&plan, &std::fs::read(sign).unwrap(), now),
    );

    // The benchmark's parsed input, and variations that take other branches.
    let input = realistic::realistic_input();
    run("bench-realistic".into(), decide_parsed(&plan, &input));
    let refs: Vec<_> = input
        .orders
        .medications
        .iter()
        .map(|m| m.reference.clone())
        .chain(input.orders.services.iter().map(|s| s.reference.clone()))
        .collect();
    for (i, r) in refs.iter().enumerate() {
        let mut focused = input.clone();
        focused.orders.focus = Some(vec![r.clone()]);
        run(
            format!("bench-realistic-focus-{i:02}"),
            decide_parsed(&plan, &focused),
        );
    }
    let mut no_birth = input.clone();
    no_birth.patient.birth_date = None;
    run(
        "bench-realistic-no-birth-date".into(),
        decide_parsed(&plan, &no_birth),
    );
    let mut no_labs = input.clone();
    no_labs.patient.labs.clear();
    run(
        "bench-realistic-no-labs".into(),
        decide_parsed(&plan, &no_labs),
    );
    let mut no_conditions = input.clone();
    no_conditions.patient.diagnoses.clear();
    no_conditions
        .patient
        .absent_sections
        .insert(RecordSection::Conditions);
    no_conditions
        .patient
        .absent_sections
        .insert(RecordSection::Medications);
    run(
        "bench-realistic-no-conditions".into(),
        decide_parsed(&plan, &no_conditions),
    );
    let mut later = input.clone();
    later.now += Duration::days(120);
    run("bench-realistic+120d".into(), decide_parsed(&plan, &later));

    assert!(checked > 150, "only {checked} inputs checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} outputs differ from their golden files \
         (ORDERGUARD_BLESS=1 regenerates them after an intended change):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
