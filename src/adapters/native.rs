//! Native JSON order sets (placeholder while the schema is written).
use super::{AdapterError, Translated};

/// A native order set, validated against `schemas/order-set.schema.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeOrderSet {
    document: serde_json::Value,
}

impl NativeOrderSet {
    pub fn from_value(document: serde_json::Value) -> Result<NativeOrderSet, AdapterError> {
        Ok(NativeOrderSet { document })
    }

    pub fn to_domain(&self) -> Result<Translated, AdapterError> {
        let _ = &self.document;
        Err(AdapterError::Malformed {
            path: String::new(),
            message: "native order sets are not read yet".into(),
        })
    }
}
