use super::*;
use crate::domain::Coding;

fn t() -> &'static Terminology {
    Terminology::builtin()
}

fn id(name: &str) -> IngredientId {
    t().ingredient_by_name(name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

fn text(s: &str) -> Option<DrugMatch> {
    t().identify(&Concept::from_text(s))
}

fn names(m: &DrugMatch) -> Vec<&str> {
    let mut v: Vec<&str> = m
        .components
        .iter()
        .map(|c| t().ingredient(c.ingredient).name.as_str())
        .collect();
    v.sort_unstable();
    v
}

fn mg(m: &DrugMatch, name: &str) -> Option<f64> {
    m.components
        .iter()
        .find(|c| c.ingredient == id(name))
        .and_then(|c| match c.strength {
            Some(Strength::PerUnit {
                amount,
                unit: StrengthUnit::Milligram,
            }) => Some(amount),
            _ => None,
        })
}

#[test]
fn every_csv_parses() {
    assert!(t().ingredients().count() > 90);
    assert_eq!(t().products().count(), 910); // 912 rows, two products with two oxycodone salts
    assert_eq!(t().all_products().count(), t().products().count() + 1);
    assert!(
        t().products()
            .all(|(_, m)| m.has_class(t(), DrugClass::Opioid))
    );
    for name in [
        "oxycodone",
        "meperidine",
        "naloxone",
        "gabapentin",
        "lorazepam",
        "senna",
        "apixaban",
    ] {
        id(name);
    }
    // Every opioid product row found its ingredient and kept its strength.
    for (code, m) in t().products() {
        assert!(!m.components.is_empty(), "{code}");
    }
}

#[test]
fn mme_factors_are_the_cdc_2022_table() {
    let f = |n: &str| t().ingredient(id(n)).mme;
    assert_eq!(f("oxycodone"), Some(MmeFactor::PerMilligram(1.5)));
    assert_eq!(f("hydromorphone"), Some(MmeFactor::PerMilligram(5.0)));
    assert_eq!(f("fentanyl"), Some(MmeFactor::PerMicrogramPerHour(2.4)));
    assert_eq!(f("buprenorphine"), Some(MmeFactor::NotCounted));
    assert_eq!(f("meperidine"), None);
    assert_eq!(f("acetaminophen"), None);
}

#[test]
fn limits_and_regimens() {
    let apap = t().ingredient(id("tylenol"));
    assert_eq!(
        apap.max_daily,
        Some(DailyLimit {
            amount: 4000.0,
            unit: LimitUnit::Milligram
        })
    );
    assert_eq!(
        apap.max_daily_elderly_or_hepatic.map(|l| l.amount),
        Some(3000.0)
    );
    let ris = t().ingredient(id("risedronate"));
    assert_eq!(ris.regimen.len(), 2);
    assert_eq!(ris.regimen[1].min_interval_days, 30.4375);
    let zol = t().ingredient(id("reclast"));
    assert_eq!(zol.renal_cutoff.map(|r| r.contraindicated), Some(true));
    assert!(
        t().ingredient(id("prolia"))
            .classes
            .contains(&DrugClass::AntiOsteoporosis)
    );
    assert!(
        t().ingredient(id("strontium ranelate"))
            .classes
            .contains(&DrugClass::AntiOsteoporosis)
    );
}

#[test]
fn by_product_code_fentanyl_patch() {
    let m = t()
        .identify(&Concept::coded(system::RXNORM, "197696", None))
        .unwrap();
    assert_eq!(m.matched_by, MatchedBy::ProductCode);
    assert_eq!(m.form, Some(ProductForm::Patch));
    assert_eq!(m.components.len(), 1);
    assert!(
        matches!(m.components[0].strength, Some(Strength::PerHour { micrograms }) if (micrograms - 75.0).abs() < 1e-9)
    );
}

#[test]
fn product_code_wins_over_contradicting_text() {
    let mut c = Concept::coded(system::RXNORM, "197696", None);
    c.text = Some("ibuprofen 600 mg".into());
    assert_eq!(names(&t().identify(&c).unwrap()), ["fentanyl"]);
}

#[test]
fn combination_product_code_carries_acetaminophen() {
    let m = t()
        .identify(&Concept::coded(system::RXNORM, "1049221", None))
        .unwrap();
    assert_eq!(names(&m), ["acetaminophen", "oxycodone"]);
    assert_eq!(mg(&m, "oxycodone"), Some(5.0));
    assert_eq!(mg(&m, "acetaminophen"), Some(325.0));
    assert!(m.has_class(t(), DrugClass::Acetaminophen));
}

#[test]
fn by_ingredient_code_with_text_strength() {
    let m = t()
        .identify(&Concept::coded(system::RXNORM, "7804", None))
        .unwrap();
    assert_eq!(m.matched_by, MatchedBy::IngredientCode);
    assert_eq!(names(&m), ["oxycodone"]);
    let mut c = Concept::coded(system::RXNORM, "7804", Some("oxycodone 5mg tab"));
    c.text = None;
    let m = t().identify(&c).unwrap();
    assert_eq!(mg(&m, "oxycodone"), Some(5.0));
    assert_eq!(m.form, Some(ProductForm::Tablet));
}

#[test]
fn local_or_wrong_code_falls_back_to_text() {
    let c = Concept::new(
        vec![
            Coding::new("urn:oid:1.2.3.4", "99999"),
            Coding::new(system::RXNORM, "000000"),
        ],
        Some("Morphine sulfate 2 mg/mL inj".into()),
    );
    let m = t().identify(&c).unwrap();
    assert_eq!(m.matched_by, MatchedBy::IngredientText);
    assert_eq!(names(&m), ["morphine"]);
    assert_eq!(m.form, Some(ProductForm::Injection));
    assert!(
        matches!(m.components[0].strength, Some(Strength::PerMillilitre { amount, unit: StrengthUnit::Milligram, .. }) if amount == 2.0)
    );
}

#[test]
fn rxnorm_names_parse_with_strengths() {
    let m = text("acetaminophen 325 MG / oxycodone 5 MG Oral Tablet").unwrap();
    assert_eq!(mg(&m, "oxycodone"), Some(5.0));
    assert_eq!(mg(&m, "acetaminophen"), Some(325.0));
    let m = text("72 HR fentanyl 0.075 MG/HR Transdermal System").unwrap();
    assert_eq!(m.matched_by, MatchedBy::ProductText);
    assert_eq!(m.product_rxcui.as_deref(), Some("197696"));
    let m = text("oxycodone hydrochloride 5 MG Oral Tablet").unwrap();
    assert_eq!(m.product_rxcui.as_deref(), Some("1049621"));
    let m = text("Oxycodone-HCl 10mg tablet").unwrap();
    assert_eq!(mg(&m, "oxycodone"), Some(10.0));
    let m = text("1 ML denosumab 60 MG/ML Prefilled Syringe").unwrap();
    assert!(matches!(
        m.components[0].strength,
        Some(Strength::PerMillilitre {
            volume_ml: Some(1.0),
            ..
        })
    ));
}

#[test]
fn brands_and_synonyms() {
    assert_eq!(names(&text("Tylenol 500 mg").unwrap()), ["acetaminophen"]);
    let m = text("Percocet 5/325 tab").unwrap();
    assert_eq!(names(&m), ["acetaminophen", "oxycodone"]);
    assert_eq!(mg(&m, "oxycodone"), Some(5.0));
    assert_eq!(mg(&m, "acetaminophen"), Some(325.0));
    assert_eq!(
        names(&text("Vitamin D3 1000 IU daily").unwrap()),
        ["cholecalciferol"]
    );
    assert_eq!(
        names(&text("MiraLAX 17 g").unwrap()),
        ["polyethylene glycol"]
    );
    assert!(
        text("Narcan 4 mg nasal spray")
            .unwrap()
            .has_class(t(), DrugClass::OpioidAntagonist)
    );
}

#[test]
fn no_false_positives() {
    let m = text("naloxone 4 mg nasal spray").unwrap();
    assert!(!m.has_class(t(), DrugClass::Opioid));
    assert!(text("vitamin c 500 mg").is_none());
    assert_eq!(
        names(&text("hydrocodone 5 mg / acetaminophen 325 mg").unwrap()),
        ["acetaminophen", "hydrocodone"]
    );
    assert_eq!(names(&text("oxycodone 5 mg").unwrap()), ["oxycodone"]);
    assert!(text("oxycodon").is_none());
    assert!(text("metformin 500 mg tablet").is_none());
    assert!(text("").is_none());
    assert!(t().identify(&Concept::default()).is_none());
    // A local code alone with no text names nothing.
    assert!(
        t().identify(&Concept::coded("urn:local", "7804", None))
            .is_none()
    );
}

#[test]
fn calcium_carbonate_1250_is_500_elemental() {
    let m = text("calcium carbonate 1250 MG Oral Tablet").unwrap();
    assert_eq!(names(&m), ["calcium carbonate"]);
    assert_eq!(t().elemental_calcium_mg(&m.components[0]), Some(500.0));
    let m = text("calcium carbonate 500 mg elemental").unwrap();
    assert!(m.components[0].elemental);
    assert_eq!(t().elemental_calcium_mg(&m.components[0]), Some(500.0));
    let m = text("calcium citrate 950 mg").unwrap();
    assert!((t().elemental_calcium_mg(&m.components[0]).unwrap() - 199.5).abs() < 1e-9);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn identify_never_panics(s in "\\PC{0,80}", code in "[0-9]{0,8}") {
            let mut c = Concept::coded(system::RXNORM, &code, Some(&s));
            c.text = Some(s.clone());
            let _ = t().identify(&c);
        }

        #[test]
        fn identify_never_panics_on_drugish_text(s in "(oxycodone|percocet|[0-9./ ]|mg|ml|hr|calcium|/){0,12}") {
            let _ = t().identify(&Concept::from_text(&s));
        }

        /// One set of buffers for a sequence of orders identifies each as fresh buffers do:
        /// nothing one order leaves in them changes the next.
        #[test]
        fn reused_buffers_identify_as_fresh_ones(
            orders in proptest::collection::vec(
                (
                    "(oxycodone|acetaminophen|percocet|hydrocodone|calcium carbonate|vitamin d|[0-9./ -]|mg|ml|hr|tab|/|x){0,10}",
                    proptest::option::of("(oxycodone|5 mg|[0-9]){0,3}"),
                    proptest::option::of(proptest::sample::select(vec!["7804", "161", "1049221", "197696", "1"])),
                ),
                1..6,
            ),
        ) {
            let mut buffers = Buffers::default();
            for (text, display, code) in &orders {
                let mut c = Concept::from_text(text);
                if let Some(code) = code {
                    c.codings.push(Coding {
                        system: Some(system::RXNORM.into()),
                        code: (*code).into(),
                        display: display.clone(),
                    });
                }
                prop_assert_eq!(t().identify_with(&c, &mut buffers), t().identify(&c));
            }
        }
    }
}

mod fused {
    use super::*;
    use proptest::prelude::*;

    /// Product names as the table has them (so that exact product-text matches occur), in
    /// upper case (the strategy below also takes them in lower case).
    fn product_names() -> Vec<String> {
        let mut names: Vec<String> = t()
            .product_by_text
            .keys()
            .take(40)
            .map(|k| k.to_ascii_uppercase())
            .collect();
        names.sort_unstable();
        names
    }

    fn order_text() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => proptest::sample::select(product_names()),
            1 => proptest::sample::select(product_names()).prop_map(|n| n.to_ascii_lowercase()),
            // A product name with a space too many, a comma or a hyphen in it.
            1 => (proptest::sample::select(product_names()), "[ ,-]").prop_map(|(n, s)| n.replacen(' ', &s, 1)),
            4 => "(Oxycodone|acetaminophen|Percocet|HYDROCODONE|calcium carbonate|Vitamin D3|[0-9./ ,%-]|MG|ml|Hr|tab|/|x|é|  ){0,10}",
            1 => "\\PC{0,30}",
        ]
    }

    proptest! {
        /// The texts of an order read by checking each while lexing it find what normalizing
        /// each first found, order after order in one set of buffers.
        #[test]
        fn checked_while_lexed_matches_as_normalized_first(
            orders in proptest::collection::vec(
                (order_text(), proptest::collection::vec(order_text(), 0..3)),
                1..5,
            ),
        ) {
            let (mut fused, mut reference) = (Buffers::default(), Buffers::default());
            for (text, displays) in &orders {
                let mut c = Concept::from_text(text);
                c.codings = displays
                    .iter()
                    .map(|d| Coding {
                        system: Some("urn:local".into()),
                        code: "x".into(),
                        display: Some(d.clone()),
                    })
                    .collect();
                prop_assert_eq!(
                    t().match_texts(&c, &mut fused),
                    t().match_texts_normalizing_first(&c, &mut reference)
                );
            }
        }
    }
}

