//! Value sets named by a pathway: code lists (exact codes, code prefixes such as ICD-10-CM
//! `M80.08`, code ranges such as `C00`–`C96`) and text phrases, so a concept matches by code or,
//! when its code is local or missing, by its words.

use crate::domain::codes::{Concept, normalize_text};
use serde::{Deserialize, Serialize};

/// How a listed code matches a concept's code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeMatch {
    #[default]
    Exact,
    Prefix,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeEntry {
    pub system: String,
    pub code: String,
    #[serde(default, rename = "match")]
    pub match_kind: CodeMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRange {
    pub system: String,
    /// Inclusive bounds compared on the code's first `from.len()` characters ("C00".."C96").
    pub from: String,
    pub to: String,
}

/// A value set as written in the pathway file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSetDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<CodeEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<CodeRange>,
    /// Phrases matched against the concept's text and displays, whole words, case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<String>,
}

/// A compiled value set: codes normalized once, phrases normalized once.
#[derive(Debug, Clone)]
pub struct ValueSet {
    pub name: String,
    exact: Vec<(String, String)>,
    prefixes: Vec<(String, String)>,
    ranges: Vec<(String, String, String)>,
    phrases: Vec<String>,
}

/// A code's bytes as [`normalize_code`] would give them, without allocating.
fn code_chars(code: &str) -> impl Iterator<Item = u8> + '_ {
    trim_code(code)
        .bytes()
        .filter(|b| *b != b'.')
        .map(|b| b.to_ascii_uppercase())
}

/// `code.trim()`, without decoding: a code that starts and ends with an ASCII letter or digit
/// (nearly every code) has no whitespace to trim at either end.
fn trim_code(code: &str) -> &str {
    let bytes = code.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(a), Some(b)) if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => code,
        _ => code.trim(),
    }
}

fn starts_with(mut code: impl Iterator<Item = u8>, prefix: &str) -> bool {
    prefix.bytes().all(|p| code.next() == Some(p))
}

/// ICD-10-CM codes arrive with and without the dot ("M80.08XA", "M8008XA"): compare without it.
fn normalize_code(code: &str) -> String {
    code.trim().replace('.', "").to_ascii_uppercase()
}

