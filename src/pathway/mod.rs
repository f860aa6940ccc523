//! Pathways as data: a JSON file validated against `schemas/pathway.schema.json`, then compiled
//! once into an immutable [`Plan`] that the engine evaluates. The plan carries the pathway's id,
//! version and the SHA-256 of its canonical bytes, which every decision records.

pub mod document;
pub mod value_set;

pub use document::{ActionDef, MessageDef, PathwayDocument, RuleDef, Scope, SuggestionDef};
pub use value_set::{ValueSet, ValueSetDef};

use crate::decision::{ActionKind, PathwayRef, Severity};
use crate::engine::emit::{MessageTemplate, Template};
use crate::engine::facts::EngineSet;
use crate::engine::rules::{self, RuleKind};
use document::ActionTarget;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, LazyLock};
use thiserror::Error;

/// The shipped VCF pathway, embedded so the binary always has a default.
pub const BUILTIN_VCF: &str = include_str!("../../pathways/vcf.json");
const PATHWAY_SCHEMA: &str = include_str!("../../schemas/pathway.schema.json");

static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(PATHWAY_SCHEMA).expect("pathway schema is valid JSON");
    jsonschema::validator_for(&schema).expect("pathway schema compiles")
});

/// One problem found in a pathway file, with the JSON path it concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LintError {
    /// JSON pointer into the pathway file, e.g. `/rules/3/params/max_hours`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for LintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

#[derive(Debug, Error)]
pub enum PathwayError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{} problem(s) in the pathway:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<LintError>),
}

impl PathwayError {
    pub fn lint_errors(&self) -> Vec<LintError> {
        match self {
            PathwayError::Invalid(errors) => errors.clone(),
            PathwayError::Json {
                line,
                column,
                message,
            } => vec![LintError {
                path: String::new(),
                message: format!("not valid JSON at line {line}, column {column}: {message}"),
            }],
            PathwayError::Io { path, source } => {
                vec![LintError {
                    path: String::new(),
                    message: format!("cannot read {path}: {source}"),
                }]
            }
        }
    }
}

/// A compiled rule: its data (texts, suggestions, severity) and the kind's compiled parameters.
#[derive(Debug)]
pub struct CompiledRule {
    /// Shared with every finding of the rule.
    pub id: Arc<str>,
    /// The rule's place among the plan's distinct rule ids in id order: the engine sorts
    /// findings by this number instead of comparing the ids' text (`Sink::finish`).
    pub id_rank: u32,
    pub severity: Severity,
    pub scope: Scope,
    /// The message variants, `default` first: a rule has one to three, so a finding finds
    /// its variant by comparing a name or two, where two string-keyed maps (the texts and
    /// their templates) cost a search each.
    pub messages: Vec<CompiledMessage>,
    pub suggestions: Vec<CompiledSuggestion>,
    /// Citation names (resolved from keys), in the rule's order; each finding shares the list.
    pub citations: Arc<[Arc<str>]>,
    /// What every finding's detail ends with: "\n\nSource: a; b." (empty without citations).
    pub citation_note: String,
    pub kind: Box<dyn RuleKind>,
}

/// A message variant of a rule, its texts split into templates when the plan compiles.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledMessage {
    /// The variant's name (`default`, `naloxone_on_hand`, ...).
    pub name: Box<str>,
    /// A variant may change the severity (e.g. the info reminder of VCF-BEDREST).
    pub severity: Option<Severity>,
    /// The summary and the detail as a finding's text is written from them (the summary,
    /// clipped, then the detail). The detail is followed by the rule's citation note
    /// ([`CompiledRule::citation_note`]) as literal text: every finding's detail ends with it,
    /// and a literal of its own was a copy (a `memcpy` call) per finding.
    pub texts: MessageTemplate,
}

