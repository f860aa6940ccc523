//! Daily-dose arithmetic for the pharmacist checks: how much of each ingredient an order gives
//! per day, under the most aggressive reading of the order (the high end of a dose range, the
//! maximum frequency over the shortest period, an as-needed order at its maximum), and the
//! morphine milligram equivalents (MME) of opioids with the CDC 2022 factors.
//!
//! Every amount can explain itself ("800 mg × 4/day = 3200 mg/day") because a pharmacist must
//! be able to redo the sum from the card; the sentence is written only for the amounts a card
//! shows, from the parts kept with the amount. Whatever cannot be read is returned as
//! [`DailyDose::Unreadable`] naming the field: a dose the engine could not compute is a dose it
//! did not check, and the card must say so rather than pass silently.
//!
//! Units: masses are carried in mg (g and mcg converted), vitamin D in IU (1 mcg = 40 IU, from
//! the terminology), calcium salts in mg of elemental calcium (salt weight × elemental fraction
//! unless the product states its elemental amount), transdermal patches as a delivery rate in
//! mcg/h (no frequency: a patch delivers its rate whatever its change interval).

use crate::domain::units::push_number;
use crate::domain::{Dose, DoseForm, DoseUnit, Field, Frequency, MedicationOrder};
use crate::terminology::{
    Component, DrugClass, DrugMatch, Ingredient, IngredientId, LimitUnit, MmeFactor, Strength,
    StrengthUnit, Terminology,
};

/// The unit a daily amount is expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyUnit {
    Milligram,
    /// Elemental calcium.
    MilligramElemental,
    InternationalUnit,
    /// A transdermal delivery rate; not multiplied by any frequency.
    MicrogramPerHour,
}

impl DailyUnit {
    /// How the unit reads on a card, per day ("mg/day") or per hour for patches.
    pub fn per_day_symbol(self) -> &'static str {
        match self {
            DailyUnit::Milligram => "mg/day",
            DailyUnit::MilligramElemental => "mg/day elemental",
            DailyUnit::InternationalUnit => "IU/day",
            DailyUnit::MicrogramPerHour => "mcg/h",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            DailyUnit::Milligram | DailyUnit::MilligramElemental => "mg",
            DailyUnit::InternationalUnit => "IU",
            DailyUnit::MicrogramPerHour => "mcg/h",
        }
    }
}

/// The computed daily amount of one ingredient of one order.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyAmount {
    pub ingredient: IngredientId,
    pub amount: f64,
    pub unit: DailyUnit,
    /// How the amount was computed, kept as its parts: most amounts never reach a card, so
    /// the sentence is written only when one does ([`DailyAmount::explanation`]).
    how: Explanation,
}

impl DailyAmount {
    /// How the amount was computed, e.g. "800 mg × 4/day = 3200 mg/day".
    pub fn explanation(&self, t: &Terminology) -> String {
        let mut out = String::with_capacity(64);
        self.write_explanation(&mut out, t);
        out
    }

    /// [`DailyAmount::explanation`] written onto `out`, for sentences built of several.
    pub fn write_explanation(&self, out: &mut String, t: &Terminology) {
        let e = &self.how;
        e.per_admin.write(out);
        match e.schedule {
            // A patch: its rate, whatever its change interval.
            None => {
                e.write_range(out);
                out.push_str(" = ");
                push_number(out, self.amount);
                out.push_str(" mcg/h");
            }
            Some(Schedule {
                frequency,
                per_day,
                as_needed,
            }) => {
                e.conversion.write(out, &t.ingredient(self.ingredient).name);
                e.write_range(out);
                out.push(' ');
                if per_day < 1.0 {
                    // Weekly, monthly, yearly: "every 7 days" reads better than "× 0.14/day".
                    out.push_str("every ");
                    push_number(out, frequency.min_interval_days());
                    out.push_str(" days");
                } else {
                    out.push_str("× ");
                    frequency.write_description(out);
                }
                if as_needed {
                    out.push_str(" (as needed, counted at its maximum)");
                }
                out.push_str(" = ");
                push_number(out, self.amount);
                out.push(' ');
                out.push_str(self.unit.per_day_symbol());
            }
        }
    }
}

/// The parts of a daily amount's explanation (all plain values: nothing is formatted until a
/// card needs the sentence).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Explanation {
    per_admin: How,
    conversion: Conversion,
    /// A dose range: its low and high values and the high end's unit.
    range: Option<(f64, f64, DoseUnit)>,
    /// `None` for a patch rate, which no frequency multiplies.
    schedule: Option<Schedule>,
}

