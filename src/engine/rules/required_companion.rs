//! `required_companion` (VCF-OPIOID-FIRSTLINE, VCF-OPIOID-BOWEL, VCF-ANTIOP-MISSING,
//! VCF-PT-MISSING, VCF-NEURO-REDFLAG, VCF-MALIGNANCY-MRI): when a trigger holds (a drug class is
//! drafted, an etiology, a documented flag, a fracture old enough), something must go with it
//! (a drug class, a service order, a recent imaging report), ordered or already active.
//!
//! Which of the rule's suggestions a card offers may depend on the patient (an NSAID only with
//! good renal function and under 75, alendronate or denosumab by renal function): the `offer`
//! list names them with their conditions.

use super::{RuleKind, params, renal_function};
use crate::domain::{ClinicalFlag, RecordSection};
use crate::engine::medications::Medication;
use crate::engine::{Emitter, Etiology, Facts};
use crate::pathway::{CompileContext, ValueSetId};
use crate::terminology::DrugClass;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    trigger: TriggerParams,
    companion: CompanionParams,
    /// Documented flags that make the companion moot (e.g. intolerance of every agent).
    #[serde(default)]
    unless_flags: Vec<ClinicalFlag>,
    /// The suggestions to offer and when; empty = every suggestion of the rule.
    #[serde(default)]
    offer: Vec<Offer>,
}

