//! Coded concepts as they arrive from clinical systems: a list of codings plus free text.
//!
//! A concept is kept whole (every coding, the text) because a local or wrong code must never
//! hide a drug: the terminology layer matches by code *and* by normalized text.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

/// Code system URIs the pathway uses.
pub mod system {
    pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
    pub const SNOMED: &str = "http://snomed.info/sct";
    pub const LOINC: &str = "http://loinc.org";
    pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
    pub const CPT: &str = "http://www.ama-assn.org/go/cpt";
    pub const UCUM: &str = "http://unitsofmeasure.org";
    pub const RULES: &str = "urn:orderguard:rules";
    pub const OVERRIDE_REASON: &str = "urn:orderguard:override-reason";
}

/// A code system's URI. The systems in [`system`] are kept as their shared static strings and
/// any other as its own: nearly every coding a client sends names one of the few systems the
/// pathway knows, and a copy of the URI per coding was an allocation, and a cache line for the
/// engine to read, for a string it already has. Compares, hashes, orders and serializes as the
/// URI it holds.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct System(Cow<'static, str>);

impl System {
    /// The systems kept shared, the most common first.
    const KNOWN: [&'static str; 8] = [
        system::RXNORM,
        system::ICD10CM,
        system::SNOMED,
        system::LOINC,
        system::CPT,
        system::UCUM,
        system::RULES,
        system::OVERRIDE_REASON,
    ];

    fn known(uri: &str) -> Option<&'static str> {
        Self::KNOWN.iter().copied().find(|known| *known == uri)
    }

    pub fn new(uri: &str) -> System {
        System(match Self::known(uri) {
            Some(known) => Cow::Borrowed(known),
            None => Cow::Owned(uri.to_owned()),
        })
    }
}

impl From<String> for System {
    /// Keeps the string's own buffer for a system the pathway does not know.
    fn from(uri: String) -> System {
        match System::known(&uri) {
            Some(known) => System(Cow::Borrowed(known)),
            None => System(Cow::Owned(uri)),
        }
    }
}

impl From<&str> for System {
    fn from(uri: &str) -> System {
        System::new(uri)
    }
}

impl std::ops::Deref for System {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for System {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for System {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for System {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for System {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<System, D::Error> {
        // The URI as the deserializer has it (borrowed, transient or owned), so that a known
        // system copies nothing and an owned string keeps its buffer.
        struct Uri;
        impl serde::de::Visitor<'_> for Uri {
            type Value = System;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a code system URI")
            }

            fn visit_str<E: serde::de::Error>(self, uri: &str) -> Result<System, E> {
                Ok(System::new(uri))
            }

            fn visit_string<E: serde::de::Error>(self, uri: String) -> Result<System, E> {
                Ok(System::from(uri))
            }
        }
        deserializer.deserialize_str(Uri)
    }
}

/// One code from one code system. `system` may be absent in sloppy input; the code is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    pub fn new(system: &str, code: &str) -> Self {
        Coding {
            system: Some(System::new(system)),
            code: code.to_owned(),
            display: None,
        }
    }

    /// True when this coding is `code` in `system` (system compared exactly, code trimmed).
    pub fn is(&self, system: &str, code: &str) -> bool {
        self.system.as_deref() == Some(system) && self.code.trim() == code
    }
}

/// A FHIR CodeableConcept reduced to what the pathway reads.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Concept {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codings: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Which value sets of a plan the concept is in, found once on the first check: a rule
    /// asks several sets about the same order or diagnosis (`pathway::value_set::Membership`).
    #[serde(skip)]
    value_sets: ValueSetCache,
}

/// A concept's value-set membership under one plan's index, by code and by text apart (a set
/// may be asked by code only, and the text half reads the normalized texts). Bit `i` is the
/// plan's `i`-th value set; bit 63 marks a half as known.
///
/// Atomics rather than `OnceLock`s: three lazy initializations per concept cost more than the
/// lookups they cache. Two threads may both compute a half; they store the same bits.
#[derive(Debug, Default)]
pub struct ValueSetCache {
    /// The membership index the bits are for (`Membership::key`); 0 until the first check.
    index: AtomicU64,
    by_code: AtomicU64,
    by_text: AtomicU64,
}

impl ValueSetCache {
    /// Marks a half of the cache as computed (so a plan has at most 63 bits).
    pub const KNOWN: u64 = 1 << 63;

