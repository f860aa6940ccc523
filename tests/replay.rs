//! Replay against a real PostgreSQL (DATABASE_URL): a dataset seeded by running the real engine
//! on the fixture cases (and copies with varied morphine doses and times), written through the
//! real AuditWriter, then
//! - replayed under a draft that raises DOSE-MME-50's threshold from 50 to 90: exactly the cards
//!   the test computes independently (from `expected.json` and from the doses it wrote) disappear
//!   and appear, nothing else changes;
//! - replayed under the versions that decided: 100% of stored findings reproduced, a stored
//!   decision that does not match its version is named, an unknown version is skipped with why;
//! - reloaded under load through the real service, and refused when the pathway fails lint.

use chrono::{DateTime, Duration as Days, Utc};
use orderguard::audit::{
    self, AuditRecord, AuditWriter, Channel, LoadTrigger, RequestMeta, WriterConfig,
};
use orderguard::decide;
use orderguard::pathway::Plan;
use orderguard::pipeline::Pipeline;
use orderguard::reload::{ReloadError, ReloadSource, Reloader};
use orderguard::replay::determinism::{Determinism, DeterminismReport};
use orderguard::replay::whatif::{ChangeKind, WhatIf, WhatIfReport};
use orderguard::replay::{self, RunOptions, Window};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases")
}

fn shipped() -> Value {
    serde_json::from_str(orderguard::pathway::BUILTIN_VCF).unwrap()
}

/// The shipped pathway with DOSE-MME-50 firing from 90 MME/day instead of 50 (no upper bound).
fn draft_mme_90() -> Value {
    let mut v = shipped();
    v["version"] = json!("2026.12.0-draft-mme90");
    let rule = v["rules"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["id"] == "DOSE-MME-50")
        .expect("the shipped pathway has DOSE-MME-50");
    rule["params"] = json!({ "min_mme": 90 });
    v
}

fn plan_of(v: &Value) -> Arc<Plan> {
    Arc::new(Plan::from_value(v.clone()).expect("the test pathway compiles"))
}

async fn writer(pool: &PgPool, spool: &tempfile::TempDir) -> AuditWriter {
    AuditWriter::start(pool.clone(), WriterConfig::new(spool.path().to_owned()))
        .await
        .expect("the writer starts")
}

/// One decision the test wrote, with what it knows about it independently of the engine.
#[derive(Debug, Clone)]
struct Seeded {
    id: Uuid,
    evaluated_at: DateTime<Utc>,
    order_sign: bool,
    /// `RULE:severity` the case's expectation (or the dose the test wrote) says fire.
    expected_mme: Option<&'static str>,
}

/// Decides `bytes` with the real engine at `now` and records it through the writer, as the
/// service does. Returns the decision id and whether it was an order-sign call.
async fn record(
    w: &AuditWriter,
    plan: &Plan,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> (Uuid, bool, Vec<String>) {
    let mut prepared = decide::prepare(bytes).expect("fixture reads");
    let decision = decide::decide(plan, &mut prepared, now, Uuid::now_v7());
    let answer = decide::render(&prepared, &decision);
    let channel = if prepared.hook.is_some() {
        Channel::CdsHooks
    } else {
        Channel::Native
    };
    let response = decide::response_bytes(channel, &answer);
    let meta = RequestMeta {
        hook: prepared.hook.clone(),
        hook_instance: prepared.hook_instance.clone(),
        ..RequestMeta::new(channel)
    };
    let order_sign = prepared.hook.as_deref() == Some("order-sign");
    let rules = decision
        .evaluation
        .findings
        .iter()
        .map(|f| f.rule_id.to_string())
        .collect();
    let record = AuditRecord::from_decision(
        &decision,
        meta,
        std::mem::take(&mut prepared.canonical_input),
        response,
    );
    w.record(record).await.expect("recorded");
    (decision.decision_id, order_sign, rules)
}

/// The morphine case with `mg` every 6 h: 4 × mg MME/day (oral morphine, factor 1).
fn morphine_case(mg: f64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(
        &std::fs::read(cases_dir().join("10-mme-50-morphine.json")).unwrap(),
    )
    .unwrap();
    let med = &mut v["medications"][0];
    assert_eq!(med["id"], "mor");
    med["dose"]["value"] = json!(mg);
    med["text"] = json!(format!("morphine sulfate {mg} mg"));
    v.as_object_mut().unwrap().remove("evaluated_at");
    serde_json::to_vec(&v).unwrap()
}

/// Doses of the varied copies (mg every 6 h) and the MME/day they give.
const MORPHINE_MG: [f64; 10] = [10.0, 12.25, 12.5, 15.0, 20.0, 22.4, 22.5, 25.0, 30.0, 45.0];

/// Which DOSE-MME card a total MME/day gives under the shipped pathway (pathway-spec.md).
fn mme_band(mme: f64) -> Option<&'static str> {
    if mme >= 90.0 {
        Some("DOSE-MME-90")
    } else if mme >= 50.0 {
        Some("DOSE-MME-50")
    } else {
        None
    }
}

