//! Pathway versions in the database (`pathway_versions`, migration 20261201000003): every
//! pathway a service loaded, with its full canonical content, so that a decision's
//! `pathway_hash` can be turned back into the plan that decided it.

use super::AuditError;
use crate::pathway::Plan;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// What made a service load a pathway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadTrigger {
    Startup,
    Sighup,
    Admin,
}

impl LoadTrigger {
    /// The spelling stored in `pathway_versions.trigger`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadTrigger::Startup => "startup",
            LoadTrigger::Sighup => "sighup",
            LoadTrigger::Admin => "admin",
        }
    }
}

/// One load of a pathway, as stored (without the content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StoredVersion {
    pub load_id: Uuid,
    pub pathway_id: String,
    pub version: String,
    pub content_hash: String,
    pub loaded_by: String,
    pub trigger: String,
    pub chain_id: String,
    pub loaded_at: DateTime<Utc>,
}

/// Records that this instance (audit chain `chain_id`) loaded `plan`. Returns the load id.
pub async fn record_version(
    pool: &PgPool,
    plan: &Plan,
    trigger: LoadTrigger,
    loaded_by: &str,
    chain_id: &str,
) -> Result<Uuid, AuditError> {
    let load_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO pathway_versions (load_id, pathway_id, version, content_hash, content, \
            loaded_by, trigger, chain_id, loaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(load_id)
    .bind(&plan.reference.id)
    .bind(&plan.reference.version)
    .bind(&plan.reference.content_hash)
    .bind(&plan.content[..])
    .bind(loaded_by)
    .bind(trigger.as_str())
    .bind(chain_id)
    .bind(super::records::micros(Utc::now()))
    .execute(pool)
    .await
    .map_err(AuditError::db)?;
    Ok(load_id)
}

/// Every load, oldest first.
pub async fn list_versions(pool: &PgPool) -> Result<Vec<StoredVersion>, AuditError> {
    sqlx::query_as(
        "SELECT load_id, pathway_id, version, content_hash, loaded_by, trigger, chain_id, \
            loaded_at FROM pathway_versions ORDER BY loaded_at, load_id",
    )
    .fetch_all(pool)
    .await
    .map_err(AuditError::db)
}

/// A stored version turned back into a plan, or why it cannot be.
pub type KnownPlan = Result<Arc<Plan>, String>;

/// Every distinct stored content, compiled, keyed by content hash; plus the pathway shipped in
/// the binary. A stored content that no longer compiles under this binary (a rule kind since
/// removed) or whose recompiled hash differs is kept as the reason it cannot be replayed.
pub async fn known_plans(pool: &PgPool) -> Result<BTreeMap<String, KnownPlan>, AuditError> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT DISTINCT ON (content_hash) content_hash, content FROM pathway_versions \
         ORDER BY content_hash, loaded_at",
    )
    .fetch_all(pool)
    .await
    .map_err(AuditError::db)?;
    let mut plans = BTreeMap::new();
    let builtin = Plan::builtin();
    plans.insert(builtin.reference.content_hash.clone(), Ok(builtin));
    for (hash, content) in rows {
        plans.insert(hash.clone(), plan_from_content(&hash, &content));
    }
    Ok(plans)
}

/// Compiles stored canonical content and checks it hashes to what it was stored under.
pub fn plan_from_content(hash: &str, content: &[u8]) -> KnownPlan {
    let text =
        std::str::from_utf8(content).map_err(|_| "the stored content is not UTF-8".to_owned())?;
    let plan = Plan::from_json(text)
        .map_err(|e| format!("the stored content no longer compiles under this orderguard: {e}"))?;
    if plan.reference.content_hash != hash {
        return Err(format!(
            "the stored content recompiles to hash {}, not {hash}",
            plan.reference.content_hash
        ));
    }
    Ok(Arc::new(plan))
}