    /// The bits by code for index `index`, computed by `compute` on the first ask.
    #[inline]
    pub fn by_code(&self, index: u64, compute: impl FnOnce() -> u64) -> u64 {
        self.get(&self.by_code, index, compute)
    }

    /// The bits by text for index `index`, computed by `compute` on the first ask.
    #[inline]
    pub fn by_text(&self, index: u64, compute: impl FnOnce() -> u64) -> u64 {
        self.get(&self.by_text, index, compute)
    }

    /// The bits of `half` when this index owns the cache and has filled it: every ask of a
    /// concept but its first under a plan. Inlined into the rules, which ask about 100 times
    /// per evaluation; the rest of the work is [`ValueSetCache::fill`], out of line.
    #[inline]
    fn get(&self, half: &AtomicU64, index: u64, compute: impl FnOnce() -> u64) -> u64 {
        if self.index.load(Ordering::Relaxed) == index {
            let cached = half.load(Ordering::Relaxed);
            if cached & Self::KNOWN != 0 {
                return cached & !Self::KNOWN;
            }
        }
        self.fill(half, index, compute)
    }

    /// [`ValueSetCache::get`] on a first ask: takes the cache for `index` if no index owns it
    /// yet, and computes the bits (caching them when `index` owns it).
    #[inline(never)]
    fn fill(&self, half: &AtomicU64, index: u64, compute: impl FnOnce() -> u64) -> u64 {
        // The first index to ask owns the cache; a concept asked under another plan's index
        // (another pathway version, a test) is answered without caching. A plain load first:
        // only the first ask needs the (locked) compare-exchange, and each concept is asked
        // many times.
        let owner = match self.index.load(Ordering::Relaxed) {
            0 => match self
                .index
                .compare_exchange(0, index, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => index,
                Err(owner) => owner,
            },
            owner => owner,
        };
        if owner != index {
            return compute();
        }
        let cached = half.load(Ordering::Relaxed);
        if cached & Self::KNOWN != 0 {
            return cached & !Self::KNOWN;
        }
        let bits = compute();
        debug_assert_eq!(bits & Self::KNOWN, 0, "bit 63 is the known mark");
        half.store(bits | Self::KNOWN, Ordering::Relaxed);
        bits
    }
}

impl Clone for ValueSetCache {
    fn clone(&self) -> Self {
        let copy = |a: &AtomicU64| AtomicU64::new(a.load(Ordering::Relaxed));
        ValueSetCache {
            index: copy(&self.index),
            by_code: copy(&self.by_code),
            by_text: copy(&self.by_text),
        }
    }
}

impl PartialEq for Concept {
    fn eq(&self, other: &Self) -> bool {
        self.codings == other.codings && self.text == other.text
    }
}

impl Eq for Concept {}

impl std::hash::Hash for Concept {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.codings.hash(state);
        self.text.hash(state);
    }
}

impl std::fmt::Debug for Concept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Concept")
            .field("codings", &self.codings)
            .field("text", &self.text)
            .finish()
    }
}

impl Concept {
    pub fn new(codings: Vec<Coding>, text: Option<String>) -> Self {
        Concept {
            codings,
            text,
            value_sets: Default::default(),
        }
    }

    pub fn from_text(text: &str) -> Self {
        Concept::new(Vec::new(), Some(text.to_owned()))
    }

    pub fn coded(system: &str, code: &str, display: Option<&str>) -> Self {
        Concept::new(
            vec![Coding {
                system: Some(System::new(system)),
                code: code.to_owned(),
                display: display.map(str::to_owned),
            }],
            None,
        )
    }