impl Explanation {
    /// " (high end of 1–2 tablets)".
    fn write_range(&self, out: &mut String) {
        if let Some((low, high, unit)) = self.range {
            out.push_str(" (high end of ");
            push_number(out, low);
            out.push('–');
            push_number(out, high);
            out.push(' ');
            match unit {
                DoseUnit::Count(form) => push_count_word(out, form, high),
                unit => out.push_str(unit.symbol()),
            }
            out.push(')');
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Schedule {
    frequency: Frequency,
    per_day: f64,
    as_needed: bool,
}

/// What one administration is, as the explanation names it ("2 tablets × 325 mg").
#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    /// "800 mg"
    Mass(f64, DoseUnit),
    /// "1000 IU"
    InternationalUnits(f64),
    /// "75 mcg/h"
    Rate(f64),
    /// "50 mL × 1 mg/mL"
    Millilitres(f64, f64, StrengthUnit),
    /// "2 tablets × 325 mg"
    Count(f64, DoseForm, f64, StrengthUnit),
    /// "1 patch × 75 mcg/h"
    CountRate(f64, DoseForm, f64),
    /// "1 × 1 mL × 60 mg/mL"
    CountVolume(f64, f64, f64, StrengthUnit),
}

impl How {
    fn write(&self, out: &mut String) {
        let push_n = push_number;
        match *self {
            How::Mass(n, unit) => {
                push_n(out, n);
                out.push(' ');
                out.push_str(unit.symbol());
            }
            How::InternationalUnits(n) => {
                push_n(out, n);
                out.push_str(" IU");
            }
            How::Rate(n) => {
                push_n(out, n);
                out.push_str(" mcg/h");
            }
            How::Millilitres(n, amount, unit) => {
                push_n(out, n);
                out.push_str(" mL × ");
                push_n(out, amount);
                out.push(' ');
                out.push_str(strength_symbol(unit));
                out.push_str("/mL");
            }
            How::Count(n, form, amount, unit) => {
                push_n(out, n);
                out.push(' ');
                push_count_word(out, form, n);
                out.push_str(" × ");
                push_n(out, amount);
                out.push(' ');
                out.push_str(strength_symbol(unit));
            }
            How::CountRate(n, form, micrograms) => {
                push_n(out, n);
                out.push(' ');
                push_count_word(out, form, n);
                out.push_str(" × ");
                push_n(out, micrograms);
                out.push_str(" mcg/h");
            }
            How::CountVolume(n, volume, amount, unit) => {
                push_n(out, n);
                out.push_str(" × ");
                push_n(out, volume);
                out.push_str(" mL × ");
                push_n(out, amount);
                out.push(' ');
                out.push_str(strength_symbol(unit));
                out.push_str("/mL");
            }
        }
    }
}

/// The conversion to the unit the ingredient is checked in, as the explanation names it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conversion {
    None,
    /// " = 25 mcg × 40 IU/mcg": milligrams and IU per microgram.
    VitaminD(f64, f64),
    /// " calcium carbonate × 40% elemental"
    CalciumSalt(f64),
    /// " elemental"
    Elemental,
}

impl Conversion {
    fn write(&self, out: &mut String, ingredient_name: &str) {
        match *self {
            Conversion::None => {}
            Conversion::VitaminD(mg, iu_per_mcg) => {
                out.push_str(" = ");
                push_number(out, mg * 1000.0);
                out.push_str(" mcg × ");
                push_number(out, iu_per_mcg);
                out.push_str(" IU/mcg");
            }
            Conversion::CalciumSalt(fraction) => {
                out.push(' ');
                out.push_str(ingredient_name);
                out.push_str(" × ");
                push_number(out, fraction * 100.0);
                out.push_str("% elemental");
            }
            Conversion::Elemental => out.push_str(" elemental"),
        }
    }
}

/// Largest daily amount (mg, IU or mcg/h) the arithmetic accepts; sums and MME stay finite.
const MAX_DAILY_AMOUNT: f64 = 1e15;

/// The outcome for one ingredient of an order.
#[derive(Debug, Clone, PartialEq)]
pub enum DailyDose {
    Amount(DailyAmount),
    /// The daily amount could not be computed: `field` names what could not be read
    /// ("dose", "dose.unit", "frequency", or the adapter's field path), `reason` says why.
    Unreadable {
        ingredient: IngredientId,
        field: String,
        reason: String,
    },
}

impl DailyDose {
    pub fn ingredient(&self) -> IngredientId {
        match self {
            DailyDose::Amount(a) => a.ingredient,
            DailyDose::Unreadable { ingredient, .. } => *ingredient,
        }
    }

