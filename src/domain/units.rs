//! Dose amounts and calendar durations. An [`Amount`] can only hold a positive, finite value in
//! a unit orderguard understands; anything else is refused at parse time so that the adapter
//! can record the order as unreadable (and the engine can say so) instead of guessing.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// Days in the calendar units the pathway uses (pathway-spec: "Calendar units").
pub const DAYS_PER_WEEK: f64 = 7.0;
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
pub const DAYS_PER_YEAR: f64 = 365.25;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitError {
    #[error("dose value {0} is not a positive finite number")]
    NotPositive(String),
    #[error("unit {0:?} is not a dose unit orderguard understands")]
    UnknownUnit(String),
    #[error("period unit {0:?} is not one of s, min, h, d, wk, mo, a")]
    UnknownPeriodUnit(String),
}

/// How a countable dose is given: one tablet, one patch. Its amount of drug comes from the
/// product's strength, which the terminology knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseForm {
    Tablet,
    Capsule,
    Patch,
    Spray,
    Suppository,
    /// A generic countable unit ("each", "{pill}", "dose").
    Each,
}

/// A unit a medication dose can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseUnit {
    Milligram,
    Gram,
    Microgram,
    InternationalUnit,
    Millilitre,
    /// Transdermal delivery rate (fentanyl, buprenorphine patches).
    MicrogramPerHour,
    Count(DoseForm),
}

impl DoseUnit {
    /// Parses a UCUM code or the unit strings real order-entry systems send
    /// ("mg", "MG", "mcg", "ug", "[iU]", "IU", "unit", "mL", "ug/h", "{tablet}", "TAB", "patch").
    pub fn parse(raw: &str) -> Result<DoseUnit, UnitError> {
        let unit = raw
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim();
        let lower = unit.to_ascii_lowercase();
        let parsed = match lower.as_str() {
            "mg" | "milligram" | "milligrams" => DoseUnit::Milligram,
            "g" | "gm" | "gram" | "grams" => DoseUnit::Gram,
            "ug" | "mcg" | "µg" | "μg" | "microgram" | "micrograms" => DoseUnit::Microgram,
            "[iu]"
            | "iu"
            | "[iu]/1"
            | "unit"
            | "units"
            | "u"
            | "international unit"
            | "international units" => DoseUnit::InternationalUnit,
            "ml" | "millilitre" | "milliliter" | "milliliters" | "millilitres" | "cc" => {
                DoseUnit::Millilitre
            }
            "ug/h" | "mcg/h" | "ug/hr" | "mcg/hr" | "mcg/hour" | "microgram/hour"
            | "micrograms/hour" => DoseUnit::MicrogramPerHour,
            "tablet" | "tablets" | "tab" | "tabs" | "tbl" | "pill" | "pills" => {
                DoseUnit::Count(DoseForm::Tablet)
            }
            "capsule" | "capsules" | "cap" | "caps" => DoseUnit::Count(DoseForm::Capsule),
            "patch" | "patches" | "transdermal system" => DoseUnit::Count(DoseForm::Patch),
            "spray" | "sprays" | "actuation" | "actuat" | "puff" | "puffs" => {
                DoseUnit::Count(DoseForm::Spray)
            }
            "suppository" | "suppositories" | "supp" => DoseUnit::Count(DoseForm::Suppository),
            "each" | "ea" | "dose" | "doses" | "1" => DoseUnit::Count(DoseForm::Each),
            _ => return Err(UnitError::UnknownUnit(raw.to_owned())),
        };
        Ok(parsed)
    }

    /// The factor that turns an amount in this unit into milligrams, for mass units.
    pub fn milligrams_per_unit(self) -> Option<f64> {
        match self {
            DoseUnit::Milligram => Some(1.0),
            DoseUnit::Gram => Some(1000.0),
            DoseUnit::Microgram => Some(0.001),
            _ => None,
        }
    }

    pub fn is_count(self) -> bool {
        matches!(self, DoseUnit::Count(_))
    }

