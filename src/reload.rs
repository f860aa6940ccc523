//! Safe pathway reload: a new pathway is linted and compiled off to the side, recorded
//! (`pathway_versions` row, then swapped in, then a chained `pathway.loaded` audit event), and
//! only then serves. Requests already evaluating keep the `Arc<Plan>` they took at their start
//! ([`Pipeline::plan`]), so no decision mixes two versions. A pathway that fails lint is refused,
//! the refusal is recorded (`pathway.reload_refused`), and the old plan keeps serving.
//!
//! Triggers: SIGHUP re-reads the configured pathway file ([`watch_sighup`]); the admin route
//! `POST /v1/admin/pathway/reload` re-reads it too, or takes a pathway document in its body.

use crate::audit::{self, EventRecord, LoadTrigger};
use crate::decision::PathwayRef;
use crate::pathway::{LintError, PathwayError, Plan};
use crate::pipeline::Pipeline;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

/// Where the new pathway comes from.
#[derive(Debug, Clone)]
pub enum ReloadSource {
    /// The pathway file the service was started with (`--pathway`, or `pathway` in the config).
    ConfiguredFile,
    /// A pathway document given directly (the admin route's body).
    Content(Vec<u8>),
}

/// A reload that took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// The `pathway_versions` row of this load.
    pub load_id: Uuid,
    pub previous: PathwayRef,
    pub current: PathwayRef,
    /// False when the new content is the one already serving (recorded all the same).
    pub changed: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// The pathway fails lint (schema or semantics); the old one keeps serving.
    #[error("{source_name}: the pathway fails lint ({} problem(s)); the old pathway keeps serving", .errors.len())]
    Lint {
        /// The file, or `request body`.
        source_name: String,
        /// Each with the JSON path it concerns.
        errors: Vec<LintError>,
    },
    /// Nothing to re-read: the service runs the shipped pathway.
    #[error(
        "no pathway file is configured (the shipped pathway is serving): start with --pathway FILE"
    )]
    NoFile,
    /// The version could not be recorded, so it is not loaded: every decision must name a
    /// version the database knows.
    #[error("the new pathway version could not be recorded, so it was not loaded: {0}")]
    NotRecorded(String),
}

