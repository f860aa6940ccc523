//! The CDS services orderguard offers (`GET /cds-services`) and their prefetch templates.
//!
//! CDS Hooks 2.0 prefetch tokens are context fields only (no date arithmetic), so "spine imaging
//! of the last 90 days" and "latest lab" are asked as newest-first searches and the time window is
//! applied by the engine, which knows the evaluation time.

use serde_json::{Value, json};

/// One CDS service: the id is the path segment in `/cds-services/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdsService {
    pub id: &'static str,
    pub hook: &'static str,
    pub title: &'static str,
    pub description: &'static str,
}

pub const ORDER_SELECT: CdsService = CdsService {
    id: "vcf-order-select",
    hook: "order-select",
    title: "Vertebral compression fracture pathway: order selection",
    description: "Checks the orders a clinician selects for a patient with a vertebral compression \
                  fracture against the VCF care pathway (analgesia and opioid dosing, renal \
                  dosing, activity orders, imaging, bone health) as they are chosen.",
};

pub const ORDER_SIGN: CdsService = CdsService {
    id: "vcf-order-sign",
    hook: "order-sign",
    title: "Vertebral compression fracture pathway: order signing",
    description: "Checks the complete order set for a patient with a vertebral compression \
                  fracture against the VCF care pathway before signing, with suggested fixes \
                  and the numbers behind each dosing alert.",
};

pub const SERVICES: &[CdsService] = &[ORDER_SELECT, ORDER_SIGN];

/// The service with this id, if orderguard offers it.
pub fn service(id: &str) -> Option<&'static CdsService> {
    SERVICES.iter().find(|service| service.id == id)
}

/// Prefetch key and FHIR query template, the same for both services.
pub const PREFETCH: &[(&str, &str)] = &[
    ("patient", "Patient/{{context.patientId}}"),
    (
        "conditions",
        "Condition?patient={{context.patientId}}&clinical-status=active",
    ),
    (
        "medications",
        "MedicationRequest?patient={{context.patientId}}&status=active",
    ),
    (
        "serviceRequests",
        "ServiceRequest?patient={{context.patientId}}&status=active",
    ),
    // Radiology reports (LOINC LP29684-5), newest first; the engine keeps the last 90 days
    // of spine imaging.
    (
        "spineImaging",
        "DiagnosticReport?patient={{context.patientId}}&category=http://loinc.org|LP29684-5&_sort=-date&_count=50",
    ),
    // eGFR (98979-8, 62238-1, 33914-3), creatinine clearance (35591-7, 2164-2): the latest of any.
    (
        "renalFunction",
        "Observation?patient={{context.patientId}}&code=http://loinc.org|98979-8,http://loinc.org|62238-1,http://loinc.org|33914-3,http://loinc.org|35591-7,http://loinc.org|2164-2&_sort=-date&_count=1",
    ),
    (
        "calcium",
        "Observation?patient={{context.patientId}}&code=http://loinc.org|17861-6&_sort=-date&_count=1",
    ),
    (
        "vitaminD",
        "Observation?patient={{context.patientId}}&code=http://loinc.org|62292-8,http://loinc.org|1989-3&_sort=-date&_count=1",
    ),
];

/// The discovery response body.
pub fn document() -> Value {
    let prefetch: serde_json::Map<String, Value> = PREFETCH
        .iter()
        .map(|(key, template)| ((*key).to_owned(), Value::String((*template).to_owned())))
        .collect();
    let services: Vec<Value> = SERVICES
        .iter()
        .map(|service| {
            json!({
                "hook": service.hook,
                "title": service.title,
                "description": service.description,
                "id": service.id,
                "prefetch": prefetch,
            })
        })
        .collect();
    json!({ "services": services })
}

/// The query for one template with the patient id filled in. Refuses ids that are not FHIR ids
/// (`[A-Za-z0-9\-\.]{1,64}`), so a hostile context cannot rewrite the query.
pub fn render_template(template: &str, patient_id: &str) -> Option<String> {
    let valid = !patient_id.is_empty()
        && patient_id.len() <= 64
        && patient_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| template.replace("{{context.patientId}}", patient_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_the_patient_id_and_refuse_query_injection() {
        assert_eq!(
            render_template(PREFETCH[0].1, "pat-1").as_deref(),
            Some("Patient/pat-1")
        );
        assert_eq!(render_template(PREFETCH[1].1, "1&_include=*"), None);
        assert_eq!(render_template(PREFETCH[1].1, ""), None);
    }

    #[test]
    fn every_template_uses_only_the_patient_token() {
        for (key, template) in PREFETCH {
            let rendered = render_template(template, "x").unwrap();
            assert!(!rendered.contains("{{"), "{key} has another token");
        }
    }
}
