//! The one outbound HTTP client (JWKS from `jku`, FHIR prefetch): GET with a deadline covering
//! connect, headers and body, and a cap on the body size.
//!
//! HTTP/1 over TLS (rustls, ring provider) trusting the operating system's CA store, where a
//! hospital installs its internal CAs; plain `http` is accepted too (a FHIR server on the same
//! host or network segment, and tests).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode, Uri, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not a valid URL")]
    BadUrl,
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the response failed: {0}")]
    Body(String),
}

#[derive(Clone)]
pub struct HttpFetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Default for HttpFetcher {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        // The connector checks the scheme itself, after TLS is set up.
        connector.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = match HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(builder) => builder,
            Err(error) => {
                // No CA store: https fetches will fail their handshake, visibly, per request.
                tracing::warn!(%error, "no system CA certificates found; https fetches will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let connector = tls.https_or_http().enable_http1().wrap_connector(connector);
        HttpFetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl HttpFetcher {
    /// GET `url` with `Accept` and an optional bearer token; the whole exchange within
    /// `timeout`, the body within `max_bytes`.
    pub async fn get(
        &self,
        url: &str,
        accept: &str,
        bearer: Option<&str>,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Bytes, FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::BadUrl)?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(FetchError::BadUrl),
        }
        let mut request = Request::get(uri).header(header::ACCEPT, accept);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Empty::new()).map_err(|_| FetchError::BadUrl)?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status()));
            }
            let limited = Limited::new(response.into_body(), max_bytes);
            match limited.collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(e)
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some() =>
                {
                    Err(FetchError::TooLarge(max_bytes))
                }
                Err(e) => Err(FetchError::Body(e.to_string())),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}
