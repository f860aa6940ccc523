//! What the dose rule kinds share: the current medications with their identified drug, and
//! daily totals of an ingredient (or a class, for calcium and vitamin D) over the draft orders
//! plus the active medications, with the sum written out for the card.
//!
//! The dose rules speak only when a draft order contains a drug they concern (no alerts about
//! the home list alone), but their totals include the active medications.

use crate::domain::units::push_number;
use crate::domain::{Field, MedicationOrder, OrderRef};
use crate::engine::Facts;
use crate::engine::dosing::{DailyAmount, DailyDose, DailyUnit};
use crate::terminology::{Ingredient, Terminology};
use smallvec::SmallVec;

pub(super) use crate::engine::medications::Medication as Med;

/// What the dose rules read from a medication beyond its drug.
pub(super) trait DoseView {
    /// The daily amount of each ingredient (empty for an unrecognized drug).
    fn doses(&self, t: &Terminology) -> &[DailyDose];
    /// The order as a card names it; active medications are marked as such.
    fn card_label(&self) -> String {
        let mut out = String::new();
        self.push_card_label(&mut out);
        out
    }
    /// [`DoseView::card_label`] written onto `out`.
    fn push_card_label(&self, out: &mut String);
}

impl DoseView for Med<'_> {
    fn doses(&self, _t: &Terminology) -> &[DailyDose] {
        self.daily_doses()
    }

    /// Sized for the label, so that " (active)" does not grow it.
    fn card_label(&self) -> String {
        let label = self.order.medication.label_str();
        let mut out = String::with_capacity(label.len() + ACTIVE.len());
        self.push_card_label(&mut out);
        out
    }

    fn push_card_label(&self, out: &mut String) {
        out.push_str(self.order.medication.label_str());
        if !self.drafted {
            out.push_str(ACTIVE);
        }
    }
}

const ACTIVE: &str = " (active)";

/// The card labels of the medications `which` accepts, separated by ", ", a label written once
/// when the next order has it too: what collecting the labels, `dedup` and `join(", ")` gave,
/// written into one string.
pub(super) fn joined_card_labels(meds: &[Med<'_>], which: impl Fn(&Med<'_>) -> bool) -> String {
    // Room for every label and separator (duplicates included), so that the string never grows.
    let room = meds
        .iter()
        .filter(|m| which(m))
        .map(|m| m.order.medication.label_str().len() + ACTIVE.len() + 2)
        .sum();
    join_deduplicated(meds.iter().filter(|m| which(m)), room, |m, out| {
        m.push_card_label(out)
    })
}

/// `items` written by `push`, separated by ", ", skipping one written as the one kept before it,
/// into a string with room for `room` bytes.
fn join_deduplicated<T>(
    items: impl Iterator<Item = T>,
    room: usize,
    push: impl Fn(&T, &mut String),
) -> String {
    let mut out = String::with_capacity(room);
    // Where the last kept item's text is in `out`.
    let mut last: Option<(usize, usize)> = None;
    for item in items {
        let start = out.len();
        if last.is_some() {
            out.push_str(", ");
        }
        let text_start = out.len();
        push(&item, &mut out);
        if let Some((a, b)) = last
            && out[text_start..] == out[a..b]
        {
            out.truncate(start);
            continue;
        }
        last = Some((text_start, out.len()));
    }
    out
}

/// The current medications (drafts, then active ones), identified once per evaluation.
pub(super) fn medications<'f, 'a>(facts: &'f Facts<'a>) -> &'f [Med<'a>] {
    &facts.medications
}