/// Timing of identify, run by hand: `cargo test --release --lib terminology::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand"]
fn timing() {
    let cases = [
        Concept::coded(
            system::RXNORM,
            "197696",
            Some("72 HR fentanyl 0.075 MG/HR Transdermal System"),
        ),
        Concept::coded(system::RXNORM, "7804", Some("oxycodone 5mg tab")),
        Concept::from_text("acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet"),
        Concept::from_text("Percocet 5/325 tab, 1 tab PO q6h prn pain"),
        Concept::from_text("Physical therapy evaluation"),
    ];
    let _ = t();
    for c in &cases {
        let n = 20_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(t().identify(std::hint::black_box(c)));
        }
        println!(
            "{:>8.0} ns  {}",
            start.elapsed().as_nanos() as f64 / n as f64,
            c.label()
        );
    }
    let start = std::time::Instant::now();
    let _ = Terminology::load();
    println!("load: {:?}", start.elapsed());
}

#[test]
fn word_boundary_traps() {
    // "codeine" is not inside "hydrocodone", "dihydrocodeine" is its own ingredient,
    // "calcium" is not "calcium carbonate", "d" alone is not vitamin D.
    assert_eq!(
        names(&text("dihydrocodeine 16 mg").unwrap()),
        ["dihydrocodeine"]
    );
    assert_eq!(
        names(&text("Tylenol with codeine #3").unwrap()),
        ["acetaminophen", "codeine"]
    );
    assert_eq!(names(&text("Calcium 600 mg + D").unwrap()), ["calcium"]);
    assert_eq!(
        names(&text("oxycodone/acetaminophen 5/325").unwrap()),
        ["acetaminophen", "oxycodone"]
    );
    assert_eq!(
        names(&text("buprenorphine 8 MG / naloxone 2 MG Sublingual Tablet").unwrap()),
        ["buprenorphine", "naloxone"]
    );
    assert!(text("codeinex").is_none());
}

