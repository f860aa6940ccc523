//! CDS Hooks order-sign through the running service: cards, their rows, feedback, discovery.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Http, assert_no_empty, assert_problem, fixture, read_json, spawn_app};

/// card uuid, outcome, accepted suggestions, override reason code and comment, the card's rule.
type FeedbackRow = (Uuid, String, Value, Option<String>, Option<String>, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_sign_cards_are_recorded_and_feedback_joins_them() {
    let app = spawn_app().await;
    let http = Http::new();

    // Discovery lists both order services.
    let discovery = http.get(&app.url("/cds-services")).await.unwrap();
    assert_eq!(discovery.status, 200);
    let ids: Vec<String> = discovery.json()["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    for id in ["vcf-order-select", "vcf-order-sign"] {
        assert!(ids.iter().any(|i| i == id), "{id} not in {ids:?}");
    }

    let request = read_json(fixture("cases/49-cds-order-sign-opioid.json"));
    let answer = http
        .post_json(&app.url("/cds-services/vcf-order-sign"), &request)
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let response = answer.json();
    assert_no_empty(&response);
    let cards = response["cards"].as_array().expect("cards");
    assert!(!cards.is_empty(), "the opioid order set gives cards");

    let mut card_rules: Vec<(Uuid, String)> = Vec::new();
    for card in cards {
        let uuid = Uuid::parse_str(card["uuid"].as_str().expect("card uuid")).expect("a UUID");
        let rule = card["source"]["topic"]["code"]
            .as_str()
            .expect("source.topic.code");
        assert!(
            rule.starts_with("VCF-") || rule.starts_with("DOSE-"),
            "source.topic.code is a rule id: {rule}"
        );
        let summary = card["summary"].as_str().expect("summary");
        assert!(summary.chars().count() < 140, "summary too long: {summary}");
        card_rules.push((uuid, rule.to_owned()));
    }

    // The decision and a findings row per card, with the card's uuid and rule.
    let (decision_id, hook, channel, finding_count): (Uuid, Option<String>, String, i32) =
        sqlx::query_as(
            "SELECT decision_id, hook, channel, finding_count FROM decisions WHERE hook_instance = $1",
        )
        .bind(request["hookInstance"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .expect("exactly one decision row for the hookInstance");
    assert_eq!(hook.as_deref(), Some("order-sign"));
    assert_eq!(channel, "cds-hooks");
    assert!(finding_count as usize >= cards.len());
    for (uuid, rule) in &card_rules {
        let (found_decision, found_rule): (Uuid, String) =
            sqlx::query_as("SELECT decision_id, rule_id FROM findings WHERE card_uuid = $1")
                .bind(uuid)
                .fetch_one(&app.pool)
                .await
                .unwrap_or_else(|e| panic!("no findings row for card {uuid}: {e}"));
        assert_eq!(found_decision, decision_id);
        assert_eq!(&found_rule, rule);
    }

    // Feedback: accepted with suggestions, overridden with a reason, and the same twice.
    let (first, first_rule) = &card_rules[0];
    let suggestion_id = cards[0]["suggestions"]
        .get(0)
        .and_then(|s| s["uuid"].as_str())
        .unwrap_or("no-suggestion")
        .to_owned();
    let accepted = json!({"feedback": [{
        "card": first.to_string(),
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": suggestion_id}],
        "outcomeTimestamp": "2026-11-23T08:05:00Z"
    }]});
    let (last, _) = card_rules.last().unwrap();
    let overridden = json!({"feedback": [{
        "card": last.to_string(),
        "outcome": "overridden",
        "overrideReason": {
            "reason": {"code": "patient-aware", "system": "urn:orderguard:override-reasons"},
            "userComment": "discussed with the patient"
        },
        "outcomeTimestamp": "2026-11-23T08:06:00Z"
    }]});
    let feedback_url = app.url("/cds-services/vcf-order-sign/feedback");
    for (what, body) in [
        ("accepted", &accepted),
        ("overridden", &overridden),
        ("overridden again", &overridden),
    ] {
        let answer = http.post_json(&feedback_url, body).await;
        assert_eq!(
            answer.status,
            200,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let rows: Vec<FeedbackRow> = sqlx::query_as(
        "SELECT f.card_uuid, f.outcome, f.accepted_suggestions, f.override_reason_code,
                    f.override_comment, fi.rule_id
               FROM feedback f
               JOIN findings fi ON fi.card_uuid = f.card_uuid AND fi.decision_id = f.decision_id
               JOIN decisions d ON d.decision_id = f.decision_id
              WHERE d.decision_id = $1
              ORDER BY f.outcome_at, f.received_at",
    )
    .bind(decision_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        3,
        "three feedback rows joined to the decision: {rows:?}"
    );
    assert_eq!(rows[0].0, *first);
    assert_eq!(rows[0].1, "accepted");
    assert_eq!(rows[0].2, json!([suggestion_id]));
    assert_eq!(&rows[0].5, first_rule);
    for row in &rows[1..] {
        assert_eq!(row.0, *last);
        assert_eq!(row.1, "overridden");
        assert_eq!(row.3.as_deref(), Some("patient-aware"));
        assert_eq!(row.4.as_deref(), Some("discussed with the patient"));
    }

    // A card no decision gave.
    let unknown =
        json!({"feedback": [{"card": Uuid::now_v7().to_string(), "outcome": "accepted"}]});
    let answer = http.post_json(&feedback_url, &unknown).await;
    assert_problem(&answer, 404, "/feedback/0/card", "unknown card");
}
