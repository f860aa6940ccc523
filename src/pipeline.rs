//! The real [`DecisionPipeline`]: what happens to a request between the HTTP layer and the
//! answer. Read (adapters) → fetch what prefetch lacks (FHIR server) → decide (engine) →
//! render → record, durable → answer. The answer is returned only after the audit writer has
//! committed the record or fsync'd it to the spool; otherwise the request fails with 503.

use crate::adapters::{AdapterError, CdsHooksRequest, InputKind};
use crate::audit::{
    self, AuditRecord, AuditWriter, Channel, FeedbackOutcome, FeedbackRecord, RejectionRecord,
    RequestMeta,
};
use crate::decide::{self, Prepared};
use crate::pathway::Plan;
use crate::service::fhir_client::{FhirClient, FhirServer};
use crate::service::{
    BoxFuture, ClientIdentity, DecisionPipeline, FieldError, PipelineError, Readiness, Rejection,
    discovery, metrics,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

pub struct Pipeline {
    /// Swapped whole on reload; a request holds its own `Arc` for its whole evaluation, so it
    /// never mixes two versions.
    plan: RwLock<Arc<Plan>>,
    writer: AuditWriter,
    pool: PgPool,
    fhir: FhirClient,
}

impl Pipeline {
    pub fn new(plan: Arc<Plan>, writer: AuditWriter, pool: PgPool, fhir: FhirClient) -> Pipeline {
        Pipeline {
            plan: RwLock::new(plan),
            writer,
            pool,
            fhir,
        }
    }

    pub fn plan(&self) -> Arc<Plan> {
        self.plan.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs a new compiled plan; requests already evaluating finish on the old one.
    pub fn swap_plan(&self, plan: Arc<Plan>) {
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = plan;
    }

    pub fn writer(&self) -> &AuditWriter {
        &self.writer
    }

    /// The audit database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn decide_and_record(
        &self,
        mut prepared: Prepared,
        now: DateTime<Utc>,
        channel: Channel,
        client: &ClientIdentity,
    ) -> Result<Value, PipelineError> {
        let plan = self.plan();
        let decision = decide::decide(&plan, &mut prepared, now, Uuid::now_v7());
        let answer = decide::render(&prepared, &decision);
        let response = decide::response_bytes(channel, &answer);
        let meta = RequestMeta {
            channel,
            hook: prepared.hook.take(),
            hook_instance: prepared.hook_instance.take(),
            client_id: client_id(client),
            user_ref: prepared.user_ref.take(),
            patient_ref: prepared.patient_ref.take(),
            encounter_ref: prepared.encounter_ref.take(),
        };
        let input = std::mem::take(&mut prepared.canonical_input);
        let record = AuditRecord::from_decision(&decision, meta, input, response);
        match self.writer.record(record).await {
            Ok(_) => {
                metrics::record_decision(&decision.evaluation);
                tracing::info!(decision_id = %decision.decision_id, findings = decision.evaluation.findings.len(), "decision recorded");
                Ok(answer)
            }
            Err(error) => {
                tracing::error!(decision_id = %decision.decision_id, %error, "decision not durable: answering 503");
                Err(PipelineError::Unavailable)
            }
        }
    }

    /// A CDS Hooks request without prefetch: fetch the templates from the client's FHIR server
    /// with its access token. No prefetch and no way to fetch it is a 412.
    async fn complete_prefetch(&self, request: &mut Value) -> Result<(), PipelineError> {
        let has_prefetch = request
            .get("prefetch")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_prefetch {
            return Ok(());
        }
        let keys: Vec<&str> = discovery::PREFETCH.iter().map(|(key, _)| *key).collect();
        let base_url = request.get("fhirServer").and_then(Value::as_str);
        let patient_id = request
            .pointer("/context/patientId")
            .and_then(Value::as_str);
        let (Some(base_url), Some(patient_id)) = (base_url, patient_id) else {
            return Err(PipelineError::PrefetchUnavailable {
                missing: keys.iter().map(|k| (*k).to_owned()).collect(),
            });
        };
        let token = request
            .pointer("/fhirAuthorization/access_token")
            .and_then(Value::as_str);
        let fetched = self
            .fhir
            .fetch(
                FhirServer {
                    base_url,
                    access_token: token,
                },
                patient_id,
                &keys,
            )
            .await?;
        let prefetch: serde_json::Map<String, Value> = fetched.into_iter().collect();
        request["prefetch"] = Value::Object(prefetch);
        Ok(())
    }
}

fn client_id(client: &ClientIdentity) -> Option<String> {
    match client {
        ClientIdentity::Verified { issuer, tenant, .. } => Some(match tenant {
            Some(t) => format!("{issuer}#{t}"),
            None => issuer.clone(),
        }),
        ClientIdentity::Unauthenticated => None,
    }
}

/// An adapter error as a 400 naming the field.
fn bad_request(error: AdapterError) -> PipelineError {
    let field_errors = match &error {
        AdapterError::Invalid { errors } => errors
            .iter()
            .map(|e| FieldError {
                path: e.path.clone(),
                message: e.message.clone(),
            })
            .collect(),
        AdapterError::Malformed { path, message } => vec![FieldError {
            path: path.clone(),
            message: message.clone(),
        }],
        AdapterError::Json { .. } => Vec::new(),
    };
    PipelineError::BadRequest {
        field_errors,
        detail: error.to_string(),
    }
}

fn field_error(path: String, message: &str) -> PipelineError {
    PipelineError::BadRequest {
        detail: format!("{path}: {message}"),
        field_errors: vec![FieldError {
            path,
            message: message.to_owned(),
        }],
    }
}

impl DecisionPipeline for Pipeline {
    fn cds_hooks(
        &self,
        service_id: &str,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<Value, PipelineError>> {
        let expected_hook = discovery::service(service_id).map(|s| s.hook);
        Box::pin(async move {
            let now = Utc::now();
            // The common case: a well-formed request for this hook with its prefetch, read
            // once into the typed request (draftOrders and prefetch pruned while parsing).
            if let Some(request) = CdsHooksRequest::try_parse(&body)
                && Some(request.hook.as_str()) == expected_hook
                && !request.prefetch.is_empty()
            {
                let prepared = decide::prepare_cds_hooks(request).map_err(bad_request)?;
                return self
                    .decide_and_record(prepared, now, Channel::CdsHooks, &client)
                    .await;
            }
            // Everything else (prefetch to fetch, or an error to name) as a JSON value.
            let mut request = crate::adapters::parse_json(&body).map_err(bad_request)?;
            if !request.is_object() {
                return Err(field_error(
                    String::new(),
                    "a CDS Hooks request is a JSON object",
                ));
            }
            match request.get("hook").and_then(Value::as_str) {
                Some(hook) if Some(hook) == expected_hook => {}
                Some(_) => return Err(PipelineError::UnknownHook),
                None => {
                    return Err(field_error(
                        "/hook".into(),
                        "required: the hook that triggered the call",
                    ));
                }
            }
            self.complete_prefetch(&mut request).await?;
            let prepared = decide::prepare_value(request).map_err(bad_request)?;
            self.decide_and_record(prepared, now, Channel::CdsHooks, &client)
                .await
        })
    }

    fn native(
        &self,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<Value, PipelineError>> {
        Box::pin(async move {
            let received = Utc::now();
            let value = crate::adapters::parse_json(&body).map_err(bad_request)?;
            if crate::adapters::detect(&value) == InputKind::CdsHooks {
                return Err(field_error(
                    "/hook".into(),
                    "this is a CDS Hooks request: send it to /cds-services/{id}, not /v1/validate",
                ));
            }
            let prepared = decide::prepare_value(value).map_err(bad_request)?;
            let now = prepared.requested_time.unwrap_or(received);
            self.decide_and_record(prepared, now, Channel::Native, &client)
                .await
        })
    }

    fn feedback(
        &self,
        _service_id: &str,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async move {
            let value = crate::adapters::parse_json(&body).map_err(bad_request)?;
            let Some(items) = value.get("feedback").and_then(Value::as_array) else {
                return Err(field_error(
                    "/feedback".into(),
                    "required: an array of feedback items",
                ));
            };
            let mut records = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = |field: &str| format!("/feedback/{i}/{field}");
                let card = item
                    .get("card")
                    .and_then(Value::as_str)
                    .ok_or_else(|| field_error(at("card"), "required: the card's uuid"))?;
                let card_uuid =
                    Uuid::parse_str(card).map_err(|_| field_error(at("card"), "not a UUID"))?;
                let outcome = match item.get("outcome").and_then(Value::as_str) {
                    Some("accepted") => FeedbackOutcome::Accepted,
                    Some("overridden") => FeedbackOutcome::Overridden,
                    _ => {
                        return Err(field_error(
                            at("outcome"),
                            "must be \"accepted\" or \"overridden\"",
                        ));
                    }
                };
                let accepted_suggestions: Vec<String> = item
                    .get("acceptedSuggestions")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.get("id").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let reason = item.get("overrideReason");
                let outcome_at = item
                    .get("outcomeTimestamp")
                    .and_then(Value::as_str)
                    .and_then(crate::adapters::fhir::parse_fhir_datetime)
                    .unwrap_or_else(Utc::now);
                // A card no decision gave is a client error; a database that cannot answer
                // right now must not lose the clinician's feedback, so it is kept unjoined.
                let decision_id = match audit::find_card(&self.pool, card_uuid).await {
                    Ok(Some(origin)) => Some(origin.decision_id),
                    Ok(None) => return Err(PipelineError::UnknownCard { path: at("card") }),
                    Err(_) => None,
                };
                records.push(FeedbackRecord {
                    card_uuid,
                    decision_id,
                    outcome,
                    accepted_suggestions,
                    override_reason_code: reason
                        .and_then(|r| r.pointer("/reason/code"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    override_comment: reason
                        .and_then(|r| r.get("userComment"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    outcome_at,
                    client_id: client_id(&client),
                });
            }
            for record in records {
                self.writer
                    .record_feedback(record)
                    .await
                    .map_err(|_| PipelineError::Unavailable)?;
            }
            Ok(())
        })
    }

    fn record_rejection(&self, rejection: Rejection) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let record = RejectionRecord {
                at: rejection.received_at,
                client_id: client_id(&rejection.client),
                route: rejection.route,
                reason: rejection.detail,
                status: rejection.status,
                body_hash: rejection.body.as_ref().map(|b| b.sha256.clone()),
                body_len: rejection.body.as_ref().map_or(0, |b| b.total_bytes as u64),
            };
            if let Err(error) = self.writer.record_rejection(record).await {
                tracing::warn!(%error, "rejected request not recorded");
            }
        })
    }

    fn readiness(&self) -> Readiness {
        let health = self.writer.health();
        metrics::set_audit_queue_depth(health.queue_depth);
        metrics::set_audit_spool_bytes(health.spool_bytes);
        if health.spooling {
            Readiness::Degraded {
                reason: "database unreachable: decisions are spooled locally".into(),
            }
        } else {
            Readiness::Ready
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.writer.clone().shutdown().await })
    }
}
