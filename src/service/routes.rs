//! The handlers and the per-request middleware (authentication, metrics).

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use crate::service::auth::Authenticator;
use crate::service::config::Limits;
use crate::service::problem::{FieldError, Problem, ProblemKind};
use crate::service::{
    BodyDigest, ClientIdentity, DecisionPipeline, PipelineError, Readiness, Rejection, discovery,
    json_depth, metrics,
};

/// What every handler shares. Built once at startup.
pub(crate) struct Shared {
    pub pipeline: Arc<dyn DecisionPipeline>,
    pub auth: Authenticator,
    pub limits: Limits,
    pub discovery: Bytes,
    pub openapi: Bytes,
}

pub(crate) type AppState = Arc<Shared>;

const SERVICE_ROUTE: &str = "/cds-services/{id}";
const FEEDBACK_ROUTE: &str = "/cds-services/{id}/feedback";
const VALIDATE_ROUTE: &str = "/v1/validate";

/// Whether error bodies on a route carry an OperationOutcome (the CDS Hooks routes).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    CdsHooks,
    Native,
}

/// CDS Hooks discovery.
#[utoipa::path(get, path = "/cds-services", tag = "cds-hooks",
    responses((status = 200, description = "The CDS services offered, with prefetch templates", content_type = "application/json"),
              (status = 401, description = "No valid client JWT")))]
pub(crate) async fn discovery(State(app): State<AppState>) -> Response {
    json_bytes(StatusCode::OK, app.discovery.clone())
}

/// A CDS Hooks call (order-select or order-sign).
#[utoipa::path(post, path = "/cds-services/{id}", tag = "cds-hooks",
    params(("id" = String, Path, description = "A service id from discovery")),
    request_body(content = Object, content_type = "application/json", description = "A CDS Hooks request"),
    responses((status = 200, description = "Cards", content_type = "application/json"),
              (status = 400, description = "The request is not valid; `errors` name the fields", content_type = "application/problem+json"),
              (status = 401, description = "No valid client JWT"),
              (status = 404, description = "No such service", content_type = "application/problem+json"),
              (status = 412, description = "Prefetch missing and not fetchable", content_type = "application/problem+json"),
              (status = 413, description = "Body over the limit", content_type = "application/problem+json"),
              (status = 503, description = "The decision could not be recorded", content_type = "application/problem+json")))]
pub(crate) async fn cds_service(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(client): Extension<ClientIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(service) = discovery::service(&id) else {
        return unknown_service(&app, SERVICE_ROUTE, id, client).await;
    };
    let bytes = match read_body(&app.limits, &headers, body).await {
        Ok(bytes) => bytes,
        Err((problem, digest)) => {
            return reject(
                &app,
                SERVICE_ROUTE,
                Some(id),
                problem,
                Flavor::CdsHooks,
                digest,
                client,
            )
            .await;
        }
    };
    match app
        .pipeline
        .cds_hooks(&id, bytes.clone(), client.clone())
        .await
    {
        Ok(cards) => axum::Json(cards).into_response(),
        Err(error) => {
            let problem = problem_for(&error, service.hook);
            finish_error(
                &app,
                SERVICE_ROUTE,
                Some(id),
                problem,
                Flavor::CdsHooks,
                &bytes,
                client,
            )
            .await
        }
    }
}

/// CDS Hooks feedback on cards.
#[utoipa::path(post, path = "/cds-services/{id}/feedback", tag = "cds-hooks",
    params(("id" = String, Path, description = "A service id from discovery")),
    request_body(content = Object, content_type = "application/json", description = "`{\"feedback\": [...]}`"),
    responses((status = 200, description = "Recorded (repeated feedback is recorded too)"),
              (status = 400, description = "The request is not valid", content_type = "application/problem+json"),
              (status = 401, description = "No valid client JWT"),
              (status = 404, description = "No such service, or no decision gave the card", content_type = "application/problem+json")))]
