use super::*;
use crate::domain::codes::system;
use crate::domain::units::format_number;
use crate::domain::{Amount, Concept, Frequency, OrderRef, PeriodUnit, Unreadable};
use proptest::prelude::*;

fn t() -> &'static Terminology {
    Terminology::builtin()
}

/// `ORDERGUARD_SHARED`, else `<manifest>/../shared`, else `/work/shared`.
pub(crate) fn shared_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("ORDERGUARD_SHARED") {
        return dir.into();
    }
    let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if beside.is_dir() {
        return beside;
    }
    "/work/shared".into()
}

fn order(drug: Concept, dose: Dose, frequency: Option<Frequency>) -> MedicationOrder {
    let mut o = MedicationOrder::new("MedicationRequest/test", drug);
    o.dose = Field::Given(dose);
    o.frequency = frequency.map_or(Field::Absent, Field::Given);
    o
}

fn fixed(value: f64, unit: DoseUnit) -> Dose {
    Dose::Fixed {
        amount: Amount::new(value, unit).unwrap(),
    }
}

fn per_day(n: u32) -> Option<Frequency> {
    Some(Frequency::times_per_day(n).unwrap())
}

fn every(period: f64, unit: PeriodUnit) -> Option<Frequency> {
    Some(Frequency::once_every(period, unit).unwrap())
}

/// Daily doses of an order for the drug named by `text`.
fn doses(text: &str, dose: Dose, frequency: Option<Frequency>) -> Vec<DailyDose> {
    let concept = Concept::from_text(text);
    let drug = t().identify(&concept).expect(text);
    daily_doses(&order(concept, dose, frequency), &drug, t())
}

fn amount_of<'d>(doses: &'d [DailyDose], name: &str) -> &'d DailyAmount {
    let id = t().ingredient_by_name(name).unwrap();
    doses
        .iter()
        .find(|d| d.ingredient() == id)
        .and_then(DailyDose::amount)
        .unwrap_or_else(|| panic!("no amount for {name}: {doses:?}"))
}

