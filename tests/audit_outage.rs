//! Database outages against a throwaway PostgreSQL cluster of our own (EmbeddedPostgres in a
//! temporary folder, on its own Unix socket): records keep being acknowledged from the spool
//! while the cluster is down, and every acknowledged record ends up in PostgreSQL exactly once.

use chrono::Utc;
use orderguard::audit::{
    self, AuditError, AuditRecord, AuditWriter, Channel, Durability, EmbeddedPostgres, RequestMeta,
    WriterConfig,
};
use orderguard::decision::{Decision, Evaluation, PathwayRef};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

fn record() -> AuditRecord {
    let decision = Decision {
        decision_id: Uuid::now_v7(),
        pathway: PathwayRef {
            id: "vcf".into(),
            version: "1".into(),
            content_hash: "00".into(),
        },
        evaluated_at: Utc::now(),
        evaluation: Evaluation::default(),
    };
    let input = br#"{"orders":[]}"#.to_vec();
    AuditRecord::from_decision(
        &decision,
        RequestMeta::new(Channel::Native),
        input,
        b"{}".to_vec(),
    )
}

fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(url)
        .expect("valid url")
}

fn config(spool: &tempfile::TempDir, cap: u64) -> WriterConfig {
    let mut config = WriterConfig::new(spool.path().to_owned());
    config.ack_deadline = Duration::from_secs(3);
    config.spool_cap_bytes = cap;
    config
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_each(pool: &PgPool, ids: &[Uuid]) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT decision_id) FROM decisions WHERE decision_id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_load_is_served_from_the_spool_and_replayed_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let (pg, url) = EmbeddedPostgres::start(data.path())
        .await
        .expect("embedded cluster starts");
    let pool = pool(&url);
    audit::migrate(&pool).await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let writer = AuditWriter::start(pool.clone(), config(&spool, 64 << 20))
        .await
        .unwrap();

    // Eight clients record continuously; every acknowledged id is kept.
    let acknowledged = Arc::new(Mutex::new(Vec::<(Uuid, Durability)>::new()));
    let failed = Arc::new(Mutex::new(Vec::<AuditError>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (writer, acknowledged, failed, stop) = (
            writer.clone(),
            acknowledged.clone(),
            failed.clone(),
            stop.clone(),
        );
        clients.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = record();
                let id = r.decision_id;
                match writer.record(r).await {
                    Ok(d) => acknowledged.lock().unwrap().push((id, d)),
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        });
    }
    let acked = |n: usize| {
        let acknowledged = acknowledged.clone();
        async move || acknowledged.lock().unwrap().len() >= n
    };
    wait_for("load before the outage", acked(200)).await;
    pg.stop().await.expect("cluster stops");
    let at_stop = acknowledged.lock().unwrap().len();
    wait_for("acknowledgements during the outage", acked(at_stop + 300)).await;
    assert!(
        writer.health().spooling,
        "health reports spooling during the outage"
    );
    assert!(writer.health().spool_bytes > 0);

    let (pg, _) = EmbeddedPostgres::start(data.path())
        .await
        .expect("cluster restarts");
    let at_restart = acknowledged.lock().unwrap().len();
    wait_for("load after the outage", acked(at_restart + 200)).await;
    let health = writer.clone();
    wait_for("the spool to drain", async || {
        health.health().spool_bytes == 0
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while clients.join_next().await.is_some() {}
    writer.clone().shutdown().await;

    let acknowledged = acknowledged.lock().unwrap().clone();
    let spooled = acknowledged
        .iter()
        .filter(|(_, d)| *d == Durability::Spooled)
        .count();
    assert!(
        spooled >= 300,
        "only {spooled} records went through the spool"
    );
    assert!(!writer.health().spooling);
    let ids: Vec<Uuid> = acknowledged.iter().map(|(id, _)| *id).collect();
    let (rows, distinct) = count_each(&pool, &ids).await;
    assert_eq!(
        (rows, distinct),
        (ids.len() as i64, ids.len() as i64),
        "each acknowledged id exactly once"
    );
    // Requests that failed during the switch (deadline) were answered 503, never acknowledged.
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.iter().all(|e| *e == AuditError::DeadlineExceeded),
        "{failed:?}"
    );

    let report = audit::verify(&pool, None, false).await.unwrap();
    assert!(report.is_clean(), "{report}");
    pool.close().await;
    pg.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_fails_closed_and_loses_nothing_acknowledged() {
    // The database is not there at all yet: the socket folder is empty.
    let data = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://postgres@localhost/postgres?host={}",
        std::fs::canonicalize(data.path()).unwrap().display()
    );
    let pool = pool(&url);
    let spool = tempfile::tempdir().unwrap();
    let writer = AuditWriter::start(pool.clone(), config(&spool, 6_000))
        .await
        .unwrap();
    assert!(writer.health().spooling);

    let mut acknowledged = BTreeSet::new();
    let mut refused = Vec::new();
    for _ in 0..100 {
        let r = record();
        let id = r.decision_id;
        match writer.record(r).await {
            Ok(d) => {
                assert_eq!(d, Durability::Spooled);
                acknowledged.insert(id);
            }
            Err(e) => {
                assert_eq!(e, AuditError::SpoolFull);
                refused.push(id);
            }
        }
    }
    assert!(
        !acknowledged.is_empty() && !refused.is_empty(),
        "the 6 kB cap was reached"
    );
    assert!(writer.health().spool_bytes <= 6_000);

    // The database arrives; the spool drains into it.
    let (pg, _) = EmbeddedPostgres::start(data.path())
        .await
        .expect("cluster starts");
    audit::migrate(&pool).await.unwrap();
    let health = writer.clone();
    wait_for("the spool to drain", async || {
        health.health().spool_bytes == 0
    })
    .await;
    writer.shutdown().await;

    let ids: Vec<Uuid> = acknowledged.iter().copied().collect();
    assert_eq!(
        count_each(&pool, &ids).await,
        (ids.len() as i64, ids.len() as i64)
    );
    assert_eq!(
        count_each(&pool, &refused).await.0,
        0,
        "refused records were never acknowledged"
    );
    let report = audit::verify(&pool, None, false).await.unwrap();
    assert!(report.is_clean(), "{report}");
    pool.close().await;
    pg.stop().await.unwrap();
}

#[tokio::test]
async fn missing_binaries_name_the_package_and_database_url() {
    let message = audit::EmbeddedError::NoBinaries.to_string();
    assert!(
        message.contains("postgresql") && message.contains("DATABASE_URL"),
        "{message}"
    );
}
