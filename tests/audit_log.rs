//! The audit log against a real PostgreSQL (DATABASE_URL, a superuser): append-only
//! enforcement, the writer role, the hash chain and each kind of tampering, two writers.
//!
//! Tampering is done the way an attacker with superuser rights would: with triggers switched off
//! (`session_replication_role = replica`), then `audit::verify` must name the damage.

use chrono::Utc;
use orderguard::audit::{
    self, AuditRecord, AuditWriter, BreakKind, Channel, Durability, EventRecord, FeedbackOutcome,
    FeedbackRecord, RejectionRecord, RequestMeta, VerifyReport, WriterConfig,
};
use orderguard::decision::{
    Decision, Evaluation, Finding, MissingInput, Number, Numbers, PathwayRef, Severity, Texts,
};
use orderguard::domain::OrderRef;
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

fn decision(findings: usize) -> Decision {
    let findings = (0..findings)
        .map(|i| Finding {
            rule_id: if i % 2 == 0 {
                "DOSE-MME-90".into()
            } else {
                "VCF-BEDREST".into()
            },
            severity: if i % 2 == 0 {
                Severity::Warning
            } else {
                Severity::Critical
            },
            order_ref: Some(OrderRef(format!("MedicationRequest/med-{i}").into())),
            texts: Texts::new("Opioid dose above 90 MME/day", "120.5 MME/day"),
            numbers: Numbers::from([
                ("mme_per_day".into(), Number::from(120.5)),
                ("limit".into(), Number::from(90)),
                ("tiny".into(), Number::from(1e-7)),
                ("whole_float".into(), Number::from(3200.0)),
            ]),
            labels: Default::default(),
            suggestions: vec![],
            citations: Default::default(),
        })
        .collect();
    Decision {
        decision_id: Uuid::now_v7(),
        pathway: PathwayRef {
            id: "vcf".into(),
            version: "1.0.0".into(),
            content_hash: "ab".repeat(32),
        },
        evaluated_at: Utc::now(),
        evaluation: Evaluation {
            findings,
            unrecognized: vec![],
            missing_inputs: vec![MissingInput {
                input: "renal_function".into(),
                rules: vec!["DOSE-RENAL".into()],
            }],
        },
    }
}