/// A daily total over several orders. The terms are kept as (order, amount) and written out
/// only when a card shows them ([`Total::explanation`]); inline, for the handful of them: most
/// totals are of an ingredient under its limit, and a vector per total was an allocation.
#[derive(Debug, Clone)]
pub(super) struct Total<'m, 'a> {
    pub amount: f64,
    terms: SmallVec<[(&'m Med<'a>, &'m DailyAmount); 4]>,
    /// Orders of the drug whose dose could not be computed (so the total may be low).
    not_computed: SmallVec<[&'m Med<'a>; 2]>,
    /// Any order of the drug at all, computed or not.
    pub orders: usize,
}

impl Total<'_, '_> {
    /// "a: 800 mg × 4/day = 3200 mg/day + b (active): ... = 3200 mg/day total".
    pub fn explanation(&self, unit: DailyUnit, t: &Terminology) -> String {
        let mut out = String::with_capacity(96 * self.terms.len().max(1));
        if self.terms.is_empty() {
            out.push_str("no computable dose; 0 ");
            out.push_str(unit.per_day_symbol());
            return out;
        }
        for (i, (med, amount)) in self.terms.iter().enumerate() {
            if i > 0 {
                out.push_str(" + ");
            }
            med.push_card_label(&mut out);
            out.push_str(": ");
            amount.write_explanation(&mut out, t);
        }
        if self.terms.len() > 1 {
            out.push_str("; total ");
            push_number(&mut out, self.amount);
            out.push(' ');
            out.push_str(unit.per_day_symbol());
        }
        out
    }

    /// A sentence for the card when some orders could not be counted, else empty.
    pub fn not_computed_note(&self) -> String {
        if self.not_computed.is_empty() {
            String::new()
        } else {
            let mut out = String::from(" Not counted, dose not computable: ");
            for (i, med) in self.not_computed.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                med.push_card_label(&mut out);
            }
            out.push('.');
            out
        }
    }
}

/// Sums the daily amounts in `unit` of every ingredient accepted by `which`, over all current
/// medications.
pub(super) fn total<'m, 'a>(
    meds: &'m [Med<'a>],
    t: &Terminology,
    unit: DailyUnit,
    which: impl Fn(&Ingredient) -> bool,
) -> Total<'m, 'a> {
    let mut total = Total {
        amount: 0.0,
        terms: SmallVec::new(),
        not_computed: SmallVec::new(),
        orders: 0,
    };
    for med in meds {
        let mut counted = false;
        for dose in med.doses(t) {
            let ingredient = t.ingredient(dose.ingredient());
            if !which(ingredient) {
                continue;
            }
            counted = true;
            match dose {
                DailyDose::Amount(a) if a.unit == unit => {
                    total.amount += a.amount;
                    total.terms.push((med, a));
                }
                _ => total.not_computed.push(med),
            }
        }
        if counted {
            total.orders += 1;
        }
    }
    total
}

/// The first drafted order accepted by `which` that the request focuses on (order-select), or
/// the first drafted one (order-sign): where a patient-level dose card is attached.
pub(super) fn anchor<'m>(
    facts: &Facts<'_>,
    meds: &'m [Med<'_>],
    which: impl Fn(&Med<'_>) -> bool,
) -> Option<&'m OrderRef> {
    // One pass, without collecting the drafted orders: a vector per dose card cost an
    // allocation and a free.
    let in_focus = |m: &&Med<'_>| facts.input.orders.in_focus(&m.order.reference);
    let mut drafted = meds.iter().filter(|m| m.drafted && which(m));
    let first = drafted.next()?;
    let chosen = if in_focus(&first) {
        first
    } else {
        drafted.find(in_focus).unwrap_or(first)
    };
    Some(&chosen.order.reference)
}

/// How [`anchor`] chose before: the drafted orders collected, then searched. The oracle of
/// `anchors_are_chosen_as_by_collecting`.
#[cfg(test)]
fn anchor_by_collecting<'m>(
    facts: &Facts<'_>,
    meds: &'m [Med<'_>],
    which: impl Fn(&Med<'_>) -> bool,
) -> Option<&'m OrderRef> {
    let drafted: Vec<&Med<'_>> = meds.iter().filter(|m| m.drafted && which(m)).collect();
    drafted
        .iter()
        .find(|m| facts.input.orders.in_focus(&m.order.reference))
        .or(drafted.first())
        .map(|m| &m.order.reference)
}

/// True when the order was not filled in yet: normal at order-select, where a draft often has
/// no dose or frequency.
pub(super) fn incomplete_draft(facts: &Facts<'_>, order: &MedicationOrder) -> bool {
    facts.input.orders.focus.is_some()
        && (order.dose.is_absent()
            || (order.frequency.is_absent() && !matches!(order.dose, Field::Unreadable(_))))
}

#[cfg(test)]
mod anchor_tests {
    use crate::domain::OrderRef;
    use crate::engine::Facts;
    use crate::engine::rules::testing::{Case, drug_order, patient_aged};