#[test]
fn opioid_products_keep_table_strengths() {
    // Every coded opioid product has at least one opioid component with a strength.
    for (code, m) in t().products() {
        if m.has_class(t(), DrugClass::Opioid) {
            assert!(
                m.components.iter().any(|c| t()
                    .ingredient(c.ingredient)
                    .classes
                    .contains(&DrugClass::Opioid)
                    && c.strength.is_some()),
                "{code}"
            );
        }
    }
    let m = t()
        .identify(&Concept::coded(system::RXNORM, "238129", None))
        .unwrap();
    assert!(matches!(
        m.components[0].strength,
        Some(Strength::PerMillilitre {
            volume_ml: Some(1.0),
            ..
        })
    ));
}

#[test]
fn ingredient_code_keeps_combination_from_text() {
    let c = Concept::new(
        vec![Coding::new(system::RXNORM, "7804")],
        Some("Percocet 5/325".into()),
    );
    let m = t().identify(&c).unwrap();
    assert_eq!(m.matched_by, MatchedBy::IngredientCode);
    assert_eq!(names(&m), ["acetaminophen", "oxycodone"]);
    // Code and text disagree: the code wins.
    let c = Concept::new(
        vec![Coding::new(system::RXNORM, "7804")],
        Some("ibuprofen 600 mg".into()),
    );
    assert_eq!(names(&t().identify(&c).unwrap()), ["oxycodone"]);
}