    /// The codes in `system`, in order.
    pub fn codes_in<'a>(&'a self, system: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.codings
            .iter()
            .filter(move |c| c.system.as_deref() == Some(system))
            .map(|c| c.code.trim())
    }

    /// Every human-readable string of the concept: the text, then each coding's display.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.text
            .as_deref()
            .into_iter()
            .chain(self.codings.iter().filter_map(|c| c.display.as_deref()))
    }

    /// Calls `f` with each of [`Concept::texts`] through [`normalize_text`], skipping those
    /// that normalize to nothing, each written into `buffer` (emptied first). Not cached: the
    /// value sets read a concept's texts once per plan and cache what they found
    /// ([`Concept::value_set_cache`]); a cache of the texts was a vector and a string per text
    /// for each concept, allocated and freed for that one reading.
    pub fn for_each_normalized_text(&self, buffer: &mut String, mut f: impl FnMut(&str)) {
        for text in self.texts() {
            buffer.clear();
            normalize_text_onto(buffer, text);
            if !buffer.is_empty() {
                f(buffer);
            }
        }
    }

    /// The concept's cached value-set bits (see [`ValueSetCache`]). Callers that change
    /// `text` or `codings` after a check must build a new concept.
    pub fn value_set_cache(&self) -> &ValueSetCache {
        &self.value_sets
    }

    /// The best single label for messages: text, else the first display, else the first code.
    pub fn label(&self) -> String {
        self.label_str().to_owned()
    }

    /// [`Concept::label`], borrowed: for sentences that copy it into a larger text.
    pub fn label_str(&self) -> &str {
        self.texts()
            .next()
            .or_else(|| self.codings.first().map(|c| c.code.as_str()))
            .unwrap_or("unnamed order")
    }

    pub fn is_empty(&self) -> bool {
        self.codings.is_empty() && self.text.as_deref().is_none_or(|t| t.trim().is_empty())
    }
}

/// Lower-cases, turns punctuation into spaces and folds runs of white space, so that
/// "Oxycodone-HCl  5MG tab" and "oxycodone hcl 5mg tab" compare equal.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_text_onto(&mut out, text);
    out
}

/// [`normalize_text`] appended to `out`, so that a caller normalizing several texts reuses
/// one buffer. Order texts are nearly always ASCII and most are already normalized but for
/// their case: those are copied and lower-cased ([`push_if_normal_but_case`]); other ASCII
/// texts are read byte by byte through a table; a text with any other character is read as
/// [`normalize_any_onto`] reads it.
pub fn normalize_text_onto(out: &mut String, text: &str) {
    if push_if_normal_but_case(out, text) {
        return;
    }
    if text.is_ascii() {
        normalize_ascii_onto(out, text);
    } else {
        normalize_any_onto(out, text);
    }
}

/// [`normalize_text_onto`] of `text` without its thousands separators (a comma between a
/// digit and exactly three digits, see [`is_thousands_separator`]), so that "50,000 units"
/// reads as "50000 units" rather than two numbers: how order texts are read to identify their
/// drug. An ASCII text is normalized first and noted when it has a comma; only then is it
/// looked at for separators (and read again without them when it has one), so that the
/// texts without a comma, nearly all, are read once and searched for none. A text that is
/// normalized but for its case has no comma, and is copied ([`push_if_normal_but_case`]).
pub fn normalize_order_text_onto(out: &mut String, text: &str) {
    if push_if_normal_but_case(out, text) {
        return;
    }
    if text.is_ascii() {
        let start = out.len();
        if normalize_ascii_onto(out, text)
            && let std::borrow::Cow::Owned(without) = without_thousands_separators(text)
        {
            out.truncate(start);
            normalize_ascii_onto(out, &without);
        }
    } else {
        normalize_any_onto(out, &without_thousands_separators(text));
    }
}

/// Whether the byte at `i` is a thousands separator: a comma after a digit and before exactly
/// three digits (not four: "1,2345" is not a number with a separator).
pub(crate) fn is_thousands_separator(bytes: &[u8], i: usize) -> bool {
    bytes[i] == b','
        && i > 0
        && bytes[i - 1].is_ascii_digit()
        && bytes.len() >= i + 4
        && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        && bytes.get(i + 4).is_none_or(|b| !b.is_ascii_digit())
}

/// Drops thousands separators ("50,000 units" -> "50000 units") before normalization would turn
/// the comma into a space and split the number. The text is copied only when one is present.
pub(crate) fn without_thousands_separators(raw: &str) -> std::borrow::Cow<'_, str> {
    // Nearly no order text has a comma: find one first (memchr), before looking at each byte.
    if !raw.contains(',') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    if !(0..bytes.len()).any(|i| is_thousands_separator(bytes, i)) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    for (i, ch) in raw.char_indices() {
        if !(ch == ',' && is_thousands_separator(bytes, i)) {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// What each byte of an ASCII text becomes in normalized text: letters lower-cased, digits,
/// '.', '/' and '%' kept as they are, and 0 for every other byte (a word separator). Bytes
/// from 128 up are 0 too: [`push_if_normal_but_case`] refuses a text with one, and
/// [`normalize_ascii_onto`] never sees one.
const NORMALIZED_ASCII: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let byte = b as u8;
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'/' | b'%') {
            table[b] = byte.to_ascii_lowercase();
        }
        b += 1;
    }
    table
};

