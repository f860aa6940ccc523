//! Every report against hand-computed numbers on a small dataset written through the real audit
//! writer into a real PostgreSQL; every filter of every report fed SQL-injection strings; and
//! `demo seed` writing decisions that verify.

#[path = "common/demo.rs"]
mod demo_support;
use demo_support::demo_writer;

use chrono::{DateTime, Duration, Utc};
use orderguard::audit::{
    self, AuditRecord, AuditWriter, Channel, FeedbackOutcome, FeedbackRecord, RequestMeta,
    WriterConfig,
};
use orderguard::decision::{
    Decision, Evaluation, Finding, MissingInput, PathwayRef, Severity, Suggestion, Texts,
};
use orderguard::reports::{self, ReportName, ReportQuery};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

struct Card {
    rule: &'static str,
    severity: Severity,
    numbers: Value,
}

fn card(rule: &'static str, severity: Severity) -> Card {
    Card {
        rule,
        severity,
        numbers: json!({}),
    }
}

fn with(rule: &'static str, severity: Severity, numbers: Value) -> Card {
    Card {
        rule,
        severity,
        numbers,
    }
}

struct Written {
    decision: Decision,
}

impl Written {
    fn card(&self, rule: &str) -> Uuid {
        let index = self
            .decision
            .evaluation
            .findings
            .iter()
            .position(|f| *f.rule_id == *rule)
            .unwrap();
        self.decision.card_uuid(index)
    }
}

#[allow(clippy::too_many_arguments)]
async fn write(
    writer: &AuditWriter,
    at: &str,
    hook: &str,
    user: &str,
    encounter: Option<&str>,
    cards: Vec<Card>,
    missing: &[(&str, &[&str])],
) -> Written {
    let at: DateTime<Utc> = at.parse().unwrap();
    let decision = Decision {
        decision_id: Uuid::now_v7(),
        pathway: PathwayRef {
            id: "vcf".into(),
            version: "2026.11.0".into(),
            content_hash: "ef".repeat(32),
        },
        evaluated_at: at,
        evaluation: Evaluation {
            findings: cards
                .into_iter()
                .map(|c| Finding {
                    rule_id: c.rule.into(),
                    severity: c.severity,
                    order_ref: None,
                    texts: Texts::new("s", "d"),
                    numbers: serde_json::from_value(c.numbers).unwrap(),
                    suggestions: vec![Suggestion {
                        id: "s1".into(),
                        label: "do it".into(),
                        actions: vec![],
                    }],
                    citations: Default::default(),
                    labels: Default::default(),
                })
                .collect(),
            unrecognized: vec![],
            missing_inputs: missing
                .iter()
                .map(|(input, rules)| MissingInput {
                    input: (*input).into(),
                    rules: rules.iter().map(|r| (*r).to_owned()).collect(),
                })
                .collect(),
        },
    };
    let meta = RequestMeta {
        hook: Some(hook.into()),
        user_ref: Some(format!("Practitioner/{user}")),
        encounter_ref: encounter.map(|e| format!("Encounter/{e}")),
        patient_ref: Some("Patient/synthetic-1".into()),
        ..RequestMeta::new(Channel::CdsHooks)
    };
    writer
        .record(AuditRecord::from_decision(
            &decision,
            meta,
            b"{}".to_vec(),
            b"{}".to_vec(),
        ))
        .await
        .unwrap();
    Written { decision }
}

async fn answer(
    writer: &AuditWriter,
    written: &Written,
    rule: &str,
    outcome: FeedbackOutcome,
    detail: &str,
    minutes: i64,
) {
    let overridden = outcome == FeedbackOutcome::Overridden;
    writer
        .record_feedback(FeedbackRecord {
            card_uuid: written.card(rule),
            decision_id: Some(written.decision.decision_id),
            outcome,
            accepted_suggestions: if overridden || detail.is_empty() {
                vec![]
            } else {
                vec![detail.to_owned()]
            },
            override_reason_code: overridden.then(|| detail.to_owned()),
            override_comment: None,
            outcome_at: written.decision.evaluated_at + Duration::minutes(minutes),
            client_id: None,
        })
        .await
        .unwrap();
}

