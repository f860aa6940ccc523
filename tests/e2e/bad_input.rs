//! Requests the service must refuse: each answers a 4xx problem naming the field, is recorded in
//! `rejected_requests`, and leaves the service answering good requests.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Http, fixture, read_json, spawn_app};

struct Bad {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    status: u16,
    /// The field error's JSON pointer; `None` where the body has no field to name (JSON that
    /// does not parse), then the detail must say where it broke.
    field: Option<&'static str>,
}

fn good_request() -> Value {
    read_json(fixture("cases/49-cds-order-sign-opioid.json"))
}

fn with(mut request: Value, pointer: &str, value: Value) -> Vec<u8> {
    *request
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    serde_json::to_vec(&request).unwrap()
}

fn cases() -> Vec<Bad> {
    let good = good_request();
    let native = read_json(fixture("native/valid-vcf-full.json"));
    let mut truncated = serde_json::to_vec(&good).unwrap();
    truncated.truncate(truncated.len() / 2);
    vec![
        Bad {
            what: "malformed JSON (cut in half)",
            path: "/cds-services/vcf-order-sign",
            body: truncated,
            status: 400,
            field: None,
        },
        Bad {
            what: "malformed JSON (stray brace)",
            path: "/v1/validate",
            body: b"{\"patient\": {}}}".to_vec(),
            status: 400,
            field: None,
        },
        Bad {
            what: "patientId is a number",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/context/patientId", json!(42)),
            status: 400,
            field: Some("/context/patientId"),
        },
        Bad {
            what: "draftOrders is a string",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/context/draftOrders", json!("oxycodone")),
            status: 400,
            field: Some("/context/draftOrders"),
        },
        Bad {
            what: "hook is a number",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/hook", json!(7)),
            status: 400,
            field: Some("/hook"),
        },
        Bad {
            what: "unknown service id",
            path: "/cds-services/no-such-service",
            body: serde_json::to_vec(&good).unwrap(),
            status: 404,
            field: None,
        },
        Bad {
            what: "order-sign body sent to order-select",
            path: "/cds-services/vcf-order-select",
            body: serde_json::to_vec(&good).unwrap(),
            status: 400,
            field: Some("/hook"),
        },
        Bad {
            what: "patient-view hook sent to order-sign",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/hook", json!("patient-view")),
            status: 400,
            field: Some("/hook"),
        },
        Bad {
            what: "native: birth_date is a number",
            path: "/v1/validate",
            body: with(native.clone(), "/patient/birth_date", json!(1948)),
            status: 400,
            field: Some("/patient/birth_date"),
        },
        Bad {
            what: "native body is an array",
            path: "/v1/validate",
            body: b"[1, 2, 3]".to_vec(),
            status: 400,
            // The whole body is at fault: its field error has no `path` (never empty).
            field: None,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_recorded_and_the_service_keeps_serving() {
    let app = spawn_app().await;
    let http = Http::new();
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        let answer = http
            .post(&app.url(case.path), case.body.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert_eq!(answer.status, case.status, "{}: {text}", case.what);
        assert!(
            answer.content_type.starts_with("application/problem+json"),
            "{}: content type {:?}",
            case.what,
            answer.content_type
        );
        let body = answer.json();
        assert_eq!(body["status"], case.status, "{}: {body}", case.what);
        match case.field {
            Some(field) => {
                let paths: Vec<&str> = body["errors"]
                    .as_array()
                    .map(|e| e.iter().filter_map(|e| e["path"].as_str()).collect())
                    .unwrap_or_default();
                assert!(
                    paths.contains(&field),
                    "{}: no field error at {field:?} in {body}",
                    case.what
                );
            }
            None => assert!(
                body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{}: a problem without a field still says what was wrong: {body}",
                case.what
            ),
        }
        // CDS Hooks routes carry an OperationOutcome for FHIR-minded clients.
        if case.path.starts_with("/cds-services") {
            assert_eq!(
                body["operationOutcome"]["resourceType"], "OperationOutcome",
                "{}: {body}",
                case.what
            );
        }
        // Recorded before the answer, with its status.
        let recorded = wait_for_rejections(&app.pool, i as i64 + 1).await;
        assert_eq!(recorded, i as i64 + 1, "{}: not recorded", case.what);
        let (status, route): (i32, String) = sqlx::query_as(
            "SELECT status, route FROM rejected_requests ORDER BY rejected_at DESC LIMIT 1",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(status as u16, case.status, "{}", case.what);
        assert!(!route.is_empty(), "{}", case.what);
    }

    // No decision came of any of them, and a good request is still answered.
    assert_eq!(app.count("SELECT count(*) FROM decisions").await, 0);
    let answer = http
        .post_json(&app.url("/cds-services/vcf-order-sign"), &good_request())
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(app.count("SELECT count(*) FROM decisions").await, 1);
    let health = http.get(&app.url("/healthz")).await.unwrap();
    assert_eq!(health.status, 200);
}

/// Rejections are recorded through the writer; wait briefly for `at_least` rows.
async fn wait_for_rejections(pool: &sqlx::PgPool, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rejected_requests")
            .fetch_one(pool)
            .await
            .unwrap();
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
