//! The security review's checks on the staff routes (issue 7): every staff route refuses a
//! request without a token (401) and a token without its role (403), each refusal recorded; and
//! every report filter, and `sort`, is inert against SQL injection (bound parameters, never
//! spliced). The JWT refusal classes of the CDS Hooks routes are in `jwt.rs`
//! (`each_bad_token_is_refused_for_its_own_reason`).

use axum::http::StatusCode;
use orderguard::reports::ReportName;
use sqlx::PgPool;

use crate::staff::{PHARMACIST_KEY, QUALITY_KEY, decision, staff_app};
use orderguard::audit::{FeedbackOutcome, FeedbackRecord};
use orderguard::decision::Severity;

/// Every staff route with a token that lacks its role. The reports are enumerated from the
/// catalog of the code ([`ReportName::ALL`]); routes of other staff modules are listed here as
/// they land (the pharmacist queue takes the quality key as its wrong role).
fn staff_routes() -> Vec<(String, &'static str)> {
    use orderguard::web::routes::{
        ALERTS_ROUTE, AUDIT_EVENTS_ROUTE, PHARMACY_ROUTE, REPORTS_PAGE_ROUTE,
    };
    let mut routes = vec![("/v1/reports".to_owned(), PHARMACIST_KEY)];
    for name in ReportName::ALL {
        routes.push((format!("/v1/reports/{}", name.as_str()), PHARMACIST_KEY));
    }
    routes.extend([
        (ALERTS_ROUTE.to_owned(), QUALITY_KEY),
        (PHARMACY_ROUTE.to_owned(), QUALITY_KEY),
        (REPORTS_PAGE_ROUTE.to_owned(), PHARMACIST_KEY),
        (AUDIT_EVENTS_ROUTE.to_owned(), PHARMACIST_KEY),
    ]);
    routes
}

