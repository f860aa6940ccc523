//! A small load generator for the HTTP layer (not a test): keeps `connections` HTTP/1.1
//! connections busy for `seconds` and reports throughput and latency percentiles.
//!
//! ```text
//! cargo run --release --example http_load -- <target> [connections] [seconds]
//!   target: noop      a bare axum route answering {"cards":[]}: the HTTP ceiling
//!           service   the full orderguard router (limits, depth check, metrics, tracing,
//!                     problem bodies) with a pipeline that answers {"cards":[]} at once
//!           es384     as `service`, with a fresh ES384 client JWT per request (the spec key)
//!           rs384     as `service`, with a fresh RS384 client JWT per request (test key)
//!           verify-es384 | verify-rs384
//!                     no HTTP: CPU time of one client JWT verification, on one core
//!
//! cargo run --release --example http_load -- tokens <es384|rs384> <count> <aud>
//!           prints `count` client JWTs for `aud` (the full called URL), one per line, each
//!           with its own jti, valid for 10 minutes: for scripts/bench-load.sh with AUTH set
//! ```
//! The body is the hooks library's composed order-sign request (about 6 kB). Client and server
//! share the machine, as they would in a single-box benchmark. The JWT targets pre-sign 20,000
//! tokens and stop early when they run out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orderguard::service::config::{AuthSettings, TrustedClient};
use orderguard::service::{
    Application, BoxFuture, ClientIdentity, DecisionPipeline, PipelineError, Readiness, Rejection,
    ServiceConfig,
};
use p384::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

struct NoDecision;

impl DecisionPipeline for NoDecision {
    fn cds_hooks(
        &self,
        _: &str,
        _: Bytes,
        _: ClientIdentity,
    ) -> BoxFuture<'_, Result<Value, PipelineError>> {
        Box::pin(async { Ok(json!({"cards": []})) })
    }
    fn native(&self, _: Bytes, _: ClientIdentity) -> BoxFuture<'_, Result<Value, PipelineError>> {
        Box::pin(async { Ok(json!({})) })
    }
    fn feedback(
        &self,
        _: &str,
        _: Bytes,
        _: ClientIdentity,
    ) -> BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async { Ok(()) })
    }
    fn record_rejection(&self, _: Rejection) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn readiness(&self) -> Readiness {
        Readiness::Ready
    }
}

fn shared() -> std::path::PathBuf {
    std::env::var("ORDERGUARD_SHARED")
        .map(Into::into)
        .unwrap_or_else(|_| "/work/shared".into())
}

const BASE: &str = "https://cds.example.org";
const PATH: &str = "/cds-services/vcf-order-sign";

fn signer(target: &str) -> Option<(Algorithm, &'static str, &'static str, EncodingKey)> {
    match target {
        "es384" => {
            use base64::Engine;
            let jwk: Value = serde_json::from_slice(
                &std::fs::read(
                    shared().join("conformance/cds-hooks/spec-2.0/jwk-private-EXAMPLE-ONLY.json"),
                )
                .unwrap(),
            )
            .unwrap();
            let d = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["d"].as_str().unwrap())
                .unwrap();
            let der = p384::SecretKey::from_slice(&d)
                .unwrap()
                .to_pkcs8_der()
                .unwrap();
            Some((
                Algorithm::ES384,
                "https://fhir-ehr.example.com/",
                "example-kid",
                EncodingKey::from_ec_der(der.as_bytes()),
            ))
        }
        "rs384" => Some((
            Algorithm::RS384,
            "https://rsa-ehr.example.com",
            "orderguard-test-rsa",
            EncodingKey::from_rsa_der(
                &std::fs::read(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/fixtures/jwt/rs384-TEST-ONLY.key.der"
                ))
                .unwrap(),
            ),
        )),
        _ => None,
    }
}

fn auth_settings() -> AuthSettings {
    AuthSettings {
        audience_base_url: Some(BASE.into()),
        trusted_clients: vec![
            TrustedClient {
                issuer: "https://fhir-ehr.example.com/".into(),
                jwks_file: Some(shared().join("conformance/cds-hooks/spec-2.0/jwks-public.json")),
                jku_allow: vec![],
            },
            TrustedClient {
                issuer: "https://rsa-ehr.example.com".into(),
                jwks_file: Some(
                    concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/fixtures/jwt/rs384-TEST-ONLY.jwks.json"
                    )
                    .into(),
                ),
                jku_allow: vec![],
            },
        ],
        ..AuthSettings::default()
    }
}

