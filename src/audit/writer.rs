//! The group-commit writer: requests hand records to one writer task, which commits them in
//! batches (size or a few milliseconds, whichever first) in one transaction and wakes each
//! request once its batch is durable, in PostgreSQL or, during an outage, in the spool.
//!
//! One task per process owns the chain head, so the chain needs no lock in the database and
//! instances never wait on each other (each has its own chain id).

use super::AuditError;
use super::chain::{GENESIS, batch_hash, row_hash};
use super::records::{
    AuditRecord, Digests, Entry, EventRecord, FeedbackRecord, RejectionRecord, micros,
};
use super::spool::{Spool, SpoolError, read_segment};
use chrono::Utc;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

/// Where a record was made durable before the caller was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Committed in PostgreSQL.
    Committed,
    /// fsync'd to the local spool; PostgreSQL gets it when it is back.
    Spooled,
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// This writer's chain; `None` picks a fresh random one (recorded in `audit_chains`). Two
    /// live writers must never share a chain id.
    pub chain_id: Option<String>,
    /// Most records per transaction.
    pub max_batch: usize,
    /// How long the first record of a batch waits for company.
    pub max_wait: Duration,
    /// Past this, `record` fails with [`AuditError::DeadlineExceeded`] (answer 503).
    pub ack_deadline: Duration,
    pub spool_dir: PathBuf,
    pub spool_cap_bytes: u64,
    /// Writer tasks committing concurrently, each on its own chain (`chain_id`, `chain_id.1`,
    /// ...). Two keep PostgreSQL busy while the other lane hashes its next batch.
    pub lanes: usize,
}

impl WriterConfig {
    /// Defaults measured on a 2-core machine: ~100-row batches reach the database's ceiling.
    pub fn new(spool_dir: PathBuf) -> Self {
        WriterConfig {
            chain_id: None,
            max_batch: 128,
            max_wait: Duration::from_millis(2),
            ack_deadline: Duration::from_secs(2),
            spool_dir,
            spool_cap_bytes: 1 << 30,
            lanes: 2,
        }
    }
}

/// For `/readyz` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterHealth {
    /// PostgreSQL is unreachable and new records go to the spool (degraded).
    pub spooling: bool,
    pub queue_depth: usize,
    /// Bytes waiting in the spool for replay.
    pub spool_bytes: u64,
}

#[derive(Default)]
struct Shared {
    spooling: AtomicBool,
    queue_depth: AtomicUsize,
    spool_bytes: AtomicU64,
}

type Ack = oneshot::Sender<Result<Durability, AuditError>>;

// Nearly every message is a Record and Shutdown is sent once per lane: boxing the record to
// shrink the enum would cost an allocation per decision and save nothing.
#[allow(clippy::large_enum_variant)]
enum Msg {
    /// With its digests, computed in the submitting task (many run at once; the lane is one).
    Record(Entry, Digests, Ack),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable handle on the writer task.
#[derive(Clone)]
pub struct AuditWriter {
    lanes: Arc<[mpsc::Sender<Msg>]>,
    next_lane: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    chain_id: Arc<str>,
    ack_deadline: Duration,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("chain_id", &self.chain_id)
            .finish()
    }
}

/// SQLSTATE of a unique violation: on the one-statement path, a row or batch already stored.
const UNIQUE_VIOLATION: &str = "23505";

/// How often a spooling writer tries PostgreSQL again.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Segments replayed per turn of the loop, so live requests are not starved by a backlog.
const REPLAY_PER_TURN: usize = 8;

