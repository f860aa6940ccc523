//! The real-browser test: headless Chromium (Debian's `chromium`, installed by
//! `scripts/ensure-chromium.sh` when missing) loads `/reports` and `/pharmacy` from the real
//! `orderguard serve` on real PostgreSQL, seeded with real decisions through `/v1/validate`.
//! It checks that the charts render (SVG present, lines and bars drawn), that the page logs no
//! console error, exception, CSP violation or failed load, and that clicking a queue action
//! records the event row. Screenshots (and the DOM) are saved under
//! `target/tmp/browser-artifacts/`.

use std::path::PathBuf;
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cdp::Browser;
#[path = "../common/cases.rs"]
mod cases;
use crate::support::{Http, Server, TestDatabase, fixture, read_json};

/// CDS Hooks order-sign cases recorded in each of the three weeks (a few of each).
const ORDER_SIGN_CASES: &[&str] = &[
    "49-cds-order-sign-opioid.json",
    "48-cds-order-sign-bedrest-72h.json",
];

/// The native fixture cases seeded through `/v1/validate`, each in three weeks.
const CASES: &[&str] = &[
    "09-mme-90-oxycodone.json",
    "10-mme-50-morphine.json",
    "16-opioid-with-benzodiazepine.json",
    "39-alendronate-egfr-30.json",
    "41-acetaminophen-4g-at-72.json",
    "43-calcium-over-upper-limit.json",
    "03-bedrest-72h.json",
    "35-no-calcium.json",
];

pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact folder");
    dir
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

struct Staff {
    server: Server,
    pool: sqlx::PgPool,
    pharmacist: String,
    quality: String,
    _dir: tempfile::TempDir,
    _db: TestDatabase,
}

