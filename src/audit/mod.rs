//! The tamper-evident audit log in PostgreSQL.
//!
//! - [`records`]: what the service records (decisions, feedback, rejected requests, events).
//! - [`writer`]: the group-commit [`AuditWriter`]; a response leaves only after its record is
//!   durable (committed, or fsync'd to the [`spool`] while PostgreSQL is away).
//! - [`chain`]: the per-writer hash chain, [`verify`] and [`checkpoint`].
//! - [`crate::canonical`]: RFC 8785-style canonical JSON, the bytes that are hashed.
//! - [`embedded`]: a private PostgreSQL cluster when no `DATABASE_URL` is given.
//!
//! The schema lives in `migrations/`; the database itself refuses UPDATE, DELETE and TRUNCATE
//! on audit tables, and the service role `orderguard_writer` may only INSERT and SELECT.

pub mod chain;
pub mod embedded;
pub mod records;
pub mod spool;
pub mod versions;
pub mod writer;

pub use chain::{
    Break, BreakKind, ChainHead, ChainSummary, Checkpoint, VerifyReport, checkpoint, verify,
};
pub use embedded::{EmbeddedError, EmbeddedPostgres};
pub use records::{
    AuditRecord, Channel, EventRecord, FeedbackOutcome, FeedbackRecord, FindingRecord,
    RejectionRecord, RequestMeta,
};
pub use versions::{LoadTrigger, StoredVersion, known_plans, list_versions, record_version};
pub use writer::{AuditWriter, Durability, WriterConfig, WriterHealth};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Why a record could not be made durable. Every variant means: answer 503, never unaudited.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuditError {
    #[error("the audit record was not durable within the deadline")]
    DeadlineExceeded,
    #[error("the audit spool is full while the database is unreachable")]
    SpoolFull,
    #[error("the audit writer has stopped")]
    Stopped,
    #[error("the audit database refused the record: {0}")]
    Refused(String),
    #[error("audit spool: {0}")]
    Spool(String),
    #[error("audit database: {0}")]
    Database(String),
}

impl AuditError {
    pub(crate) fn db(e: sqlx::Error) -> AuditError {
        AuditError::Database(e.to_string())
    }
}

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies the schema (`orderguard db migrate`, and at `serve` start), then makes sure monthly
/// partitions exist from last month to a year ahead.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await?;
    sqlx::query(
        "SELECT audit_create_month_partitions( \
            (date_trunc('month', now()) - interval '1 month')::date, \
            (date_trunc('month', now()) + interval '12 months')::date)",
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("DATABASE_URL: {0}")]
    Url(#[from] sqlx::Error),
    #[error("applying the audit schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens the audit database: `database_url` when given, else the embedded cluster in
/// `data_dir` (started here; keep the returned handle and `stop` it on shutdown). Migrations are
/// applied either way. For `serve`, `db migrate`, `audit verify` and `check --audit`.
pub async fn connect(
    database_url: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<(PgPool, Option<EmbeddedPostgres>), ConnectError> {
    let (url, embedded) = match database_url {
        Some(url) => (url.to_owned(), None),
        None => {
            let (pg, url) = EmbeddedPostgres::start(data_dir).await?;
            (url, Some(pg))
        }
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy(&url)?;
    migrate(&pool).await?;
    Ok((pool, embedded))
}

/// Records one decision durably and stops (the CLI's `check --audit`): a writer of its own with
/// its own chain, flushed before returning.
pub async fn record_one(
    pool: &PgPool,
    spool_dir: std::path::PathBuf,
    record: AuditRecord,
) -> Result<Durability, AuditError> {
    with_one_writer(pool, spool_dir, |w| async move { w.record(record).await }).await
}

/// Records one event durably and stops (the CLI's `replay` records its run this way).
pub async fn record_one_event(
    pool: &PgPool,
    spool_dir: std::path::PathBuf,
    event: EventRecord,
) -> Result<Durability, AuditError> {
    with_one_writer(
        pool,
        spool_dir,
        |w| async move { w.record_event(event).await },
    )
    .await
}

async fn with_one_writer<F, Fut>(
    pool: &PgPool,
    spool_dir: std::path::PathBuf,
    write: F,
) -> Result<Durability, AuditError>
where
    F: FnOnce(AuditWriter) -> Fut,
    Fut: std::future::Future<Output = Result<Durability, AuditError>>,
{
    let mut config = WriterConfig::new(spool_dir);
    config.lanes = 1;
    let writer = AuditWriter::start(pool.clone(), config).await?;
    let result = write(writer.clone()).await;
    writer.shutdown().await;
    result
}

/// The decision a card belongs to, for CDS Hooks feedback (unknown card: 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOrigin {
    pub decision_id: Uuid,
    pub evaluated_at: DateTime<Utc>,
    pub rule_id: String,
    pub finding_index: i32,
}

pub async fn find_card(pool: &PgPool, card_uuid: Uuid) -> Result<Option<CardOrigin>, AuditError> {
    let row: Option<(Uuid, DateTime<Utc>, String, i32)> = sqlx::query_as(
        "SELECT decision_id, evaluated_at, rule_id, finding_index FROM findings \
         WHERE card_uuid = $1 LIMIT 1",
    )
    .bind(card_uuid)
    .fetch_optional(pool)
    .await
    .map_err(AuditError::db)?;
    Ok(row.map(
        |(decision_id, evaluated_at, rule_id, finding_index)| CardOrigin {
            decision_id,
            evaluated_at,
            rule_id,
            finding_index,
        },
    ))
}
