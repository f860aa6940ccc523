//! Service configuration: defaults, then a JSON file, then environment variables, then what the
//! CLI sets (`--insecure-no-auth`). Checked once at load: a service that starts is a service whose
//! configuration makes sense.
//!
//! Environment variables (each overrides the file):
//! `ORDERGUARD_LISTEN`, `DATABASE_URL`, `ORDERGUARD_PATHWAY`, `ORDERGUARD_AUDIENCE_BASE_URL`,
//! `ORDERGUARD_MAX_BODY_BYTES`, `ORDERGUARD_MAX_JSON_DEPTH`, `ORDERGUARD_REQUEST_TIMEOUT_MS`,
//! `ORDERGUARD_INSECURE_NO_AUTH` (`true`/`1`), `REPORTS_DATABASE_URL` (a read replica for the
//! staff routes). Trusted clients, the staff identity provider and staff API keys are structured
//! and live in the file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Everything `serve` needs to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// PostgreSQL connection string; absent = the embedded cluster (the CLI's concern).
    pub database_url: Option<DatabaseUrl>,
    /// The pathway definition file; absent = the built-in pathway (the CLI's concern).
    pub pathway: Option<PathBuf>,
    pub auth: AuthSettings,
    /// Accept calls without a client JWT. For local demos only; logged loudly at start.
    pub insecure_no_auth: bool,
    pub limits: Limits,
    pub fhir: FhirFetchSettings,
    /// Who may read reports, the pharmacist queue and the audit export (see
    /// [`crate::service::staff`]).
    pub staff: StaffSettings,
    /// Where staff routes read audit data: a read replica, when set; else the audit database.
    pub reports_database_url: Option<DatabaseUrl>,
    /// The report rollups' refresher inside `serve`.
    pub rollups: RollupSettings,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            pathway: None,
            auth: AuthSettings::default(),
            insecure_no_auth: false,
            limits: Limits::default(),
            fhir: FhirFetchSettings::default(),
            staff: StaffSettings::default(),
            reports_database_url: None,
            rollups: RollupSettings::default(),
        }
    }
}

/// How `serve` keeps the report rollups current (src/reports/rollup.rs): every
/// `refresh_minutes` (0: never; then run `orderguard db refresh-rollups` from a timer), folding
/// the days that ended `settle_minutes` ago. Instances sharing a database take turns on an
/// advisory lock, so each day is folded once.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollupSettings {
    pub refresh_minutes: u64,
    pub settle_minutes: u64,
}

impl Default for RollupSettings {
    fn default() -> Self {
        RollupSettings {
            refresh_minutes: 10,
            settle_minutes: 60,
        }
    }
}

/// A connection string that never prints its password (Debug shows only that it is set).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

/// How CDS Hooks clients prove who they are.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The service's public base URL as clients call it, e.g. `https://cds.example.org`. A
    /// token's `aud` must equal this plus the called path, exactly.
    pub audience_base_url: Option<String>,
    pub trusted_clients: Vec<TrustedClient>,
    /// Clock skew allowed on `exp` and `iat`.
    pub leeway_seconds: u64,
    /// Most `jti`s remembered at once for replay detection. When full of unexpired entries, new
    /// tokens are refused rather than forgetting one (fail closed).
    pub replay_cache_capacity: usize,
    /// How long a JWKS fetched from a `jku` is reused.
    pub jwks_cache_seconds: u64,
    pub jwks_fetch_timeout_ms: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            audience_base_url: None,
            trusted_clients: Vec::new(),
            leeway_seconds: 30,
            replay_cache_capacity: 100_000,
            jwks_cache_seconds: 300,
            jwks_fetch_timeout_ms: 2_000,
        }
    }
}

/// One EHR allowed to call: its issuer and where its keys come from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustedClient {
    /// The token's `iss`, compared exactly.
    pub issuer: String,
    /// A JWKS file pinned by configuration.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// `jku` URLs this issuer may point at; a token's `jku` outside this list is not fetched.
    #[serde(default)]
    pub jku_allow: Vec<String>,
}

