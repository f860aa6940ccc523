//! Staff access over HTTP (oneshot, real PostgreSQL, real audit writer): no token, a bad or
//! expired token, the wrong role, a valid API key and a valid IdP JWT; that refusals land in
//! `rejected_requests` and reads in `audit_events`; and the first report end to end.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orderguard::audit::{self, AuditRecord, AuditWriter, Channel, RequestMeta, WriterConfig};
use orderguard::decision::{Decision, Evaluation, Finding, PathwayRef, Severity, Texts};
use orderguard::service::ServiceConfig;
use orderguard::service::auth::FixedClock;
use orderguard::service::config::{IdentityProvider, StaffApiKey};
use orderguard::service::staff::{Role, StaffBackend};
use serde_json::{Value, json};
use sha2::Digest;
use sqlx::PgPool;
use uuid::Uuid;

use crate::jwt::{SPEC_ISSUER, rsa_signing_key, spec_signing_key};
use crate::support::*;

const NOW: u64 = 1_790_000_000;
const RSA_IDP: &str = "https://login.hospital.example/realms/staff";
pub(crate) const QUALITY_KEY: &str = "ogk_quality_0f6c2d1e8b7a4c3d9e5f";
pub(crate) const PHARMACIST_KEY: &str = "ogk_pharmacy_7a1b2c3d4e5f60718293";

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn staff_config() -> ServiceConfig {
    let mut config = insecure_config();
    config.staff.identity_providers = vec![
        IdentityProvider {
            issuer: SPEC_ISSUER.into(),
            jwks_file: spec_file("jwks-public.json"),
            roles_claim: "roles".into(),
            audience: Some("orderguard".into()),
            role_map: Default::default(),
        },
        IdentityProvider {
            issuer: RSA_IDP.into(),
            jwks_file: fixture("jwt/rs384-TEST-ONLY.jwks.json"),
            roles_claim: "realm_access.roles".into(),
            audience: None,
            role_map: [("og-quality".to_owned(), Role::Quality)].into(),
        },
    ];
    config.staff.api_keys = vec![
        StaffApiKey {
            name: "quality-dashboard".into(),
            sha256: sha256_hex(QUALITY_KEY),
            roles: vec![Role::Quality],
        },
        StaffApiKey {
            name: "pharmacy-bot".into(),
            sha256: sha256_hex(PHARMACIST_KEY).to_uppercase(),
            roles: vec![Role::Pharmacist],
        },
    ];
    config
}

pub(crate) struct StaffApp {
    pub(crate) app: TestApp,
    pub(crate) writer: AuditWriter,
    _spool: tempfile::TempDir,
}

pub(crate) async fn staff_app(pool: &PgPool) -> StaffApp {
    let spool = tempfile::tempdir().unwrap();
    let mut writer_config = WriterConfig::new(spool.path().to_owned());
    writer_config.lanes = 1;
    let writer = AuditWriter::start(pool.clone(), writer_config)
        .await
        .unwrap();
    let pipeline = Arc::new(TestPipeline::default());
    let router = orderguard::service::startup::router_with_staff(
        &staff_config(),
        pipeline.clone(),
        Some(StaffBackend {
            reports: pool.clone(),
            audit: writer.clone(),
            reloader: None,
        }),
        Arc::new(FixedClock::at(NOW)),
    )
    .unwrap();
    StaffApp {
        app: TestApp { router, pipeline },
        writer,
        _spool: spool,
    }
}

impl StaffApp {
    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.app.send(request.body(Body::empty()).unwrap()).await
    }

    pub(crate) async fn finish(self, pool: &PgPool) {
        self.writer.shutdown().await;
        let report = audit::verify(pool, None, false).await.unwrap();
        assert!(report.is_clean(), "{report}");
    }
}

fn es384_idp_token(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some("example-kid".into());
    jsonwebtoken::encode(&header, claims, &spec_signing_key()).unwrap()
}

fn rs384_idp_token(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("orderguard-test-rsa".into());
    jsonwebtoken::encode(&header, claims, &rsa_signing_key()).unwrap()
}

fn idp_claims(roles: Value) -> Value {
    json!({
        "iss": SPEC_ISSUER,
        "sub": "u-4711",
        "aud": ["account", "orderguard"],
        "iat": NOW - 60,
        "exp": NOW + 600,
        "roles": roles,
    })
}

const REPORT: &str = "/v1/reports/alert-burden?from=2026-01-01&to=2026-12-31";

