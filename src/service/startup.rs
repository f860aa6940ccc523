//! Building the app: the router (usable without a socket, for `oneshot` tests) and the
//! listening server with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::service::auth::{Authenticator, Clock, SystemClock, Verifier};
use crate::service::config::ServiceConfig;
use crate::service::problem::{Problem, ProblemKind};
use crate::service::routes::{self, Shared};
use crate::service::staff::{StaffBackend, StaffState, staff_router};
use crate::service::{DecisionPipeline, discovery, openapi, telemetry};

/// The router for `config`, with the system clock.
pub fn router(
    config: &ServiceConfig,
    pipeline: Arc<dyn DecisionPipeline>,
) -> anyhow::Result<Router> {
    router_with_clock(config, pipeline, Arc::new(SystemClock))
}

/// The router, with the clock token times are checked against (tests pin it).
pub fn router_with_clock(
    config: &ServiceConfig,
    pipeline: Arc<dyn DecisionPipeline>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Router> {
    router_with_staff(config, pipeline, None, clock)
}

/// The router with the staff routes (reports, pharmacist queue, audit export) when `staff` is
/// given; without it those routes do not exist (404).
pub fn router_with_staff(
    config: &ServiceConfig,
    pipeline: Arc<dyn DecisionPipeline>,
    staff: Option<StaffBackend>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Router> {
    config.validate()?;
    let staff = staff
        .map(|backend| StaffState::new(&config.staff, backend, clock.clone()))
        .transpose()?;
    let auth = if config.insecure_no_auth {
        Authenticator::Insecure
    } else {
        Authenticator::Jwt(Box::new(Verifier::new(&config.auth, clock)?))
    };
    // Installed here so /metrics renders even before the first request is counted.
    crate::service::metrics::handle();
    let shared = Arc::new(Shared {
        pipeline,
        auth,
        limits: config.limits.clone(),
        discovery: Bytes::from(serde_json::to_vec(&discovery::document())?),
        openapi: Bytes::from(openapi::document().to_json()?),
    });

    // Every call from an EHR carries a client JWT, discovery and feedback included.
    let clients = Router::new()
        .route("/cds-services", get(routes::discovery))
        .route("/cds-services/{id}", post(routes::cds_service))
        .route("/cds-services/{id}/feedback", post(routes::feedback))
        .route("/v1/validate", post(routes::validate))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            routes::require_client,
        ));
    let operations = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics_text))
        .route("/openapi.json", get(routes::openapi));

    // Route layers see the matched route template, so metrics and log lines are labelled by
    // route, never by a raw path. The timeout is innermost so a timed-out request is still
    // counted and logged.
    let mut routes = clients.merge(operations);
    if let Some(staff) = staff {
        // Staff routes authenticate people (IdP JWT or API key), not EHRs: see `staff`.
        routes = routes.merge(staff_router(staff));
    }
    Ok(routes
        .route_layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.limits.request_timeout(),
        ))
        .route_layer(middleware::from_fn(routes::track_metrics))
        .route_layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_request(())
                .on_response(telemetry::on_response),
        )
        .fallback(routes::not_found)
        .with_state(shared)
        // A panic answers a plain problem: the panic message may quote request data.
        .layer(CatchPanicLayer::custom(|_| {
            Problem::new(ProblemKind::Internal, "").into_response()
        }))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ])))
}

/// Longest a client may take to send a request's headers, counted from the start of the
/// connection (or of the next request on a kept-alive one).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pipeline: Arc<dyn DecisionPipeline>,
}

impl Application {
    /// Bind `config.listen` (port 0: any free port) and build the router.
    pub async fn build(
        config: &ServiceConfig,
        pipeline: Arc<dyn DecisionPipeline>,
    ) -> anyhow::Result<Self> {
        Self::build_with_clock(config, pipeline, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: &ServiceConfig,
        pipeline: Arc<dyn DecisionPipeline>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::build_with_staff(config, pipeline, None, clock).await
    }

    /// As [`Application::build_with_clock`], with the staff routes when `staff` is given
    /// (`orderguard serve` gives it).
    pub async fn build_with_staff(
        config: &ServiceConfig,
        pipeline: Arc<dyn DecisionPipeline>,
        staff: Option<StaffBackend>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let router = router_with_staff(config, pipeline.clone(), staff, clock)?;
        if config.insecure_no_auth {
            tracing::warn!(
                "INSECURE: --insecure-no-auth is set; CDS Hooks calls are accepted WITHOUT client \
                 authentication. For local demos only, never with patient data."
            );
        }
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Application {
            listener,
            router,
            pipeline,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serve until `shutdown` completes; then stop accepting, let in-flight requests finish, and
    /// call the pipeline's shutdown hook (audit flush).
    ///
    /// Each connection is HTTP/1.1 with a deadline on reading a request's headers
    /// ([`HEADER_READ_TIMEOUT`]): a client that trickles its headers (slow loris) is dropped.
    /// A trickled body is cut by the request timeout, which covers reading the body.
    /// (`axum::serve` sets no header deadline: such a client held its connection forever.)
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use hyper_util::rt::{TokioIo, TokioTimer};
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let service = hyper_util::service::TowerToHyperService::new(self.router);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service.clone());
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // A dropped or timed-out client is not an error of the service.
                let _ = connection.await;
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
        self.pipeline.shutdown().await;
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
