//! Value sets named by a pathway: code lists (exact codes, code prefixes such as ICD-10-CM
//! `M80.08`, code ranges such as `C00`–`C96`) and text phrases, so a concept matches by code or,
//! when its code is local or missing, by its words.

use crate::domain::codes::{
    Concept, for_each_word_if_normal_but_case, normalize_text, normalize_text_onto,
};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A compiled value set: codes normalized once, phrases normalized once. A set compiled with
/// the other sets of its plan answers from the plan's [`Membership`] index: one bit of the
/// concept's membership bits, found once per concept for every set.
#[derive(Debug, Clone)]
pub struct ValueSet {
    pub name: String,
    exact: Vec<(String, String)>,
    prefixes: Vec<(String, String)>,
    ranges: Vec<(String, String, String)>,
    phrases: Vec<String>,
    /// The plan's index and this set's bit in it; `None` for a set past the 63rd of its plan,
    /// which is checked by scanning its own lists.
    membership: Option<(Arc<Membership>, u64)>,
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

/// A range's bounds compare the code's first `from.len()` bytes, at most this many.
const RANGE_HEAD_MAX: usize = 8;

impl ValueSet {
    /// One set on its own (with an index of its own).
    pub fn compile(name: &str, def: &ValueSetDef) -> ValueSet {
        ValueSet::compile_all([(name, def)])
            .pop()
            .expect("one set in, one set out")
    }

    /// A plan's value sets, in order, sharing one membership index.
    pub fn compile_all<'d>(
        defs: impl IntoIterator<Item = (&'d str, &'d ValueSetDef)>,
    ) -> Vec<ValueSet> {
        let mut sets: Vec<ValueSet> = defs
            .into_iter()
            .map(|(name, def)| ValueSet::compile_alone(name, def))
            .collect();
        let membership = Arc::new(Membership::build(&sets));
        for (i, set) in sets.iter_mut().enumerate().take(Membership::MAX_SETS) {
            set.membership = Some((membership.clone(), 1 << i));
        }
        sets
    }

