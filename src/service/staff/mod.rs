//! Staff access: the routes people use (reports, the pharmacist queue, the audit export), as
//! opposed to the CDS Hooks routes EHRs call.
//!
//! Every staff route takes a bearer token: a JWT from the hospital identity provider (issuer,
//! JWKS file and roles claim in the service configuration, `staff.identity_providers`), or an API
//! key from `staff.api_keys` (stored as its SHA-256 only). No token, or one that does not verify
//! or has expired, is a 401 problem; a token without the route's role is a 403 problem. Both are
//! recorded in `rejected_requests`. [`StaffIdentity`] carries the actor string the audit log
//! keeps (`idp:<iss>#<sub>`, `key:<name>`) and the roles, never the token.
//!
//! Every read of audit data through a staff route is itself recorded as an `audit_events` row
//! (kind `staff.read`: who, which route and report, which window and filters) before the answer
//! leaves: [`StaffState::record_read`].
//!
//! # How to add a protected route
//!
//! 1. In your own module, write the routes as a `Router<StaffState>`:
//!    ```ignore
//!    pub fn routes() -> Router<StaffState> {
//!        Router::new().route("/v1/dosing-alerts", get(list))
//!    }
//!    async fn list(
//!        State(staff): State<StaffState>,
//!        identity: StaffIdentity,          // 401 problem when absent / invalid / expired
//!        Query(params): Query<Vec<(String, String)>>,
//!    ) -> Result<Response, Response> {
//!        identity.require(Role::Pharmacist)?; // 403 problem otherwise (Admin passes too)
//!        let rows = /* read staff.reports_pool(), filters as push_bind */;
//!        staff.record_read(&identity, "/v1/dosing-alerts", json!({"filters": ...})).await?;
//!        Ok(Json(rows).into_response())
//!    }
//!    ```
//!    Writes (a pharmacist's acknowledgement) go through `staff.audit().record_event(..)`.
//! 2. Add one line to [`staff_router`]: `.merge(your_module::routes())`.
//!
//! The routes get the service's timeout, metrics and tracing layers from
//! [`crate::service::startup`], and the refusal recording from [`staff_router`].

mod identity;
pub mod reports;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

pub use identity::{StaffAuthError, StaffAuthenticator};

use crate::audit::{AuditWriter, EventRecord, RejectionRecord};
use crate::service::auth::{AuthSetupError, Clock, bearer_token};
use crate::service::config::StaffSettings;
use crate::service::problem::{Problem, ProblemKind};

/// What a staff member may do. [`Role::Admin`] may do everything the others may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Quality teams: reports.
    Quality,
    /// Pharmacists: the dosing-alert queue.
    Pharmacist,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Quality => "quality",
            Role::Pharmacist => "pharmacist",
            Role::Admin => "admin",
        }
    }

    /// orderguard's own spelling, case-insensitive.
    pub fn parse(name: &str) -> Option<Role> {
        match name.to_ascii_lowercase().as_str() {
            "quality" => Some(Role::Quality),
            "pharmacist" => Some(Role::Pharmacist),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A verified staff member. Carries no token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffIdentity {
    /// The actor as the audit log stores it: `idp:<issuer>#<sub>` or `key:<key name>`.
    pub subject: String,
    /// Sorted, without duplicates; may be empty (a valid token with no orderguard role: 403).
    pub roles: Vec<Role>,
}

impl StaffIdentity {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin) || self.roles.contains(&role)
    }

    /// `Ok` when the identity has `role` (or is an admin); else a 403 problem.
    pub fn require(&self, role: Role) -> Result<(), StaffRefusal> {
        self.require_any(&[role])
    }

    /// `Ok` when the identity has one of `roles` (or is an admin); else a 403 problem.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), StaffRefusal> {
        if roles.iter().any(|r| self.has(*r)) {
            return Ok(());
        }
        let needed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(StaffRefusal {
            kind: ProblemKind::Forbidden,
            detail: format!("this route needs the role {}", needed.join(" or ")),
            subject: Some(self.subject.clone()),
        })
    }
}

/// A staff request refused: 401 (no identity) or 403 (wrong role), as a problem. The refusal is
/// recorded in `rejected_requests` by the layer [`staff_router`] installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRefusal {
    kind: ProblemKind,
    detail: String,
    subject: Option<String>,
}

impl StaffRefusal {
    fn unauthenticated(reason: &StaffAuthError) -> Self {
        StaffRefusal {
            kind: ProblemKind::Unauthenticated,
            detail: reason.to_string(),
            subject: None,
        }
    }
}

