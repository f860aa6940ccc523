//! The drug terminology: ingredients and their classes and limits, and RxNorm products with
//! their components and strengths, from the project's own CSV files in `terminology/` (see its
//! README for the public source of each file).
//!
//! The files are compiled into the binary and parsed once, at first use. They are our own
//! shipped data, so a malformed row is a bug: it panics with the file and line, and the unit
//! tests parse every file so CI catches it before a release.
//!
//! Identification reads every coding AND the text of an order, because a local or wrong code
//! must never hide a drug (see [`Terminology::identify`]).

mod text;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use smallvec::{SmallVec, smallvec};

use serde::{Deserialize, Serialize};

use crate::domain::Concept;
use crate::domain::codes::{normalize_order_text_onto, normalize_text, system};
use text::{Lexed, NormalForm, Token};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IngredientId(u16);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// Every bisphosphonate, denosumab, anabolic agent and strontium ranelate also carry this.
    AntiOsteoporosis,
    Calcium,
    VitaminD,
    Benzodiazepine,
    Gabapentinoid,
    Laxative,
    Anticoagulant,
    OpioidAntagonist,
}

impl DrugClass {
    /// Every class, in declaration order (`ALL[class as usize] == class`).
    pub const ALL: [DrugClass; 16] = [
        DrugClass::Opioid,
        DrugClass::Acetaminophen,
        DrugClass::Nsaid,
        DrugClass::MuscleRelaxant,
        DrugClass::Calcitonin,
        DrugClass::Bisphosphonate,
        DrugClass::Denosumab,
        DrugClass::Anabolic,
        DrugClass::AntiOsteoporosis,
        DrugClass::Calcium,
        DrugClass::VitaminD,
        DrugClass::Benzodiazepine,
        DrugClass::Gabapentinoid,
        DrugClass::Laxative,
        DrugClass::Anticoagulant,
        DrugClass::OpioidAntagonist,
    ];

    fn bit(self) -> u32 {
        // OpioidAntagonist is the last variant: every class has its bit.
        const _: () = assert!((DrugClass::OpioidAntagonist as usize) < 32);
        1 << (self as u32)
    }
}

/// A set of drug classes, one bit per class: the rules ask "is this an opioid?" of every
/// ingredient many times per evaluation, and a medication's classes are the union of its
/// ingredients' (one `|` per ingredient).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct DrugClasses(u32);

impl DrugClasses {
    pub fn contains(&self, class: &DrugClass) -> bool {
        self.0 & class.bit() != 0
    }

    pub fn insert(&mut self, class: DrugClass) {
        self.0 |= class.bit();
    }