impl AuditWriter {
    /// Opens the spool, registers the chain and starts the writer task. Spool segments left by
    /// an earlier run are replayed onto this writer's chain.
    pub async fn start(pool: PgPool, config: WriterConfig) -> Result<AuditWriter, AuditError> {
        let chain_id = config
            .chain_id
            .clone()
            .unwrap_or_else(|| format!("w-{}", Uuid::now_v7()));
        let spool = Spool::open(&config.spool_dir, config.spool_cap_bytes)
            .map_err(|e| AuditError::Spool(e.to_string()))?;
        let shared = Arc::new(Shared::default());
        shared.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
        // Registering the chain is informational; an unreachable database must not stop the
        // service from starting on its spool.
        let lanes = config.lanes.max(1);
        let chain_ids: Vec<String> = (0..lanes)
            .map(|lane| {
                if lane == 0 {
                    chain_id.clone()
                } else {
                    format!("{chain_id}.{lane}")
                }
            })
            .collect();
        // Registering the chains is informational; an unreachable database must not stop the
        // service from starting on its spool.
        let registered = sqlx::query(
            "INSERT INTO audit_chains (chain_id, started_by) SELECT UNNEST($1::text[]), $2 \
             ON CONFLICT (chain_id) DO NOTHING",
        )
        .bind(&chain_ids)
        .bind(format!(
            "orderguard {} pid {}",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ))
        .execute(&pool)
        .await;
        match registered {
            Ok(_) => {}
            Err(e) if is_transient(&e) => {
                tracing::warn!(chain_id, "audit database unreachable at start; spooling");
                shared.spooling.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(AuditError::db(e)),
        }
        let spool = Arc::new(Mutex::new(spool));
        let mut senders = Vec::with_capacity(lanes);
        let mut tasks = Vec::with_capacity(lanes);
        for (lane, lane_chain) in chain_ids.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(config.max_batch.max(1) * 64);
            let task = WriterTask {
                pool: pool.clone(),
                chain_id: lane_chain,
                head: None,
                spool: spool.clone(),
                // One lane replays the spool, so a segment is never replayed twice at once.
                replays: lane == 0,
                shared: shared.clone(),
                max_batch: config.max_batch.max(1),
                max_wait: config.max_wait,
                db_timeout: (config.ack_deadline / 2).max(Duration::from_millis(50)),
                last_probe: Instant::now(),
            };
            senders.push(tx);
            tasks.push(tokio::spawn(task.run(rx)));
        }
        Ok(AuditWriter {
            lanes: senders.into(),
            next_lane: Arc::new(AtomicUsize::new(0)),
            shared,
            chain_id: chain_id.into(),
            ack_deadline: config.ack_deadline,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// The chain of the first lane; further lanes append `.1`, `.2`, ...
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Records a decision; returns once it is durable. The answer may be released only after
    /// `Ok`; on `Err` the service answers 503.
    pub async fn record(&self, record: AuditRecord) -> Result<Durability, AuditError> {
        self.submit(Entry::decision(record)).await
    }

    pub async fn record_feedback(
        &self,
        feedback: FeedbackRecord,
    ) -> Result<Durability, AuditError> {
        self.submit(Entry::feedback(feedback)).await
    }

    pub async fn record_rejection(
        &self,
        rejection: RejectionRecord,
    ) -> Result<Durability, AuditError> {
        self.submit(Entry::rejection(rejection)).await
    }

    pub async fn record_event(&self, event: EventRecord) -> Result<Durability, AuditError> {
        self.submit(Entry::event(event)).await
    }

    async fn submit(&self, entry: Entry) -> Result<Durability, AuditError> {
        let (ack, woken) = oneshot::channel();
        let digests = entry.digests();
        self.shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        let wait = async {
            let lane = self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
            if self.lanes[lane]
                .send(Msg::Record(entry, digests, ack))
                .await
                .is_err()
            {
                self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                return Err(AuditError::Stopped);
            }
            woken.await.unwrap_or(Err(AuditError::Stopped))
        };
        match tokio::time::timeout(self.ack_deadline, wait).await {
            Ok(result) => result,
            Err(_) => {
                metrics::counter!("orderguard_audit_deadline_exceeded_total").increment(1);
                Err(AuditError::DeadlineExceeded)
            }
        }
    }

    pub fn health(&self) -> WriterHealth {
        WriterHealth {
            spooling: self.shared.spooling.load(Ordering::Relaxed),
            queue_depth: self.shared.queue_depth.load(Ordering::Relaxed),
            spool_bytes: self.shared.spool_bytes.load(Ordering::Relaxed),
        }
    }

    /// Flushes everything queued, tries once more to replay the spool, and stops the task.
    /// Records submitted afterwards fail with [`AuditError::Stopped`].
    pub async fn shutdown(self) {
        // The replaying lane (0) last, so it replays whatever the others had to spool.
        for lane in self.lanes.iter().rev() {
            let (done, finished) = oneshot::channel();
            if lane.send(Msg::Shutdown(done)).await.is_ok() {
                let _ = finished.await;
            }
        }
        let handles = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for handle in handles {
            let _ = handle.await;
        }
    }
}

/// The chain position this writer has committed up to.
#[derive(Debug, Clone)]
struct Head {
    seq: i64,
    hash: Vec<u8>,
}

struct WriterTask {
    pool: PgPool,
    chain_id: String,
    /// `None` when unknown (at start, after any failed transaction): reloaded from the
    /// database, because a commit whose reply was lost may still have happened.
    head: Option<Head>,
    spool: Arc<Mutex<Spool>>,
    replays: bool,
    shared: Arc<Shared>,
    max_batch: usize,
    max_wait: Duration,
    db_timeout: Duration,
    last_probe: Instant,
}

enum DbFailure {
    /// Connection trouble: the database may be back later; spool.
    Transient(String),
    /// The database refused the data itself: spooling would only postpone the refusal.
    Refused(String),
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // Only data exceptions (22), constraint violations (23) and program limits (54: a
            // value too large for its index entry) are the record's fault; anything else
            // (connection loss, shutdown, a schema not migrated yet, a revoked grant) may heal,
            // and spooling keeps the record meanwhile. Spooling a refused record would block
            // the spool's replay behind it.
            !(code.starts_with("22") || code.starts_with("23") || code.starts_with("54"))
        }
        _ => true,
    }
}

impl WriterTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let backlog = self.spool_pending();
            let first = if backlog {
                match tokio::time::timeout(PROBE_INTERVAL, rx.recv()).await {
                    Ok(msg) => msg,
                    Err(_) => {
                        self.replay(REPLAY_PER_TURN).await;
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let mut batch: Vec<(Entry, Digests, Ack)> = Vec::with_capacity(self.max_batch);
            match first {
                None => break,
                Some(Msg::Shutdown(done)) => shutdown = Some(done),
                Some(Msg::Record(entry, digests, ack)) => {
                    self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    batch.push((entry, digests, ack));
                    let until = Instant::now() + self.max_wait;
                    while batch.len() < self.max_batch {
                        let msg = match rx.try_recv() {
                            Ok(msg) => Some(msg),
                            Err(_) => match tokio::time::timeout_at(until, rx.recv()).await {
                                Ok(msg) => msg,
                                Err(_) => break,
                            },
                        };
                        match msg {
                            Some(Msg::Record(entry, digests, ack)) => {
                                self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                                batch.push((entry, digests, ack));
                            }
                            Some(Msg::Shutdown(done)) => {
                                shutdown = Some(done);
                                break;
                            }
                            None => break,
                        }
                    }
                }
            }
            if !batch.is_empty() {
                self.flush(batch).await;
            }
            if let Some(done) = shutdown.take() {
                // Whatever was queued before the shutdown still gets its durable answer.
                rx.close();
                let mut rest = Vec::new();
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        Msg::Record(entry, digests, ack) => {
                            self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                            rest.push((entry, digests, ack));
                            if rest.len() == self.max_batch {
                                self.flush(std::mem::take(&mut rest)).await;
                            }
                        }
                        Msg::Shutdown(other) => {
                            let _ = other.send(());
                        }
                    }
                }
                if !rest.is_empty() {
                    self.flush(rest).await;
                }
                self.last_probe = Instant::now() - PROBE_INTERVAL;
                self.replay(usize::MAX).await;
                let _ = done.send(());
                return;
            }
            if self.spool_pending() {
                self.replay(REPLAY_PER_TURN).await;
            }
        }
        // Every handle dropped without shutdown: flush nothing more (nothing is queued).
    }

    fn spool_pending(&self) -> bool {
        self.replays && self.shared.spool_bytes.load(Ordering::Relaxed) > 0
    }

    fn database_believed_up(&self) -> bool {
        !self.shared.spooling.load(Ordering::Relaxed) || self.last_probe.elapsed() >= PROBE_INTERVAL
    }

    async fn flush(&mut self, batch: Vec<(Entry, Digests, Ack)>) {
        let mut entries = Vec::with_capacity(batch.len());
        let mut digests = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for (entry, digest, ack) in batch {
            entries.push(entry);
            digests.push(digest);
            acks.push(ack);
        }
        if self.database_believed_up() {
            // While spooling, a probe must not hold the lane for long: a database that hangs
            // instead of refusing would otherwise stall every request behind the probe.
            let limit = if self.shared.spooling.load(Ordering::Relaxed) {
                self.db_timeout.min(PROBE_INTERVAL)
            } else {
                self.db_timeout
            };
            match self.commit(&entries, &digests, limit).await {
                Ok(()) => {
                    self.shared.spooling.store(false, Ordering::Relaxed);
                    metrics::counter!("orderguard_audit_committed_total")
                        .increment(entries.len() as u64);
                    for ack in acks {
                        let _ = ack.send(Ok(Durability::Committed));
                    }
                    return;
                }
                Err(DbFailure::Refused(reason)) => {
                    tracing::error!(chain_id = %self.chain_id, reason, "audit batch refused");
                    for ack in acks {
                        let _ = ack.send(Err(AuditError::Refused(reason.clone())));
                    }
                    return;
                }
                Err(DbFailure::Transient(reason)) => {
                    if !self.shared.spooling.swap(true, Ordering::Relaxed) {
                        tracing::warn!(chain_id = %self.chain_id, reason, "audit database unreachable; spooling");
                    }
                    self.last_probe = Instant::now();
                }
            }
        }
        let result = self.spool(&entries).await;
        match &result {
            Ok(()) => {
                metrics::counter!("orderguard_audit_spooled_total").increment(entries.len() as u64)
            }
            Err(AuditError::SpoolFull) => {
                metrics::counter!("orderguard_audit_spool_full_total").increment(1)
            }
            Err(_) => {}
        }
        for ack in acks {
            let _ = ack.send(result.clone().map(|()| Durability::Spooled));
        }
    }

    async fn spool(&self, entries: &[Entry]) -> Result<(), AuditError> {
        let framed = Spool::frame(entries).map_err(|e| AuditError::Spool(e.to_string()))?;
        let spool = self.spool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut spool = spool
                .lock()
                .map_err(|_| AuditError::Spool("spool lock poisoned".into()))?;
            let r = spool.append(&framed);
            Ok::<_, AuditError>((r, spool.bytes()))
        })
        .await
        .map_err(|e| AuditError::Spool(e.to_string()))??;
        self.shared.spool_bytes.store(result.1, Ordering::Relaxed);
        match result.0 {
            Ok(_) => Ok(()),
            Err(SpoolError::Full { .. }) => Err(AuditError::SpoolFull),
            Err(SpoolError::Io(e)) => Err(AuditError::Spool(e.to_string())),
        }
    }

    /// Replays up to `limit` spool segments, each in one transaction, deleting each only after
    /// its commit. Stops at the first failure (the database is still away).
    async fn replay(&mut self, limit: usize) {
        if !self.replays || !self.database_believed_up() {
            return;
        }
        let spool = self.spool.clone();
        let segments = match tokio::task::spawn_blocking(move || {
            spool
                .lock()
                .ok()
                .map(|s| s.segments())
                .unwrap_or_else(|| Ok(Vec::new()))
        })
        .await
        {
            Ok(Ok(segments)) => segments,
            _ => return,
        };
        for path in segments.into_iter().take(limit) {
            let read_path = path.clone();
            let entries = match tokio::task::spawn_blocking(move || read_segment(&read_path)).await
            {
                Ok(Ok(entries)) => entries,
                _ => return,
            };
            if !entries.is_empty() {
                let digests: Vec<Digests> = entries.iter().map(Entry::digests).collect();
                match self.commit(&entries, &digests, self.db_timeout).await {
                    Ok(()) => {}
                    Err(DbFailure::Transient(_)) => {
                        self.shared.spooling.store(true, Ordering::Relaxed);
                        self.last_probe = Instant::now();
                        return;
                    }
                    Err(DbFailure::Refused(reason)) => {
                        // Kept on disk for an operator: deleting would lose acknowledged
                        // records. Rename so replay moves on.
                        tracing::error!(chain_id = %self.chain_id, reason, "spool segment refused by the database; kept as .refused");
                        let _ = std::fs::rename(&path, path.with_extension("refused"));
                        continue;
                    }
                }
            }
            self.shared.spooling.store(false, Ordering::Relaxed);
            let spool = self.spool.clone();
            let removed = tokio::task::spawn_blocking(move || {
                let mut spool = spool.lock().ok()?;
                spool.remove(&path).ok()?;
                Some(spool.bytes())
            })
            .await;
            match removed {
                Ok(Some(bytes)) => self.shared.spool_bytes.store(bytes, Ordering::Relaxed),
                _ => return,
            }
        }
    }

    /// Commits entries as one batch of this chain, with a bounded wait.
    async fn commit(
        &mut self,
        entries: &[Entry],
        digests: &[Digests],
        limit: Duration,
    ) -> Result<(), DbFailure> {
        let mut retried = false;
        // The one-statement path needs the head in hand and only decisions in the batch (the
        // other tables are rare: they take the careful path).
        let mut fast =
            self.head.is_some() && entries.iter().all(|e| matches!(e, Entry::Decision(_)));
        loop {
            let was_fast = fast;
            fast = false;
            let attempt = if was_fast {
                tokio::time::timeout(limit, self.try_commit_fast(entries, digests)).await
            } else {
                tokio::time::timeout(limit, self.try_commit(entries, digests)).await
            };
            let failure = match attempt {
                Ok(Ok(head)) => {
                    if let Some(head) = head {
                        self.head = Some(head);
                    }
                    return Ok(());
                }
                Ok(Err(e)) => e,
                Err(_) => sqlx::Error::PoolTimedOut,
            };
            // Whatever happened, the head we hold may be stale now.
            self.head = None;
            if was_fast
                && matches!(&failure, sqlx::Error::Database(db)
                    if db.code().as_deref() == Some(UNIQUE_VIOLATION))
            {
                // A row or the batch key already stored (a retry, a spool replay, a stale
                // head): the careful path skips stored rows and reloads the head.
                continue;
            }
            if is_transient(&failure) {
                return Err(DbFailure::Transient(failure.to_string()));
            }
            // A batch key collision means our head was stale (a commit whose reply was lost);
            // reload once and retry.
            let collided = matches!(&failure, sqlx::Error::Database(db)
                if db.constraint() == Some("audit_batches_pkey"));
            if collided && !retried {
                retried = true;
                continue;
            }
            return Err(DbFailure::Refused(failure.to_string()));
        }
    }

    /// One statement, one round trip: the batch's decisions, their findings and its chain link
    /// (a single statement is its own transaction, durable when it returns). There is no
    /// `ON CONFLICT` here: a decision or batch key already stored fails the whole statement with
    /// a unique violation, and [`Self::commit`] takes the careful path, which skips stored rows
    /// and reloads the head.
    async fn try_commit_fast(
        &self,
        entries: &[Entry],
        digests: &[Digests],
    ) -> Result<Option<Head>, sqlx::Error> {
        let Some(head) = self.head.clone() else {
            return self.try_commit(entries, digests).await;
        };
        let seq = head.seq + 1;
        let committed_at = micros(Utc::now());
        let mut d = DecisionColumns::default();
        let mut f = FindingColumns::default();
        let mut row_hashes = Vec::with_capacity(entries.len());
        for (pos, (entry, digest)) in entries.iter().zip(digests).enumerate() {
            let Entry::Decision(r) = entry else {
                return self.try_commit(entries, digests).await;
            };
            d.push(pos as i32, r, digest);
            f.push(r);
            let image = entry.row_image(&self.chain_id, seq, pos as i32, committed_at, digest);
            row_hashes.push(row_hash(&image).to_vec());
        }
        let hash = batch_hash(&head.hash, &self.chain_id, seq, committed_at, &row_hashes);
        d.bind_params(
            sqlx::query(
            "WITH d AS (INSERT INTO decisions (decision_id, evaluated_at, recorded_at, channel, \
                hook, hook_instance, client_id, user_ref, patient_ref, encounter_ref, pathway_id, \
                pathway_version, pathway_hash, canonical_input, input_sha256, response, \
                response_sha256, unrecognized, missing_inputs, finding_count, chain_id, \
                batch_seq, batch_pos) \
             SELECT d.decision_id, d.evaluated_at, $3::timestamptz, d.channel, d.hook, \
                d.hook_instance, d.client_id, d.user_ref, d.patient_ref, d.encounter_ref, \
                d.pathway_id, d.pathway_version, d.pathway_hash, d.canonical_input, \
                d.input_sha256, d.response, d.response_sha256, d.unrecognized, d.missing_inputs, \
                d.finding_count, $21, $22, d.pos FROM UNNEST($1::uuid[], $2::timestamptz[], \
                $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], \
                $15::bytea[], $16::bytea[], $17::bytea[], $18::jsonb[], $19::jsonb[], \
                $20::int4[], $23::int4[]) AS d(decision_id, evaluated_at, channel, \
                hook, hook_instance, client_id, user_ref, patient_ref, encounter_ref, \
                pathway_id, pathway_version, pathway_hash, canonical_input, input_sha256, \
                response, response_sha256, unrecognized, missing_inputs, finding_count, pos) \
             RETURNING decision_id, evaluated_at), \
             f AS (INSERT INTO findings (decision_id, evaluated_at, finding_index, rule_id, \
                severity, order_ref, card_uuid, numbers, labels) \
             SELECT u.* FROM UNNEST($24::uuid[], $25::timestamptz[], $26::int4[], $27::text[], \
                $28::text[], $29::text[], $30::uuid[], $31::jsonb[], $36::jsonb[]) AS \
                u(decision_id, evaluated_at, finding_index, rule_id, severity, order_ref, \
                card_uuid, numbers, labels) \
             JOIN d USING (decision_id, evaluated_at)) \
             INSERT INTO audit_batches \
             (chain_id, seq, prev_hash, batch_hash, row_count, row_hashes, committed_at) \
             VALUES ($21, $22, $32, $33, $34, $35, $3)",
        ),
            committed_at, &self.chain_id, seq,
        )
        .bind(&f.decision_id)
        .bind(&f.evaluated_at)
        .bind(&f.finding_index)
        .bind(&f.rule_id)
        .bind(&f.severity)
        .bind(&f.order_ref)
        .bind(&f.card_uuid)
        .bind(&f.numbers)
        .bind(&head.hash)
        .bind(&hash[..])
        .bind(row_hashes.len() as i32)
        .bind(&row_hashes)
        .bind(&f.labels)
        .execute(&self.pool)
        .await?;
        Ok(Some(Head {
            seq,
            hash: hash.to_vec(),
        }))
    }

    async fn try_commit(
        &self,
        entries: &[Entry],
        digests: &[Digests],
    ) -> Result<Option<Head>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let head = match &self.head {
            Some(head) => head.clone(),
            None => {
                let row = sqlx::query(
                    "SELECT seq, batch_hash FROM audit_batches WHERE chain_id = $1 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(&self.chain_id)
                .fetch_optional(&mut *tx)
                .await?;
                match row {
                    Some(r) => Head {
                        seq: r.try_get("seq")?,
                        hash: r.try_get("batch_hash")?,
                    },
                    None => Head {
                        seq: 0,
                        hash: GENESIS.to_vec(),
                    },
                }
            }
        };
        let seq = head.seq + 1;
        // One time for the batch: every decision's recorded_at, and the batch header's.
        let committed_at = micros(Utc::now());
        let inserted =
            insert_rows(&mut tx, &self.chain_id, seq, committed_at, entries, digests).await?;
        if inserted.is_empty() {
            // Every row was already stored (a replay after a commit whose reply was lost).
            tx.rollback().await?;
            return Ok(Some(head));
        }
        let row_hashes: Vec<Vec<u8>> = inserted
            .iter()
            .map(|&pos| {
                let image = entries[pos as usize].row_image(
                    &self.chain_id,
                    seq,
                    pos,
                    committed_at,
                    &digests[pos as usize],
                );
                row_hash(&image).to_vec()
            })
            .collect();
        let hash = batch_hash(&head.hash, &self.chain_id, seq, committed_at, &row_hashes);
        sqlx::query(
            "INSERT INTO audit_batches \
             (chain_id, seq, prev_hash, batch_hash, row_count, row_hashes, committed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&self.chain_id)
        .bind(seq)
        .bind(&head.hash)
        .bind(&hash[..])
        .bind(row_hashes.len() as i32)
        .bind(&row_hashes)
        .bind(committed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Head {
            seq,
            hash: hash.to_vec(),
        }))
    }
}