impl CompiledMessage {
    /// The variants of `messages`, `default` first, the others in name order; each detail
    /// followed by `citation_note`.
    pub(crate) fn compile_all(
        messages: &BTreeMap<String, MessageDef>,
        citation_note: &str,
    ) -> Vec<CompiledMessage> {
        let (default, others): (Vec<_>, Vec<_>) =
            messages.iter().partition(|(name, _)| *name == "default");
        default
            .into_iter()
            .chain(others)
            .map(|(name, m)| {
                let summary = Template::compile(&m.summary);
                let detail = Template::compile(&m.detail).followed_by(citation_note);
                CompiledMessage {
                    name: name.as_str().into(),
                    severity: m.severity,
                    texts: MessageTemplate::new(&summary, &detail),
                }
            })
            .collect()
    }
}

/// A rule's suggestion as its findings offer it: the texts and resource templates are the
/// plan's, shared with every finding (`Arc`), not copied per finding.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledSuggestion {
    pub id: Arc<str>,
    pub label: Arc<str>,
    /// `label` split into a template when it has a `{`, else `None` (shared as it is).
    pub label_template: Option<Template>,
    pub actions: Vec<CompiledAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompiledAction {
    pub kind: ActionKind,
    pub description: Arc<str>,
    /// `description` split into a template when it has a `{`, else `None`.
    pub description_template: Option<Template>,
    pub target: Option<ActionTarget>,
    /// The resource template of a create, the patch of an update (none for a delete).
    pub resource: Option<Arc<Value>>,
    /// The `{name}` placeholders in `resource`'s strings (not `{{patient}}`). A finding with
    /// a value for one of them fills its own copy; the others (in this pathway, every create:
    /// their only `{...}` besides the patient are UCUM units such as `{tablet}`) share the
    /// template, and the patient is filled in when the action is rendered
    /// ([`crate::decision::Resource`]).
    pub placeholders: Vec<String>,
}

impl CompiledSuggestion {
    fn compile(def: &SuggestionDef) -> CompiledSuggestion {
        CompiledSuggestion {
            id: def.id.clone(),
            label: def.label.clone(),
            label_template: Template::compile_if_placeholders(&def.label),
            actions: def
                .actions
                .iter()
                .map(|a| {
                    let resource = match a.kind {
                        ActionKind::Create => a.resource.clone(),
                        ActionKind::Update => a.patch.clone(),
                        ActionKind::Delete => None,
                    };
                    CompiledAction {
                        kind: a.kind,
                        description: a.description.clone(),
                        description_template: Template::compile_if_placeholders(&a.description),
                        target: a.target,
                        placeholders: resource
                            .as_ref()
                            .map(crate::engine::emit::placeholder_names)
                            .unwrap_or_default(),
                        resource: resource.map(Arc::new),
                    }
                })
                .collect(),
        }
    }
}

/// An immutable, compiled pathway. Cheap to share (`Arc<Plan>`); swapped whole on reload.
#[derive(Debug)]
pub struct Plan {
    pub reference: PathwayRef,
    pub title: String,
    pub rules: Vec<CompiledRule>,
    /// `rules` indices by rule severity (most severe first), then rule id: see
    /// [`Plan::rules_in_evaluation_order`].
    evaluation_order: Vec<usize>,
    pub value_sets: Vec<ValueSet>,
    value_set_index: HashMap<String, usize>,
    /// Where each [`EngineSet`] is in `value_sets` (`engine_sets[set as usize]`).
    engine_sets: [ValueSetId; EngineSet::ALL.len()],
    pub document: PathwayDocument,
    /// The pathway's canonical JSON bytes, the ones `reference.content_hash` is computed over:
    /// what `pathway_versions.content` stores, so the plan can be rebuilt exactly.
    pub content: Arc<[u8]>,
}

/// Handle to a value set inside a plan, resolved at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSetId(pub usize);