/// The dataset of the hand computations (see each test's comments).
async fn dataset(pool: &PgPool) -> (AuditWriter, tempfile::TempDir) {
    use FeedbackOutcome::*;
    use Severity::*;
    let spool = tempfile::tempdir().unwrap();
    let mut config = WriterConfig::new(spool.path().to_owned());
    config.lanes = 1;
    let w = AuditWriter::start(pool.clone(), config).await.unwrap();
    let renal: (&str, &[&str]) = ("renal_function", &["DOSE-RENAL"]);
    let d1 = write(
        &w,
        "2026-11-02T10:00:00Z",
        "order-sign",
        "dr-a",
        Some("e1"),
        vec![
            card("VCF-ANTIOP-MISSING", Warning),
            with(
                "DOSE-MME-90",
                Critical,
                json!({"mme_per_day": 120, "threshold": 90}),
            ),
        ],
        &[renal],
    )
    .await;
    let d2 = write(
        &w,
        "2026-11-03T10:00:00Z",
        "order-sign",
        "dr-a",
        Some("e1"),
        vec![
            card("VCF-CALCIUM-MISSING", Warning),
            with(
                "DOSE-MME-50",
                Warning,
                json!({"mme_per_day": 60, "threshold": 50}),
            ),
        ],
        &[],
    )
    .await;
    let d3 = write(
        &w,
        "2026-11-04T10:00:00Z",
        "order-sign",
        "dr-b",
        Some("e2"),
        vec![
            with("VCF-AUGMENT-TIMING", Warning, json!({"fracture_days": 10})),
            card("VCF-ANTIOP-MISSING", Warning),
        ],
        &[],
    )
    .await;
    write(
        &w,
        "2026-11-05T10:00:00Z",
        "order-sign",
        "dr-b",
        None,
        vec![],
        &[
            (
                "fracture_date",
                &["VCF-OPIOID-DURATION", "VCF-AUGMENT-NODATE"],
            ),
            renal,
        ],
    )
    .await;
    let d5 = write(
        &w,
        "2026-11-09T10:00:00Z",
        "order-sign",
        "dr-a",
        Some("e3"),
        vec![
            with("VCF-AUGMENT-TIMING", Warning, json!({"fracture_days": 30})),
            card("VCF-VITD-MISSING", Warning),
        ],
        &[],
    )
    .await;
    let d6 = write(
        &w,
        "2026-11-10T10:00:00Z",
        "order-select",
        "dr-c",
        Some("e3"),
        vec![card("VCF-ANTIOP-MISSING", Warning)],
        &[],
    )
    .await;
    // Outside the window (the week after): must count nowhere.
    let late = write(
        &w,
        "2026-11-16T00:00:00Z",
        "order-sign",
        "dr-a",
        Some("e1"),
        vec![with("DOSE-MME-90", Critical, json!({"mme_per_day": 500}))],
        &[renal],
    )
    .await;
    answer(
        &w,
        &d1,
        "VCF-ANTIOP-MISSING",
        Overridden,
        "patient-declined",
        1,
    )
    .await;
    answer(&w, &d1, "DOSE-MME-90", Accepted, "taper", 1).await;
    // Accepted first, then overridden: the latest answer counts.
    answer(&w, &d2, "VCF-CALCIUM-MISSING", Accepted, "", 1).await;
    answer(
        &w,
        &d2,
        "VCF-CALCIUM-MISSING",
        Overridden,
        "clinical-judgment",
        5,
    )
    .await;
    answer(
        &w,
        &d3,
        "VCF-AUGMENT-TIMING",
        Overridden,
        "clinical-judgment",
        1,
    )
    .await;
    answer(
        &w,
        &d3,
        "VCF-ANTIOP-MISSING",
        Overridden,
        "already-addressed",
        1,
    )
    .await;
    answer(&w, &d5, "VCF-AUGMENT-TIMING", Accepted, "defer", 1).await;
    answer(
        &w,
        &d6,
        "VCF-ANTIOP-MISSING",
        Accepted,
        "start-alendronate",
        1,
    )
    .await;
    answer(&w, &late, "DOSE-MME-90", Overridden, "palliative-care", 1).await;
    (w, spool)
}

