//! The bodies of orderguard's fuzz targets, one function per target, shared by the cargo-fuzz
//! binaries (`fuzz/fuzz_targets/*.rs`) and by the plain test that replays the committed corpora
//! and a bounded run of mutations on every `cargo test` (`tests/fuzz_corpus.rs` includes this
//! file). Each function takes arbitrary bytes and must return without panicking, whatever they
//! are; where the input is read, the properties that must hold of what was read are asserted
//! (an assertion failing is a crash the fuzzer reports).
//!
//! Only the library's public API is used: what a client's bytes reach in the service.

use chrono::{DateTime, TimeZone, Utc};
use orderguard::adapters::{CdsHooksRequest, NativeOrderSet};
use orderguard::audit::spool::{Spool, decode_frames};
use orderguard::decide;
use orderguard::domain::timing::{Frequency, RepeatSpec};
use orderguard::domain::units::{Amount, DoseUnit, PeriodUnit};
use orderguard::pathway::{self, Plan};

/// The evaluation time of every fuzzed decision (the engine reads no clock).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// A request through what the service does with it after the HTTP layer: read, evaluate under
/// `plan`, render. The answer must always serialize.
fn decide_and_render(plan: &Plan, data: &[u8]) {
    if let Ok(mut prepared) = decide::prepare(data) {
        let decision = decide::decide(plan, &mut prepared, now(), uuid::Uuid::nil());
        let answer = decide::render(&prepared, &decision);
        serde_json::to_vec(&answer).expect("an answer always serializes");
    }
}

/// The CDS Hooks / FHIR adapter: the service's parse (typed, with the error's JSON pointer),
/// the translation into the domain, then the engine and the cards.
pub fn cds_hooks(data: &[u8]) {
    if let Ok(request) = CdsHooksRequest::parse(data) {
        let _ = request.to_domain();
    }
    decide_and_render(&Plan::builtin(), data);
}

/// The native order set: schema validation, translation, engine, decision JSON.
pub fn native(data: &[u8]) {
    if let Ok(order_set) = NativeOrderSet::parse(data) {
        let _ = order_set.to_domain();
    }
    decide_and_render(&Plan::builtin(), data);
}

/// Unit and frequency parsing: the input is a string for the unit and code parsers, and a JSON
/// `Timing.repeat` for the repeat reader. A parsed frequency is a positive, finite rate.
pub fn units(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(unit) = DoseUnit::parse(&text) {
        // A parsed unit's symbol parses back to the same unit.
        assert_eq!(DoseUnit::parse(unit.symbol()).ok(), Some(unit), "{text:?}");
    }
    if let Ok(unit) = PeriodUnit::parse(&text) {
        assert!(unit.days() > 0.0);
    }
    if let Ok(frequency) = Frequency::parse_code(&text) {
        check_frequency(&frequency, &text);
    }
    // "<number> <unit>": an amount as a client sends it.
    if let Some((value, unit)) = text.trim().split_once(' ')
        && let Ok(value) = value.parse::<f64>()
        && let Ok(amount) = Amount::parse(value, unit)
    {
        assert!(amount.value().is_finite() && amount.value() > 0.0);
        if let Some(mg) = amount.to_mg() {
            assert!(mg >= 0.0, "{text:?}");
        }
    }
    if let Ok(spec) = serde_json::from_slice::<RepeatSpec>(data)
        && let Ok(Some(frequency)) = Frequency::from_repeat(&spec)
    {
        check_frequency(&frequency, &text);
    }
}

fn check_frequency(frequency: &Frequency, input: &str) {
    for rate in [frequency.per_day(), frequency.max_per_day()] {
        assert!(
            rate.is_finite() && rate > 0.0,
            "{input:?} gives {rate} a day"
        );
    }
    assert!(frequency.max_per_day() >= frequency.per_day(), "{input:?}");
    assert!(!frequency.describe().is_empty());
}

/// A full VCF order set, evaluated under each fuzzed pathway that compiles.
static PROBE: &[u8] = include_bytes!("../../fixtures/native/valid-vcf-full.json");

/// The pathway loader: JSON, schema, compilation, lint; a pathway that loads is then evaluated,
/// because a loaded pathway is what the engine trusts.
pub fn pathway(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = Plan::from_json(text);
    let problems = pathway::lint(text);
    if let Ok(plan) = loaded {
        assert!(
            problems.is_empty(),
            "a pathway that loads lints clean: {problems:?}"
        );
        decide_and_render(&plan, PROBE);
    }
}

/// The spool reader, as replay reads a segment after a crash: any bytes decode to the complete
/// frames before the first torn or corrupt one, and what was read frames back to bytes that
/// decode to the same entries.
pub fn spool(data: &[u8]) {
    let entries = decode_frames(data);
    if entries.is_empty() {
        return;
    }
    let framed = Spool::frame(&entries).expect("decoded entries frame again");
    assert_eq!(decode_frames(&framed), entries);
}