/// Inserts the rows of one batch with UNNEST (one statement per table), skipping ids already
/// stored. Returns the batch positions actually inserted, ascending.
async fn insert_rows(
    tx: &mut Transaction<'static, Postgres>,
    chain_id: &str,
    seq: i64,
    recorded_at: Time,
    entries: &[Entry],
    digests: &[Digests],
) -> Result<Vec<i32>, sqlx::Error> {
    let mut inserted = BTreeSet::new();

    // Decisions and their findings.
    let mut d = DecisionColumns::default();
    for (pos, entry) in entries.iter().enumerate() {
        if let Entry::Decision(r) = entry {
            d.push(pos as i32, r, &digests[pos]);
        }
    }
    if !d.pos.is_empty() {
        let rows = d.bind_params(
            sqlx::query(
            "INSERT INTO decisions (decision_id, evaluated_at, recorded_at, channel, hook, \
                hook_instance, client_id, user_ref, patient_ref, encounter_ref, pathway_id, \
                pathway_version, pathway_hash, canonical_input, input_sha256, response, \
                response_sha256, unrecognized, missing_inputs, finding_count, chain_id, \
                batch_seq, batch_pos) \
             SELECT d.decision_id, d.evaluated_at, $3::timestamptz, d.channel, d.hook, d.hook_instance, \
                d.client_id, d.user_ref, d.patient_ref, d.encounter_ref, d.pathway_id, \
                d.pathway_version, d.pathway_hash, d.canonical_input, d.input_sha256, \
                d.response, d.response_sha256, d.unrecognized, d.missing_inputs, \
                d.finding_count, $21, $22, d.pos FROM UNNEST($1::uuid[], $2::timestamptz[], \
                $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], \
                $15::bytea[], $16::bytea[], $17::bytea[], $18::jsonb[], $19::jsonb[], \
                $20::int4[], $23::int4[]) AS d(decision_id, evaluated_at, channel, \
                hook, hook_instance, client_id, user_ref, patient_ref, encounter_ref, \
                pathway_id, pathway_version, pathway_hash, canonical_input, input_sha256, \
                response, response_sha256, unrecognized, missing_inputs, finding_count, pos) \
             ON CONFLICT (decision_id, evaluated_at) DO NOTHING \
             RETURNING batch_pos",
        ),
            recorded_at, chain_id, seq,
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut new_decisions = BTreeSet::new();
        for row in rows {
            let pos: i32 = row.try_get("batch_pos")?;
            new_decisions.insert(pos);
            inserted.insert(pos);
        }
        let mut f = FindingColumns::default();
        for &pos in &new_decisions {
            if let Entry::Decision(r) = &entries[pos as usize] {
                f.push(r);
            }
        }
        if !f.decision_id.is_empty() {
            sqlx::query(
                "INSERT INTO findings (decision_id, evaluated_at, finding_index, rule_id, \
                    severity, order_ref, card_uuid, numbers, labels) \
                 SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int4[], $4::text[], \
                    $5::text[], $6::text[], $7::uuid[], $8::jsonb[], $9::jsonb[])",
            )
            .bind(&f.decision_id)
            .bind(&f.evaluated_at)
            .bind(&f.finding_index)
            .bind(&f.rule_id)
            .bind(&f.severity)
            .bind(&f.order_ref)
            .bind(&f.card_uuid)
            .bind(&f.numbers)
            .bind(&f.labels)
            .execute(&mut **tx)
            .await?;
        }
    }

    // Feedback, rejections and events are few; one UNNEST each as well.
    let mut fb = FeedbackColumns::default();
    let mut rj = RejectionColumns::default();
    let mut ev = EventColumns::default();
    for (pos, entry) in entries.iter().enumerate() {
        let pos = pos as i32;
        match entry {
            Entry::Decision(_) => {}
            Entry::Feedback {
                feedback_id,
                received_at,
                feedback,
            } => {
                fb.pos.push(pos);
                fb.feedback_id.push(*feedback_id);
                fb.received_at.push(*received_at);
                fb.card_uuid.push(feedback.card_uuid);
                fb.decision_id.push(feedback.decision_id);
                fb.outcome.push(feedback.outcome.as_str().to_owned());
                fb.accepted
                    .push(Json(serde_json::json!(feedback.accepted_suggestions)));
                fb.reason_code.push(feedback.override_reason_code.clone());
                fb.comment.push(feedback.override_comment.clone());
                fb.outcome_at.push(feedback.outcome_at);
                fb.client_id.push(feedback.client_id.clone());
            }
            Entry::Rejection {
                rejection_id,
                record,
            } => {
                rj.pos.push(pos);
                rj.rejection_id.push(*rejection_id);
                rj.at.push(record.at);
                rj.client_id.push(record.client_id.clone());
                rj.route.push(record.route.clone());
                rj.reason.push(record.reason.clone());
                rj.status.push(i32::from(record.status));
                rj.body_sha256.push(record.body_hash.clone());
                rj.body_len.push(record.body_len as i64);
            }
            Entry::Event {
                event_id,
                occurred_at,
                event,
            } => {
                ev.pos.push(pos);
                ev.event_id.push(*event_id);
                ev.occurred_at.push(*occurred_at);
                ev.kind.push(event.kind.clone());
                ev.actor.push(event.actor.clone());
                ev.decision_id.push(event.decision_id);
                ev.payload.push(Json(event.payload.clone()));
            }
        }
    }
    if !fb.pos.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO feedback (feedback_id, received_at, card_uuid, decision_id, outcome, \
                accepted_suggestions, override_reason_code, override_comment, outcome_at, \
                client_id, chain_id, batch_seq, batch_pos) \
             SELECT f.feedback_id, f.received_at, f.card_uuid, f.decision_id, f.outcome, \
                f.accepted, f.reason_code, f.comment, f.outcome_at, f.client_id, $11, $12, f.pos \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[], \
                $6::jsonb[], $7::text[], $8::text[], $9::timestamptz[], $10::text[], \
                $13::int4[]) AS f(feedback_id, received_at, card_uuid, decision_id, outcome, \
                accepted, reason_code, comment, outcome_at, client_id, pos) \
             ON CONFLICT (feedback_id, received_at) DO NOTHING RETURNING batch_pos",
        )
        .bind(&fb.feedback_id)
        .bind(&fb.received_at)
        .bind(&fb.card_uuid)
        .bind(&fb.decision_id)
        .bind(&fb.outcome)
        .bind(&fb.accepted)
        .bind(&fb.reason_code)
        .bind(&fb.comment)
        .bind(&fb.outcome_at)
        .bind(&fb.client_id)
        .bind(chain_id)
        .bind(seq)
        .bind(&fb.pos)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            inserted.insert(row.try_get::<i32, _>("batch_pos")?);
        }
    }
    if !rj.pos.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO rejected_requests (rejection_id, rejected_at, client_id, route, reason, \
                status, body_sha256, body_len, chain_id, batch_seq, batch_pos) \
             SELECT r.rejection_id, r.rejected_at, r.client_id, r.route, r.reason, r.status, \
                r.body_sha256, r.body_len, $9, $10, r.pos \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], \
                $6::int4[], $7::text[], $8::int8[], $11::int4[]) AS r(rejection_id, rejected_at, \
                client_id, route, reason, status, body_sha256, body_len, pos) \
             ON CONFLICT (rejection_id, rejected_at) DO NOTHING RETURNING batch_pos",
        )
        .bind(&rj.rejection_id)
        .bind(&rj.at)
        .bind(&rj.client_id)
        .bind(&rj.route)
        .bind(&rj.reason)
        .bind(&rj.status)
        .bind(&rj.body_sha256)
        .bind(&rj.body_len)
        .bind(chain_id)
        .bind(seq)
        .bind(&rj.pos)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            inserted.insert(row.try_get::<i32, _>("batch_pos")?);
        }
    }
    if !ev.pos.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO audit_events (event_id, occurred_at, kind, actor, decision_id, payload, \
                chain_id, batch_seq, batch_pos) \
             SELECT e.event_id, e.occurred_at, e.kind, e.actor, e.decision_id, e.payload, $7, \
                $8, e.pos \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], \
                $6::jsonb[], $9::int4[]) AS e(event_id, occurred_at, kind, actor, decision_id, \
                payload, pos) \
             ON CONFLICT (event_id, occurred_at) DO NOTHING RETURNING batch_pos",
        )
        .bind(&ev.event_id)
        .bind(&ev.occurred_at)
        .bind(&ev.kind)
        .bind(&ev.actor)
        .bind(&ev.decision_id)
        .bind(&ev.payload)
        .bind(chain_id)
        .bind(seq)
        .bind(&ev.pos)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            inserted.insert(row.try_get::<i32, _>("batch_pos")?);
        }
    }
    Ok(inserted.into_iter().collect())
}

