//! `class_risk_factors` (VCF-NSAID-RENAL): a drug of a class (NSAIDs) drafted for a patient
//! with any of the risk factors the AGS Beers criteria name for it: renal function below a
//! cut-off (eGFR or CrCl), an age at or above a limit, or a drug of an interacting class
//! (anticoagulants: bleeding) ordered or active. The card lists every reason that applies.

use super::{RuleKind, params, renal_function};
use crate::domain::units::push_number;
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::DrugClass;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    class: DrugClass,
    /// Fires when eGFR or CrCl (either) is below this, mL/min(/1.73 m²).
    renal_below: f64,
    /// Fires at this age and above.
    min_age: u32,
    /// Fires when a drug of any of these classes is ordered or active.
    #[serde(default)]
    interacting_classes: Vec<DrugClass>,
    /// How the summary names the interacting drugs ("an anticoagulant").
    #[serde(default = "default_interaction_label")]
    interaction_label: String,
}

fn default_interaction_label() -> String {
    "an interacting drug".to_owned()
}

#[derive(Debug)]
struct ClassRiskFactors(Params);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    Some(Box::new(ClassRiskFactors(p)))
}

/// The texts of a finding's risk factors: short names for the summary ("eGFR 20, age 80"),
/// full reasons for the detail ("eGFR 20 (below 30); age 80 (≥ 75); with ...").
#[derive(Debug, Default, PartialEq)]
struct RiskTexts {
    names: String,
    reasons: String,
}

impl RiskTexts {
    /// Starts a factor after the first: its name and reason follow separators.
    fn next_factor(&mut self) {
        self.names.push_str(", ");
        self.reasons.push_str("; ");
    }
}

/// The risk factors that apply (renal function below the cut-off, age, interacting drugs),
/// written into the two texts directly: collecting each factor's texts and joining them cost
/// a `format!` and a string per factor, and a vector and a join per text.
fn risk_texts(
    p: &Params,
    renal: Option<(f64, &str)>,
    age: Option<u32>,
    interacting: &[&str],
) -> Option<RiskTexts> {
    // Room for every factor, so that the texts never grow.
    let labels: usize = interacting.iter().map(|l| l.len() + 2).sum();
    let mut texts = RiskTexts {
        names: String::with_capacity(48 + p.interaction_label.len()),
        reasons: String::with_capacity(64 + labels),
    };
    let mut factors = 0;
    if let Some((value, measure)) = renal.filter(|(value, _)| *value < p.renal_below) {
        factors += 1;
        let RiskTexts { names, reasons } = &mut texts;
        names.push_str(measure);
        names.push(' ');
        push_number(names, value);
        reasons.push_str(measure);
        reasons.push(' ');
        push_number(reasons, value);
        reasons.push_str(" (below ");
        push_number(reasons, p.renal_below);
        reasons.push(')');
    }
    if let Some(age) = age.filter(|age| *age >= p.min_age) {
        if factors > 0 {
            texts.next_factor();
        }
        factors += 1;
        let RiskTexts { names, reasons } = &mut texts;
        names.push_str("age ");
        push_number(names, f64::from(age));
        reasons.push_str("age ");
        push_number(reasons, f64::from(age));
        reasons.push_str(" (≥ ");
        push_number(reasons, f64::from(p.min_age));
        reasons.push(')');
    }
    if !interacting.is_empty() {
        if factors > 0 {
            texts.next_factor();
        }
        factors += 1;
        let RiskTexts { names, reasons } = &mut texts;
        names.push_str(&p.interaction_label);
        reasons.push_str("with ");
        for (i, label) in interacting.iter().enumerate() {
            if i > 0 {
                reasons.push_str(", ");
            }
            reasons.push_str(label);
        }
    }
    (factors > 0).then_some(texts)
}

