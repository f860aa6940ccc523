//! CDS Hooks client authentication: a bearer JWT on every call, signed by an allow-listed issuer.
//!
//! What is checked, in order, each failure a bare 401 (the reason goes to the debug log, the
//! token never does):
//! 1. `alg` is ES384 or RS384 (so `none` and every HMAC are out before any key is looked at);
//! 2. `kid` is present; `iss` is an allow-listed issuer;
//! 3. the issuer's key set: fetched from the token's `jku` when that URL is on the issuer's
//!    allow-list, otherwise the JWKS file pinned in configuration; the key is chosen by `kid`;
//! 4. the signature, `iss`, and `aud` = configured base URL + the called path, exactly;
//! 5. `exp` and `iat` against an injectable clock with a small leeway;
//! 6. `jti` not seen before from this issuer while the token could still be accepted (checked
//!    last, so a forged token cannot burn a real one's `jti`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::service::ClientIdentity;
use crate::service::config::AuthSettings;
use crate::service::http_fetch::HttpFetcher;

/// Seconds since the Unix epoch, injectable so tests can pin time.
pub trait Clock: Send + Sync + 'static {
    fn now_unix(&self) -> u64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that says what it is told.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicU64);

impl FixedClock {
    pub fn at(unix_seconds: u64) -> Self {
        FixedClock(AtomicU64::new(unix_seconds))
    }
    pub fn set(&self, unix_seconds: u64) {
        self.0.store(unix_seconds, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a call was not authenticated. For the log only: the client sees a bare 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("algorithm not allowed (ES384 and RS384 only)")]
    DisallowedAlgorithm,
    #[error("token type is not JWT")]
    WrongType,
    #[error("token header has no kid")]
    MissingKid,
    #[error("issuer is not trusted")]
    UnknownIssuer,
    #[error("jku is not on the issuer's allow-list and no JWKS file is configured")]
    JkuNotAllowed,
    #[error("the issuer's keys could not be fetched: {0}")]
    KeysUnavailable(String),
    #[error("no key with this kid")]
    UnknownKid,
    #[error("key does not fit the algorithm")]
    KeyMismatch,
    #[error("signature does not verify")]
    BadSignature,
    #[error("aud is not the called URL")]
    WrongAudience,
    #[error("a required claim is missing: {0}")]
    MissingClaim(&'static str),
    #[error("token expired")]
    Expired,
    #[error("token issued in the future")]
    NotYetValid,
    #[error("jti already used")]
    Replayed,
    #[error("replay cache full")]
    ReplayCacheFull,
}

/// Configuration that cannot become a verifier.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read JWKS file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("JWKS file {path} is not a JWK set: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("auth.audience_base_url is required")]
    NoAudience,
}

/// How requests are authenticated: verified JWTs, or (explicitly) not at all.
pub enum Authenticator {
    Jwt(Box<Verifier>),
    /// `--insecure-no-auth`.
    Insecure,
}

impl Authenticator {
    /// Authenticate a call to `path` (the request path, e.g. `/cds-services/vcf-order-sign`).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<ClientIdentity, AuthError> {
        match self {
            Authenticator::Insecure => Ok(ClientIdentity::Unauthenticated),
            Authenticator::Jwt(verifier) => {
                let token = bearer_token(headers).ok_or(AuthError::MissingToken)?;
                verifier.verify(token, path).await
            }
        }
    }
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

struct TrustedIssuer {
    pinned_keys: Option<Arc<JwkSet>>,
    jku_allow: Vec<String>,
}

/// Verifies CDS Hooks client JWTs. One per process; cheap to share behind an `Arc`.
pub struct Verifier {
    issuers: HashMap<String, TrustedIssuer>,
    audience_base: String,
    leeway: u64,
    clock: Arc<dyn Clock>,
    replay: Mutex<ReplayCache>,
    jku_cache: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
    jku_cache_ttl: Duration,
    fetch_timeout: Duration,
    fetcher: HttpFetcher,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    exp: Option<u64>,
    iat: Option<u64>,
    jti: Option<String>,
    tenant: Option<String>,
}

#[derive(Deserialize)]
struct UnverifiedClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<u64>,
    iat: Option<u64>,
}

