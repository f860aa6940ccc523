//! The patient's current medications as the rules see them: each drafted or active order with
//! the drug the terminology identified (or `None`: unrecognized). Resolved once per evaluation.

use crate::domain::{EvaluationInput, MedicationOrder};
use crate::engine::dosing::{self, DailyDose};
use crate::terminology::{Buffers, DrugClass, DrugClasses, DrugMatch, Terminology};
use std::cell::OnceCell;

#[derive(Debug, Clone)]
pub struct Medication<'a> {
    pub order: &'a MedicationOrder,
    /// In the draft orders being signed (false: an active medication from the record).
    pub drafted: bool,
    /// The identified drug; `None` when no code or text matches the tables.
    pub drug: Option<DrugMatch>,
    /// The drug classes of every ingredient: rules ask "is this an opioid?" of every
    /// medication many times per evaluation.
    classes: DrugClasses,
    /// Whether an ingredient has a label regimen (alendronate weekly): DOSE-REGIMEN and
    /// DOSE-MAX-DAILY ask about every order, and nearly no drug has one.
    label_regimen: bool,
    /// Daily amounts per ingredient, computed on first use: several dose rules read them and
    /// writing out the arithmetic for cards is the costliest step of an evaluation. A `OnceCell`,
    /// not a `OnceLock`: an evaluation runs on one thread, and the lock's once-machinery cost
    /// about 100 instructions per medication.
    doses: OnceCell<Vec<DailyDose>>,
}

impl<'a> Medication<'a> {
    pub fn has_class(&self, class: DrugClass) -> bool {
        self.classes.contains(&class)
    }

    /// Whether an ingredient of the drug has a label regimen (see
    /// `rules::dose_regimen::regimen_violation`); false for an unrecognized drug.
    pub fn has_label_regimen(&self) -> bool {
        self.label_regimen
    }

    /// The daily amount of each ingredient (empty for an unrecognized drug), computed once.
    pub fn daily_doses(&self) -> &[DailyDose] {
        self.doses.get_or_init(|| {
            self.drug
                .as_ref()
                .map(|d| dosing::daily_doses(self.order, d, Terminology::builtin()))
                .unwrap_or_default()
        })
    }

    /// The order's label for messages (its text, else a display, else a code).
    pub fn label(&self) -> String {
        self.order.medication.label()
    }
}

/// Draft orders first (in request order), then active ones; only orders in a current state.
pub fn resolve(input: &EvaluationInput) -> Vec<Medication<'_>> {
    let terminology = Terminology::builtin();
    let mut buffers = Buffers::default();
    let (drafted, active) = (&input.orders.medications, &input.patient.active_medications);
    // Sized for every order up front: collecting from the filter grew the vector three times
    // for twenty orders, moving every medication read so far each time.
    let mut medications = Vec::with_capacity(drafted.len() + active.len());
    let drafted = drafted.iter().map(|o| (o, true));
    let active = active.iter().map(|o| (o, false));
    let current = drafted
        .chain(active)
        .filter(|(order, _)| order.status.is_current())
        .map(|(order, drafted)| {
            let drug = terminology.identify_with(&order.medication, &mut buffers);
            let (classes, label_regimen) = drug.as_ref().map_or_else(
                || (DrugClasses::default(), false),
                |d| {
                    d.components.iter().fold(
                        (DrugClasses::default(), false),
                        |(classes, regimen), c| {
                            let ingredient = terminology.ingredient(c.ingredient);
                            (
                                classes.union(ingredient.classes),
                                regimen || !ingredient.regimen.is_empty(),
                            )
                        },
                    )
                },
            );
            Medication {
                order,
                drafted,
                drug,
                classes,
                label_regimen,
                doses: OnceCell::new(),
            }
        });
    medications.extend(current);
    medications
}