/// How [`risk_texts`] wrote the texts before: a `format!` per factor, collected and joined.
/// The oracle of `risk_texts_are_the_joined_factors`.
#[cfg(test)]
fn risk_texts_by_joining(
    p: &Params,
    renal: Option<(f64, &str)>,
    age: Option<u32>,
    interacting: &[&str],
) -> Option<RiskTexts> {
    use crate::domain::units::format_number;
    let mut names = Vec::new();
    let mut reasons = Vec::new();
    if let Some((value, measure)) = renal
        && value < p.renal_below
    {
        names.push(format!("{measure} {}", format_number(value)));
        reasons.push(format!(
            "{measure} {} (below {})",
            format_number(value),
            format_number(p.renal_below)
        ));
    }
    if let Some(age) = age
        && age >= p.min_age
    {
        names.push(format!("age {age}"));
        reasons.push(format!("age {age} (≥ {})", p.min_age));
    }
    if !interacting.is_empty() {
        names.push(p.interaction_label.clone());
        reasons.push(format!("with {}", interacting.join(", ")));
    }
    (!reasons.is_empty()).then(|| RiskTexts {
        names: names.join(", "),
        reasons: reasons.join("; "),
    })
}

impl RuleKind for ClassRiskFactors {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let p = &self.0;
        let mut orders = facts.drafted(p.class).peekable();
        if orders.peek().is_none() {
            return;
        }
        let renal = renal_function(facts);
        if renal.is_none() {
            out.missing("renal_function");
        }
        if facts.age.is_none() {
            out.missing("birth_date");
        }
        let interacting: Vec<&str> = facts
            .medications
            .iter()
            .filter(|m| p.interacting_classes.iter().any(|c| m.has_class(*c)))
            .map(|m| m.order.medication.label_str())
            .collect();
        let Some(mut texts) = risk_texts(p, renal, facts.age, &interacting) else {
            return;
        };
        while let Some(medication) = orders.next() {
            // The last order's finding takes the texts; the others copy them.
            let RiskTexts { names, reasons } = if orders.peek().is_none() {
                std::mem::take(&mut texts)
            } else {
                RiskTexts {
                    names: texts.names.clone(),
                    reasons: texts.reasons.clone(),
                }
            };
            let mut finding = out
                .finding()
                .order(&medication.order.reference)
                .text("drug", medication.label())
                .text("reasons", reasons)
                .text("reason_names", names)
                .number("renal_below", p.renal_below)
                .number("min_age", f64::from(p.min_age));
            if let Some((value, measure)) = renal {
                finding = finding
                    .number("renal_function", value)
                    .text("renal_measure", measure);
            }
            if let Some(age) = facts.age {
                finding = finding.number("age", f64::from(age));
            }
            if !interacting.is_empty() {
                finding = finding.number("interacting_orders", interacting.len() as f64);
            }
            finding.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::testing::{Case, drug_order, egfr, lab, number, vcf_patient_aged};

    proptest::proptest! {
        /// The texts written in place are the factors' texts joined as before: each factor
        /// alone and together, renal values on both sides of the cut-off, fractional values,
        /// ages on both sides of the limit, none to several interacting drugs, an empty
        /// interaction label.
        #[test]
        fn risk_texts_are_the_joined_factors(
            renal in proptest::option::of((0.0f64..120.0, proptest::bool::ANY)),
            age in proptest::option::of(0u32..120),
            interacting in proptest::collection::vec("[a-z ,]{0,6}", 0..3),
            label in "(an anticoagulant|)",
        ) {
            let p = super::Params {
                class: crate::terminology::DrugClass::Nsaid,
                renal_below: 30.5,
                min_age: 75,
                interacting_classes: Vec::new(),
                interaction_label: label,
            };
            let renal = renal.map(|(v, crcl)| (v, if crcl { "CrCl" } else { "eGFR" }));
            let interacting: Vec<&str> = interacting.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(
                super::risk_texts(&p, renal, age, &interacting),
                super::risk_texts_by_joining(&p, renal, age, &interacting)
            );
        }
    }

    fn ibuprofen() -> crate::domain::MedicationOrder {
        drug_order(
            "MedicationRequest/ibu",
            "ibuprofen 400 mg oral tablet",
            Some("5640"),
        )
    }

    #[test]
    fn renal_cut_off_at_30() {
        for (gfr, expect) in [(29.0, Some("warning")), (30.0, None)] {
            let mut case = Case::new(vcf_patient_aged(70, 10)).medication(ibuprofen());
            case.patient_mut().labs.push(egfr(gfr));
            let f = case.expect_severity("VCF-NSAID-RENAL", expect);
            if let Some(f) = f {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/ibu"
                );
                assert_eq!(number(&f, "renal_function"), 29.0);
                assert_eq!(number(&f, "renal_below"), 30.0);
                assert!(f.detail().contains("eGFR 29 (below 30)"), "{}", f.detail());
                assert!(!f.detail().contains("age 70"), "{}", f.detail());
                assert!(f.suggestions.is_empty());
            }
        }
        // Creatinine clearance counts as well.
        let mut case = Case::new(vcf_patient_aged(70, 10)).medication(ibuprofen());
        case.patient_mut()
            .labs
            .push(lab("35591-7", 25.0, "mL/min", 3));
        let f = case
            .expect_severity("VCF-NSAID-RENAL", Some("warning"))
            .unwrap();
        assert!(f.detail().contains("CrCl 25"), "{}", f.detail());
    }