/// Staff access: bearer JWTs from the hospital's identity provider, and API keys (for scripts and
/// dashboards) kept here only as SHA-256 hashes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaffSettings {
    pub identity_providers: Vec<IdentityProvider>,
    pub api_keys: Vec<StaffApiKey>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` of IdP tokens.
    pub leeway_seconds: u64,
}

impl Default for StaffSettings {
    fn default() -> Self {
        StaffSettings {
            identity_providers: Vec::new(),
            api_keys: Vec::new(),
            leeway_seconds: 30,
        }
    }
}

/// The hospital identity provider whose JWTs staff present.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// The token's `iss`, compared exactly.
    pub issuer: String,
    /// The IdP's public keys (JWKS), pinned by configuration.
    pub jwks_file: PathBuf,
    /// The claim holding the roles: an array of strings or one space-separated string. A dotted
    /// path reaches into objects, e.g. `realm_access.roles` (Keycloak).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// When set, the token's `aud` must contain it.
    #[serde(default)]
    pub audience: Option<String>,
    /// IdP role name → orderguard role (`quality`, `pharmacist`, `admin`). Empty: the IdP uses
    /// orderguard's names. Names that map to nothing are ignored.
    #[serde(default)]
    pub role_map: std::collections::BTreeMap<String, crate::service::staff::Role>,
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

/// One API key: its name (what the audit log records as the actor, `key:<name>`), the SHA-256
/// of the key (lowercase hex; the key itself is never stored) and its roles.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaffApiKey {
    pub name: String,
    pub sha256: String,
    pub roles: Vec<crate::service::staff::Role>,
}

/// Limits on what one request may cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A large order-sign request with full prefetch is a few hundred kB.
            max_body_bytes: 2 * 1024 * 1024,
            // FHIR resources nest about 10 deep inside a CDS Hooks request; 64 leaves room.
            max_json_depth: 64,
            request_timeout_ms: 5_000,
        }
    }
}

impl Limits {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// How the service fetches missing prefetch from the client's FHIR server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FhirFetchSettings {
    pub timeout_ms: u64,
    pub max_response_bytes: usize,
}

impl Default for FhirFetchSettings {
    fn default() -> Self {
        FhirFetchSettings {
            // Inside the CDS Hooks "about 500 ms" budget, with room for evaluation and audit.
            timeout_ms: 1_500,
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

impl ServiceConfig {
    /// Defaults, then `file` (JSON) if given, then the process environment. Call
    /// [`ServiceConfig::validate`] after the CLI has applied its flags.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, |name| std::env::var(name).ok())
    }

    /// As [`ServiceConfig::load`], with the environment given (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => ServiceConfig::default(),
        };
        config.apply_env(env)?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                message: e.to_string(),
            })
        }
        if let Some(value) = env("ORDERGUARD_LISTEN") {
            self.listen = parsed("ORDERGUARD_LISTEN", value)?;
        }
        if let Some(value) = env("DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(DatabaseUrl(value));
        }
        if let Some(value) = env("ORDERGUARD_PATHWAY").filter(|v| !v.is_empty()) {
            self.pathway = Some(PathBuf::from(value));
        }
        if let Some(value) = env("ORDERGUARD_AUDIENCE_BASE_URL").filter(|v| !v.is_empty()) {
            self.auth.audience_base_url = Some(value);
        }
        if let Some(value) = env("ORDERGUARD_MAX_BODY_BYTES") {
            self.limits.max_body_bytes = parsed("ORDERGUARD_MAX_BODY_BYTES", value)?;
        }
        if let Some(value) = env("ORDERGUARD_MAX_JSON_DEPTH") {
            self.limits.max_json_depth = parsed("ORDERGUARD_MAX_JSON_DEPTH", value)?;
        }
        if let Some(value) = env("ORDERGUARD_REQUEST_TIMEOUT_MS") {
            self.limits.request_timeout_ms = parsed("ORDERGUARD_REQUEST_TIMEOUT_MS", value)?;
        }
        if let Some(value) = env("REPORTS_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.reports_database_url = Some(DatabaseUrl(value));
        }
        if let Some(value) = env("ORDERGUARD_ROLLUP_REFRESH_MINUTES") {
            self.rollups.refresh_minutes = parsed("ORDERGUARD_ROLLUP_REFRESH_MINUTES", value)?;
        }
        if let Some(value) = env("ORDERGUARD_INSECURE_NO_AUTH") {
            self.insecure_no_auth = matches!(value.trim(), "1" | "true" | "yes");
        }
        Ok(())
    }

    /// Refuse configurations that would start a service that cannot work, or an open one by
    /// accident.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.limits.max_body_bytes == 0 {
            return invalid("limits.max_body_bytes must be positive");
        }
        if self.limits.max_json_depth < 8 {
            return invalid("limits.max_json_depth below 8 cannot hold a CDS Hooks request");
        }
        if self.limits.request_timeout_ms == 0 {
            return invalid("limits.request_timeout_ms must be positive");
        }
        self.validate_staff()?;
        if self.insecure_no_auth {
            return Ok(());
        }
        let Some(base) = &self.auth.audience_base_url else {
            return invalid(
                "auth.audience_base_url is required (or --insecure-no-auth for a local demo)",
            );
        };
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return invalid("auth.audience_base_url must be an http(s) URL");
        }
        if self.auth.trusted_clients.is_empty() {
            return invalid(
                "auth.trusted_clients is empty: no EHR could call (or --insecure-no-auth for a local demo)",
            );
        }
        for client in &self.auth.trusted_clients {
            if client.jwks_file.is_none() && client.jku_allow.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "trusted client {} has neither jwks_file nor jku_allow",
                    client.issuer
                )));
            }
        }
        Ok(())
    }
}

impl ServiceConfig {
    /// Staff access settings: names safe to store as actors, hashes that are hashes, no key
    /// without a role. (`--insecure-no-auth` never opens the staff routes.)
    fn validate_staff(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut names = std::collections::BTreeSet::new();
        for (i, key) in self.staff.api_keys.iter().enumerate() {
            let at = format!("staff.api_keys[{i}]");
            if key.name.is_empty()
                || key.name.len() > 64
                || !key
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return invalid(format!("{at}.name must be 1-64 of A-Z a-z 0-9 . _ -"));
            }
            if !names.insert(key.name.as_str()) {
                return invalid(format!("{at}.name {} is used twice", key.name));
            }
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(format!(
                    "{at}.sha256 must be the SHA-256 of the key in hex (64 characters), see README"
                ));
            }
            if key.roles.is_empty() {
                return invalid(format!("{at}.roles is empty"));
            }
        }
        for (i, idp) in self.staff.identity_providers.iter().enumerate() {
            if idp.issuer.is_empty() {
                return invalid(format!("staff.identity_providers[{i}].issuer is empty"));
            }
            if idp.roles_claim.is_empty() {
                return invalid(format!(
                    "staff.identity_providers[{i}].roles_claim is empty"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("orderguard.json");
        std::fs::write(
            &file,
            r#"{"listen":"0.0.0.0:9000","limits":{"max_json_depth":32},
               "auth":{"audience_base_url":"https://cds.example.org",
                       "trusted_clients":[{"issuer":"https://ehr.example.com/","jwks_file":"keys.json"}]}}"#,
        )
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("ORDERGUARD_LISTEN", "127.0.0.1:0"),
            ("DATABASE_URL", "postgres://u:secret@db/orderguard"),
        ]
        .into();
        let config =
            ServiceConfig::load_with_env(Some(&file), |name| env.get(name).map(|v| v.to_string()))
                .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.limits.max_json_depth, 32);
        assert_eq!(config.limits.request_timeout_ms, 5_000);
        assert_eq!(config.auth.trusted_clients.len(), 1);
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn a_service_without_trusted_clients_refuses_to_start_unless_insecure() {
        let mut config = ServiceConfig::default();
        config.auth.audience_base_url = Some("https://cds.example.org".into());
        assert!(config.validate().is_err());
        config.insecure_no_auth = true;
        config.validate().unwrap();
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let err = ServiceConfig::load_with_env(None, |name| {
            (name == "ORDERGUARD_MAX_BODY_BYTES").then(|| "lots".to_string())
        })
        .unwrap_err();
        assert!(err.to_string().contains("ORDERGUARD_MAX_BODY_BYTES"));
    }

    #[test]
    fn staff_keys_are_checked_for_a_hash_a_safe_name_and_a_role() {
        let file = r#"{"insecure_no_auth": true, "staff": {
            "identity_providers": [{"issuer": "https://login.example/", "jwks_file": "idp.json",
                                    "roles_claim": "realm_access.roles",
                                    "role_map": {"og-pharm": "pharmacist"}}],
            "api_keys": [{"name": "dash-1", "roles": ["quality"],
                          "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]}}"#;
        let config: ServiceConfig = serde_json::from_str(file).unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.staff.identity_providers[0].role_map["og-pharm"],
            crate::service::staff::Role::Pharmacist
        );
        let broken = |edit: &dyn Fn(&mut StaffApiKey)| {
            let mut c = config.clone();
            edit(&mut c.staff.api_keys[0]);
            c.validate().unwrap_err().to_string()
        };
        assert!(broken(&|k| k.sha256 = "secret-key".into()).contains("api_keys[0].sha256"));
        assert!(broken(&|k| k.name = "a b".into()).contains("api_keys[0].name"));
        assert!(broken(&|k| k.roles.clear()).contains("api_keys[0].roles"));
        let unknown_role = file.replace(r#"["quality"]"#, r#"["nurse"]"#);
        assert!(serde_json::from_str::<ServiceConfig>(&unknown_role).is_err());
    }
}
