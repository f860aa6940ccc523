//! The HTTP service CPOE systems call: CDS Hooks 2.0 (`/cds-services`), the native
//! `/v1/validate`, and the operations endpoints (`/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json`); and the staff routes people use ([`staff`]: reports, pharmacist queue,
//! audit export), which read audit data through their own state, not through the pipeline.
//!
//! This layer knows HTTP, authentication, limits and error bodies. It does not know how a request
//! becomes a decision: that is behind one seam, [`DecisionPipeline`], which parses (adapters),
//! evaluates (engine), records durably (audit) and renders (cards). The HTTP layer never answers a
//! decision itself, so invariant 1 ("no decision without its audit record") is the pipeline's to
//! keep, and the HTTP layer only has to never short-circuit it.
//!
//! Every 4xx the service gives is handed to [`DecisionPipeline::record_rejection`] with a digest
//! of the body (never the body), except 404s for paths that are not routes at all (scanners).

pub mod auth;
pub mod config;
pub mod discovery;
pub mod fhir_client;
mod http_fetch;
pub mod json_depth;
pub mod metrics;
pub mod openapi;
pub mod problem;
mod routes;
pub mod staff;
pub mod startup;
pub mod telemetry;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use config::ServiceConfig;
pub use problem::FieldError;
pub use startup::Application;

/// A boxed, sendable future: the seam stays object safe so the router holds one
/// `Arc<dyn DecisionPipeline>` and is not generic.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the rest of orderguard does with a request once HTTP has accepted it.
///
/// Implementations must make each decision durable before returning `Ok` (DESIGN invariant 1).
/// A request timeout drops the returned future, so work that must finish once started (the audit
/// write) belongs on a task of the implementation's own, not inline in the future.
pub trait DecisionPipeline: Send + Sync + 'static {
    /// A CDS Hooks call to the service `service_id` (one of [`discovery::SERVICES`]; the HTTP
    /// layer has already answered 404 for any other id). Returns the CDS Hooks response body.
    fn cds_hooks(
        &self,
        service_id: &str,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<serde_json::Value, PipelineError>>;

    /// A native order set (`schemas/order-set.schema.json`). Returns the native decision body.
    fn native(
        &self,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<serde_json::Value, PipelineError>>;

    /// CDS Hooks feedback (`{"feedback":[...]}`) on cards of `service_id`.
    fn feedback(
        &self,
        service_id: &str,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<(), PipelineError>>;

    /// A request the service refused (any 4xx). Best effort: the answer to the client does not
    /// wait on the outcome beyond this future.
    fn record_rejection(&self, rejection: Rejection) -> BoxFuture<'_, ()>;

    /// Whether the service can take decisions now (`/readyz`).
    fn readiness(&self) -> Readiness;

    /// Called once after the server stopped taking requests and the in-flight ones finished:
    /// flush the audit writer here.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Why the pipeline could not answer with a decision. Each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The body is not a request the service can read (400). `field_errors` name the fields by
    /// JSON pointer; messages must not quote patient data.
    #[error("bad request: {detail}")]
    BadRequest {
        field_errors: Vec<FieldError>,
        detail: String,
    },
    /// The body's `hook` does not belong to the called service (400, path `/hook`).
    #[error("hook does not match the called service")]
    UnknownHook,
    /// Data the pathway needs is neither prefetched nor fetchable from `fhirServer` (412).
    /// `missing` are prefetch keys (see [`discovery::PREFETCH`]).
    #[error("prefetch unavailable: {missing:?}")]
    PrefetchUnavailable { missing: Vec<String> },
    /// Feedback names a card uuid no decision gave (404). `path` points at the card field,
    /// e.g. `/feedback/0/card`.
    #[error("unknown card at {path}")]
    UnknownCard { path: String },
    /// The decision could not be made durable (503): the client must not act on an unrecorded
    /// decision.
    #[error("audit log not durable")]
    Unavailable,
    /// A bug or an unexpected failure (500). Details go to the log, not to the client.
    #[error("internal error")]
    Internal,
}

/// Who called, as established by [`auth`]. Carries no token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClientIdentity {
    /// A verified CDS Hooks client JWT.
    Verified {
        issuer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        /// The token's `jti`: lets an auditor join a decision to the EHR's own call log.
        token_id: String,
    },
    /// `--insecure-no-auth`, or a request refused before authentication finished.
    Unauthenticated,
}

/// A refused request, as the audit log keeps it: what was refused and why, never the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The route template, e.g. `/cds-services/{id}`.
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    pub status: u16,
    /// The problem `type` URI given to the client.
    pub problem_type: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub field_errors: Vec<FieldError>,
    /// Absent when the request was refused before its body was read (401, 413 by length).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyDigest>,
    pub client: ClientIdentity,
    pub received_at: DateTime<Utc>,
}

/// A digest of a request body: enough to match a rejection to the client's own copy of the
/// request without keeping patient data. Only the first [`BodyDigest::HASHED_PREFIX`] bytes are
/// hashed so that a large body costs little to refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BodyDigest {
    pub sha256: String,
    pub hashed_bytes: usize,
    pub total_bytes: usize,
}

impl BodyDigest {
    pub const HASHED_PREFIX: usize = 64 * 1024;

    pub fn of(body: &[u8]) -> Self {
        use sha2::Digest;
        let hashed = &body[..body.len().min(Self::HASHED_PREFIX)];
        BodyDigest {
            sha256: hex::encode(sha2::Sha256::digest(hashed)),
            hashed_bytes: hashed.len(),
            total_bytes: body.len(),
        }
    }
}

/// Whether the service can take decisions, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// PostgreSQL reachable: decisions are committed there.
    Ready,
    /// PostgreSQL unreachable but the local spool is usable: decisions are durable on disk and
    /// replayed later. Still ready (200), reported so operators see it. `reason` must not carry
    /// connection strings.
    Degraded { reason: String },
    /// Neither PostgreSQL nor the spool can take records: no decision can be durable (503).
    NotReady { reason: String },
}

/// Serve until SIGINT / SIGTERM, then finish in-flight requests and call
/// [`DecisionPipeline::shutdown`]. The CLI's `serve` calls this after building the pipeline and
/// the staff backend (read pool and audit writer for the staff routes).
pub async fn run(
    config: ServiceConfig,
    pipeline: Arc<dyn DecisionPipeline>,
    staff: Option<staff::StaffBackend>,
) -> anyhow::Result<()> {
    telemetry::init();
    let app = Application::build_with_staff(&config, pipeline, staff, Arc::new(auth::SystemClock))
        .await?;
    tracing::info!(address = %app.local_addr(), "orderguard serving");
    app.run_until(startup::shutdown_signal()).await?;
    tracing::info!("orderguard stopped");
    Ok(())
}
