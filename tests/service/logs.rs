//! Log lines carry route, status and latency, never a token or request data.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, header};
use tracing_subscriber::fmt::MakeWriter;

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_token_and_no_request_data_reach_the_log_even_at_trace_level() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let token = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJodHRwczovL2V2aWwifQ.c2lnbmF0dXJl";
    let patient = "Margaret Hamilton-Smythe";
    let mut config = insecure_config();
    config.insecure_no_auth = false;
    config.auth.audience_base_url = Some("https://cds.example.org".into());
    config.auth.trusted_clients = vec![orderguard::service::config::TrustedClient {
        issuer: "https://fhir-ehr.example.com/".into(),
        jwks_file: Some(spec_file("jwks-public.json")),
        jku_allow: Vec::new(),
    }];
    let app = app_with(&config);
    let answer = app
        .send(
            Request::post("/cds-services/vcf-order-sign?patient=Margaret")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(format!("{{\"name\":\"{patient}\"}}")))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, 401);

    let insecure = app_with(&insecure_config());
    let answer = insecure
        .post(
            "/cds-services/vcf-order-sign",
            format!("{{\"hook\":\"order-sign\",\"context\":{{\"name\":\"{patient}\"}}}}"),
        )
        .await;
    assert_eq!(answer.status, 400);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("/cds-services/{id}"), "{logs}");
    assert!(logs.contains("\"status\":401"), "{logs}");
    assert!(logs.contains("client authentication failed"), "{logs}");
    for secret in [token, "c2lnbmF0dXJl", patient, "Margaret", "Bearer"] {
        assert!(!logs.contains(secret), "{secret} leaked into: {logs}");
    }
}
