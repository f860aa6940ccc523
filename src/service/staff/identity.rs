//! Who a staff bearer token belongs to: a JWT from the hospital identity provider, or an API key
//! from the configuration (kept there as a SHA-256 hash only).
//!
//! A JWT is accepted when, in order: its `alg` is RS256, RS384, ES256 or ES384 (so `none` and
//! every HMAC are refused before any key is looked at); its `iss` is a configured provider; the
//! key is found in that provider's pinned JWKS (by `kid`, or the only key when there is no
//! `kid`); the signature verifies; `aud` contains the configured audience when one is set; `exp`
//! is present and not past, and neither `nbf` nor `iat` is in the future (each with the leeway,
//! against an injectable clock); and `sub` is present. Roles come from the configured claim.
//!
//! The reason a token is refused goes to the debug log and into the 401's detail in general
//! terms; the token itself goes nowhere.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Role, StaffIdentity};
use crate::service::auth::{AuthSetupError, Clock, read_jwks_file};
use crate::service::config::{IdentityProvider, StaffSettings};

/// Why a staff token was refused (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffAuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("the token is neither a known API key nor a well-formed JWT")]
    Malformed,
    #[error("algorithm not allowed (RS256, RS384, ES256, ES384)")]
    DisallowedAlgorithm,
    #[error("issuer is not a configured identity provider")]
    UnknownIssuer,
    #[error("no key of the identity provider fits the token")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("the token is not meant for orderguard (aud)")]
    WrongAudience,
    #[error("a required claim is missing: {0}")]
    MissingClaim(&'static str),
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
}

struct Provider {
    settings: IdentityProvider,
    keys: JwkSet,
}

struct ApiKey {
    name: String,
    digest: [u8; 32],
    roles: Vec<Role>,
}

/// Verifies staff tokens. Built once from [`StaffSettings`]; cheap to share.
pub struct StaffAuthenticator {
    providers: HashMap<String, Provider>,
    keys: Vec<ApiKey>,
    leeway: u64,
    clock: Arc<dyn Clock>,
}

impl StaffAuthenticator {
    pub fn new(settings: &StaffSettings, clock: Arc<dyn Clock>) -> Result<Self, AuthSetupError> {
        let mut providers = HashMap::new();
        for idp in &settings.identity_providers {
            let keys = read_jwks_file(&idp.jwks_file)?;
            providers.insert(
                idp.issuer.clone(),
                Provider {
                    settings: idp.clone(),
                    keys,
                },
            );
        }
        let keys = settings
            .api_keys
            .iter()
            .map(|key| {
                let mut digest = [0u8; 32];
                // Checked by ServiceConfig::validate; a bad hash here matches no key.
                let _ = hex::decode_to_slice(key.sha256.to_ascii_lowercase(), &mut digest);
                ApiKey {
                    name: key.name.clone(),
                    digest,
                    roles: key.roles.clone(),
                }
            })
            .collect();
        Ok(StaffAuthenticator {
            providers,
            keys,
            leeway: settings.leeway_seconds,
            clock,
        })
    }

    /// The identity behind `token` (the bearer token, without `Bearer `).
    pub fn verify(&self, token: &str) -> Result<StaffIdentity, StaffAuthError> {
        if let Some(key) = self.api_key(token) {
            return Ok(StaffIdentity {
                subject: format!("key:{}", key.name),
                roles: key.roles.clone(),
            });
        }
        self.verify_jwt(token)
    }

    /// The configured key whose hash is the token's. Every key is compared, in constant time,
    /// so the time taken says nothing about how close a guess was.
    fn api_key(&self, token: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            let diff = key
                .digest
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(key);
            }
        }
        found
    }

    fn verify_jwt(&self, token: &str) -> Result<StaffIdentity, StaffAuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| StaffAuthError::Malformed)?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::ES256 | Algorithm::ES384
        ) {
            return Err(StaffAuthError::DisallowedAlgorithm);
        }
        let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| StaffAuthError::Malformed)?;
        let issuer = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(StaffAuthError::MissingClaim("iss"))?;
        let provider = self
            .providers
            .get(issuer)
            .ok_or(StaffAuthError::UnknownIssuer)?;
        let jwk = provider.key(header.kid.as_deref(), header.alg)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| StaffAuthError::UnknownKey)?;

        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[issuer]);
        match &provider.settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["iss", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["iss"]);
            }
        }
        // Times are checked below against our own clock, so tests can pin it.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => StaffAuthError::BadSignature,
                    ErrorKind::InvalidAudience => StaffAuthError::WrongAudience,
                    ErrorKind::MissingRequiredClaim(c) if c == "aud" => {
                        StaffAuthError::MissingClaim("aud")
                    }
                    ErrorKind::InvalidIssuer => StaffAuthError::UnknownIssuer,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
                        StaffAuthError::UnknownKey
                    }
                    _ => StaffAuthError::Malformed,
                }
            })?
            .claims;
        self.check_times(&claims)?;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(StaffAuthError::MissingClaim("sub"))?;
        Ok(StaffIdentity {
            subject: format!("idp:{issuer}#{sub}"),
            roles: provider.roles(&claims),
        })
    }

    fn check_times(&self, claims: &Value) -> Result<(), StaffAuthError> {
        let now = self.clock.now_unix();
        let time = |name| claims.get(name).and_then(Value::as_u64);
        let exp = time("exp").ok_or(StaffAuthError::MissingClaim("exp"))?;
        if now > exp.saturating_add(self.leeway) {
            return Err(StaffAuthError::Expired);
        }
        for not_before in [time("nbf"), time("iat")].into_iter().flatten() {
            if not_before > now.saturating_add(self.leeway) {
                return Err(StaffAuthError::NotYetValid);
            }
        }
        Ok(())
    }
}

impl Provider {
    /// The key named by `kid`; without a `kid`, the provider's only key of the token's family.
    /// A key that declares its `alg` is used for that algorithm only.
    fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Jwk, StaffAuthError> {
        let key = self.find_key(kid, alg)?;
        if key
            .common
            .key_algorithm
            .is_some_and(|declared| declared.to_string() != format!("{alg:?}"))
        {
            return Err(StaffAuthError::UnknownKey);
        }
        Ok(key)
    }

    fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Jwk, StaffAuthError> {
        if let Some(kid) = kid {
            return self.keys.find(kid).ok_or(StaffAuthError::UnknownKey);
        }
        let rsa = matches!(alg, Algorithm::RS256 | Algorithm::RS384);
        let mut fitting = self.keys.keys.iter().filter(|k| {
            matches!(
                (&k.algorithm, rsa),
                (jsonwebtoken::jwk::AlgorithmParameters::RSA(_), true)
                    | (
                        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_),
                        false
                    )
            )
        });
        match (fitting.next(), fitting.next()) {
            (Some(key), None) => Ok(key),
            _ => Err(StaffAuthError::UnknownKey),
        }
    }

    /// The orderguard roles the claims grant: through `role_map` when one is configured,
    /// else by orderguard's own role names. Unknown names are ignored, never an error.
    fn roles(&self, claims: &Value) -> Vec<Role> {
        let mut value = Some(claims);
        for part in self.settings.roles_claim.split('.') {
            value = value.and_then(|v| v.get(part));
        }
        let names: Vec<&str> = match value {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let mut roles: Vec<Role> = names
            .into_iter()
            .filter_map(|name| {
                if self.settings.role_map.is_empty() {
                    Role::parse(name)
                } else {
                    self.settings.role_map.get(name).copied()
                }
            })
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }
}
