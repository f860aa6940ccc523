//! How often a medication is given. Built from FHIR `Timing.repeat` (frequency, frequencyMax,
//! period, periodMax, periodUnit, timeOfDay, when), from FHIR `Timing.code` abbreviations, or
//! from the native order set, which uses the same fields.
//!
//! Two readings are kept apart on purpose: the *nominal* rate (frequency / period) and the *most
//! aggressive* rate (frequencyMax over the shorter period), which the dose and MME rules use so
//! that a range order is checked at its ceiling.

use super::units::{PeriodUnit, UnitError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum TimingError {
    #[error("frequency must be a whole number of at least 1, got {0}")]
    BadFrequency(String),
    #[error("frequencyMax {max} is below frequency {frequency}")]
    MaxBelowFrequency { frequency: u32, max: u32 },
    #[error("period must be a positive number, got {0}")]
    BadPeriod(String),
    #[error("periodMax {max} is below period {period}")]
    PeriodMaxBelowPeriod { period: f64, max: f64 },
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error("a frequency is given without a period unit")]
    MissingPeriodUnit,
    #[error("timing code {0:?} is not one orderguard understands")]
    UnknownCode(String),
}

/// The raw `Timing.repeat` fields, as read from a FHIR resource or the native order set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepeatSpec {
    #[serde(default)]
    pub frequency: Option<f64>,
    #[serde(default, rename = "frequencyMax", alias = "frequency_max")]
    pub frequency_max: Option<f64>,
    #[serde(default)]
    pub period: Option<f64>,
    #[serde(default, rename = "periodMax", alias = "period_max")]
    pub period_max: Option<f64>,
    #[serde(default, rename = "periodUnit", alias = "period_unit")]
    pub period_unit: Option<String>,
    /// Number of `timeOfDay` entries (each is one administration per day).
    #[serde(default, rename = "timeOfDayCount", alias = "time_of_day_count")]
    pub time_of_day_count: usize,
    /// Number of `when` entries (MORN, NIGHT, ...: each one administration per day).
    #[serde(default, rename = "whenCount", alias = "when_count")]
    pub when_count: usize,
}

/// A well-formed administration schedule: `count` (up to `count_max`) times every `period`
/// (up to `period_max`) `unit`s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Frequency {
    count: u32,
    count_max: Option<u32>,
    period: f64,
    period_max: Option<f64>,
    unit: PeriodUnit,
}

fn whole_count(value: f64) -> Result<u32, TimingError> {
    if value.is_finite() && value >= 1.0 && value.fract() == 0.0 && value <= 10_000.0 {
        Ok(value as u32)
    } else {
        Err(TimingError::BadFrequency(value.to_string()))
    }
}

fn positive(value: f64) -> Result<f64, TimingError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(TimingError::BadPeriod(value.to_string()))
    }
}

impl Frequency {
    pub fn new(
        count: u32,
        count_max: Option<u32>,
        period: f64,
        period_max: Option<f64>,
        unit: PeriodUnit,
    ) -> Result<Frequency, TimingError> {
        if count == 0 {
            return Err(TimingError::BadFrequency("0".into()));
        }
        if let Some(max) = count_max
            && max < count
        {
            return Err(TimingError::MaxBelowFrequency {
                frequency: count,
                max,
            });
        }
        let period = positive(period)?;
        if let Some(max) = period_max {
            let max = positive(max)?;
            if max < period {
                return Err(TimingError::PeriodMaxBelowPeriod { period, max });
            }
        }
        Ok(Frequency {
            count,
            count_max,
            period,
            period_max,
            unit,
        })
    }

    /// `count` times a day.
    pub fn times_per_day(count: u32) -> Result<Frequency, TimingError> {
        Frequency::new(count, None, 1.0, None, PeriodUnit::Day)
    }

    /// Once every `period` `unit`s ("every 6 months").
    pub fn once_every(period: f64, unit: PeriodUnit) -> Result<Frequency, TimingError> {
        Frequency::new(1, None, period, None, unit)
    }

    /// Builds a frequency from `Timing.repeat`. `Ok(None)` when the repeat says nothing about
    /// how often (a one-off or an incomplete order-select draft).
    pub fn from_repeat(spec: &RepeatSpec) -> Result<Option<Frequency>, TimingError> {
        // timeOfDay / when without a frequency: one administration per listed time, daily.
        let implied_daily = spec.time_of_day_count.max(spec.when_count);
        let count = match spec.frequency {
            Some(f) => whole_count(f)?,
            None if implied_daily > 0 => implied_daily as u32,
            None if spec.period.is_some() => 1,
            None => return Ok(None),
        };
        let count_max = spec.frequency_max.map(whole_count).transpose()?;
        let (period, unit) = match (spec.period, spec.period_unit.as_deref()) {
            (Some(p), Some(u)) => (p, PeriodUnit::parse(u)?),
            (None, Some(u)) => (1.0, PeriodUnit::parse(u)?),
            (None, None) if spec.frequency.is_none() => (1.0, PeriodUnit::Day),
            (_, None) => return Err(TimingError::MissingPeriodUnit),
        };
        Frequency::new(count, count_max, period, spec.period_max, unit).map(Some)
    }