fn sign_tokens(alg_name: &str, count: usize) -> Vec<String> {
    sign_tokens_for(alg_name, count, &format!("{BASE}{PATH}"))
}

fn sign_tokens_for(alg_name: &str, count: usize, aud: &str) -> Vec<String> {
    let Some((alg, iss, kid, key)) = signer(alg_name) else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (0..count)
        .map(|i| {
            let mut header = Header::new(alg);
            header.kid = Some(kid.into());
            let claims = json!({"iss": iss, "aud": aud, "iat": now,
                "exp": now + 600, "jti": format!("load-{now}-{i}")});
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        })
        .collect()
}

async fn verify_cost(alg_name: &str) {
    let verifier = orderguard::service::auth::Verifier::new(
        &auth_settings(),
        Arc::new(orderguard::service::auth::SystemClock),
    )
    .unwrap();
    let tokens = sign_tokens(alg_name, 500);
    let started = Instant::now();
    for token in &tokens {
        verifier.verify(token, PATH).await.unwrap();
    }
    let per_token = started.elapsed().as_secs_f64() * 1e6 / tokens.len() as f64;
    println!("{alg_name}: {per_token:.0} us per client JWT verification (one core)");
}

async fn start(target: &str) -> std::net::SocketAddr {
    if target == "noop" {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            PATH,
            axum::routing::post(|_body: Bytes| async { axum::Json(json!({"cards": []})) }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        return address;
    }
    let mut config = ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServiceConfig::default()
    };
    if target == "service" {
        config.insecure_no_auth = true;
    } else {
        config.auth = auth_settings();
    }
    let app = Application::build(&config, Arc::new(NoDecision))
        .await
        .unwrap();
    let address = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    address
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, alg, count, aud] = &args[..]
        && mode == "tokens"
    {
        use std::io::Write;
        let count: usize = count.parse().expect("a token count");
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for token in sign_tokens_for(alg, count, aud) {
            writeln!(out, "{token}").unwrap();
        }
        return;
    }
    let target = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("service")
        .to_owned();
    let connections: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10);
    let body = Bytes::from(
        std::fs::read(
            shared()
                .join("conformance/cds-hooks/hooks-library/order-sign-request-R4-composed.json"),
        )
        .unwrap(),
    );
    if let Some(alg) = target.strip_prefix("verify-") {
        verify_cost(alg).await;
        return;
    }
    let address = start(&target).await;
    let url = format!("http://{address}{PATH}");

    // Tokens are signed ahead of time so the client's signing cost is not measured.
    let tokens: Arc<Vec<String>> = Arc::new(sign_tokens(&target, 20_000));

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http();
    let stop = Arc::new(AtomicBool::new(false));
    let next_token = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, body, stop, tokens, next_token, errors) = (
            client.clone(),
            url.clone(),
            body.clone(),
            stop.clone(),
            tokens.clone(),
            next_token.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            while !stop.load(Ordering::Relaxed) {
                let mut request =
                    hyper::Request::post(&url).header("content-type", "application/json");
                if !tokens.is_empty() {
                    // Each token once (a reused jti is a replay): stop when they run out.
                    let i = next_token.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= tokens.len() {
                        break;
                    }
                    request = request.header("authorization", format!("Bearer {}", tokens[i]));
                }
                let request = request.body(Full::new(body.clone())).unwrap();
                let sent = Instant::now();
                match client.request(request).await {
                    Ok(response) => {
                        let ok = response.status() == 200;
                        let _ = response.into_body().collect().await;
                        if ok {
                            latencies.push(sent.elapsed().as_micros() as u64);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline && !workers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<u64> = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .unwrap_or_default();
    println!(
        "{target}: {connections} connections, {:.0} req/s ({} ok, {} errors in {elapsed:.1} s); latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}; peak RSS (client+server) {rss_kb} kB",
        latencies.len() as f64 / elapsed,
        latencies.len(),
        errors.load(Ordering::Relaxed),
        at(0.50),
        at(0.99),
        at(0.999),
    );
}