#[test]
fn non_opioid_product_code() {
    let m = t()
        .identify(&Concept::coded(system::RXNORM, "197806", None))
        .unwrap();
    assert_eq!(m.matched_by, MatchedBy::ProductCode);
    assert_eq!(mg(&m, "ibuprofen"), Some(600.0));
    assert!(m.has_class(t(), DrugClass::Nsaid));
    let m = text("100 ML zoledronic acid 0.05 MG/ML Injection").unwrap();
    assert_eq!(m.matched_by, MatchedBy::ProductText);
    assert!(matches!(
        m.components[0].strength,
        Some(Strength::PerMillilitre {
            volume_ml: Some(100.0),
            ..
        })
    ));
    assert!(m.has_class(t(), DrugClass::AntiOsteoporosis));
}

/// Medication texts seen in the shared conformance requests (CDS Hooks / opioid CDS).
#[test]
fn conformance_request_texts() {
    let m = text("MORPHINE ER 20 MG CAPSULE,EXTENDED RELEASE PELLETS").unwrap();
    assert_eq!(mg(&m, "morphine"), Some(20.0));
    assert_eq!(m.form, Some(ProductForm::Capsule));
    let m = text("12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet").unwrap();
    assert_eq!(mg(&m, "oxycodone"), Some(10.0));
    let m = text("Acetaminophen 325 MG / tramadol hydrochloride 37.5 MG Oral Tablet [Ultracet]")
        .unwrap();
    assert_eq!(mg(&m, "tramadol"), Some(37.5));
    assert_eq!(mg(&m, "acetaminophen"), Some(325.0));
    assert!(
        text("Carisoprodol 250 MG Oral Tablet [Soma]")
            .unwrap()
            .has_class(t(), DrugClass::MuscleRelaxant)
    );
    assert!(
        text("Flurazepam Hydrochloride 15 MG Oral Capsule")
            .unwrap()
            .has_class(t(), DrugClass::Benzodiazepine)
    );
    let m = text("Naloxone Hydrochloride 0.02 MG/ML Injectable Solution").unwrap();
    assert!(m.has_class(t(), DrugClass::OpioidAntagonist) && !m.has_class(t(), DrugClass::Opioid));
    assert!(
        text("Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension").is_none()
    );
    assert!(text("Take 1 capsule (20 mg total) by mouth daily.").is_none());
}

