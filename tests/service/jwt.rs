//! Client JWT verification: the spec's own sample token, and each way a token must be refused.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orderguard::service::auth::{AuthError, FixedClock, Verifier};
use orderguard::service::config::{AuthSettings, TrustedClient};
use orderguard::service::{ClientIdentity, ServiceConfig};
use p384::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use crate::support::*;

pub const SPEC_ISSUER: &str = "https://fhir-ehr.example.com/";
const BASE: &str = "https://cds.example.org";
const SPEC_PATH: &str = "/cds-services/some-service";
/// Inside the spec token's life (iat 2011-07-21, exp 2015-01-29).
const SPEC_NOW: u64 = 1_400_000_000;
const RSA_ISSUER: &str = "https://rsa-ehr.example.com";

fn settings(jku_allow: Vec<String>) -> AuthSettings {
    AuthSettings {
        audience_base_url: Some(BASE.into()),
        trusted_clients: vec![
            TrustedClient {
                issuer: SPEC_ISSUER.into(),
                jwks_file: Some(spec_file("jwks-public.json")),
                jku_allow: Vec::new(),
            },
            TrustedClient {
                issuer: RSA_ISSUER.into(),
                jwks_file: Some(fixture("jwt/rs384-TEST-ONLY.jwks.json")),
                jku_allow: Vec::new(),
            },
            TrustedClient {
                issuer: "https://jku-ehr.example.com".into(),
                jwks_file: None,
                jku_allow,
            },
        ],
        ..AuthSettings::default()
    }
}

fn verifier_at(now: u64) -> Verifier {
    Verifier::new(&settings(Vec::new()), Arc::new(FixedClock::at(now))).unwrap()
}

fn spec_token() -> String {
    std::fs::read_to_string(spec_file("jwt-compact-ES384.txt"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The spec's example EC private key (published in the spec, EXAMPLE ONLY) as PKCS#8 DER.
pub fn spec_signing_key() -> EncodingKey {
    use base64::Engine;
    let jwk = read_json(spec_file("jwk-private-EXAMPLE-ONLY.json"));
    let d = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["d"].as_str().unwrap())
        .unwrap();
    let secret = p384::SecretKey::from_slice(&d).unwrap();
    EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes())
}

pub fn rsa_signing_key() -> EncodingKey {
    EncodingKey::from_rsa_der(&std::fs::read(fixture("jwt/rs384-TEST-ONLY.key.der")).unwrap())
}

fn claims(now: u64, jti: &str) -> Value {
    json!({
        "iss": SPEC_ISSUER,
        "aud": format!("{BASE}{SPEC_PATH}"),
        "exp": now + 300,
        "iat": now,
        "jti": jti,
    })
}

fn es384(kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some(kid.into());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, &spec_signing_key()).unwrap()
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn the_spec_sample_token_verifies_against_the_spec_jwks_with_the_clock_pinned() {
    let identity = verifier_at(SPEC_NOW)
        .verify(&spec_token(), SPEC_PATH)
        .await
        .unwrap();
    assert_eq!(
        identity,
        ClientIdentity::Verified {
            issuer: SPEC_ISSUER.into(),
            tenant: Some("2ddd6c3a-8e9a-44c6-a305-52111ad302a2".into()),
            token_id: "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e".into(),
        }
    );
    // Today it has long expired.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        verifier_at(now).verify(&spec_token(), SPEC_PATH).await,
        Err(AuthError::Expired)
    );
}

#[tokio::test]
async fn tokens_signed_with_the_spec_example_key_and_our_rsa_test_key_verify() {
    let verifier = verifier_at(SPEC_NOW);
    let token = es384("example-kid", &claims(SPEC_NOW, "es-1"));
    verifier.verify(&token, SPEC_PATH).await.unwrap();

    let mut rsa_claims = claims(SPEC_NOW, "rs-1");
    rsa_claims["iss"] = json!(RSA_ISSUER);
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("orderguard-test-rsa".into());
    let token = jsonwebtoken::encode(&header, &rsa_claims, &rsa_signing_key()).unwrap();
    let identity = verifier.verify(&token, SPEC_PATH).await.unwrap();
    assert!(matches!(identity, ClientIdentity::Verified { issuer, .. } if issuer == RSA_ISSUER));
}

