//! Facts computed once per evaluation and shared by every rule: the patient's age, whether the
//! VCF pathway applies (and the fracture date and etiology), the latest relevant labs, the
//! documented flags. Rules read these instead of re-deriving them, which keeps each rule small
//! and the whole evaluation within its time budget.

use super::medications::{self, Medication};
use crate::decision::Unrecognized;
use crate::domain::{ClinicalFlag, EvaluationInput, LabResult, RecordSection};
use crate::pathway::{Plan, ValueSetId};
use crate::terminology::{DrugClass, Terminology};
use chrono::{DateTime, Utc};
use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Value sets the engine itself reads to decide applicability, etiology, flags and labs. The
/// pathway must define them (checked when it is compiled, which resolves each one to its place
/// in the plan: the engine reads them by index, not by a hashed name per evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineSet {
    VcfFragility,
    VcfTraumatic,
    VcfMalignant,
    ActiveCancer,
    HighEnergyMechanism,
    NeurologicalDeficit,
    HepaticDisease,
    EarlyAugmentationIndication,
    LabEgfr,
    LabCrcl,
    LabCalcium,
    LabVitaminD,
}

impl EngineSet {
    /// Every set, in declaration order (`ALL[set as usize] == set`).
    pub const ALL: [EngineSet; 12] = [
        EngineSet::VcfFragility,
        EngineSet::VcfTraumatic,
        EngineSet::VcfMalignant,
        EngineSet::ActiveCancer,
        EngineSet::HighEnergyMechanism,
        EngineSet::NeurologicalDeficit,
        EngineSet::HepaticDisease,
        EngineSet::EarlyAugmentationIndication,
        EngineSet::LabEgfr,
        EngineSet::LabCrcl,
        EngineSet::LabCalcium,
        EngineSet::LabVitaminD,
    ];

    /// The value set's name in the pathway.
    pub fn name(self) -> &'static str {
        match self {
            EngineSet::VcfFragility => "vcf_fragility",
            EngineSet::VcfTraumatic => "vcf_traumatic",
            EngineSet::VcfMalignant => "vcf_malignant",
            EngineSet::ActiveCancer => "active_cancer",
            EngineSet::HighEnergyMechanism => "high_energy_mechanism",
            EngineSet::NeurologicalDeficit => "neurological_deficit",
            EngineSet::HepaticDisease => "hepatic_disease",
            EngineSet::EarlyAugmentationIndication => "early_augmentation_indication",
            EngineSet::LabEgfr => "lab_egfr",
            EngineSet::LabCrcl => "lab_crcl",
            EngineSet::LabCalcium => "lab_calcium",
            EngineSet::LabVitaminD => "lab_vitamin_d",
        }
    }
}

/// Why the fracture happened; decides which osteoporosis rules apply (pathway-spec, first
/// match wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Etiology {
    Malignant,
    Traumatic,
    Fragility,
}

impl Etiology {
    pub fn as_str(self) -> &'static str {
        match self {
            Etiology::Malignant => "malignant",
            Etiology::Traumatic => "traumatic",
            Etiology::Fragility => "fragility",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fracture {
    /// Onset (else recorded date) of the most recent dated VCF diagnosis; `None` = unknown.
    pub date: Option<DateTime<Utc>>,
    pub etiology: Etiology,
}

impl Fracture {
    /// Whole days from the fracture date to `now`, when the date is known.
    pub fn age_days(&self, now: DateTime<Utc>) -> Option<i64> {
        self.date.map(|d| (now - d).num_days())
    }
}

/// A lab value in the unit the rules use, with its date.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabValue {
    pub value: f64,
    pub at: Option<DateTime<Utc>>,
}

impl LabValue {
    /// Whether the result is dated within `days` before `now` (undated results do not count).
    pub fn within_days(&self, now: DateTime<Utc>, days: i64) -> bool {
        self.at
            .is_some_and(|at| at <= now && (now - at).num_days() <= days)
    }
}

/// Renal function as the dose rules need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labs {
    /// Latest creatinine clearance, mL/min.
    pub crcl: Option<LabValue>,
    /// Latest eGFR, mL/min/1.73 m².
    pub egfr: Option<LabValue>,
    /// Latest serum calcium, mg/dL (mmol/L converted).
    pub calcium_mg_dl: Option<LabValue>,
    /// Latest 25-OH vitamin D, ng/mL (nmol/L converted).
    pub vitamin_d_ng_ml: Option<LabValue>,
}

