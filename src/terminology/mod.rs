//! PROVISIONAL SHIM (vcfrules branch): a minimal stand-in for the `terminology` branch so that
//! the VCF rule kinds compile and can be tested before it lands. It follows the announced API
//! (`DrugClass`, `DrugMatch::has_class`, `Terminology::builtin/identify`) with a tiny name and
//! RxNorm-ingredient table. When main gets the real module, take main's version of this file.

use crate::domain::Concept;
use crate::domain::codes::{normalize_text, system};
use std::collections::BTreeSet;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DrugClass {
    Opioid,
    Acetaminophen,
    Nsaid,
    MuscleRelaxant,
    Calcitonin,
    Bisphosphonate,
    Denosumab,
    Anabolic,
    AntiOsteoporosis,
    Calcium,
    VitaminD,
    Benzodiazepine,
    Gabapentinoid,
    Laxative,
    Anticoagulant,
    OpioidAntagonist,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrugMatch {
    classes: BTreeSet<DrugClass>,
    ingredients: Vec<&'static str>,
}

impl DrugMatch {
    pub fn has_class(&self, _t: &Terminology, class: DrugClass) -> bool {
        self.classes.contains(&class)
    }

    pub fn ingredient_names(&self) -> Vec<&str> {
        self.ingredients.clone()
    }
}

pub struct Terminology {
    table: Vec<(&'static str, Option<&'static str>, &'static [DrugClass])>,
}

impl Terminology {
    pub fn builtin() -> &'static Terminology {
        use DrugClass::*;
        static T: std::sync::LazyLock<Terminology> = std::sync::LazyLock::new(|| Terminology {
            table: vec![
                ("oxycodone", Some("7804"), &[Opioid]),
                ("morphine", Some("7052"), &[Opioid]),
                ("hydromorphone", Some("3423"), &[Opioid]),
                ("hydrocodone", Some("5489"), &[Opioid]),
                ("tramadol", Some("10689"), &[Opioid]),
                ("fentanyl", Some("4337"), &[Opioid]),
                ("acetaminophen", Some("161"), &[Acetaminophen]),
                ("ibuprofen", Some("5640"), &[Nsaid]),
                ("naproxen", Some("7258"), &[Nsaid]),
                ("ketorolac", None, &[Nsaid]),
                ("celecoxib", None, &[Nsaid]),
                ("cyclobenzaprine", Some("21949"), &[MuscleRelaxant]),
                ("methocarbamol", None, &[MuscleRelaxant]),
                ("carisoprodol", None, &[MuscleRelaxant]),
                ("calcitonin", None, &[Calcitonin]),
                (
                    "alendronate",
                    Some("46041"),
                    &[Bisphosphonate, AntiOsteoporosis],
                ),
                (
                    "zoledronic acid",
                    Some("77655"),
                    &[Bisphosphonate, AntiOsteoporosis],
                ),
                ("denosumab", Some("993449"), &[Denosumab, AntiOsteoporosis]),
                ("teriparatide", None, &[Anabolic, AntiOsteoporosis]),
                ("senna", None, &[Laxative]),
                ("sennosides", None, &[Laxative]),
                ("polyethylene glycol", None, &[Laxative]),
                ("docusate", None, &[Laxative]),
                ("apixaban", None, &[Anticoagulant]),
                ("warfarin", None, &[Anticoagulant]),
                ("enoxaparin", None, &[Anticoagulant]),
                ("heparin", None, &[Anticoagulant]),
            ],
        });
        &T
    }

    pub fn identify(&self, medication: &Concept) -> Option<DrugMatch> {
        let texts: Vec<String> = medication.texts().map(normalize_text).collect();
        let codes: Vec<&str> = medication.codes_in(system::RXNORM).collect();
        let mut found = DrugMatch {
            classes: BTreeSet::new(),
            ingredients: Vec::new(),
        };
        for (name, rxcui, classes) in &self.table {
            let by_code = rxcui.is_some_and(|c| codes.contains(&c));
            let by_text = texts
                .iter()
                .any(|t| crate::pathway::value_set::contains_words(t, name));
            if by_code || by_text {
                found.classes.extend(classes.iter().copied());
                found.ingredients.push(name);
            }
        }
        (!found.ingredients.is_empty()).then_some(found)
    }
}