#[test]
fn combination_names_share_following_strengths() {
    let m = text("oxycodone/acetaminophen 5/325 tab").unwrap();
    assert_eq!(mg(&m, "oxycodone"), Some(5.0));
    assert_eq!(mg(&m, "acetaminophen"), Some(325.0));
    let m = text("Hydrocodone-acetaminophen 5-325 mg").unwrap();
    assert_eq!(mg(&m, "hydrocodone"), Some(5.0));
    assert_eq!(mg(&m, "acetaminophen"), Some(325.0));
    // Not adjacent: no sharing.
    let m = text("oxycodone prn and acetaminophen 500 mg").unwrap();
    assert_eq!(mg(&m, "oxycodone"), None);
    assert_eq!(mg(&m, "acetaminophen"), Some(500.0));
}

#[test]
fn tablet_counts_are_not_strengths() {
    let m = text("Percocet 1-2 tabs q4h prn").unwrap();
    assert_eq!(names(&m), ["acetaminophen", "oxycodone"]);
    assert!(m.components.iter().all(|c| c.strength.is_none()));
}

#[test]
fn vitamin_d_with_thousands_separator() {
    let m = text("Vitamin D2 50,000 units weekly").unwrap();
    assert_eq!(names(&m), ["ergocalciferol"]);
    assert!(
        matches!(m.components[0].strength, Some(Strength::PerUnit { amount, unit: StrengthUnit::InternationalUnit }) if amount == 50000.0)
    );
    assert_eq!(m.form, None);
}