/// Whether normalization keeps `byte` (a letter, lower-cased; a digit, '.', '/' or '%'):
/// the one list of kept bytes, which the lexer's normal-form check reads too.
#[inline(always)]
pub(crate) fn is_kept_byte(byte: u8) -> bool {
    NORMALIZED_ASCII[usize::from(byte)] != 0
}

/// Appends `text` lower-cased when that is its normalized form, and returns whether it did:
/// when the text is only kept bytes (see [`NORMALIZED_ASCII`]) with single spaces between
/// them, as most order texts are ("Oxycodone 5 MG Oral Tablet"). Any other text (a comma, a
/// hyphen, two spaces, a leading or trailing space, a non-ASCII byte, or no byte at all) is
/// left to the full reading and nothing is appended. Checking each byte and then copying and
/// lower-casing the text whole costs about half of writing it byte by byte, and the copy of a
/// `str` needs no UTF-8 check afterwards.
pub(crate) fn push_if_normal_but_case(out: &mut String, text: &str) -> bool {
    // True at the start, so that a leading space is refused like a second space in a row.
    let mut after_space = true;
    for &byte in text.as_bytes() {
        if is_kept_byte(byte) {
            after_space = false;
        } else if byte == b' ' && !after_space {
            after_space = true;
        } else {
            return false;
        }
    }
    // A trailing space, or an empty text.
    if after_space {
        return false;
    }
    let start = out.len();
    out.push_str(text);
    // The table keeps every kept byte lower-cased, and a space is its own lower case.
    out[start..].make_ascii_lowercase();
    true
}

/// Calls `word` with the offset of each word of `text` (its first byte and each byte after a
/// space) while checking, byte for byte as [`push_if_normal_but_case`] does, that the text is
/// normal but for its case, and returns whether it is. A caller can then read the text where
/// it is, comparing without case, instead of copying and lower-casing it; when this returns
/// false the calls made so far are for a text that is not normal, to be thrown away.
#[inline]
pub(crate) fn for_each_word_if_normal_but_case(text: &str, mut word: impl FnMut(usize)) -> bool {
    // True at the start, so that a leading space is refused like a second space in a row.
    let mut after_space = true;
    for (at, &byte) in text.as_bytes().iter().enumerate() {
        if is_kept_byte(byte) {
            if after_space {
                word(at);
            }
            after_space = false;
        } else if byte == b' ' && !after_space {
            after_space = true;
        } else {
            return false;
        }
    }
    // A trailing space, or an empty text.
    !after_space
}

/// [`normalize_text_onto`] for an ASCII `text`: one table look-up per byte, the bytes written
/// to `out`'s own buffer. Returns whether the text has a comma (checked on separator bytes
/// only), for [`normalize_order_text_onto`].
fn normalize_ascii_onto(out: &mut String, text: &str) -> bool {
    let mut bytes = std::mem::take(out).into_bytes();
    bytes.reserve(text.len());
    let start = bytes.len();
    // A separator is written only after a kept byte, so there is never a leading space and at
    // most one trailing one.
    let mut last_space = true;
    let mut comma = false;
    for &byte in text.as_bytes() {
        match NORMALIZED_ASCII[usize::from(byte)] {
            0 => {
                comma |= byte == b',';
                if !last_space {
                    bytes.push(b' ');
                    last_space = true;
                }
            }
            kept => {
                bytes.push(kept);
                last_space = false;
            }
        }
    }
    if last_space && bytes.len() > start {
        bytes.pop();
    }
    *out = String::from_utf8(bytes).expect("UTF-8 with ASCII appended is UTF-8");
    comma
}