    fn compile_alone(name: &str, def: &ValueSetDef) -> ValueSet {
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
            membership: None,
        }
    }

    /// Whether any coding of the concept is in the set by code. Inlined, as is the cached
    /// answer it nearly always gives (see `ValueSetCache::get`).
    #[inline]
    pub fn contains_code(&self, concept: &Concept) -> bool {
        match &self.membership {
            Some((index, bit)) => index.by_code(concept) & bit != 0,
            None => self.scan_codes(concept),
        }
    }

    /// Whether the concept's text or a display contains one of the phrases as whole words.
    #[inline]
    pub fn contains_text(&self, concept: &Concept) -> bool {
        // A set without phrases never reads (nor normalizes) the concept's texts.
        if self.phrases.is_empty() {
            return false;
        }
        match &self.membership {
            Some((index, bit)) => index.by_text(concept) & bit != 0,
            None => self.scan_texts(concept),
        }
    }

    /// By code, else by text.
    pub fn contains(&self, concept: &Concept) -> bool {
        self.contains_code(concept) || self.contains_text(concept)
    }

    /// [`ValueSet::contains_code`] by scanning this set's own codes: for a set past the
    /// index's 63 bits, and the reference the index is tested against.
    fn scan_codes(&self, concept: &Concept) -> bool {
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
                    let mut head = [0u8; RANGE_HEAD_MAX];
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

    /// [`ValueSet::contains_text`] by scanning this set's own phrases (as [`scan_codes`]).
    fn scan_texts(&self, concept: &Concept) -> bool {
        let mut found = false;
        concept.for_each_normalized_text(&mut String::new(), |text| {
            found = found
                || self
                    .phrases
                    .iter()
                    .any(|phrase| contains_words(text, phrase));
        });
        found
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

/// Every value set of a plan in one index, so that a concept is looked up once for all of
/// them: its codes by system (exact codes by hash, then the system's prefixes and
/// ranges), its normalized texts word by word against every set's phrases at once. The result
/// is a bit per set, cached in the concept ([`Concept::value_set_cache`]): each later
/// `contains` is a bit test. Rules ask several sets about the same order or diagnosis, and
/// scanning set by set repeated the same comparisons for each.
#[derive(Debug)]
pub struct Membership {
    /// Unique per index (process-wide), so a concept's cache from another plan is not read.
    key: u64,
    systems: Vec<SystemCodes>,
    /// Distinct phrases of every set with the sets that list them, sorted by first byte.
    phrases: Vec<(String, u64)>,
    /// `phrases[phrase_starts[b]..phrase_starts[b + 1]]` are the phrases starting with byte `b`.
    phrase_starts: Box<[u32; 257]>,
}

/// Exact codes (normalized) with the bits of the sets that list them. foldhash with its fixed
/// seed, as the terminology's tables: the table holds the pathway's own codes, which input
/// only looks up.
type CodeBits = HashMap<Box<[u8]>, u64, foldhash::fast::FixedState>;

/// One code system's codes across the sets, each with the bits of the sets that list it.
#[derive(Debug)]
struct SystemCodes {
    system: String,
    /// Each code with the sets that list it, by hash: a concept's code is looked up once per
    /// plan, and a binary search over the codes compared about five codes byte by byte.
    exact: CodeBits,
    /// The non-empty prefixes, sorted, so that those starting with byte `b` are
    /// `prefixes[prefix_starts[b]..prefix_starts[b + 1]]`: a code is compared only with the
    /// prefixes that share its first byte (ICD-10-CM has 22, nearly all different there).
    prefixes: Vec<(String, u64)>,
    prefix_starts: Box<[u32; 257]>,
    /// The sets with an empty prefix, which starts every code.
    every_code: u64,
    /// (from, to) bounds as in [`CodeRange`].
    ranges: Vec<((String, String), u64)>,
}

impl Membership {
    /// The sets a concept's cache has bits for (bit 63 is its "known" mark); later sets
    /// scan their own lists.
    pub const MAX_SETS: usize = 63;

    fn build(sets: &[ValueSet]) -> Membership {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        let mut systems: Vec<SystemCodes> = Vec::new();
        let mut phrases: Vec<(String, u64)> = Vec::new();
        fn add<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K, bit: u64) {
            match list.iter_mut().find(|(k, _)| *k == key) {
                Some((_, bits)) => *bits |= bit,
                None => list.push((key, bit)),
            }
        }
        fn system<'s>(systems: &'s mut Vec<SystemCodes>, name: &str) -> &'s mut SystemCodes {
            let at = match systems.iter().position(|s| s.system == name) {
                Some(at) => at,
                None => {
                    systems.push(SystemCodes {
                        system: name.to_owned(),
                        exact: CodeBits::default(),
                        prefixes: Vec::new(),
                        prefix_starts: Box::new([0; 257]),
                        every_code: 0,
                        ranges: Vec::new(),
                    });
                    systems.len() - 1
                }
            };
            &mut systems[at]
        }
        for (i, set) in sets.iter().enumerate().take(Self::MAX_SETS) {
            let bit = 1u64 << i;
            for (s, code) in &set.exact {
                *system(&mut systems, s)
                    .exact
                    .entry(code.as_bytes().into())
                    .or_default() |= bit;
            }
            for (s, prefix) in &set.prefixes {
                let codes = system(&mut systems, s);
                if prefix.is_empty() {
                    codes.every_code |= bit;
                } else {
                    add(&mut codes.prefixes, prefix.clone(), bit);
                }
            }
            for (s, from, to) in &set.ranges {
                let range = (from.clone(), to.clone());
                add(&mut system(&mut systems, s).ranges, range, bit);
            }
            for phrase in &set.phrases {
                add(&mut phrases, phrase.clone(), bit);
            }
        }
        for codes in &mut systems {
            codes.prefixes.sort_by(|a, b| a.0.cmp(&b.0));
            codes.prefix_starts = first_byte_starts(&codes.prefixes);
        }
        // Sorting by the whole phrase groups them by first byte.
        phrases.sort_by(|a, b| a.0.cmp(&b.0));
        // Phrases are never empty (empty ones are dropped when a set compiles).
        let phrase_starts = first_byte_starts(&phrases);
        Membership {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            systems,
            phrases,
            phrase_starts,
        }
    }

    /// The sets that list one of the concept's codings, cached in the concept.
    #[inline]
    fn by_code(&self, concept: &Concept) -> u64 {
        let cache = concept.value_set_cache();
        cache.by_code(self.key, || self.code_bits(concept))
    }

    /// The sets with a phrase in one of the concept's texts, cached in the concept.
    #[inline]
    fn by_text(&self, concept: &Concept) -> u64 {
        let cache = concept.value_set_cache();
        cache.by_text(self.key, || self.text_bits(concept))
    }

    fn code_bits(&self, concept: &Concept) -> u64 {
        let mut bits = 0;
        for coding in &concept.codings {
            let Some(system) = coding.system.as_deref() else {
                continue;
            };
            let Some(codes) = self.systems.iter().find(|s| s.system == system) else {
                continue;
            };
            // The code as `normalize_code` gives it, on the stack: codes are short.
            let mut buffer = [0u8; 32];
            let long: Vec<u8>;
            let trimmed = trim_code(&coding.code);
            let code: &[u8] = if trimmed.len() <= buffer.len() {
                let mut len = 0;
                for byte in code_chars(trimmed) {
                    buffer[len] = byte;
                    len += 1;
                }
                &buffer[..len]
            } else {
                long = code_chars(trimmed).collect();
                &long
            };
            bits |= codes.bits_of(code);
        }
        bits
    }

    /// Each text read where it is when it is normal but for its case (nearly every service
    /// and diagnosis text: "Strict bed rest"), comparing phrases without case; any other text
    /// normalized first, into a buffer, and read as before.
    fn text_bits(&self, concept: &Concept) -> u64 {
        let mut bits = 0;
        for text in concept.texts() {
            bits |= match self.bits_in_place(text) {
                Some(found) => found,
                None => self.bits_normalizing(text),
            };
        }
        bits
    }

    /// The sets with a phrase in `text`, read in place, when the text is normal but for its
    /// case (`None` otherwise), comparing its bytes with bit 0x20 set. That is a kept byte's
    /// lower case (letters, digits, '.', '/', '%' all have it set), and a phrase is normalized,
    /// so lower case: a text byte `a` matches a phrase byte `b` when `a | 0x20 == b`, that is
    /// when `a` is `b` or its upper case, or else a byte (a control byte, non-ASCII) that makes
    /// the text not normal, whose bits are then thrown away. The text's words start where its
    /// normalized (lower-cased) copy's do.
    fn bits_in_place(&self, text: &str) -> Option<u64> {
        let mut bits = 0;
        let normal = for_each_word_if_normal_but_case(text, |at| {
            bits |= self.bits_at(text.as_bytes(), at, |byte| byte | 0x20);
        });
        normal.then_some(bits)
    }

    /// [`Membership::bits_in_place`] for a text that is not normal: normalized into one buffer
    /// per thread (each concept's texts are read once, and a buffer per concept was an
    /// allocation and a free for that one reading), then read word by word.
    fn bits_normalizing(&self, text: &str) -> u64 {
        thread_local! {
            static NORMALIZED: RefCell<String> = const { RefCell::new(String::new()) };
        }
        NORMALIZED.with_borrow_mut(|buffer| {
            buffer.clear();
            normalize_text_onto(buffer, text);
            let bits = self.bits_in_normalized(buffer.as_bytes());
            // An unusually long text does not keep its buffer for the thread's life.
            if buffer.capacity() > 4096 {
                *buffer = String::new();
            }
            bits
        })
    }

    /// The sets with a phrase in a normalized `text`, at each word start: the start of the
    /// text and each byte after a space (normalized text has single spaces, none at either end).
    fn bits_in_normalized(&self, text: &[u8]) -> u64 {
        let mut bits = 0;
        let mut at = 0;
        while at < text.len() {
            bits |= self.bits_at(text, at, |byte| byte);
            at = match text[at..].iter().position(|&b| b == b' ') {
                Some(space) => at + space + 1,
                None => text.len(),
            };
        }
        bits
    }

    /// The sets with a phrase starting at word start `at` of `text` and ending at a word
    /// boundary, each text byte read through `fold` (as it is, or with its case folded) and
    /// compared with the phrase's. Only the phrases starting with the text's (folded) byte
    /// there are looked at.
    #[inline(always)]
    fn bits_at(&self, text: &[u8], at: usize, fold: impl Fn(u8) -> u8) -> u64 {
        let first = usize::from(fold(text[at]));
        let (from, to) = (
            self.phrase_starts[first] as usize,
            self.phrase_starts[first + 1] as usize,
        );
        let mut bits = 0;
        for (phrase, phrase_bits) in &self.phrases[from..to] {
            // The word boundary where the phrase would end first: one byte read rules out
            // most phrases before their bytes are compared.
            let end = at + phrase.len();
            let ends_a_word = end == text.len() || text.get(end) == Some(&b' ');
            if ends_a_word
                && text[at..end]
                    .iter()
                    .zip(phrase.as_bytes())
                    .all(|(&a, &b)| fold(a) == b)
            {
                bits |= phrase_bits;
            }
        }
        bits
    }

    /// How the texts were read before every text was normalized first, into one buffer: the
    /// oracle of `texts_read_in_place_give_the_bits_of_normalized_texts`.
    #[cfg(test)]
    fn text_bits_normalizing_first(&self, concept: &Concept) -> u64 {
        let mut bits = 0;
        concept.for_each_normalized_text(&mut String::new(), |text| {
            let text = text.as_bytes();
            let mut at = 0;
            while let Some(&first) = text.get(at) {
                let (from, to) = (
                    self.phrase_starts[usize::from(first)] as usize,
                    self.phrase_starts[usize::from(first) + 1] as usize,
                );
                for (phrase, phrase_bits) in &self.phrases[from..to] {
                    let end = at + phrase.len();
                    let ends_a_word = end == text.len() || text.get(end) == Some(&b' ');
                    if ends_a_word && text[at..end] == *phrase.as_bytes() {
                        bits |= phrase_bits;
                    }
                }
                at = match text[at..].iter().position(|&b| b == b' ') {
                    Some(space) => at + space + 1,
                    None => text.len(),
                };
            }
        });
        bits
    }
}

