//! The queue, reports page and AuditEvent export routes over HTTP (oneshot, real PostgreSQL, the
//! real audit writer, real decisions from the fixture cases): who may call what (no token,
//! wrong role, admin), bad input named by field and recorded, injection strings as plain
//! values, the action round trip, and that each read is recorded.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use chrono::{DateTime, Duration, Utc};
use orderguard::audit::{self, AuditWriter, WriterConfig};
use orderguard::service::auth::SystemClock;
use orderguard::service::config::StaffApiKey;
use orderguard::service::staff::{Role, StaffBackend};
use serde_json::{Value, json};
use sha2::Digest;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

#[path = "../common/cases.rs"]
mod cases;

const PHARMACIST: &str = "ogk_test_pharmacist_5b8e1f";
const QUALITY: &str = "ogk_test_quality_93ac0d";
const ADMIN: &str = "ogk_test_admin_1e77b2";

fn key(name: &str, token: &str, role: Role) -> StaffApiKey {
    StaffApiKey {
        name: name.into(),
        sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
        roles: vec![role],
    }
}

struct App {
    app: TestApp,
    writer: AuditWriter,
    _spool: tempfile::TempDir,
}

async fn app(pool: &PgPool) -> App {
    let spool = tempfile::tempdir().unwrap();
    let mut writer_config = WriterConfig::new(spool.path().to_owned());
    writer_config.lanes = 1;
    writer_config.max_wait = std::time::Duration::from_millis(2);
    let writer = AuditWriter::start(pool.clone(), writer_config)
        .await
        .unwrap();
    let mut config = insecure_config();
    config.staff.api_keys = vec![
        key("pharmacist-1", PHARMACIST, Role::Pharmacist),
        key("quality-1", QUALITY, Role::Quality),
        key("admin-1", ADMIN, Role::Admin),
    ];
    let pipeline = Arc::new(TestPipeline::default());
    let router = orderguard::service::startup::router_with_staff(
        &config,
        pipeline.clone(),
        Some(StaffBackend {
            reports: pool.clone(),
            audit: writer.clone(),
        }),
        Arc::new(SystemClock),
    )
    .unwrap();
    App {
        app: TestApp { router, pipeline },
        writer,
        _spool: spool,
    }
}

/// One answer with its headers.
struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

