//! Daily-dose arithmetic for the pharmacist checks: how much of each ingredient an order gives
//! per day, under the most aggressive reading of the order (the high end of a dose range, the
//! maximum frequency over the shortest period, an as-needed order at its maximum), and the
//! morphine milligram equivalents (MME) of opioids with the CDC 2022 factors.
//!
//! Every amount carries its explanation ("800 mg × 4/day = 3200 mg/day") because a pharmacist
//! must be able to redo the sum from the card. Whatever cannot be read is returned as
//! [`DailyDose::Unreadable`] naming the field: a dose the engine could not compute is a dose it
//! did not check, and the card must say so rather than pass silently.
//!
//! Units: masses are carried in mg (g and mcg converted), vitamin D in IU (1 mcg = 40 IU, from
//! the terminology), calcium salts in mg of elemental calcium (salt weight × elemental fraction
//! unless the product states its elemental amount), transdermal patches as a delivery rate in
//! mcg/h (no frequency: a patch delivers its rate whatever its change interval).

use crate::domain::units::format_number;
use crate::domain::{Dose, DoseForm, DoseUnit, Field, MedicationOrder};
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
    /// How the amount was computed, e.g. "800 mg × 4/day = 3200 mg/day".
    pub explanation: String,
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
    let range_note = match dose {
        Dose::Range { low, high } => format!(
            " (high end of {}–{} {})",
            format_number(low.value()),
            format_number(high.value()),
            match high.unit() {
                DoseUnit::Count(form) => count_word(form, high.value()),
                unit => unit.symbol().to_owned(),
            }
        ),
        Dose::Fixed { .. } => String::new(),
    };

    if let PerAdministration::MicrogramsPerHour(rate) = per_admin {
        // A patch delivers its rate continuously; the change interval (q72h) does not add to it.
        return Ok(DailyAmount {
            ingredient: component.ingredient,
            amount: rate,
            unit: DailyUnit::MicrogramPerHour,
            explanation: format!("{how}{range_note} = {} mcg/h", format_number(rate)),
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
    let prn = if order.as_needed {
        " (as needed, counted at its maximum)"
    } else {
        ""
    };
    Ok(DailyAmount {
        ingredient: component.ingredient,
        amount: daily,
        unit,
        explanation: format!(
            "{how}{conversion}{range_note} {}{prn} = {} {}",
            if per_day < 1.0 {
                // Weekly, monthly, yearly: "every 7 days" reads better than "× 0.14/day".
                format!(
                    "every {} days",
                    format_number(frequency.min_interval_days())
                )
            } else {
                format!("× {}", frequency.describe())
            },
            format_number(daily),
            unit.per_day_symbol()
        ),
    })
}

/// What one administration of `value` `unit` delivers of the component's ingredient, with a
/// human description ("2 tablet × 325 mg").
fn per_administration(
    value: f64,
    unit: DoseUnit,
    drug: &DrugMatch,
    component: &Component,
    t: &Terminology,
) -> Result<(PerAdministration, String), Problem> {
    let ingredient = t.ingredient(component.ingredient);
    let n = format_number(value);
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
            Ok((PerAdministration::Milligrams(mg), format!("{n} {unit}")))
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
                format!("{n} IU"),
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
            Ok((
                PerAdministration::MicrogramsPerHour(value),
                format!("{n} mcg/h"),
            ))
        }
        DoseUnit::Millilitre => match component.strength {
            Some(Strength::PerMillilitre {
                amount,
                unit: s_unit,
                ..
            }) => Ok((
                strength_amount(amount * value, s_unit),
                format!(
                    "{n} mL × {} {}/mL",
                    format_number(amount),
                    strength_symbol(s_unit)
                ),
            )),
            _ => Err(problem(
                "dose.unit",
                format!(
                    "a dose in mL needs a concentration, and none is known for {}",
                    ingredient.name
                ),
            )),
        },
        DoseUnit::Count(form) => {
            let form_word = count_word(form, value);
            match component.strength {
                Some(Strength::PerUnit {
                    amount,
                    unit: s_unit,
                }) => {
                    let per = strength_amount(amount * value, s_unit);
                    Ok((
                        per,
                        format!(
                            "{n} {form_word} × {} {}",
                            format_number(amount),
                            strength_symbol(s_unit)
                        ),
                    ))
                }
                Some(Strength::PerHour { micrograms }) => Ok((
                    PerAdministration::MicrogramsPerHour(micrograms * value),
                    format!("{n} {form_word} × {} mcg/h", format_number(micrograms)),
                )),
                // A prefilled syringe or a fixed-volume bag: one unit is its whole volume.
                Some(Strength::PerMillilitre {
                    amount,
                    unit: s_unit,
                    volume_ml: Some(volume),
                }) if matches!(form, DoseForm::Each) || drug.form.is_some() => {
                    let per = strength_amount(amount * volume * value, s_unit);
                    Ok((
                        per,
                        format!(
                            "{n} × {} mL × {} {}/mL",
                            format_number(volume),
                            format_number(amount),
                            strength_symbol(s_unit)
                        ),
                    ))
                }
                _ => Err(problem(
                    "dose.unit",
                    format!(
                        "a dose in {} needs the product strength, and none is known for {}",
                        count_word(form, 2.0),
                        ingredient.name
                    ),
                )),
            }
        }
    }
}

/// "1 tablet", "2 tablets", "1 patch", "2 patches".
fn count_word(form: DoseForm, count: f64) -> String {
    let singular = DoseUnit::Count(form).symbol();
    if (count - 1.0).abs() < 1e-9 {
        singular.to_owned()
    } else {
        match form {
            DoseForm::Patch => "patches".to_owned(),
            DoseForm::Suppository => "suppositories".to_owned(),
            _ => format!("{singular}s"),
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

/// Converts one administration to the unit the ingredient is checked in, with a note on the
/// conversion for the explanation (" × 40% elemental").
fn convert(
    per_admin: PerAdministration,
    ingredient: &Ingredient,
    component: &Component,
) -> Result<(f64, DailyUnit, String), Problem> {
    let name = &ingredient.name;
    if let Some(iu_per_mcg) = ingredient.iu_per_microgram {
        // Vitamin D: IU, 40 IU per microgram.
        return match per_admin {
            PerAdministration::InternationalUnits(iu) => {
                Ok((iu, DailyUnit::InternationalUnit, String::new()))
            }
            PerAdministration::Milligrams(mg) => Ok((
                mg * 1000.0 * iu_per_mcg,
                DailyUnit::InternationalUnit,
                format!(
                    " = {} mcg × {} IU/mcg",
                    format_number(mg * 1000.0),
                    format_number(iu_per_mcg)
                ),
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
                    format!(" {name} × {}% elemental", format_number(fraction * 100.0)),
                )),
                _ => Ok((mg, DailyUnit::MilligramElemental, " elemental".to_owned())),
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
            Ok((iu, DailyUnit::InternationalUnit, String::new()))
        }
        PerAdministration::Milligrams(mg) if !iu_limited => {
            Ok((mg, DailyUnit::Milligram, String::new()))
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
            Ok((rate, DailyUnit::MicrogramPerHour, String::new()))
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
    /// MME/day and how it was computed ("60 mg/day × 1.5 = 90 MME/day").
    Counted {
        mme_per_day: f64,
        explanation: String,
    },
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
    let mme_per_day = amount.amount * factor;
    Mme::Counted {
        mme_per_day,
        explanation: format!(
            "{}: {} × {} = {} MME/day",
            ingredient.name,
            amount.explanation,
            format_number(factor),
            format_number(mme_per_day)
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests;