type Time = chrono::DateTime<Utc>;

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

#[derive(Default)]
struct DecisionColumns {
    pos: Vec<i32>,
    decision_id: Vec<Uuid>,
    evaluated_at: Vec<Time>,
    channel: Vec<String>,
    hook: Vec<Option<String>>,
    hook_instance: Vec<Option<String>>,
    client_id: Vec<Option<String>>,
    user_ref: Vec<Option<String>>,
    patient_ref: Vec<Option<String>>,
    encounter_ref: Vec<Option<String>>,
    pathway_id: Vec<String>,
    pathway_version: Vec<String>,
    pathway_hash: Vec<String>,
    canonical_input: Vec<Vec<u8>>,
    input_sha256: Vec<Vec<u8>>,
    response: Vec<Vec<u8>>,
    response_sha256: Vec<Vec<u8>>,
    unrecognized: Vec<Json<Value>>,
    missing_inputs: Vec<Json<Value>>,
    finding_count: Vec<i32>,
}

impl DecisionColumns {
    /// Binds `$1`..`$23` of both decision inserts (the one-statement batch and the fallback):
    /// the columns in table order, with `$3` the recorded time and `$21`..`$23` the chain
    /// position.
    fn bind_params<'q>(
        &'q self,
        query: PgQuery<'q>,
        recorded_at: Time,
        chain_id: &'q str,
        seq: i64,
    ) -> PgQuery<'q> {
        query
            .bind(&self.decision_id)
            .bind(&self.evaluated_at)
            .bind(recorded_at)
            .bind(&self.channel)
            .bind(&self.hook)
            .bind(&self.hook_instance)
            .bind(&self.client_id)
            .bind(&self.user_ref)
            .bind(&self.patient_ref)
            .bind(&self.encounter_ref)
            .bind(&self.pathway_id)
            .bind(&self.pathway_version)
            .bind(&self.pathway_hash)
            .bind(&self.canonical_input)
            .bind(&self.input_sha256)
            .bind(&self.response)
            .bind(&self.response_sha256)
            .bind(&self.unrecognized)
            .bind(&self.missing_inputs)
            .bind(&self.finding_count)
            .bind(chain_id)
            .bind(seq)
            .bind(&self.pos)
    }

    fn push(&mut self, pos: i32, r: &AuditRecord, digests: &Digests) {
        let m = r;
        self.pos.push(pos);
        self.decision_id.push(r.decision_id);
        self.evaluated_at.push(r.evaluated_at);
        self.channel.push(m.channel.as_str().to_owned());
        self.hook.push(m.hook.clone());
        self.hook_instance.push(m.hook_instance.clone());
        self.client_id.push(m.client_id.clone());
        self.user_ref.push(m.user_ref.clone());
        self.patient_ref.push(m.patient_ref.clone());
        self.encounter_ref.push(m.encounter_ref.clone());
        self.pathway_id.push(r.pathway.id.clone());
        self.pathway_version.push(r.pathway.version.clone());
        self.pathway_hash.push(r.pathway.content_hash.clone());
        self.canonical_input.push(r.canonical_input.clone());
        self.input_sha256.push(digests.input.to_vec());
        self.response.push(r.response.clone());
        self.response_sha256.push(digests.response.to_vec());
        self.unrecognized.push(Json(r.unrecognized.clone()));
        self.missing_inputs.push(Json(r.missing_inputs.clone()));
        self.finding_count.push(r.findings.len() as i32);
    }
}