/// Every fixture case at its own time, plus varied morphine copies at three times (October,
/// November, December), all decided by the shipped pathway.
async fn seed(pool: &PgPool, spool: &tempfile::TempDir) -> Vec<Seeded> {
    let w = writer(pool, spool).await;
    let plan = Plan::builtin();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(cases_dir().join("expected.json")).unwrap()).unwrap();
    let mut seeded = Vec::new();
    for (file, expect) in expected.as_object().unwrap() {
        let bytes = std::fs::read(cases_dir().join(file)).unwrap();
        let now: DateTime<Utc> = expect["now"].as_str().unwrap().parse().unwrap();
        let rules: Vec<&str> = expect["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().split(':').next().unwrap())
            .collect();
        let expected_mme = if rules.contains(&"DOSE-MME-90") {
            Some("DOSE-MME-90")
        } else if rules.contains(&"DOSE-MME-50") {
            Some("DOSE-MME-50")
        } else {
            None
        };
        let (id, order_sign, _) = record(&w, &plan, &bytes, now).await;
        seeded.push(Seeded {
            id,
            evaluated_at: now,
            order_sign,
            expected_mme,
        });
    }
    let base: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    for (i, mg) in MORPHINE_MG.iter().enumerate() {
        for shift in [-30i64, 0, 8] {
            let now = base + Days::days(shift) + Days::minutes(i as i64);
            let (id, order_sign, rules) = record(&w, &plan, &morphine_case(*mg), now).await;
            let expected_mme = mme_band(4.0 * mg);
            // The engine agrees with the arithmetic (else the truth below would be the engine's).
            assert_eq!(
                rules
                    .iter()
                    .find(|r| r.starts_with("DOSE-MME"))
                    .map(String::as_str),
                expected_mme,
                "{mg} mg q6h"
            );
            seeded.push(Seeded {
                id,
                evaluated_at: now,
                order_sign,
                expected_mme,
            });
        }
    }
    w.shutdown().await;
    seeded
}

fn options() -> RunOptions {
    RunOptions {
        workers: 2,
        ..RunOptions::default()
    }
}

async fn what_if(
    pool: &PgPool,
    draft: Arc<Plan>,
    window: Window,
    rule: Option<&str>,
) -> WhatIfReport {
    let job = Arc::new(WhatIf {
        draft,
        rule: rule.map(str::to_owned),
        collect_changes: true,
    });
    let (acc, stats) = replay::run(pool, &window, job.clone(), &options())
        .await
        .expect("replay runs");
    job.report(window, acc, stats)
}