    pub fn amount(&self) -> Option<&DailyAmount> {
        match self {
            DailyDose::Amount(a) => Some(a),
            DailyDose::Unreadable { .. } => None,
        }
    }
}

/// What one administration delivers of one ingredient, before conversion to the daily unit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PerAdministration {
    Milligrams(f64),
    InternationalUnits(f64),
    MicrogramsPerHour(f64),
}

struct Problem {
    field: String,
    reason: String,
}

fn problem(field: &str, reason: impl Into<String>) -> Problem {
    Problem {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Daily amounts of every ingredient of `drug` given by `order` (one entry per component, in
/// the product's order).
pub fn daily_doses(order: &MedicationOrder, drug: &DrugMatch, t: &Terminology) -> Vec<DailyDose> {
    drug.components
        .iter()
        .map(|component| match daily_dose(order, drug, component, t) {
            Ok(amount) => DailyDose::Amount(amount),
            Err(p) => DailyDose::Unreadable {
                ingredient: component.ingredient,
                field: p.field,
                reason: p.reason,
            },
        })
        .collect()
}

fn daily_dose(
    order: &MedicationOrder,
    drug: &DrugMatch,
    component: &Component,
    t: &Terminology,
) -> Result<DailyAmount, Problem> {
    let ingredient = t.ingredient(component.ingredient);
    let dose = match &order.dose {
        Field::Given(dose) => *dose,
        Field::Absent => return Err(problem("dose", "no dose was given")),
        Field::Unreadable(u) => return Err(problem(&u.field, u.reason.clone())),
    };
    let amount = dose.max();
    let (per_admin, how) = per_administration(amount.value(), amount.unit(), drug, component, t)?;
    let range = match dose {
        Dose::Range { low, high } => Some((low.value(), high.value(), high.unit())),
        Dose::Fixed { .. } => None,
    };

    if let PerAdministration::MicrogramsPerHour(rate) = per_admin {
        // A patch delivers its rate continuously; the change interval (q72h) does not add to it.
        return Ok(DailyAmount {
            ingredient: component.ingredient,
            amount: rate,
            unit: DailyUnit::MicrogramPerHour,
            how: Explanation {
                per_admin: how,
                conversion: Conversion::None,
                range,
                schedule: None,
            },
        });
    }

    let frequency = match &order.frequency {
        Field::Given(f) => *f,
        Field::Absent if order.as_needed => {
            return Err(problem(
                "frequency",
                "an as-needed dose without a maximum frequency",
            ));
        }
        Field::Absent => return Err(problem("frequency", "no frequency was given")),
        Field::Unreadable(u) => return Err(problem(&u.field, u.reason.clone())),
    };
    let per_day = frequency.max_per_day();
    let (value, unit, conversion) = convert(per_admin, ingredient, component)?;
    let daily = value * per_day;
    // Past this no arithmetic on the amount means anything (1e308 g a day is "inf mg"): the
    // dose is unreadable, not a number to put on a card.
    if !(daily.is_finite() && daily <= MAX_DAILY_AMOUNT) {
        return Err(problem(
            "dose",
            "the daily amount is too large to be a dose (over 10^15 a day)",
        ));
    }
    Ok(DailyAmount {
        ingredient: component.ingredient,
        amount: daily,
        unit,
        how: Explanation {
            per_admin: how,
            conversion,
            range,
            schedule: Some(Schedule {
                frequency,
                per_day,
                as_needed: order.as_needed,
            }),
        },
    })
}

/// What one administration of `value` `unit` delivers of the component's ingredient, with the
/// parts of its description ("2 tablets × 325 mg").
fn per_administration(
    value: f64,
    unit: DoseUnit,
    drug: &DrugMatch,
    component: &Component,
    t: &Terminology,
) -> Result<(PerAdministration, How), Problem> {
    let ingredient = t.ingredient(component.ingredient);
    let n = value;
    match unit {
        DoseUnit::Milligram | DoseUnit::Gram | DoseUnit::Microgram => {
            // A mass names one ingredient; in a combination it is ambiguous (10 mg of which?).
            if drug.components.len() > 1 {
                return Err(problem(
                    "dose.unit",
                    format!(
                        "a dose in {unit} of a combination product does not say which ingredient it measures; order it in tablets or mL"
                    ),
                ));
            }
            let mg = value * unit.milligrams_per_unit().unwrap_or(1.0);
            Ok((PerAdministration::Milligrams(mg), How::Mass(n, unit)))
        }
        DoseUnit::InternationalUnit => {
            if drug.components.len() > 1 {
                return Err(problem(
                    "dose.unit",
                    "a dose in IU of a combination product does not say which ingredient it measures",
                ));
            }
            Ok((
                PerAdministration::InternationalUnits(value),
                How::InternationalUnits(n),
            ))
        }
        DoseUnit::MicrogramPerHour => {
            let is_patch = matches!(component.strength, Some(Strength::PerHour { .. }))
                || matches!(ingredient.mme, Some(MmeFactor::PerMicrogramPerHour(_)))
                || drug.form == Some(crate::terminology::ProductForm::Patch);
            if !is_patch {
                return Err(problem(
                    "dose.unit",
                    format!(
                        "mcg/h is a patch rate, and {} is not a patch",
                        ingredient.name
                    ),
                ));
            }
            Ok((PerAdministration::MicrogramsPerHour(value), How::Rate(n)))
        }
        DoseUnit::Millilitre => match component.strength {
            Some(Strength::PerMillilitre {
                amount,
                unit: s_unit,
                ..
            }) => Ok((
                strength_amount(amount * value, s_unit),
                How::Millilitres(n, amount, s_unit),
            )),
            _ => Err(problem(
                "dose.unit",
                format!(
                    "a dose in mL needs a concentration, and none is known for {}",
                    ingredient.name
                ),
            )),
        },
        DoseUnit::Count(form) => match component.strength {
            Some(Strength::PerUnit {
                amount,
                unit: s_unit,
            }) => Ok((
                strength_amount(amount * value, s_unit),
                How::Count(n, form, amount, s_unit),
            )),
            Some(Strength::PerHour { micrograms }) => Ok((
                PerAdministration::MicrogramsPerHour(micrograms * value),
                How::CountRate(n, form, micrograms),
            )),
            // A prefilled syringe or a fixed-volume bag: one unit is its whole volume.
            Some(Strength::PerMillilitre {
                amount,
                unit: s_unit,
                volume_ml: Some(volume),
            }) if matches!(form, DoseForm::Each) || drug.form.is_some() => Ok((
                strength_amount(amount * volume * value, s_unit),
                How::CountVolume(n, volume, amount, s_unit),
            )),
            _ => Err(problem(
                "dose.unit",
                format!(
                    "a dose in {} needs the product strength, and none is known for {}",
                    count_word(form, 2.0),
                    ingredient.name
                ),
            )),
        },
    }
}

/// "1 tablet", "2 tablets", "1 patch", "2 patches".
fn count_word(form: DoseForm, count: f64) -> String {
    let mut out = String::new();
    push_count_word(&mut out, form, count);
    out
}

fn push_count_word(out: &mut String, form: DoseForm, count: f64) {
    let singular = DoseUnit::Count(form).symbol();
    if (count - 1.0).abs() < 1e-9 {
        out.push_str(singular);
    } else {
        match form {
            DoseForm::Patch => out.push_str("patches"),
            DoseForm::Suppository => out.push_str("suppositories"),
            _ => {
                out.push_str(singular);
                out.push('s');
            }
        }
    }
}

fn strength_amount(amount: f64, unit: StrengthUnit) -> PerAdministration {
    match unit {
        StrengthUnit::Milligram => PerAdministration::Milligrams(amount),
        StrengthUnit::Microgram => PerAdministration::Milligrams(amount / 1000.0),
        StrengthUnit::InternationalUnit => PerAdministration::InternationalUnits(amount),
    }
}

fn strength_symbol(unit: StrengthUnit) -> &'static str {
    match unit {
        StrengthUnit::Milligram => "mg",
        StrengthUnit::Microgram => "mcg",
        StrengthUnit::InternationalUnit => "IU",
    }
}

/// Converts one administration to the unit the ingredient is checked in, with the conversion
/// the explanation names (" × 40% elemental").
fn convert(
    per_admin: PerAdministration,
    ingredient: &Ingredient,
    component: &Component,
) -> Result<(f64, DailyUnit, Conversion), Problem> {
    let name = &ingredient.name;
    if let Some(iu_per_mcg) = ingredient.iu_per_microgram {
        // Vitamin D: IU, 40 IU per microgram.
        return match per_admin {
            PerAdministration::InternationalUnits(iu) => {
                Ok((iu, DailyUnit::InternationalUnit, Conversion::None))
            }
            PerAdministration::Milligrams(mg) => Ok((
                mg * 1000.0 * iu_per_mcg,
                DailyUnit::InternationalUnit,
                Conversion::VitaminD(mg, iu_per_mcg),
            )),
            PerAdministration::MicrogramsPerHour(_) => Err(problem(
                "dose.unit",
                format!("mcg/h does not apply to {name}"),
            )),
        };
    }
    if ingredient.classes.contains(&DrugClass::Calcium) {
        return match per_admin {
            PerAdministration::Milligrams(mg) => match ingredient.elemental_fraction {
                Some(fraction) if !component.elemental => Ok((
                    mg * fraction,
                    DailyUnit::MilligramElemental,
                    Conversion::CalciumSalt(fraction),
                )),
                _ => Ok((mg, DailyUnit::MilligramElemental, Conversion::Elemental)),
            },
            _ => Err(problem(
                "dose.unit",
                format!("calcium is dosed by mass; this unit does not convert for {name}"),
            )),
        };
    }
    let iu_limited = ingredient
        .max_daily
        .is_some_and(|l| l.unit == LimitUnit::InternationalUnit);
    match per_admin {
        PerAdministration::InternationalUnits(iu) if iu_limited => {
            Ok((iu, DailyUnit::InternationalUnit, Conversion::None))
        }
        PerAdministration::Milligrams(mg) if !iu_limited => {
            Ok((mg, DailyUnit::Milligram, Conversion::None))
        }
        PerAdministration::Milligrams(_) => Err(problem(
            "dose.unit",
            format!("{name} is dosed in IU; a mass does not convert"),
        )),
        PerAdministration::InternationalUnits(_) => Err(problem(
            "dose.unit",
            format!("{name} is dosed by mass; IU do not convert to mg"),
        )),
        PerAdministration::MicrogramsPerHour(rate) => {
            Ok((rate, DailyUnit::MicrogramPerHour, Conversion::None))
        }
    }
}

/// The daily limit of an ingredient converted to the unit its daily amount is computed in.
pub fn limit_in(limit_amount: f64, limit_unit: LimitUnit, unit: DailyUnit) -> Option<f64> {
    match (limit_unit, unit) {
        (LimitUnit::Milligram, DailyUnit::Milligram)
        | (LimitUnit::MilligramElemental, DailyUnit::MilligramElemental)
        | (LimitUnit::InternationalUnit, DailyUnit::InternationalUnit) => Some(limit_amount),
        (LimitUnit::Microgram, DailyUnit::Milligram) => Some(limit_amount / 1000.0),
        _ => None,
    }
}

/// The MME/day of one ingredient's daily amount under the CDC 2022 factors.
#[derive(Debug, Clone, PartialEq)]
pub enum Mme {
    /// MME/day and the factor it was computed with ([`write_mme_explanation`] writes the sum out).
    Counted { mme_per_day: f64, factor: f64 },
    /// Buprenorphine: the CDC 2022 guideline leaves it out of MME.
    NotCounted,
    /// An opioid without a CDC 2022 factor for this form (meperidine; fentanyl other than a
    /// patch): its MME is unknown, not zero.
    Unknown,
    /// Not an opioid.
    NotAnOpioid,
}

/// MME/day of a daily amount. Fentanyl patches: mcg/h × 2.4, whatever the change interval.
pub fn mme(amount: &DailyAmount, t: &Terminology) -> Mme {
    let ingredient = t.ingredient(amount.ingredient);
    if !ingredient.classes.contains(&DrugClass::Opioid) {
        return Mme::NotAnOpioid;
    }
    let factor = match (ingredient.mme, amount.unit) {
        (Some(MmeFactor::NotCounted), _) => return Mme::NotCounted,
        (Some(MmeFactor::PerMilligram(f)), DailyUnit::Milligram)
        | (Some(MmeFactor::PerMicrogramPerHour(f)), DailyUnit::MicrogramPerHour) => f,
        _ => return Mme::Unknown,
    };
    Mme::Counted {
        mme_per_day: amount.amount * factor,
        factor,
    }
}

/// How a counted MME/day was computed, written onto `out`: "oxycodone: 60 mg/day × 1.5 = 90
/// MME/day" (with the daily amount's own explanation in the middle).
pub fn write_mme_explanation(
    out: &mut String,
    amount: &DailyAmount,
    factor: f64,
    mme_per_day: f64,
    t: &Terminology,
) {
    out.push_str(&t.ingredient(amount.ingredient).name);
    out.push_str(": ");
    amount.write_explanation(out, t);
    out.push_str(" × ");
    push_number(out, factor);
    out.push_str(" = ");
    push_number(out, mme_per_day);
    out.push_str(" MME/day");
}

#[cfg(test)]
pub(crate) mod tests;