#[derive(Default)]
struct FindingColumns {
    decision_id: Vec<Uuid>,
    evaluated_at: Vec<Time>,
    finding_index: Vec<i32>,
    rule_id: Vec<String>,
    severity: Vec<String>,
    order_ref: Vec<Option<String>>,
    card_uuid: Vec<Option<Uuid>>,
    numbers: Vec<Json<Value>>,
    labels: Vec<Json<Value>>,
}

impl FindingColumns {
    fn push(&mut self, r: &AuditRecord) {
        for (index, finding) in r.findings.iter().enumerate() {
            self.decision_id.push(r.decision_id);
            self.evaluated_at.push(r.evaluated_at);
            self.finding_index.push(index as i32);
            self.rule_id.push(finding.rule_id.clone());
            self.severity.push(finding.severity.as_str().to_owned());
            self.order_ref.push(finding.order_ref.clone());
            self.card_uuid.push(finding.card_uuid);
            self.numbers.push(Json(finding.numbers.clone()));
            self.labels.push(Json(finding.labels.clone()));
        }
    }
}

#[derive(Default)]
struct FeedbackColumns {
    pos: Vec<i32>,
    feedback_id: Vec<Uuid>,
    received_at: Vec<Time>,
    card_uuid: Vec<Uuid>,
    decision_id: Vec<Option<Uuid>>,
    outcome: Vec<String>,
    accepted: Vec<Json<Value>>,
    reason_code: Vec<Option<String>>,
    comment: Vec<Option<String>>,
    outcome_at: Vec<Time>,
    client_id: Vec<Option<String>>,
}

#[derive(Default)]
struct RejectionColumns {
    pos: Vec<i32>,
    rejection_id: Vec<Uuid>,
    at: Vec<Time>,
    client_id: Vec<Option<String>>,
    route: Vec<String>,
    reason: Vec<String>,
    status: Vec<i32>,
    body_sha256: Vec<Option<String>>,
    body_len: Vec<i64>,
}

#[derive(Default)]
struct EventColumns {
    pos: Vec<i32>,
    event_id: Vec<Uuid>,
    occurred_at: Vec<Time>,
    kind: Vec<String>,
    actor: Vec<String>,
    decision_id: Vec<Option<Uuid>>,
    payload: Vec<Json<Value>>,
}