impl IntoResponse for StaffRefusal {
    fn into_response(self) -> Response {
        let mut response = Problem::new(self.kind, self.detail.clone()).into_response();
        if self.kind == ProblemKind::Unauthenticated {
            let challenge = if self.detail == StaffAuthError::MissingToken.to_string() {
                "Bearer"
            } else {
                "Bearer error=\"invalid_token\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<StaffRefusal> for Response {
    fn from(refusal: StaffRefusal) -> Response {
        refusal.into_response()
    }
}

impl<S> FromRequestParts<S> for StaffIdentity
where
    S: Send + Sync,
    StaffState: FromRef<S>,
{
    type Rejection = StaffRefusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let staff = StaffState::from_ref(state);
        let verified = match bearer_token(&parts.headers) {
            None => Err(StaffAuthError::MissingToken),
            Some(token) => staff.inner.auth.verify(token),
        };
        verified.map_err(|reason| {
            tracing::debug!(%reason, "staff authentication failed");
            StaffRefusal::unauthenticated(&reason)
        })
    }
}

/// What the CLI's `serve` hands the service for the staff routes.
pub struct StaffBackend {
    /// Where audit data is read: `REPORTS_DATABASE_URL` when set, else the audit database.
    pub reports: PgPool,
    /// The service's audit writer (the same one the decision pipeline uses), for the
    /// `staff.read` events and for staff actions.
    pub audit: AuditWriter,
}

/// The state every staff route gets. Cheap to clone.
#[derive(Clone)]
pub struct StaffState {
    inner: Arc<Inner>,
}

struct Inner {
    auth: StaffAuthenticator,
    reports: PgPool,
    audit: AuditWriter,
}

impl StaffState {
    pub fn new(
        settings: &StaffSettings,
        backend: StaffBackend,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthSetupError> {
        Ok(StaffState {
            inner: Arc::new(Inner {
                auth: StaffAuthenticator::new(settings, clock)?,
                reports: backend.reports,
                audit: backend.audit,
            }),
        })
    }

    /// The read pool for audit data (a replica when configured).
    pub fn reports_pool(&self) -> &PgPool {
        &self.inner.reports
    }

    /// The audit writer, to append events (never to UPDATE anything).
    pub fn audit(&self) -> &AuditWriter {
        &self.inner.audit
    }

    /// Records that `who` read audit data through `route`; `what` says which (report name,
    /// window, filters, format, row count). Durable before it returns `Ok`: a read that cannot
    /// be recorded is not answered (503 problem).
    pub async fn record_read(
        &self,
        who: &StaffIdentity,
        route: &str,
        what: Value,
    ) -> Result<(), Response> {
        let mut payload = json!({ "route": route });
        if let (Some(target), Value::Object(members)) = (payload.as_object_mut(), what) {
            target.extend(members);
        }
        let event = EventRecord {
            kind: "staff.read".to_owned(),
            actor: who.subject.clone(),
            decision_id: None,
            payload,
        };
        match self.inner.audit.record_event(event).await {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(%error, route, "staff read not recorded: answering 503");
                Err(Problem::new(
                    ProblemKind::AuditUnavailable,
                    "the read could not be recorded in the audit log",
                )
                .into_response())
            }
        }
    }
}

/// Every staff route, with the recording of refusals. `startup` merges it into the service
/// router when `serve` provides a [`StaffBackend`]. Add your module's routes here (one line).
pub fn staff_router<S: Clone + Send + Sync + 'static>(state: StaffState) -> Router<S> {
    Router::new()
        .merge(reports::routes())
        .merge(crate::web::routes::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            record_refusals,
        ))
        .with_state(state)
}

/// A 401 or 403 from a staff route goes into `rejected_requests` (best effort: the refusal is
/// answered either way).
async fn record_refusals(
    State(staff): State<StaffState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let response = next.run(request).await;
    if let Some(refusal) = response.extensions().get::<StaffRefusal>() {
        let status = response.status().as_u16();
        crate::service::metrics::record_rejection(status);
        let record = RejectionRecord {
            at: Utc::now(),
            client_id: refusal.subject.clone(),
            route,
            reason: refusal.detail.clone(),
            status,
            body_hash: None,
            body_len: 0,
        };
        if let Err(error) = staff.inner.audit.record_rejection(record).await {
            tracing::warn!(%error, "refused staff request not recorded");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_may_do_what_every_role_may() {
        let admin = StaffIdentity {
            subject: "key:a".into(),
            roles: vec![Role::Admin],
        };
        admin.require(Role::Pharmacist).unwrap();
        admin.require(Role::Quality).unwrap();
        let quality = StaffIdentity {
            subject: "key:q".into(),
            roles: vec![Role::Quality],
        };
        quality.require(Role::Quality).unwrap();
        let refused = quality.require(Role::Pharmacist).unwrap_err();
        assert_eq!(refused.kind, ProblemKind::Forbidden);
        quality
            .require_any(&[Role::Pharmacist, Role::Quality])
            .unwrap();
        assert!(quality.require(Role::Admin).is_err());
    }

    #[test]
    fn roles_read_kebab_case_and_parse_case_insensitively() {
        let roles: Vec<Role> = serde_json::from_str(r#"["quality","pharmacist","admin"]"#).unwrap();
        assert_eq!(roles, vec![Role::Quality, Role::Pharmacist, Role::Admin]);
        assert_eq!(Role::parse("Pharmacist"), Some(Role::Pharmacist));
        assert_eq!(Role::parse("nurse"), None);
    }
}
