//! Seeds stored decisions for the replay benchmark (`scripts/bench-replay.sh`): the real engine
//! decides copies of the fixture cases (every case, plus the morphine case at ten doses), spread
//! over November and December 2026, and the real AuditWriter records them, durable and
//! hash-chained. Up to 512 records are in flight at once, so the writer commits them in batches
//! of up to 512 rows (its group-commit path) instead of one transaction per decision.
//!
//! Usage: `DATABASE_URL=... seed_decisions N [DRAFT_OUT]` — DRAFT_OUT receives the shipped
//! pathway with DOSE-MME-50 raised to 90 MME/day (the what-if draft of the benchmark).

use chrono::{DateTime, Duration, Utc};
use orderguard::audit::{self, AuditRecord, AuditWriter, Channel, RequestMeta, WriterConfig};
use orderguard::decide;
use orderguard::pathway::Plan;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

const IN_FLIGHT: usize = 512;

fn templates() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != "expected.json")
        })
        .collect();
    names.sort();
    for path in names {
        let bytes = std::fs::read(&path).expect("a fixture case");
        let mut value: Value = serde_json::from_slice(&bytes).expect("fixture JSON");
        // The decision's time is chosen below; a native case's own time would override it.
        if let Some(obj) = value.as_object_mut() {
            obj.remove("evaluated_at");
        }
        let is_morphine = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("10-mme-50"));
        if is_morphine {
            for mg in [10.0, 12.5, 15.0, 20.0, 22.4, 22.5, 25.0, 30.0, 45.0, 60.0] {
                let mut copy = value.clone();
                copy["medications"][0]["dose"]["value"] = json!(mg);
                out.push(serde_json::to_vec(&copy).expect("JSON"));
            }
        }
        out.push(serde_json::to_vec(&value).expect("JSON"));
    }
    out
}

fn draft() -> Value {
    let mut v: Value = serde_json::from_str(orderguard::pathway::BUILTIN_VCF).expect("shipped");
    v["version"] = json!(format!(
        "{}-draft-mme90",
        v["version"].as_str().unwrap_or("")
    ));
    for rule in v["rules"].as_array_mut().expect("rules") {
        if rule["id"] == "DOSE-MME-50" {
            rule["params"] = json!({ "min_mme": 90 });
        }
    }
    v
}

fn record_for(plan: &Plan, template: &[u8], at: DateTime<Utc>) -> AuditRecord {
    let mut prepared = decide::prepare(template).expect("a fixture case reads");
    let decision = decide::decide(plan, &mut prepared, at, Uuid::now_v7());
    let answer = decide::render(&prepared, &decision);
    let channel = if prepared.hook.is_some() {
        Channel::CdsHooks
    } else {
        Channel::Native
    };
    let meta = RequestMeta {
        hook: prepared.hook.take(),
        hook_instance: prepared.hook_instance.take(),
        patient_ref: prepared.patient_ref.take(),
        ..RequestMeta::new(channel)
    };
    let response = decide::response_bytes(channel, &answer);
    AuditRecord::from_decision(
        &decision,
        meta,
        std::mem::take(&mut prepared.canonical_input),
        response,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    if let Some(out) = args.next() {
        std::fs::write(&out, serde_json::to_vec_pretty(&draft())?)?;
    }
    if n == 0 {
        return Ok(());
    }
    let url = std::env::var("DATABASE_URL")?;
    let (pool, _) = audit::connect(Some(&url), std::path::Path::new("unused")).await?;
    let spool = tempfile::tempdir()?;
    let mut config = WriterConfig::new(spool.path().to_owned());
    config.max_batch = IN_FLIGHT;
    config.ack_deadline = std::time::Duration::from_secs(60);
    let writer = AuditWriter::start(pool.clone(), config).await?;
    let templates = Arc::new(templates());
    let plan = Plan::builtin();
    let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse()?;
    // Two months, in whole seconds apart, whatever N.
    let span = 61 * 24 * 3600;
    let next = Arc::new(AtomicU64::new(0));
    let began = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (writer, templates, plan, next) = (
            writer.clone(),
            templates.clone(),
            plan.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, audit::AuditError>(());
                }
                let template = &templates[(i % templates.len() as u64) as usize];
                let at = start + Duration::seconds(((i * 7919) % span) as i64);
                let record = record_for(&plan, template, at);
                writer.record(record).await?;
                if (i + 1) % 100_000 == 0 {
                    eprintln!("seeded {} decisions", i + 1);
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    writer.shutdown().await;
    let elapsed = began.elapsed().as_secs_f64();
    eprintln!(
        "seeded {n} decisions from {} templates in {elapsed:.1} s ({:.0}/s)",
        templates.len(),
        n as f64 / elapsed
    );
    pool.close().await;
    Ok(())
}
