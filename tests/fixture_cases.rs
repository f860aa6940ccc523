//! Every clinical fixture case in `fixtures/cases/` (native order sets and CDS Hooks requests)
//! fires exactly the `RULE-ID:severity` set its entry in `expected.json` names — no more, no less.
//! The expectations are written from pathway-spec.md (see `fixtures/cases/generate.py`).

use orderguard::decide;
use orderguard::pathway::Plan;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn every_fixture_case_fires_exactly_the_expected_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let plan = Plan::builtin();
    let mut failures = Vec::new();
    let cases = expected.as_object().unwrap();
    assert!(
        cases.len() >= 30,
        "the suite needs at least 30 cases, has {}",
        cases.len()
    );
    for (file, expect) in cases {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut prepared = decide::prepare(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let now = expect["now"].as_str().unwrap().parse().unwrap();
        let decision = decide::decide(&plan, &mut prepared, now, uuid::Uuid::nil());
        let got: BTreeSet<String> = decision
            .evaluation
            .findings
            .iter()
            .map(|f| format!("{}:{}", f.rule_id, f.severity.as_str()))
            .collect();
        let want: BTreeSet<String> = expect["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        if got != want {
            failures.push(format!(
                "{file}\n    missing:    {:?}\n    unexpected: {:?}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
        // The CDS Hooks answer for the same decision obeys the spec's shape rules.
        let answer = decide::render(&prepared, &decision);
        if prepared.hook.is_some() {
            assert!(
                orderguard::cards::has_no_empty_fields(&answer),
                "{file}: empty field in {answer:#}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