/// [`normalize_text_onto`] for any text: a run of kept ASCII bytes is copied whole and
/// lower-cased in place; any other character is read whole and kept when alphanumeric.
fn normalize_any_onto(out: &mut String, text: &str) {
    let kept_ascii = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'%');
    out.reserve(text.len());
    let start = out.len();
    let mut last_space = true;
    let mut rest = text;
    while let Some(&byte) = rest.as_bytes().first() {
        let (keep, len) = if byte.is_ascii() {
            let run = rest.bytes().take_while(kept_ascii).count();
            if run > 0 {
                let at = out.len();
                out.push_str(&rest[..run]);
                out[at..].make_ascii_lowercase();
            }
            (run > 0, run.max(1))
        } else {
            let ch = rest.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
            if ch.is_alphanumeric() {
                out.push(ch);
            }
            (ch.is_alphanumeric(), ch.len_utf8())
        };
        if keep {
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
        rest = &rest[len..];
    }
    while out.len() > start && out.ends_with(' ') {
        out.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value sets compare a text normal but for its case with a phrase by setting each
    /// text byte's 0x20 bit (`Membership::bits_in_place`): that is sound only while every kept
    /// byte's normalized form is the byte with that bit set. A kept byte added to the table
    /// without it (say `_` or `@`) fails here rather than silently never matching.
    #[test]
    fn every_kept_byte_normalizes_to_itself_with_bit_0x20_set() {
        for byte in 0..=255u8 {
            let kept = NORMALIZED_ASCII[usize::from(byte)];
            if kept != 0 {
                assert_eq!(kept, byte | 0x20, "byte {byte:#04x}");
            }
        }
    }

    #[test]
    fn known_systems_are_shared_and_others_kept_as_sent() {
        for uri in System::KNOWN {
            let parsed: System = serde_json::from_str(&format!("\"{uri}\"")).unwrap();
            assert!(matches!(parsed.0, Cow::Borrowed(shared) if shared == uri));
            // From a `serde_json::Value`, whose strings are owned, and from a `String`.
            let value = serde_json::Value::String(uri.to_owned());
            let from_value: System = serde_json::from_value(value).unwrap();
            assert!(matches!(from_value.0, Cow::Borrowed(_)), "{uri}");
            assert!(matches!(System::from(uri.to_owned()).0, Cow::Borrowed(_)));
        }
        let local = System::new("urn:oid:2.16.840.1.113883.3.1937");
        assert!(matches!(local.0, Cow::Owned(_)));
        assert_eq!(local, "urn:oid:2.16.840.1.113883.3.1937");
        // A near miss is not a known system.
        assert!(matches!(System::new("http://loinc.org/").0, Cow::Owned(_)));
    }

    #[test]
    fn a_system_reads_writes_and_compares_as_its_uri() {
        let coding: Coding = serde_json::from_str(
            r#"{"system":"http://loinc.org","code":"2160-0","display":"Creatinine"}"#,
        )
        .unwrap();
        assert_eq!(coding.system.as_deref(), Some(system::LOINC));
        assert_eq!(
            serde_json::to_string(&coding).unwrap(),
            r#"{"system":"http://loinc.org","code":"2160-0","display":"Creatinine"}"#
        );
        // An escaped URI arrives as an owned string and is still recognized.
        let escaped: System = serde_json::from_str(r#""http:\/\/loinc.org""#).unwrap();
        assert!(matches!(escaped.0, Cow::Borrowed(_)));
        assert_eq!(
            format!("{:?}", System::new(system::CPT)),
            format!("{:?}", system::CPT)
        );
        assert_eq!(System::new(system::CPT).to_string(), system::CPT);
        assert!(System::new("a") < System::new("b"));
        assert_eq!(
            System::new(system::SNOMED),
            System::from(system::SNOMED.to_owned())
        );
    }

    #[test]
    fn normalize_folds_case_punctuation_and_space() {
        assert_eq!(
            normalize_text("  Oxycodone-HCl  5MG, tab "),
            "oxycodone hcl 5mg tab"
        );
        assert_eq!(normalize_text("Complete BED-REST"), "complete bed rest");
        assert_eq!(normalize_text("0.5 mg/mL"), "0.5 mg/ml");
    }

    /// `normalize_text` as it was written, one `char` at a time: the reference for the
    /// ASCII fast path.
    fn normalize_text_reference(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last_space = true;
        for ch in text.chars() {
            let ch = ch.to_ascii_lowercase();
            if ch.is_alphanumeric() || ch == '.' || ch == '/' || ch == '%' {
                out.push(ch);
                last_space = false;
            } else if !last_space {
                out.push(' ');
                last_space = true;
            }
        }
        while out.ends_with(' ') {
            out.pop();
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn normalize_agrees_with_the_char_by_char_reading(text in "\\PC{0,40}|[ A-Za-z0-9.,/%µé²٣-]{0,40}") {
            proptest::prop_assert_eq!(normalize_text(&text), normalize_text_reference(&text));
            let mut onto = String::from("kept ");
            normalize_text_onto(&mut onto, &text);
            proptest::prop_assert_eq!(onto, format!("kept {}", normalize_text_reference(&text)));
            // Both readings, whichever the text would take.
            let mut any = String::new();
            normalize_any_onto(&mut any, &text);
            proptest::prop_assert_eq!(any, normalize_text_reference(&text));
        }

        #[test]
        fn the_ascii_table_agrees_with_the_char_by_char_reading(text in "[ -~\t\n]{0,40}|[ a-zA-Z,.-]{60,200}") {
            let mut ascii = String::from("kept ");
            let comma = normalize_ascii_onto(&mut ascii, &text);
            proptest::prop_assert_eq!(comma, text.contains(','));
            proptest::prop_assert_eq!(ascii, format!("kept {}", normalize_text_reference(&text)));
        }

        /// A non-empty ASCII text is copied exactly when its normalized form is its lower-cased
        /// copy; any text that is copied reads as the char-by-char reading gives it.
        #[test]
        fn the_copy_is_taken_for_texts_normal_but_for_case(text in "([A-Za-z0-9./%]{1,6}[ ]{1,2}){0,5}[A-Za-z0-9./%-]{0,6}[ ]?|[ -~]{0,20}|\\PC{0,20}") {
            let mut out = String::from("kept ");
            let copied = push_if_normal_but_case(&mut out, &text);
            let reference = normalize_text_reference(&text);
            if copied {
                proptest::prop_assert_eq!(out, format!("kept {reference}"));
            } else {
                proptest::prop_assert_eq!(out, "kept ");
            }
            if text.is_ascii() && !text.is_empty() {
                proptest::prop_assert_eq!(copied, reference == text.to_ascii_lowercase());
            }
        }

        /// Words are found in place exactly for the texts that are copied, at the word starts
        /// of the copy (its first byte and each byte after a space).
        #[test]
        fn words_are_found_in_place_for_the_texts_copied(text in "([A-Za-z0-9./%]{1,6}[ ]{1,2}){0,5}[A-Za-z0-9./%-]{0,6}[ ]?|[ -~]{0,20}|\\PC{0,20}") {
            let mut copy = String::new();
            let copied = push_if_normal_but_case(&mut copy, &text);
            let mut words = Vec::new();
            let normal = for_each_word_if_normal_but_case(&text, |at| words.push(at));
            proptest::prop_assert_eq!(normal, copied);
            if normal {
                let starts: Vec<usize> = (0..copy.len())
                    .filter(|&at| at == 0 || copy.as_bytes()[at - 1] == b' ')
                    .collect();
                proptest::prop_assert_eq!(words, starts);
            }
        }

        #[test]
        fn order_text_drops_thousands_separators_as_the_copy_does(text in "[0-9, ]{0,24}|[ -~]{0,30}|\\PC{0,30}|[0-9,é]{0,20}") {
            let mut fused = String::from("kept ");
            normalize_order_text_onto(&mut fused, &text);
            let copied = normalize_text_reference(&without_thousands_separators(&text));
            proptest::prop_assert_eq!(fused, format!("kept {copied}"));
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(
            without_thousands_separators("D2 50,000 units"),
            "D2 50000 units"
        );
        assert_eq!(
            without_thousands_separators("1,250 mg, 2 tabs"),
            "1250 mg, 2 tabs"
        );
        assert_eq!(
            without_thousands_separators("5,32 x,123 1,2345"),
            "5,32 x,123 1,2345"
        );
        let mut out = String::new();
        normalize_order_text_onto(&mut out, "Ergocalciferol 50,000 units, 1,2345 é");
        assert_eq!(out, "ergocalciferol 50000 units 1 2345 é");
    }

    #[test]
    fn label_prefers_text_then_display_then_code() {
        let mut c = Concept::coded(system::RXNORM, "197696", Some("fentanyl patch"));
        assert_eq!(c.label(), "fentanyl patch");
        c.text = Some("Duragesic".into());
        assert_eq!(c.label(), "Duragesic");
        let bare = Concept::coded(system::RXNORM, "7052", None);
        assert_eq!(bare.label(), "7052");
    }
}