fn query(params: &[(&str, &str)]) -> ReportQuery {
    let mut all = vec![("from", "2026-11-02"), ("to", "2026-11-15")];
    all.extend_from_slice(params);
    ReportQuery::from_params(all, Utc::now()).unwrap()
}

async fn rows(pool: &PgPool, name: &str, params: &[(&str, &str)]) -> Value {
    let table = reports::run(pool, ReportName::parse(name).unwrap(), &query(params))
        .await
        .unwrap();
    for row in &table.rows {
        assert_eq!(row.len(), table.columns.len());
    }
    json!(table.rows)
}

#[sqlx::test(migrations = "./migrations")]
async fn each_report_gives_the_hand_computed_numbers(pool: PgPool) {
    let (writer, _spool) = dataset(&pool).await;

    // Cards per 100 order-sign calls: week of 11-02 has 4 calls (D1-D4); 11-09 has 1 (D5; D6
    // is order-select).
    assert_eq!(
        rows(&pool, "alert-burden", &[]).await,
        json!([
            ["2026-11-02", "VCF-ANTIOP-MISSING", "warning", 2, 4, 50.0],
            ["2026-11-02", "DOSE-MME-50", "warning", 1, 4, 25.0],
            ["2026-11-02", "DOSE-MME-90", "critical", 1, 4, 25.0],
            ["2026-11-02", "VCF-AUGMENT-TIMING", "warning", 1, 4, 25.0],
            ["2026-11-02", "VCF-CALCIUM-MISSING", "warning", 1, 4, 25.0],
            ["2026-11-09", "VCF-AUGMENT-TIMING", "warning", 1, 1, 100.0],
            ["2026-11-09", "VCF-VITD-MISSING", "warning", 1, 1, 100.0],
        ])
    );

    // Antiop: D1 overridden, D3 overridden, D6 accepted. Calcium: latest answer overridden.
    assert_eq!(
        rows(&pool, "override-by-rule", &[]).await,
        json!([
            ["VCF-ANTIOP-MISSING", 3, 3, 1, 2, 66.67],
            ["VCF-AUGMENT-TIMING", 2, 2, 1, 1, 50.0],
            ["DOSE-MME-50", 1, 0, 0, 0, null],
            ["DOSE-MME-90", 1, 1, 1, 0, 0.0],
            ["VCF-CALCIUM-MISSING", 1, 1, 0, 1, 100.0],
            ["VCF-VITD-MISSING", 1, 0, 0, 0, null],
        ])
    );
    // Sorted by a column ascending, nulls last, ties by the columns in order.
    let by_rate = rows(&pool, "override-by-rule", &[("sort", "override_rate")]).await;
    let order: Vec<&str> = by_rate
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "DOSE-MME-90",
            "VCF-AUGMENT-TIMING",
            "VCF-ANTIOP-MISSING",
            "VCF-CALCIUM-MISSING",
            "DOSE-MME-50",
            "VCF-VITD-MISSING"
        ]
    );

    assert_eq!(
        rows(&pool, "override-by-reason", &[]).await,
        json!([
            ["VCF-ANTIOP-MISSING", "already-addressed", 1, 50.0],
            ["VCF-ANTIOP-MISSING", "patient-declined", 1, 50.0],
            ["VCF-AUGMENT-TIMING", "clinical-judgment", 1, 100.0],
            ["VCF-CALCIUM-MISSING", "clinical-judgment", 1, 100.0],
        ])
    );
    assert_eq!(
        rows(
            &pool,
            "override-by-reason",
            &[("reason", "clinical-judgment")]
        )
        .await,
        json!([
            ["VCF-AUGMENT-TIMING", "clinical-judgment", 1, 100.0],
            ["VCF-CALCIUM-MISSING", "clinical-judgment", 1, 100.0],
        ])
    );

    // A suggestion taken: D6 antiop, D5 augmentation, D1 MME-90.
    assert_eq!(
        rows(&pool, "suggestion-acceptance", &[]).await,
        json!([
            ["VCF-ANTIOP-MISSING", 3, 3, 1, 33.33],
            ["VCF-AUGMENT-TIMING", 2, 2, 1, 50.0],
            ["DOSE-MME-50", 1, 0, 0, null],
            ["DOSE-MME-90", 1, 1, 1, 100.0],
            ["VCF-CALCIUM-MISSING", 1, 1, 0, 0.0],
            ["VCF-VITD-MISSING", 1, 0, 0, null],
        ])
    );

    // dr-a: D1, D2, D5 (6 cards, 4 answered, 2 overridden, 1 critical); dr-b: D3, D4; dr-c: D6.
    assert_eq!(
        rows(&pool, "by-prescriber", &[]).await,
        json!([
            ["Practitioner/dr-a", 3, 6, 200.0, 4, 2, 50.0, 1],
            ["Practitioner/dr-b", 2, 2, 100.0, 2, 2, 100.0, 0],
            ["Practitioner/dr-c", 1, 1, 100.0, 1, 0, 0.0, 0],
        ])
    );
    assert_eq!(
        rows(&pool, "by-prescriber", &[("severity", "critical")]).await,
        json!([["Practitioner/dr-a", 3, 1, 33.33, 1, 0, 0.0, 1]])
    );
    assert_eq!(
        rows(&pool, "by-encounter", &[]).await,
        json!([
            ["Encounter/e1", 2, 4, 200.0, 3, 2, 66.67, 1],
            ["Encounter/e3", 2, 3, 150.0, 2, 0, 0.0, 0],
            ["Encounter/e2", 1, 2, 200.0, 2, 2, 100.0, 0],
            ["(not carried)", 1, 0, 0.0, 0, 0, null, 0],
        ])
    );

    // Order-sign calls flagged: 11-02 week antiop D1, D3; calcium D2. 11-09: vitamin D D5.
    assert_eq!(
        rows(&pool, "vcf-adherence", &[]).await,
        json!([
            ["2026-11-02", 4, 2, 1, 0, 50.0, 25.0, 0.0],
            ["2026-11-09", 1, 0, 0, 1, 0.0, 0.0, 100.0],
        ])
    );
    assert_eq!(
        rows(&pool, "vcf-adherence", &[("user", "Practitioner/dr-b")]).await,
        json!([["2026-11-02", 2, 1, 0, 0, 50.0, 0.0, 0.0]])
    );

    assert_eq!(
        rows(&pool, "augmentation", &[]).await,
        json!([
            ["2026-11-02", 1, 1, 1, 0, 100.0, 10.0],
            ["2026-11-09", 1, 1, 0, 1, 0.0, 30.0],
        ])
    );

    // MME: D1 120 and D2 60 of 4 calls; median of [60, 120] = 90, p90 = 114.
    assert_eq!(
        rows(&pool, "mme", &[]).await,
        json!([
            ["2026-11-02", 4, 2, 1, 50.0, 25.0, 90.0, 114.0, 120.0],
            ["2026-11-09", 1, 0, 0, 0.0, 0.0, null, null, null],
        ])
    );

    // 6 decisions in the window: renal function missing in D1, D4; fracture date in D4.
    assert_eq!(
        rows(&pool, "missing-inputs", &[]).await,
        json!([
            ["renal_function", "DOSE-RENAL", 2, 33.33],
            [
                "fracture_date",
                "VCF-AUGMENT-NODATE, VCF-OPIOID-DURATION",
                1,
                16.67
            ],
        ])
    );
    assert_eq!(
        rows(&pool, "missing-inputs", &[("rule", "VCF-AUGMENT-NODATE")]).await,
        json!([[
            "fracture_date",
            "VCF-AUGMENT-NODATE, VCF-OPIOID-DURATION",
            1,
            16.67
        ]])
    );
    writer.shutdown().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn injection_strings_in_every_filter_are_plain_values(pool: PgPool) {
    let (writer, _spool) = dataset(&pool).await;
    let attacks = [
        "x' OR '1'='1",
        "'; DROP TABLE decisions; --",
        "\") OR true --",
        "ACT-BEDREST' UNION SELECT * FROM audit_batches --",
        "%",
        "Practitioner/dr-a' --",
    ];
    for name in ReportName::ALL {
        let baseline = rows(&pool, name.as_str(), &[]).await;
        assert!(
            !baseline.as_array().unwrap().is_empty(),
            "{name} has rows to lose"
        );
        for filter in name.filters() {
            for attack in attacks {
                let got = rows(&pool, name.as_str(), &[(filter.param(), attack)]).await;
                assert_eq!(got, json!([]), "{name} {}={attack:?}", filter.param());
            }
        }
    }
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(decisions, 7, "the table is still there, whole");
    // A sort column that is not one of the report's is refused before any SQL.
    let bad =
        ReportQuery::from_params([("sort", "week; DROP TABLE findings")], Utc::now()).unwrap();
    assert!(matches!(
        reports::run(&pool, ReportName::AlertBurden, &bad).await,
        Err(reports::ReportError::Query(e)) if e.param == "sort"
    ));
    writer.shutdown().await;
}

