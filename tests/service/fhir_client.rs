//! The prefetch fetcher against a tiny local FHIR server.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use orderguard::service::PipelineError;
use orderguard::service::config::FhirFetchSettings;
use orderguard::service::fhir_client::{FhirClient, FhirServer};
use serde_json::json;

/// Answers a searchset Bundle per resource type; `Observation` searches for calcium are slow,
/// vitamin D is huge, ServiceRequest fails; every call must carry the bearer token.
async fn fhir(request: Request) -> axum::response::Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v == "Bearer secret-token");
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let path_and_query = request.uri().path_and_query().unwrap().as_str().to_owned();
    if path_and_query.contains("17861-6") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if path_and_query.contains("62292-8") {
        return "x".repeat(100_000).into_response();
    }
    if path_and_query.starts_with("/fhir/ServiceRequest") {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if path_and_query.starts_with("/fhir/Patient/p-1") {
        return axum::Json(json!({"resourceType": "Patient", "id": "p-1"})).into_response();
    }
    axum::Json(json!({"resourceType": "Bundle", "type": "searchset",
        "link": [{"relation": "self", "url": path_and_query}]}))
    .into_response()
}

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(fhir);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn client() -> FhirClient {
    FhirClient::new(&FhirFetchSettings {
        timeout_ms: 300,
        max_response_bytes: 10_000,
    })
}

#[tokio::test]
async fn fetches_the_asked_prefetch_with_the_bearer_token() {
    let base = server().await;
    let server = FhirServer {
        base_url: &base,
        access_token: Some("secret-token"),
    };
    let fetched = client()
        .fetch(server, "p-1", &["patient", "conditions", "renalFunction"])
        .await
        .unwrap();
    let keys: Vec<&str> = fetched.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["patient", "conditions", "renalFunction"]);
    assert_eq!(fetched[0].1["id"], "p-1");
    let self_url = fetched[2].1["link"][0]["url"].as_str().unwrap();
    assert!(self_url.starts_with("/fhir/Observation?patient=p-1&code=http://loinc.org|98979-8"));
}

#[tokio::test]
async fn slow_oversized_failing_and_unauthorized_answers_are_missing_prefetch() {
    let base = server().await;
    let with_token = FhirServer {
        base_url: &base,
        access_token: Some("secret-token"),
    };
    let started = std::time::Instant::now();
    let error = client()
        .fetch(
            with_token,
            "p-1",
            &["patient", "calcium", "vitaminD", "serviceRequests"],
        )
        .await
        .unwrap_err();
    assert_eq!(error.missing, ["calcium", "serviceRequests", "vitaminD"]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the deadline holds"
    );
    assert!(
        !error
            .reasons
            .iter()
            .any(|r| r.contains("p-1") || r.contains("secret"))
    );

    let without_token = FhirServer {
        base_url: &base,
        access_token: None,
    };
    let error = client()
        .fetch(without_token, "p-1", &["patient"])
        .await
        .unwrap_err();
    assert_eq!(
        PipelineError::from(error),
        PipelineError::PrefetchUnavailable {
            missing: vec!["patient".into()]
        }
    );
}

#[tokio::test]
async fn an_unusable_server_or_patient_id_is_missing_prefetch_not_a_request() {
    let base = server().await;
    // https to a plain-HTTP server: the TLS handshake fails, so TLS really is attempted.
    let https_base = base.replacen("http://", "https://", 1);
    let https = FhirServer {
        base_url: &https_base,
        access_token: Some("secret-token"),
    };
    assert_eq!(
        client()
            .fetch(https, "p-1", &["patient"])
            .await
            .unwrap_err()
            .missing,
        ["patient"]
    );
    let local = FhirServer {
        base_url: &base,
        access_token: Some("secret-token"),
    };
    assert_eq!(
        client()
            .fetch(local, "p-1&_revinclude=*", &["conditions"])
            .await
            .unwrap_err()
            .missing,
        ["conditions"]
    );
}
