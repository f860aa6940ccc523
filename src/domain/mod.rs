//! The clinical domain: what a request means once an adapter has read it. Types here parse on
//! construction (an [`units::Amount`] is always positive and finite, a [`timing::Frequency`]
//! always has a period), and carry no IO and no clock.

pub mod codes;
pub mod orders;
pub mod patient;
pub mod timing;
pub mod units;

pub use codes::{Coding, Concept, System};
pub use orders::{
    Dose, Field, MedicationOrder, OrderRef, OrderSet, OrderStatus, Route, ServiceOrder, Unreadable,
};
pub use patient::{
    ClinicalFlag, Diagnosis, ImagingReport, LabResult, PatientContext, RecordSection, Sex,
};
pub use timing::{Frequency, RepeatSpec};
pub use units::{Amount, CalendarDuration, DoseForm, DoseUnit, PeriodUnit};

use chrono::{DateTime, Utc};

/// Everything the engine evaluates: the patient, the proposed orders, and the evaluation time
/// (an input, never read from a clock inside the engine).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvaluationInput {
    pub patient: PatientContext,
    pub orders: OrderSet,
    pub now: DateTime<Utc>,
}
