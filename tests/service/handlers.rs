use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use orderguard::decision::{Evaluation, Finding, Severity, Texts};
use orderguard::service::Readiness;
use serde_json::{Value, json};

use crate::support::*;

const SIGN: &str = "/cds-services/vcf-order-sign";
const SELECT: &str = "/cds-services/vcf-order-select";

fn spec_order_sign_request() -> Value {
    read_json(
        shared_dir()
            .join("conformance/cds-hooks/hooks-library/order-sign-request-R4-composed.json"),
    )
}

fn assert_problem(answer: &Answer, status: StatusCode, with_outcome: bool) -> Value {
    assert_eq!(
        answer.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/problem+json")
    );
    let body = answer.json();
    assert_no_empty(&body);
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:orderguard:problem:")
    );
    assert!(body["title"].is_string());
    assert_eq!(
        body.get("operationOutcome").is_some(),
        with_outcome,
        "{body}"
    );
    if with_outcome {
        assert_eq!(body["operationOutcome"]["resourceType"], "OperationOutcome");
    }
    body
}

fn first_error_path(body: &Value) -> &str {
    body["errors"][0]["path"].as_str().unwrap()
}

#[tokio::test]
async fn discovery_has_the_spec_shape_and_our_prefetch() {
    let app = app();
    let answer = app.get("/cds-services").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_no_empty(&body);

    // Every member we send is one the spec's own example uses, with the same JSON type.
    let spec = read_json(spec_file("discovery-response.json"));
    let spec_members: BTreeSet<&str> = spec["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
        .collect();
    let services = body["services"].as_array().unwrap();
    let hooks: BTreeSet<&str> = services
        .iter()
        .map(|s| s["hook"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, BTreeSet::from(["order-select", "order-sign"]));
    for service in services {
        for (member, value) in service.as_object().unwrap() {
            assert!(
                spec_members.contains(member.as_str()),
                "{member} not in the spec"
            );
            let spec_value = &spec["services"][1][member];
            assert_eq!(value.is_string(), spec_value.is_string(), "{member}");
            assert_eq!(value.is_object(), spec_value.is_object(), "{member}");
        }
        for required in ["hook", "description", "id"] {
            assert!(service[required].is_string(), "{required}");
        }
        let prefetch = service["prefetch"].as_object().unwrap();
        let templates: Vec<&str> = prefetch.values().map(|v| v.as_str().unwrap()).collect();
        assert!(
            templates
                .iter()
                .all(|t| t.contains("{{context.patientId}}"))
        );
        assert_eq!(prefetch["patient"], "Patient/{{context.patientId}}");
        for resource in [
            "Condition?",
            "MedicationRequest?",
            "ServiceRequest?",
            "DiagnosticReport?",
        ] {
            assert!(
                templates.iter().any(|t| t.starts_with(resource)),
                "{resource}"
            );
        }
        for loinc in [
            "98979-8", "62238-1", "33914-3", "35591-7", "2164-2", "17861-6", "62292-8", "1989-3",
        ] {
            assert!(
                templates
                    .iter()
                    .any(|t| t.contains(&format!("http://loinc.org|{loinc}"))),
                "LOINC {loinc} not prefetched"
            );
        }
        assert!(
            templates
                .iter()
                .any(|t| t.starts_with("Condition?") && t.contains("clinical-status=active"))
        );
    }
}

#[tokio::test]
async fn order_sign_with_the_spec_request_answers_cards_with_no_empty_fields() {
    let app = app();
    let answer = app.post(SIGN, spec_order_sign_request().to_string()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    let body = answer.json();
    assert_no_empty(&body);
    for card in body["cards"].as_array().unwrap() {
        assert!(card["summary"].as_str().unwrap().chars().count() < 140);
    }
    assert_eq!(app.pipeline.rejection_count(), 0);
}

#[tokio::test]
async fn a_missing_field_is_named_in_the_problem_and_its_operation_outcome() {
    let app = app();
    let mut request = spec_order_sign_request();
    request["context"]
        .as_object_mut()
        .unwrap()
        .remove("patientId");
    let answer = app.post(SIGN, request.to_string()).await;
    let body = assert_problem(&answer, StatusCode::BAD_REQUEST, true);
    assert_eq!(first_error_path(&body), "/context/patientId");
    let issue = &body["operationOutcome"]["issue"][0];
    assert_eq!(issue["expression"][0], "/context/patientId");
    assert_eq!(issue["severity"], "error");
}

#[tokio::test]
async fn malformed_json_and_a_wrong_hook_are_400s() {
    let app = app();
    let answer = app.post(SIGN, "{\"hook\": ").await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, true);

    let mut request = spec_order_sign_request();
    request["hook"] = json!("order-sign");
    let answer = app.post(SELECT, request.to_string()).await;
    let body = assert_problem(&answer, StatusCode::BAD_REQUEST, true);
    assert_eq!(first_error_path(&body), "/hook");
}

#[tokio::test]
async fn an_unknown_service_is_a_404_problem() {
    let app = app();
    let answer = app.post("/cds-services/patient-greeter", "{}").await;
    assert_problem(&answer, StatusCode::NOT_FOUND, true);
    let answer = app
        .post("/cds-services/patient-greeter/feedback", "{}")
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND, true);
    assert_eq!(app.pipeline.rejection_count(), 2);
    let rejection = &app.pipeline.rejections.lock().unwrap()[0];
    assert_eq!(rejection.service_id.as_deref(), Some("patient-greeter"));
    assert_eq!(rejection.route, "/cds-services/{id}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_streamed() {
    let mut config = insecure_config();
    config.limits.max_body_bytes = 1024;
    let app = app_with(&config);
    let big = format!(
        "{{\"hook\":\"order-sign\",\"pad\":\"{}\"}}",
        "x".repeat(2000)
    );

    let declared = Request::post(SIGN)
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    assert_problem(
        &app.send(declared).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        true,
    );

    let streamed = app.post(SIGN, big.clone()).await;
    assert_problem(&streamed, StatusCode::PAYLOAD_TOO_LARGE, true);

    let native = app.post("/v1/validate", big).await;
    assert_problem(&native, StatusCode::PAYLOAD_TOO_LARGE, false);
    assert_eq!(app.pipeline.rejection_count(), 3);
    assert_eq!(
        app.pipeline
            .decisions
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn nesting_too_deep_is_refused_before_parsing_and_the_path_is_named() {
    let app = app();
    // Deeper than the default limit (64) and than serde_json's own recursion limit (128).
    let deep = format!(
        "{{\"hook\":\"order-sign\",\"context\":{{\"draftOrders\":{}{}}}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let answer = app.post(SIGN, deep).await;
    let body = assert_problem(&answer, StatusCode::BAD_REQUEST, true);
    let path = first_error_path(&body);
    assert!(path.starts_with("/context/draftOrders/0/0/"), "{path}");
    assert_eq!(path.split('/').count() - 1, 64);
    assert_eq!(body["type"], "urn:orderguard:problem:nesting-too-deep");
}

#[tokio::test]
async fn missing_prefetch_the_client_cannot_supply_is_412_naming_the_key() {
    let app = app();
    let mut request = spec_order_sign_request();
    request.as_object_mut().unwrap().remove("fhirServer");
    let answer = app.post(SIGN, request.to_string()).await;
    let body = assert_problem(&answer, StatusCode::PRECONDITION_FAILED, true);
    assert_eq!(first_error_path(&body), "/prefetch/renalFunction");
    assert_eq!(body["operationOutcome"]["issue"][0]["code"], "incomplete");
}

#[tokio::test]
async fn an_audit_outage_is_503_and_not_a_rejection() {
    let app = app();
    let mut request = spec_order_sign_request();
    request["x-test-audit"] = json!("down");
    let answer = app.post(SIGN, request.to_string()).await;
    let body = assert_problem(&answer, StatusCode::SERVICE_UNAVAILABLE, true);
    assert_eq!(body["operationOutcome"]["issue"][0]["severity"], "fatal");
    assert_eq!(app.pipeline.rejection_count(), 0);
}

#[tokio::test]
async fn every_rejection_is_recorded_with_a_digest_never_the_body_and_service_keeps_serving() {
    let app = app();
    let secret_name = "Margaret Hamilton-Smythe";
    let bad_bodies = [
        format!("{{\"hook\": \"order-sign\", \"note\": \"{secret_name}\""),
        json!({"hook": "order-sign", "context": {"name": secret_name}}).to_string(),
        "[".repeat(100),
        String::new(),
    ];
    for body in &bad_bodies {
        let answer = app.post(SIGN, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    }
    let unknown = app.post("/cds-services/nope", "{}").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad_feedback = app
        .post("/cds-services/vcf-order-sign/feedback", "{}")
        .await;
    assert_eq!(bad_feedback.status, StatusCode::BAD_REQUEST);
    let bad_native = app.post("/v1/validate", "{\"orders\": 3}").await;
    assert_eq!(bad_native.status, StatusCode::BAD_REQUEST);

    let rejections = app.pipeline.rejections.lock().unwrap().clone();
    assert_eq!(rejections.len(), bad_bodies.len() + 3);
    for rejection in &rejections {
        let recorded = serde_json::to_string(rejection).unwrap();
        assert!(!recorded.contains(secret_name), "{recorded}");
        assert!((400..500).contains(&rejection.status));
    }
    let digest = rejections[1].body.as_ref().unwrap();
    assert_eq!(digest.sha256.len(), 64);
    assert_eq!(digest.total_bytes, bad_bodies[1].len());

    let answer = app.post(SIGN, spec_order_sign_request().to_string()).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn feedback_from_the_spec_examples_is_accepted_and_an_unknown_card_is_404() {
    let app = app();
    for example in [
        "feedback-accepted.json",
        "feedback-overridden-with-reason.json",
        "feedback-overridden-no-reason.json",
    ] {
        let body = read_json(spec_file(example)).to_string();
        let answer = app
            .post("/cds-services/vcf-order-sign/feedback", body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{example}");
        assert!(answer.bytes.is_empty(), "feedback answers have no body");
        // Repeated feedback is recorded again, not refused.
        let again = app
            .post("/cds-services/vcf-order-sign/feedback", body)
            .await;
        assert_eq!(again.status, StatusCode::OK, "{example} repeated");
    }
    assert_eq!(
        app.pipeline
            .feedbacks
            .load(std::sync::atomic::Ordering::SeqCst),
        6
    );

    let unknown = json!({"feedback": [{"card": "no-such-card", "outcome": "accepted",
        "acceptedSuggestions": [{"id": "x"}], "outcomeTimestamp": "2021-12-11T10:05:31Z"}]});
    let answer = app
        .post("/cds-services/vcf-order-sign/feedback", unknown.to_string())
        .await;
    let body = assert_problem(&answer, StatusCode::NOT_FOUND, true);
    assert_eq!(first_error_path(&body), "/feedback/0/card");
}

#[tokio::test]
async fn native_validation_answers_the_decision_and_plain_problems() {
    let app = app();
    let answer = app
        .post("/v1/validate", json!({"orders": []}).to_string())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = app
        .post("/v1/validate", json!({"orders": {}}).to_string())
        .await;
    let body = assert_problem(&answer, StatusCode::BAD_REQUEST, false);
    assert_eq!(first_error_path(&body), "/orders");
}

#[tokio::test]
async fn health_and_readiness_follow_the_pipeline() {
    let app = app();
    let answer = app.get("/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_no_empty(&answer.json());

    assert_eq!(app.get("/readyz").await.json()["status"], "ready");
    *app.pipeline.readiness.lock().unwrap() = Some(Readiness::Degraded {
        reason: "PostgreSQL unreachable; spooling to disk".into(),
    });
    let answer = app.get("/readyz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "degraded");
    *app.pipeline.readiness.lock().unwrap() = Some(Readiness::NotReady {
        reason: "spool not writable".into(),
    });
    let answer = app.get("/readyz").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["status"], "not-ready");
    assert_no_empty(&answer.json());
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_findings_per_rule() {
    let app = app();
    app.post(SIGN, spec_order_sign_request().to_string()).await;
    app.post(SIGN, "{").await;
    orderguard::service::metrics::record_decision(&Evaluation {
        findings: vec![Finding {
            rule_id: "ACT-BEDREST".into(),
            severity: Severity::Warning,
            order_ref: None,
            texts: Texts::new("s", "d"),
            numbers: Default::default(),
            labels: Default::default(),
            suggestions: vec![],
            citations: Default::default(),
        }],
        ..Evaluation::default()
    });
    orderguard::service::metrics::set_audit_queue_depth(3);
    let answer = app.get("/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = String::from_utf8(answer.bytes.to_vec()).unwrap();
    assert!(
        text.contains(r#"orderguard_http_requests_total{route="/cds-services/{id}",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="/cds-services/{id}",status="400""#));
    assert!(text.contains("orderguard_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"orderguard_findings_total{rule="ACT-BEDREST",severity="warning"}"#));
    assert!(text.contains("orderguard_audit_queue_depth 3"));
    // No raw paths or ids as labels.
    assert!(!text.contains("vcf-order-sign"));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = app();
    let answer = app.get("/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert!(body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/cds-services",
        "/cds-services/{id}",
        "/cds-services/{id}/feedback",
        "/v1/validate",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/reports",
        "/v1/reports/{name}",
        "/v1/admin/pathway/reload",
        "/v1/dosing-alerts",
        "/v1/dosing-alerts/{id}/actions",
        "/pharmacy",
        "/reports",
        "/v1/audit-events",
    ] {
        assert!(body["paths"][path].is_object(), "{path} missing");
    }
    // The staff routes name the bearer scheme, and the document defines it.
    assert_eq!(
        body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let reload = &body["paths"]["/v1/admin/pathway/reload"]["post"];
    assert!(reload["security"][0]["bearer"].is_array(), "{reload}");
    assert!(reload["responses"]["403"].is_object());
    let queue: Vec<&str> = body["paths"]["/v1/dosing-alerts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(queue, ["status", "rule", "from", "to", "patient", "limit"]);
}

#[tokio::test]
async fn a_request_over_the_timeout_is_cut_off() {
    let mut config = insecure_config();
    config.limits.request_timeout_ms = 50;
    let app = app_with(&config);
    *app.pipeline.delay.lock().unwrap() = Some(Duration::from_millis(500));
    let answer = app.post(SIGN, spec_order_sign_request().to_string()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    *app.pipeline.delay.lock().unwrap() = None;
    let answer = app.post(SIGN, spec_order_sign_request().to_string()).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn a_path_that_is_no_route_is_a_404_problem_not_recorded() {
    let app = app();
    let answer = app.get("/wp-admin").await;
    assert_problem(&answer, StatusCode::NOT_FOUND, false);
    assert_eq!(app.pipeline.rejection_count(), 0);
}