/// Every criterion given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerParams {
    /// A drug of this class is in the draft orders; the card is about that order.
    drafted_class: Option<DrugClass>,
    /// The fracture's etiology is one of these (`fragility`, `traumatic`, `malignant`).
    #[serde(default)]
    etiology: Vec<String>,
    flag: Option<ClinicalFlag>,
    /// The fracture is at least this many whole days old; an unknown date also triggers (the
    /// card then says the date is unknown: message variant `date_unknown`).
    min_fracture_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompanionParams {
    /// Any drug of any of these classes, drafted or active.
    #[serde(default)]
    classes: Vec<DrugClass>,
    /// Any service order from any of these value sets, drafted or active.
    #[serde(default)]
    services: Vec<String>,
    /// An imaging report from this value set within the last `within_days`.
    imaging: Option<ImagingParams>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagingParams {
    value_set: String,
    within_days: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Offer {
    id: String,
    #[serde(default)]
    when: Condition,
}

/// Conditions on a suggestion; all given must hold. Renal function is the stricter of eGFR
/// and CrCl (see [`renal_function`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    renal_at_least: Option<f64>,
    renal_below: Option<f64>,
    /// Whether the renal conditions count as met when no renal result is known.
    #[serde(default)]
    renal_unknown_ok: bool,
    /// Age strictly below this (an unknown age does not qualify).
    age_below: Option<u32>,
    /// No drug of these classes ordered or active (an NSAID is not offered alongside an
    /// anticoagulant: VCF-NSAID-RENAL would warn against the very suggestion).
    #[serde(default)]
    without_classes: Vec<DrugClass>,
}

impl Condition {
    fn holds(&self, facts: &Facts<'_>) -> bool {
        let renal_ok = match renal_function(facts) {
            Some((value, _)) => {
                self.renal_at_least.is_none_or(|min| value >= min)
                    && self.renal_below.is_none_or(|max| value < max)
            }
            None => {
                self.renal_unknown_ok
                    || (self.renal_at_least.is_none() && self.renal_below.is_none())
            }
        };
        let age_ok = self
            .age_below
            .is_none_or(|limit| facts.age.is_some_and(|age| age < limit));
        let interactions_ok = !self
            .without_classes
            .iter()
            .any(|class| facts.ordered_or_active(*class));
        renal_ok && age_ok && interactions_ok
    }
}

#[derive(Debug)]
struct RequiredCompanion {
    params: Params,
    etiologies: Vec<Etiology>,
    /// `companion.services`, resolved to the plan's value sets when the rule compiles.
    services: Vec<ValueSetId>,
    imaging: Option<(ValueSetId, i64)>,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    let mut ok = true;
    let mut etiologies = Vec::new();
    for name in &p.trigger.etiology {
        match name.as_str() {
            "fragility" => etiologies.push(Etiology::Fragility),
            "traumatic" => etiologies.push(Etiology::Traumatic),
            "malignant" => etiologies.push(Etiology::Malignant),
            other => {
                ctx.error("trigger/etiology", format!("unknown etiology {other:?}"));
                ok = false;
            }
        }
    }
    let t = &p.trigger;
    if t.drafted_class.is_none()
        && t.etiology.is_empty()
        && t.flag.is_none()
        && t.min_fracture_days.is_none()
    {
        ctx.error("trigger", "give at least one trigger criterion");
        ok = false;
    }
    let c = &p.companion;
    if c.classes.is_empty() && c.services.is_empty() && c.imaging.is_none() {
        ctx.error("companion", "give at least one companion");
        ok = false;
    }
    let mut services = Vec::with_capacity(c.services.len());
    for (i, set) in c.services.iter().enumerate() {
        match ctx.value_set(&format!("companion/services/{i}"), set) {
            Some(id) => services.push(id),
            None => ok = false,
        }
    }
    let imaging = match &c.imaging {
        Some(i) => Some((
            ctx.value_set("companion/imaging/value_set", &i.value_set)?,
            i.within_days,
        )),
        None => None,
    };
    ok.then(|| {
        Box::new(RequiredCompanion {
            params: p,
            etiologies,
            services,
            imaging,
        }) as Box<dyn RuleKind>
    })
}

/// Whether the companion is present; `Err(section)` when it is not seen and the part of the
/// record that could hold it was not supplied (then the rule does not guess).
fn companion_present(rule: &RequiredCompanion, facts: &Facts<'_>) -> Result<bool, &'static str> {
    let c = &rule.params.companion;
    let patient = &facts.input.patient;
    if c.classes
        .iter()
        .any(|class| facts.ordered_or_active(*class))
    {
        return Ok(true);
    }
    if rule
        .services
        .iter()
        .any(|set| facts.service_ordered_or_active(*set))
    {
        return Ok(true);
    }
    if let Some((set, days)) = rule.imaging {
        let set = facts.plan.value_set(set);
        // An undated report counts: the prefetch only asks for reports of the last 90 days,
        // and a false alarm about a study that was done is worse than trusting the query.
        let recent = patient.imaging.iter().any(|report| {
            set.contains(&report.code)
                && report
                    .date
                    .is_none_or(|at| at <= facts.now && (facts.now - at).num_days() <= days)
        });
        if recent {
            return Ok(true);
        }
    }
    let absent = |s| patient.absent_sections.contains(&s);
    if !c.classes.is_empty() && absent(RecordSection::Medications) {
        return Err("active_medications");
    }
    if !c.services.is_empty() && absent(RecordSection::ServiceRequests) {
        return Err("active_service_requests");
    }
    if c.imaging.is_some() && absent(RecordSection::Imaging) {
        return Err("imaging_reports");
    }
    Ok(false)
}

impl RuleKind for RequiredCompanion {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let p = &self.params;
        if p.unless_flags.iter().any(|f| facts.has_flag(*f)) {
            return;
        }
        let t = &p.trigger;
        if let Some(flag) = t.flag
            && !facts.has_flag(flag)
        {
            return;
        }
        if !self.etiologies.is_empty()
            && !facts
                .fracture
                .as_ref()
                .is_some_and(|f| self.etiologies.contains(&f.etiology))
        {
            return;
        }
        let fracture_days = facts.fracture.as_ref().and_then(|f| f.age_days(facts.now));
        let mut date_unknown = false;
        if let Some(min_days) = t.min_fracture_days {
            match (&facts.fracture, fracture_days) {
                (None, _) => return,
                (Some(_), None) => date_unknown = true,
                (Some(_), Some(days)) if days < min_days => return,
                (Some(_), Some(_)) => {}
            }
        }
        // The card is about the first drafted order of the class that the clinician is
        // looking at (order-select focus): one card, not one per opioid order.
        let trigger_order: Option<&Medication<'_>> = match t.drafted_class {
            Some(class) => {
                let Some(m) = facts
                    .drafted(class)
                    .find(|m| facts.input.orders.in_focus(&m.order.reference))
                else {
                    return;
                };
                Some(m)
            }
            None => None,
        };
        match companion_present(self, facts) {
            Ok(true) => return,
            Ok(false) => {}
            Err(section) => {
                out.missing(section);
                return;
            }
        }
        let offered: Vec<&str> = p
            .offer
            .iter()
            .filter(|o| o.when.holds(facts))
            .map(|o| o.id.as_str())
            .collect();
        let mut finding = out.finding();
        if let Some(m) = trigger_order {
            finding = finding.order(&m.order.reference).text("drug", m.label());
        }
        if date_unknown {
            finding = finding.variant("date_unknown");
        }
        if let Some(days) = fracture_days {
            finding = finding.number("fracture_days", days as f64);
        }
        if let Some(min_days) = t.min_fracture_days {
            finding = finding.number("min_fracture_days", min_days as f64);
        }
        if let Some((value, measure)) = renal_function(facts) {
            finding = finding
                .number("renal_function", value)
                .text("renal_measure", measure);
        }
        if !p.offer.is_empty() {
            finding = finding.suggestions(&offered);
        }
        finding.emit();
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::codes::system;
    use crate::domain::{ClinicalFlag, Concept, Diagnosis, ImagingReport, RecordSection};
    use crate::engine::rules::testing::{
        Case, drug_order, egfr, lab, now, number, service_order, suggestion_ids, vcf_patient,
        vcf_patient_aged, vcf_patient_date_unknown,
    };
    use chrono::Duration;

    fn oxycodone() -> crate::domain::MedicationOrder {
        drug_order(
            "MedicationRequest/oxy",
            "oxycodone 5 mg oral tablet",
            Some("7804"),
        )
    }

    #[test]
    fn offered_ids_name_suggestions_of_their_rule() {
        let plan = crate::pathway::Plan::builtin();
        for rule in plan
            .document
            .rules
            .iter()
            .filter(|r| r.kind == "required_companion")
        {
            let ids: Vec<&str> = rule.suggestions.iter().map(|s| &*s.id).collect();
            for offer in rule.params["offer"].as_array().into_iter().flatten() {
                let id = offer["id"].as_str().unwrap();
                assert!(
                    ids.contains(&id),
                    "{}: offers unknown suggestion {id}",
                    rule.id
                );
            }
        }
    }

    #[test]
    fn firstline_analgesic_with_an_opioid() {
        let finding = Case::new(vcf_patient())
            .medication(oxycodone())
            .expect_severity("VCF-OPIOID-FIRSTLINE", Some("warning"))
            .unwrap();
        assert_eq!(
            finding.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/oxy"
        );
        // Age 72, no renal result: acetaminophen only.
        assert_eq!(suggestion_ids(&finding), ["acetaminophen"]);
        for companion in [
            drug_order(
                "MedicationRequest/apap",
                "acetaminophen 500 mg tablet",
                Some("161"),
            ),
            drug_order(
                "MedicationRequest/ibu",
                "ibuprofen 400 mg tablet",
                Some("5640"),
            ),
        ] {
            Case::new(vcf_patient())
                .medication(oxycodone())
                .medication(companion.clone())
                .expect_severity("VCF-OPIOID-FIRSTLINE", None);
            Case::new(vcf_patient())
                .medication(oxycodone())
                .active_medication(companion)
                .expect_severity("VCF-OPIOID-FIRSTLINE", None);
        }
        Case::new(vcf_patient()).expect_severity("VCF-OPIOID-FIRSTLINE", None);
    }

    #[test]
    fn nsaid_alternative_only_with_egfr_60_and_under_75() {
        for (age, gfr, expect) in [
            (74, Some(60.0), vec!["acetaminophen", "nsaid"]),
            (74, Some(59.0), vec!["acetaminophen"]),
            (75, Some(90.0), vec!["acetaminophen"]),
            (74, None, vec!["acetaminophen"]),
            (74, Some(90.0), vec!["acetaminophen"]), // with apixaban, below
        ] {
            let mut case = Case::new(vcf_patient_aged(age, 10)).medication(oxycodone());
            if let Some(v) = gfr {
                case.patient_mut().labs.push(egfr(v));
            }
            if gfr == Some(90.0) && age == 74 {
                case = case.active_medication(drug_order(
                    "MedicationRequest/apx",
                    "apixaban 5 mg tablet",
                    None,
                ));
            }
            let f = case
                .expect_severity("VCF-OPIOID-FIRSTLINE", Some("warning"))
                .unwrap();
            assert_eq!(suggestion_ids(&f), expect, "age {age}, eGFR {gfr:?}");
            let create = &f.suggestions[0].actions[0];
            let resource = create.resource.as_ref().unwrap().to_value();
            assert_eq!(resource["resourceType"], "MedicationRequest");
            assert_eq!(resource["subject"]["reference"], "Patient/test");
            assert!(
                resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
                    .is_number()
            );
        }
    }

    #[test]
    fn bowel_regimen_with_an_opioid() {
        let f = Case::new(vcf_patient())
            .medication(oxycodone())
            .expect_severity("VCF-OPIOID-BOWEL", Some("info"))
            .unwrap();
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/oxy"
        );
        assert_eq!(suggestion_ids(&f), ["senna", "polyethylene-glycol"]);
        Case::new(vcf_patient())
            .medication(oxycodone())
            .active_medication(drug_order(
                "MedicationRequest/s",
                "senna 8.6 mg tablet",
                None,
            ))
            .expect_severity("VCF-OPIOID-BOWEL", None);
    }

    #[test]
    fn missing_medication_list_is_recorded_not_guessed() {
        let mut case = Case::new(vcf_patient()).medication(oxycodone());
        case.patient_mut()
            .absent_sections
            .insert(RecordSection::Medications);
        case.expect_severity("VCF-OPIOID-BOWEL", None);
        let missing = case.evaluate().missing_inputs;
        assert!(
            missing.iter().any(|m| m.input == "active_medications"
                && m.rules.contains(&"VCF-OPIOID-BOWEL".to_owned()))
        );
    }

    #[test]
    fn anti_osteoporosis_by_renal_function() {
        for (gfr, expect) in [
            (None, "alendronate"),
            (Some(35.0), "alendronate"),
            (Some(34.0), "denosumab"),
        ] {
            let mut case = Case::new(vcf_patient());
            if let Some(v) = gfr {
                case.patient_mut().labs.push(egfr(v));
            }
            let f = case
                .expect_severity("VCF-ANTIOP-MISSING", Some("warning"))
                .unwrap();
            assert_eq!(suggestion_ids(&f), [expect], "eGFR {gfr:?}");
            assert!(f.order_ref.is_none());
        }
        // Creatinine clearance below 35 with a better eGFR: the stricter reading decides.
        let mut case = Case::new(vcf_patient());
        case.patient_mut().labs.push(egfr(50.0));
        case.patient_mut()
            .labs
            .push(lab("35591-7", 30.0, "mL/min", 2));
        let f = case
            .expect_severity("VCF-ANTIOP-MISSING", Some("warning"))
            .unwrap();
        assert_eq!(suggestion_ids(&f), ["denosumab"]);
        assert_eq!(number(&f, "renal_function"), 30.0);
    }

    #[test]
    fn anti_osteoporosis_not_when_present_intolerant_or_not_fragility() {
        Case::new(vcf_patient())
            .active_medication(drug_order(
                "MedicationRequest/aln",
                "alendronate 70 mg tablet",
                Some("46041"),
            ))
            .expect_severity("VCF-ANTIOP-MISSING", None);
        Case::new(vcf_patient())
            .medication(drug_order(
                "MedicationRequest/dmab",
                "denosumab 60 mg/mL injection",
                None,
            ))
            .expect_severity("VCF-ANTIOP-MISSING", None);
        let mut case = Case::new(vcf_patient());
        case.patient_mut()
            .flags
            .insert(ClinicalFlag::AntiosteoporosisIntolerance);
        case.expect_severity("VCF-ANTIOP-MISSING", None);
        let mut malignant = Case::new(vcf_patient());
        malignant
            .patient_mut()
            .diagnoses
            .push(Diagnosis::new(Concept::coded(
                system::ICD10CM,
                "C79.51",
                None,
            )));
        malignant.expect_severity("VCF-ANTIOP-MISSING", None);
    }

    #[test]
    fn physical_therapy_from_day_7() {
        for (days, expect) in [(6, None), (7, Some("info")), (30, Some("info"))] {
            let f = Case::new(vcf_patient_aged(72, days)).expect_severity("VCF-PT-MISSING", expect);
            if let Some(f) = f {
                assert_eq!(number(&f, "fracture_days"), days as f64);
                assert_eq!(number(&f, "min_fracture_days"), 7.0);
                assert_eq!(suggestion_ids(&f), ["pt-referral"]);
                assert!(f.order_ref.is_none());
            }
        }
        let f = Case::new(vcf_patient_date_unknown(72))
            .expect_severity("VCF-PT-MISSING", Some("info"))
            .unwrap();
        assert!(f.summary().contains("unknown"), "{}", f.summary());
        Case::new(vcf_patient_aged(72, 30))
            .service(service_order(
                "ServiceRequest/pt",
                system::SNOMED,
                "308447003",
                "Referral to physiotherapist",
            ))
            .expect_severity("VCF-PT-MISSING", None);
    }

    #[test]
    fn neuro_red_flag_is_critical_until_a_surgical_consult() {
        Case::new(vcf_patient()).expect_severity("VCF-NEURO-REDFLAG", None);
        let mut by_flag = Case::new(vcf_patient());
        by_flag
            .patient_mut()
            .flags
            .insert(ClinicalFlag::NeurologicalDeficit);
        let f = by_flag
            .expect_severity("VCF-NEURO-REDFLAG", Some("critical"))
            .unwrap();
        assert_eq!(suggestion_ids(&f), ["spine-surgery-consult"]);
        let mut by_code = Case::new(vcf_patient());
        by_code
            .patient_mut()
            .diagnoses
            .push(Diagnosis::new(Concept::coded(
                system::ICD10CM,
                "G83.4",
                Some("Cauda equina syndrome"),
            )));
        by_code.expect_severity("VCF-NEURO-REDFLAG", Some("critical"));
        let mut consulted = Case::new(vcf_patient()).service(service_order(
            "ServiceRequest/nsg",
            system::SNOMED,
            "308482002",
            "Spine surgery consult",
        ));
        consulted
            .patient_mut()
            .flags
            .insert(ClinicalFlag::NeurologicalDeficit);
        consulted.expect_severity("VCF-NEURO-REDFLAG", None);
    }

    #[test]
    fn malignancy_needs_a_recent_spine_mri() {
        let malignant = || {
            let mut case = Case::new(vcf_patient());
            case.patient_mut()
                .diagnoses
                .push(Diagnosis::new(Concept::coded(
                    system::ICD10CM,
                    "C50.911",
                    Some("Breast cancer"),
                )));
            case
        };
        let f = malignant()
            .expect_severity("VCF-MALIGNANCY-MRI", Some("warning"))
            .unwrap();
        assert_eq!(suggestion_ids(&f), ["mri-spine"]);
        Case::new(vcf_patient()).expect_severity("VCF-MALIGNANCY-MRI", None);
        malignant()
            .service(service_order(
                "ServiceRequest/mri",
                system::CPT,
                "72158",
                "MRI lumbar spine w/o and w/ contrast",
            ))
            .expect_severity("VCF-MALIGNANCY-MRI", None);
        for (days_ago, expect) in [(90, None), (91, Some("warning"))] {
            let mut case = malignant();
            case.patient_mut().imaging.push(ImagingReport {
                code: Concept::coded(system::CPT, "72148", Some("MRI lumbar spine")),
                date: Some(now() - Duration::days(days_ago)),
            });
            case.expect_severity("VCF-MALIGNANCY-MRI", expect);
        }
    }
}