/// A report past its time limit is cancelled in PostgreSQL and answered as too slow, not left
/// running; the next one runs. (The report waits on a lock another session holds, so it cannot
/// finish in time however fast the machine.)
#[sqlx::test(migrations = "./migrations")]
async fn a_report_past_its_time_limit_is_cancelled_in_the_database(pool: PgPool) {
    let (writer, _spool) = dataset(&pool).await;
    let query = ReportQuery::last_days(Utc::now());
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    for source in [reports::Source::Raw, reports::Source::Auto] {
        let result = reports::run_within(
            &pool,
            ReportName::ByPrescriber,
            &query,
            source,
            std::time::Duration::from_millis(300),
        )
        .await;
        assert!(
            matches!(result, Err(reports::ReportError::TooSlow)),
            "{source:?}: {result:?}"
        );
    }
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
    )
    .fetch_one(&mut *blocker)
    .await
    .unwrap();
    assert_eq!(
        waiting, 0,
        "a cancelled report is still waiting in the database"
    );
    blocker.rollback().await.unwrap();
    let table = reports::run(&pool, ReportName::ByPrescriber, &query)
        .await
        .unwrap();
    assert!(!table.rows.is_empty());
    writer.shutdown().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn demo_seed_writes_real_decisions_with_feedback_that_verify(pool: PgPool) {
    let (writer, _spool) = demo_writer(&pool).await;
    let now: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let options = orderguard::demo::SeedOptions::new(300, 30, now);
    let counted = std::sync::atomic::AtomicU64::new(0);
    let summary = orderguard::demo::seed(
        orderguard::pathway::Plan::builtin(),
        &writer,
        &options,
        |n| {
            counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .await
    .unwrap();
    writer.shutdown().await;
    assert_eq!(summary.decisions, 300);
    assert_eq!(counted.into_inner(), 300);
    let (decisions, findings, feedback, oldest): (i64, i64, i64, DateTime<Utc>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM findings), \
                (SELECT count(*) FROM feedback), (SELECT min(evaluated_at) FROM decisions)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(decisions, 300);
    assert_eq!(findings as u64, summary.findings);
    assert_eq!(feedback as u64, summary.feedback);
    assert!(findings > 150, "the cases give findings: {findings}");
    assert!(feedback > 0 && feedback < findings);
    assert!(oldest >= now - Duration::days(30));
    let report = audit::verify(&pool, None, false).await.unwrap();
    assert!(report.is_clean(), "{report}");
    // Synthetic references only.
    let real: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM decisions WHERE patient_ref NOT LIKE 'Patient/demo-%' \
         OR user_ref NOT LIKE 'Practitioner/demo-%' OR encounter_ref NOT LIKE 'Encounter/demo-%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(real, 0);
    // The reports read it.
    let q = ReportQuery::from_params([("to", "2026-11-21")], now).unwrap();
    let burden = reports::run(&pool, ReportName::AlertBurden, &q)
        .await
        .unwrap();
    assert!(!burden.rows.is_empty());
}