fn record(findings: usize) -> AuditRecord {
    let d = decision(findings);
    let meta = RequestMeta {
        channel: Channel::CdsHooks,
        hook: Some("order-sign".into()),
        hook_instance: Some("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea".into()),
        client_id: Some("epic-test".into()),
        user_ref: Some("Practitioner/dr-ä".into()),
        patient_ref: Some("Patient/p1".into()),
        encounter_ref: None,
    };
    let input =
        orderguard::canonical::to_vec(&json!({"orders": ["oxycodone 10 mg"], "z": 1, "a": "é"}));
    AuditRecord::from_decision(&d, meta, input, br#"{"cards":[]}"#.to_vec())
}

async fn writer(pool: &PgPool, chain: &str, spool: &tempfile::TempDir) -> AuditWriter {
    let mut config = WriterConfig::new(spool.path().to_owned());
    config.chain_id = Some(chain.to_owned());
    config.max_wait = Duration::from_millis(5);
    config.lanes = 1;
    AuditWriter::start(pool.clone(), config)
        .await
        .expect("writer starts")
}

/// Writes `sequential` one-record batches, then one batch of `together` records; returns the ids
/// in order of writing.
async fn fill(w: &AuditWriter, sequential: usize, together: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..sequential {
        let r = record(i % 3);
        ids.push(r.decision_id);
        assert_eq!(w.record(r).await.unwrap(), Durability::Committed);
    }
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..together {
        let r = record(2);
        ids.push(r.decision_id);
        let w = w.clone();
        set.spawn(async move { w.record(r).await });
    }
    while let Some(result) = set.join_next().await {
        assert_eq!(result.unwrap().unwrap(), Durability::Committed);
    }
    ids
}

async fn verify(pool: &PgPool) -> VerifyReport {
    audit::verify(pool, None, false).await.expect("verify runs")
}

/// Runs statements as superuser with triggers (append-only and foreign keys) switched off.
async fn tamper(pool: &PgPool, statements: &[&'static str], id: Uuid) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    for sql in statements {
        let q = sqlx::query(*sql);
        let q = if sql.contains("$1") { q.bind(id) } else { q };
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn single_break(report: &VerifyReport) -> &audit::Break {
    assert!(!report.is_clean(), "tampering went unnoticed:\n{report}");
    &report.breaks[0]
}

/// How many of `ids` are stored in `decisions`.
async fn stored_count(pool: &PgPool, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM decisions WHERE decision_id = ANY($1)")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn untouched_log_with_every_record_kind_verifies_clean(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "clean", &spool).await;
    let ids = fill(&w, 3, 10).await;
    let card = audit::find_card(
        &pool,
        Decision {
            decision_id: ids[1],
            ..decision(0)
        }
        .card_uuid(0),
    )
    .await
    .unwrap()
    .expect("card of a stored finding is found");
    assert_eq!(card.decision_id, ids[1]);
    assert_eq!(audit::find_card(&pool, Uuid::now_v7()).await.unwrap(), None);
    w.record_feedback(FeedbackRecord {
        card_uuid: Uuid::now_v7(),
        decision_id: Some(card.decision_id),
        outcome: FeedbackOutcome::Overridden,
        accepted_suggestions: vec![],
        override_reason_code: Some("patient-declined".into()),
        override_comment: Some("Says \"no\" — twice\n".into()),
        outcome_at: Utc::now(),
        client_id: Some("epic-test".into()),
    })
    .await
    .unwrap();
    w.record_rejection(RejectionRecord {
        at: Utc::now(),
        client_id: None,
        route: "/cds-services/vcf-order-sign".into(),
        reason: "jwt-expired".into(),
        status: 401,
        body_hash: Some("AB".repeat(32)),
        body_len: 1234,
    })
    .await
    .unwrap();
    w.record_event(EventRecord {
        kind: "dosing_alert.acknowledged".into(),
        actor: "Practitioner/pharm-1".into(),
        decision_id: Some(ids[0]),
        payload: json!({"note": "called prescriber", "n": 2.50, "list": [1, 0.1]}),
    })
    .await
    .unwrap();
    w.clone().shutdown().await;

    let report = verify(&pool).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.chains.len(), 1);
    assert_eq!(report.chains[0].rows, 16);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 3 + 10 * 2);

    // A checkpoint of the clean log holds and round-trips through JSON.
    let cp = audit::checkpoint(&pool, Some(b"secret")).await.unwrap();
    let cp: audit::Checkpoint = serde_json::from_str(&serde_json::to_string(&cp).unwrap()).unwrap();
    assert!(cp.check(Some(b"secret")).is_ok());
    assert!(
        audit::verify(&pool, Some(&cp), false)
            .await
            .unwrap()
            .is_clean()
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_changed_row_is_found_with_its_decision_id(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "changed", &spool).await;
    let ids = fill(&w, 4, 0).await;
    assert!(verify(&pool).await.is_clean());
    tamper(
        &pool,
        &["UPDATE decisions SET patient_ref = 'Patient/other' WHERE decision_id = $1"],
        ids[2],
    )
    .await;
    let report = verify(&pool).await;
    let b = single_break(&report);
    assert_eq!(
        (b.kind, b.decision_id, b.seq),
        (BreakKind::ChangedRow, Some(ids[2]), Some(3))
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_changed_finding_is_found(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "finding", &spool).await;
    let ids = fill(&w, 3, 0).await;
    tamper(
        &pool,
        &["UPDATE findings SET severity = 'info' WHERE decision_id = $1"],
        ids[1],
    )
    .await;
    let report = verify(&pool).await;
    assert_eq!(single_break(&report).kind, BreakKind::ChangedRow);
    assert_eq!(single_break(&report).decision_id, Some(ids[1]));
}

#[sqlx::test(migrations = "./migrations")]
async fn a_deleted_row_is_found(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "deleted", &spool).await;
    let ids = fill(&w, 2, 6).await;
    let victim = ids[4];
    let victim_seq: i64 =
        sqlx::query_scalar("SELECT batch_seq FROM decisions WHERE decision_id = $1")
            .bind(victim)
            .fetch_one(&pool)
            .await
            .unwrap();
    tamper(
        &pool,
        &[
            "DELETE FROM findings WHERE decision_id = $1",
            "DELETE FROM decisions WHERE decision_id = $1",
        ],
        victim,
    )
    .await;
    let report = verify(&pool).await;
    let b = single_break(&report);
    assert_eq!(b.kind, BreakKind::DeletedRow, "{report}");
    assert_eq!(b.seq, Some(victim_seq));
}

#[sqlx::test(migrations = "./migrations")]
async fn a_forged_inserted_row_is_found(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "forged", &spool).await;
    let ids = fill(&w, 3, 0).await;
    // A copy of a real decision under a new id, slotted into batch 2 as its second row; no
    // trigger has to be disabled for an INSERT.
    let forged = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO decisions SELECT $2, evaluated_at, recorded_at, channel, hook, \
            hook_instance, client_id, user_ref, patient_ref, encounter_ref, pathway_id, \
            pathway_version, pathway_hash, canonical_input, input_sha256, response, \
            response_sha256, unrecognized, missing_inputs, 0, chain_id, batch_seq, 1 \
         FROM decisions WHERE decision_id = $1",
    )
    .bind(ids[1])
    .bind(forged)
    .execute(&pool)
    .await
    .unwrap();
    let report = verify(&pool).await;
    let b = single_break(&report);
    assert_eq!(
        (b.kind, b.decision_id, b.seq),
        (BreakKind::InsertedRow, Some(forged), Some(2))
    );

    // A forged row outside any batch is an orphan.
    sqlx::query(
        "INSERT INTO decisions SELECT $2, evaluated_at, recorded_at, channel, hook, \
            hook_instance, client_id, user_ref, patient_ref, encounter_ref, pathway_id, \
            pathway_version, pathway_hash, canonical_input, input_sha256, response, \
            response_sha256, unrecognized, missing_inputs, 0, chain_id, 99, 0 \
         FROM decisions WHERE decision_id = $1",
    )
    .bind(ids[0])
    .bind(Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    let report = verify(&pool).await;
    assert!(
        report.breaks.iter().any(|b| b.kind == BreakKind::OrphanRow),
        "{report}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn reordered_rows_are_found(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "reordered", &spool).await;
    fill(&w, 1, 8).await;
    let (a, b): (Uuid, Uuid) = {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT decision_id FROM decisions WHERE batch_seq = (SELECT batch_seq FROM decisions \
             GROUP BY batch_seq HAVING count(*) >= 2 LIMIT 1) ORDER BY batch_pos LIMIT 2",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 2, "the concurrent records shared a batch");
        (rows[0].0, rows[1].0)
    };
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE decisions SET batch_pos = CASE WHEN decision_id = $1 \
            THEN (SELECT batch_pos FROM decisions WHERE decision_id = $2) \
            ELSE (SELECT batch_pos FROM decisions WHERE decision_id = $1) END \
         WHERE decision_id IN ($1, $2)",
    )
    .bind(a)
    .bind(b)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let report = verify(&pool).await;
    let brk = single_break(&report);
    assert_eq!(brk.kind, BreakKind::ChangedRow);
    assert!(
        brk.decision_id == Some(a) || brk.decision_id == Some(b),
        "{report}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_truncated_tail_is_found_against_the_checkpoint(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "tail", &spool).await;
    fill(&w, 4, 0).await;
    let cp = audit::checkpoint(&pool, None).await.unwrap();
    assert!(
        audit::verify(&pool, Some(&cp), false)
            .await
            .unwrap()
            .is_clean()
    );
    tamper(
        &pool,
        &[
            "DELETE FROM findings f USING decisions d WHERE f.decision_id = d.decision_id AND d.batch_seq = 4",
            "DELETE FROM decisions WHERE batch_seq = 4",
            "DELETE FROM audit_batches WHERE seq = 4",
        ],
        Uuid::nil(),
    )
    .await;
    // Without the checkpoint a cut tail looks like a shorter log; with it, it cannot hide.
    assert!(verify(&pool).await.is_clean());
    let report = audit::verify(&pool, Some(&cp), false).await.unwrap();
    assert_eq!(single_break(&report).kind, BreakKind::TruncatedTail);

    // A whole chain removed is a truncated tail too; a batch removed mid-chain is a gap.
    tamper(
        &pool,
        &["DELETE FROM audit_batches WHERE seq = 2"],
        Uuid::nil(),
    )
    .await;
    let report = verify(&pool).await;
    assert!(
        report
            .breaks
            .iter()
            .any(|b| b.kind == BreakKind::MissingBatch),
        "{report}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn the_database_refuses_update_delete_and_truncate_even_for_the_owner(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "refuse", &spool).await;
    let ids = fill(&w, 2, 0).await;
    let refused = [
        "UPDATE decisions SET patient_ref = 'x'",
        "DELETE FROM decisions",
        "TRUNCATE decisions CASCADE",
        "UPDATE findings SET severity = 'info'",
        "DELETE FROM findings",
        "UPDATE audit_batches SET row_count = 1",
        "DELETE FROM audit_batches",
        "TRUNCATE audit_batches",
        "TRUNCATE findings",
        "TRUNCATE feedback",
        "TRUNCATE audit_events",
        "TRUNCATE rejected_requests",
    ];
    for sql in refused {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // Partitions are protected too, TRUNCATE included (their triggers are not inherited).
    let partition: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM findings LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let err = sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {partition}")))
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM decisions WHERE decision_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 2);
}

#[sqlx::test(migrations = "./migrations")]
async fn the_writer_role_may_insert_and_select_only(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "role", &spool).await;
    fill(&w, 1, 0).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET ROLE orderguard_writer")
        .execute(&mut *conn)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    sqlx::query("INSERT INTO audit_chains (chain_id) VALUES ('role-2')")
        .execute(&mut *conn)
        .await
        .unwrap();
    for sql in [
        "UPDATE decisions SET patient_ref = 'x'",
        "DELETE FROM audit_chains",
        "ALTER TABLE decisions DISABLE TRIGGER ALL",
        "DROP TABLE audit_events",
    ] {
        let err = sqlx::query(sql).execute(&mut *conn).await.expect_err(sql);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert!(
            code.as_deref() == Some("42501") || err.to_string().contains("must be owner"),
            "{sql}: {err}"
        );
        assert!(
            !err.to_string().contains("append-only"),
            "{sql}: the role itself must refuse"
        );
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn two_writers_on_one_database_keep_separate_chains(pool: PgPool) {
    let spool_a = tempfile::tempdir().unwrap();
    let spool_b = tempfile::tempdir().unwrap();
    let a = writer(&pool, "instance-a", &spool_a).await;
    let b = writer(&pool, "instance-b", &spool_b).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..400 {
        let w = if i % 2 == 0 { a.clone() } else { b.clone() };
        set.spawn(async move {
            let r = record(i % 3);
            let id = r.decision_id;
            w.record(r).await.map(|_| id)
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = set.join_next().await {
        ids.push(done.unwrap().unwrap());
    }
    a.shutdown().await;
    b.shutdown().await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT decision_id) FROM decisions WHERE decision_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 400);
    let report = verify(&pool).await;
    assert!(report.is_clean(), "{report}");
    let chains: Vec<(&str, u64)> = report
        .chains
        .iter()
        .map(|c| (c.chain_id.as_str(), c.rows))
        .collect();
    assert_eq!(chains, [("instance-a", 200), ("instance-b", 200)]);
    assert!(
        report.chains.iter().all(|c| c.batches < 200),
        "records were grouped into batches"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_restarted_writer_continues_its_chain_and_replays_are_idempotent(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "restart", &spool).await;
    let r = record(1);
    w.record(r.clone()).await.unwrap();
    w.shutdown().await;
    let w = writer(&pool, "restart", &spool).await;
    // The same decision again (a replay after a lost commit reply) is stored once.
    w.record(r.clone()).await.unwrap();
    w.record(record(0)).await.unwrap();
    w.shutdown().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions WHERE decision_id = $1")
        .bind(r.decision_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let report = verify(&pool).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.chains[0].batches, report.chains[0].rows), (2, 2));
}

#[sqlx::test(migrations = "./migrations")]
async fn lanes_of_one_writer_each_keep_a_chain(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let mut config = WriterConfig::new(spool.path().to_owned());
    config.chain_id = Some("laned".into());
    config.lanes = 3;
    let w = AuditWriter::start(pool.clone(), config).await.unwrap();
    let ids = fill(&w, 0, 90).await;
    w.shutdown().await;
    let report = verify(&pool).await;
    assert!(report.is_clean(), "{report}");
    let chains: Vec<&str> = report.chains.iter().map(|c| c.chain_id.as_str()).collect();
    assert_eq!(chains, ["laned", "laned.1", "laned.2"]);
    assert_eq!(
        report.chains.iter().map(|c| c.rows).sum::<u64>(),
        ids.len() as u64
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_batch_holding_an_already_stored_decision_stores_the_others_once(pool: PgPool) {
    // The one-statement commit has no ON CONFLICT: a stored decision in the batch makes it fail
    // whole, and the writer must fall back to the careful path rather than refuse the batch.
    let spool = tempfile::tempdir().unwrap();
    let mut config = WriterConfig::new(spool.path().to_owned());
    config.chain_id = Some("retry".into());
    config.lanes = 1;
    config.max_wait = Duration::from_millis(200);
    let w = AuditWriter::start(pool.clone(), config).await.unwrap();
    let stored = record(1);
    w.record(stored.clone()).await.unwrap();
    w.record(record(2)).await.unwrap(); // the head is known now: the next batch goes fast
    let mut set = tokio::task::JoinSet::new();
    let fresh: Vec<AuditRecord> = (0..3).map(|_| record(2)).collect();
    for r in fresh.iter().cloned().chain([stored.clone()]) {
        let w = w.clone();
        set.spawn(async move { w.record(r).await });
    }
    while let Some(result) = set.join_next().await {
        assert_eq!(result.unwrap().unwrap(), Durability::Committed);
    }
    w.shutdown().await;
    for r in fresh.iter().chain([&stored]) {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions WHERE decision_id = $1")
            .bind(r.decision_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "{}", r.decision_id);
    }
    let findings: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(findings, 1 + 2 + 3 * 2);
    let report = verify(&pool).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.chains[0].rows, 5);
}

// --- The stored input: what `decisions.canonical_input` keeps, and replaying from it ---------

use orderguard::decide;
use orderguard::pathway::Plan;
use std::path::{Path, PathBuf};

fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ORDERGUARD_SHARED") {
        return dir.into();
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if beside.is_dir() {
        beside
    } else {
        "/work/shared".into()
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// Every CDS Hooks request the project has: the clinical fixture cases, the 20-order load
/// request and the shared conformance requests that orderguard accepts.
fn cds_hooks_requests() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    json_files(&root.join("fixtures/cases"), &mut files);
    json_files(&root.join("fixtures/cds-hooks"), &mut files);
    json_files(&shared_dir().join("conformance/cds-hooks"), &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let is_hooks = serde_json::from_slice::<serde_json::Value>(&bytes)
                .is_ok_and(|v| v.get("hook").is_some_and(|h| h.is_string()));
            is_hooks.then_some((path, bytes))
        })
        .collect()
}

#[test]
fn the_stored_input_replays_to_the_same_decision_for_every_request() {
    let plan = Plan::builtin();
    let now = "2026-11-24T09:30:00Z".parse().unwrap();
    let id = Uuid::now_v7();
    let mut replayed = 0;
    for (path, bytes) in cds_hooks_requests() {
        let name = path.display();
        let Ok(mut original) = decide::prepare(&bytes) else {
            continue; // requests orderguard rejects are never stored
        };
        let stored = original.canonical_input.clone();
        assert!(
            !String::from_utf8_lossy(&stored).contains("access_token"),
            "{name}: the FHIR token must never be stored"
        );
        let mut again = decide::prepare(&stored).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The stored form is a fixed point: replaying it and storing again gives the same bytes.
        assert_eq!(again.canonical_input, stored, "{name}");
        assert_eq!(again.input, original.input, "{name}");
        assert_eq!(
            (&again.hook, &again.hook_instance, &again.user_ref),
            (&original.hook, &original.hook_instance, &original.user_ref),
            "{name}"
        );
        assert_eq!(
            (&again.patient_ref, &again.encounter_ref, &again.notes),
            (
                &original.patient_ref,
                &original.encounter_ref,
                &original.notes
            ),
            "{name}"
        );
        let first = decide::decide(&plan, &mut original, now, id);
        let second = decide::decide(&plan, &mut again, now, id);
        assert_eq!(first, second, "{name}");
        assert_eq!(
            serde_json::to_vec(&decide::render(&original, &first)).unwrap(),
            serde_json::to_vec(&decide::render(&again, &second)).unwrap(),
            "{name}: the answer differs"
        );
        replayed += 1;
    }
    // 13 when written: the CDS Hooks fixture cases, the 20-order request and the accepted
    // conformance requests.
    assert!(replayed >= 10, "only {replayed} requests replayed");
}

#[sqlx::test(migrations = "./migrations")]
async fn a_recorded_decision_replays_exactly_from_the_database(pool: PgPool) {
    // What the service does for a 20-order order-sign request, then what replay does with the
    // stored row: the same findings and the same answer, byte for byte.
    let plan = Plan::builtin();
    let body = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cds-hooks/order-sign-20-orders.json"),
    )
    .unwrap();
    let mut prepared = decide::prepare(&body).unwrap();
    // The service decides at a time PostgreSQL can keep (microseconds), as replay will.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let decision = decide::decide(&plan, &mut prepared, now, Uuid::now_v7());
    let response = serde_json::to_vec(&decide::render(&prepared, &decision)).unwrap();
    assert!(!decision.evaluation.findings.is_empty());
    let meta = RequestMeta {
        channel: Channel::CdsHooks,
        hook: prepared.hook.clone(),
        hook_instance: prepared.hook_instance.clone(),
        client_id: None,
        user_ref: prepared.user_ref.clone(),
        patient_ref: prepared.patient_ref.clone(),
        encounter_ref: prepared.encounter_ref.clone(),
    };
    let stored_len = prepared.canonical_input.len();
    let record = AuditRecord::from_decision(
        &decision,
        meta,
        std::mem::take(&mut prepared.canonical_input),
        response.clone(),
    );
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "replay", &spool).await;
    w.record(record).await.unwrap();
    w.shutdown().await;

    let (input, evaluated_at, stored_response): (Vec<u8>, chrono::DateTime<Utc>, Vec<u8>) =
        sqlx::query_as(
            "SELECT canonical_input, evaluated_at, response FROM decisions WHERE decision_id = $1",
        )
        .bind(decision.decision_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(input.len(), stored_len);
    assert_eq!(stored_response, response);
    let mut replay = decide::prepare(&input).unwrap();
    let again = decide::decide(&plan, &mut replay, evaluated_at, decision.decision_id);
    assert_eq!(again.evaluation, decision.evaluation);
    assert_eq!(
        serde_json::to_vec(&decide::render(&replay, &again)).unwrap(),
        stored_response
    );
    // Only what the adapter reads is kept: less than the request as sent, even compact (43.8 kB
    // of 62.0 kB when written; most of what remains is codings, which rules do read).
    let compact = orderguard::canonical::canonicalize(&body).unwrap();
    assert!(
        stored_len < compact.len() * 4 / 5,
        "{stored_len} bytes stored of a {} byte request",
        compact.len()
    );
    assert!(verify(&pool).await.is_clean());
}

/// Found by the bad-input corpus (docs/reliability.md): a 1.5 MB patient reference is too large
/// for its index entry (SQLSTATE 54000). It used to count as an outage: the record was spooled,
/// and the spool's replay retried it forever, answering 503 for every later decision of that
/// lane. It is refused now, alone, and the writer goes on committing.
#[sqlx::test(migrations = "./migrations")]
async fn a_record_too_large_for_its_index_is_refused_and_the_writer_goes_on(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, "index-limit", &spool).await;
    let mut huge = record(1);
    // Random-looking text, so that compression does not rescue it.
    huge.patient_ref = Some(
        (0..400_000u32)
            .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
            .collect(),
    );
    let refused = w.record(huge).await;
    assert!(
        matches!(refused, Err(audit::AuditError::Refused(_))),
        "{refused:?}"
    );
    assert!(!w.health().spooling, "a refused record is not an outage");
    assert_eq!(w.health().spool_bytes, 0, "nothing spooled");
    let ids = fill(&w, 3, 5).await;
    w.shutdown().await;
    let stored = stored_count(&pool, &ids).await;
    assert_eq!(stored, 8);
    assert!(verify(&pool).await.is_clean());
}
