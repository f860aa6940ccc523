//! Fetching prefetch the client did not send, from its `fhirServer` with its
//! `fhirAuthorization` bearer token (CDS Hooks 2.0 "FHIR resource access").
//!
//! All queries run at once under one deadline and a per-response size cap. Either every asked
//! key comes back as a FHIR resource (a Bundle for searches) or the call fails naming the keys
//! that could not be had, which the pipeline answers as 412. Nothing here logs a URL: the queries
//! carry the patient id.

use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinSet;

use crate::service::PipelineError;
use crate::service::config::FhirFetchSettings;
use crate::service::discovery;
use crate::service::http_fetch::{FetchError, HttpFetcher};

/// Prefetch that could not be fetched. `missing` are prefetch keys; `reasons` are for the log
/// (no URLs, no tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prefetch unavailable for {missing:?}")]
pub struct FhirFetchError {
    pub missing: Vec<String>,
    pub reasons: Vec<String>,
}

impl From<FhirFetchError> for PipelineError {
    fn from(error: FhirFetchError) -> Self {
        PipelineError::PrefetchUnavailable {
            missing: error.missing,
        }
    }
}

/// The client's FHIR endpoint as a CDS Hooks request gives it.
#[derive(Debug, Clone, Copy)]
pub struct FhirServer<'a> {
    /// `fhirServer`: the base URL.
    pub base_url: &'a str,
    /// `fhirAuthorization.access_token`, if the client sent one.
    pub access_token: Option<&'a str>,
}

#[derive(Clone)]
pub struct FhirClient {
    fetcher: HttpFetcher,
    timeout: Duration,
    max_response_bytes: usize,
}

impl FhirClient {
    pub fn new(settings: &FhirFetchSettings) -> Self {
        FhirClient {
            fetcher: HttpFetcher::default(),
            timeout: Duration::from_millis(settings.timeout_ms),
            max_response_bytes: settings.max_response_bytes,
        }
    }

    /// Fetch the prefetch `keys` (keys of [`discovery::PREFETCH`]) for `patient_id`. Returns the
    /// resources in the order of `keys`.
    pub async fn fetch(
        &self,
        server: FhirServer<'_>,
        patient_id: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, Value)>, FhirFetchError> {
        let base = server.base_url.trim_end_matches('/');
        let mut failures = FhirFetchError {
            missing: Vec::new(),
            reasons: Vec::new(),
        };
        let mut tasks = JoinSet::new();
        for (position, key) in keys.iter().enumerate() {
            let query = discovery::PREFETCH
                .iter()
                .find(|(known, _)| known == key)
                .and_then(|(_, template)| discovery::render_template(template, patient_id));
            let Some(query) = query else {
                failures.missing.push((*key).to_owned());
                failures
                    .reasons
                    .push(format!("{key}: unknown key or invalid patient id"));
                continue;
            };
            let url = format!("{base}/{query}");
            let fetcher = self.fetcher.clone();
            let token = server.access_token.map(str::to_owned);
            let (timeout, max_bytes) = (self.timeout, self.max_response_bytes);
            tasks.spawn(async move {
                let fetched = fetcher
                    .get(
                        &url,
                        "application/fhir+json",
                        token.as_deref(),
                        timeout,
                        max_bytes,
                    )
                    .await;
                (position, fetched)
            });
        }
        let mut found: Vec<(usize, Value)> = Vec::with_capacity(keys.len());
        while let Some(joined) = tasks.join_next().await {
            let Ok((position, fetched)) = joined else {
                continue;
            };
            let key = keys[position];
            match fetched
                .map_err(|e| reason(&e))
                .and_then(|bytes| resource(&bytes))
            {
                Ok(value) => found.push((position, value)),
                Err(why) => {
                    failures.missing.push(key.to_owned());
                    failures.reasons.push(format!("{key}: {why}"));
                }
            }
        }
        if found.len() != keys.len() && failures.missing.is_empty() {
            // A task panicked: count its key as missing rather than answer with a gap.
            for (position, key) in keys.iter().enumerate() {
                if !found.iter().any(|(p, _)| *p == position) {
                    failures.missing.push((*key).to_owned());
                }
            }
        }
        if !failures.missing.is_empty() {
            failures.missing.sort();
            tracing::debug!(reasons = ?failures.reasons, "FHIR prefetch fetch failed");
            return Err(failures);
        }
        found.sort_by_key(|(position, _)| *position);
        Ok(found
            .into_iter()
            .map(|(position, value)| (keys[position].to_owned(), value))
            .collect())
    }
}

fn reason(error: &FetchError) -> String {
    error.to_string()
}

fn resource(bytes: &[u8]) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|_| "response is not JSON".to_owned())?;
    if value.get("resourceType").and_then(Value::as_str).is_none() {
        return Err("response is not a FHIR resource".to_owned());
    }
    Ok(value)
}