    #[test]
    fn age_75_and_above() {
        for (age, expect) in [(74, None), (75, Some("warning"))] {
            let mut case = Case::new(vcf_patient_aged(age, 10)).medication(ibuprofen());
            case.patient_mut().labs.push(egfr(80.0));
            let f = case.expect_severity("VCF-NSAID-RENAL", expect);
            if let Some(f) = f {
                assert_eq!(number(&f, "age"), 75.0);
                assert_eq!(number(&f, "min_age"), 75.0);
                assert!(f.detail().contains("age 75"), "{}", f.detail());
                assert!(!f.detail().contains("eGFR 80"), "{}", f.detail());
            }
        }
    }

    #[test]
    fn anticoagulant_ordered_or_active_and_all_reasons_listed() {
        let mut case = Case::new(vcf_patient_aged(60, 10))
            .medication(ibuprofen())
            .active_medication(drug_order(
                "MedicationRequest/apx",
                "apixaban 5 mg tablet",
                None,
            ));
        case.patient_mut().labs.push(egfr(90.0));
        let f = case
            .expect_severity("VCF-NSAID-RENAL", Some("warning"))
            .unwrap();
        assert_eq!(number(&f, "interacting_orders"), 1.0);
        assert!(f.detail().contains("apixaban"), "{}", f.detail());

        let mut all = Case::new(vcf_patient_aged(80, 10))
            .medication(ibuprofen())
            .medication(drug_order(
                "MedicationRequest/enox",
                "enoxaparin 40 mg/0.4 mL injection",
                None,
            ));
        all.patient_mut().labs.push(egfr(20.0));
        let f = all
            .expect_severity("VCF-NSAID-RENAL", Some("warning"))
            .unwrap();
        assert!(
            f.summary()
                .starts_with("NSAID with eGFR 20, age 80, an anticoagulant:"),
            "{}",
            f.summary()
        );
        for reason in ["eGFR 20", "age 80", "enoxaparin"] {
            assert!(f.detail().contains(reason), "{reason}: {}", f.detail());
        }
    }

    #[test]
    fn no_risk_no_card_and_unknown_renal_is_recorded() {
        let case = Case::new(vcf_patient_aged(60, 10)).medication(ibuprofen());
        case.expect_severity("VCF-NSAID-RENAL", None);
        let missing = case.evaluate().missing_inputs;
        assert!(missing.iter().any(
            |m| m.input == "renal_function" && m.rules.contains(&"VCF-NSAID-RENAL".to_owned())
        ));
    }
}