    /// Parses FHIR `Timing.code` abbreviations (HL7 GTSAbbreviation) and the common sig words:
    /// QD, BID, TID, QID, QOD, Q4H, Q6H, Q8H, Q12H, QAM, QHS, WK, MO, "daily", "weekly",
    /// "monthly", "yearly", "every 6 months".
    pub fn parse_code(raw: &str) -> Result<Frequency, TimingError> {
        let code = raw
            .trim()
            .to_ascii_lowercase()
            .replace(['.', '-', '_'], " ");
        let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
        let per_day = |n| Frequency::times_per_day(n);
        match code.as_str() {
            "qd" | "daily" | "once daily" | "od" | "qam" | "am" | "pm" | "qhs" | "hs"
            | "at bedtime" | "every day" | "once a day" => per_day(1),
            "bid" | "twice daily" | "twice a day" => per_day(2),
            "tid" | "three times daily" | "three times a day" => per_day(3),
            "qid" | "four times daily" | "four times a day" => per_day(4),
            "qod" | "every other day" => Frequency::once_every(2.0, PeriodUnit::Day),
            "wk" | "weekly" | "once weekly" | "once a week" | "qwk" | "qw" => {
                Frequency::once_every(1.0, PeriodUnit::Week)
            }
            "mo" | "monthly" | "once monthly" | "once a month" | "qmo" | "qm" => {
                Frequency::once_every(1.0, PeriodUnit::Month)
            }
            "yearly" | "annually" | "once yearly" | "once a year" | "qyr" => {
                Frequency::once_every(1.0, PeriodUnit::Year)
            }
            _ => parse_every(&code).ok_or_else(|| TimingError::UnknownCode(raw.to_owned())),
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn count_max(&self) -> Option<u32> {
        self.count_max
    }

    pub fn period(&self) -> f64 {
        self.period
    }

    pub fn period_max(&self) -> Option<f64> {
        self.period_max
    }

    pub fn unit(&self) -> PeriodUnit {
        self.unit
    }

    /// Length of the (shortest) period in days.
    pub fn period_days(&self) -> f64 {
        self.period * self.unit.days()
    }

    /// Nominal administrations per day: frequency / period.
    pub fn per_day(&self) -> f64 {
        f64::from(self.count) / self.period_days()
    }

    /// Most aggressive reading: frequencyMax over the shortest period.
    pub fn max_per_day(&self) -> f64 {
        f64::from(self.count_max.unwrap_or(self.count)) / self.period_days()
    }

    /// Shortest interval between two administrations, in days, under the most aggressive
    /// reading (used by the weekly / monthly / yearly regimen rule).
    pub fn min_interval_days(&self) -> f64 {
        self.period_days() / f64::from(self.count_max.unwrap_or(self.count))
    }

    /// A short human description for cards ("3 times per 1 d" reads badly): "4/day",
    /// "once every 7 days".
    pub fn describe(&self) -> String {
        let mut out = String::with_capacity(16);
        self.write_description(&mut out);
        out
    }

    /// [`Frequency::describe`] written onto `out`.
    pub fn write_description(&self, out: &mut String) {
        let per_day = self.max_per_day();
        if per_day >= 1.0 {
            super::units::push_number(out, per_day);
            out.push_str("/day");
        } else {
            out.push_str("once every ");
            super::units::push_number(out, self.min_interval_days());
            out.push_str(" days");
        }
    }
}

/// "q8h", "q 8 h", "every 8 hours", "every 6 months", "q2wk".
fn parse_every(code: &str) -> Option<Frequency> {
    let rest = code
        .strip_prefix("every ")
        .or_else(|| code.strip_prefix("q "))
        .or_else(|| code.strip_prefix('q'))?;
    let rest = rest.trim();
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, unit) = rest.split_at(split);
    let number: f64 = if number.is_empty() {
        1.0
    } else {
        number.parse().ok()?
    };
    let unit = PeriodUnit::parse(unit.trim()).ok()?;
    Frequency::once_every(number, unit).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn repeat(f: Option<f64>, fmax: Option<f64>, p: Option<f64>, unit: Option<&str>) -> RepeatSpec {
        RepeatSpec {
            frequency: f,
            frequency_max: fmax,
            period: p,
            period_unit: unit.map(str::to_owned),
            ..RepeatSpec::default()
        }
    }

    #[test]
    fn reads_repeat_fields() {
        let q6h = Frequency::from_repeat(&repeat(Some(1.0), None, Some(6.0), Some("h")))
            .unwrap()
            .unwrap();
        assert_eq!(q6h.per_day(), 4.0);
        let prn = Frequency::from_repeat(&repeat(Some(1.0), Some(2.0), Some(4.0), Some("h")))
            .unwrap()
            .unwrap();
        assert_eq!(prn.per_day(), 6.0);
        assert_eq!(prn.max_per_day(), 12.0);
        let weekly = Frequency::from_repeat(&repeat(Some(1.0), None, Some(1.0), Some("wk")))
            .unwrap()
            .unwrap();
        assert!((weekly.per_day() - 1.0 / 7.0).abs() < 1e-12);
        let six_monthly = Frequency::from_repeat(&repeat(Some(1.0), None, Some(6.0), Some("mo")))
            .unwrap()
            .unwrap();
        assert!((six_monthly.min_interval_days() - 182.625).abs() < 1e-9);
    }

    #[test]
    fn period_max_keeps_the_shorter_period_for_the_ceiling() {
        let spec = RepeatSpec {
            period_max: Some(6.0),
            ..repeat(Some(1.0), None, Some(4.0), Some("h"))
        };
        let f = Frequency::from_repeat(&spec).unwrap().unwrap();
        assert_eq!(f.max_per_day(), 6.0);
    }

    #[test]
    fn time_of_day_and_when_imply_daily_counts() {
        let spec = RepeatSpec {
            time_of_day_count: 3,
            ..RepeatSpec::default()
        };
        assert_eq!(
            Frequency::from_repeat(&spec).unwrap().unwrap().per_day(),
            3.0
        );
        let spec = RepeatSpec {
            when_count: 2,
            ..RepeatSpec::default()
        };
        assert_eq!(
            Frequency::from_repeat(&spec).unwrap().unwrap().per_day(),
            2.0
        );
    }

    #[test]
    fn nothing_given_is_no_frequency_and_nonsense_is_an_error() {
        assert_eq!(
            Frequency::from_repeat(&RepeatSpec::default()).unwrap(),
            None
        );
        assert!(Frequency::from_repeat(&repeat(Some(0.0), None, Some(1.0), Some("d"))).is_err());
        assert!(Frequency::from_repeat(&repeat(Some(1.5), None, Some(1.0), Some("d"))).is_err());
        assert!(
            Frequency::from_repeat(&repeat(Some(2.0), Some(1.0), Some(1.0), Some("d"))).is_err()
        );
        assert!(Frequency::from_repeat(&repeat(Some(1.0), None, Some(-1.0), Some("d"))).is_err());
        assert!(
            Frequency::from_repeat(&repeat(Some(1.0), None, Some(1.0), Some("fortnight"))).is_err()
        );
        assert!(Frequency::from_repeat(&repeat(Some(1.0), None, Some(1.0), None)).is_err());
    }

    #[test]
    fn parses_sig_codes() {
        for (code, per_day) in [
            ("BID", 2.0),
            ("tid", 3.0),
            ("QID", 4.0),
            ("QD", 1.0),
            ("q8h", 3.0),
            ("Q4H", 6.0),
            ("every 12 hours", 2.0),
            ("QOD", 0.5),
        ] {
            assert_eq!(
                Frequency::parse_code(code).unwrap().per_day(),
                per_day,
                "{code}"
            );
        }
        assert_eq!(
            Frequency::parse_code("weekly").unwrap().min_interval_days(),
            7.0
        );
        assert_eq!(
            Frequency::parse_code("monthly")
                .unwrap()
                .min_interval_days(),
            30.4375
        );
        assert!(
            (Frequency::parse_code("every 6 months")
                .unwrap()
                .min_interval_days()
                - 182.625)
                .abs()
                < 1e-9
        );
        assert!(Frequency::parse_code("whenever").is_err());
    }

    proptest! {
        #[test]
        fn max_rate_is_never_below_nominal(
            count in 1u32..24, extra in 0u32..24, period in 0.1f64..48.0, unit_ix in 0usize..7
        ) {
            let units = [PeriodUnit::Second, PeriodUnit::Minute, PeriodUnit::Hour, PeriodUnit::Day,
                         PeriodUnit::Week, PeriodUnit::Month, PeriodUnit::Year];
            let f = Frequency::new(count, Some(count + extra), period, None, units[unit_ix]).unwrap();
            prop_assert!(f.max_per_day() >= f.per_day());
            prop_assert!((f.min_interval_days() * f.max_per_day() - 1.0).abs() < 1e-9);
        }
    }
}