/// `aud` is one URL, or (RFC 7519) a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// A key set fetched from a `jku` is not fetched again sooner than this when a token names an
/// unknown `kid` (key rotation), so that tokens with invented kids cannot make us hammer the EHR.
const JKU_REFETCH_MIN: Duration = Duration::from_secs(10);
const JWKS_MAX_BYTES: usize = 256 * 1024;

impl Verifier {
    pub fn new(settings: &AuthSettings, clock: Arc<dyn Clock>) -> Result<Self, AuthSetupError> {
        let audience_base = settings
            .audience_base_url
            .as_deref()
            .ok_or(AuthSetupError::NoAudience)?
            .trim_end_matches('/')
            .to_owned();
        let mut issuers = HashMap::new();
        for client in &settings.trusted_clients {
            let pinned_keys = match &client.jwks_file {
                Some(path) => Some(Arc::new(read_jwks_file(path)?)),
                None => None,
            };
            issuers.insert(
                client.issuer.clone(),
                TrustedIssuer {
                    pinned_keys,
                    jku_allow: client.jku_allow.clone(),
                },
            );
        }
        Ok(Verifier {
            issuers,
            audience_base,
            leeway: settings.leeway_seconds,
            clock,
            replay: Mutex::new(ReplayCache::new(settings.replay_cache_capacity)),
            jku_cache: Mutex::new(HashMap::new()),
            jku_cache_ttl: Duration::from_secs(settings.jwks_cache_seconds),
            fetch_timeout: Duration::from_millis(settings.jwks_fetch_timeout_ms),
            fetcher: HttpFetcher::default(),
        })
    }

    /// Verify `token` for a call to `path`.
    pub async fn verify(&self, token: &str, path: &str) -> Result<ClientIdentity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !matches!(header.alg, Algorithm::ES384 | Algorithm::RS384) {
            return Err(AuthError::DisallowedAlgorithm);
        }
        if header
            .typ
            .as_deref()
            .is_some_and(|typ| !typ.eq_ignore_ascii_case("JWT"))
        {
            return Err(AuthError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(AuthError::MissingKid)?;
        // Cheap checks on the unverified claims first: an ES384 signature check costs about a
        // millisecond of CPU, so a replayed old token or one for another URL is turned away
        // before it. Acceptance still rests on the verified claims below.
        let unverified = unverified_claims(token)?;
        let issuer_name = unverified.iss.ok_or(AuthError::MissingClaim("iss"))?;
        let issuer = self
            .issuers
            .get(&issuer_name)
            .ok_or(AuthError::UnknownIssuer)?;
        let audience = format!("{}{}", self.audience_base, path);
        let now = self.clock.now_unix();
        self.check_times(unverified.exp, unverified.iat, now)?;
        if !unverified.aud.is_some_and(|aud| aud.contains(&audience)) {
            return Err(AuthError::WrongAudience);
        }

        let jwk = self.key_for(issuer, header.jku.as_deref(), kid).await?;
        if jwk
            .common
            .key_algorithm
            .is_some_and(|alg| alg.to_string() != format!("{:?}", header.alg))
        {
            return Err(AuthError::KeyMismatch);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::KeyMismatch)?;

        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_audience(&[&audience]);
        validation.set_issuer(&[&issuer_name]);
        validation.set_required_spec_claims(&["aud", "iss"]);
        // Time is checked below against our own clock, so tests can pin it.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => AuthError::KeyMismatch,
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                    AuthError::MissingClaim("aud")
                }
                _ => AuthError::Malformed,
            }
        })?;
        let claims = data.claims;

        let exp = self.check_times(claims.exp, claims.iat, now)?;
        let jti = claims.jti.ok_or(AuthError::MissingClaim("jti"))?;
        self.replay
            .lock()
            .expect("replay cache lock")
            .check_and_remember(
                format!("{}\u{0}{}", claims.iss, jti),
                exp.saturating_add(self.leeway),
                now,
            )?;
        Ok(ClientIdentity::Verified {
            issuer: claims.iss,
            tenant: claims.tenant,
            token_id: jti,
        })
    }

    /// `exp` and `iat` within the leeway of `now`; returns `exp`.
    fn check_times(&self, exp: Option<u64>, iat: Option<u64>, now: u64) -> Result<u64, AuthError> {
        let exp = exp.ok_or(AuthError::MissingClaim("exp"))?;
        let iat = iat.ok_or(AuthError::MissingClaim("iat"))?;
        if now > exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if iat > now.saturating_add(self.leeway) {
            return Err(AuthError::NotYetValid);
        }
        Ok(exp)
    }

    async fn key_for(
        &self,
        issuer: &TrustedIssuer,
        jku: Option<&str>,
        kid: &str,
    ) -> Result<Jwk, AuthError> {
        if let Some(jku) = jku.filter(|url| issuer.jku_allow.iter().any(|allowed| allowed == url)) {
            let set = self.jku_keys(jku, false).await?;
            if let Some(key) = set.find(kid) {
                return Ok(key.clone());
            }
            let set = self.jku_keys(jku, true).await?;
            return set.find(kid).cloned().ok_or(AuthError::UnknownKid);
        }
        // A jku off the allow-list is never fetched; a pinned key set still decides.
        let set = issuer
            .pinned_keys
            .as_ref()
            .ok_or(AuthError::JkuNotAllowed)?;
        set.find(kid).cloned().ok_or(AuthError::UnknownKid)
    }

    async fn jku_keys(&self, jku: &str, key_rotated: bool) -> Result<Arc<JwkSet>, AuthError> {
        {
            let cache = self.jku_cache.lock().expect("jku cache lock");
            if let Some((fetched_at, set)) = cache.get(jku) {
                let age = fetched_at.elapsed();
                let fresh = if key_rotated {
                    age < JKU_REFETCH_MIN
                } else {
                    age < self.jku_cache_ttl
                };
                if fresh {
                    return Ok(set.clone());
                }
            }
        }
        let bytes = self
            .fetcher
            .get(
                jku,
                "application/json",
                None,
                self.fetch_timeout,
                JWKS_MAX_BYTES,
            )
            .await
            .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
        let set: JwkSet = serde_json::from_slice(&bytes)
            .map_err(|_| AuthError::KeysUnavailable("not a JWK set".into()))?;
        let set = Arc::new(set);
        self.jku_cache
            .lock()
            .expect("jku cache lock")
            .insert(jku.to_owned(), (Instant::now(), set.clone()));
        Ok(set)
    }
}