pub(crate) async fn feedback(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(client): Extension<ClientIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(service) = discovery::service(&id) else {
        return unknown_service(&app, FEEDBACK_ROUTE, id, client).await;
    };
    let bytes = match read_body(&app.limits, &headers, body).await {
        Ok(bytes) => bytes,
        Err((problem, digest)) => {
            return reject(
                &app,
                FEEDBACK_ROUTE,
                Some(id),
                problem,
                Flavor::CdsHooks,
                digest,
                client,
            )
            .await;
        }
    };
    match app
        .pipeline
        .feedback(&id, bytes.clone(), client.clone())
        .await
    {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => {
            let problem = problem_for(&error, service.hook);
            finish_error(
                &app,
                FEEDBACK_ROUTE,
                Some(id),
                problem,
                Flavor::CdsHooks,
                &bytes,
                client,
            )
            .await
        }
    }
}

/// Native order-set validation for CPOEs without FHIR.
#[utoipa::path(post, path = "/v1/validate", tag = "native",
    request_body(content = Object, content_type = "application/json", description = "An order set (schemas/order-set.schema.json)"),
    responses((status = 200, description = "The decision (schemas/decision.schema.json)", content_type = "application/json"),
              (status = 400, description = "The order set is not valid; `errors` name the fields", content_type = "application/problem+json"),
              (status = 401, description = "No valid client JWT"),
              (status = 413, description = "Body over the limit", content_type = "application/problem+json"),
              (status = 503, description = "The decision could not be recorded", content_type = "application/problem+json")))]
pub(crate) async fn validate(
    State(app): State<AppState>,
    Extension(client): Extension<ClientIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body(&app.limits, &headers, body).await {
        Ok(bytes) => bytes,
        Err((problem, digest)) => {
            return reject(
                &app,
                VALIDATE_ROUTE,
                None,
                problem,
                Flavor::Native,
                digest,
                client,
            )
            .await;
        }
    };
    match app.pipeline.native(bytes.clone(), client.clone()).await {
        Ok(decision) => axum::Json(decision).into_response(),
        Err(error) => {
            let problem = problem_for(&error, "");
            finish_error(
                &app,
                VALIDATE_ROUTE,
                None,
                problem,
                Flavor::Native,
                &bytes,
                client,
            )
            .await
        }
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", content_type = "application/json")))]
pub(crate) async fn healthz() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

/// Readiness: a decision made now can be made durable.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready, or degraded (spooling to disk while PostgreSQL is unreachable)", content_type = "application/json"),
              (status = 503, description = "No decision could be recorded", content_type = "application/json")))]
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    match app.pipeline.readiness() {
        Readiness::Ready => axum::Json(json!({"status": "ready"})).into_response(),
        Readiness::Degraded { reason } => {
            axum::Json(with_reason(json!({"status": "degraded"}), reason)).into_response()
        }
        Readiness::NotReady { reason } => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(with_reason(json!({"status": "not-ready"}), reason)),
        )
            .into_response(),
    }
}

