//! The hash chain: what each batch hash covers, `audit verify` and `audit checkpoint`.
//!
//! Every writer has its own chain (chain id). Each committed batch is one `audit_batches` row:
//!
//! ```text
//! row_hash_i  = SHA-256(canonical JSON image of row i)       rows in batch_pos order
//! batch_hash  = SHA-256("orderguard/audit-batch/v1\n" || prev_hash
//!                        || canonical {chain_id, seq, row_count, committed_at}
//!                        || row_hash_0 || row_hash_1 || ...)
//! prev_hash   = batch_hash of seq - 1 (32 zero bytes for seq 1)
//! ```
//!
//! A row image holds every stored column of the row (byte columns through their SHA-256,
//! recomputed from the stored bytes) plus its chain id, batch seq and position. A decision's image
//! includes all its findings, so findings are covered too. Hence: a changed row changes its row
//! hash; a deleted or forged row changes the batch's row list; reordered rows change positions;
//! a deleted batch leaves a gap in seq or a broken prev link; rows outside any batch are
//! reported as orphans; a truncated tail (the newest batches deleted) is found against a
//! checkpoint kept outside the database.

use super::AuditError;
use super::records::{
    DecisionImage, EventImage, FeedbackImage, FindingImage, RejectionImage, sha256, timestamp,
};
use crate::canonical;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// `prev_hash` of a chain's first batch.
pub const GENESIS: [u8; 32] = [0; 32];

pub(crate) fn row_hash(image: &Value) -> [u8; 32] {
    sha256(&canonical::to_vec(image))
}

pub(crate) fn batch_hash(
    prev_hash: &[u8],
    chain_id: &str,
    seq: i64,
    committed_at: DateTime<Utc>,
    row_hashes: &[Vec<u8>],
) -> [u8; 32] {
    let header = json!({
        "chain_id": chain_id,
        "seq": seq,
        "row_count": row_hashes.len(),
        "committed_at": timestamp(committed_at),
    });
    let mut hasher = Sha256::new();
    hasher.update(b"orderguard/audit-batch/v1\n");
    hasher.update(prev_hash);
    hasher.update(canonical::to_vec(&header));
    for h in row_hashes {
        hasher.update(h);
    }
    hasher.finalize().into()
}

/// What kind of damage verify found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A row's content (or its position) no longer matches its hash.
    ChangedRow,
    /// The batch has fewer rows than it was committed with.
    DeletedRow,
    /// The batch has more rows than it was committed with.
    InsertedRow,
    /// A whole batch is missing from the middle of a chain.
    MissingBatch,
    /// A batch's stored fields (hash list, time, links) were altered.
    AlteredBatch,
    /// A row that belongs to no committed batch (or a finding without its decision).
    OrphanRow,
    /// The chain ends before the head recorded in the checkpoint, or differs from it.
    TruncatedTail,
    /// The checkpoint file itself does not match its digest.
    BadCheckpoint,
}

/// The first damage found on a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Break {
    pub chain_id: String,
    pub seq: Option<i64>,
    pub kind: BreakKind,
    /// The decision concerned, when the damaged row is (or neighbours) a decision.
    pub decision_id: Option<Uuid>,
    /// The id of the damaged row (decision, feedback, rejection or event id).
    pub row_id: Option<Uuid>,
    pub detail: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain {} ", self.chain_id)?;
        if let Some(seq) = self.seq {
            write!(f, "batch {seq} ")?;
        }
        write!(f, "{:?}: {}", self.kind, self.detail)?;
        if let Some(id) = self.decision_id {
            write!(f, " (decision {id})")?;
        } else if let Some(id) = self.row_id {
            write!(f, " (row {id})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainSummary {
    pub chain_id: String,
    pub batches: u64,
    pub rows: u64,
    pub head_seq: i64,
    /// Lowercase hex.
    pub head_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub chains: Vec<ChainSummary>,
    /// At most one per chain (the first), plus orphan rows and checkpoint problems.
    pub breaks: Vec<Break>,
    pub checkpoint_checked: bool,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.breaks.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chain in &self.chains {
            writeln!(
                f,
                "chain {}: {} batches, {} rows, head seq {} hash {}",
                chain.chain_id, chain.batches, chain.rows, chain.head_seq, chain.head_hash
            )?;
        }
        if self.breaks.is_empty() {
            write!(
                f,
                "audit log intact{}",
                if self.checkpoint_checked {
                    " (checked against the checkpoint)"
                } else {
                    ""
                }
            )
        } else {
            for b in &self.breaks {
                writeln!(f, "BREAK {b}")?;
            }
            write!(f, "audit log damaged: {} break(s)", self.breaks.len())
        }
    }
}

