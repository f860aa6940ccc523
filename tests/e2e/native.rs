//! Native `/v1/validate`: the decision follows its schema and is stored under its id.

use serde_json::Value;
use uuid::Uuid;

use crate::support::{Http, fixture, read_bytes, read_json, spawn_app};

fn decision_validator() -> jsonschema::Validator {
    let schema: Value = read_json(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/decision.schema.json"),
    );
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the decision schema compiles")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_decision_follows_the_schema_and_is_stored() {
    let app = spawn_app().await;
    let http = Http::new();
    let answer = http
        .post(
            &app.url("/v1/validate"),
            read_bytes(fixture("native/valid-vcf-full.json")),
        )
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.content_type.starts_with("application/json"));
    let decision = answer.json();
    let errors: Vec<String> = decision_validator()
        .iter_errors(&decision)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{decision:#}");

    let id = Uuid::parse_str(decision["decision_id"].as_str().unwrap()).unwrap();
    let findings = decision["findings"].as_array().unwrap();
    assert!(!findings.is_empty(), "the full VCF order set has findings");
    let (channel, finding_count, evaluated_at, pathway_id): (String, i32, chrono::DateTime<chrono::Utc>, String) =
        sqlx::query_as(
            "SELECT channel, finding_count, evaluated_at, pathway_id FROM decisions WHERE decision_id = $1",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("the decision row");
    assert_eq!(channel, "native");
    assert_eq!(finding_count as usize, findings.len());
    assert_eq!(decision["pathway"]["id"], pathway_id.as_str());
    // The order set's own evaluation time is the decision's.
    assert_eq!(
        evaluated_at,
        chrono::DateTime::parse_from_rfc3339(decision["evaluated_at"].as_str().unwrap()).unwrap()
    );
    let mut stored: Vec<String> =
        sqlx::query_scalar("SELECT rule_id FROM findings WHERE decision_id = $1")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let mut answered: Vec<String> = findings
        .iter()
        .map(|f| f["rule_id"].as_str().expect("rule_id").to_owned())
        .collect();
    stored.sort();
    answered.sort();
    assert_eq!(stored, answered);
}
