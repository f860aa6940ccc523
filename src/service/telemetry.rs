//! Logs: JSON lines through `tracing`, set up once per process.
//!
//! What a request log line may carry: method, route template, status, latency, decision id.
//! Never the URI's query, never a body, never a header value (Authorization is marked sensitive
//! so even a Debug of the request hides it), never a patient or order identifier.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tracing::Span;
use tracing_subscriber::EnvFilter;

/// JSON logs to stdout, level from `RUST_LOG` (default `info`). Safe to call twice: the second
/// call does nothing (tests, and a CLI that set up logging itself).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init();
}

/// The span of one request: route template only, and an empty `decision_id` the pipeline fills
/// with `tracing::Span::current().record("decision_id", ...)`.
pub fn request_span<B>(request: &Request<B>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        decision_id = tracing::field::Empty,
    )
}

/// One line per answered request: status and latency (the span adds route and decision id).
pub fn on_response<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "answered"
    );
}