async fn determinism(pool: &PgPool, window: Window) -> DeterminismReport {
    let plans = audit::known_plans(pool).await.unwrap();
    let job = Arc::new(Determinism { plans });
    let (acc, stats) = replay::run(pool, &window, job.clone(), &options())
        .await
        .expect("replay runs");
    job.report(window, acc, stats)
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn raising_the_mme_threshold_to_90_removes_exactly_the_50_to_89_cards(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let seeded = seed(&pool, &spool).await;
    let decisions_before = count(&pool, "SELECT count(*) FROM decisions").await;
    let findings_before = count(&pool, "SELECT count(*) FROM findings").await;

    let report = what_if(&pool, plan_of(&draft_mme_90()), Window::default(), None).await;
    assert_eq!(report.decisions as usize, seeded.len());
    assert_eq!(report.unreadable, 0);

    // The truth, from the expectations and the doses: 50-89 MME/day loses its DOSE-MME-50 card,
    // 90 and above gains one (the draft has no upper bound), nothing else changes.
    let truth = |band: &str| -> BTreeSet<Uuid> {
        seeded
            .iter()
            .filter(|s| s.expected_mme == Some(band))
            .map(|s| s.id)
            .collect()
    };
    let (want_gone, want_new) = (truth("DOSE-MME-50"), truth("DOSE-MME-90"));
    assert!(
        want_gone.len() >= 10 && want_new.len() >= 10,
        "the dataset covers both bands"
    );
    let of_kind = |kind: ChangeKind| -> BTreeSet<Uuid> {
        report
            .changes
            .iter()
            .filter(|c| c.change.kind == kind)
            .map(|c| {
                assert_eq!(c.change.rule_id, "DOSE-MME-50", "{c:?}");
                c.decision_id
            })
            .collect()
    };
    assert_eq!(of_kind(ChangeKind::Disappears), want_gone);
    assert_eq!(of_kind(ChangeKind::Appears), want_new);
    assert!(of_kind(ChangeKind::SeverityChanges).is_empty());
    assert_eq!(report.changes.len(), want_gone.len() + want_new.len());

    let mme50 = report
        .rules
        .iter()
        .find(|r| r.rule_id == "DOSE-MME-50")
        .unwrap();
    assert_eq!(mme50.disappears as usize, want_gone.len());
    assert_eq!(mme50.appears as usize, want_new.len());
    assert_eq!(mme50.old_cards as usize, want_gone.len());
    assert_eq!(mme50.new_cards as usize, want_new.len());
    for ex in mme50.examples.disappears.ids() {
        assert!(want_gone.contains(ex));
    }
    assert_eq!(mme50.examples.disappears.ids().len(), 5);
    for r in report.rules.iter().filter(|r| r.rule_id != "DOSE-MME-50") {
        assert_eq!(
            (r.appears, r.disappears, r.severity_changes),
            (0, 0, 0),
            "{r:?}"
        );
    }
    // Burden per 100 order-sign calls, from the seeded truth.
    let sign: Vec<&Seeded> = seeded.iter().filter(|s| s.order_sign).collect();
    assert!(!sign.is_empty());
    let per_100 = |band: &str| {
        let n = sign.iter().filter(|s| s.expected_mme == Some(band)).count();
        (n as f64 * 100.0 / sign.len() as f64 * 100.0).round() / 100.0
    };
    assert_eq!(report.order_sign_calls as usize, sign.len());
    assert_eq!(mme50.old_per_100_order_sign, Some(per_100("DOSE-MME-50")));
    assert_eq!(mme50.new_per_100_order_sign, Some(per_100("DOSE-MME-90")));

    // --rule limits the report to one rule; a window limits the decisions.
    let one = what_if(
        &pool,
        plan_of(&draft_mme_90()),
        Window::default(),
        Some("DOSE-MME-50"),
    )
    .await;
    assert_eq!(one.rules.len(), 1);
    assert_eq!(one.changes, report.changes);
    let november = Window {
        from: Some("2026-11-01T00:00:00Z".parse().unwrap()),
        to: Some("2026-12-01T00:00:00Z".parse().unwrap()),
    };
    let windowed = what_if(&pool, plan_of(&draft_mme_90()), november, None).await;
    let in_window = |s: &&Seeded| {
        s.evaluated_at >= november.from.unwrap() && s.evaluated_at < november.to.unwrap()
    };
    assert_eq!(
        windowed.decisions as usize,
        seeded.iter().filter(in_window).count()
    );
    let gone_in_window: BTreeSet<Uuid> = seeded
        .iter()
        .filter(in_window)
        .filter(|s| s.expected_mme == Some("DOSE-MME-50"))
        .map(|s| s.id)
        .collect();
    assert!(gone_in_window.len() < want_gone.len());
    let got: BTreeSet<Uuid> = windowed
        .changes
        .iter()
        .filter(|c| c.change.kind == ChangeKind::Disappears)
        .map(|c| c.decision_id)
        .collect();
    assert_eq!(got, gone_in_window);

    // Replay under the shipped pathway itself changes nothing.
    let same = what_if(&pool, Plan::builtin(), Window::default(), None).await;
    assert!(same.changes.is_empty(), "{:?}", same.changes);

    // Nothing was written to the decision tables.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM decisions").await,
        decisions_before
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM findings").await,
        findings_before
    );

    // The outputs carry the same figures.
    use orderguard::replay::output::{self, Format};
    let json: Value = serde_json::from_str(&output::what_if(&report, Format::Json)).unwrap();
    let rule = json["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "DOSE-MME-50")
        .unwrap();
    assert_eq!(rule["disappears"], json!(want_gone.len()));
    let csv = output::what_if(&report, Format::Csv);
    let line = csv.lines().find(|l| l.starts_with("DOSE-MME-50,")).unwrap();
    assert!(
        line.starts_with(&format!(
            "DOSE-MME-50,{},{},{},{},0,",
            want_gone.len(),
            want_new.len(),
            want_new.len(),
            want_gone.len()
        )),
        "{line}"
    );
    let table = output::what_if(&report, Format::Table);
    assert!(table.contains("DOSE-MME-50"), "{table}");
    let html = output::what_if_html(&report);
    assert!(html.contains("<svg") && html.contains("DOSE-MME-50"));
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no external assets"
    );
    assert!(!html.contains("<script") && !html.contains("<link"));
}