impl ValueSet {
    pub fn compile(name: &str, def: &ValueSetDef) -> ValueSet {
        ValueSet {
            name: name.to_owned(),
            exact: def
                .codes
                .iter()
                .filter(|c| c.match_kind == CodeMatch::Exact)
                .map(|c| (c.system.clone(), normalize_code(&c.code)))
                .collect(),
            prefixes: def
                .codes
                .iter()
                .filter(|c| c.match_kind == CodeMatch::Prefix)
                .map(|c| (c.system.clone(), normalize_code(&c.code)))
                .collect(),
            ranges: def
                .ranges
                .iter()
                .map(|r| {
                    (
                        r.system.clone(),
                        normalize_code(&r.from),
                        normalize_code(&r.to),
                    )
                })
                .collect(),
            phrases: def
                .texts
                .iter()
                .map(|t| normalize_text(t))
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }

    /// Whether any coding of the concept is in the set by code.
    pub fn contains_code(&self, concept: &Concept) -> bool {
        // Called for every order and diagnosis against several sets per evaluation: compare
        // without allocating (the listed codes were normalized once, at compile time).
        concept.codings.iter().any(|coding| {
            let Some(system) = coding.system.as_deref() else {
                return false;
            };
            let code = || code_chars(&coding.code);
            self.exact
                .iter()
                .any(|(s, c)| s == system && code().eq(c.bytes()))
                || self
                    .prefixes
                    .iter()
                    .any(|(s, p)| s == system && starts_with(code(), p))
                || self.ranges.iter().any(|(s, from, to)| {
                    let mut head = [0u8; 8];
                    let len = from.len().min(head.len());
                    let mut taken = 0;
                    for (slot, byte) in head.iter_mut().zip(code().take(len)) {
                        *slot = byte;
                        taken += 1;
                    }
                    let head = &head[..taken];
                    s == system && taken == len && head >= from.as_bytes() && head <= to.as_bytes()
                })
        })
    }

    /// Whether the concept's text or a display contains one of the phrases as whole words.
    pub fn contains_text(&self, concept: &Concept) -> bool {
        if self.phrases.is_empty() {
            return false;
        }
        // The concept normalizes its texts once (several sets read them per evaluation).
        concept.normalized_texts().iter().any(|text| {
            self.phrases
                .iter()
                .any(|phrase| contains_words(text, phrase))
        })
    }

    /// By code, else by text.
    pub fn contains(&self, concept: &Concept) -> bool {
        self.contains_code(concept) || self.contains_text(concept)
    }
}

/// `phrase` occurs in `text` starting and ending at word boundaries (both normalized).
pub fn contains_words(text: &str, phrase: &str) -> bool {
    // Order texts are short: a plain scan beats building a substring searcher per call.
    let (text, phrase) = (text.as_bytes(), phrase.as_bytes());
    if phrase.is_empty() || phrase.len() > text.len() {
        return false;
    }
    (0..=text.len() - phrase.len()).any(|at| {
        let end = at + phrase.len();
        (at == 0 || text[at - 1] == b' ')
            && (end == text.len() || text[end] == b' ')
            && &text[at..end] == phrase
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::system;

    fn set() -> ValueSet {
        ValueSet::compile(
            "test",
            &ValueSetDef {
                codes: vec![
                    CodeEntry {
                        system: system::ICD10CM.into(),
                        code: "M80.08".into(),
                        match_kind: CodeMatch::Prefix,
                        display: None,
                    },
                    CodeEntry {
                        system: system::SNOMED.into(),
                        code: "59394003".into(),
                        match_kind: CodeMatch::Exact,
                        display: None,
                    },
                ],
                ranges: vec![CodeRange {
                    system: system::ICD10CM.into(),
                    from: "C00".into(),
                    to: "C96".into(),
                }],
                texts: vec!["bed rest".into(), "bedrest".into()],
                ..ValueSetDef::default()
            },
        )
    }

    #[test]
    fn matches_prefix_with_or_without_the_dot() {
        let s = set();
        assert!(s.contains(&Concept::coded(system::ICD10CM, "M80.08XA", None)));
        assert!(s.contains(&Concept::coded(system::ICD10CM, "M8008XA", None)));
        assert!(!s.contains(&Concept::coded(system::ICD10CM, "M80.07XA", None)));
        assert!(
            !s.contains(&Concept::coded(system::SNOMED, "M80.08XA", None)),
            "system must match"
        );
    }

    #[test]
    fn matches_ranges_inclusively() {
        let s = set();
        assert!(s.contains(&Concept::coded(system::ICD10CM, "C00.1", None)));
        assert!(s.contains(&Concept::coded(system::ICD10CM, "C96.9", None)));
        assert!(s.contains(&Concept::coded(system::ICD10CM, "C50.911", None)));
        assert!(!s.contains(&Concept::coded(system::ICD10CM, "D00.0", None)));
    }

    proptest::proptest! {
        #[test]
        fn codes_trim_as_str_trim(code in "[ \t\u{a0}\u{2003}]{0,2}[a-zA-Z0-9.é ]{0,6}[ \t\u{a0}\u{3000}]{0,2}") {
            proptest::prop_assert_eq!(trim_code(&code), code.trim());
        }
    }

    #[test]
    fn matches_text_on_word_boundaries() {
        let s = set();
        assert!(s.contains(&Concept::from_text("Strict BED-REST x 72h")));
        assert!(s.contains(&Concept::from_text("complete bedrest")));
        assert!(!s.contains(&Concept::from_text("bed restraint")));
        assert!(!s.contains(&Concept::from_text("ambulate")));
    }
}
