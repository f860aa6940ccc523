//! Replay of stored decisions: `orderguard replay`.
//!
//! - [`whatif`]: re-evaluate past decisions' stored inputs under a draft pathway and report, per
//!   rule, the cards that would appear, disappear or change severity, and the alert burden.
//! - [`determinism`]: re-evaluate under the version that decided and check every stored finding
//!   is reproduced exactly.
//! - [`output`]: the reports as a table, CSV, JSON and a self-contained HTML page.
//!
//! Both stream the `decisions` rows of a window from PostgreSQL ([`run`]): one reader on the
//! async runtime hands chunks of rows to worker threads (one per core by default) over a bounded
//! queue, so memory stays at a few chunks whatever the window holds. Each stored input is read
//! back with [`crate::decide::from_stored`] only. Nothing is written to the decision tables; the
//! CLI records the run itself as one audit event.

pub mod determinism;
pub mod output;
pub mod whatif;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The decisions to replay: `evaluated_at` in `[from, to)`; open ends when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One finding as the audit log stored it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StoredFinding {
    pub rule_id: String,
    pub severity: String,
    pub order_ref: Option<String>,
    pub card_uuid: Option<Uuid>,
    pub numbers: Value,
}

/// One stored decision with what replay needs of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDecision {
    pub decision_id: Uuid,
    pub evaluated_at: DateTime<Utc>,
    pub channel: String,
    pub hook: Option<String>,
    pub pathway_version: String,
    pub pathway_hash: String,
    pub canonical_input: Vec<u8>,
    pub response_sha256: Vec<u8>,
    pub unrecognized: Value,
    pub missing_inputs: Value,
    #[sqlx(json)]
    pub findings: Vec<StoredFinding>,
}

impl StoredDecision {
    /// A CDS Hooks order-sign call: the denominator of the alert burden.
    pub fn is_order_sign(&self) -> bool {
        self.hook.as_deref() == Some("order-sign")
    }
}

/// Decisions in the window, findings in their stored order. No ORDER BY: a sequential scan
/// streams fastest, and nothing in a report depends on the order rows arrive in.
const DECISIONS_SQL: &str = "SELECT d.decision_id, d.evaluated_at, d.channel, d.hook, \
        d.pathway_version, d.pathway_hash, d.canonical_input, d.response_sha256, \
        d.unrecognized, d.missing_inputs, \
        COALESCE((SELECT jsonb_agg(jsonb_build_object('rule_id', f.rule_id, \
            'severity', f.severity, 'order_ref', f.order_ref, 'card_uuid', f.card_uuid, \
            'numbers', f.numbers) ORDER BY f.finding_index) \
          FROM findings f \
          WHERE f.decision_id = d.decision_id AND f.evaluated_at = d.evaluated_at), \
        '[]'::jsonb) AS findings \
     FROM decisions d \
     WHERE ($1::timestamptz IS NULL OR d.evaluated_at >= $1) \
       AND ($2::timestamptz IS NULL OR d.evaluated_at < $2)";

/// How many decisions the window holds.
pub async fn count(pool: &PgPool, window: &Window) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM decisions \
         WHERE ($1::timestamptz IS NULL OR evaluated_at >= $1) \
           AND ($2::timestamptz IS NULL OR evaluated_at < $2)",
    )
    .bind(window.from)
    .bind(window.to)
    .fetch_one(pool)
    .await?;
    Ok(n.max(0) as u64)
}

/// What a replay does with each stored decision, on a worker thread.
pub trait Job: Send + Sync + 'static {
    /// Per-worker totals, merged at the end.
    type Acc: Default + Send + 'static;
    fn replay_one(&self, decision: StoredDecision, acc: &mut Self::Acc);
    fn merge(into: &mut Self::Acc, other: Self::Acc);
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads evaluating (default: one per core).
    pub workers: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// The progress bar's label.
    pub label: &'static str,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            progress: false,
            label: "replaying",
        }
    }
}

/// How long a run took over how many decisions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunStats {
    pub decisions: u64,
    pub workers: usize,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

