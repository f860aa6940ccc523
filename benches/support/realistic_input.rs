//! The realistic 20-order input of `benches/engine.rs`, shared with `tests/engine_golden.rs` so
//! that the benchmarked input is also under the golden regression net.
//! (Included with `#[path]`; not a bench target of its own.)

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use orderguard::domain::codes::system;
use orderguard::domain::*;

fn med(
    id: &str,
    rxnorm: Option<&str>,
    text: &str,
    dose: f64,
    unit: &str,
    freq: Frequency,
) -> MedicationOrder {
    let mut concept = Concept::from_text(text);
    if let Some(code) = rxnorm {
        concept.codings.push(Coding::new(system::RXNORM, code));
    }
    let mut order = MedicationOrder::new(id, concept);
    order.dose = Field::Given(Dose::Fixed {
        amount: Amount::parse(dose, unit).unwrap(),
    });
    order.frequency = Field::Given(freq);
    order.route = Field::Given(Route::Oral);
    order
}

fn service(id: &str, sys: &str, code: &str, text: &str) -> ServiceOrder {
    ServiceOrder::new(
        id,
        Concept::new(vec![Coding::new(sys, code)], Some(text.into())),
    )
}

pub fn realistic_input() -> EvaluationInput {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let per_day = |n| Frequency::times_per_day(n).unwrap();
    let mut fracture = Diagnosis::new(Concept::coded(
        system::ICD10CM,
        "M80.08XA",
        Some("Osteoporotic fracture of vertebra"),
    ));
    fracture.onset = Some(now - Duration::days(12));
    let lab = |loinc: &str, value: f64, unit: &str, days: i64| LabResult {
        code: Concept::coded(system::LOINC, loinc, None),
        value,
        unit: Some(unit.into()),
        effective: Some(now - Duration::days(days)),
    };
    let mut prn = med(
        "MedicationRequest/m2",
        Some("1049221"),
        "oxycodone 5 MG / acetaminophen 325 MG Oral Tablet",
        2.0,
        "{tablet}",
        Frequency::new(1, Some(2), 4.0, None, PeriodUnit::Hour).unwrap(),
    );
    prn.as_needed = true;
    prn.supply_duration = Field::Given(CalendarDuration::new(10.0, PeriodUnit::Day).unwrap());
    let medications = vec![
        med(
            "MedicationRequest/m1",
            Some("161"),
            "acetaminophen 500 mg tablet",
            1000.0,
            "mg",
            per_day(3),
        ),
        prn,
        med(
            "MedicationRequest/m3",
            None,
            "Morphine sulfate 15 mg ER tab",
            15.0,
            "mg",
            per_day(2),
        ),
        med(
            "MedicationRequest/m4",
            Some("197696"),
            "72 HR fentanyl 0.075 MG/HR Transdermal System",
            1.0,
            "patch",
            Frequency::once_every(72.0, PeriodUnit::Hour).unwrap(),
        ),
        med(
            "MedicationRequest/m5",
            None,
            "ibuprofen 800 mg tablet",
            800.0,
            "mg",
            per_day(4),
        ),
        med(
            "MedicationRequest/m6",
            None,
            "alendronate 70 mg tablet",
            70.0,
            "mg",
            per_day(1),
        ),
        med(
            "MedicationRequest/m7",
            None,
            "calcium carbonate 1250 mg tablet",
            1250.0,
            "mg",
            per_day(2),
        ),
        med(
            "MedicationRequest/m8",
            None,
            "cholecalciferol 1000 unit tablet",
            1000.0,
            "[iU]",
            per_day(1),
        ),
        med(
            "MedicationRequest/m9",
            None,
            "senna 8.6 mg tablet",
            8.6,
            "mg",
            per_day(2),
        ),
        med(
            "MedicationRequest/m10",
            None,
            "cyclobenzaprine 10 mg tablet",
            10.0,
            "mg",
            per_day(3),
        ),
        med(
            "MedicationRequest/m11",
            None,
            "gabapentin 300 mg capsule",
            300.0,
            "mg",
            per_day(3),
        ),
        med(
            "MedicationRequest/m12",
            None,
            "lorazepam 0.5 mg tablet",
            0.5,
            "mg",
            per_day(2),
        ),
        med(
            "MedicationRequest/m13",
            None,
            "calcitonin salmon nasal 200 unit",
            200.0,
            "[iU]",
            per_day(1),
        ),
        med(
            "MedicationRequest/m14",
            None,
            "pantoprazole 40 mg tablet",
            40.0,
            "mg",
            per_day(1),
        ),
        med(
            "MedicationRequest/m15",
            None,
            "enoxaparin 40 mg injection",
            40.0,
            "mg",
            per_day(1),
        ),
        med(
            "MedicationRequest/m16",
            None,
            "tramadol 50 mg tablet",
            100.0,
            "mg",
            per_day(4),
        ),
    ];
    let mut bed_rest = service(
        "ServiceRequest/s1",
        system::SNOMED,
        "59394003",
        "Strict bed rest",
    );
    bed_rest.planned_duration =
        Field::Given(CalendarDuration::new(72.0, PeriodUnit::Hour).unwrap());
    let services = vec![
        bed_rest,
        service(
            "ServiceRequest/s2",
            system::CPT,
            "22511",
            "Percutaneous vertebroplasty lumbar",
        ),
        service(
            "ServiceRequest/s3",
            system::CPT,
            "72148",
            "MRI lumbar spine without contrast",
        ),
        service(
            "ServiceRequest/s4",
            system::SNOMED,
            "308447003",
            "Physical therapy referral",
        ),
    ];
    let patient = PatientContext {
        reference: Some("Patient/bench".into()),
        birth_date: NaiveDate::from_ymd_opt(1948, 3, 2),
        sex: Some(Sex::Female),
        diagnoses: vec![
            fracture,
            Diagnosis::new(Concept::coded(
                system::ICD10CM,
                "I48.91",
                Some("Atrial fibrillation"),
            )),
        ],
        labs: vec![
            lab("98979-8", 42.0, "mL/min/{1.73_m2}", 5),
            lab("35591-7", 38.0, "mL/min", 5),
            lab("17861-6", 9.1, "mg/dL", 5),
            lab("62292-8", 22.0, "ng/mL", 20),
        ],
        active_medications: vec![med(
            "MedicationRequest/home1",
            None,
            "apixaban 5 mg tablet",
            5.0,
            "mg",
            per_day(2),
        )],
        ..PatientContext::default()
    };
    EvaluationInput {
        patient,
        orders: OrderSet {
            medications,
            services,
            focus: None,
        },
        now,
    }
}
