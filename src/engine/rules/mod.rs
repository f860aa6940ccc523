//! Rule kinds: the Rust half of "rules as data". A kind is one file: its parameters (serde,
//! checked at compile time with errors pointing into the pathway file), its evaluation and its
//! tests. The pathway file names the kind, its parameters, severity, texts and suggestions.

mod augmentation_timing;
mod bed_rest;
mod class_at_age;
mod class_risk_factors;
mod course_after_fracture;
mod discouraged_service;
mod dose_common;
mod dose_max_daily;
mod dose_regimen;
mod dose_renal;
mod dose_renal_unknown;
mod dose_unreadable;
mod drug_combination;
mod fracture_date_required;
mod opioid_mme;
mod required_companion;
mod supplement_missing;
mod supplement_upper_limit;
mod supply_limit_acute;

use super::{Emitter, Facts};
use crate::pathway::CompileContext;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A compiled rule kind with its parameters. Evaluation is pure and must not allocate more
/// than the findings it reports.
pub trait RuleKind: Send + Sync + std::fmt::Debug {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>);
}

type CompileFn = fn(&Value, &mut CompileContext<'_>) -> Option<Box<dyn RuleKind>>;

/// Every rule kind by the name pathway files use.
const KINDS: &[(&str, CompileFn)] = &[
    ("activity_duration", bed_rest::compile),
    ("augmentation_timing", augmentation_timing::compile),
    ("class_at_age", class_at_age::compile),
    ("class_risk_factors", class_risk_factors::compile),
    ("course_after_fracture", course_after_fracture::compile),
    ("discouraged_service", discouraged_service::compile),
    ("dose_max_daily", dose_max_daily::compile),
    ("dose_regimen", dose_regimen::compile),
    ("dose_renal", dose_renal::compile),
    ("dose_renal_unknown", dose_renal_unknown::compile),
    ("dose_unreadable", dose_unreadable::compile),
    ("drug_combination", drug_combination::compile),
    ("fracture_date_required", fracture_date_required::compile),
    ("opioid_mme", opioid_mme::compile),
    ("required_companion", required_companion::compile),
    ("supplement_missing", supplement_missing::compile),
    ("supplement_upper_limit", supplement_upper_limit::compile),
    ("supply_limit_acute", supply_limit_acute::compile),
];

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(name, _)| *name).collect()
}

/// Compiles `params` for `kind`; `None` with errors in `ctx` when the parameters are wrong,
/// `None` without errors when the kind is unknown.
pub fn compile_kind(
    kind: &str,
    params: &Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let (_, compile) = KINDS.iter().find(|(name, _)| *name == kind)?;
    compile(params, ctx)
}

/// Deserializes a kind's parameters, reporting a serde error (wrong type, unknown field,
/// threshold in the wrong unit) as a lint error on the rule's params.
pub fn params<T: DeserializeOwned>(value: &Value, ctx: &mut CompileContext<'_>) -> Option<T> {
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value.clone()
    };
    match serde_path_to_error::deserialize(value) {
        Ok(p) => Some(p),
        Err(e) => {
            // `max_duration.unit` -> `max_duration/unit`, a JSON pointer under the rule's params.
            let pointer = e.path().to_string().replace('.', "/");
            let pointer = if pointer == "/" {
                String::new()
            } else {
                pointer
            };
            ctx.error(&pointer, e.into_inner().to_string());
            None
        }
    }
}

/// The patient's renal function as the VCF rules read it: the lower of the latest eGFR and
/// creatinine clearance when both are known (the stricter reading, so a suggestion never
/// proposes a drug that the CrCl-based dose rules would then block), with its name for cards.
pub(crate) fn renal_function(facts: &Facts<'_>) -> Option<(f64, &'static str)> {
    let egfr = facts.labs.egfr.map(|l| (l.value, "eGFR"));
    let crcl = facts.labs.crcl.map(|l| (l.value, "CrCl"));
    match (egfr, crcl) {
        (Some(e), Some(c)) => Some(if c.0 < e.0 { c } else { e }),
        (e, c) => e.or(c),
    }
}

#[cfg(test)]
pub(crate) mod testing;