/// The server with two staff API keys (pharmacist, quality) and seeded decisions.
async fn staff_server() -> Staff {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let pharmacist = format!("ph-{}", uuid::Uuid::now_v7().simple());
    let quality = format!("qa-{}", uuid::Uuid::now_v7().simple());
    let config = json!({
        "staff": {"api_keys": [
            {"name": "pharmacist-1", "sha256": sha256_hex(&pharmacist), "roles": ["pharmacist"]},
            {"name": "quality-1", "sha256": sha256_hex(&quality), "roles": ["quality"]},
        ]}
    });
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let server = Server::start_with(
        &db.url,
        dir.path(),
        &["--config".as_ref(), config_path.as_os_str()],
    )
    .await;
    let http = Http::new();
    // Three weeks of the same cases, a week apart, as three patients each.
    let base: chrono::DateTime<chrono::Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    for week in 0..3i64 {
        for (i, case) in CASES.iter().enumerate() {
            let mut body = read_json(fixture("cases").join(case));
            let at = base - chrono::Duration::days(7 * week) + chrono::Duration::minutes(i as i64);
            body["evaluated_at"] = json!(at.to_rfc3339());
            body["patient"]["reference"] = json!(format!("Patient/w{week}-{i}"));
            let answer = http.post_json(&server.url("/v1/validate"), &body).await;
            assert_eq!(
                answer.status,
                200,
                "{case}: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .unwrap();
    // CDS Hooks order-sign calls in the same three weeks, for the alert-burden trend: the
    // service evaluates those at the time of the call, so they are recorded here, through a
    // writer of their own (its own chain), the way the service records them.
    let spool = tempfile::tempdir().unwrap();
    let mut writer_config = orderguard::audit::WriterConfig::new(spool.path().to_owned());
    writer_config.lanes = 1;
    let writer = orderguard::audit::AuditWriter::start(pool.clone(), writer_config)
        .await
        .unwrap();
    for week in 0..3i64 {
        for (i, case) in ORDER_SIGN_CASES.iter().enumerate() {
            for n in 0..=(week as usize + i) {
                let at = base - chrono::Duration::days(7 * week)
                    + chrono::Duration::minutes(30 + n as i64);
                cases::record_case(&writer, case, &format!("cds-w{week}-{i}-{n}"), at).await;
            }
        }
    }
    writer.shutdown().await;
    Staff {
        server,
        pool,
        pharmacist,
        quality,
        _dir: dir,
        _db: db,
    }
}

fn assert_clean(browser: &Browser, page: &str) {
    assert!(
        browser.log.errors.is_empty(),
        "{page}: the browser logged errors: {:#?}",
        browser.log.errors
    );
    assert!(
        browser.log.failed_responses.is_empty(),
        "{page}: failed responses: {:#?}",
        browser.log.failed_responses
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_reports_and_the_queue_and_a_click_records_the_action() {
    let staff = staff_server().await;
    let out = artifacts();
    let base = staff.server.base_url.clone();

    // Without a token the pages are refused (the proxy / SSO must supply one).
    let http = Http::new();
    let anonymous = http.get(&format!("{base}/pharmacy")).await.unwrap();
    assert_eq!(anonymous.status, 401);
    let quality_on_queue = http
        .send_with(
            Method::GET,
            &format!("{base}/pharmacy"),
            Default::default(),
            &[("authorization", &format!("Bearer {}", staff.quality))],
        )
        .await
        .unwrap();
    assert_eq!(quality_on_queue.status, 403);

    let quality = staff.quality.clone();
    let pharmacist = staff.pharmacist.clone();
    let dose_findings: i64 =
        sqlx::query_scalar("SELECT count(*) FROM findings WHERE rule_id LIKE 'DOSE-%'")
            .fetch_one(&staff.pool)
            .await
            .unwrap();
    assert!(
        dose_findings >= 3 * 6,
        "seeded {dose_findings} DOSE findings"
    );

    let reports_url = format!("{base}/reports?from=2026-11-01&to=2026-11-30");
    let pharmacy_url = format!("{base}/pharmacy");
    let out2 = out.clone();
    // The browser is blocking IO: its own thread, while the server runs on the runtime.
    let (reports, queue, clicked) = tokio::task::spawn_blocking(move || {
        let out = out2;
        let mut browser = Browser::launch(1280, 900);

        // Reports: charts drawn on the server, present as SVG in the DOM.
        browser.set_headers(json!({"Authorization": format!("Bearer {quality}")}));
        browser.goto(&reports_url);
        browser.settle(Duration::from_millis(300));
        let reports = browser.eval(
            "({sections: document.querySelectorAll('section.report').length, \
              charts: document.querySelectorAll('svg.chart').length, \
              lines: document.querySelectorAll('svg.line-chart polyline').length, \
              points: document.querySelectorAll('svg.line-chart circle').length, \
              bars: document.querySelectorAll('svg.bar-chart rect.bar').length, \
              tables: document.querySelectorAll('table.report-table').length, \
              chartWidth: (document.querySelector('svg.chart') || {getBoundingClientRect: () => ({width: 0})}).getBoundingClientRect().width, \
              css: getComputedStyle(document.querySelector('header')).backgroundColor})",
        );
        std::fs::write(
            out.join("reports.html"),
            browser.eval("document.documentElement.outerHTML").as_str().unwrap_or_default(),
        )
        .unwrap();
        browser.screenshot(&out.join("reports.png"));
        assert_clean(&browser, "/reports");

        // The queue, as a pharmacist.
        browser.set_headers(json!({"Authorization": format!("Bearer {pharmacist}")}));
        browser.goto(&pharmacy_url);
        browser.settle(Duration::from_millis(300));
        let queue = browser.eval(
            "({rows: document.querySelectorAll('#queue tbody tr').length, \
              open: document.querySelectorAll('#queue tr[data-status=open]').length, \
              first: document.querySelector('#queue tbody tr').dataset.alert, \
              firstDrug: document.querySelector('#queue tbody tr td:nth-child(3)').textContent})",
        );
        browser.screenshot(&out.join("pharmacy.png"));
        assert_clean(&browser, "/pharmacy");

        // Acknowledge the newest alert with a note: a real click on the button.
        let id = queue["first"].as_str().unwrap().to_owned();
        let row = format!("#queue tr[data-alert=\"{id}\"]");
        browser.type_into(&format!("{row} input[name=note]"), "checked with the prescriber");
        browser.pending_clear_load();
        browser.click(&format!("{row} button[data-action=acknowledge]"));
        // The script reloads the page once the action is recorded.
        browser.wait_event("Page.loadEventFired", Duration::from_secs(20));
        browser.settle(Duration::from_millis(300));
        let after = browser.eval(&format!(
            "document.querySelector({}).dataset.status",
            serde_json::to_string(&row).unwrap()
        ));
        browser.screenshot(&out.join("pharmacy-after-acknowledge.png"));
        assert_clean(&browser, "/pharmacy after the click");
        (reports, queue, json!({"id": id, "status": after}))
    })
    .await
    .unwrap();

    // The reports page: every report a section with a table, and charts with drawn marks.
    let sections = reports["sections"].as_i64().unwrap();
    assert_eq!(
        sections,
        orderguard::reports::ReportName::ALL.len() as i64,
        "{reports}"
    );
    assert!(reports["charts"].as_i64().unwrap() >= 1, "{reports}");
    assert!(
        reports["lines"].as_i64().unwrap() >= 1,
        "a trend line: {reports}"
    );
    assert!(reports["points"].as_i64().unwrap() >= 3, "{reports}");
    assert!(reports["tables"].as_i64().unwrap() >= 1, "{reports}");
    assert!(reports["chartWidth"].as_f64().unwrap() > 300.0, "{reports}");
    assert_eq!(
        reports["css"], "rgb(11, 61, 99)",
        "the stylesheet applied: {reports}"
    );

    // The queue shows every DOSE finding, all open at first.
    assert_eq!(queue["rows"].as_i64().unwrap(), dose_findings, "{queue}");
    assert_eq!(queue["open"].as_i64().unwrap(), dose_findings, "{queue}");
    assert_ne!(queue["firstDrug"], "—", "{queue}");

    // The click was recorded: one appended event row, by the key's subject, with the note.
    assert_eq!(clicked["status"], "acknowledged", "{clicked}");
    let key = orderguard::pharmacy::AlertKey::parse(clicked["id"].as_str().unwrap()).unwrap();
    let rows: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT kind, actor, payload FROM audit_events WHERE kind LIKE 'dosing_alert.%'",
    )
    .fetch_all(&staff.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "dosing_alert.acknowledged");
    assert_eq!(rows[0].1, "key:pharmacist-1");
    assert_eq!(rows[0].2["note"], "checked with the prescriber");
    assert_eq!(rows[0].2["finding_index"], key.finding_index);
    let reads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE kind = 'staff.read'")
            .fetch_one(&staff.pool)
            .await
            .unwrap();
    assert!(reads >= 3, "every page view is a recorded read ({reads})");
    eprintln!("browser artifacts: {}", out.display());
}