/// The one staff route that takes a body: a pharmacist's action on an alert.
async fn post_action(
    staff: &crate::staff::StaffApp,
    token: Option<&str>,
) -> crate::support::Answer {
    use axum::body::Body;
    use axum::http::{Request, header};
    let path = orderguard::web::routes::ACTION_ROUTE
        .replace("{id}", "0190f000-0000-7000-8000-000000000000");
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    staff
        .app
        .send(
            request
                .body(Body::from(r#"{"action":"acknowledge"}"#))
                .unwrap(),
        )
        .await
}

#[sqlx::test(migrations = "./migrations")]
async fn every_staff_route_refuses_no_token_and_the_wrong_role(pool: PgPool) {
    let staff = staff_app(&pool).await;
    let routes = staff_routes();
    for (route, wrong_key) in &routes {
        let none = staff.get(route, None).await;
        assert_eq!(
            none.status,
            StatusCode::UNAUTHORIZED,
            "{route} without a token"
        );
        let bad = staff.get(route, Some("ogk_not_a_key_at_all")).await;
        assert_eq!(
            bad.status,
            StatusCode::UNAUTHORIZED,
            "{route} with an unknown key"
        );
        let wrong = staff.get(route, Some(wrong_key)).await;
        assert_eq!(
            wrong.status,
            StatusCode::FORBIDDEN,
            "{route} with the wrong role"
        );
        for answer in [&none, &bad, &wrong] {
            assert_eq!(
                answer.content_type.as_deref(),
                Some("application/problem+json"),
                "{route}"
            );
        }
    }
    let none = post_action(&staff, None).await;
    assert_eq!(
        none.status,
        StatusCode::UNAUTHORIZED,
        "POST action without a token"
    );
    let wrong = post_action(&staff, Some(QUALITY_KEY)).await;
    assert_eq!(
        wrong.status,
        StatusCode::FORBIDDEN,
        "POST action with the wrong role"
    );
    // Recorded: three refusals per GET route and two for the action (through the writer).
    let expected = 3 * routes.len() as i64 + 2;
    let mut recorded = 0;
    for _ in 0..100 {
        recorded = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM rejected_requests WHERE status IN (401, 403)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if recorded >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(recorded, expected);
    staff.finish(&pool).await;
}

/// Values an attacker puts in a filter to reach the SQL.
const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "x'; DROP TABLE decisions; --",
    "1 UNION SELECT decision_id::text FROM decisions --",
    "\\'; SELECT pg_sleep(5); --",
    "%' OR rule_id LIKE '%",
];

#[sqlx::test(migrations = "./migrations")]
async fn every_report_filter_and_sort_is_inert_against_sql_injection(pool: PgPool) {
    let staff = staff_app(&pool).await;
    // One decision in the window, so that an injected `OR true` would show as rows.
    let at = chrono::DateTime::parse_from_rfc3339("2026-06-02T10:00:00Z")
        .unwrap()
        .to_utc();
    // Findings, numbers, a missing input and feedback of each kind, so that every report has
    // at least one row to leak.
    let mut record = decision(
        at,
        "order-sign",
        &[
            ("VCF-BEDREST", Severity::Warning),
            ("VCF-AUGMENT-TIMING", Severity::Warning),
            ("DOSE-MME-50", Severity::Warning),
        ],
    );
    record.findings[2].numbers = serde_json::json!({"mme_per_day": 60, "threshold": 50});
    record.missing_inputs = serde_json::json!([{"input": "egfr", "rules": ["DOSE-RENAL"]}]);
    let cards: Vec<_> = record.findings.iter().map(|f| f.card_uuid).collect();
    let decision_id = record.decision_id;
    staff.writer.record(record).await.unwrap();
    for (card, outcome, reason) in [
        (
            cards[0],
            FeedbackOutcome::Overridden,
            Some("patient-declined"),
        ),
        (cards[1], FeedbackOutcome::Accepted, None),
    ] {
        staff
            .writer
            .record_feedback(FeedbackRecord {
                card_uuid: card.expect("a card uuid"),
                decision_id: Some(decision_id),
                outcome,
                accepted_suggestions: if reason.is_none() {
                    vec!["0".into()]
                } else {
                    vec![]
                },
                override_reason_code: reason.map(Into::into),
                override_comment: None,
                outcome_at: at + chrono::Duration::minutes(1),
                client_id: None,
            })
            .await
            .unwrap();
    }
    for name in ReportName::ALL {
        let all = format!(
            "/v1/reports/{}?from=2026-01-01&to=2026-12-31",
            name.as_str()
        );
        let rows = staff.get(&all, Some(QUALITY_KEY)).await.json()["rows"].clone();
        assert!(
            rows.as_array().is_some_and(|r| !r.is_empty()),
            "{all}: the seeded decision shows without a filter: {rows}"
        );
    }
    let mut tried = 0;
    for name in ReportName::ALL {
        for filter in name.filters() {
            for injection in INJECTIONS {
                let value: String = url_encode(injection);
                let path = format!(
                    "/v1/reports/{}?from=2026-01-01&to=2026-12-31&{}={value}",
                    name.as_str(),
                    filter.param()
                );
                let started = std::time::Instant::now();
                let answer = staff.get(&path, Some(QUALITY_KEY)).await;
                // Either a value that matches nothing (200, no rows) or a refused value
                // (400 naming the parameter): never a database error, never rows.
                match answer.status {
                    StatusCode::OK => assert_eq!(
                        answer.json()["rows"],
                        serde_json::json!([]),
                        "{path} matched rows"
                    ),
                    StatusCode::BAD_REQUEST => {
                        assert!(answer.json().to_string().contains(filter.param()), "{path}")
                    }
                    other => panic!(
                        "{path}: {other} {:?}",
                        String::from_utf8_lossy(&answer.bytes)
                    ),
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(4),
                    "{path}: pg_sleep ran"
                );
                tried += 1;
            }
        }
        for injection in INJECTIONS {
            let path = format!(
                "/v1/reports/{}?sort={}",
                name.as_str(),
                url_encode(injection)
            );
            let answer = staff.get(&path, Some(QUALITY_KEY)).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
            tried += 1;
        }
    }
    assert!(tried >= INJECTIONS.len() * 2, "filters were enumerated");
    // The tables are all there.
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(decisions, 1);
    staff.finish(&pool).await;
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Slow loris on a real socket: a client that trickles header lines is dropped at the header
/// deadline, one that trickles its body is answered 503 at the request timeout and closed, and
/// the service answers others meanwhile. (`axum::serve` had no header deadline: the header
/// trickler held its connection for as long as it liked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_trickling_headers_or_body_are_dropped_and_others_are_served() {
    use orderguard::service::Application;
    use orderguard::service::startup::HEADER_READ_TIMEOUT;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let mut config = crate::support::insecure_config();
    config.limits.request_timeout_ms = 1_000;
    let pipeline = std::sync::Arc::new(crate::support::TestPipeline::default());
    let app = Application::build(&config, pipeline).await.unwrap();
    let address = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    /// Writes `head`, then `drip` every 200 ms until the server closes; how long that took and
    /// what it answered.
    async fn trickle(
        address: std::net::SocketAddr,
        head: &'static [u8],
        drip: &'static [u8],
    ) -> (Duration, String) {
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while started.elapsed() < Duration::from_secs(30) {
            if stream.write_all(drip).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    }
    let headers = tokio::spawn(trickle(
        address,
        b"POST /v1/validate HTTP/1.1\r\nHost: x\r\n",
        b"X-Slow: 1\r\n",
    ));
    let body = tokio::spawn(trickle(
        address,
        b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
        b" ",
    ));
    // Served meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut plain = TcpStream::connect(address).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut healthy = String::new();
    plain.read_to_string(&mut healthy).await.unwrap();
    assert!(healthy.starts_with("HTTP/1.1 200"), "{healthy}");

    let (took, answer) = headers.await.unwrap();
    assert!(
        took >= HEADER_READ_TIMEOUT && took < HEADER_READ_TIMEOUT + Duration::from_secs(5),
        "header trickler dropped after {took:?}: {answer:?}"
    );
    let (took, answer) = body.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        took < Duration::from_secs(5),
        "body trickler cut after {took:?}"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}