fn assert_problem(answer: &Answer, status: StatusCode, type_suffix: &str) -> Value {
    assert_eq!(
        answer.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/problem+json")
    );
    let body = answer.json();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"].as_str().unwrap().ends_with(type_suffix),
        "{body}"
    );
    body
}

async fn rejections(pool: &PgPool) -> Vec<(Option<String>, i32, String)> {
    sqlx::query_as("SELECT client_id, status, route FROM rejected_requests ORDER BY rejected_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn reads(pool: &PgPool) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT actor, payload FROM audit_events WHERE kind = 'staff.read' ORDER BY occurred_at",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn without_a_token_a_staff_route_is_a_401_problem_and_recorded(pool: PgPool) {
    let staff = staff_app(&pool).await;
    let answer = staff.get(REPORT, None).await;
    let body = assert_problem(&answer, StatusCode::UNAUTHORIZED, ":unauthenticated");
    assert_eq!(body["detail"], "no bearer token");
    // Not a header of the oneshot Answer: read it from a fresh response.
    let response = tower::ServiceExt::oneshot(
        staff.app.router.clone(),
        Request::get("/v1/reports").body(Body::empty()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");

    let garbage = staff.get(REPORT, Some("not-a-key-nor-a-jwt")).await;
    assert_problem(&garbage, StatusCode::UNAUTHORIZED, ":unauthenticated");
    assert_eq!(
        rejections(&pool).await,
        vec![
            (None, 401, "/v1/reports/{name}".to_owned()),
            (None, 401, "/v1/reports".to_owned()),
            (None, 401, "/v1/reports/{name}".to_owned()),
        ]
    );
    assert!(reads(&pool).await.is_empty(), "nothing was read");
    staff.finish(&pool).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn expired_forged_and_hmac_idp_tokens_are_401(pool: PgPool) {
    let staff = staff_app(&pool).await;
    let mut expired = idp_claims(json!(["quality"]));
    expired["exp"] = json!(NOW - 31); // past the 30 s leeway
    let answer = staff.get(REPORT, Some(&es384_idp_token(&expired))).await;
    let body = assert_problem(&answer, StatusCode::UNAUTHORIZED, ":unauthenticated");
    assert_eq!(body["detail"], "token expired");

    let mut within_leeway = idp_claims(json!(["quality"]));
    within_leeway["exp"] = json!(NOW - 29);
    let answer = staff
        .get(REPORT, Some(&es384_idp_token(&within_leeway)))
        .await;
    assert_eq!(answer.status, StatusCode::OK);

    let mut no_exp = idp_claims(json!(["quality"]));
    no_exp.as_object_mut().unwrap().remove("exp");
    let answer = staff.get(REPORT, Some(&es384_idp_token(&no_exp))).await;
    assert_eq!(answer.json()["detail"], "a required claim is missing: exp");

    // Signed by the RSA key but claiming the EC provider: no key of that provider fits.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("example-kid".into());
    let forged =
        jsonwebtoken::encode(&header, &idp_claims(json!(["admin"])), &rsa_signing_key()).unwrap();
    assert_problem(
        &staff.get(REPORT, Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
        ":unauthenticated",
    );

    // An HMAC token "signed" with the public key text is refused before any key is looked at.
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &idp_claims(json!(["admin"])),
        &EncodingKey::from_secret(b"{\"keys\":[]}"),
    )
    .unwrap();
    let body = staff.get(REPORT, Some(&hmac)).await.json();
    assert_eq!(
        body["detail"],
        "algorithm not allowed (RS256, RS384, ES256, ES384)"
    );

    let mut other_audience = idp_claims(json!(["quality"]));
    other_audience["aud"] = json!("another-app");
    let body = staff
        .get(REPORT, Some(&es384_idp_token(&other_audience)))
        .await
        .json();
    assert_eq!(
        body["detail"],
        "the token is not meant for orderguard (aud)"
    );

    let mut unknown_issuer = idp_claims(json!(["quality"]));
    unknown_issuer["iss"] = json!("https://evil.example/");
    assert_problem(
        &staff
            .get(REPORT, Some(&es384_idp_token(&unknown_issuer)))
            .await,
        StatusCode::UNAUTHORIZED,
        ":unauthenticated",
    );
    staff.finish(&pool).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_token_without_the_role_is_a_403_problem_recorded_with_its_subject(pool: PgPool) {
    let staff = staff_app(&pool).await;
    let answer = staff.get(REPORT, Some(PHARMACIST_KEY)).await;
    let body = assert_problem(&answer, StatusCode::FORBIDDEN, ":forbidden");
    assert_eq!(body["detail"], "this route needs the role quality");

    // A valid IdP token whose roles are none of orderguard's.
    let answer = staff
        .get(
            REPORT,
            Some(&es384_idp_token(&idp_claims(json!(["nurse", "QUALITYX"])))),
        )
        .await;
    assert_problem(&answer, StatusCode::FORBIDDEN, ":forbidden");
    assert_eq!(
        rejections(&pool).await,
        vec![
            (
                Some("key:pharmacy-bot".to_owned()),
                403,
                "/v1/reports/{name}".to_owned()
            ),
            (
                Some(format!("idp:{SPEC_ISSUER}#u-4711")),
                403,
                "/v1/reports/{name}".to_owned()
            ),
        ]
    );
    assert!(reads(&pool).await.is_empty());
    staff.finish(&pool).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_valid_api_key_reads_the_report_and_the_read_is_recorded(pool: PgPool) {
    let staff = staff_app(&pool).await;
    let answer = staff
        .get(
            "/v1/reports/alert-burden?from=2026-11-01&to=2026-11-30&rule=ACT-BEDREST",
            Some(QUALITY_KEY),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["report"], "alert-burden");
    assert_eq!(body["columns"][0]["name"], "week");
    assert_eq!(body["columns"][0]["kind"], "week");
    assert_eq!(body["rows"], json!([]));

    let reads = reads(&pool).await;
    assert_eq!(reads.len(), 1);
    let (actor, payload) = &reads[0];
    assert_eq!(actor, "key:quality-dashboard");
    assert_eq!(payload["route"], "/v1/reports/{name}");
    assert_eq!(payload["report"], "alert-burden");
    assert_eq!(payload["from"], "2026-11-01T00:00:00Z");
    assert_eq!(payload["to"], "2026-12-01T00:00:00Z");
    assert_eq!(payload["filters"], json!({"rule": "ACT-BEDREST"}));
    assert_eq!(payload["rows"], 0);
    assert!(
        !payload.to_string().contains(QUALITY_KEY),
        "the key is never stored"
    );

    // The catalog lists the report with its filters (and is not a read of audit data).
    let catalog = staff.get("/v1/reports", Some(QUALITY_KEY)).await.json();
    assert_eq!(catalog["reports"][0]["name"], "alert-burden");
    assert!(
        catalog["reports"][0]["filters"]
            .as_array()
            .unwrap()
            .contains(&json!("rule"))
    );
    staff.finish(&pool).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn valid_idp_jwts_map_their_roles_claim(pool: PgPool) {
    let staff = staff_app(&pool).await;
    // ES384, roles as an array; admin may read reports.
    let answer = staff
        .get(
            REPORT,
            Some(&es384_idp_token(&idp_claims(json!(["admin"])))),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    // RS384 from the second IdP: nested claim, mapped names, a space-separated string.
    let claims = json!({
        "iss": RSA_IDP, "sub": "jdoe", "iat": NOW, "exp": NOW + 60,
        "realm_access": {"roles": "offline_access og-quality"},
    });
    let answer = staff.get(REPORT, Some(&rs384_idp_token(&claims))).await;
    assert_eq!(answer.status, StatusCode::OK);
    // The same token with the role the map does not know: 403.
    let mut unmapped = claims.clone();
    unmapped["realm_access"]["roles"] = json!(["quality"]);
    assert_eq!(
        staff
            .get(REPORT, Some(&rs384_idp_token(&unmapped)))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let actors: Vec<String> = reads(&pool).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actors,
        vec![
            format!("idp:{SPEC_ISSUER}#u-4711"),
            format!("idp:{RSA_IDP}#jdoe")
        ]
    );
    staff.finish(&pool).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn bad_report_parameters_are_400_naming_the_parameter(pool: PgPool) {
    let staff = staff_app(&pool).await;
    for (path, param) in [
        ("/v1/reports/alert-burden?from=yesterday", "from"),
        ("/v1/reports/alert-burden?sort=patient_ref", "sort"),
        ("/v1/reports/alert-burden?format=xlsx", "format"),
        ("/v1/reports/alert-burden?limit=-1", "limit"),
        ("/v1/reports/alert-burden?reason=x", "reason"),
        ("/v1/reports/alert-burden?patient=Patient/1", "patient"),
    ] {
        let answer = staff.get(path, Some(QUALITY_KEY)).await;
        let body = assert_problem(&answer, StatusCode::BAD_REQUEST, ":invalid-request");
        assert_eq!(body["errors"][0]["path"], param, "{path}: {body}");
    }
    let answer = staff
        .get("/v1/reports/no-such-report", Some(QUALITY_KEY))
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND, ":not-found");
    assert!(
        reads(&pool).await.is_empty(),
        "refused queries read nothing"
    );
    staff.finish(&pool).await;
}

/// One order-sign decision at `at` with findings `(rule, severity)`.
pub(crate) fn decision(
    at: chrono::DateTime<Utc>,
    hook: &str,
    findings: &[(&str, Severity)],
) -> AuditRecord {
    let decision = Decision {
        decision_id: Uuid::now_v7(),
        pathway: PathwayRef {
            id: "vcf".into(),
            version: "1.0.0".into(),
            content_hash: "cd".repeat(32),
        },
        evaluated_at: at,
        evaluation: Evaluation {
            findings: findings
                .iter()
                .map(|(rule, severity)| Finding {
                    rule_id: (*rule).into(),
                    severity: *severity,
                    order_ref: None,
                    texts: Texts::new("s", "d"),
                    numbers: Default::default(),
                    labels: Default::default(),
                    suggestions: vec![],
                    citations: Default::default(),
                })
                .collect(),
            unrecognized: vec![],
            missing_inputs: vec![],
        },
    };
    let meta = RequestMeta {
        hook: Some(hook.into()),
        user_ref: Some("Practitioner/dr-1".into()),
        ..RequestMeta::new(Channel::CdsHooks)
    };
    AuditRecord::from_decision(&decision, meta, b"{}".to_vec(), b"{}".to_vec())
}

#[sqlx::test(migrations = "./migrations")]
async fn alert_burden_counts_cards_per_100_order_sign_calls_per_week(pool: PgPool) {
    let staff = staff_app(&pool).await;
    // Week of Monday 2026-11-02: 4 order-sign calls, 3 bed-rest warnings, 1 critical;
    // an order-select call with a card does not count on either side.
    let monday = "2026-11-02T09:00:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .unwrap();
    let w = Severity::Warning;
    for (day, findings, hook) in [
        (0, vec![("ACT-BEDREST", w)], "order-sign"),
        (
            1,
            vec![("ACT-BEDREST", w), ("DOSE-MME-90", Severity::Critical)],
            "order-sign",
        ),
        (2, vec![("ACT-BEDREST", w)], "order-sign"),
        (3, vec![], "order-sign"),
        (3, vec![("ACT-BEDREST", w)], "order-select"),
        // Next week: 1 call, 1 card.
        (7, vec![("ACT-BEDREST", w)], "order-sign"),
        // Outside the window.
        (14, vec![("ACT-BEDREST", w)], "order-sign"),
    ] {
        staff
            .writer
            .record(decision(monday + Duration::days(day), hook, &findings))
            .await
            .unwrap();
    }
    let body = staff
        .get(
            "/v1/reports/alert-burden?from=2026-11-02&to=2026-11-15&sort=week,-cards",
            Some(QUALITY_KEY),
        )
        .await
        .json();
    assert_eq!(
        body["rows"],
        json!([
            ["2026-11-02", "ACT-BEDREST", "warning", 3, 4, 75.0],
            ["2026-11-02", "DOSE-MME-90", "critical", 1, 4, 25.0],
            ["2026-11-09", "ACT-BEDREST", "warning", 1, 1, 100.0],
        ])
    );
    // CSV of the same, filtered by severity: the denominator stays all calls.
    let csv = staff
        .get(
            "/v1/reports/alert-burden?from=2026-11-02&to=2026-11-15&severity=critical&format=csv",
            Some(QUALITY_KEY),
        )
        .await;
    assert_eq!(csv.content_type.as_deref(), Some("text/csv; charset=utf-8"));
    assert_eq!(
        String::from_utf8(csv.bytes.to_vec()).unwrap(),
        "week,rule_id,severity,cards,order_sign_calls,cards_per_100_calls\n\
         2026-11-02,DOSE-MME-90,critical,1,4,25.0\n"
    );
    // An injection attempt in a filter is a value like any other: no rows, no error.
    let body = staff
        .get(
            "/v1/reports/alert-burden?from=2026-11-02&to=2026-11-15&rule=x%27%20OR%20%271%27%3D%271",
            Some(QUALITY_KEY),
        )
        .await
        .json();
    assert_eq!(body["rows"], json!([]));
    staff.finish(&pool).await;
}