#[test]
fn every_non_opioid_product_name_gives_strengths() {
    for name in [
        "sennosides 8.6 MG Oral Tablet",
        "polyethylene glycol 3350 17000 MG Powder for Oral Solution",
        "alendronic acid 70 MG Oral Tablet",
        "risedronate sodium 150 MG Oral Tablet",
        "naloxone hydrochloride 4 MG/ACTUAT Nasal Spray",
        "calcitonin salmon 200 UNT/ACTUAT Metered Dose Nasal Spray",
        "cholecalciferol 1000 UNT Oral Tablet",
        "gabapentin 300 MG Oral Capsule",
    ] {
        let m = text(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(m.matched_by, MatchedBy::ProductText, "{name}");
        assert_eq!(m.components.len(), 1, "{name}");
        assert!(
            matches!(m.components[0].strength, Some(Strength::PerUnit { .. })),
            "{name}"
        );
    }
    let m = text("polyethylene glycol 3350 17000 MG Powder for Oral Solution").unwrap();
    assert_eq!(mg(&m, "polyethylene glycol"), Some(17000.0));
    assert_eq!(
        mg(
            &text("alendronic acid 70 MG Oral Tablet").unwrap(),
            "alendronate"
        ),
        Some(70.0)
    );
}

/// The phrase lookup as it was before `phrase_starts` filed names by their first word: for
/// every length from the longest possible down, the tokens joined by one space, looked up in
/// the plain phrase map. The reference for [`Terminology::phrase_at`].
fn phrase_at_reference(tokens: Lexed<'_>, i: usize) -> Option<(&'static [IngredientId], usize)> {
    (1..=tokens.len().saturating_sub(i)).rev().find_map(|len| {
        let parts: Option<Vec<&str>> = (i..i + len).map(|k| tokens.key(k)).collect();
        let ids = t().phrases.get(&parts?.join(" "))?;
        Some((ids.as_slice(), len))
    })
}

mod phrases {
    use super::*;
    use proptest::prelude::*;

    /// Every word of every name and synonym, and a few words and numbers that are not.
    fn words() -> Vec<String> {
        let mut words: Vec<String> = t()
            .phrases
            .keys()
            .flat_map(|k| k.split(' ').map(str::to_owned))
            .chain(["mg", "tab", "hcl", "5", "325", "0.5", "x"].map(str::to_owned))
            .collect();
        words.sort_unstable();
        words.dedup();
        words
    }

    #[test]
    fn every_name_and_synonym_is_found_whole() {
        for (key, ids) in &t().phrases {
            let tokens = text::lex(key);
            let tokens = Lexed {
                text: key,
                tokens: &tokens,
            };
            assert_eq!(
                t().phrase_at(tokens, 0),
                Some((ids.as_slice(), tokens.len())),
                "{key}"
            );
        }
    }

    proptest! {
        /// Texts made of the names' own words (so that long names and their prefixes meet),
        /// slashes and other words: the same name at every token as the plain lookup.
        #[test]
        fn phrase_at_agrees_with_the_plain_lookup(
            picks in proptest::collection::vec(
                prop_oneof![
                    8 => proptest::sample::select(words()),
                    1 => Just("/".to_owned()),
                    1 => "[a-z0-9]{1,4}",
                ],
                0..8,
            ),
        ) {
            let normalized = normalize_text(&picks.join(" "));
            let tokens = text::lex(&normalized);
            let tokens = Lexed { text: &normalized, tokens: &tokens };
            for i in 0..=tokens.len() {
                prop_assert_eq!(t().phrase_at(tokens, i), phrase_at_reference(tokens, i), "{} at {}", normalized, i);
            }
        }
    }
}

#[test]
fn drug_class_sets_behave_as_sets_of_classes() {
    for (i, class) in DrugClass::ALL.iter().enumerate() {
        assert_eq!(*class as usize, i, "DrugClass::ALL is in declaration order");
    }
    // Every subset of the classes, against the BTreeSet the ingredients held before.
    for mask in 0u32..(1 << DrugClass::ALL.len()) {
        let members: std::collections::BTreeSet<DrugClass> = DrugClass::ALL
            .into_iter()
            .filter(|c| mask & (1 << *c as u32) != 0)
            .collect();
        let set: DrugClasses = members.iter().copied().collect();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            members.iter().copied().collect::<Vec<_>>()
        );
        assert_eq!(set.is_empty(), members.is_empty());
        for class in DrugClass::ALL {
            assert_eq!(set.contains(&class), members.contains(&class));
        }
    }
    let opioid: DrugClasses = [DrugClass::Opioid].into_iter().collect();
    let both = opioid.union([DrugClass::Acetaminophen].into_iter().collect());
    assert_eq!(
        both.iter().collect::<Vec<_>>(),
        [DrugClass::Opioid, DrugClass::Acetaminophen]
    );
}