fn with_reason(mut body: Value, reason: String) -> Value {
    if !reason.is_empty() {
        body["reason"] = Value::String(reason);
    }
    body
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics_text() -> Response {
    let mut response = metrics::render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 description of the service", content_type = "application/json")))]
pub(crate) async fn openapi(State(app): State<AppState>) -> Response {
    json_bytes(StatusCode::OK, app.openapi.clone())
}

/// Any path that is not a route. Not recorded as a rejection: scanners are not clinical traffic.
pub(crate) async fn not_found() -> Response {
    Problem::new(ProblemKind::NotFound, "no such path").into_response()
}

/// Authentication for the client-facing routes. Failure is a bare 401.
pub(crate) async fn require_client(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    match app.auth.authenticate(request.headers(), &path).await {
        Ok(client) => {
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Err(reason) => {
            tracing::debug!(%reason, "client authentication failed");
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_else(|| path.clone());
            metrics::record_rejection(401);
            app.pipeline
                .record_rejection(Rejection {
                    route,
                    service_id: None,
                    status: 401,
                    problem_type: "urn:orderguard:problem:unauthenticated",
                    detail: "client authentication failed".to_owned(),
                    field_errors: Vec::new(),
                    body: None,
                    client: ClientIdentity::Unauthenticated,
                    received_at: Utc::now(),
                })
                .await;
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Requests and latency per route template and status.
pub(crate) async fn track_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::record_http(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Read the body within the size limit and refuse nesting deeper than the depth limit, before
/// anything parses it.
async fn read_body(
    limits: &Limits,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, (Problem, Option<BodyDigest>)> {
    let too_large = || {
        Problem::new(
            ProblemKind::BodyTooLarge,
            format!("the body is over {} bytes", limits.max_body_bytes),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return Err((too_large(), None));
    }
    let bytes = match Limited::new(body, limits.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err((too_large(), None));
        }
        Err(_) => {
            return Err((
                Problem::new(ProblemKind::InvalidRequest, "the body could not be read"),
                None,
            ));
        }
    };
    if let Err(too_deep) = json_depth::check(&bytes, limits.max_json_depth) {
        let path = if too_deep.path.is_empty() {
            "/".to_owned()
        } else {
            too_deep.path
        };
        let problem = Problem::new(
            ProblemKind::TooDeep,
            format!("JSON nested more than {} levels", too_deep.max_depth),
        )
        .with_errors(vec![FieldError::new(
            path,
            format!("nested more than {} levels deep", too_deep.max_depth),
        )]);
        return Err((problem, Some(BodyDigest::of(&bytes))));
    }
    Ok(bytes)
}

fn problem_for(error: &PipelineError, expected_hook: &str) -> Problem {
    match error {
        PipelineError::BadRequest {
            field_errors,
            detail,
        } => Problem::new(ProblemKind::InvalidRequest, detail.clone())
            .with_errors(field_errors.clone()),
        PipelineError::UnknownHook => Problem::new(
            ProblemKind::InvalidRequest,
            "the hook does not belong to the called service",
        )
        .with_errors(vec![FieldError::new(
            "/hook",
            format!("this service answers the {expected_hook} hook"),
        )]),
        PipelineError::PrefetchUnavailable { missing } => Problem::new(
            ProblemKind::PrefetchUnavailable,
            "data the pathway needs was not prefetched and could not be fetched from fhirServer",
        )
        .with_errors(
            missing
                .iter()
                .map(|key| {
                    FieldError::new(
                        format!("/prefetch/{}", crate::service::problem::pointer_token(key)),
                        "not sent and not fetchable from fhirServer",
                    )
                })
                .collect(),
        ),
        PipelineError::UnknownCard { path } => {
            Problem::new(ProblemKind::UnknownCard, "no decision gave this card")
                .with_errors(vec![FieldError::new(path.clone(), "unknown card uuid")])
        }
        PipelineError::Unavailable => Problem::new(
            ProblemKind::AuditUnavailable,
            "the decision could not be recorded; no decision is given",
        ),
        PipelineError::Internal => Problem::new(ProblemKind::Internal, ""),
    }
}

async fn unknown_service(
    app: &AppState,
    route: &str,
    id: String,
    client: ClientIdentity,
) -> Response {
    let problem = Problem::new(
        ProblemKind::UnknownService,
        "no CDS service with this id; GET /cds-services lists them",
    );
    reject(
        app,
        route,
        Some(id),
        problem,
        Flavor::CdsHooks,
        None,
        client,
    )
    .await
}

/// A pipeline error: 4xx are rejections and recorded; 5xx are not (nothing was refused, the
/// service failed).
async fn finish_error(
    app: &AppState,
    route: &str,
    service_id: Option<String>,
    problem: Problem,
    flavor: Flavor,
    body: &[u8],
    client: ClientIdentity,
) -> Response {
    if problem.status().is_client_error() {
        let digest = Some(BodyDigest::of(body));
        reject(app, route, service_id, problem, flavor, digest, client).await
    } else {
        problem
            .for_cds_hooks(flavor == Flavor::CdsHooks)
            .into_response()
    }
}

async fn reject(
    app: &AppState,
    route: &str,
    service_id: Option<String>,
    problem: Problem,
    flavor: Flavor,
    body: Option<BodyDigest>,
    client: ClientIdentity,
) -> Response {
    let status = problem.status().as_u16();
    metrics::record_rejection(status);
    app.pipeline
        .record_rejection(Rejection {
            route: route.to_owned(),
            service_id,
            status,
            problem_type: problem.kind.type_uri(),
            detail: problem.detail.clone(),
            field_errors: problem.errors.clone(),
            body,
            client,
            received_at: Utc::now(),
        })
        .await;
    problem
        .for_cds_hooks(flavor == Flavor::CdsHooks)
        .into_response()
}