#[tokio::test]
async fn each_bad_token_is_refused_for_its_own_reason() {
    let now = SPEC_NOW;
    let leeway = AuthSettings::default().leeway_seconds;

    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "example-kid"})),
        b64(&claims(now, "none-1"))
    );
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("example-kid".into());
        let public = std::fs::read(spec_file("jwks-public.json")).unwrap();
        jsonwebtoken::encode(
            &header,
            &claims(now, "hs-1"),
            &EncodingKey::from_secret(&public),
        )
        .unwrap()
    };
    let mut expired = claims(now, "exp-1");
    expired["iat"] = json!(now - 3600);
    expired["exp"] = json!(now - leeway - 1);
    let mut future = claims(now, "iat-1");
    future["iat"] = json!(now + leeway + 60);
    future["exp"] = json!(now + 3600);
    let mut wrong_aud = claims(now, "aud-1");
    wrong_aud["aud"] = json!(format!("{BASE}/cds-services/another-service"));
    let mut unknown_iss = claims(now, "iss-1");
    unknown_iss["iss"] = json!("https://evil.example.com/");
    let bad_signature = {
        let token = es384("example-kid", &claims(now, "sig-1"));
        let parts: Vec<&str> = token.split('.').collect();
        let mut tampered = claims(now, "sig-1");
        tampered["tenant"] = json!("another-tenant");
        format!("{}.{}.{}", parts[0], b64(&tampered), parts[2])
    };

    // A stale token is turned away before the (costly) signature check, forged or not.
    let stale_forgery = {
        let token = es384("example-kid", &claims(now, "stale-1"));
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(&expired), parts[2])
    };

    let cases: Vec<(&str, String, AuthError)> = vec![
        ("stale forgery", stale_forgery, AuthError::Expired),
        ("alg none", alg_none, AuthError::Malformed),
        (
            "HS256 with the public key",
            hs256_with_public_key,
            AuthError::DisallowedAlgorithm,
        ),
        (
            "expired",
            es384("example-kid", &expired),
            AuthError::Expired,
        ),
        (
            "not yet valid",
            es384("example-kid", &future),
            AuthError::NotYetValid,
        ),
        (
            "wrong aud",
            es384("example-kid", &wrong_aud),
            AuthError::WrongAudience,
        ),
        (
            "unknown iss",
            es384("example-kid", &unknown_iss),
            AuthError::UnknownIssuer,
        ),
        ("bad signature", bad_signature, AuthError::BadSignature),
        (
            "unknown kid",
            es384("other-kid", &claims(now, "kid-1")),
            AuthError::UnknownKid,
        ),
    ];
    let verifier = verifier_at(now);
    for (name, token, expected) in cases {
        assert_eq!(
            verifier.verify(&token, SPEC_PATH).await,
            Err(expected),
            "{name}"
        );
    }

    // Within the leeway both ways is still fine.
    let mut skewed = claims(now, "skew-1");
    skewed["iat"] = json!(now + leeway - 1);
    skewed["exp"] = json!(now - leeway + 1);
    verifier
        .verify(&es384("example-kid", &skewed), SPEC_PATH)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_replayed_jti_is_refused_while_the_token_lives_and_a_forged_one_burns_nothing() {
    let verifier = verifier_at(SPEC_NOW);
    let token = es384("example-kid", &claims(SPEC_NOW, "once"));
    // A forgery reusing the jti must not make the genuine token look replayed.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged_claims = claims(SPEC_NOW, "once");
    forged_claims["tenant"] = json!("x");
    let forged = format!("{}.{}.{}", parts[0], b64(&forged_claims), parts[2]);
    assert_eq!(
        verifier.verify(&forged, SPEC_PATH).await,
        Err(AuthError::BadSignature)
    );

    verifier.verify(&token, SPEC_PATH).await.unwrap();
    assert_eq!(
        verifier.verify(&token, SPEC_PATH).await,
        Err(AuthError::Replayed)
    );
}