/// One head per chain, kept outside the database to detect a truncated tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainHead {
    pub chain_id: String,
    pub seq: i64,
    /// Lowercase hex of the batch hash at `seq`.
    pub batch_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub heads: Vec<ChainHead>,
    /// SHA-256 (hex) of the canonical JSON of `{version, created_at, heads}`.
    pub digest: String,
    /// HMAC-SHA-256 (hex) of the same bytes, when a key was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_sha256: Option<String>,
}

impl Checkpoint {
    fn signed_bytes(&self) -> Vec<u8> {
        canonical::to_vec(&json!({
            "version": self.version,
            "created_at": timestamp(self.created_at),
            "heads": self.heads,
        }))
    }

    /// Checks the digest, and the HMAC when a key is given (a checkpoint without an HMAC fails
    /// when a key is given).
    pub fn check(&self, key: Option<&[u8]>) -> Result<(), String> {
        let bytes = self.signed_bytes();
        if hex::encode(sha256(&bytes)) != self.digest {
            return Err("checkpoint digest does not match its heads".into());
        }
        if let Some(key) = key {
            match &self.hmac_sha256 {
                Some(mac) if *mac == hex::encode(hmac_sha256(key, &bytes)) => {}
                Some(_) => {
                    return Err("checkpoint HMAC does not match (wrong key or edited)".into());
                }
                None => return Err("checkpoint is not signed but a key was given".into()),
            }
        }
        Ok(())
    }
}