    /// The UCUM-style symbol used in cards ("mg", "[iU]" is shown as "IU").
    pub fn symbol(self) -> &'static str {
        match self {
            DoseUnit::Milligram => "mg",
            DoseUnit::Gram => "g",
            DoseUnit::Microgram => "mcg",
            DoseUnit::InternationalUnit => "IU",
            DoseUnit::Millilitre => "mL",
            DoseUnit::MicrogramPerHour => "mcg/h",
            DoseUnit::Count(DoseForm::Tablet) => "tablet",
            DoseUnit::Count(DoseForm::Capsule) => "capsule",
            DoseUnit::Count(DoseForm::Patch) => "patch",
            DoseUnit::Count(DoseForm::Spray) => "spray",
            DoseUnit::Count(DoseForm::Suppository) => "suppository",
            // Not "unit": that reads (and parses) as an international unit.
            DoseUnit::Count(DoseForm::Each) => "each",
        }
    }
}

impl fmt::Display for DoseUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A positive, finite amount in a known dose unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Amount {
    value: f64,
    unit: DoseUnit,
}

impl Amount {
    pub fn new(value: f64, unit: DoseUnit) -> Result<Amount, UnitError> {
        if value.is_finite() && value > 0.0 {
            Ok(Amount { value, unit })
        } else {
            Err(UnitError::NotPositive(value.to_string()))
        }
    }

    /// Parses a value with a unit string as sent by a client.
    pub fn parse(value: f64, unit: &str) -> Result<Amount, UnitError> {
        let unit = DoseUnit::parse(unit)?;
        Amount::new(value, unit)
    }

    pub fn value(&self) -> f64 {
        self.value
    }

    pub fn unit(&self) -> DoseUnit {
        self.unit
    }

    /// The amount in milligrams, when it is a mass.
    pub fn to_mg(&self) -> Option<f64> {
        self.unit.milligrams_per_unit().map(|f| self.value * f)
    }

    /// Multiplies by a positive factor (an administration count, a strength).
    pub fn scaled(&self, factor: f64) -> Result<Amount, UnitError> {
        Amount::new(self.value * factor, self.unit)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            value: f64,
            unit: DoseUnit,
        }
        let raw = Raw::deserialize(d)?;
        Amount::new(raw.value, raw.unit).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", format_number(self.value), self.unit)
    }
}

/// Formats a number for a clinician: no trailing zeros, at most two decimals ("4.93", "3200").
pub fn format_number(value: f64) -> String {
    let mut out = String::with_capacity(8);
    push_number(&mut out, value);
    out
}

/// [`format_number`] written onto `out`: cards hold dozens of numbers per evaluation, and
/// `format!` costs an allocation and the formatting machinery for each. Inlined where the
/// rules write their explanations' numbers (~35 per evaluation), as `NumberText::new` is.
#[inline]
pub fn push_number(out: &mut String, value: f64) {
    // Nearly every number on a card is below 10^9: rounded to cents with integer arithmetic.
    // `f64::round` and `fract` are library calls on the baseline x86-64 target, and they were
    // most of this function's cost. (NaN fails the comparison and takes the general path.)
    match NumberText::new(value) {
        Some(text) => text.push_onto(out),
        None => push_number_general(out, value),
    }
}

/// A number below 10^9 as [`push_number`] writes it, held inline (no allocation): formatted
/// once, it can be pushed onto several texts (a finding's summary and detail name the same
/// numbers) as a copy of its few bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberText {
    /// The text is `bytes[start..]`, ASCII: a sign, up to 10 digits, a dot and 2 decimals.
    bytes: [u8; 15],
    start: u8,
}

impl NumberText {
    /// `None` at or above 10^9 and for NaN: [`push_number`] writes those by the general path.
    /// Always inlined (into `push_number` and the template fill loop): as a call, the text
    /// went back through memory to the caller, and the call cost about a tenth of the work.
    #[inline(always)]
    pub fn new(value: f64) -> Option<NumberText> {
        if value.abs() < 1e9 {
            Some(NumberText::from_cents(round_half_away(value * 100.0)))
        } else {
            None
        }
    }