impl Plan {
    /// The rules by severity (most severe first), then id: the order the engine evaluates
    /// them in. Findings then mostly arrive in the order they are sorted into
    /// (`Sink::finish`), which leaves the sort little to move; the order of evaluation changes
    /// nothing else (rules are pure and read only the shared facts). `rules` keeps the
    /// pathway's own order for lint and listings.
    pub fn rules_in_evaluation_order(&self) -> impl Iterator<Item = &CompiledRule> {
        self.evaluation_order.iter().map(|&ix| &self.rules[ix])
    }

    /// Loads, validates and compiles a pathway file.
    pub fn from_path(path: &Path) -> Result<Plan, PathwayError> {
        let text = std::fs::read_to_string(path).map_err(|source| PathwayError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Plan::from_json(&text)
    }

    /// The shipped VCF pathway (compiled once per process).
    pub fn builtin() -> Arc<Plan> {
        static BUILTIN: LazyLock<Arc<Plan>> = LazyLock::new(|| {
            Arc::new(
                Plan::from_json(BUILTIN_VCF)
                    .unwrap_or_else(|e| panic!("shipped pathway is invalid: {e}")),
            )
        });
        BUILTIN.clone()
    }

    pub fn from_json(text: &str) -> Result<Plan, PathwayError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PathwayError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Plan::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Plan, PathwayError> {
        let schema_errors: Vec<LintError> = SCHEMA
            .iter_errors(&value)
            .map(|e| LintError {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect();
        if !schema_errors.is_empty() {
            return Err(PathwayError::Invalid(schema_errors));
        }
        let content = crate::canonical::to_vec(&value);
        let content_hash = crate::canonical::bytes_sha256_hex(&content);
        let document: PathwayDocument = serde_json::from_value(value).map_err(|e| {
            PathwayError::Invalid(vec![LintError {
                path: String::new(),
                message: e.to_string(),
            }])
        })?;
        compile(document, content_hash, content.into())
    }

    pub fn value_set(&self, id: ValueSetId) -> &ValueSet {
        &self.value_sets[id.0]
    }

    /// A value set the engine itself reads (every compiled plan has them all).
    pub fn engine_set(&self, set: EngineSet) -> &ValueSet {
        &self.value_sets[self.engine_sets[set as usize].0]
    }

    pub fn value_set_id(&self, name: &str) -> Option<ValueSetId> {
        self.value_set_index.get(name).copied().map(ValueSetId)
    }
}

/// What a rule kind may ask of the pathway while it compiles its parameters.
pub struct CompileContext<'a> {
    value_set_index: &'a HashMap<String, usize>,
    rule_path: String,
    errors: Vec<LintError>,
}

impl CompileContext<'_> {
    /// Resolves a value-set name, recording a lint error (at the rule's params) when unknown.
    pub fn value_set(&mut self, param: &str, name: &str) -> Option<ValueSetId> {
        match self.value_set_index.get(name) {
            Some(&ix) => Some(ValueSetId(ix)),
            None => {
                self.error(param, format!("unknown value set {name:?}"));
                None
            }
        }
    }

    /// Records a semantic error about parameter `param` of the rule being compiled.
    pub fn error(&mut self, param: &str, message: impl Into<String>) {
        let path = if param.is_empty() {
            format!("{}/params", self.rule_path)
        } else {
            format!("{}/params/{}", self.rule_path, param)
        };
        self.errors.push(LintError {
            path,
            message: message.into(),
        });
    }
}

fn compile(
    document: PathwayDocument,
    content_hash: String,
    content: Arc<[u8]>,
) -> Result<Plan, PathwayError> {
    let mut errors = Vec::new();
    let value_sets = ValueSet::compile_all(
        document
            .value_sets
            .iter()
            .map(|(name, def)| (name.as_str(), def)),
    );
    let value_set_index: HashMap<String, usize> = value_sets
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.clone(), i))
        .collect();

    let mut engine_sets = Vec::with_capacity(EngineSet::ALL.len());
    for set in EngineSet::ALL {
        match value_set_index.get(set.name()) {
            Some(&ix) => engine_sets.push(ValueSetId(ix)),
            None => errors.push(LintError {
                path: "/value_sets".into(),
                message: format!(
                    "the engine needs value set {:?} to decide when the pathway applies",
                    set.name()
                ),
            }),
        }
    }
    let mut seen = HashSet::new();
    let mut compiled = Vec::new();
    for (ix, rule) in document.rules.iter().enumerate() {
        let rule_path = format!("/rules/{ix}");
        if !seen.insert(rule.id.clone()) {
            errors.push(LintError {
                path: format!("{rule_path}/id"),
                message: format!("duplicate rule id {}", rule.id),
            });
        }
        if !rule.messages.contains_key("default") {
            errors.push(LintError {
                path: format!("{rule_path}/messages"),
                message: "a `default` message is required".into(),
            });
        }
        for (i, key) in rule.citations.iter().enumerate() {
            if !document.citations.contains_key(key) {
                errors.push(LintError {
                    path: format!("{rule_path}/citations/{i}"),
                    message: format!("unknown citation {key:?}"),
                });
            }
        }
        if rule.suggestions.len() > crate::engine::emit::MAX_SUGGESTIONS {
            errors.push(LintError {
                path: format!("{rule_path}/suggestions"),
                message: format!(
                    "at most {} suggestions per rule",
                    crate::engine::emit::MAX_SUGGESTIONS
                ),
            });
        }
        for (i, suggestion) in rule.suggestions.iter().enumerate() {
            for (j, action) in suggestion.actions.iter().enumerate() {
                let path = format!("{rule_path}/suggestions/{i}/actions/{j}");
                use crate::decision::ActionKind::*;
                let ok = match action.kind {
                    Create => action.resource.is_some(),
                    Delete => action.target.is_some(),
                    Update => action.target.is_some() && action.patch.is_some(),
                };
                if !ok {
                    errors.push(LintError {
                        path,
                        message: "create needs `resource`; delete needs `target`; update needs `target` and `patch`".into(),
                    });
                }
            }
        }
        let mut ctx = CompileContext {
            value_set_index: &value_set_index,
            rule_path: rule_path.clone(),
            errors: Vec::new(),
        };
        let kind = match rules::compile_kind(&rule.kind, &rule.params, &mut ctx) {
            Some(kind) => Some(kind),
            None if ctx.errors.is_empty() => {
                ctx.errors.push(LintError {
                    path: format!("{rule_path}/kind"),
                    message: format!(
                        "unknown rule kind {:?}; known kinds: {}",
                        rule.kind,
                        rules::kind_names().join(", ")
                    ),
                });
                None
            }
            None => None,
        };
        errors.append(&mut ctx.errors);
        if let (Some(kind), true) = (kind, rule.enabled) {
            let citations: Vec<Arc<str>> = rule
                .citations
                .iter()
                .filter_map(|k| document.citations.get(k).map(|c| Arc::from(c.as_str())))
                .collect();
            let citation_note = if citations.is_empty() {
                String::new()
            } else {
                format!("\n\nSource: {}.", citations.join("; "))
            };
            compiled.push(CompiledRule {
                id: Arc::from(rule.id.as_str()),
                // Set below, once every rule is compiled.
                id_rank: 0,
                severity: rule.severity,
                scope: rule.scope,
                messages: CompiledMessage::compile_all(&rule.messages, &citation_note),
                suggestions: rule
                    .suggestions
                    .iter()
                    .map(CompiledSuggestion::compile)
                    .collect(),
                citations: citations.into(),
                citation_note,
                kind,
            });
        }
    }
    let engine_sets = match engine_sets.try_into() {
        Ok(ids) if errors.is_empty() => ids,
        _ => return Err(PathwayError::Invalid(errors)),
    };
    let mut ids: Vec<Arc<str>> = compiled.iter().map(|r| r.id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    for rule in &mut compiled {
        let rank = ids
            .binary_search(&rule.id)
            .expect("every rule's id is among the ids");
        rule.id_rank = u32::try_from(rank).expect("fewer than 2^32 rules");
    }
    let mut evaluation_order: Vec<usize> = (0..compiled.len()).collect();
    evaluation_order.sort_by(|&a, &b| {
        let (a, b) = (&compiled[a], &compiled[b]);
        b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id))
    });
    Ok(Plan {
        reference: PathwayRef {
            id: document.id.clone(),
            version: document.version.clone(),
            content_hash,
        },
        title: document.title.clone(),
        rules: compiled,
        evaluation_order,
        value_sets,
        value_set_index,
        engine_sets,
        document,
        content,
    })
}