/// Owns the reload of one service's pathway.
pub struct Reloader {
    pipeline: Arc<Pipeline>,
    file: Option<PathBuf>,
    /// One reload at a time, so the version row, the swap and the event stay in order.
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(pipeline: Arc<Pipeline>, file: Option<PathBuf>) -> Reloader {
        Reloader {
            pipeline,
            file,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The plan serving now.
    pub fn current(&self) -> Arc<Plan> {
        self.pipeline.plan()
    }

    /// Records the pathway the service starts with (row + event). The service starts even when
    /// the database is away (decisions spool); the row is then retried in the background until
    /// it lands, so the version is known by the time the spooled decisions are.
    pub async fn record_startup(self: &Arc<Self>) {
        let plan = self.pipeline.plan();
        if self.record_start(&plan).await {
            return;
        }
        tracing::warn!("pathway version not recorded at start (database away); retrying");
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                if this.record_start(&plan).await {
                    return;
                }
            }
        });
    }

    /// The start's version row, then its chained `pathway.loaded` event; false while the row
    /// cannot be written.
    async fn record_start(&self, plan: &Plan) -> bool {
        let Ok(load_id) = self.record(plan, LoadTrigger::Startup, "startup").await else {
            return false;
        };
        self.event(
            "pathway.loaded",
            "startup",
            json!({
                "trigger": LoadTrigger::Startup.as_str(),
                "load_id": load_id,
                "previous": null,
                "current": plan.reference,
            }),
        )
        .await;
        true
    }

    async fn record(
        &self,
        plan: &Plan,
        trigger: LoadTrigger,
        actor: &str,
    ) -> Result<Uuid, audit::AuditError> {
        let writer = self.pipeline.writer();
        let load_id = audit::record_version(
            self.pipeline.pool(),
            plan,
            trigger,
            actor,
            writer.chain_id(),
        )
        .await?;
        tracing::info!(pathway = %plan.reference.id, version = %plan.reference.version, hash = %plan.reference.content_hash, trigger = trigger.as_str(), "pathway version recorded");
        Ok(load_id)
    }

    /// Lints and compiles the new pathway, records it, swaps it in and records the event.
    /// `actor` is who asked (`signal:SIGHUP`, a staff subject); never a token.
    pub async fn reload(
        &self,
        source: ReloadSource,
        trigger: LoadTrigger,
        actor: &str,
    ) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.lock.lock().await;
        let previous = self.pipeline.plan().reference.clone();
        let compiled = match &source {
            ReloadSource::ConfiguredFile => match &self.file {
                None => Err(ReloadError::NoFile),
                Some(path) => Plan::from_path(path).map_err(|e| lint_error(path_name(path), e)),
            },
            ReloadSource::Content(bytes) => std::str::from_utf8(bytes)
                .map_err(|_| ReloadError::Lint {
                    source_name: "request body".into(),
                    errors: vec![LintError {
                        path: String::new(),
                        message: "not UTF-8 text".into(),
                    }],
                })
                .and_then(|text| {
                    Plan::from_json(text).map_err(|e| lint_error("request body".into(), e))
                }),
        };
        let plan = match compiled {
            Ok(plan) => Arc::new(plan),
            Err(error) => {
                self.event(
                    "pathway.reload_refused",
                    actor,
                    json!({
                        "trigger": trigger.as_str(),
                        "serving": previous,
                        "reason": error.to_string(),
                        "errors": match &error {
                            ReloadError::Lint { errors, .. } => json!(errors),
                            _ => json!([]),
                        },
                    }),
                )
                .await;
                tracing::warn!(%error, "pathway reload refused");
                return Err(error);
            }
        };
        let load_id = self
            .record(&plan, trigger, actor)
            .await
            .map_err(|e| ReloadError::NotRecorded(e.to_string()))?;
        let current = plan.reference.clone();
        self.pipeline.swap_plan(plan);
        self.event(
            "pathway.loaded",
            actor,
            json!({
                "trigger": trigger.as_str(),
                "load_id": load_id,
                "previous": previous,
                "current": current,
            }),
        )
        .await;
        tracing::info!(from = %previous.content_hash, to = %current.content_hash, "pathway reloaded");
        Ok(Reloaded {
            load_id,
            changed: previous != current,
            previous,
            current,
        })
    }

    /// The chained audit event of a reload. The version row is already in the database (or the
    /// reload was refused), so a writer that cannot take the event only loses the log line.
    async fn event(&self, kind: &str, actor: &str, payload: serde_json::Value) {
        let event = EventRecord {
            kind: kind.into(),
            actor: actor.into(),
            decision_id: None,
            payload,
        };
        if let Err(error) = self.pipeline.writer().record_event(event).await {
            tracing::error!(%error, kind, "pathway reload event not recorded");
        }
    }
}

fn path_name(path: &std::path::Path) -> String {
    path.display().to_string()
}

fn lint_error(source_name: String, error: PathwayError) -> ReloadError {
    ReloadError::Lint {
        source_name,
        errors: error.lint_errors(),
    }
}

/// Reloads the configured pathway file on every SIGHUP, for as long as the service runs.
#[cfg(unix)]
pub async fn watch_sighup(reloader: Arc<Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP: pathway reload by signal is off");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the pathway");
        // Refusals are logged and recorded inside; the old pathway keeps serving.
        let _ = reloader
            .reload(
                ReloadSource::ConfiguredFile,
                LoadTrigger::Sighup,
                "signal:SIGHUP",
            )
            .await;
    }
}

#[cfg(not(unix))]
pub async fn watch_sighup(_reloader: Arc<Reloader>) {}
