//! What the pathway knows about the patient: demographics, diagnoses, labs, documented flags,
//! active medications and service orders. Built by an adapter from prefetch or native input.

use super::codes::Concept;
use super::orders::{MedicationOrder, ServiceOrder};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Female,
    Male,
    Other,
    Unknown,
}

impl Sex {
    pub fn parse(raw: &str) -> Sex {
        match raw.trim().to_ascii_lowercase().as_str() {
            "female" | "f" => Sex::Female,
            "male" | "m" => Sex::Male,
            "other" => Sex::Other,
            _ => Sex::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClinicalStatus {
    #[default]
    Active,
    Recurrence,
    Relapse,
    Inactive,
    Remission,
    Resolved,
    Unknown,
}

impl ClinicalStatus {
    pub fn parse(raw: &str) -> ClinicalStatus {
        match raw.trim().to_ascii_lowercase().as_str() {
            "active" => ClinicalStatus::Active,
            "recurrence" => ClinicalStatus::Recurrence,
            "relapse" => ClinicalStatus::Relapse,
            "inactive" => ClinicalStatus::Inactive,
            "remission" => ClinicalStatus::Remission,
            "resolved" => ClinicalStatus::Resolved,
            _ => ClinicalStatus::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    #[default]
    Confirmed,
    Provisional,
    Differential,
    Unconfirmed,
    Refuted,
    EnteredInError,
    Unknown,
}

impl Verification {
    pub fn parse(raw: &str) -> Verification {
        match raw.trim().to_ascii_lowercase().as_str() {
            "confirmed" => Verification::Confirmed,
            "provisional" => Verification::Provisional,
            "differential" => Verification::Differential,
            "unconfirmed" => Verification::Unconfirmed,
            "refuted" => Verification::Refuted,
            "entered-in-error" => Verification::EnteredInError,
            _ => Verification::Unknown,
        }
    }
}

/// A diagnosis (FHIR Condition, native `diagnoses[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub code: Concept,
    pub clinical_status: ClinicalStatus,
    pub verification: Verification,
    pub onset: Option<DateTime<Utc>>,
    pub recorded: Option<DateTime<Utc>>,
}

impl Diagnosis {
    pub fn new(code: Concept) -> Diagnosis {
        Diagnosis {
            code,
            clinical_status: ClinicalStatus::Active,
            verification: Verification::Confirmed,
            onset: None,
            recorded: None,
        }
    }

    /// Not resolved / inactive / in remission, and not refuted / entered in error.
    pub fn is_active(&self) -> bool {
        !matches!(
            self.clinical_status,
            ClinicalStatus::Inactive | ClinicalStatus::Remission | ClinicalStatus::Resolved
        ) && !matches!(self.verification, Verification::Refuted | Verification::EnteredInError)
    }

    /// The onset, else the recorded date: for a fracture, the fracture date.
    pub fn onset_or_recorded(&self) -> Option<DateTime<Utc>> {
        self.onset.or(self.recorded)
    }
}

/// A lab result (FHIR Observation, native `labs[]`). The value is kept with its unit as sent;
/// the engine classifies it by code and converts units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabResult {
    pub code: Concept,
    pub value: f64,
    pub unit: Option<String>,
    pub effective: Option<DateTime<Utc>>,
}

/// A spine imaging study or report (FHIR DiagnosticReport / ImagingStudy, native `imaging[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImagingReport {
    pub code: Concept,
    pub date: Option<DateTime<Utc>>,
}

/// Facts a clinician documents that the pathway reads (native `flags`, or coded Conditions the
/// engine recognizes through the pathway's value sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClinicalFlag {
    NeurologicalDeficit,
    RefractoryPain,
    OralAnalgesicContraindicated,
    ProgressiveDeformity,
    PulmonaryDysfunction,
    HighEnergyTrauma,
    HepaticDisease,
    /// Intolerance or contraindication to every anti-osteoporosis agent the pathway lists.
    AntiosteoporosisIntolerance,
    Dialysis,
}

/// Which parts of the patient's record the request could not supply (a prefetch key that was
/// null, a native section left out). The engine turns these into "missing input" notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSection {
    Patient,
    Conditions,
    Medications,
    Observations,
    ServiceRequests,
    Imaging,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PatientContext {
    /// `Patient/123`: stored in the audit log, never logged.
    pub reference: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<Sex>,
    pub diagnoses: Vec<Diagnosis>,
    pub labs: Vec<LabResult>,
    pub imaging: Vec<ImagingReport>,
    pub flags: BTreeSet<ClinicalFlag>,
    pub active_medications: Vec<MedicationOrder>,
    pub active_services: Vec<ServiceOrder>,
    pub absent_sections: BTreeSet<RecordSection>,
}

impl PatientContext {
    /// Age in whole years at `now`; `None` without a birth date or when born after `now`.
    pub fn age_at(&self, now: DateTime<Utc>) -> Option<u32> {
        let birth = self.birth_date?;
        let today = now.date_naive();
        if birth > today {
            return None;
        }
        let mut years = today.year() - birth.year();
        if (today.month(), today.day()) < (birth.month(), birth.day()) {
            years -= 1;
        }
        u32::try_from(years).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn age_turns_on_the_birthday() {
        let patient = PatientContext {
            birth_date: NaiveDate::from_ymd_opt(1961, 11, 23),
            ..PatientContext::default()
        };
        let day_before = Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 0).unwrap();
        let birthday = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        assert_eq!(patient.age_at(day_before), Some(64));
        assert_eq!(patient.age_at(birthday), Some(65));
    }

    #[test]
    fn birth_after_now_has_no_age() {
        let patient = PatientContext {
            birth_date: NaiveDate::from_ymd_opt(2030, 1, 1),
            ..PatientContext::default()
        };
        assert_eq!(patient.age_at(Utc::now()), None);
    }

    #[test]
    fn resolved_or_refuted_diagnoses_are_not_active() {
        let mut dx = Diagnosis::new(Concept::from_text("vertebral fracture"));
        assert!(dx.is_active());
        dx.clinical_status = ClinicalStatus::Resolved;
        assert!(!dx.is_active());
        dx.clinical_status = ClinicalStatus::Active;
        dx.verification = Verification::EnteredInError;
        assert!(!dx.is_active());
    }
}