/// HMAC-SHA-256 (RFC 2104); small enough not to need another dependency.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// The current head of every chain, digested, and signed with `key` when given.
pub async fn checkpoint(pool: &PgPool, key: Option<&[u8]>) -> Result<Checkpoint, AuditError> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (chain_id) chain_id, seq, batch_hash FROM audit_batches \
         ORDER BY chain_id, seq DESC",
    )
    .fetch_all(pool)
    .await
    .map_err(AuditError::db)?;
    let heads = rows
        .iter()
        .map(|r| {
            Ok(ChainHead {
                chain_id: r.try_get("chain_id")?,
                seq: r.try_get("seq")?,
                batch_hash: hex::encode(r.try_get::<Vec<u8>, _>("batch_hash")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(AuditError::db)?;
    let mut cp = Checkpoint {
        version: 1,
        created_at: super::records::micros(Utc::now()),
        heads,
        digest: String::new(),
        hmac_sha256: None,
    };
    let bytes = cp.signed_bytes();
    cp.digest = hex::encode(sha256(&bytes));
    cp.hmac_sha256 = key.map(|k| hex::encode(hmac_sha256(k, &bytes)));
    Ok(cp)
}

/// A row as rebuilt from the database, ready to hash.
struct StoredRow {
    pos: i32,
    id: Uuid,
    decision_id: Option<Uuid>,
    image: Value,
}

/// Batches are verified in windows of this many, to bound memory on long chains.
const WINDOW: i64 = 256;

/// Walks every chain and reports the first break of each, orphan rows, and (given a checkpoint)
/// truncated tails. `progress` draws a progress bar on stderr.
pub async fn verify(
    pool: &PgPool,
    checkpoint: Option<&Checkpoint>,
    progress: bool,
) -> Result<VerifyReport, AuditError> {
    let mut breaks = Vec::new();
    if let Some(cp) = checkpoint
        && let Err(detail) = cp.check(None)
    {
        breaks.push(Break {
            chain_id: String::new(),
            seq: None,
            kind: BreakKind::BadCheckpoint,
            decision_id: None,
            row_id: None,
            detail,
        });
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_batches")
        .fetch_one(pool)
        .await
        .map_err(AuditError::db)?;
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(total.max(0) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "verifying {bar:40} {pos}/{len} batches ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let mut chain_ids: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT chain_id FROM audit_batches ORDER BY 1")
            .fetch_all(pool)
            .await
            .map_err(AuditError::db)?;
    let expected_heads: BTreeMap<&str, &ChainHead> = checkpoint
        .map(|cp| cp.heads.iter().map(|h| (h.chain_id.as_str(), h)).collect())
        .unwrap_or_default();
    for head in expected_heads.keys() {
        if !chain_ids.iter().any(|c| c == head) {
            chain_ids.push((*head).to_owned());
        }
    }

    let mut chains = Vec::new();
    for chain_id in chain_ids {
        let (summary, first_break) = verify_chain(
            pool,
            &chain_id,
            expected_heads.get(chain_id.as_str()).copied(),
            &bar,
        )
        .await?;
        chains.push(summary);
        breaks.extend(first_break);
    }
    bar.finish_and_clear();
    breaks.extend(orphans(pool).await?);
    Ok(VerifyReport {
        chains,
        breaks,
        checkpoint_checked: checkpoint.is_some(),
    })
}

async fn verify_chain(
    pool: &PgPool,
    chain_id: &str,
    expected_head: Option<&ChainHead>,
    bar: &indicatif::ProgressBar,
) -> Result<(ChainSummary, Option<Break>), AuditError> {
    let mut summary = ChainSummary {
        chain_id: chain_id.to_owned(),
        batches: 0,
        rows: 0,
        head_seq: 0,
        head_hash: hex::encode(GENESIS),
    };
    let mut prev_hash = GENESIS.to_vec();
    let mut last_seq = 0i64;
    let brk = |seq: Option<i64>, kind, decision_id, row_id, detail: String| Break {
        chain_id: chain_id.to_owned(),
        seq,
        kind,
        decision_id,
        row_id,
        detail,
    };
    let mut head_confirmed = false;
    loop {
        let batches = sqlx::query(
            "SELECT seq, prev_hash, batch_hash, row_count, row_hashes, committed_at \
             FROM audit_batches WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(chain_id)
        .bind(last_seq)
        .bind(WINDOW)
        .fetch_all(pool)
        .await
        .map_err(AuditError::db)?;
        if batches.is_empty() {
            break;
        }
        let lo = batches[0]
            .try_get::<i64, _>("seq")
            .map_err(AuditError::db)?;
        let hi = batches[batches.len() - 1]
            .try_get::<i64, _>("seq")
            .map_err(AuditError::db)?;
        let mut rows = load_rows(pool, chain_id, lo, hi).await?;
        for batch in &batches {
            let seq: i64 = batch.try_get("seq").map_err(AuditError::db)?;
            let stored_prev: Vec<u8> = batch.try_get("prev_hash").map_err(AuditError::db)?;
            let stored_hash: Vec<u8> = batch.try_get("batch_hash").map_err(AuditError::db)?;
            let row_count: i32 = batch.try_get("row_count").map_err(AuditError::db)?;
            let stored_rows: Vec<Vec<u8>> = batch.try_get("row_hashes").map_err(AuditError::db)?;
            let committed_at: DateTime<Utc> =
                batch.try_get("committed_at").map_err(AuditError::db)?;
            let mut batch_rows = rows.remove(&seq).unwrap_or_default();
            batch_rows.sort_by_key(|r| r.pos);
            let first_decision = batch_rows.iter().find_map(|r| r.decision_id);

            if seq != last_seq + 1 {
                let b = brk(
                    Some(seq),
                    BreakKind::MissingBatch,
                    first_decision,
                    None,
                    format!("batches {}..{} are missing", last_seq + 1, seq - 1),
                );
                return Ok((summary, Some(b)));
            }
            if stored_prev != prev_hash
                || row_count as usize != stored_rows.len()
                || batch_hash(&stored_prev, chain_id, seq, committed_at, &stored_rows)[..]
                    != stored_hash[..]
            {
                let b = brk(
                    Some(seq),
                    BreakKind::AlteredBatch,
                    first_decision,
                    None,
                    "the batch link or its row list does not match its hash".into(),
                );
                return Ok((summary, Some(b)));
            }
            let recomputed: Vec<Vec<u8>> = batch_rows
                .iter()
                .map(|r| row_hash(&r.image).to_vec())
                .collect();
            if recomputed != stored_rows {
                let at = recomputed
                    .iter()
                    .zip(&stored_rows)
                    .position(|(a, b)| a != b)
                    .unwrap_or(recomputed.len().min(stored_rows.len()));
                let (kind, detail) = match recomputed.len().cmp(&stored_rows.len()) {
                    std::cmp::Ordering::Less => (
                        BreakKind::DeletedRow,
                        format!("{} row(s) missing", stored_rows.len() - recomputed.len()),
                    ),
                    std::cmp::Ordering::Greater => (
                        BreakKind::InsertedRow,
                        format!(
                            "{} row(s) not committed here",
                            recomputed.len() - stored_rows.len()
                        ),
                    ),
                    std::cmp::Ordering::Equal => (
                        BreakKind::ChangedRow,
                        format!("row {at} of the batch was changed or moved"),
                    ),
                };
                // Name the row at the first mismatch, or its nearest neighbour when deleted.
                let row = batch_rows.get(at).or_else(|| batch_rows.last());
                let b = brk(
                    Some(seq),
                    kind,
                    row.and_then(|r| r.decision_id).or(first_decision),
                    row.map(|r| r.id),
                    detail,
                );
                return Ok((summary, Some(b)));
            }
            if let Some(head) = expected_head
                && head.seq == seq
            {
                if head.batch_hash != hex::encode(&stored_hash) {
                    let b = brk(
                        Some(seq),
                        BreakKind::TruncatedTail,
                        first_decision,
                        None,
                        "the batch at the checkpoint's head differs from the checkpoint".into(),
                    );
                    return Ok((summary, Some(b)));
                }
                head_confirmed = true;
            }
            summary.batches += 1;
            summary.rows += batch_rows.len() as u64;
            summary.head_seq = seq;
            summary.head_hash = hex::encode(&stored_hash);
            prev_hash = stored_hash;
            last_seq = seq;
            bar.inc(1);
        }
    }
    if let Some(head) = expected_head
        && !head_confirmed
    {
        let b = brk(
            Some(head.seq),
            BreakKind::TruncatedTail,
            None,
            None,
            format!(
                "the chain ends at batch {} but the checkpoint recorded batch {}",
                last_seq, head.seq
            ),
        );
        return Ok((summary, Some(b)));
    }
    Ok((summary, None))
}

fn json_or_null(row: &sqlx::postgres::PgRow, column: &str) -> Result<Value, sqlx::Error> {
    Ok(row
        .try_get::<Option<Value>, _>(column)?
        .unwrap_or(Value::Null))
}

/// Every row of every table in batches `lo..=hi` of a chain, grouped by batch.
async fn load_rows(
    pool: &PgPool,
    chain_id: &str,
    lo: i64,
    hi: i64,
) -> Result<BTreeMap<i64, Vec<StoredRow>>, AuditError> {
    let mut out: BTreeMap<i64, Vec<StoredRow>> = BTreeMap::new();
    let db = AuditError::db;

    let finding_rows = sqlx::query(
        "SELECT f.decision_id, f.finding_index, f.rule_id, f.severity, f.order_ref, f.card_uuid, \
                f.numbers, f.labels \
         FROM findings f JOIN decisions d \
           ON d.decision_id = f.decision_id AND d.evaluated_at = f.evaluated_at \
         WHERE d.chain_id = $1 AND d.batch_seq BETWEEN $2 AND $3 \
         ORDER BY f.decision_id, f.finding_index",
    )
    .bind(chain_id)
    .bind(lo)
    .bind(hi)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut findings: BTreeMap<Uuid, Vec<FindingImage>> = BTreeMap::new();
    for r in &finding_rows {
        findings
            .entry(r.try_get("decision_id").map_err(db)?)
            .or_default()
            .push(FindingImage {
                finding_index: r.try_get("finding_index").map_err(db)?,
                rule_id: r.try_get("rule_id").map_err(db)?,
                severity: r.try_get("severity").map_err(db)?,
                order_ref: r.try_get("order_ref").map_err(db)?,
                card_uuid: r.try_get("card_uuid").map_err(db)?,
                numbers: json_or_null(r, "numbers").map_err(db)?,
                labels: json_or_null(r, "labels").map_err(db)?,
            });
    }

    let decisions =
        sqlx::query("SELECT * FROM decisions WHERE chain_id = $1 AND batch_seq BETWEEN $2 AND $3")
            .bind(chain_id)
            .bind(lo)
            .bind(hi)
            .fetch_all(pool)
            .await
            .map_err(db)?;
    for r in &decisions {
        let decision_id: Uuid = r.try_get("decision_id").map_err(db)?;
        let input: Vec<u8> = r.try_get("canonical_input").map_err(db)?;
        let response: Vec<u8> = r.try_get("response").map_err(db)?;
        let image = DecisionImage {
            decision_id,
            evaluated_at: r.try_get("evaluated_at").map_err(db)?,
            recorded_at: r.try_get("recorded_at").map_err(db)?,
            channel: r.try_get("channel").map_err(db)?,
            hook: r.try_get("hook").map_err(db)?,
            hook_instance: r.try_get("hook_instance").map_err(db)?,
            client_id: r.try_get("client_id").map_err(db)?,
            user_ref: r.try_get("user_ref").map_err(db)?,
            patient_ref: r.try_get("patient_ref").map_err(db)?,
            encounter_ref: r.try_get("encounter_ref").map_err(db)?,
            pathway_id: r.try_get("pathway_id").map_err(db)?,
            pathway_version: r.try_get("pathway_version").map_err(db)?,
            pathway_hash: r.try_get("pathway_hash").map_err(db)?,
            input_sha256: sha256(&input),
            stored_input_sha256: r.try_get("input_sha256").map_err(db)?,
            response_sha256: sha256(&response),
            stored_response_sha256: r.try_get("response_sha256").map_err(db)?,
            unrecognized: json_or_null(r, "unrecognized").map_err(db)?,
            missing_inputs: json_or_null(r, "missing_inputs").map_err(db)?,
            findings: findings.remove(&decision_id).unwrap_or_default(),
            finding_count: r.try_get("finding_count").map_err(db)?,
        };
        let seq: i64 = r.try_get("batch_seq").map_err(db)?;
        let pos: i32 = r.try_get("batch_pos").map_err(db)?;
        out.entry(seq).or_default().push(StoredRow {
            pos,
            id: decision_id,
            decision_id: Some(decision_id),
            image: image.image(chain_id, seq, pos),
        });
    }

    let feedback =
        sqlx::query("SELECT * FROM feedback WHERE chain_id = $1 AND batch_seq BETWEEN $2 AND $3")
            .bind(chain_id)
            .bind(lo)
            .bind(hi)
            .fetch_all(pool)
            .await
            .map_err(db)?;
    for r in &feedback {
        let image = FeedbackImage {
            feedback_id: r.try_get("feedback_id").map_err(db)?,
            received_at: r.try_get("received_at").map_err(db)?,
            card_uuid: r.try_get("card_uuid").map_err(db)?,
            decision_id: r.try_get("decision_id").map_err(db)?,
            outcome: r.try_get("outcome").map_err(db)?,
            accepted_suggestions: json_or_null(r, "accepted_suggestions").map_err(db)?,
            override_reason_code: r.try_get("override_reason_code").map_err(db)?,
            override_comment: r.try_get("override_comment").map_err(db)?,
            outcome_at: r.try_get("outcome_at").map_err(db)?,
            client_id: r.try_get("client_id").map_err(db)?,
        };
        let seq: i64 = r.try_get("batch_seq").map_err(db)?;
        let pos: i32 = r.try_get("batch_pos").map_err(db)?;
        out.entry(seq).or_default().push(StoredRow {
            pos,
            id: image.feedback_id,
            decision_id: image.decision_id,
            image: image.image(chain_id, seq, pos),
        });
    }

    let rejections = sqlx::query(
        "SELECT * FROM rejected_requests WHERE chain_id = $1 AND batch_seq BETWEEN $2 AND $3",
    )
    .bind(chain_id)
    .bind(lo)
    .bind(hi)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    for r in &rejections {
        let image = RejectionImage {
            rejection_id: r.try_get("rejection_id").map_err(db)?,
            rejected_at: r.try_get("rejected_at").map_err(db)?,
            client_id: r.try_get("client_id").map_err(db)?,
            route: r.try_get("route").map_err(db)?,
            reason: r.try_get("reason").map_err(db)?,
            status: r.try_get("status").map_err(db)?,
            body_sha256: r.try_get("body_sha256").map_err(db)?,
            body_len: r.try_get("body_len").map_err(db)?,
        };
        let seq: i64 = r.try_get("batch_seq").map_err(db)?;
        let pos: i32 = r.try_get("batch_pos").map_err(db)?;
        out.entry(seq).or_default().push(StoredRow {
            pos,
            id: image.rejection_id,
            decision_id: None,
            image: image.image(chain_id, seq, pos),
        });
    }

    let events = sqlx::query(
        "SELECT * FROM audit_events WHERE chain_id = $1 AND batch_seq BETWEEN $2 AND $3",
    )
    .bind(chain_id)
    .bind(lo)
    .bind(hi)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    for r in &events {
        let image = EventImage {
            event_id: r.try_get("event_id").map_err(db)?,
            occurred_at: r.try_get("occurred_at").map_err(db)?,
            kind: r.try_get("kind").map_err(db)?,
            actor: r.try_get("actor").map_err(db)?,
            decision_id: r.try_get("decision_id").map_err(db)?,
            payload: json_or_null(r, "payload").map_err(db)?,
        };
        let seq: i64 = r.try_get("batch_seq").map_err(db)?;
        let pos: i32 = r.try_get("batch_pos").map_err(db)?;
        out.entry(seq).or_default().push(StoredRow {
            pos,
            id: image.event_id,
            decision_id: image.decision_id,
            image: image.image(chain_id, seq, pos),
        });
    }
    Ok(out)
}

/// Rows that no committed batch covers (forged outside any chain), and findings whose decision
/// row is gone.
async fn orphans(pool: &PgPool) -> Result<Vec<Break>, AuditError> {
    let rows = sqlx::query(
        "SELECT 'decisions' AS tbl, t.chain_id, t.batch_seq, t.decision_id AS id, \
                t.decision_id AS decision_id \
           FROM decisions t WHERE NOT EXISTS (SELECT 1 FROM audit_batches b \
                WHERE b.chain_id = t.chain_id AND b.seq = t.batch_seq) \
         UNION ALL \
         SELECT 'feedback', t.chain_id, t.batch_seq, t.feedback_id, t.decision_id \
           FROM feedback t WHERE NOT EXISTS (SELECT 1 FROM audit_batches b \
                WHERE b.chain_id = t.chain_id AND b.seq = t.batch_seq) \
         UNION ALL \
         SELECT 'rejected_requests', t.chain_id, t.batch_seq, t.rejection_id, NULL \
           FROM rejected_requests t WHERE NOT EXISTS (SELECT 1 FROM audit_batches b \
                WHERE b.chain_id = t.chain_id AND b.seq = t.batch_seq) \
         UNION ALL \
         SELECT 'audit_events', t.chain_id, t.batch_seq, t.event_id, t.decision_id \
           FROM audit_events t WHERE NOT EXISTS (SELECT 1 FROM audit_batches b \
                WHERE b.chain_id = t.chain_id AND b.seq = t.batch_seq) \
         UNION ALL \
         SELECT 'findings', '', NULL, f.decision_id, f.decision_id \
           FROM findings f WHERE NOT EXISTS (SELECT 1 FROM decisions d \
                WHERE d.decision_id = f.decision_id AND d.evaluated_at = f.evaluated_at) \
         LIMIT 100",
    )
    .fetch_all(pool)
    .await
    .map_err(AuditError::db)?;
    rows.iter()
        .map(|r| {
            let table: String = r.try_get("tbl")?;
            Ok(Break {
                chain_id: r.try_get("chain_id")?,
                seq: r.try_get("batch_seq")?,
                kind: BreakKind::OrphanRow,
                decision_id: r.try_get("decision_id")?,
                row_id: r.try_get("id")?,
                detail: format!("a {table} row belongs to no committed batch"),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(AuditError::db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn batch_hash_depends_on_link_rows_and_their_order() {
        let t = Utc::now();
        let rows = vec![vec![1u8; 32], vec![2u8; 32]];
        let swapped = vec![vec![2u8; 32], vec![1u8; 32]];
        let base = batch_hash(&GENESIS, "c", 1, t, &rows);
        assert_ne!(base, batch_hash(&GENESIS, "c", 1, t, &swapped));
        assert_ne!(base, batch_hash(&[1; 32], "c", 1, t, &rows));
        assert_ne!(base, batch_hash(&GENESIS, "c", 2, t, &rows));
        assert_ne!(base, batch_hash(&GENESIS, "c", 1, t, &rows[..1]));
        assert_eq!(base, batch_hash(&GENESIS, "c", 1, t, &rows));
    }

    #[test]
    fn checkpoint_digest_and_hmac_catch_edits() {
        let mut cp = Checkpoint {
            version: 1,
            created_at: Utc::now(),
            heads: vec![ChainHead {
                chain_id: "a".into(),
                seq: 3,
                batch_hash: "00".into(),
            }],
            digest: String::new(),
            hmac_sha256: None,
        };
        let bytes = cp.signed_bytes();
        cp.digest = hex::encode(sha256(&bytes));
        cp.hmac_sha256 = Some(hex::encode(hmac_sha256(b"k", &bytes)));
        assert!(cp.check(Some(b"k")).is_ok());
        assert!(cp.check(Some(b"other")).is_err());
        cp.heads[0].seq = 2;
        assert!(cp.check(None).is_err());
    }
}