#[sqlx::test(migrations = "./migrations")]
async fn replay_under_the_deciding_version_reproduces_every_finding(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let seeded = seed(&pool, &spool).await;
    let findings = count(&pool, "SELECT count(*) FROM findings").await;

    let report = determinism(&pool, Window::default()).await;
    assert!(report.is_clean(), "{:#?}", report.differences);
    assert_eq!(report.replayed as usize, seeded.len());
    assert_eq!(report.reproduced, report.replayed);
    assert_eq!(report.findings_compared as i64, findings);
    assert!(findings > 40, "{findings} findings");
    assert_eq!(report.skipped_decisions, 0);

    // A decision of a version nobody recorded is skipped, with why; one of a recorded version
    // is replayed under it; a stored decision its version does not give is named.
    let w = writer(&pool, &spool).await;
    let unrecorded = plan_of(&draft_mme_90());
    let mut recorded_json = draft_mme_90();
    recorded_json["version"] = json!("2026.12.1-recorded");
    let recorded = plan_of(&recorded_json);
    audit::record_version(&pool, &recorded, LoadTrigger::Admin, "test", w.chain_id())
        .await
        .unwrap();
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    record(&w, &unrecorded, &morphine_case(30.0), now).await;
    record(&w, &recorded, &morphine_case(30.0), now).await;
    // Tampered before it was written: the stored severity is not what the engine gives.
    let mut prepared = decide::prepare(&morphine_case(15.0)).unwrap();
    let decision = decide::decide(&Plan::builtin(), &mut prepared, now, Uuid::now_v7());
    let response = decide::response_bytes(Channel::Native, &decide::render(&prepared, &decision));
    let mut tampered = AuditRecord::from_decision(
        &decision,
        RequestMeta::new(Channel::Native),
        prepared.canonical_input.clone(),
        response,
    );
    assert_eq!(tampered.findings[0].rule_id, "DOSE-MME-50");
    tampered.findings[0].severity = orderguard::decision::Severity::Critical;
    w.record(tampered).await.unwrap();
    w.shutdown().await;

    let report = determinism(&pool, Window::default()).await;
    assert!(!report.is_clean());
    assert_eq!(report.replayed as usize, seeded.len() + 2);
    assert_eq!(report.differing, 1);
    assert_eq!(report.differences[0].decision_id, decision.decision_id);
    assert!(
        report.differences[0]
            .details
            .iter()
            .any(|d| d.contains("severity critical stored, warning replayed")),
        "{:?}",
        report.differences[0]
    );
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        report.skipped[0].pathway_hash,
        unrecorded.reference.content_hash
    );
    assert_eq!(report.skipped[0].decisions, 1);
    assert!(report.skipped[0].reason.contains("no pathway version"));
}

