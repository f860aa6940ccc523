//! The pathway file as written by a clinical committee (`pathways/vcf.json`), validated against
//! `schemas/pathway.schema.json` before it is read into these types.

use super::value_set::ValueSetDef;
use crate::decision::{ActionKind, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathwayDocument {
    pub id: String,
    pub version: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Sources by key, e.g. `"cdc-2022": "CDC Clinical Practice Guideline for Prescribing
    /// Opioids for Pain, 2022"`. Rules cite keys; cards show the names.
    #[serde(default)]
    pub citations: BTreeMap<String, String>,
    #[serde(default)]
    pub value_sets: BTreeMap<String, ValueSetDef>,
    pub rules: Vec<RuleDef>,
}

/// Whether a rule needs an active VCF diagnosis (`vcf`) or applies to every patient (`all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Vcf,
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleDef {
    /// Fixed id from pathway-spec.md (`VCF-BEDREST`, `DOSE-MME-90`, ...).
    pub id: String,
    /// The Rust rule kind that evaluates it.
    pub kind: String,
    pub severity: Severity,
    pub scope: Scope,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Kind-specific parameters (thresholds, value-set names, classes), checked by the kind.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Message variants by name; `default` is required. A kind chooses the variant
    /// (`within_limit`, `below_target`, `date_unknown`, ...).
    pub messages: BTreeMap<String, MessageDef>,
    #[serde(default)]
    pub citations: Vec<String>,
    #[serde(default)]
    pub suggestions: Vec<SuggestionDef>,
}

fn enabled_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDef {
    /// A variant may change the severity (e.g. the info reminder of VCF-BEDREST).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Under 140 characters once filled; `{name}` placeholders take the finding's numbers.
    pub summary: String,
    /// Markdown; placeholders as in `summary`.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionDef {
    /// `Arc`: every suggestion offered with a finding shares these with the plan.
    pub id: Arc<str>,
    pub label: Arc<str>,
    pub actions: Vec<ActionDef>,
}

/// What a suggestion does. `target: order` means the order the finding is about (delete it, or
/// update it with `patch`); `resource` is a FHIR resource template for `create`, in which the
/// string `{{patient}}` becomes the patient reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDef {
    #[serde(rename = "type")]
    pub kind: ActionKind,
    /// `Arc`: shared with every action offered, as the suggestion's label.
    pub description: Arc<str>,
    #[serde(default)]
    pub resource: Option<serde_json::Value>,
    #[serde(default)]
    pub target: Option<ActionTarget>,
    /// For `update`: fields merged into the target order (placeholders allowed).
    #[serde(default)]
    pub patch: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionTarget {
    Order,
}