/// A JWK set pinned by configuration (a CDS Hooks client's, or the staff identity provider's).
pub(crate) fn read_jwks_file(path: &std::path::Path) -> Result<JwkSet, AuthSetupError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthSetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| AuthSetupError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// The claims read before the signature is checked: to choose the issuer's keys and to refuse
/// cheaply. The signature check that follows binds them.
fn unverified_claims(token: &str) -> Result<UnverifiedClaims, AuthError> {
    jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| AuthError::Malformed)
}

/// `jti`s seen, each remembered until its token could no longer be accepted.
struct ReplayCache {
    seen: HashMap<String, u64>,
    capacity: usize,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        ReplayCache {
            seen: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn check_and_remember(
        &mut self,
        key: String,
        forget_after: u64,
        now: u64,
    ) -> Result<(), AuthError> {
        if self.seen.get(&key).is_some_and(|until| *until >= now) {
            return Err(AuthError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, until| *until >= now);
            if self.seen.len() >= self.capacity {
                return Err(AuthError::ReplayCacheFull);
            }
        }
        self.seen.insert(key, forget_after);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_cache_forgets_expired_tokens_and_fails_closed_when_full() {
        let mut cache = ReplayCache::new(2);
        cache.check_and_remember("a".into(), 100, 10).unwrap();
        assert_eq!(
            cache.check_and_remember("a".into(), 100, 50),
            Err(AuthError::Replayed)
        );
        cache.check_and_remember("b".into(), 20, 10).unwrap();
        assert_eq!(
            cache.check_and_remember("c".into(), 100, 15),
            Err(AuthError::ReplayCacheFull)
        );
        // b has expired by 30: its slot is reused.
        cache.check_and_remember("c".into(), 100, 30).unwrap();
    }

    #[test]
    fn only_bearer_authorization_yields_a_token() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            "bearer  abc.def.ghi".parse().unwrap(),
        );
        assert_eq!(bearer_token(&headers), Some("abc.def.ghi"));
    }
}