fn unreadable(doses: &[DailyDose]) -> (String, String) {
    match &doses[0] {
        DailyDose::Unreadable { field, reason, .. } => (field.clone(), reason.clone()),
        other => panic!("expected unreadable, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn mass_dose_times_frequency_with_its_explanation() {
    let d = doses(
        "ibuprofen 800 mg tablet",
        fixed(800.0, DoseUnit::Milligram),
        per_day(4),
    );
    let a = amount_of(&d, "ibuprofen");
    assert_eq!(a.amount, 3200.0);
    assert_eq!(a.unit, DailyUnit::Milligram);
    assert_eq!(a.explanation(t()), "800 mg × 4/day = 3200 mg/day");
}

#[test]
fn every_ingredient_of_a_combination_is_counted() {
    // 2 tablets every 4 hours of the RxNorm clinical drug named in pathway-spec.
    let d = doses(
        "acetaminophen 325 MG / oxycodone 5 MG Oral Tablet",
        fixed(2.0, DoseUnit::Count(DoseForm::Tablet)),
        every(4.0, PeriodUnit::Hour),
    );
    let apap = amount_of(&d, "acetaminophen");
    let oxy = amount_of(&d, "oxycodone");
    assert_eq!(apap.amount, 3900.0);
    assert_eq!(oxy.amount, 60.0);
    assert_eq!(
        apap.explanation(t()),
        "2 tablets × 325 mg × 6/day = 3900 mg/day"
    );
    assert_eq!(oxy.explanation(t()), "2 tablets × 5 mg × 6/day = 60 mg/day");
}

#[test]
fn combination_by_product_code() {
    let concept = Concept::coded(system::RXNORM, "1049221", None);
    let drug = t().identify(&concept).unwrap();
    let d = daily_doses(
        &order(
            concept,
            fixed(2.0, DoseUnit::Count(DoseForm::Tablet)),
            every(4.0, PeriodUnit::Hour),
        ),
        &drug,
        t(),
    );
    assert_eq!(amount_of(&d, "acetaminophen").amount, 3900.0);
    assert_eq!(amount_of(&d, "oxycodone").amount, 60.0);
}

#[test]
fn as_needed_range_is_read_at_its_ceiling() {
    // 1-2 tablets every 4-6 hours as needed, up to 2 times per 4 hours: 2 tablets x 12/day.
    let mut o = order(
        Concept::from_text("oxycodone 5 mg tablet"),
        Dose::Range {
            low: Amount::new(1.0, DoseUnit::Count(DoseForm::Tablet)).unwrap(),
            high: Amount::new(2.0, DoseUnit::Count(DoseForm::Tablet)).unwrap(),
        },
        Some(Frequency::new(1, Some(2), 4.0, Some(6.0), PeriodUnit::Hour).unwrap()),
    );
    o.as_needed = true;
    let drug = t().identify(&o.medication).unwrap();
    let d = daily_doses(&o, &drug, t());
    let a = amount_of(&d, "oxycodone");
    assert_eq!(a.amount, 120.0);
    assert_eq!(
        a.explanation(t()),
        "2 tablets × 5 mg (high end of 1–2 tablets) × 12/day (as needed, counted at its maximum) = 120 mg/day"
    );
}

#[test]
fn millilitres_times_concentration() {
    let d = doses(
        "tramadol hydrochloride 1 MG/ML Oral Solution",
        fixed(50.0, DoseUnit::Millilitre),
        per_day(4),
    );
    let a = amount_of(&d, "tramadol");
    assert_eq!(a.amount, 200.0);
    assert_eq!(a.explanation(t()), "50 mL × 1 mg/mL × 4/day = 200 mg/day");
}

#[test]
fn millilitres_of_a_tablet_do_not_convert() {
    let d = doses(
        "oxycodone 5 mg tablet",
        fixed(5.0, DoseUnit::Millilitre),
        per_day(4),
    );
    let (field, reason) = unreadable(&d);
    assert_eq!(field, "dose.unit");
    assert!(reason.contains("concentration"), "{reason}");
}

#[test]
fn a_count_without_a_known_strength_is_unreadable() {
    let d = doses(
        "oxycodone",
        fixed(1.0, DoseUnit::Count(DoseForm::Tablet)),
        per_day(4),
    );
    let (field, reason) = unreadable(&d);
    assert_eq!(field, "dose.unit");
    assert!(reason.contains("strength"), "{reason}");
}

#[test]
fn a_scheduled_dose_without_frequency_is_unreadable() {
    let d = doses(
        "oxycodone 5 mg tablet",
        fixed(5.0, DoseUnit::Milligram),
        None,
    );
    assert_eq!(unreadable(&d).0, "frequency");
}

#[test]
fn the_adapters_unreadable_field_is_named() {
    let concept = Concept::from_text("acetaminophen 500 mg tablet");
    let drug = t().identify(&concept).unwrap();
    let mut o = order(concept, fixed(1.0, DoseUnit::Milligram), per_day(1));
    o.dose = Field::Unreadable(Unreadable::new(
        "dosageInstruction[0].doseAndRate[0].doseQuantity.unit",
        "furlong",
        "unit \"furlong\" is not a dose unit orderguard understands",
    ));
    let d = daily_doses(&o, &drug, t());
    assert_eq!(
        unreadable(&d).0,
        "dosageInstruction[0].doseAndRate[0].doseQuantity.unit"
    );
}

#[test]
fn fentanyl_patch_is_a_rate_whatever_the_change_interval() {
    let concept = Concept::coded(system::RXNORM, "197696", None);
    let drug = t().identify(&concept).unwrap();
    for frequency in [
        every(72.0, PeriodUnit::Hour),
        every(48.0, PeriodUnit::Hour),
        None,
    ] {
        let d = daily_doses(
            &order(
                concept.clone(),
                fixed(1.0, DoseUnit::Count(DoseForm::Patch)),
                frequency,
            ),
            &drug,
            t(),
        );
        let a = amount_of(&d, "fentanyl");
        assert_eq!((a.amount, a.unit), (75.0, DailyUnit::MicrogramPerHour));
        match mme(a, t()) {
            Mme::Counted { mme_per_day, .. } => assert!(close(mme_per_day, 180.0)),
            other => panic!("{other:?}"),
        }
    }
    // The same patch written as a rate.
    let d = doses(
        "fentanyl transdermal patch",
        fixed(75.0, DoseUnit::MicrogramPerHour),
        every(3.0, PeriodUnit::Day),
    );
    assert_eq!(amount_of(&d, "fentanyl").amount, 75.0);
}

#[test]
fn mcg_per_hour_for_a_tablet_is_unreadable() {
    let d = doses(
        "oxycodone 5 mg tablet",
        fixed(5.0, DoseUnit::MicrogramPerHour),
        per_day(1),
    );
    assert_eq!(unreadable(&d).0, "dose.unit");
}

#[test]
fn calcium_salt_weight_is_converted_to_elemental() {
    let d = doses(
        "calcium carbonate 1250 MG Oral Tablet",
        fixed(1.0, DoseUnit::Count(DoseForm::Tablet)),
        per_day(2),
    );
    let a = amount_of(&d, "calcium carbonate");
    assert!(close(a.amount, 1000.0), "{a:?}");
    assert_eq!(a.unit, DailyUnit::MilligramElemental);
    assert_eq!(
        a.explanation(t()),
        "1 tablet × 1250 mg calcium carbonate × 40% elemental × 2/day = 1000 mg/day elemental"
    );
    // A mass dose of the salt.
    let d = doses(
        "calcium citrate",
        fixed(950.0, DoseUnit::Milligram),
        per_day(1),
    );
    assert!(close(amount_of(&d, "calcium citrate").amount, 199.5));
    // The product states its elemental amount: no conversion.
    let d = doses(
        "calcium carbonate 500 mg elemental tablet",
        fixed(1.0, DoseUnit::Count(DoseForm::Tablet)),
        per_day(2),
    );
    assert!(close(amount_of(&d, "calcium carbonate").amount, 1000.0));
}

#[test]
fn vitamin_d_in_iu_and_micrograms_and_weekly_averages() {
    let d = doses(
        "cholecalciferol",
        fixed(25.0, DoseUnit::Microgram),
        per_day(1),
    );
    let a = amount_of(&d, "cholecalciferol");
    assert!(close(a.amount, 1000.0));
    assert_eq!(a.unit, DailyUnit::InternationalUnit);
    let d = doses(
        "ergocalciferol 50000 UNT Oral Capsule",
        fixed(1.0, DoseUnit::Count(DoseForm::Capsule)),
        every(1.0, PeriodUnit::Week),
    );
    let a = amount_of(&d, "ergocalciferol");
    assert!(close(a.amount, 50_000.0 / 7.0));
    assert_eq!(
        a.explanation(t()),
        "1 capsule × 50000 IU every 7 days = 7142.86 IU/day"
    );
}

#[test]
fn a_calcium_and_vitamin_d_combination_counts_both() {
    let d = doses(
        "calcium carbonate 600 mg / cholecalciferol 400 unit tablet",
        fixed(1.0, DoseUnit::Count(DoseForm::Tablet)),
        per_day(2),
    );
    let calcium = amount_of(&d, "calcium carbonate");
    assert!(close(calcium.amount, 480.0), "{calcium:?}");
    assert_eq!(calcium.unit, DailyUnit::MilligramElemental);
    let vitamin_d = amount_of(&d, "cholecalciferol");
    assert!(close(vitamin_d.amount, 800.0), "{vitamin_d:?}");
    assert_eq!(vitamin_d.unit, DailyUnit::InternationalUnit);
}

#[test]
fn microgram_limits_compare_in_milligrams() {
    let d = doses("teriparatide", fixed(20.0, DoseUnit::Microgram), per_day(1));
    let a = amount_of(&d, "teriparatide");
    let limit = t().ingredient(a.ingredient).max_daily.unwrap();
    assert_eq!(limit_in(limit.amount, limit.unit, a.unit), Some(0.02));
    assert!(close(a.amount, 0.02));
}

#[test]
fn monthly_regimens_use_the_pathway_calendar() {
    let d = doses(
        "risedronate sodium 150 MG Oral Tablet",
        fixed(1.0, DoseUnit::Count(DoseForm::Tablet)),
        every(1.0, PeriodUnit::Month),
    );
    let a = amount_of(&d, "risedronate");
    assert!(close(a.amount, 150.0 / 30.4375));
    assert_eq!(format_number(a.amount), "4.93");
}

#[test]
fn iu_of_a_mass_dosed_drug_do_not_convert() {
    let d = doses(
        "acetaminophen",
        fixed(500.0, DoseUnit::InternationalUnit),
        per_day(1),
    );
    assert_eq!(unreadable(&d).0, "dose.unit");
}

#[test]
fn buprenorphine_is_not_counted_and_meperidine_is_unknown() {
    let d = doses("buprenorphine", fixed(8.0, DoseUnit::Milligram), per_day(1));
    assert_eq!(mme(amount_of(&d, "buprenorphine"), t()), Mme::NotCounted);
    let d = doses("meperidine", fixed(50.0, DoseUnit::Milligram), per_day(4));
    assert_eq!(mme(amount_of(&d, "meperidine"), t()), Mme::Unknown);
    let d = doses(
        "acetaminophen",
        fixed(500.0, DoseUnit::Milligram),
        per_day(4),
    );
    assert_eq!(mme(amount_of(&d, "acetaminophen"), t()), Mme::NotAnOpioid);
}

/// The CDC MME CodeSystem of the opioid-mme-r4 IG: ingredient rxcui -> factor per mg, and the
/// transdermal (dose form 316987) factors per mg/h.
fn cdc_factors(
    path: &str,
) -> (
    std::collections::BTreeMap<String, f64>,
    std::collections::BTreeMap<String, f64>,
) {
    let text = std::fs::read_to_string(shared_dir().join(path)).unwrap();
    let cs: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut per_mg = std::collections::BTreeMap::new();
    let mut per_form = std::collections::BTreeMap::new();
    for concept in cs["concept"].as_array().unwrap() {
        let code = concept["code"].as_str().unwrap().to_owned();
        for p in concept["property"].as_array().into_iter().flatten() {
            match p["code"].as_str() {
                Some("conversion-factor") => {
                    per_mg.insert(code.clone(), p["valueDecimal"].as_f64().unwrap());
                }
                Some("dose-form-conversion-factor") => {
                    // "316987:7200@0.33333333": per mg/h, 7200 x 0.3333 = 2400 per mg/h.
                    let v = p["valueString"].as_str().unwrap();
                    let (form, rest) = v.split_once(':').unwrap();
                    let (a, b) = rest.split_once('@').unwrap();
                    let factor: f64 = a.parse::<f64>().unwrap() * b.parse::<f64>().unwrap();
                    per_form.insert(format!("{code}:{form}"), factor);
                }
                _ => {}
            }
        }
    }
    (per_mg, per_form)
}

const CDC_2022: &str =
    "conformance/opioid-cds/mme-r4/vocabulary/codesystem-CDCMMEClinicalConversionFactors.json";
const CDC_2016: &str = "conformance/opioid-cds/mme-r4/tests/ConversionFactorsClinicalTests/cfct-example/codesystem-cfct-example-CDCMMEClinicalConversionFactors.json";

#[test]
fn mme_agrees_with_the_cdc_2022_factor_for_every_opioid_product() {
    let (per_mg, per_form) = cdc_factors(CDC_2022);
    // The product table itself, read independently of the terminology: product -> rows.
    let csv_text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("terminology/products-opioid-rxnorm.csv"),
    )
    .unwrap();
    let mut rows: std::collections::BTreeMap<String, Vec<(String, String, f64, String)>> =
        Default::default();
    for line in csv::Reader::from_reader(csv_text.as_bytes()).records() {
        let r = line.unwrap();
        rows.entry(r[0].to_owned()).or_default().push((
            r[2].to_owned(),
            r[4].to_owned(),
            r[7].parse().unwrap(),
            r[8].to_owned(),
        ));
    }
    let (mut checked, mut skipped) = (0, 0);
    for (rxcui, drug) in t().products() {
        let Some(parts) = rows.get(rxcui) else {
            continue;
        };
        // Expected: 1 unit (tablet, spray, patch, or 1 mL) once daily -> strength x factor.
        let mut expected = 0.0;
        let mut has_factor = true;
        for (form, ingredient, strength, unit) in parts {
            let factor = match unit.as_str() {
                "MG/HR" => per_form.get(&format!("{ingredient}:{form}")).copied(),
                // The IG's CodeSystem carries a per-amount fentanyl factor (0.0576) that the
                // CDC 2022 guideline table does not: it lists fentanyl only as a transdermal
                // rate. Other fentanyl forms have no 2022 factor, so their MME is unknown.
                _ if ingredient == "4337" => None,
                _ => per_mg.get(ingredient).copied(),
            };
            match factor {
                Some(f) => expected += strength * f,
                None => has_factor = false,
            }
        }
        if !has_factor {
            skipped += 1;
            continue;
        }
        let unit = match parts[0].3.as_str() {
            "MG/HR" => DoseUnit::Count(DoseForm::Patch),
            "MG/ML" => DoseUnit::Millilitre,
            "MG/ACTUAT" => DoseUnit::Count(DoseForm::Spray),
            _ => DoseUnit::Count(DoseForm::Tablet),
        };
        let o = order(
            Concept::coded(system::RXNORM, rxcui, None),
            fixed(1.0, unit),
            per_day(1),
        );
        let total: f64 = daily_doses(&o, drug, t())
            .iter()
            .map(|d| match d.amount().map(|a| mme(a, t())) {
                Some(Mme::Counted { mme_per_day, .. }) => mme_per_day,
                Some(Mme::NotAnOpioid) => 0.0,
                other => panic!("product {rxcui}: {other:?} in {d:?}"),
            })
            .sum();
        assert!(
            (total - expected).abs() < 1e-6 * expected.max(1.0),
            "product {rxcui}: {total} MME/day, CDC 2022 says {expected}"
        );
        checked += 1;
    }
    // Without a 2022 factor: buprenorphine (not counted), fentanyl other than patches, and the
    // opioids the table leaves out (meperidine, levorphanol, ...).
    eprintln!("{checked} opioid products agree with CDC 2022; {skipped} without a 2022 factor");
    assert!(
        checked > 600,
        "only {checked} products checked, {skipped} without a factor"
    );
}

/// A MedicationRequest of the opioid-mme-r4 IG tests, read just far enough for the dose
/// arithmetic (the FHIR adapter is tested on its own).
pub(crate) fn read_medication_request(v: &serde_json::Value) -> MedicationOrder {
    let mut concept = Concept::default();
    for c in v["medicationCodeableConcept"]["coding"].as_array().unwrap() {
        concept.codings.push(crate::domain::Coding {
            system: c["system"].as_str().map(crate::domain::System::new),
            code: c["code"].as_str().unwrap().to_owned(),
            display: c["display"].as_str().map(str::to_owned),
        });
    }
    concept.text = v["medicationCodeableConcept"]["text"]
        .as_str()
        .map(str::to_owned);
    let dosage = &v["dosageInstruction"][0];
    let q = &dosage["doseAndRate"][0]["doseQuantity"];
    let unit = q["code"].as_str().or(q["unit"].as_str()).unwrap();
    let dose = Dose::Fixed {
        amount: Amount::parse(q["value"].as_f64().unwrap(), unit).unwrap(),
    };
    let r = &dosage["timing"]["repeat"];
    let spec = crate::domain::RepeatSpec {
        frequency: r["frequency"].as_f64(),
        period: r["period"].as_f64(),
        period_unit: r["periodUnit"].as_str().map(str::to_owned),
        time_of_day_count: r["timeOfDay"].as_array().map_or(0, Vec::len),
        ..Default::default()
    };
    let mut o = order(concept, dose, Frequency::from_repeat(&spec).unwrap());
    o.reference = OrderRef(format!("MedicationRequest/{}", v["id"].as_str().unwrap()).into());
    o
}

/// The IG's MME calculator cases. Its CQL tests assert the 2016 factors; we compare only the
/// cases whose ingredients have the same factor in the IG's 2016 and 2022 CodeSystems
/// (morphine, oxycodone, fentanyl patch here), and check that this is so.
#[test]
fn mme_agrees_with_the_opioid_mme_ig_cases_whose_factors_did_not_change() {
    let (mg_2022, form_2022) = cdc_factors(CDC_2022);
    let (mg_2016, form_2016) = cdc_factors(CDC_2016);
    let dir = shared_dir().join("conformance/opioid-cds/mme-r4/tests/MMECalculatorTests");
    let mut compared = 0;
    for case in [
        "mmecalc",
        "patient-mme-greater-than-fifty",
        "patient-mme-less-than-fifty",
        "patient-mme-with-timeofday",
    ] {
        let case_dir = dir.join(case);
        let mut total = 0.0;
        let mut expected = None;
        let mut unchanged = true;
        for entry in std::fs::read_dir(&case_dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let v: serde_json::Value = serde_json::Deserializer::from_str(&text)
                .into_iter()
                .next()
                .unwrap()
                .unwrap();
            match v["resourceType"].as_str() {
                Some("GuidanceResponse") => {
                    expected = v["contained"][0]["parameter"][0]["valueQuantity"]["value"].as_f64();
                }
                Some("MedicationRequest") => {
                    let o = read_medication_request(&v);
                    let drug = t().identify(&o.medication).unwrap();
                    for d in daily_doses(&o, &drug, t()) {
                        let a = d.amount().unwrap_or_else(|| panic!("{case}: {d:?}"));
                        let rxcui = t().ingredient(a.ingredient).rxcui.clone().unwrap();
                        let same = match a.unit {
                            DailyUnit::MicrogramPerHour => {
                                let key = format!("{rxcui}:316987");
                                form_2022.contains_key(&key)
                                    && form_2022.get(&key) == form_2016.get(&key)
                            }
                            _ => {
                                mg_2022.contains_key(&rxcui)
                                    && mg_2022.get(&rxcui) == mg_2016.get(&rxcui)
                            }
                        };
                        unchanged &= same;
                        if let Mme::Counted { mme_per_day, .. } = mme(a, t()) {
                            total += mme_per_day;
                        }
                    }
                }
                _ => {}
            }
        }
        let expected = expected.unwrap_or_else(|| panic!("{case}: no expected MME"));
        assert!(
            unchanged,
            "{case} uses a factor that changed in 2022: not comparable"
        );
        assert!(
            (total - expected).abs() < 1e-6,
            "{case}: computed {total} MME/day, the IG expects {expected}"
        );
        compared += 1;
    }
    assert_eq!(compared, 4);
}

fn mass_unit() -> impl Strategy<Value = DoseUnit> {
    prop_oneof![
        Just(DoseUnit::Milligram),
        Just(DoseUnit::Gram),
        Just(DoseUnit::Microgram)
    ]
}

proptest! {
    #[test]
    fn daily_amount_scales_with_dose_and_frequency(
        dose in 0.01f64..5000.0, k in 1u32..8, times in 1u32..12, unit in mass_unit()
    ) {
        let one = doses("ibuprofen", fixed(dose, unit), per_day(times));
        let scaled = doses("ibuprofen", fixed(dose * f64::from(k), unit), per_day(times));
        let more_often = doses("ibuprofen", fixed(dose, unit), per_day(times * k));
        let base = amount_of(&one, "ibuprofen").amount;
        prop_assert!(close(amount_of(&scaled, "ibuprofen").amount, base * f64::from(k)));
        prop_assert!(close(amount_of(&more_often, "ibuprofen").amount, base * f64::from(k)));
        prop_assert!(close(base, dose * unit.milligrams_per_unit().unwrap() * f64::from(times)));
    }

    #[test]
    fn a_range_is_read_at_its_high_end(low in 0.5f64..100.0, extra in 0.0f64..100.0, times in 1u32..8) {
        let high = low + extra;
        let range = Dose::Range {
            low: Amount::new(low, DoseUnit::Milligram).unwrap(),
            high: Amount::new(high, DoseUnit::Milligram).unwrap(),
        };
        let r = amount_of(&doses("morphine", range, per_day(times)), "morphine").amount;
        let h = amount_of(&doses("morphine", fixed(high, DoseUnit::Milligram), per_day(times)), "morphine").amount;
        let l = amount_of(&doses("morphine", fixed(low, DoseUnit::Milligram), per_day(times)), "morphine").amount;
        prop_assert!(close(r, h));
        prop_assert!(r >= l);
    }

    #[test]
    fn grams_and_milligrams_are_the_same_dose(grams in 0.001f64..5.0, times in 1u32..8) {
        let g = amount_of(&doses("acetaminophen", fixed(grams, DoseUnit::Gram), per_day(times)), "acetaminophen").amount;
        let mg = amount_of(&doses("acetaminophen", fixed(grams * 1000.0, DoseUnit::Milligram), per_day(times)), "acetaminophen").amount;
        let mcg = amount_of(&doses("acetaminophen", fixed(grams * 1.0e6, DoseUnit::Microgram), per_day(times)), "acetaminophen").amount;
        prop_assert!(close(g, mg));
        prop_assert!(close(g, mcg));
    }

    #[test]
    fn vitamin_d_micrograms_are_forty_iu(mcg in 0.1f64..2000.0) {
        let a = amount_of(&doses("cholecalciferol", fixed(mcg, DoseUnit::Microgram), per_day(1)), "cholecalciferol").amount;
        let b = amount_of(&doses("cholecalciferol", fixed(mcg * 40.0, DoseUnit::InternationalUnit), per_day(1)), "cholecalciferol").amount;
        prop_assert!(close(a, b));
    }
}

/// Found by the bad-input corpus: 1e308 g every 4 hours was summed to "inf MME/day" on a card.
/// A daily amount past 10^15 is unreadable; one just under it is still computed.
#[test]
fn an_absurd_daily_amount_is_unreadable_not_infinite() {
    let d = doses(
        "oxycodone 5 mg tablet",
        fixed(1e308, DoseUnit::Gram),
        every(4.0, PeriodUnit::Hour),
    );
    let (field, reason) = unreadable(&d);
    assert_eq!(field, "dose");
    assert!(reason.contains("too large"), "{reason}");
    let d = doses(
        "oxycodone 5 mg tablet",
        fixed(1e14, DoseUnit::Milligram),
        per_day(1),
    );
    assert_eq!(amount_of(&d, "oxycodone").amount, 1e14);
}