    /// A number of hundredths (|cents| ≤ 10^11): no trailing zero, no dot when whole. Written
    /// from the last digit back, two digits at a time, the integer part in `u32` (at most 10^9).
    #[inline]
    fn from_cents(cents: i64) -> NumberText {
        let mut bytes = [0u8; 15];
        let mut at = bytes.len();
        let negative = cents < 0;
        let cents = cents.unsigned_abs();
        let fraction = usize::from((cents % 100) as u8);
        if fraction != 0 {
            let [tenths, hundredths] = pair(fraction);
            if hundredths != b'0' {
                at -= 1;
                bytes[at] = hundredths;
            }
            bytes[at - 1] = tenths;
            bytes[at - 2] = b'.';
            at -= 2;
        }
        let mut whole = (cents / 100) as u32;
        while whole >= 100 {
            at -= 2;
            [bytes[at], bytes[at + 1]] = pair((whole % 100) as usize);
            whole /= 100;
        }
        if whole >= 10 {
            at -= 2;
            [bytes[at], bytes[at + 1]] = pair(whole as usize);
        } else {
            at -= 1;
            bytes[at] = b'0' + whole as u8;
        }
        if negative {
            at -= 1;
            bytes[at] = b'-';
        }
        NumberText {
            bytes,
            start: at as u8,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len() - usize::from(self.start)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Pushed as characters: checking the bytes are UTF-8 to push them as a `str` cost more
    /// than the few pushes of a card's numbers (one to four characters, nearly always).
    #[inline]
    pub fn push_onto(&self, out: &mut String) {
        let text = &self.bytes[usize::from(self.start)..];
        out.reserve(text.len());
        for &byte in text {
            // ASCII (the mask changes nothing), so that each push is of one byte.
            out.push(char::from(byte & 0x7f));
        }
    }
}

/// The two digits of `n` (below 100).
#[inline]
fn pair(n: usize) -> [u8; 2] {
    const PAIRS: &[u8; 200] = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    [PAIRS[2 * n], PAIRS[2 * n + 1]]
}

/// `x.round() as i64` for `|x| < 2^52`, without the library call: `x - trunc(x)` is exact.
#[inline]
pub(crate) fn round_half_away(x: f64) -> i64 {
    let whole = x as i64;
    let fraction = x - whole as f64;
    if fraction >= 0.5 {
        whole + 1
    } else if fraction <= -0.5 {
        whole - 1
    } else {
        whole
    }
}

/// The fast path as it was before [`NumberText`]: hundredths pushed digit by digit onto the
/// text. Kept as the oracle [`NumberText`] is tested against.
#[cfg(test)]
fn push_cents(out: &mut String, cents: i64) {
    if cents < 0 {
        out.push('-');
    }
    let cents = cents.unsigned_abs();
    push_unsigned(out, cents / 100);
    let (tenths, hundredths) = ((cents % 100) / 10, cents % 10);
    if tenths != 0 || hundredths != 0 {
        out.push('.');
        out.push(char::from(b'0' + tenths as u8));
        if hundredths != 0 {
            out.push(char::from(b'0' + hundredths as u8));
        }
    }
}

/// [`push_number`] for any value: what it was before the fast path, kept for the numbers at
/// or above 10^9 and as the reference the fast path is tested against.
fn push_number_general(out: &mut String, value: f64) {
    use std::fmt::Write as _;
    if !(value * 100.0).is_finite() {
        // Only absurd inputs get here (1e308): say the number rather than "inf".
        let _ = write!(out, "{value:e}");
        return;
    }
    let rounded = (value * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 {
        push_integer(out, rounded as i64);
    } else if rounded.abs() < 1e9 {
        // `rounded` is the double nearest to cents / 100 and, this far below 2^53, within far
        // less than half a cent of it: its two decimals are exactly the cents'.
        let cents = (rounded * 100.0).round() as i64;
        if cents < 0 {
            out.push('-');
        }
        let cents = cents.unsigned_abs();
        push_unsigned(out, cents / 100);
        out.push('.');
        let (tenths, hundredths) = ((cents % 100) / 10, cents % 10);
        out.push(char::from(b'0' + tenths as u8));
        if hundredths != 0 {
            out.push(char::from(b'0' + hundredths as u8));
        }
    } else {
        let start = out.len();
        let _ = write!(out, "{rounded:.2}");
        let kept = out[start..]
            .trim_end_matches('0')
            .trim_end_matches('.')
            .len();
        out.truncate(start + kept);
    }
}

fn push_integer(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    push_unsigned(out, value.unsigned_abs());
}

fn push_unsigned(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Pushed as characters: checking the digits are UTF-8 to push them as a `str` cost more
    // than the few pushes of a card's numbers (one to four digits, nearly always).
    out.reserve(digits.len() - at);
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// FHIR `periodUnit` / duration units (UCUM subset s | min | h | d | wk | mo | a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeriodUnit {
    #[serde(rename = "s")]
    Second,
    #[serde(rename = "min")]
    Minute,
    #[serde(rename = "h")]
    Hour,
    #[serde(rename = "d")]
    Day,
    #[serde(rename = "wk")]
    Week,
    #[serde(rename = "mo")]
    Month,
    #[serde(rename = "a")]
    Year,
}

impl PeriodUnit {
    /// Accepts the UCUM codes and the spelled-out words clients send ("day", "days", "hours").
    pub fn parse(raw: &str) -> Result<PeriodUnit, UnitError> {
        let unit = match raw.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" | "seconds" => PeriodUnit::Second,
            "min" | "minute" | "minutes" => PeriodUnit::Minute,
            "h" | "hr" | "hrs" | "hour" | "hours" => PeriodUnit::Hour,
            "d" | "day" | "days" => PeriodUnit::Day,
            "wk" | "w" | "week" | "weeks" => PeriodUnit::Week,
            "mo" | "month" | "months" => PeriodUnit::Month,
            "a" | "y" | "yr" | "year" | "years" => PeriodUnit::Year,
            _ => return Err(UnitError::UnknownPeriodUnit(raw.to_owned())),
        };
        Ok(unit)
    }

    /// Length of one unit in days (a month is 30.4375 days, a year 365.25).
    pub fn days(self) -> f64 {
        match self {
            PeriodUnit::Second => 1.0 / 86_400.0,
            PeriodUnit::Minute => 1.0 / 1_440.0,
            PeriodUnit::Hour => 1.0 / 24.0,
            PeriodUnit::Day => 1.0,
            PeriodUnit::Week => DAYS_PER_WEEK,
            PeriodUnit::Month => DAYS_PER_MONTH,
            PeriodUnit::Year => DAYS_PER_YEAR,
        }
    }
}

/// A positive length of time in calendar units ("7 days", "3 months").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalendarDuration {
    value: f64,
    unit: PeriodUnit,
}

impl CalendarDuration {
    pub fn new(value: f64, unit: PeriodUnit) -> Result<CalendarDuration, UnitError> {
        if value.is_finite() && value > 0.0 {
            Ok(CalendarDuration { value, unit })
        } else {
            Err(UnitError::NotPositive(value.to_string()))
        }
    }

