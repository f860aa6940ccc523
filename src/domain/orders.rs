//! The orders a clinician proposes (and the patient's active ones, which use the same types).
//!
//! Fields that may be missing or unreadable use [`Field`], so "not given" (normal for an
//! order-select draft) and "given but unreadable" (a finding: the dose was not checked) never
//! collapse into one another.

use super::codes::Concept;
use super::timing::Frequency;
use super::units::{Amount, CalendarDuration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A reference to an order inside the request, e.g. `MedicationRequest/abc` or the native id.
/// Shared (`Arc`): every finding about an order, and every action on it, names it, and a copy
/// per finding was an allocation and a free.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderRef(pub Arc<str>);

impl OrderRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value that was given and understood, not given at all, or given and not understood.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Field<T> {
    Given(T),
    #[default]
    Absent,
    Unreadable(Unreadable),
}

impl<T> Field<T> {
    pub fn given(&self) -> Option<&T> {
        match self {
            Field::Given(v) => Some(v),
            _ => None,
        }
    }

    pub fn unreadable(&self) -> Option<&Unreadable> {
        match self {
            Field::Unreadable(u) => Some(u),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

/// Why a field could not be read: the input path, what was there (no patient data: a unit
/// string or a number), and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The field in the client's terms, e.g. `dosageInstruction[0].doseAndRate[0].doseQuantity.unit`.
    pub field: String,
    pub raw: String,
    pub reason: String,
}

impl Unreadable {
    pub fn new(field: impl Into<String>, raw: impl Into<String>, reason: impl ToString) -> Self {
        Unreadable {
            field: field.into(),
            raw: raw.into(),
            reason: reason.to_string(),
        }
    }
}

/// The amount given per administration: fixed, or a range (checked at its high end).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Dose {
    Fixed { amount: Amount },
    Range { low: Amount, high: Amount },
}

impl Dose {
    /// The most aggressive reading: the amount itself, or the high end of the range.
    pub fn max(&self) -> Amount {
        match self {
            Dose::Fixed { amount } => *amount,
            Dose::Range { high, .. } => *high,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Oral,
    Intravenous,
    Intramuscular,
    Subcutaneous,
    /// Patient-controlled analgesia pump (parenteral).
    Pca,
    Transdermal,
    Nasal,
    Rectal,
    Sublingual,
    Other,
}

impl Route {
    /// Reads a route from a SNOMED code or a text ("PO", "IV", "intravenous", "SC", "PCA").
    pub fn parse(code_or_text: &str) -> Route {
        let t = code_or_text.trim().to_ascii_lowercase();
        match t.as_str() {
            "26643006" | "po" | "oral" | "by mouth" | "orally" | "oral route" => Route::Oral,
            "47625008" | "iv" | "intravenous" | "intravenously" | "intravenous route" | "ivpb"
            | "iv push" => Route::Intravenous,
            "78421000" | "im" | "intramuscular" | "intramuscular route" => Route::Intramuscular,
            "34206005" | "sc" | "sq" | "subq" | "subcut" | "subcutaneous"
            | "subcutaneous route" => Route::Subcutaneous,
            "pca" | "patient controlled analgesia" | "iv pca" => Route::Pca,
            "45890007" | "td" | "transdermal" | "topical patch" | "transdermal route" => {
                Route::Transdermal
            }
            "46713006" | "nasal" | "intranasal" | "in" | "nasal route" => Route::Nasal,
            "37161004" | "pr" | "rectal" | "rectal route" => Route::Rectal,
            "37839007" | "sl" | "sublingual" | "sublingual route" => Route::Sublingual,
            _ if t.contains("pca") => Route::Pca,
            _ if t.contains("intraven") => Route::Intravenous,
            _ if t.contains("subcut") => Route::Subcutaneous,
            _ if t.contains("intramusc") => Route::Intramuscular,
            _ if t.contains("oral") || t.contains("mouth") => Route::Oral,
            _ if t.contains("transderm") => Route::Transdermal,
            _ if t.contains("nasal") => Route::Nasal,
            _ => Route::Other,
        }
    }

    /// IV, IM, SC or PCA: an early-augmentation indication when an opioid is given this way.
    pub fn is_parenteral(self) -> bool {
        matches!(
            self,
            Route::Intravenous | Route::Intramuscular | Route::Subcutaneous | Route::Pca
        )
    }
}

/// FHIR request status, reduced. Drafts and active orders count; the rest are history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderStatus {
    Draft,
    #[default]
    Active,
    OnHold,
    Completed,
    Revoked,
    Stopped,
    Cancelled,
    EnteredInError,
    Unknown,
}

impl OrderStatus {
    pub fn parse(raw: &str) -> OrderStatus {
        match raw.trim().to_ascii_lowercase().as_str() {
            "draft" => OrderStatus::Draft,
            "active" => OrderStatus::Active,
            "on-hold" => OrderStatus::OnHold,
            "completed" => OrderStatus::Completed,
            "revoked" => OrderStatus::Revoked,
            "stopped" => OrderStatus::Stopped,
            "cancelled" => OrderStatus::Cancelled,
            "entered-in-error" => OrderStatus::EnteredInError,
            _ => OrderStatus::Unknown,
        }
    }

    /// Whether an order in this state is, or is about to be, given to the patient.
    /// `unknown` counts: an order we cannot place is not silently dropped.
    pub fn is_current(self) -> bool {
        matches!(
            self,
            OrderStatus::Draft | OrderStatus::Active | OrderStatus::OnHold | OrderStatus::Unknown
        )
    }
}

/// A medication order (FHIR MedicationRequest, native `medications[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationOrder {
    pub reference: OrderRef,
    /// Drug codes (RxNorm product or ingredient, local) and the order text.
    pub medication: Concept,
    pub status: OrderStatus,
    pub authored_on: Option<DateTime<Utc>>,
    /// Amount per administration.
    pub dose: Field<Dose>,
    pub frequency: Field<Frequency>,
    pub as_needed: bool,
    pub route: Field<Route>,
    /// Planned length of therapy: `dispenseRequest.expectedSupplyDuration`, else the timing's
    /// `boundsDuration` / `boundsPeriod` (the adapter applies that order).
    pub supply_duration: Field<CalendarDuration>,
    /// `dispenseRequest.quantity` (e.g. 60 tablets), used for a duration when none is given.
    pub dispense_quantity: Field<Amount>,
    /// Free-text sig, kept for the unreadable-dose message only.
    pub sig_text: Option<String>,
}

impl MedicationOrder {
    /// An order with only a reference and a drug: every other field absent.
    pub fn new(reference: &str, medication: Concept) -> MedicationOrder {
        MedicationOrder {
            reference: OrderRef(reference.into()),
            medication,
            status: OrderStatus::Draft,
            authored_on: None,
            dose: Field::Absent,
            frequency: Field::Absent,
            as_needed: false,
            route: Field::Absent,
            supply_duration: Field::Absent,
            dispense_quantity: Field::Absent,
            sig_text: None,
        }
    }
}

/// A non-medication order (FHIR ServiceRequest, native `services[]`): activity orders such as
/// bed rest, procedures, consults, imaging, therapy referrals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceOrder {
    pub reference: OrderRef,
    pub code: Concept,
    pub status: OrderStatus,
    /// `doNotPerform: true` orders ("do not turn") are prohibitions, not activities.
    pub do_not_perform: bool,
    pub authored_on: Option<DateTime<Utc>>,
    /// When it is to start (occurrenceDateTime / occurrencePeriod.start / boundsPeriod.start).
    pub occurrence_start: Option<DateTime<Utc>>,
    /// Planned length: occurrencePeriod end − start, else timing boundsDuration / boundsPeriod.
    /// Absent means open-ended.
    pub planned_duration: Field<CalendarDuration>,
}

impl ServiceOrder {
    pub fn new(reference: &str, code: Concept) -> ServiceOrder {
        ServiceOrder {
            reference: OrderRef(reference.into()),
            code,
            status: OrderStatus::Draft,
            do_not_perform: false,
            authored_on: None,
            occurrence_start: None,
            planned_duration: Field::Absent,
        }
    }
}

/// The proposed orders of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OrderSet {
    pub medications: Vec<MedicationOrder>,
    pub services: Vec<ServiceOrder>,
    /// order-select: the orders the clinician just selected. Findings are reported for these
    /// only; the other draft orders are context. `None` (order-sign, native) = all orders.
    pub focus: Option<Vec<OrderRef>>,
}

impl OrderSet {
    /// Whether findings about this order should be reported.
    pub fn in_focus(&self, order: &OrderRef) -> bool {
        self.focus.as_ref().is_none_or(|f| f.contains(order))
    }
}