/// `orderguard pathway lint`: every problem in a pathway file (schema, then semantics).
pub fn lint(text: &str) -> Vec<LintError> {
    match Plan::from_json(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.lint_errors(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Value {
        serde_json::from_str(BUILTIN_VCF).unwrap()
    }

    fn lint_value(v: &Value) -> Vec<LintError> {
        lint(&serde_json::to_string(v).unwrap())
    }

    #[test]
    fn the_shipped_pathway_is_clean_and_hashed() {
        assert_eq!(lint(BUILTIN_VCF), vec![]);
        let plan = Plan::builtin();
        assert_eq!(plan.reference.id, "vcf");
        assert_eq!(plan.reference.content_hash.len(), 64);
        // The hash is over canonical bytes: re-indenting the file does not change it.
        let reformatted = serde_json::to_string(&shipped()).unwrap();
        assert_eq!(
            Plan::from_json(&reformatted)
                .unwrap()
                .reference
                .content_hash,
            plan.reference.content_hash
        );
    }

    #[test]
    fn schema_errors_carry_their_json_path() {
        let mut v = shipped();
        v["rules"][0]["severity"] = "severe".into();
        let errors = lint_value(&v);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "/rules/0/severity");
    }

    #[test]
    fn unknown_kind_value_set_and_wrong_unit_are_semantic_errors() {
        let mut v = shipped();
        v["rules"][0]["kind"] = "telepathy".into();
        let errors = lint_value(&v);
        assert_eq!(errors[0].path, "/rules/0/kind");
        assert!(errors[0].message.contains("unknown rule kind"));

        let mut v = shipped();
        v["rules"][0]["params"]["value_set"] = "no_such_set".into();
        let errors = lint_value(&v);
        assert_eq!(errors[0].path, "/rules/0/params/value_set");

        let mut v = shipped();
        v["rules"][0]["params"]["max_duration"]["unit"] = "mg".into();
        let errors = lint_value(&v);
        assert_eq!(errors[0].path, "/rules/0/params/max_duration/unit");
    }

    #[test]
    fn duplicate_ids_unknown_citations_and_missing_engine_sets_are_reported() {
        let mut v = shipped();
        let first = v["rules"][0].clone();
        v["rules"].as_array_mut().unwrap().push(first);
        // The copy is the last rule, whatever the number of shipped rules.
        let duplicate = format!("/rules/{}/id", v["rules"].as_array().unwrap().len() - 1);
        v["rules"][0]["citations"] = serde_json::json!(["nobody-2099"]);
        v["value_sets"].as_object_mut().unwrap().remove("lab_egfr");
        let paths: Vec<String> = lint_value(&v).into_iter().map(|e| e.path).collect();
        assert!(paths.contains(&duplicate), "{paths:?}");
        assert!(
            paths.contains(&"/rules/0/citations/0".to_owned()),
            "{paths:?}"
        );
        assert!(paths.contains(&"/value_sets".to_owned()), "{paths:?}");
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        let errors = lint("{\n  \"id\": \"vcf\",\n}");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("line 3"),
            "{}",
            errors[0].message
        );
    }
}