impl App {
    async fn send(&self, request: Request<Body>) -> Reply {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = self.app.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    async fn finish(self, pool: &PgPool) {
        self.writer.shutdown().await;
        let report = audit::verify(pool, None, false).await.unwrap();
        assert!(report.is_clean(), "{report}");
    }
}

fn now() -> DateTime<Utc> {
    // Inside the reports' default 30-day window.
    Utc::now() - Duration::days(1)
}

async fn record(w: &AuditWriter, file: &str, patient: &str, minutes: i64) -> Uuid {
    let patient = patient.trim_start_matches("Patient/");
    cases::record_case(w, file, patient, now() + Duration::minutes(minutes))
        .await
        .decision_id
}

async fn seed(w: &AuditWriter) -> Vec<Uuid> {
    vec![
        record(w, "09-mme-90-oxycodone.json", "Patient/a", 0).await,
        record(w, "41-acetaminophen-4g-at-72.json", "Patient/b", 1).await,
        record(w, "03-bedrest-72h.json", "Patient/c", 2).await,
    ]
}

fn assert_problem(answer: &Reply, status: u16, field: Option<&str>, what: &str) {
    assert_eq!(
        answer.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{what}"
    );
    if let Some(field) = field {
        let body = answer.json();
        assert!(
            body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["path"] == field),
            "{what}: no error at {field} in {body}"
        );
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn every_route_needs_a_token_with_the_right_role_and_admin_passes(pool: PgPool) {
    let app = app(&pool).await;
    seed(&app.writer).await;
    let reads = [
        ("/v1/dosing-alerts", Some(QUALITY)),
        ("/pharmacy", Some(QUALITY)),
        ("/reports", Some(PHARMACIST)),
        ("/v1/audit-events", Some(PHARMACIST)),
    ];
    for (path, wrong) in reads {
        assert_problem(&app.get(path, None).await, 401, None, path);
        assert_problem(&app.get(path, Some("ogk_not_a_key")).await, 401, None, path);
        assert_problem(&app.get(path, wrong).await, 403, None, path);
        assert_eq!(app.get(path, Some(ADMIN)).await.status, 200, "{path}");
    }
    assert_eq!(app.get("/pharmacy", Some(PHARMACIST)).await.status, 200);
    assert_eq!(app.get("/reports", Some(QUALITY)).await.status, 200);
    assert_eq!(app.get("/v1/audit-events", Some(QUALITY)).await.status, 200);

    let alerts = app.get("/v1/dosing-alerts", Some(PHARMACIST)).await.json();
    let id = alerts["alerts"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/dosing-alerts/{id}/actions");
    let body = r#"{"action":"acknowledge"}"#;
    assert_problem(
        &app.post(&path, None, body).await,
        401,
        None,
        "action, no token",
    );
    assert_problem(
        &app.post(&path, Some(QUALITY), body).await,
        403,
        None,
        "action, quality",
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE kind LIKE 'dosing_alert.%'"
        )
        .await,
        0
    );
    assert_eq!(app.post(&path, Some(ADMIN), body).await.status, 201);

    // The stylesheet and script carry no data: no token needed.
    for asset in ["/static/orderguard.css", "/static/pharmacy.js"] {
        assert_eq!(app.get(asset, None).await.status, 200, "{asset}");
    }
    // Refusals are recorded (401 and 403 by the staff layer).
    assert!(count(&pool, "SELECT count(*) FROM rejected_requests").await >= 14);
    app.finish(&pool).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn the_queue_over_http_filters_and_acts_and_refuses_what_it_must(pool: PgPool) {
    let app = app(&pool).await;
    let ids = seed(&app.writer).await;
    let list = |q: &str| {
        let path = format!("/v1/dosing-alerts{q}");
        let app = &app;
        async move { app.get(&path, Some(PHARMACIST)).await }
    };
    let all = list("").await.json();
    let rules: Vec<&str> = all["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["DOSE-MAX-DAILY", "DOSE-MME-90"],
        "newest first, DOSE only"
    );
    assert_eq!(all["alerts"][0]["decision_id"], ids[1].to_string());
    assert_eq!(all["alerts"][0]["drug"], "acetaminophen");
    assert_eq!(all["alerts"][0]["limit"]["unit"], "mg/day");

    let rule = list("?rule=DOSE-MME-90").await.json();
    assert_eq!(rule["alerts"].as_array().unwrap().len(), 1);
    let patient = list("?patient=Patient%2Fb").await.json();
    assert_eq!(patient["alerts"][0]["rule_id"], "DOSE-MAX-DAILY");
    // Blank form fields are absent filters.
    assert_eq!(
        list("?status=&rule=&from=&to=").await.json()["alerts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    for evil in [
        "%27%20OR%20%271%27%3D%271",                           // ' OR '1'='1
        "DOSE-MME-90%27%3B%20DROP%20TABLE%20findings%3B%20--", // '; DROP TABLE findings; --
        "DOSE-%25",                                            // DOSE-%
    ] {
        for param in ["rule", "patient"] {
            let answer = list(&format!("?{param}={evil}")).await;
            assert_eq!(answer.status, 200, "{param}={evil}");
            assert_eq!(answer.json()["alerts"], json!([]), "{param}={evil}");
        }
        let html = app
            .get(&format!("/pharmacy?rule={evil}"), Some(PHARMACIST))
            .await;
        assert_eq!(html.status, 200);
        assert!(String::from_utf8_lossy(&html.body).contains("No dosing alerts match"));
        let bundle = app
            .get(&format!("/v1/audit-events?patient={evil}"), Some(QUALITY))
            .await
            .json();
        assert!(bundle.get("entry").is_none(), "patient={evil}: {bundle}");
        let reports = app
            .get(&format!("/reports?rule={evil}"), Some(QUALITY))
            .await;
        assert_eq!(reports.status, 200, "/reports?rule={evil}");
    }
    assert!(
        count(&pool, "SELECT count(*) FROM findings").await > 0,
        "the tables are intact"
    );

    for (query, field) in [
        ("?status=closed", "status"),
        ("?from=last-week", "from"),
        ("?limit=100000", "limit"),
        ("?sort=rule", "sort"),
        ("?from=2026-11-02&to=2026-11-01", "from"),
    ] {
        assert_problem(&list(query).await, 400, Some(field), query);
    }

    // The action round trip.
    let id = all["alerts"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/dosing-alerts/{id}/actions");
    let ack = app
        .post(
            &path,
            Some(PHARMACIST),
            r#"{"action":"acknowledge","note":"  calling  "}"#,
        )
        .await;
    assert_eq!(ack.status, 201, "{}", String::from_utf8_lossy(&ack.body));
    assert_eq!(ack.json()["status"], "acknowledged");
    let again = app
        .post(&path, Some(PHARMACIST), r#"{"action":"acknowledge"}"#)
        .await;
    assert_problem(&again, 409, Some("/action"), "acknowledging twice");
    let filtered = list("?status=acknowledged").await.json();
    assert_eq!(filtered["alerts"][0]["id"], id.as_str());
    assert_eq!(filtered["alerts"][0]["last_action"]["note"], "calling");
    assert_eq!(
        filtered["alerts"][0]["last_action"]["by"],
        "key:pharmacist-1"
    );

    let long_note = format!(r#"{{"action":"resolve","note":"{}"}}"#, "x".repeat(1001));
    for (body, status, field) in [
        (r#"{"action":"approve"}"#, 400, Some("/action")),
        (r#"{"note":"no action"}"#, 400, None),
        (r#"{"action":"resolve","extra":1}"#, 400, None),
        (long_note.as_str(), 400, Some("/note")),
        ("not json", 400, None),
    ] {
        assert_problem(
            &app.post(&path, Some(PHARMACIST), body).await,
            status,
            field,
            body,
        );
    }
    for bad in [
        format!("/v1/dosing-alerts/{}.0/actions", Uuid::now_v7()),
        format!("/v1/dosing-alerts/{}.0/actions", ids[2]),
        "/v1/dosing-alerts/not-an-id/actions".to_owned(),
    ] {
        let answer = app
            .post(&bad, Some(PHARMACIST), r#"{"action":"resolve"}"#)
            .await;
        assert_problem(&answer, 404, None, &bad);
    }
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE kind LIKE 'dosing_alert.%'"
        )
        .await,
        1,
        "only the accepted action is an event"
    );
    let refused = count(
        &pool,
        "SELECT count(*) FROM rejected_requests WHERE route IN ('/v1/dosing-alerts', \
         '/v1/dosing-alerts/{id}/actions')",
    )
    .await;
    assert_eq!(refused, 5 + 1 + 5 + 3, "each 4xx recorded");
    app.finish(&pool).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn pages_and_export_have_their_types_headers_and_recorded_reads(pool: PgPool) {
    let app = app(&pool).await;
    seed(&app.writer).await;
    // An order-sign call, so the alert-burden report has rows to chart.
    record(&app.writer, "49-cds-order-sign-opioid.json", "d", 3).await;
    let before = count(
        &pool,
        "SELECT count(*) FROM audit_events WHERE kind = 'staff.read'",
    )
    .await;

    let page = app.get("/pharmacy", Some(PHARMACIST)).await;
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert_eq!(html.matches("<tr data-alert=").count(), 3);
    assert!(html.contains("acetaminophen"));

    let reports = app.get("/reports", Some(QUALITY)).await;
    assert_eq!(reports.status, 200);
    let html = String::from_utf8_lossy(&reports.body).into_owned();
    assert!(html.contains("<svg"), "a chart on the reports page");
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no external asset"
    );
    assert_problem(
        &app.get("/reports?report=nope", Some(QUALITY)).await,
        400,
        Some("report"),
        "unknown report",
    );
    // Sorting by a column heading: one report at a time, by its own columns.
    let sorted = app
        .get("/reports?report=alert-burden&sort=-cards", Some(QUALITY))
        .await;
    assert_eq!(sorted.status, 200);
    assert!(String::from_utf8_lossy(&sorted.body).contains("Cards ▼"));
    assert_problem(
        &app.get("/reports?sort=cards", Some(QUALITY)).await,
        400,
        Some("sort"),
        "sorting all reports at once",
    );
    assert_problem(
        &app.get("/reports?report=alert-burden&sort=nope", Some(QUALITY))
            .await,
        400,
        Some("sort"),
        "sorting by a column the report lacks",
    );

    let export = app
        .get(
            "/v1/audit-events?patient=Patient%2Fa&_count=10",
            Some(QUALITY),
        )
        .await;
    assert_eq!(
        export.header("content-type").as_deref(),
        Some("application/fhir+json; fhirVersion=4.0")
    );
    let bundle = export.json();
    assert_eq!(
        orderguard::audit_export::validate_bundle(&bundle),
        Vec::<String>::new()
    );
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 1, "{bundle}");
    let paged = app
        .get("/v1/audit-events?_count=1", Some(QUALITY))
        .await
        .json();
    let next = paged["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("a next link");
    let next = app
        .get(next["url"].as_str().unwrap(), Some(QUALITY))
        .await
        .json();
    assert_ne!(
        next["entry"][0]["resource"]["id"],
        paged["entry"][0]["resource"]["id"]
    );
    for (query, field) in [
        ("?_count=0", "_count"),
        ("?from=2026-13-01", "from"),
        ("?subject=Patient%2Fa", "subject"),
    ] {
        assert_problem(
            &app.get(&format!("/v1/audit-events{query}"), Some(QUALITY))
                .await,
            400,
            Some(field),
            query,
        );
    }

    let reads: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM audit_events WHERE kind = 'staff.read' ORDER BY occurred_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(reads.len() as i64 - before, 6, "{reads:#?}");
    let routes: Vec<&str> = reads.iter().map(|r| r["route"].as_str().unwrap()).collect();
    assert!(routes.contains(&"/pharmacy") && routes.contains(&"/reports"));
    assert!(routes.contains(&"/v1/audit-events"));
    app.finish(&pool).await;
}