/// For keys sorted by their bytes, none empty: entry `b` is the index of the first key whose
/// first byte is at least `b` (entry 256 is the length), so the keys starting with `b` are
/// `keys[starts[b]..starts[b + 1]]`.
fn first_byte_starts(keys: &[(String, u64)]) -> Box<[u32; 257]> {
    let mut starts = Box::new([0u32; 257]);
    for (b, start) in starts.iter_mut().enumerate() {
        let first_at_least = keys.partition_point(|(k, _)| usize::from(k.as_bytes()[0]) < b);
        *start = u32::try_from(first_at_least).expect("fewer than 2^32 keys");
    }
    starts
}

impl SystemCodes {
    /// The sets that list `code` (normalized) in this system, exactly, by prefix or by range.
    fn bits_of(&self, code: &[u8]) -> u64 {
        let mut bits = self.exact.get(code).copied().unwrap_or(0) | self.every_code;
        if let Some(&first) = code.first() {
            let (from, to) = (
                self.prefix_starts[usize::from(first)] as usize,
                self.prefix_starts[usize::from(first) + 1] as usize,
            );
            for (prefix, prefix_bits) in &self.prefixes[from..to] {
                let prefix = prefix.as_bytes();
                if prefix.len() <= code.len() && prefix.iter().zip(code).all(|(p, c)| p == c) {
                    bits |= prefix_bits;
                }
            }
        }
        for ((from, to), range_bits) in &self.ranges {
            let len = from.len().min(RANGE_HEAD_MAX);
            if let Some(head) = code.get(..len)
                && head >= from.as_bytes()
                && head <= to.as_bytes()
            {
                bits |= range_bits;
            }
        }
        bits
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::{Coding, system};

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

    /// Value sets from a small alphabet, so that codes, prefixes, ranges and phrases of
    /// different sets overlap and the concepts below often hit them.
    fn value_set_defs() -> impl proptest::strategy::Strategy<Value = Vec<ValueSetDef>> {
        use proptest::prelude::*;
        let system = prop_oneof![Just("a"), Just("b"), Just("c")];
        let code = "[ ]?[AbC1.]{0,4}[ ]?";
        let entry =
            (system.clone(), code, proptest::bool::ANY).prop_map(|(s, c, prefix)| CodeEntry {
                system: s.into(),
                code: c,
                match_kind: if prefix {
                    CodeMatch::Prefix
                } else {
                    CodeMatch::Exact
                },
                display: None,
            });
        let range = (system, "[ABC1]{1,3}", "[ABC1]{1,3}").prop_map(|(s, from, to)| CodeRange {
            system: s.into(),
            from,
            to,
        });
        let def = (
            proptest::collection::vec(entry, 0..4),
            proptest::collection::vec(range, 0..2),
            proptest::collection::vec(
                "(bed|rest|x-ray|mri|a|2.5|b/%){1,3}( (bed|rest|mri|a|2.5)){0,2}| ",
                0..3,
            ),
        )
            .prop_map(|(codes, ranges, texts)| ValueSetDef {
                codes,
                ranges,
                texts,
                ..ValueSetDef::default()
            });
        proptest::collection::vec(def, 1..6)
    }

    fn concepts() -> impl proptest::strategy::Strategy<Value = Concept> {
        use proptest::prelude::*;
        let coding = (
            proptest::option::of(prop_oneof![Just("a"), Just("b"), Just("d")]),
            "[ ]?[aAbBC1.]{0,5}[ ]?",
            proptest::option::of("(Bed|rest|x ray|MRI|a|bedrest){1,3}"),
        )
            .prop_map(|(system, code, display)| Coding {
                system: system.map(crate::domain::System::new),
                code,
                display,
            });
        (
            proptest::collection::vec(coding, 0..3),
            proptest::option::of("((BED|rest|X-ray|mri|a|-) ?){0,6}"),
        )
            .prop_map(|(codings, text)| Concept::new(codings, text))
    }

    proptest::proptest! {
        /// The plan-wide index answers as each set's own lists do, for every set, by code, by
        /// text and both, asked in any order (the concept caches its bits on the first ask).
        #[test]
        fn the_membership_index_answers_as_scanning_each_set(
            defs in value_set_defs(),
            concept in concepts(),
        ) {
            let names: Vec<String> = (0..defs.len()).map(|i| format!("set{i}")).collect();
            let sets = ValueSet::compile_all(names.iter().map(String::as_str).zip(&defs));
            for set in sets.iter().rev() {
                let by_text = !set.phrases.is_empty() && set.scan_texts(&concept);
                proptest::prop_assert_eq!(set.contains_text(&concept), by_text);
                proptest::prop_assert_eq!(set.contains_code(&concept), set.scan_codes(&concept));
                proptest::prop_assert_eq!(
                    set.contains(&concept),
                    set.scan_codes(&concept) || by_text
                );
            }
        }
    }

    /// Texts normal but for their case (capitalized, upper case, with digits and kept
    /// punctuation), and texts that are not: a leading, trailing or double space, a hyphen or
    /// comma, a non-ASCII letter, an empty text, any printable text.
    fn texts() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "(Bed|BED|rest|Rest|x|Ray|MRI|mri|a|A|bedrest|2.5|B/%)( (Bed|BED|rest|Rest|ray|MRI|mri|a|A|bedrest|x|2.5)){0,5}",
            "[ ]?((Bed|rest|X-ray|mri|a|é|É|,|-)[ ]{0,2}){0,6}",
            // Bytes that equal a kept byte but for bit 0x20 (0x0e for '.', 0x05 for '%').
            "((BED|rest|a|2|5|b)[\\x00-\\x1f]?[ ]?){0,5}",
            "\\PC{0,12}",
        ]
    }

    proptest::proptest! {
        /// Reading each text in place when it is normal but for its case finds the sets that
        /// normalizing every text first found.
        #[test]
        fn texts_read_in_place_give_the_bits_of_normalized_texts(
            defs in value_set_defs(),
            text in proptest::option::of(texts()),
            displays in proptest::collection::vec(proptest::option::of(texts()), 0..3),
        ) {
            let names: Vec<String> = (0..defs.len()).map(|i| format!("set{i}")).collect();
            let sets = ValueSet::compile_all(names.iter().map(String::as_str).zip(&defs));
            let Some((index, _)) = &sets[0].membership else {
                unreachable!("the first set has a bit")
            };
            let codings = displays
                .into_iter()
                .map(|display| Coding { system: None, code: "x".into(), display })
                .collect();
            let concept = Concept::new(codings, text);
            proptest::prop_assert_eq!(
                index.text_bits(&concept),
                index.text_bits_normalizing_first(&concept)
            );
        }
    }

    #[test]
    fn a_concept_checked_under_another_plan_is_not_misread() {
        let bed_rest = ValueSetDef {
            texts: vec!["bed rest".into()],
            ..ValueSetDef::default()
        };
        let other = ValueSetDef {
            texts: vec!["ambulate".into()],
            ..ValueSetDef::default()
        };
        let first = ValueSet::compile_all([("bed_rest", &bed_rest)]);
        let second = ValueSet::compile_all([("other", &other), ("bed_rest", &bed_rest)]);
        let concept = Concept::from_text("strict bed rest");
        assert!(first[0].contains(&concept));
        assert!(!second[0].contains(&concept));
        assert!(second[1].contains(&concept));
    }

    #[test]
    fn sets_past_the_63rd_scan_their_own_lists() {
        let defs: Vec<ValueSetDef> = (0..70)
            .map(|i| ValueSetDef {
                codes: vec![CodeEntry {
                    system: system::SNOMED.into(),
                    code: format!("{i}"),
                    match_kind: CodeMatch::Exact,
                    display: None,
                }],
                texts: vec![format!("word{i}")],
                ..ValueSetDef::default()
            })
            .collect();
        let names: Vec<String> = (0..70).map(|i| format!("set{i}")).collect();
        let sets = ValueSet::compile_all(names.iter().map(String::as_str).zip(&defs));
        assert!(sets[62].membership.is_some() && sets[63].membership.is_none());
        for i in [0, 62, 63, 69] {
            assert!(sets[i].contains(&Concept::coded(system::SNOMED, &format!("{i}"), None)));
            assert!(sets[i].contains(&Concept::from_text(&format!("a word{i}"))));
            assert!(!sets[i].contains(&Concept::coded(system::SNOMED, "x", None)));
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