pub struct Facts<'a> {
    pub plan: &'a Plan,
    pub input: &'a EvaluationInput,
    pub now: DateTime<Utc>,
    pub age: Option<u32>,
    /// `Some` when the patient has an active VCF diagnosis: the VCF rules apply.
    pub fracture: Option<Fracture>,
    /// Native flags plus flags recognized from coded, active diagnoses.
    pub flags: BTreeSet<ClinicalFlag>,
    pub labs: Labs,
    /// Drafted and active medication orders in a current state, drafts first.
    pub medications: Vec<Medication<'a>>,
    /// The patient reference, shared by every suggested resource that names the patient.
    patient_reference: OnceCell<Option<Arc<str>>>,
}

impl<'a> Facts<'a> {
    pub fn gather(plan: &'a Plan, input: &'a EvaluationInput) -> Facts<'a> {
        let now = input.now;
        let patient = &input.patient;
        let age = patient.age_at(now);
        let any_in = |set: EngineSet| {
            let vs = plan.engine_set(set);
            patient
                .diagnoses
                .iter()
                .any(|d| d.is_active() && vs.contains(&d.code))
        };

        let mut flags = patient.flags.clone();
        if any_in(EngineSet::NeurologicalDeficit) {
            flags.insert(ClinicalFlag::NeurologicalDeficit);
        }
        if any_in(EngineSet::HepaticDisease) {
            flags.insert(ClinicalFlag::HepaticDisease);
        }
        if any_in(EngineSet::HighEnergyMechanism) {
            flags.insert(ClinicalFlag::HighEnergyTrauma);
        }