/// The service's pipeline on `pool`, serving `plan`, with its reloader.
async fn service(
    pool: &PgPool,
    spool: &tempfile::TempDir,
    plan: Arc<Plan>,
) -> (Arc<Pipeline>, Arc<Reloader>) {
    let w = writer(pool, spool).await;
    let fhir = orderguard::service::fhir_client::FhirClient::new(&Default::default());
    let pipeline = Arc::new(Pipeline::new(plan, w, pool.clone(), fhir));
    let reloader = Arc::new(Reloader::new(pipeline.clone(), None));
    reloader.record_startup().await;
    (pipeline, reloader)
}

#[sqlx::test(migrations = "./migrations")]
async fn a_reload_under_load_loses_no_request_and_mixes_no_versions(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let a = Plan::builtin();
    let b_json = draft_mme_90();
    let b = plan_of(&b_json);
    let (pipeline, reloader) = service(&pool, &spool, a.clone()).await;
    let config = orderguard::service::ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        insecure_no_auth: true,
        ..Default::default()
    };
    let app = orderguard::service::Application::build(&config, pipeline.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    // 60 MME/day: DOSE-MME-50 under A, nothing under B. 120: DOSE-MME-90 under both, and
    // DOSE-MME-50 too under B.
    let bodies = [morphine_case(15.0), morphine_case(30.0)];
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let reloading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reloads = {
        let reloader = reloader.clone();
        let reloading = reloading.clone();
        let contents = [
            serde_json::to_vec(&b_json).unwrap(),
            orderguard::pathway::BUILTIN_VCF.as_bytes().to_vec(),
        ];
        tokio::spawn(async move {
            let mut n = 0usize;
            while reloading.load(std::sync::atomic::Ordering::Relaxed) {
                reloader
                    .reload(
                        ReloadSource::Content(contents[n % 2].clone()),
                        LoadTrigger::Admin,
                        "test",
                    )
                    .await
                    .expect("a good pathway reloads");
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
            n
        })
    };
    let mut clients = Vec::new();
    for c in 0..8 {
        let client = client.clone();
        let base = base.clone();
        let bodies = bodies.clone();
        clients.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for i in 0..40 {
                let which = (c + i) % 2;
                let body = bodies[which].clone();
                let request = hyper::Request::post(format!("{base}/v1/validate"))
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap();
                let answer = client.request(request).await.expect("the service answers");
                let status = answer.status().as_u16();
                let body = http_body_util::BodyExt::collect(answer.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let decision: Value = serde_json::from_slice(&body).unwrap();
                answered.push((which, decision));
            }
            answered
        }));
    }
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    reloading.store(false, std::sync::atomic::Ordering::Relaxed);
    let reloads = reloads.await.unwrap();
    assert!(reloads >= 4, "only {reloads} reloads during the load");
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // No request lost: every answer has its decision row.
    assert_eq!(answers.len(), 320);
    let stored: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT decision_id, pathway_hash FROM decisions")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), answers.len());
    let by_id: BTreeMap<Uuid, String> = stored.into_iter().collect();
    // No mixing: each answer's findings are those of the one version it names, and that is the
    // version stored for it.
    let mut per_version = BTreeMap::<String, usize>::new();
    for (which, answer) in &answers {
        let id: Uuid = answer["decision_id"].as_str().unwrap().parse().unwrap();
        let hash = answer["pathway"]["content_hash"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(by_id[&id], hash);
        let mme = [60.0, 120.0][*which];
        let rules: BTreeSet<&str> = answer["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["rule_id"].as_str())
            .filter(|r| r.starts_with("DOSE-MME"))
            .collect();
        let want: BTreeSet<&str> = match (hash == a.reference.content_hash, mme >= 90.0) {
            (true, false) => ["DOSE-MME-50"].into(),
            (true, true) => ["DOSE-MME-90"].into(),
            (false, true) => ["DOSE-MME-50", "DOSE-MME-90"].into(),
            (false, false) => BTreeSet::new(),
        };
        assert!(hash == a.reference.content_hash || hash == b.reference.content_hash);
        assert_eq!(rules, want, "{id} under {hash}");
        *per_version.entry(hash).or_default() += 1;
    }
    assert_eq!(
        per_version.len(),
        2,
        "both versions served: {per_version:?}"
    );
    // And the stored findings are exactly what each decision's recorded version gives.
    let report = determinism(&pool, Window::default()).await;
    assert!(report.is_clean(), "{:#?}", report.differences);
    assert_eq!(report.replayed, 320);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE kind = 'pathway.loaded'"
        )
        .await as usize,
        reloads + 1,
        "one event for the start, one per reload"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pathway_versions").await as usize,
        reloads + 1
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_pathway_that_fails_lint_is_refused_and_the_old_one_keeps_serving(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let (pipeline, reloader) = service(&pool, &spool, Plan::builtin()).await;
    let before = pipeline.plan().reference.clone();
    let mut bad = draft_mme_90();
    bad["rules"][0]["severity"] = json!("severe");
    bad["rules"][1]["kind"] = json!("telepathy");
    let refused = reloader
        .reload(
            ReloadSource::Content(serde_json::to_vec(&bad).unwrap()),
            LoadTrigger::Admin,
            "test",
        )
        .await
        .unwrap_err();
    let ReloadError::Lint { errors, .. } = &refused else {
        panic!("{refused:?}")
    };
    assert!(
        errors.iter().any(|e| e.path == "/rules/0/severity"),
        "{errors:?}"
    );
    assert_eq!(pipeline.plan().reference, before);
    // Not JSON, and no file to re-read: refused too.
    assert!(matches!(
        reloader
            .reload(
                ReloadSource::Content(b"{".to_vec()),
                LoadTrigger::Admin,
                "test"
            )
            .await,
        Err(ReloadError::Lint { .. })
    ));
    assert!(matches!(
        reloader
            .reload(
                ReloadSource::ConfiguredFile,
                LoadTrigger::Sighup,
                "signal:SIGHUP"
            )
            .await,
        Err(ReloadError::NoFile)
    ));
    assert_eq!(pipeline.plan().reference, before);
    // Still deciding, on the old version.
    use orderguard::service::{ClientIdentity, DecisionPipeline};
    let answer = pipeline
        .native(morphine_case(15.0).into(), ClientIdentity::Unauthenticated)
        .await
        .unwrap();
    assert_eq!(
        answer["pathway"]["content_hash"],
        json!(before.content_hash)
    );
    assert_eq!(answer["findings"][0]["rule_id"], "DOSE-MME-50");
    pipeline.writer().clone().shutdown().await;
    // Only the start was recorded as a version; the refusals as events, with their paths.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pathway_versions").await,
        1
    );
    let refusals: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM audit_events WHERE kind = 'pathway.reload_refused' ORDER BY occurred_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(refusals.len(), 3);
    assert!(
        refusals[0]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/rules/0/severity")
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn pathway_versions_are_append_only_and_tied_to_their_content(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, &spool).await;
    let plan = Plan::builtin();
    let id = audit::record_version(&pool, &plan, LoadTrigger::Startup, "startup", w.chain_id())
        .await
        .unwrap();
    let listed = audit::list_versions(&pool).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].load_id, id);
    assert_eq!(listed[0].content_hash, plan.reference.content_hash);
    assert_eq!(listed[0].version, plan.reference.version);
    for statement in [
        "UPDATE pathway_versions SET version = 'x'",
        "DELETE FROM pathway_versions",
        "TRUNCATE pathway_versions",
    ] {
        let error = sqlx::query(statement).execute(&pool).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    // Content that does not hash to its content_hash is refused by the database.
    let forged = sqlx::query(
        "INSERT INTO pathway_versions (load_id, pathway_id, version, content_hash, content, \
         loaded_by, trigger, chain_id, loaded_at) VALUES ($1, 'vcf', 'x', $2, '{}', 'a', 'admin', 'c', now())",
    )
    .bind(Uuid::now_v7())
    .bind(&plan.reference.content_hash)
    .execute(&pool)
    .await;
    assert!(forged.is_err());
    // The stored content recompiles to the same plan.
    let plans = audit::known_plans(&pool).await.unwrap();
    let again = plans[&plan.reference.content_hash].as_ref().unwrap();
    assert_eq!(again.reference, plan.reference);
    w.shutdown().await;
}

