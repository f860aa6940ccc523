//! PROVISIONAL SHIM (vcfrules branch) of the lead's `medications.rs` as announced in
//! RULES-CONTEXT.md: the current medication orders (drafts and active ones) with their
//! identified drug. Take main's version of this file when it lands.

use super::Facts;
use crate::domain::MedicationOrder;
use crate::terminology::{DrugClass, DrugMatch, Terminology};

pub struct Medication<'a> {
    pub order: &'a MedicationOrder,
    /// In the draft orders (false = active home/inpatient med from prefetch).
    pub drafted: bool,
    pub drug: Option<DrugMatch>,
}

impl Medication<'_> {
    pub fn has_class(&self, class: DrugClass) -> bool {
        self.drug
            .as_ref()
            .is_some_and(|d| d.has_class(Terminology::builtin(), class))
    }

    pub fn ingredient_names(&self) -> Vec<&str> {
        self.drug
            .as_ref()
            .map(|d| d.ingredient_names())
            .unwrap_or_default()
    }

    pub fn has_ingredient(&self, name: &str) -> bool {
        self.ingredient_names().contains(&name)
    }

    pub fn label(&self) -> String {
        self.order.medication.label()
    }
}

/// Current draft and active medication orders, identified once per evaluation.
pub fn gather(input: &crate::domain::EvaluationInput) -> Vec<Medication<'_>> {
    let t = Terminology::builtin();
    let drafts = input.orders.medications.iter().map(|o| (o, true));
    let active = input.patient.active_medications.iter().map(|o| (o, false));
    drafts
        .chain(active)
        .filter(|(o, _)| o.status.is_current())
        .map(|(order, drafted)| Medication {
            order,
            drafted,
            drug: t.identify(&order.medication),
        })
        .collect()
}

impl Facts<'_> {
    pub fn drafted(&self, class: DrugClass) -> impl Iterator<Item = &Medication<'_>> {
        self.medications
            .iter()
            .filter(move |m| m.drafted && m.has_class(class))
    }

    pub fn ordered_or_active(&self, class: DrugClass) -> bool {
        self.medications.iter().any(|m| m.has_class(class))
    }

    pub fn terminology(&self) -> &'static Terminology {
        Terminology::builtin()
    }

    /// Services: drafts + active, current status, not doNotPerform.
    pub fn service_ordered_or_active(&self, set: &str) -> bool {
        let Some(vs) = self.value_set(set) else {
            return false;
        };
        self.input
            .orders
            .services
            .iter()
            .chain(&self.input.patient.active_services)
            .any(|s| s.status.is_current() && !s.do_not_perform && vs.contains(&s.code))
    }
}