        let fracture = Self::find_fracture(plan, input, age, &flags, &any_in);
        let labs = Labs {
            crcl: latest(plan, &patient.labs, EngineSet::LabCrcl, |v, _| Some(v)),
            egfr: latest(plan, &patient.labs, EngineSet::LabEgfr, |v, _| Some(v)),
            calcium_mg_dl: latest(plan, &patient.labs, EngineSet::LabCalcium, calcium_to_mg_dl),
            vitamin_d_ng_ml: latest(
                plan,
                &patient.labs,
                EngineSet::LabVitaminD,
                vitamin_d_to_ng_ml,
            ),
        };
        Facts {
            plan,
            input,
            now,
            age,
            fracture,
            flags,
            labs,
            medications: medications::resolve(input),
            patient_reference: OnceCell::new(),
        }
    }

    fn find_fracture(
        plan: &Plan,
        input: &EvaluationInput,
        age: Option<u32>,
        flags: &BTreeSet<ClinicalFlag>,
        any_in: &dyn Fn(EngineSet) -> bool,
    ) -> Option<Fracture> {
        let (fragility, traumatic, malignant) = (
            plan.engine_set(EngineSet::VcfFragility),
            plan.engine_set(EngineSet::VcfTraumatic),
            plan.engine_set(EngineSet::VcfMalignant),
        );
        // Read three times below; an iterator, not a vector: a patient has a few diagnoses, and
        // each one's membership is cached in its concept.
        let vcf = || {
            input.patient.diagnoses.iter().filter(|d| {
                d.is_active()
                    && (fragility.contains_code(&d.code)
                        || traumatic.contains_code(&d.code)
                        || malignant.contains_code(&d.code))
            })
        };
        // No active VCF diagnosis: the VCF rules do not apply.
        vcf().next()?;
        // A fracture dated after the evaluation time or before the patient's birth is a date
        // nobody can count days from: unknown, so the rules that need it say so.
        let birth = input.patient.birth_date;
        let date = vcf()
            .filter_map(|d| d.onset_or_recorded())
            .filter(|t| *t <= input.now && birth.is_none_or(|b| t.date_naive() >= b))
            .max();
        let etiology = if any_in(EngineSet::VcfMalignant) || any_in(EngineSet::ActiveCancer) {
            Etiology::Malignant
        } else {
            let only_traumatic_codes = vcf()
                .all(|d| traumatic.contains_code(&d.code) && !fragility.contains_code(&d.code));
            // S-codes at age >= 50 without a high-energy mechanism are fragility fractures:
            // emergency departments code falls from standing height this way.
            let high_energy = flags.contains(&ClinicalFlag::HighEnergyTrauma);
            let young = age.is_some_and(|a| a < 50);
            if only_traumatic_codes && (high_energy || young) {
                Etiology::Traumatic
            } else {
                Etiology::Fragility
            }
        };
        Some(Fracture { date, etiology })
    }

    /// True when the request could not tell us the patient's conditions at all.
    pub fn conditions_absent(&self) -> bool {
        self.input
            .patient
            .absent_sections
            .contains(&RecordSection::Conditions)
    }

    /// The patient reference, copied once per evaluation however many resources name it.
    pub fn patient_reference(&self) -> Option<Arc<str>> {
        self.patient_reference
            .get_or_init(|| self.input.patient.reference.as_deref().map(Arc::from))
            .clone()
    }

    pub fn has_flag(&self, flag: ClinicalFlag) -> bool {
        self.flags.contains(&flag)
    }

    /// Draft medication orders whose drug no table recognizes: no card, but listed so that
    /// the audit log shows what was not checked.
    pub fn unrecognized(&self) -> Vec<Unrecognized> {
        self.medications
            .iter()
            .filter(|m| m.drafted && m.drug.is_none())
            .map(|m| Unrecognized {
                order_ref: m.order.reference.clone(),
                label: m.label(),
            })
            .collect()
    }

    pub fn terminology(&self) -> &'static Terminology {
        Terminology::builtin()
    }

    /// Drafted orders of a drug class.
    pub fn drafted(&self, class: DrugClass) -> impl Iterator<Item = &Medication<'a>> {
        self.medications
            .iter()
            .filter(move |m| m.drafted && m.has_class(class))
    }

    /// Whether a drug of the class is ordered now or already active.
    pub fn ordered_or_active(&self, class: DrugClass) -> bool {
        self.medications.iter().any(|m| m.has_class(class))
    }

    /// Whether a service from value set `set` is drafted or active (current, not a
    /// do-not-perform order).
    pub fn service_ordered_or_active(&self, set: ValueSetId) -> bool {
        let vs = self.plan.value_set(set);
        self.input
            .orders
            .services
            .iter()
            .chain(self.input.patient.active_services.iter())
            .any(|s| s.status.is_current() && !s.do_not_perform && vs.contains(&s.code))
    }
}

/// The most recent lab in `set_name`, converted by `convert(value, unit)`.
fn latest(
    plan: &Plan,
    labs: &[LabResult],
    set: EngineSet,
    convert: impl Fn(f64, Option<&str>) -> Option<f64>,
) -> Option<LabValue> {
    let set = plan.engine_set(set);
    labs.iter()
        .filter(|l| set.contains_code(&l.code))
        .filter_map(|l| {
            convert(l.value, l.unit.as_deref()).map(|value| LabValue {
                value,
                at: l.effective,
            })
        })
        .max_by_key(|l| l.at)
}

/// mmol/L × 4.008 = mg/dL (calcium 40.08 g/mol).
fn calcium_to_mg_dl(value: f64, unit: Option<&str>) -> Option<f64> {
    match unit.map(str::trim) {
        Some(u) if u.eq_ignore_ascii_case("mmol/l") => Some(value * 4.008),
        Some(u) if u.eq_ignore_ascii_case("mg/dl") => Some(value),
        // No unit: values above 5 can only be mg/dL, below 5 only mmol/L.
        None => Some(if value > 5.0 { value } else { value * 4.008 }),
        Some(_) => None,
    }
}

/// nmol/L ÷ 2.496 = ng/mL.
fn vitamin_d_to_ng_ml(value: f64, unit: Option<&str>) -> Option<f64> {
    match unit.map(str::trim) {
        Some(u) if u.eq_ignore_ascii_case("nmol/l") => Some(value / 2.496),
        Some(u) if u.eq_ignore_ascii_case("ng/ml") || u.eq_ignore_ascii_case("ug/l") => Some(value),
        None => Some(value),
        Some(_) => None,
    }
}