    pub fn union(self, other: DrugClasses) -> DrugClasses {
        DrugClasses(self.0 | other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The classes in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = DrugClass> + '_ {
        DrugClass::ALL.into_iter().filter(|c| self.contains(c))
    }
}

impl FromIterator<DrugClass> for DrugClasses {
    fn from_iter<I: IntoIterator<Item = DrugClass>>(iter: I) -> Self {
        let mut set = DrugClasses::default();
        for class in iter {
            set.insert(class);
        }
        set
    }
}

impl std::fmt::Debug for DrugClasses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitUnit {
    Milligram,
    Microgram,
    InternationalUnit,
    MilligramElemental,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DailyLimit {
    pub amount: f64,
    pub unit: LimitUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenalMeasure {
    CreatinineClearance,
    Egfr,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenalCutoff {
    pub below: f64,
    pub measure: RenalMeasure,
    pub contraindicated: bool,
}

/// A label regimen: a dose of at least `min_dose_mg` may not be repeated sooner than every
/// `min_interval_days` (alendronate 70 mg: 7 days; risedronate 35 mg: 7, 150 mg: 30.4375;
/// ibandronate 150 mg oral: 30.4375; zoledronic acid 5 mg: 365.25; denosumab 60 mg: 182.625).
#[derive(Clone, Debug, PartialEq)]
pub struct RegimenStep {
    pub min_dose_mg: f64,
    pub min_interval_days: f64,
    /// "weekly", "monthly", "yearly", "every 6 months"
    pub label: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MmeFactor {
    PerMilligram(f64),
    /// Fentanyl transdermal: 2.4 per mcg/h.
    PerMicrogramPerHour(f64),
    /// Buprenorphine: the CDC 2022 guideline leaves it out of MME.
    NotCounted,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ingredient {
    pub id: IngredientId,
    /// Lower-case canonical name, e.g. "oxycodone".
    pub name: String,
    pub rxcui: Option<String>,
    pub classes: DrugClasses,
    pub max_daily: Option<DailyLimit>,
    /// Acetaminophen 3000 mg at age >= 65 or hepatic disease.
    pub max_daily_elderly_or_hepatic: Option<DailyLimit>,
    pub regimen: Vec<RegimenStep>,
    pub renal_cutoff: Option<RenalCutoff>,
    /// None for opioids the CDC 2022 table does not list (meperidine, levorphanol...): unknown.
    pub mme: Option<MmeFactor>,
    /// Calcium salts: share of elemental calcium by weight (carbonate 0.40, citrate 0.21);
    /// None = the amount is already elemental.
    pub elemental_fraction: Option<f64>,
    /// Vitamin D: IU per microgram (40).
    pub iu_per_microgram: Option<f64>,
    pub source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProductForm {
    Tablet,
    Capsule,
    Patch,
    Solution,
    Injection,
    Spray,
    Film,
    Suppository,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrengthUnit {
    Milligram,
    Microgram,
    InternationalUnit,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strength {
    /// Per tablet / capsule / actuation / suppository / film.
    PerUnit { amount: f64, unit: StrengthUnit },
    /// Per millilitre (solutions, injections): "0.3 MG/ML"; `volume_ml` when the product is a
    /// fixed volume (1 ML syringe).
    PerMillilitre {
        amount: f64,
        unit: StrengthUnit,
        volume_ml: Option<f64>,
    },
    /// Transdermal delivery rate, micrograms per hour (fentanyl 0.075 MG/HR = 75).
    PerHour { micrograms: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub ingredient: IngredientId,
    pub strength: Option<Strength>,
    /// Calcium: true when the strength is stated as elemental.
    pub elemental: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchedBy {
    ProductCode,
    IngredientCode,
    ProductText,
    IngredientText,
}

/// The parts of a drug. Nearly every drug has one or two, held inline: identifying an order
/// then allocates nothing for its result, and a table product is copied, not rebuilt.
pub type Components = SmallVec<[Component; 2]>;

#[derive(Clone, Debug, PartialEq)]
pub struct DrugMatch {
    pub matched_by: MatchedBy,
    /// Shared with the product table, so that a product match copies no string.
    pub product_rxcui: Option<Arc<str>>,
    pub form: Option<ProductForm>,
    pub components: Components,
}

impl DrugMatch {
    pub fn has_class(&self, t: &Terminology, class: DrugClass) -> bool {
        self.components
            .iter()
            .any(|c| t.ingredient(c.ingredient).classes.contains(&class))
    }
}

/// foldhash with its fixed seed: the keys are short drug words, codes and names from our own
/// tables, and a fast non-keyed hash that reads 8 bytes at a time is most of the cost of
/// reading free text (no untrusted party chooses the table keys; a looked-up text only
/// probes them).
type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Scratch space for [`Terminology::identify_with`], reused across the orders of an evaluation.
#[derive(Debug, Default)]
pub struct Buffers {
    normalized: String,
    tokens: Vec<Token>,
    run: Vec<IngredientId>,
    strengths: Vec<Option<(Strength, bool)>>,
}

pub struct Terminology {
    ingredients: Vec<Ingredient>,
    by_name: Map<String, IngredientId>,
    by_rxcui: Map<String, IngredientId>,
    /// Every ingredient name and synonym by its first word (no name starts with a number or
    /// a slash), the longest first: the matcher hashes each word of a text once and compares
    /// the few names that start with it token by token. Keyed by the word's bytes, so that a
    /// word of the text is looked up without slicing it as a `str` ([`Lexed::word_bytes`]).
    phrase_starts: Map<Box<[u8]>, Vec<Phrase>>,
    /// Normalized name or synonym (tokens joined by one space) -> ingredients: the plain
    /// lookup that `phrase_starts` replaced, kept as the oracle of the tests.
    #[cfg(test)]
    phrases: Map<String, Vec<IngredientId>>,
    /// Table products: (rxcui, match). Products without a code are matched by name only.
    products: Vec<(Option<String>, DrugMatch)>,
    product_by_rxcui: Map<String, usize>,
    product_by_text: Map<String, usize>,
    /// The length of the shortest key of `product_by_text` (26 bytes in our tables): a
    /// shorter text ("tramadol 50 mg tablet") is no product name, and is not hashed to find
    /// that out.
    shortest_product_text: usize,
}

/// An ingredient name or synonym as the matcher reads it, filed under its first word.
struct Phrase {
    /// The tokens after the first word, as the lexer reads them from the normalized phrase.
    rest: Box<[Box<str>]>,
    /// What the phrase names: one ingredient, or the parts of a combination ("percocet").
    ingredients: Box<[IngredientId]>,
}

const INGREDIENTS_CSV: (&str, &str) = (
    "terminology/ingredients.csv",
    include_str!("../../terminology/ingredients.csv"),
);
const SYNONYMS_CSV: (&str, &str) = (
    "terminology/synonyms.csv",
    include_str!("../../terminology/synonyms.csv"),
);
const OPIOID_PRODUCTS_CSV: (&str, &str) = (
    "terminology/products-opioid-rxnorm.csv",
    include_str!("../../terminology/products-opioid-rxnorm.csv"),
);
const OTHER_PRODUCTS_CSV: (&str, &str) = (
    "terminology/products-other-rxnorm.csv",
    include_str!("../../terminology/products-other-rxnorm.csv"),
);

static BUILTIN: LazyLock<Terminology> = LazyLock::new(Terminology::load);

/// Reads every row of one of our CSV files; a row that does not parse is a bug in shipped data.
fn rows<T: for<'de> Deserialize<'de>>((file, data): (&str, &str)) -> Vec<T> {
    let mut reader = csv::Reader::from_reader(data.as_bytes());
    reader
        .deserialize::<T>()
        .map(|row| {
            row.unwrap_or_else(|err| {
                let line = err.position().map_or(0, |p| p.line());
                panic!("{file}:{line}: malformed terminology row: {err}")
            })
        })
        .collect()
}

fn bad(file: &str, what: &str, value: &str) -> ! {
    panic!("{file}: {what} {value:?} is not valid")
}

#[derive(Deserialize)]
struct IngredientRow {
    name: String,
    rxcui: String,
    #[allow(dead_code)]
    rxcui_confirmed: String,
    classes: String,
    max_daily: Option<f64>,
    max_daily_unit: String,
    max_daily_elderly_or_hepatic: Option<f64>,
    regimen: String,
    renal_below: Option<f64>,
    renal_measure: String,
    renal_contraindicated: String,
    mme: String,
    elemental_fraction: Option<f64>,
    iu_per_microgram: Option<f64>,
    #[allow(dead_code)]
    notes: String,
    source: String,
}

#[derive(Deserialize)]
struct SynonymRow {
    synonym: String,
    ingredients: String,
    #[allow(dead_code)]
    source: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpioidProductRow {
    drug_rxcui: String,
    drug_name: String,
    #[allow(dead_code)]
    dose_form_rxcui: String,
    dose_form_name: String,
    ingredient_rxcui: String,
    #[allow(dead_code)]
    ingredient_name: String,
    #[allow(dead_code)]
    strength: String,
    strength_value: f64,
    strength_unit: String,
}

#[derive(Deserialize)]
struct OtherProductRow {
    rxcui: String,
    #[allow(dead_code)]
    rxcui_confirmed: String,
    name: String,
    dose_form: String,
    #[allow(dead_code)]
    source: String,
}

fn class_of(file: &str, name: &str) -> DrugClass {
    match name {
        "opioid" => DrugClass::Opioid,
        "acetaminophen" => DrugClass::Acetaminophen,
        "nsaid" => DrugClass::Nsaid,
        "muscle_relaxant" => DrugClass::MuscleRelaxant,
        "calcitonin" => DrugClass::Calcitonin,
        "bisphosphonate" => DrugClass::Bisphosphonate,
        "denosumab" => DrugClass::Denosumab,
        "anabolic" => DrugClass::Anabolic,
        "anti_osteoporosis" => DrugClass::AntiOsteoporosis,
        "calcium" => DrugClass::Calcium,
        "vitamin_d" => DrugClass::VitaminD,
        "benzodiazepine" => DrugClass::Benzodiazepine,
        "gabapentinoid" => DrugClass::Gabapentinoid,
        "laxative" => DrugClass::Laxative,
        "anticoagulant" => DrugClass::Anticoagulant,
        "opioid_antagonist" => DrugClass::OpioidAntagonist,
        other => bad(file, "class", other),
    }
}

fn limit_unit(file: &str, unit: &str) -> LimitUnit {
    match unit {
        "mg" => LimitUnit::Milligram,
        "mcg" => LimitUnit::Microgram,
        "iu" => LimitUnit::InternationalUnit,
        "mg_elemental" => LimitUnit::MilligramElemental,
        other => bad(file, "daily limit unit", other),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The key of a phrase in the tests' plain phrase map: its tokens joined by one space.
#[cfg(test)]
fn phrase_key(tokens: Lexed<'_>) -> Option<String> {
    let mut key = String::new();
    for i in 0..tokens.len() {
        let part = tokens.key(i)?;
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(part);
    }
    Some(key)
}

impl Terminology {
    /// The terminology compiled into this binary, parsed on first use.
    pub fn builtin() -> &'static Terminology {
        &BUILTIN
    }

    fn load() -> Terminology {
        let mut t = Terminology {
            ingredients: Vec::new(),
            by_name: Map::default(),
            by_rxcui: Map::default(),
            phrase_starts: Map::default(),
            #[cfg(test)]
            phrases: Map::default(),
            products: Vec::new(),
            product_by_rxcui: Map::default(),
            product_by_text: Map::default(),
            shortest_product_text: usize::MAX,
        };
        let file = INGREDIENTS_CSV.0;
        for row in rows::<IngredientRow>(INGREDIENTS_CSV) {
            let id = IngredientId(u16::try_from(t.ingredients.len()).expect("fewer than 65536"));
            let name = row.name.trim().to_lowercase();
            let classes = row
                .classes
                .split(';')
                .map(|c| class_of(file, c.trim()))
                .collect();
            let unit = non_empty(&row.max_daily_unit).map(|u| limit_unit(file, &u));
            let limit = |amount: Option<f64>| {
                amount.map(|amount| DailyLimit {
                    amount,
                    unit: unit.unwrap_or_else(|| bad(file, "missing unit for", &name)),
                })
            };
            let regimen = row
                .regimen
                .split('|')
                .filter(|s| !s.trim().is_empty())
                .map(|step| {
                    let mut parts = step.splitn(3, ':');
                    let mut num = || {
                        parts
                            .next()
                            .and_then(|p| p.trim().parse::<f64>().ok())
                            .unwrap_or_else(|| bad(file, "regimen", step))
                    };
                    let (min_dose_mg, min_interval_days) = (num(), num());
                    let label = parts.next().unwrap_or_else(|| bad(file, "regimen", step));
                    RegimenStep {
                        min_dose_mg,
                        min_interval_days,
                        label: label.trim().to_owned(),
                    }
                })
                .collect();
            let renal_cutoff = row.renal_below.map(|below| RenalCutoff {
                below,
                measure: match row.renal_measure.trim() {
                    "crcl" => RenalMeasure::CreatinineClearance,
                    "egfr" => RenalMeasure::Egfr,
                    other => bad(file, "renal measure", other),
                },
                contraindicated: match row.renal_contraindicated.trim() {
                    "yes" => true,
                    "no" => false,
                    other => bad(file, "renal_contraindicated", other),
                },
            });
            let mme = match row.mme.trim() {
                "" => None,
                "not_counted" => Some(MmeFactor::NotCounted),
                s => Some(match s.strip_suffix("/mcg_h") {
                    Some(f) => MmeFactor::PerMicrogramPerHour(
                        f.parse().unwrap_or_else(|_| bad(file, "mme", s)),
                    ),
                    None => {
                        MmeFactor::PerMilligram(s.parse().unwrap_or_else(|_| bad(file, "mme", s)))
                    }
                }),
            };
            let ingredient = Ingredient {
                id,
                name: name.clone(),
                rxcui: non_empty(&row.rxcui),
                classes,
                max_daily: limit(row.max_daily),
                max_daily_elderly_or_hepatic: limit(row.max_daily_elderly_or_hepatic),
                regimen,
                renal_cutoff,
                mme,
                elemental_fraction: row.elemental_fraction,
                iu_per_microgram: row.iu_per_microgram,
                source: row.source,
            };
            if let Some(code) = &ingredient.rxcui {
                assert!(
                    t.by_rxcui.insert(code.clone(), id).is_none(),
                    "{file}: duplicate rxcui {code}"
                );
            }
            assert!(
                t.by_name.insert(name.clone(), id).is_none(),
                "{file}: duplicate {name}"
            );
            t.add_phrase(&name, vec![id]);
            t.ingredients.push(ingredient);
        }
        let file = SYNONYMS_CSV.0;
        for row in rows::<SynonymRow>(SYNONYMS_CSV) {
            let ids = row
                .ingredients
                .split('+')
                .map(|n| {
                    t.ingredient_by_name(n.trim())
                        .unwrap_or_else(|| bad(file, "ingredient", n))
                })
                .collect();
            t.add_phrase(&row.synonym, ids);
        }

        // Opioid products: one row per opioid component, the strength from the table.
        let file = OPIOID_PRODUCTS_CSV.0;
        let mut opioid_rows: Vec<(String, String, String, Vec<Component>)> = Vec::new();
        for row in rows::<OpioidProductRow>(OPIOID_PRODUCTS_CSV) {
            let ingredient = *t
                .by_rxcui
                .get(row.ingredient_rxcui.trim())
                .unwrap_or_else(|| bad(file, "ingredient rxcui", &row.ingredient_rxcui));
            let normalized = normalize_text(&row.drug_name);
            let volume_ml = text::fixed_volume_ml(Lexed {
                text: &normalized,
                tokens: &text::lex(&normalized),
            });
            let v = row.strength_value;
            let strength = match row.strength_unit.trim() {
                "MG" | "MG/ACTUAT" => Strength::PerUnit {
                    amount: v,
                    unit: StrengthUnit::Milligram,
                },
                "MG/HR" => Strength::PerHour {
                    micrograms: v * 1000.0,
                },
                "MG/ML" => Strength::PerMillilitre {
                    amount: v,
                    unit: StrengthUnit::Milligram,
                    volume_ml,
                },
                other => bad(file, "strength unit", other),
            };
            let component = Component {
                ingredient,
                strength: Some(strength),
                elemental: false,
            };
            match opioid_rows.last_mut() {
                Some(last) if last.0 == row.drug_rxcui => last.3.push(component),
                _ => opioid_rows.push((
                    row.drug_rxcui,
                    row.drug_name,
                    row.dose_form_name,
                    vec![component],
                )),
            }
        }
        for (rxcui, name, form, mut components) in opioid_rows {
            // The table lists only the opioid parts; the other parts (acetaminophen 325 MG,
            // naloxone) come from the RxNorm name, so class rules see the whole product.
            let normalized = normalize_text(&name);
            if let Some(parsed) = t.match_text(&normalized) {
                for c in parsed.components {
                    if !components.iter().any(|k| k.ingredient == c.ingredient) {
                        components.push(c);
                    }
                }
            }
            let form = normalize_text(&form);
            let form = text::form_of(Lexed {
                text: &form,
                tokens: &text::lex(&form),
            });
            t.add_product(Some(rxcui), &normalized, form, components.into());
        }
        let file = OTHER_PRODUCTS_CSV.0;
        for row in rows::<OtherProductRow>(OTHER_PRODUCTS_CSV) {
            let normalized = normalize_text(&row.name);
            let parsed = t
                .match_text(&normalized)
                .unwrap_or_else(|| bad(file, "product name (no known ingredient)", &row.name));
            let form = normalize_text(&row.dose_form);
            let form = text::form_of(Lexed {
                text: &form,
                tokens: &text::lex(&form),
            });
            t.add_product(non_empty(&row.rxcui), &normalized, form, parsed.components);
        }
        t
    }

    fn add_phrase(&mut self, phrase: &str, ids: Vec<IngredientId>) {
        let normalized = normalize_text(phrase);
        let tokens = text::lex(&normalized);
        let tokens = Lexed {
            text: &normalized,
            tokens: &tokens,
        };
        // The matcher looks names up by their first word only, and a slash never joins one.
        let rest: Option<Box<[Box<str>]>> = (1..tokens.len())
            .map(|k| tokens.key(k).map(Box::from))
            .collect();
        let (Some(first), Some(rest)) = (tokens.word(0), rest) else {
            panic!(
                "terminology: phrase {phrase:?} cannot be matched (empty, not starting with a word, or with a slash)"
            )
        };
        #[cfg(test)]
        self.phrases
            .insert(phrase_key(tokens).expect("no slash"), ids.clone());
        let starting_here = self
            .phrase_starts
            .entry(Box::from(first.as_bytes()))
            .or_default();
        // A phrase listed twice names what its last row says (as a map insert would).
        if let Some(same) = starting_here.iter_mut().find(|p| p.rest == rest) {
            same.ingredients = ids.into();
            return;
        }
        // Longest first, so that the first phrase that matches is the longest one.
        let at = starting_here.partition_point(|p| p.rest.len() >= rest.len());
        starting_here.insert(
            at,
            Phrase {
                rest,
                ingredients: ids.into(),
            },
        );
    }

    /// The longest ingredient name or synonym at token `i`: what it names and its length in
    /// tokens. Names match whole tokens, so "codeine" never matches inside "hydrocodone", and a
    /// slash never joins a name.
    fn phrase_at(&self, tokens: Lexed<'_>, i: usize) -> Option<(&[IngredientId], usize)> {
        let candidates = self.phrase_starts.get(tokens.word_bytes(i)?)?;
        let phrase = candidates.iter().find(|p| {
            p.rest
                .iter()
                .enumerate()
                .all(|(k, part)| tokens.key(i + 1 + k) == Some(&**part))
        })?;
        Some((&phrase.ingredients, 1 + phrase.rest.len()))
    }

    fn add_product(
        &mut self,
        rxcui: Option<String>,
        normalized_name: &str,
        form: Option<ProductForm>,
        components: Components,
    ) {
        let index = self.products.len();
        let m = DrugMatch {
            matched_by: MatchedBy::ProductCode,
            product_rxcui: rxcui.as_deref().map(Arc::from),
            form,
            components,
        };
        if let Some(code) = &rxcui {
            assert!(
                self.product_by_rxcui.insert(code.clone(), index).is_none(),
                "terminology: duplicate product rxcui {code}"
            );
        }
        self.product_by_text
            .entry(normalized_name.to_owned())
            .or_insert(index);
        self.shortest_product_text = self.shortest_product_text.min(normalized_name.len());
        self.products.push((rxcui, m));
    }

    /// Reads ingredients, strengths and form from normalized text. Ingredient names are matched
    /// on whole tokens, longest phrase first, so "codeine" never matches inside "hydrocodone"
    /// and "calcium carbonate" wins over "calcium".
    fn match_text(&self, normalized: &str) -> Option<DrugMatch> {
        self.match_text_with(normalized, &mut Buffers::default())
    }

    /// [`Terminology::match_text`] with the tokens, the run of names and the strengths
    /// in `buffers`, kept from one order to the next.
    fn match_text_with(&self, normalized: &str, buffers: &mut Buffers) -> Option<DrugMatch> {
        text::lex_onto(normalized, &mut buffers.tokens);
        self.match_lexed(normalized, buffers)
    }

    /// [`Terminology::match_text_with`] of `normalized` once lexed into `buffers.tokens`.
    fn match_lexed(&self, normalized: &str, buffers: &mut Buffers) -> Option<DrugMatch> {
        let Buffers {
            tokens,
            run,
            strengths,
            ..
        } = buffers;
        let tokens = Lexed {
            text: normalized,
            tokens,
        };
        let mut components = Components::new();
        run.clear();
        let mut run_end = usize::MAX;
        let mut i = 0;
        while i < tokens.len() {
            let Some((ids, len)) = self.phrase_at(tokens, i) else {
                i += 1;
                continue;
            };
            let mut j = i + len;
            while let Some(w) = tokens.word(j) {
                if text::is_salt_word(w) {
                    j += 1;
                } else {
                    break;
                }
            }
            // Ingredient names written back to back without strengths ("oxycodone/
            // acetaminophen 5/325", "hydrocodone-acetaminophen 5-325 mg") share the numbers
            // that follow, in the order the names were written.
            let adjacent =
                run_end == i || (run_end.checked_add(1) == Some(i) && tokens.is_slash(run_end));
            if !adjacent {
                run.clear();
            }
            run.extend(ids.iter().copied());
            read_strengths(tokens, &mut j, ids.len(), strengths);
            let named: &[IngredientId] = if strengths.is_empty() && run.len() > ids.len() {
                read_strengths(tokens, &mut j, run.len(), strengths);
                run
            } else {
                ids
            };
            for (n, id) in named.iter().enumerate() {
                let (strength, elemental) = strengths.get(n).copied().flatten().unzip();
                let elemental = elemental.unwrap_or(false);
                match components.iter_mut().find(|c| c.ingredient == *id) {
                    Some(existing) if existing.strength.is_none() => {
                        existing.strength = strength;
                        existing.elemental = elemental;
                    }
                    Some(_) => {}
                    None => components.push(Component {
                        ingredient: *id,
                        strength,
                        elemental,
                    }),
                }
            }
            if !strengths.is_empty() {
                run.clear();
            }
            run_end = j;
            i = j.max(i + 1);
        }
        if components.is_empty() {
            return None;
        }
        // A fixed volume ("1 ML denosumab 60 MG/ML") completes only a strength per millilitre:
        // a text without one is not read again for it.
        let per_ml = |c: &Component| matches!(c.strength, Some(Strength::PerMillilitre { .. }));
        if components.iter().any(per_ml)
            && let Some(volume) = text::fixed_volume_ml(tokens)
        {
            for c in &mut components {
                if let Some(Strength::PerMillilitre { volume_ml, .. }) = &mut c.strength {
                    volume_ml.get_or_insert(volume);
                }
            }
        }
        Some(DrugMatch {
            matched_by: MatchedBy::IngredientText,
            product_rxcui: None,
            form: text::form_of(tokens),
            components,
        })
    }

    /// Identify the drug of an order from every coding and the text/displays.
    ///
    /// Order of trust: an RxNorm product code in the table (the product table is
    /// authoritative: when the text names another drug, the code's product is returned), then
    /// an RxNorm ingredient code (strength, form and the other parts of a combination taken
    /// from the text when the text names the same ingredient; when the text names another
    /// drug, the code wins), then the normalized text and displays: an exact RxNorm product
    /// name, else ingredient names, synonyms and brands read word by word with their
    /// strengths. Codes in other systems, and unknown or local RxNorm codes, are ignored, so
    /// the text still finds the drug. Returns None when nothing names a known ingredient.
    pub fn identify(&self, medication: &Concept) -> Option<DrugMatch> {
        self.identify_with(medication, &mut Buffers::default())
    }

    /// [`Terminology::identify`] reusing `buffers` (one per evaluation: the normalized text,
    /// the tokens, the strengths read), so that the orders after the first allocate only
    /// their tokens and their result.
    pub fn identify_with(&self, medication: &Concept, buffers: &mut Buffers) -> Option<DrugMatch> {
        for code in medication.codes_in(system::RXNORM) {
            if let Some(&index) = self.product_by_rxcui.get(code) {
                return Some(self.products[index].1.clone());
            }
        }
        let by_text = self.match_texts(medication, buffers);
        for code in medication.codes_in(system::RXNORM) {
            if let Some(&id) = self.by_rxcui.get(code) {
                // The text may add what an ingredient code cannot say: the strength, the form,
                // and the other parts of a combination ("Percocet" coded as oxycodone).
                return Some(match by_text {
                    Some(m) if m.components.iter().any(|c| c.ingredient == id) => DrugMatch {
                        matched_by: MatchedBy::IngredientCode,
                        product_rxcui: m.product_rxcui,
                        ..m
                    },
                    _ => DrugMatch {
                        matched_by: MatchedBy::IngredientCode,
                        product_rxcui: None,
                        form: None,
                        components: smallvec![Component {
                            ingredient: id,
                            strength: None,
                            elemental: false,
                        }],
                    },
                });
            }
        }
        by_text
    }

    /// The drug named by the texts of `medication` (its text, then each display): the first
    /// text that is a product name exactly, else the ingredients of the first text that names
    /// any, as [`Terminology::match_text`] reads them.
    fn match_texts(&self, medication: &Concept, buffers: &mut Buffers) -> Option<DrugMatch> {
        let mut by_text = None;
        // One buffer for every text of every order (the text, then each display).
        let mut normalized = std::mem::take(&mut buffers.normalized);
        for text in medication.texts() {
            normalized.clear();
            // A text normalized but for its case (nearly every order text) is checked while
            // it is lexed, and its normalized form is then the text itself, or its lower-cased
            // copy; any other text is normalized, then lexed. A text after the one that found
            // ingredients is only looked up as a product name, and is not lexed.
            let form = match by_text {
                None => text::lex_if_normal_but_case_onto(text, &mut buffers.tokens),
                Some(_) => NormalForm::Other,
            };
            let normal: &str = match form {
                NormalForm::Itself => text,
                NormalForm::LowerCased => {
                    normalized.push_str(text);
                    normalized.make_ascii_lowercase();
                    &normalized
                }
                NormalForm::Other => {
                    normalize_order_text_onto(&mut normalized, text);
                    &normalized
                }
            };
            if normal.len() >= self.shortest_product_text
                && let Some(&index) = self.product_by_text.get(normal)
            {
                let mut m = self.products[index].1.clone();
                m.matched_by = MatchedBy::ProductText;
                by_text = Some(m);
                break;
            }
            if form != NormalForm::Other {
                by_text = self.match_lexed(normal, buffers);
            } else if by_text.is_none() {
                by_text = self.match_text_with(normal, buffers);
            }
        }
        buffers.normalized = normalized;
        by_text
    }

    /// [`Terminology::match_texts`] as it was: each text normalized, then lexed (read three
    /// times: checked, copied, lexed). The reference for the reading that checks a text while
    /// lexing it.
    #[cfg(test)]
    fn match_texts_normalizing_first(
        &self,
        medication: &Concept,
        buffers: &mut Buffers,
    ) -> Option<DrugMatch> {
        let mut by_text = None;
        let mut normalized = std::mem::take(&mut buffers.normalized);
        for text in medication.texts() {
            normalized.clear();
            normalize_order_text_onto(&mut normalized, text);
            if let Some(&index) = self.product_by_text.get(normalized.as_str()) {
                let mut m = self.products[index].1.clone();
                m.matched_by = MatchedBy::ProductText;
                by_text = Some(m);
                break;
            }
            if by_text.is_none() {
                by_text = self.match_text_with(&normalized, buffers);
            }
        }
        buffers.normalized = normalized;
        by_text
    }

    pub fn ingredient(&self, id: IngredientId) -> &Ingredient {
        &self.ingredients[usize::from(id.0)]
    }

    /// By canonical name or any synonym naming exactly one ingredient, case and punctuation
    /// insensitive ("Tylenol" -> acetaminophen).
    pub fn ingredient_by_name(&self, name: &str) -> Option<IngredientId> {
        let normalized = normalize_text(name);
        if let Some(&id) = self.by_name.get(&normalized) {
            return Some(id);
        }
        // A phrase spanning every token of the name, when it names one ingredient.
        let tokens = text::lex(&normalized);
        let tokens = Lexed {
            text: &normalized,
            tokens: &tokens,
        };
        match self.phrase_at(tokens, 0) {
            Some((&[id], len)) if len == tokens.len() => Some(id),
            _ => None,
        }
    }

    pub fn ingredients(&self) -> impl Iterator<Item = &Ingredient> {
        self.ingredients.iter()
    }

    /// The coded opioid products of the product table (product rxcui, components), for the
    /// MME agreement test: every product with at least one opioid component.
    pub fn products(&self) -> impl Iterator<Item = (&str, &DrugMatch)> {
        self.all_products()
            .filter(|(_, m)| m.has_class(self, DrugClass::Opioid))
    }

    /// Every coded product of both product tables, opioid and non-opioid.
    pub fn all_products(&self) -> impl Iterator<Item = (&str, &DrugMatch)> {
        self.products
            .iter()
            .filter_map(|(code, m)| code.as_deref().map(|c| (c, m)))
    }

    /// The elemental calcium of a component in mg per unit, when it is a calcium ingredient
    /// with a strength in mg: salts are converted by their elemental fraction unless the
    /// strength is stated as elemental.
    pub fn elemental_calcium_mg(&self, component: &Component) -> Option<f64> {
        let ingredient = self.ingredient(component.ingredient);
        if !ingredient.classes.contains(&DrugClass::Calcium) {
            return None;
        }
        let Some(Strength::PerUnit {
            amount,
            unit: StrengthUnit::Milligram,
        }) = component.strength
        else {
            return None;
        };
        match ingredient.elemental_fraction {
            Some(fraction) if !component.elemental => Some(amount * fraction),
            _ => Some(amount),
        }
    }
}

/// Strengths after an ingredient phrase: one per ingredient ("oxycodone 5 mg"), or for a
/// combination "5/325", "5-325" or "5 mg/325 mg" in the order the ingredients were named.
/// The strengths of `count` ingredients read at `tokens[*j..]` into `out` (emptied first;
/// left empty when none is there).
fn read_strengths(
    tokens: Lexed<'_>,
    j: &mut usize,
    count: usize,
    out: &mut Vec<Option<(Strength, bool)>>,
) {
    out.clear();
    if let Some((strength, elemental, next)) = text::parse_strength(tokens, *j) {
        *j = next;
        out.push(Some((strength, elemental)));
        while out.len() < count {
            match (tokens.is_slash(*j), text::parse_strength(tokens, *j + 1)) {
                (true, Some((s, e, next))) => {
                    out.push(Some((s, e)));
                    *j = next;
                }
                _ => break,
            }
        }
        return;
    }
    if count > 1 {
        // "percocet 5/325": bare numbers in milligrams, separated by slashes; or by spaces
        // ("5-325" after normalization) only when "mg" follows, so that "percocet 1-2 tabs"
        // is read as a count of tablets, not as strengths.
        let mut numbers = Vec::new();
        let mut all_slashed = true;
        let mut k = *j;
        while let Some(v) = tokens.number(k) {
            numbers.push(v);
            k += 1;
            if numbers.len() == count {
                break;
            }
            if tokens.is_slash(k) {
                k += 1;
            } else {
                all_slashed = false;
            }
        }
        let mg_follows = tokens.word(k) == Some("mg");
        if numbers.len() == count && (all_slashed || mg_follows) {
            if mg_follows {
                k += 1;
            }
            *j = k;
            out.extend(numbers.into_iter().map(|amount| {
                Some((
                    Strength::PerUnit {
                        amount,
                        unit: StrengthUnit::Milligram,
                    },
                    false,
                ))
            }));
        }
    }
}

#[cfg(test)]
mod tests;