#[tokio::test]
async fn keys_come_from_an_allow_listed_jku_only() {
    let jwks = std::fs::read_to_string(spec_file("jwks-public.json")).unwrap();
    let server = axum::Router::new().route(
        "/jwks",
        get(move || {
            let jwks = jwks.clone();
            async move { jwks }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jku = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let verifier = Verifier::new(
        &settings(vec![jku.clone()]),
        Arc::new(FixedClock::at(SPEC_NOW)),
    )
    .unwrap();
    let sign = |jku: &str, jti: &str| {
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some("example-kid".into());
        header.jku = Some(jku.into());
        let mut body = claims(SPEC_NOW, jti);
        body["iss"] = json!("https://jku-ehr.example.com");
        jsonwebtoken::encode(&header, &body, &spec_signing_key()).unwrap()
    };
    verifier
        .verify(&sign(&jku, "jku-1"), SPEC_PATH)
        .await
        .unwrap();
    assert_eq!(
        verifier
            .verify(&sign("http://127.0.0.1:1/elsewhere", "jku-2"), SPEC_PATH)
            .await,
        Err(AuthError::JkuNotAllowed)
    );
}

fn jwt_config() -> ServiceConfig {
    let mut config = insecure_config();
    config.insecure_no_auth = false;
    config.auth = settings(vec!["http://127.0.0.1:1/jwks".into()]);
    config
}

#[tokio::test]
async fn over_http_a_failed_authentication_is_a_bare_401_and_is_recorded() {
    let pipeline = Arc::new(TestPipeline::default());
    let router = orderguard::service::startup::router_with_clock(
        &jwt_config(),
        pipeline.clone(),
        Arc::new(FixedClock::at(SPEC_NOW)),
    )
    .unwrap();
    let app = TestApp { router, pipeline };

    let no_token = app.post("/cds-services/vcf-order-sign", "{}").await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    assert!(no_token.bytes.is_empty(), "a bare 401");

    let wrong_aud = app
        .send(
            Request::post("/cds-services/vcf-order-sign")
                .header(header::AUTHORIZATION, format!("Bearer {}", spec_token()))
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(wrong_aud.status, StatusCode::UNAUTHORIZED);
    assert!(wrong_aud.bytes.is_empty());

    let discovery = app.get("/cds-services").await;
    assert_eq!(
        discovery.status,
        StatusCode::UNAUTHORIZED,
        "discovery needs a token too"
    );
    assert_eq!(app.pipeline.rejection_count(), 3);
    assert!(
        app.pipeline
            .rejections
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.status == 401 && r.client == ClientIdentity::Unauthenticated)
    );

    // The spec token's aud is /cds-services/some-service: it authenticates there, and the
    // service id is then unknown (404), which shows authentication passed.
    let spec_call = app
        .send(
            Request::post(SPEC_PATH)
                .header(header::AUTHORIZATION, format!("Bearer {}", spec_token()))
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(spec_call.status, StatusCode::NOT_FOUND);

    // Operations endpoints need no client token.
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn over_http_a_verified_client_reaches_the_pipeline_with_its_identity() {
    let pipeline = Arc::new(TestPipeline::default());
    let router = orderguard::service::startup::router_with_clock(
        &jwt_config(),
        pipeline.clone(),
        Arc::new(FixedClock::at(SPEC_NOW)),
    )
    .unwrap();
    let app = TestApp { router, pipeline };
    let mut body = claims(SPEC_NOW, "http-1");
    body["aud"] = json!(format!("{BASE}/cds-services/vcf-order-sign"));
    let token = es384("example-kid", &body);
    let request = read_json(
        shared_dir()
            .join("conformance/cds-hooks/hooks-library/order-sign-request-R4-composed.json"),
    );
    let answer = app
        .send(
            Request::post("/cds-services/vcf-order-sign")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(request.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let clients = app.pipeline.clients.lock().unwrap();
    assert!(
        matches!(&clients[0], ClientIdentity::Verified { token_id, .. } if token_id == "http-1")
    );
}
