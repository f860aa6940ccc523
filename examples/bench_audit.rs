//! Audit writer benchmark (run through `scripts/bench-audit.sh`, which adds the pgbench
//! baseline). Usage:
//!
//! ```text
//! bench_audit writer DATABASE_URL SECONDS CLIENTS   # through AuditWriter (group commit)
//! bench_audit single DATABASE_URL SECONDS CLIENTS   # one INSERT statement per decision
//! ```
//!
//! Both store the same rows: one decision (~0.8 kB canonical input, ~0.3 kB response) with one
//! finding. Prints one line: `mode decisions/s p50_ms p99_ms count`, latency being the time from
//! handing the record over to it being durable (committed, synchronous_commit on).
//!
//! Both modes run CLIENTS concurrent requests, each looping: build a record, hand it over, wait
//! until it is durable. They share one pool of `min(CLIENTS, 16) + 2` connections (`BENCH_POOL`
//! overrides it). `writer`: the service's `AuditWriter` (its default lanes and batch size) on
//! that pool. `single`: each request runs one autocommitted statement on a pooled connection
//! (a CTE inserting its decision row and its one finding; no hash chain, which only flatters
//! it): the naive design, where PostgreSQL's own WAL group commit is the only batching.
//!
//! `BENCH_INPUT_FILE=request.json` stores, instead of the 0.8 kB input, what the service stores
//! for that request (`decide::prepare(..).canonical_input`), to see the writer with real sizes.

use chrono::Utc;
use orderguard::audit::{
    self, AuditRecord, AuditWriter, Channel, Durability, RequestMeta, WriterConfig,
};
use orderguard::decision::{
    Decision, Evaluation, Finding, Number, Numbers, PathwayRef, Severity, Texts,
};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn record(input: &[u8]) -> AuditRecord {
    let decision = Decision {
        decision_id: Uuid::now_v7(),
        pathway: PathwayRef {
            id: "vcf".into(),
            version: "1.0.0".into(),
            content_hash: "ab".repeat(32),
        },
        evaluated_at: Utc::now(),
        evaluation: Evaluation {
            findings: vec![Finding {
                rule_id: "DOSE-MME-90".into(),
                severity: Severity::Warning,
                order_ref: Some(orderguard::domain::OrderRef("MedicationRequest/m1".into())),
                texts: Texts::new("Opioid dose above 90 MME/day", ""),
                numbers: Numbers::from([("mme_per_day".into(), Number::from(120.5))]),
                labels: Default::default(),
                suggestions: vec![],
                citations: Default::default(),
            }],
            ..Evaluation::default()
        },
    };
    let mut meta = RequestMeta::new(Channel::CdsHooks);
    meta.hook = Some("order-sign".into());
    meta.patient_ref = Some("Patient/p1".into());
    meta.user_ref = Some("Practitioner/dr1".into());
    AuditRecord::from_decision(&decision, meta, input.to_vec(), vec![b'r'; 300])
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, url, seconds, clients] = &args[..] else {
        anyhow::bail!("usage: bench_audit writer|single DATABASE_URL SECONDS CLIENTS");
    };
    let seconds: u64 = seconds.parse()?;
    let clients: usize = clients.parse()?;
    let pool_size = std::env::var("BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(clients.min(16) as u32 + 2);
    let input: Arc<Vec<u8>> = Arc::new(match std::env::var("BENCH_INPUT_FILE") {
        Ok(file) => {
            orderguard::decide::prepare(&std::fs::read(&file)?)
                .map_err(|e| anyhow::anyhow!("{file}: {e}"))?
                .canonical_input
        }
        Err(_) => orderguard::canonical::to_vec(&json!({ "orders": "x".repeat(780) })),
    });
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(url)
        .await?;
    audit::migrate(&pool).await?;

    let spool = tempfile::tempdir()?;
    let writer = if mode == "writer" {
        let mut config = WriterConfig::new(spool.path().to_owned());
        config.ack_deadline = Duration::from_secs(10);
        // Knobs for exploring; the defaults are what the service uses.
        if let Some(lanes) = std::env::var("BENCH_LANES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.lanes = lanes;
        }
        if let Some(n) = std::env::var("BENCH_MAX_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.max_batch = n;
        }
        Some(AuditWriter::start(pool.clone(), config).await?)
    } else {
        None
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (writer, pool, input) = (writer.clone(), pool.clone(), input.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < end {
                let r = record(&input);
                let t0 = Instant::now();
                match &writer {
                    Some(w) => {
                        let d = w.record(r).await?;
                        anyhow::ensure!(d == Durability::Committed, "spooled during the benchmark");
                    }
                    None => insert_one(&pool, &r).await?,
                }
                latencies.push(t0.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(w) = writer {
        w.shutdown().await;
    }
    latencies.sort();
    println!(
        "{mode} {:.0} {:.2} {:.2} {}",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    Ok(())
}

/// The naive design: one autocommitted statement per decision (decision + its finding).
async fn insert_one(pool: &sqlx::PgPool, r: &AuditRecord) -> anyhow::Result<()> {
    let f = &r.findings[0];
    sqlx::query(
        "WITH d AS (INSERT INTO decisions (decision_id, evaluated_at, recorded_at, channel, hook, \
            patient_ref, user_ref, pathway_id, pathway_version, pathway_hash, canonical_input, \
            input_sha256, response, response_sha256, finding_count, chain_id, batch_seq, batch_pos) \
          VALUES ($1, $2, now(), 'cds-hooks', 'order-sign', 'Patient/p1', 'Practitioner/dr1', \
            'vcf', '1.0.0', $3, $4, sha256($4), $5, sha256($5), 1, 'single', 0, 0) \
          RETURNING decision_id, evaluated_at) \
         INSERT INTO findings (decision_id, evaluated_at, finding_index, rule_id, severity, \
            order_ref, card_uuid, numbers) \
         SELECT decision_id, evaluated_at, 0, $6, 'warning', 'MedicationRequest/m1', $7, $8 FROM d",
    )
    .bind(r.decision_id)
    .bind(r.evaluated_at)
    .bind(&r.pathway.content_hash)
    .bind(&r.canonical_input)
    .bind(&r.response)
    .bind(&f.rule_id)
    .bind(f.card_uuid)
    .bind(sqlx::types::Json(&f.numbers))
    .execute(pool)
    .await?;
    Ok(())
}