    pub fn from_days(days: f64) -> Result<CalendarDuration, UnitError> {
        CalendarDuration::new(days, PeriodUnit::Day)
    }

    pub fn value(&self) -> f64 {
        self.value
    }

    pub fn unit(&self) -> PeriodUnit {
        self.unit
    }

    pub fn days(&self) -> f64 {
        self.value * self.unit.days()
    }

    pub fn hours(&self) -> f64 {
        self.days() * 24.0
    }
}

impl<'de> Deserialize<'de> for CalendarDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            value: f64,
            unit: PeriodUnit,
        }
        let raw = Raw::deserialize(d)?;
        CalendarDuration::new(raw.value, raw.unit).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_units_real_clients_send() {
        for (raw, unit) in [
            ("mg", DoseUnit::Milligram),
            ("MG", DoseUnit::Milligram),
            ("g", DoseUnit::Gram),
            ("ug", DoseUnit::Microgram),
            ("mcg", DoseUnit::Microgram),
            ("[iU]", DoseUnit::InternationalUnit),
            ("IU", DoseUnit::InternationalUnit),
            ("unit", DoseUnit::InternationalUnit),
            ("mL", DoseUnit::Millilitre),
            ("ug/h", DoseUnit::MicrogramPerHour),
            ("mcg/hr", DoseUnit::MicrogramPerHour),
            ("{tablet}", DoseUnit::Count(DoseForm::Tablet)),
            ("TAB", DoseUnit::Count(DoseForm::Tablet)),
            ("{pill}", DoseUnit::Count(DoseForm::Tablet)),
            ("patch", DoseUnit::Count(DoseForm::Patch)),
            ("capsule", DoseUnit::Count(DoseForm::Capsule)),
        ] {
            assert_eq!(DoseUnit::parse(raw), Ok(unit), "{raw}");
        }
    }

    /// Found by the units fuzz target: the symbol of `Count(Each)` was "unit", which a card
    /// reader (and the parser) takes for an international unit.
    #[test]
    fn every_symbol_parses_back_to_its_own_unit() {
        let forms = [
            DoseForm::Tablet,
            DoseForm::Capsule,
            DoseForm::Patch,
            DoseForm::Spray,
            DoseForm::Suppository,
            DoseForm::Each,
        ];
        let units = [
            DoseUnit::Milligram,
            DoseUnit::Gram,
            DoseUnit::Microgram,
            DoseUnit::InternationalUnit,
            DoseUnit::Millilitre,
            DoseUnit::MicrogramPerHour,
        ]
        .into_iter()
        .chain(forms.map(DoseUnit::Count));
        for unit in units {
            assert_eq!(
                DoseUnit::parse(unit.symbol()),
                Ok(unit),
                "{}",
                unit.symbol()
            );
        }
    }

    #[test]
    fn refuses_unknown_units_and_bad_values() {
        assert!(DoseUnit::parse("furlong").is_err());
        assert!(DoseUnit::parse("").is_err());
        assert!(Amount::parse(0.0, "mg").is_err());
        assert!(Amount::parse(-5.0, "mg").is_err());
        assert!(Amount::parse(f64::NAN, "mg").is_err());
        assert!(Amount::parse(f64::INFINITY, "mg").is_err());
    }

    #[test]
    fn calendar_lengths_follow_the_pathway() {
        assert_eq!(PeriodUnit::Month.days(), 30.4375);
        assert_eq!(PeriodUnit::Year.days(), 365.25);
        let six_months = CalendarDuration::new(6.0, PeriodUnit::Month).unwrap();
        assert!((six_months.days() - 182.625).abs() < 1e-9);
        assert_eq!(
            CalendarDuration::new(48.0, PeriodUnit::Hour)
                .unwrap()
                .hours(),
            48.0
        );
    }

    #[test]
    fn numbers_are_formatted_for_clinicians() {
        assert_eq!(format_number(3200.0), "3200");
        assert_eq!(format_number(4.9281), "4.93");
        assert_eq!(format_number(49.9), "49.9");
        assert_eq!(format_number(0.075), "0.08");
        // The bad-input corpus's 1e308 g dose was shown as "inf g".
        assert_eq!(format_number(1e308), "1e308");
    }

    /// `format_number` as it was written with `format!`: the reference the buffer-writing
    /// version must agree with everywhere.
    fn format_number_reference(value: f64) -> String {
        if !(value * 100.0).is_finite() {
            return format!("{value:e}");
        }
        let rounded = (value * 100.0).round() / 100.0;
        if rounded.fract() == 0.0 {
            format!("{}", rounded as i64)
        } else {
            let s = format!("{rounded:.2}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
    }

    #[test]
    fn numbers_format_as_with_format_at_the_edges() {
        for value in [
            0.0,
            -0.0,
            0.004,
            0.005,
            -0.005,
            0.015,
            0.125,
            1.005,
            2.675,
            -2.675,
            4.9281,
            49.9,
            -49.95,
            0.075,
            99.995,
            999_999_999.99,
            1e9 - 0.005,
            1e9 + 0.25,
            123_456_789.125,
            4.5e15 + 0.5,
            9.3e18,
            -9.3e18,
            1e300,
            1e308,
            -1e308,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            2.0 / 3.0,
            -1.0 / 3.0,
        ] {
            assert_eq!(
                format_number(value),
                format_number_reference(value),
                "{value:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn numbers_format_as_with_format(value in proptest::num::f64::ANY) {
            prop_assert_eq!(format_number(value), format_number_reference(value));
        }

        /// The integer fast path writes what the general path writes, on and beside the
        /// half-cent boundaries where rounding decides.
        #[test]
        fn the_fast_path_formats_as_the_general_one(
            value in proptest::num::f64::ANY,
            half_cents in -2_000_000_001i64..2_000_000_001,
            noise in -1e-9f64..1e-9,
        ) {
            for value in [value, half_cents as f64 / 200.0, half_cents as f64 / 200.0 + noise] {
                let (mut fast, mut general) = (String::new(), String::new());
                push_number(&mut fast, value);
                push_number_general(&mut general, value);
                prop_assert_eq!(fast, general, "{:?}", value);
            }
        }

        /// [`NumberText`] writes what pushing the hundredths digit by digit wrote.
        #[test]
        fn number_texts_write_as_the_digit_by_digit_path(
            cents in -100_000_000_000i64..=100_000_000_000,
            small in -100_000i64..100_000,
        ) {
            for cents in [cents, small] {
                let (mut text, mut old) = (String::from("x"), String::from("x"));
                let number = NumberText::from_cents(cents);
                number.push_onto(&mut text);
                push_cents(&mut old, cents);
                prop_assert_eq!(number.len(), old.len() - 1);
                prop_assert_eq!(text, old, "{}", cents);
            }
        }

        #[test]
        fn clinical_numbers_format_as_with_format(cents in -10_000_000_000i64..10_000_000_000, noise in -0.01f64..0.01) {
            let value = cents as f64 / 100.0 + noise;
            prop_assert_eq!(format_number(value), format_number_reference(value));
        }
    }

    proptest! {
        #[test]
        fn mass_units_convert_consistently(value in 0.001f64..1.0e6) {
            let g = Amount::new(value, DoseUnit::Gram).unwrap().to_mg().unwrap();
            let mg = Amount::new(value * 1000.0, DoseUnit::Milligram).unwrap().to_mg().unwrap();
            let mcg = Amount::new(value * 1.0e6, DoseUnit::Microgram).unwrap().to_mg().unwrap();
            prop_assert!((g - mg).abs() <= 1e-9 * mg.abs().max(1.0));
            prop_assert!((g - mcg).abs() <= 1e-9 * mcg.abs().max(1.0));
        }

        #[test]
        fn amounts_are_positive_and_finite(value in proptest::num::f64::ANY) {
            match Amount::new(value, DoseUnit::Milligram) {
                Ok(a) => prop_assert!(a.value().is_finite() && a.value() > 0.0),
                Err(_) => prop_assert!(!(value.is_finite() && value > 0.0)),
            }
        }

        #[test]
        fn scaling_multiplies(value in 0.01f64..1.0e4, factor in 0.01f64..100.0) {
            let a = Amount::new(value, DoseUnit::Milligram).unwrap();
            let scaled = a.scaled(factor).unwrap();
            prop_assert!((scaled.value() - value * factor).abs() <= 1e-9 * (value * factor));
        }
    }
}