impl RunStats {
    pub fn per_second(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading stored decisions: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a replay worker failed: {0}")]
    Worker(String),
}

/// Rows per chunk handed to a worker, and chunks queued per worker: bounds memory.
const CHUNK: usize = 64;
const QUEUED_PER_WORKER: usize = 4;

/// Streams the window's decisions to `job` on `options.workers` threads and merges their totals.
pub async fn run<J: Job>(
    pool: &PgPool,
    window: &Window,
    job: Arc<J>,
    options: &RunOptions,
) -> Result<(J::Acc, RunStats), ReplayError> {
    let started = Instant::now();
    let workers = options.workers.max(1);
    let bar = if options.progress {
        let bar = indicatif::ProgressBar::new(count(pool, window).await?);
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{} {{bar:40}} {{pos}}/{{len}} decisions ({{per_sec}}, eta {{eta}})",
                options.label
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<StoredDecision>>(workers * QUEUED_PER_WORKER);
    let rx = Arc::new(Mutex::new(rx));
    let handles: Vec<std::thread::JoinHandle<(J::Acc, u64)>> = (0..workers)
        .map(|i| {
            let rx = rx.clone();
            let job = job.clone();
            let bar = bar.clone();
            std::thread::Builder::new()
                .name(format!("replay-{i}"))
                .spawn(move || {
                    let mut acc = J::Acc::default();
                    let mut done = 0u64;
                    loop {
                        // The lock is held only while waiting for the next chunk.
                        let chunk = rx.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
                        let Some(chunk) = chunk else { break };
                        let n = chunk.len() as u64;
                        for decision in chunk {
                            job.replay_one(decision, &mut acc);
                        }
                        done += n;
                        bar.inc(n);
                    }
                    (acc, done)
                })
                .expect("a replay worker thread starts")
        })
        .collect();

    let mut read_error = None;
    {
        let mut rows = sqlx::query_as::<_, StoredDecision>(DECISIONS_SQL)
            .bind(window.from)
            .bind(window.to)
            .fetch(pool);
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(row) = rows.next().await {
            match row {
                Ok(decision) => {
                    chunk.push(decision);
                    if chunk.len() == CHUNK
                        && tx
                            .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
                Err(error) => {
                    read_error = Some(error);
                    break;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(chunk).await;
        }
    }
    drop(tx);
    let joined = tokio::task::spawn_blocking(move || {
        handles
            .into_iter()
            .map(|h| h.join())
            .collect::<Vec<Result<(J::Acc, u64), _>>>()
    })
    .await
    .map_err(|e| ReplayError::Worker(e.to_string()))?;
    bar.finish_and_clear();
    if let Some(error) = read_error {
        return Err(error.into());
    }
    let mut total = J::Acc::default();
    let mut decisions = 0;
    for result in joined {
        let (acc, n) = result.map_err(|_| ReplayError::Worker("a worker panicked".into()))?;
        J::merge(&mut total, acc);
        decisions += n;
    }
    Ok((
        total,
        RunStats {
            decisions,
            workers,
            elapsed: started.elapsed(),
        },
    ))
}

/// Up to [`Examples::KEEP`] decision ids, the smallest ones, so that a report is the same
/// whichever worker saw which decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Examples(Vec<Uuid>);

impl Examples {
    pub const KEEP: usize = 5;

    pub fn add(&mut self, id: Uuid) {
        if self.0.contains(&id) {
            return;
        }
        if self.0.len() < Self::KEEP {
            self.0.push(id);
            self.0.sort();
        } else if self.0.last().is_some_and(|last| id < *last) {
            self.0.pop();
            self.0.push(id);
            self.0.sort();
        }
    }

    pub fn merge(&mut self, other: Examples) {
        for id in other.0 {
            self.add(id);
        }
    }

    pub fn ids(&self) -> &[Uuid] {
        &self.0
    }
}

/// JSON equality where numbers compare by value (`50` equals `50.0`): jsonb and serde_json may
/// spell the same number differently.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn examples_keep_the_smallest_ids_whatever_the_order() {
        let ids: Vec<Uuid> = (1..=9u128).map(Uuid::from_u128).collect();
        let mut forward = Examples::default();
        ids.iter().for_each(|id| forward.add(*id));
        let mut backward = Examples::default();
        ids.iter().rev().for_each(|id| backward.add(*id));
        let mut merged = Examples::default();
        let mut other = Examples::default();
        ids[..4].iter().for_each(|id| merged.add(*id));
        ids[4..].iter().for_each(|id| other.add(*id));
        merged.merge(other);
        assert_eq!(forward.ids(), &ids[..5]);
        assert_eq!(backward, forward);
        assert_eq!(merged, forward);
        forward.add(ids[0]);
        assert_eq!(forward.ids().len(), 5);
    }

    #[test]
    fn numbers_compare_by_value_and_everything_else_exactly() {
        assert!(same_json(
            &json!({"a": 50, "b": [1.5]}),
            &json!({"a": 50.0, "b": [1.5]})
        ));
        assert!(!same_json(&json!({"a": 50}), &json!({"a": 50.0001})));
        assert!(!same_json(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same_json(&json!(["x"]), &json!(["y"])));
        assert!(!same_json(&json!("1"), &json!(1)));
    }
}
