//! `POST /v1/admin/pathway/reload` (admin role): reload the pathway through
//! [`crate::reload::Reloader`]. An empty body re-reads the configured pathway file (as SIGHUP
//! does); a body is the pathway document itself. Answers the previous and current versions; a
//! pathway that fails lint is a 400 problem listing every lint error with its JSON path (into the
//! body, or into the configured file), and the old pathway keeps serving. The reload, or its
//! refusal, is recorded as an audit event by the reloader, under the admin's subject.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;

use super::{Role, StaffIdentity, StaffState};
use crate::audit::LoadTrigger;
use crate::reload::{ReloadError, ReloadSource};
use crate::service::problem::{FieldError, Problem, ProblemKind};

pub const RELOAD_ROUTE: &str = "/v1/admin/pathway/reload";

pub fn routes() -> Router<StaffState> {
    Router::new().route(RELOAD_ROUTE, post(reload))
}

/// Reloads the pathway (role admin): lint, compile, record the version, swap.
#[utoipa::path(post, path = "/v1/admin/pathway/reload", tag = "admin", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json", description = "A pathway document; an empty body re-reads the configured file"),
    responses((status = 200, description = "The previous and the current pathway versions", content_type = "application/json"),
              (status = 400, description = "The pathway fails lint; `errors` give each JSON path", content_type = "application/problem+json"),
              (status = 404, description = "This service has no pathway reload", content_type = "application/problem+json")))]
pub(crate) async fn reload(
    State(staff): State<StaffState>,
    identity: StaffIdentity,
    body: Bytes,
) -> Result<Response, Response> {
    identity.require(Role::Admin)?;
    let Some(reloader) = staff.reloader() else {
        return Err(
            Problem::new(ProblemKind::NotFound, "this service has no pathway reload")
                .into_response(),
        );
    };
    let source = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadSource::ConfiguredFile
    } else {
        ReloadSource::Content(body.to_vec())
    };
    match reloader
        .reload(source, LoadTrigger::Admin, &identity.subject)
        .await
    {
        Ok(reloaded) => Ok(axum::Json(reloaded).into_response()),
        Err(error @ ReloadError::Lint { .. }) => {
            let ReloadError::Lint { errors, .. } = &error else {
                unreachable!()
            };
            let errors = errors
                .iter()
                .map(|e| FieldError::new(e.path.clone(), e.message.clone()))
                .collect();
            Err(Problem::new(ProblemKind::InvalidRequest, error.to_string())
                .with_errors(errors)
                .into_response())
        }
        Err(error @ ReloadError::NoFile) => {
            Err(Problem::new(ProblemKind::InvalidRequest, error.to_string()).into_response())
        }
        Err(error @ ReloadError::NotRecorded(_)) => {
            Err(Problem::new(ProblemKind::AuditUnavailable, error.to_string()).into_response())
        }
    }
}
