//! From a request's bytes to a decision and its rendered answer: the steps the CLI, the service
//! and replay share. No IO here either: the caller supplies the time and the decision id, and
//! records the decision before it releases the answer.

use crate::adapters::{self, AdapterError, CdsHooksRequest, InputKind, NativeOrderSet, Translated};
use crate::decision::Decision;
use crate::domain::EvaluationInput;
use crate::pathway::Plan;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// A request read and ready to evaluate.
pub struct Prepared {
    pub kind: InputKind,
    /// Patient and orders; `now` is set by [`decide`].
    pub input: EvaluationInput,
    pub user_ref: Option<String>,
    pub patient_ref: Option<String>,
    pub encounter_ref: Option<String>,
    /// What the adapter noticed and ignored (never patient data).
    pub notes: Vec<String>,
    /// The CDS Hooks hook name (`order-sign`), when the request is one.
    pub hook: Option<String>,
    pub hook_instance: Option<String>,
    /// draftOrders of a CDS Hooks request: update suggestions merge into these resources.
    pub draft_orders: Option<Value>,
    /// The native order set's own `evaluated_at`, when it gives one.
    pub requested_time: Option<DateTime<Utc>>,
    /// Canonical JSON bytes of the input as the audit log keeps it, so that replay can
    /// re-evaluate it with [`prepare`]: a CDS Hooks request reduced to what the adapter reads
    /// ([`CdsHooksRequest::stored_input`]), a native order set whole. Never the FHIR access
    /// token.
    pub canonical_input: Vec<u8>,
}

/// Reads a CDS Hooks request or a native order set (auto-detected). This is also the one
/// function that turns a stored `decisions.canonical_input` back into what was decided on
/// (replay).
pub fn prepare(bytes: &[u8]) -> Result<Prepared, AdapterError> {
    let value = adapters::parse_json(bytes)?;
    prepare_value(value)
}

/// Reads a stored decision's input (`decisions.canonical_input`) back into what the engine
/// evaluates. The ONE place that knows what the audit log stores as input: replay and the
/// determinism check go through it and nothing else, so whoever changes what is stored changes
/// this function too (INTERFACES.md, "Stored input").
pub fn from_stored(canonical_input: &[u8]) -> Result<Prepared, AdapterError> {
    prepare(canonical_input)
}

fn envelope(kind: InputKind, t: Translated) -> Prepared {
    Prepared {
        kind,
        input: EvaluationInput {
            patient: t.patient,
            orders: t.orders,
            now: DateTime::<Utc>::UNIX_EPOCH,
        },
        user_ref: t.user_ref,
        patient_ref: t.patient_ref,
        encounter_ref: t.encounter_ref,
        notes: t.notes,
        hook: None,
        hook_instance: None,
        draft_orders: None,
        requested_time: None,
        canonical_input: Vec::new(),
    }
}

pub fn prepare_value(value: Value) -> Result<Prepared, AdapterError> {
    match adapters::detect(&value) {
        InputKind::CdsHooks => prepare_cds_hooks(CdsHooksRequest::from_value(value)?),
        InputKind::Native => {
            let mut value = value;
            if let Some(obj) = value.as_object_mut() {
                obj.remove("fhirAuthorization");
            }
            let canonical_input = crate::canonical::to_vec(&value);
            let order_set = NativeOrderSet::from_value(value)?;
            let translated = order_set.to_domain()?;
            Ok(Prepared {
                requested_time: order_set.evaluated_at,
                canonical_input,
                ..envelope(InputKind::Native, translated)
            })
        }
    }
}

/// Translates a parsed CDS Hooks request (whichever way it was parsed) and keeps its stored
/// form.
pub fn prepare_cds_hooks(mut request: CdsHooksRequest) -> Result<Prepared, AdapterError> {
    let translated = request.to_domain()?;
    let canonical_input = request.stored_input();
    let CdsHooksRequest {
        hook,
        hook_instance,
        context,
        ..
    } = request;
    Ok(Prepared {
        hook: Some(hook),
        hook_instance: Some(hook_instance),
        draft_orders: Some(context.draft_orders),
        canonical_input,
        ..envelope(InputKind::CdsHooks, translated)
    })
}

/// Evaluates a prepared request under `plan` at `now`, truncated to the microsecond: the
/// precision PostgreSQL keeps `evaluated_at` at, so that a replay at the stored time evaluates
/// at exactly the time the decision did (and renders the same `evaluated_at`).
pub fn decide(
    plan: &Plan,
    prepared: &mut Prepared,
    now: DateTime<Utc>,
    decision_id: Uuid,
) -> Decision {
    use chrono::SubsecRound;
    let now = now.trunc_subsecs(6);
    prepared.input.now = now;
    Decision {
        decision_id,
        pathway: plan.reference.clone(),
        evaluated_at: now,
        evaluation: crate::engine::evaluate(plan, &prepared.input),
    }
}

/// The answer for the request's kind: CDS Hooks cards, or the native decision.
pub fn render(prepared: &Prepared, decision: &Decision) -> Value {
    match prepared.kind {
        InputKind::CdsHooks => crate::cards::render(decision, prepared.draft_orders.as_ref()),
        InputKind::Native => serde_json::to_value(decision).expect("a decision always serializes"),
    }
}

/// The answer's bytes as its channel sends them and the audit log stores them (their SHA-256 is
/// `decisions.response_sha256`): compact JSON over HTTP, pretty-printed from the CLI. Shared by
/// the service, the CLI and the determinism check, so a replayed answer is spelt the same way.
pub fn response_bytes(channel: crate::audit::Channel, answer: &Value) -> Vec<u8> {
    match channel {
        crate::audit::Channel::Cli => serde_json::to_string_pretty(answer),
        crate::audit::Channel::CdsHooks | crate::audit::Channel::Native => {
            serde_json::to_string(answer)
        }
    }
    .expect("JSON values always serialize")
    .into_bytes()
}
