//! Input adapters: turn what a client sends into the clinical domain.
//!
//! Two doors, one room. A CDS Hooks 2.0 `order-select` / `order-sign` request (FHIR R4, with
//! the STU3 and DSTU2 shapes real clients still send) goes through [`cds_hooks`]; a native order
//! set (validated against `schemas/order-set.schema.json`) goes through [`native`]. Both return
//! a [`Translated`]: the patient, the proposed orders, and who / where the request came from.
//!
//! What the adapters must not do: evaluate anything (that is the engine), read a clock (the
//! evaluation time comes from the caller or the native `evaluated_at`), log request content
//! (PHI), or drop what they cannot read. A value that is there but not understood becomes a
//! [`Field::Unreadable`](crate::domain::Field) on its order, never a silent pass and never a
//! rejection of the whole request; only structurally broken input is an [`AdapterError`].

pub mod cds_hooks;
pub mod fhir;
pub mod native;
mod pruned;

pub use cds_hooks::{CdsHooksRequest, FhirAuthorization, HookContext};
pub use native::NativeOrderSet;

use crate::domain::{OrderSet, PatientContext};
use serde::Serialize;
use thiserror::Error;

/// What a request turned into, ready for the engine (with the evaluation time added by the
/// caller).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Translated {
    pub patient: PatientContext,
    pub orders: OrderSet,
    /// `Practitioner/123` (CDS Hooks `userId`, native `context.user`). Audit only, never logged.
    pub user_ref: Option<String>,
    /// `Patient/123`. Audit only, never logged.
    pub patient_ref: Option<String>,
    /// `Encounter/456`. Audit only, never logged.
    pub encounter_ref: Option<String>,
    /// The evaluation time the input asks for (native `evaluated_at`, to replay a decision);
    /// `None`: the caller uses its clock. Always `None` for CDS Hooks.
    pub evaluated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the adapter noticed and did not turn into data ("2 NutritionOrder ignored"): for the
    /// audit record and the CLI. Never patient data.
    pub notes: Vec<String>,
}

/// One problem in a native order set, at its JSON pointer (`/medications/0/dose/unit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Why a request could not be read at all. Every variant says where (a JSON pointer) and what,
/// in words a client developer can act on; none carries request content beyond a field name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdapterError {
    /// The body is not JSON (including a stray trailing `}` after a complete document).
    #[error("the request body is not valid JSON: {message} (line {line}, column {column})")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// A required field is missing, or a field has the wrong JSON type.
    #[error("{path}: {message}")]
    Malformed { path: String, message: String },
    /// A native order set that does not follow `schemas/order-set.schema.json`; every error is
    /// listed.
    #[error("the order set does not follow the schema: {}", summarize(errors))]
    Invalid { errors: Vec<FieldError> },
}

fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", display_path(&e.path), e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

impl AdapterError {
    /// The JSON pointer of the (first) offending field, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            AdapterError::Json { .. } => None,
            AdapterError::Malformed { path, .. } => Some(path),
            AdapterError::Invalid { errors } => errors.first().map(|e| e.path.as_str()),
        }
    }

    pub(crate) fn from_json(error: &serde_json::Error) -> AdapterError {
        // serde_json appends " at line L column C" to its messages; it is carried separately.
        let message = error.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        AdapterError::Json {
            line: error.line(),
            column: error.column(),
            message,
        }
    }
}

/// Which door a JSON document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    CdsHooks,
    Native,
}

/// Tells a CDS Hooks request from a native order set (for `orderguard check FILE`): a CDS Hooks
/// request names its `hook` or `hookInstance`, or carries a `context` with `draftOrders`;
/// everything else is read as native (and the schema says what is wrong with it).
pub fn detect(json: &serde_json::Value) -> InputKind {
    let Some(obj) = json.as_object() else {
        return InputKind::Native;
    };
    let has_draft_orders = obj
        .get("context")
        .and_then(|c| c.get("draftOrders"))
        .is_some();
    if obj.contains_key("hook") || obj.contains_key("hookInstance") || has_draft_orders {
        InputKind::CdsHooks
    } else {
        InputKind::Native
    }
}

/// Parses bytes as JSON, with the error a client can act on.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, AdapterError> {
    serde_json::from_slice(bytes).map_err(|e| AdapterError::from_json(&e))
}

/// Reads either kind of input from bytes: detects the kind, parses and translates.
pub fn translate_any(bytes: &[u8]) -> Result<(InputKind, Translated), AdapterError> {
    let value = parse_json(bytes)?;
    match detect(&value) {
        InputKind::CdsHooks => {
            let request = CdsHooksRequest::from_value(value)?;
            Ok((InputKind::CdsHooks, request.to_domain()?))
        }
        InputKind::Native => {
            let order_set = NativeOrderSet::from_value(value)?;
            Ok((InputKind::Native, order_set.to_domain()?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_cds_hooks_by_hook_or_draft_orders() {
        assert_eq!(
            detect(&json!({"hook": "order-sign", "context": {}})),
            InputKind::CdsHooks
        );
        assert_eq!(
            detect(&json!({"context": {"draftOrders": {}}})),
            InputKind::CdsHooks
        );
        assert_eq!(
            detect(&json!({"patient": {}, "medications": []})),
            InputKind::Native
        );
        assert_eq!(detect(&json!([1, 2])), InputKind::Native);
    }

    #[test]
    fn json_errors_say_where() {
        let err = parse_json(b"{\"hook\": \"order-sign\"}\n}").unwrap_err();
        match err {
            AdapterError::Json { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(message.contains("trailing characters"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