    const DRUGS: [&str; 3] = ["oxycodone 5 mg tablet", "ibuprofen 400 mg", "senna"];

    proptest::proptest! {
        /// One pass chooses the order that collecting and searching chose: drafted and active
        /// orders of several drugs, with no focus (order-sign) or a focus on some of them
        /// (order-select), including orders outside the ones `which` accepts.
        #[test]
        fn anchors_are_chosen_as_by_collecting(
            orders in proptest::collection::vec((0usize..DRUGS.len(), proptest::bool::ANY), 0..7),
            focus in proptest::option::of(proptest::collection::vec(0usize..8, 0..4)),
            wanted in 0usize..DRUGS.len(),
        ) {
            let mut case = Case::new(patient_aged(70));
            for (i, (drug, drafted)) in orders.iter().enumerate() {
                let order = drug_order(&format!("MedicationRequest/{i}"), DRUGS[*drug], None);
                case = if *drafted { case.medication(order) } else { case.active_medication(order) };
            }
            case.orders_mut().focus = focus.map(|f| {
                f.iter().map(|i| OrderRef(format!("MedicationRequest/{i}").into())).collect()
            });
            let plan = crate::pathway::Plan::builtin();
            let facts = Facts::gather(&plan, case.input());
            let which = |m: &super::Med<'_>| m.order.medication.label_str() == DRUGS[wanted];
            proptest::prop_assert_eq!(
                super::anchor(&facts, &facts.medications, which),
                super::anchor_by_collecting(&facts, &facts.medications, which)
            );
        }
    }
}

#[cfg(test)]
mod join_tests {
    proptest::proptest! {
        /// Joining in one string gives what collecting, `dedup` and `join(", ")` gave (the
        /// labels from a small alphabet so that neighbours repeat, and some hold ", ").
        #[test]
        fn joined_labels_are_the_deduplicated_join(
            labels in proptest::collection::vec("(a|b|, |a, b|)", 0..8),
        ) {
            let mut collected: Vec<String> = labels.clone();
            collected.dedup();
            let joined = super::join_deduplicated(labels.iter(), 0, |l, out| out.push_str(l));
            proptest::prop_assert_eq!(joined, collected.join(", "));
        }
    }
}

/// Time of a whole evaluation with a realistic pharmacist load (6 drafts, 4 active medications),
/// run by hand: `cargo test --release --lib dose_common::timing -- --ignored --nocapture`.
#[cfg(test)]
#[test]
#[ignore = "timing, run by hand"]
fn timing() {
    use crate::domain::{OrderStatus, PeriodUnit};
    use crate::engine::rules::testing::{Case, med, med_per_day, vcf_patient};
    let mut case = Case::new(vcf_patient())
        .medication(med(
            "MedicationRequest/1",
            "acetaminophen 325 MG / oxycodone 5 MG Oral Tablet",
            2.0,
            "tablet",
            4.0,
            PeriodUnit::Hour,
        ))
        .medication(med_per_day(
            "MedicationRequest/2",
            "acetaminophen 500 mg tablet",
            1000.0,
            "mg",
            3,
        ))
        .medication(med(
            "MedicationRequest/3",
            "alendronate 70 MG Oral Tablet",
            1.0,
            "tablet",
            1.0,
            PeriodUnit::Week,
        ))
        .medication(med_per_day(
            "MedicationRequest/4",
            "calcium carbonate 1250 MG Oral Tablet",
            1.0,
            "tablet",
            2,
        ))
        .medication(med_per_day(
            "MedicationRequest/5",
            "cholecalciferol 1000 UNT Oral Tablet",
            1.0,
            "tablet",
            1,
        ))
        .medication(med_per_day("MedicationRequest/6", "senna", 8.6, "mg", 2));
    for (i, text) in [
        "gabapentin 300 MG Oral Capsule",
        "lorazepam 0.5 MG Oral Tablet",
        "morphine 15 mg",
        "lisinopril 10 mg",
    ]
    .iter()
    .enumerate()
    {
        let mut o = med_per_day(&format!("MedicationRequest/a{i}"), text, 1.0, "tablet", 2);
        o.status = OrderStatus::Active;
        case = case.active_medication(o);
    }
    let _ = case.evaluate();
    let n = 2_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(case.evaluate());
    }
    println!(
        "evaluate: {:.1} µs",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