const ADMIN_KEY: &str = "ogk_admin_test_5b1e9c0d7a3f4e28";
const QUALITY_KEY: &str = "ogk_quality_test_8d2a6f1c4e7b9035";

async fn post_reload(
    router: &axum::Router,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Value) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::post("/v1/admin/pathway/reload")
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let answer = router
        .clone()
        .oneshot(request.body(axum::body::Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[sqlx::test(migrations = "./migrations")]
async fn the_admin_route_reloads_for_admins_only_and_names_lint_errors(pool: PgPool) {
    use orderguard::service::config::StaffApiKey;
    use orderguard::service::staff::{Role, StaffBackend};
    use sha2::Digest;
    let spool = tempfile::tempdir().unwrap();
    let (pipeline, reloader) = service(&pool, &spool, Plan::builtin()).await;
    let mut config = orderguard::service::ServiceConfig {
        insecure_no_auth: true,
        ..Default::default()
    };
    let key = |name: &str, secret: &str, role: Role| StaffApiKey {
        name: name.into(),
        sha256: hex::encode(sha2::Sha256::digest(secret.as_bytes())),
        roles: vec![role],
    };
    config.staff.api_keys = vec![
        key("admin-console", ADMIN_KEY, Role::Admin),
        key("quality-dashboard", QUALITY_KEY, Role::Quality),
    ];
    let router = orderguard::service::startup::router_with_staff(
        &config,
        pipeline.clone(),
        Some(StaffBackend {
            reports: pool.clone(),
            audit: pipeline.writer().clone(),
            reloader: Some(reloader.clone()),
        }),
        Arc::new(orderguard::service::auth::SystemClock),
    )
    .unwrap();
    let before = pipeline.plan().reference.clone();
    let draft = serde_json::to_vec(&draft_mme_90()).unwrap();

    let (status, _, _) = post_reload(&router, None, draft.clone()).await;
    assert_eq!(status, 401);
    let (status, content_type, problem) =
        post_reload(&router, Some(QUALITY_KEY), draft.clone()).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(pipeline.plan().reference, before);

    let mut bad = draft_mme_90();
    bad["rules"][0]["severity"] = json!("severe");
    let (status, content_type, problem) =
        post_reload(&router, Some(ADMIN_KEY), serde_json::to_vec(&bad).unwrap()).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/rules/0/severity"),
        "{problem:#}"
    );
    assert_eq!(pipeline.plan().reference, before);
    // No file configured: an empty body has nothing to re-read.
    let (status, _, problem) = post_reload(&router, Some(ADMIN_KEY), Vec::new()).await;
    assert_eq!(status, 400, "{problem}");

    let (status, _, answer) = post_reload(&router, Some(ADMIN_KEY), draft).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["previous"]["content_hash"],
        json!(before.content_hash)
    );
    assert_eq!(answer["current"]["version"], "2026.12.0-draft-mme90");
    assert_eq!(answer["changed"], true);
    assert_eq!(pipeline.plan().reference.version, "2026.12.0-draft-mme90");
    pipeline.writer().clone().shutdown().await;
    let loads: Vec<(String, String)> =
        sqlx::query_as("SELECT trigger, loaded_by FROM pathway_versions ORDER BY loaded_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        loads,
        vec![
            ("startup".to_owned(), "startup".to_owned()),
            ("admin".to_owned(), "key:admin-console".to_owned())
        ]
    );
    let actors: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, actor FROM audit_events WHERE kind LIKE 'pathway.%' ORDER BY occurred_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        actors,
        vec![
            ("pathway.loaded".to_owned(), "startup".to_owned()),
            (
                "pathway.reload_refused".to_owned(),
                "key:admin-console".to_owned()
            ),
            (
                "pathway.reload_refused".to_owned(),
                "key:admin-console".to_owned()
            ),
            ("pathway.loaded".to_owned(), "key:admin-console".to_owned()),
        ]
    );
}
