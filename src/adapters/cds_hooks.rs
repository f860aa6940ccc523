//! CDS Hooks 2.0 `order-select` / `order-sign` requests (and `patient-view`, which parses and
//! has no orders).
//!
//! The envelope is deserialized with serde into typed fields; `draftOrders` and the prefetch
//! values stay `serde_json::Value`s (moved out of the parse, never cloned) and are read by
//! [`super::fhir`]. Leniency follows what real clients send (see `notes/cds-hooks.md`): `null`
//! anywhere means absent, `Bundle.type` may be missing, unknown and extension fields are
//! ignored, prefetch is read by resource type whatever the client named its keys.

use super::fhir::{self, At, MedicationLookup, ReadNotes, field};
use super::pruned::Pruned;
use super::{AdapterError, Translated};
use crate::domain::orders::{OrderRef, OrderSet, OrderStatus};
use crate::domain::patient::{PatientContext, RecordSection};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A CDS Hooks service request.
#[derive(Debug, Clone, PartialEq)]
pub struct CdsHooksRequest {
    /// `order-select`, `order-sign`, `patient-view`, ...
    pub hook: String,
    /// Not unique across calls (clients reuse it): stored, never used as a key.
    pub hook_instance: String,
    pub fhir_server: Option<String>,
    pub fhir_authorization: Option<FhirAuthorization>,
    pub context: HookContext,
    /// Prefetch values by the client's key (`patient`, `item1`, ...), reduced like
    /// `draft_orders`; `Value::Null` when the client could not fill a template.
    pub prefetch: BTreeMap<String, Value>,
}

/// The OAuth access the client grants for calls back to its FHIR server. `Debug` hides the
/// token: it must never reach a log line.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct FhirAuthorization {
    pub access_token: String,
    #[serde(default = "bearer")]
    pub token_type: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl fmt::Debug for FhirAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirAuthorization")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("subject", &self.subject)
            .finish()
    }
}

/// The hook's `context`.
#[derive(Debug, Clone, PartialEq)]
pub struct HookContext {
    pub user_id: String,
    /// Required by order-select and order-sign; the spec's own patient-view example omits it.
    pub patient_id: Option<String>,
    pub encounter_id: Option<String>,
    /// order-select: `MedicationRequest/abc` entries pointing into `draftOrders`.
    pub selections: Vec<String>,
    /// The draftOrders Bundle, reduced to the fields orderguard reads (see `adapters::pruned`;
    /// the audit log keeps the request as sent). `Value::Null` for hooks without orders.
    pub draft_orders: Value,
}

/// The envelope as it may arrive: everything optional so that `null` and absence are told
/// apart from a wrong type (serde reports those, with their path).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    hook_instance: Option<String>,
    #[serde(default)]
    fhir_server: Option<String>,
    #[serde(default)]
    fhir_authorization: Option<ObjectOnly<FhirAuthorization>>,
    #[serde(default)]
    context: Option<ObjectOnly<RawContext>>,
    #[serde(default)]
    prefetch: Option<BTreeMap<String, Pruned>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContext {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    patient_id: Option<String>,
    #[serde(default)]
    encounter_id: Option<String>,
    #[serde(default)]
    selections: Option<Vec<Option<String>>>,
    #[serde(default)]
    draft_orders: Option<Pruned>,
}

/// Hooks whose context must carry `draftOrders`.
fn needs_draft_orders(hook: &str) -> bool {
    matches!(hook, "order-select" | "order-sign")
}

fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

fn type_error(error: serde_path_to_error::Error<serde_json::Error>) -> AdapterError {
    let path = path_to_pointer(error.path());
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return AdapterError::from_json(&inner);
    }
    let message = inner.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => &message,
    };
    AdapterError::Malformed {
        path,
        message: without_values(message),
    }
}

/// serde quotes the offending value ("invalid type: string \"Jane\", expected u64"); an
/// error may be logged, so only the kind of value is kept.
fn without_values(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    else {
        return message.to_owned();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else {
        return "has a value of the wrong type".to_owned();
    };
    let kind = match found.split([' ', '`', '"']).next().unwrap_or_default() {
        "map" => "an object",
        "sequence" => "an array",
        "string" => "a string",
        "integer" | "floating" => "a number",
        "boolean" => "a boolean",
        "null" | "unit" => "null",
        _ => "another value",
    };
    format!("must be {expected}, found {kind}")
}

/// A struct that must arrive as a JSON object: serde's derived structs also accept an array
/// (`"context": []` would read as a context with every field missing).
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

/// Longest `hookInstance`, `userId`, `patientId` or `encounterId` accepted (FHIR ids are at
/// most 64 characters; a full reference URL fits easily). The native schema has the same bound.
pub const MAX_REFERENCE_CHARS: usize = 512;

impl CdsHooksRequest {
    /// Parses a request body. The fast path deserializes once; only a failing body is parsed a
    /// second time to find the JSON pointer of the offending field.
    pub fn parse(bytes: &[u8]) -> Result<CdsHooksRequest, AdapterError> {
        match serde_json::from_slice::<RawRequest>(bytes) {
            Ok(raw) => CdsHooksRequest::from_raw(raw),
            Err(e) if e.is_syntax() || e.is_eof() => Err(AdapterError::from_json(&e)),
            Err(e) => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                match serde_path_to_error::deserialize::<_, RawRequest>(&mut de) {
                    Err(located) => Err(type_error(located)),
                    // Cannot happen (same input, same type), but an answer is still owed.
                    Ok(_) => Err(AdapterError::Malformed {
                        path: String::new(),
                        message: e.to_string(),
                    }),
                }
            }
        }
    }

    /// The service's fast path: the body read once, straight into the typed envelope with
    /// draftOrders and prefetch pruned while parsing. `None` on anything unusual (not an object,
    /// a syntax or type error, a missing field): the caller then takes the general path, which
    /// names the problem exactly as it always has.
    pub fn try_parse(bytes: &[u8]) -> Option<CdsHooksRequest> {
        // serde's derived structs also accept an array; a request is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let raw = serde_json::from_slice::<RawRequest>(bytes).ok()?;
        CdsHooksRequest::from_raw(raw).ok()
    }

    /// What the audit log keeps of this request (`decisions.canonical_input`), as canonical
    /// JSON: `hook`, `hookInstance`, `fhirServer`, the `context` fields orderguard reads
    /// (`userId`, `patientId`, `encounterId`, `selections`, `draftOrders`) and `prefetch`, with
    /// draftOrders and every prefetch value reduced to the FHIR fields the adapter reads (see
    /// `adapters::pruned`). Never the FHIR access token; nothing the adapter reads is left out.
    ///
    /// Why not the request as sent: a 20-order order-sign request is ~60 kB, mostly narrative,
    /// extensions and metadata no rule looks at; storing and hashing all of it was most of a
    /// decision's cost. What is kept is exactly what the decision was made from: read back
    /// through [`crate::decide::prepare`] it gives the same domain input (pruning pruned data
    /// changes nothing, and these bytes canonicalize to themselves), so a replay reproduces the
    /// decision. (`tests/stored_input.rs` checks that on every conformance request.)
    pub fn stored_input(&mut self) -> Vec<u8> {
        let mut context = Map::new();
        context.insert("userId".into(), Value::String(self.context.user_id.clone()));
        if let Some(id) = &self.context.patient_id {
            context.insert("patientId".into(), Value::String(id.clone()));
        }
        if let Some(id) = &self.context.encounter_id {
            context.insert("encounterId".into(), Value::String(id.clone()));
        }
        if !self.context.selections.is_empty() {
            context.insert(
                "selections".into(),
                Value::Array(
                    self.context
                        .selections
                        .iter()
                        .map(|s| Value::String(s.clone()))
                        .collect(),
                ),
            );
        }
        // draftOrders and prefetch are lent to the document for the moment of writing, not
        // copied, and put back afterwards.
        let has_orders = !self.context.draft_orders.is_null();
        if has_orders {
            context.insert(
                "draftOrders".into(),
                std::mem::take(&mut self.context.draft_orders),
            );
        }
        let mut document = Map::new();
        document.insert("hook".into(), Value::String(self.hook.clone()));
        document.insert(
            "hookInstance".into(),
            Value::String(self.hook_instance.clone()),
        );
        if let Some(server) = &self.fhir_server {
            document.insert("fhirServer".into(), Value::String(server.clone()));
        }
        let has_prefetch = !self.prefetch.is_empty();
        if has_prefetch {
            document.insert(
                "prefetch".into(),
                Value::Object(std::mem::take(&mut self.prefetch).into_iter().collect()),
            );
        }
        document.insert("context".into(), Value::Object(context));
        let document = Value::Object(document);
        let bytes = crate::canonical::to_vec(&document);
        let Value::Object(mut document) = document else {
            unreachable!("built as an object")
        };
        if has_prefetch && let Some(Value::Object(prefetch)) = document.remove("prefetch") {
            self.prefetch = prefetch.into_iter().collect();
        }
        if has_orders
            && let Some(Value::Object(mut context)) = document.remove("context")
            && let Some(orders) = context.remove("draftOrders")
        {
            self.context.draft_orders = orders;
        }
        bytes
    }

    /// Reads an already parsed JSON document (the CLI's auto-detection path).
    pub fn from_value(value: Value) -> Result<CdsHooksRequest, AdapterError> {
        let raw: RawRequest = serde_path_to_error::deserialize(value).map_err(type_error)?;
        CdsHooksRequest::from_raw(raw)
    }

    fn from_raw(raw: RawRequest) -> Result<CdsHooksRequest, AdapterError> {
        let required = |path: &str, what: &str| AdapterError::Malformed {
            path: path.to_owned(),
            message: format!("{what} is required"),
        };
        let hook = raw.hook.ok_or_else(|| required("/hook", "the hook name"))?;
        let hook_instance = raw
            .hook_instance
            .ok_or_else(|| required("/hookInstance", "hookInstance"))?;
        let context = raw
            .context
            .ok_or_else(|| required("/context", "the hook context"))?
            .0;
        let fhir_authorization = raw.fhir_authorization.map(|a| a.0);
        let user_id = context
            .user_id
            .ok_or_else(|| required("/context/userId", "userId"))?;
        let patient_id = match context.patient_id {
            None if needs_draft_orders(&hook) => {
                return Err(required(
                    "/context/patientId",
                    &format!("patientId (for {hook})"),
                ));
            }
            id => id,
        };
        let draft_orders = match context.draft_orders {
            Some(Pruned(bundle)) => bundle,
            None if needs_draft_orders(&hook) => {
                return Err(required(
                    "/context/draftOrders",
                    &format!("draftOrders (for {hook})"),
                ));
            }
            None => Value::Null,
        };
        // The references are kept in indexed audit columns: one too long for an index entry
        // would make the database refuse the whole batch it is committed with.
        for (path, value) in [
            ("/hookInstance", Some(&hook_instance)),
            ("/context/userId", Some(&user_id)),
            ("/context/patientId", patient_id.as_ref()),
            ("/context/encounterId", context.encounter_id.as_ref()),
        ] {
            if let Some(value) = value
                && value.chars().count() > MAX_REFERENCE_CHARS
            {
                return Err(AdapterError::Malformed {
                    path: path.to_owned(),
                    message: format!("longer than {MAX_REFERENCE_CHARS} characters"),
                });
            }
        }
        Ok(CdsHooksRequest {
            hook,
            hook_instance,
            fhir_server: raw.fhir_server,
            fhir_authorization,
            context: HookContext {
                user_id,
                patient_id,
                encounter_id: context.encounter_id,
                selections: context
                    .selections
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .collect(),
                draft_orders,
            },
            prefetch: raw
                .prefetch
                .unwrap_or_default()
                .into_iter()
                .map(|(k, Pruned(v))| (k, v))
                .collect(),
        })
    }

    /// Translates into the domain: the proposed orders from `draftOrders`, the patient's record
    /// from prefetch (read by resource type), and which record sections the request lacks.
    pub fn to_domain(&self) -> Result<Translated, AdapterError> {
        let mut notes = Notes::default();
        let mut orders = self.draft_orders(&mut notes)?;
        if self.hook == "order-select" && !self.context.selections.is_empty() {
            orders.focus = Some(
                self.context
                    .selections
                    .iter()
                    .map(|s| OrderRef(s.as_str().into()))
                    .collect(),
            );
        }
        let patient_ref = self
            .context
            .patient_id
            .as_deref()
            .map(|id| qualified("Patient", id));
        let mut patient = self.prefetched_record(&orders, &mut notes)?;
        patient.reference = patient_ref.clone();
        Ok(Translated {
            patient,
            orders,
            user_ref: Some(self.context.user_id.clone()),
            patient_ref,
            encounter_ref: self
                .context
                .encounter_id
                .as_deref()
                .map(|e| qualified("Encounter", e)),
            evaluated_at: None,
            notes: notes.finish(),
        })
    }

    fn draft_orders(&self, notes: &mut Notes) -> Result<OrderSet, AdapterError> {
        let mut orders = OrderSet::default();
        if self.context.draft_orders.is_null() {
            return Ok(orders);
        }
        let context_at = At::ROOT.key("context");
        let bundle_at = context_at.key("draftOrders");
        let entries = bundle_entries(&self.context.draft_orders, &bundle_at)?;
        let lookup = MedicationLookup { bundle: entries };
        let entry_list_at = bundle_at.key("entry");
        // Cards and suggestions point at an order by its reference: two drafts with one id
        // would make every such pointer ambiguous.
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for (index, entry) in entries.iter().enumerate() {
            let entry_at = entry_list_at.index(index);
            let Some(resource) = fhir::as_object(entry, &entry_at).map(|e| field(e, "resource"))?
            else {
                notes.skipped_entries += 1;
                continue;
            };
            let resource_at = entry_at.key("resource").resource();
            let resource = fhir::as_object(resource, &resource_at)?;
            let Some(kind) = fhir::opt_str(resource, "resourceType", &resource_at)? else {
                notes.skipped_entries += 1;
                continue;
            };
            let reference = order_reference(kind, resource, index, &resource_at)?;
            if let Some(first) = seen.insert(reference.clone(), index) {
                return Err(AdapterError::Malformed {
                    path: resource_at.key("id").pointer(),
                    message: format!("the same id as draft order entry {first}"),
                });
            }
            match kind {
                "MedicationRequest" | "MedicationOrder" => {
                    let order = fhir::medication_order(
                        resource,
                        &reference,
                        OrderStatus::Draft,
                        &lookup,
                        &resource_at,
                        &mut notes.read,
                    )?;
                    orders.medications.push(order);
                }
                "ServiceRequest" | "ProcedureRequest" => {
                    orders.services.push(fhir::service_order(
                        resource,
                        &reference,
                        OrderStatus::Draft,
                        &resource_at,
                    )?);
                }
                other => *notes.ignored_orders.entry(other.to_owned()).or_default() += 1,
            }
        }
        Ok(orders)
    }

    fn prefetched_record(
        &self,
        orders: &OrderSet,
        notes: &mut Notes,
    ) -> Result<PatientContext, AdapterError> {
        let mut patient = PatientContext::default();
        let mut supplied = BTreeSet::new();
        let prefetch_at = At::ROOT.key("prefetch");
        let mut reader = RecordReader {
            patient: &mut patient,
            supplied: &mut supplied,
            orders,
            notes,
        };
        for (key, value) in &self.prefetch {
            let key_at = prefetch_at.key(key);
            match value {
                Value::Null => {}
                Value::Object(resource) => {
                    if let Some(section) = section_for_key(key) {
                        reader.supplied.insert(section);
                    }
                    if resource.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                        let entries = bundle_entries(value, &key_at)?;
                        if entries.is_empty()
                            && let Some(section) = self_link_section(resource)
                        {
                            reader.supplied.insert(section);
                        }
                        let entry_list_at = key_at.key("entry");
                        for (index, entry) in entries.iter().enumerate() {
                            let entry_at = entry_list_at.index(index);
                            if let Some(r) = field(fhir::as_object(entry, &entry_at)?, "resource") {
                                let r_at = entry_at.key("resource").resource();
                                reader.read(fhir::as_object(r, &r_at)?, entries, index, &r_at)?;
                            }
                        }
                    } else {
                        reader.read(resource, &[], 0, &key_at.resource())?;
                    }
                }
                other => {
                    return Err(key_at.malformed(format!(
                        "a prefetch value must be a FHIR resource, a Bundle or null, found {}",
                        match other {
                            Value::Array(_) => "an array",
                            Value::String(_) => "a string",
                            Value::Number(_) => "a number",
                            _ => "a boolean",
                        }
                    )));
                }
            }
        }
        for section in ALL_SECTIONS {
            if !supplied.contains(&section) {
                patient.absent_sections.insert(section);
            }
        }
        Ok(patient)
    }
}

const ALL_SECTIONS: [RecordSection; 6] = [
    RecordSection::Patient,
    RecordSection::Conditions,
    RecordSection::Medications,
    RecordSection::Observations,
    RecordSection::ServiceRequests,
    RecordSection::Imaging,
];

/// Puts a bare id into `Type/id` form (clients send `patientId` both ways).
fn qualified(resource_type: &str, id: &str) -> String {
    if id.contains('/') {
        id.to_owned()
    } else {
        format!("{resource_type}/{id}")
    }
}

/// The entries of a Bundle (`Bundle.type` may be missing; `entry` may be absent or null).
fn bundle_entries<'v>(bundle: &'v Value, at: &At<'_>) -> Result<&'v [Value], AdapterError> {
    let obj = fhir::as_object(bundle, at)?;
    match fhir::opt_str(obj, "resourceType", at)? {
        None | Some("Bundle") => {}
        Some(other) => {
            return Err(at.malformed(format!(
                "must be a FHIR Bundle, found resourceType {other:?}"
            )));
        }
    }
    match field(obj, "entry") {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(at
            .key("entry")
            .malformed("must be an array of Bundle entries")),
    }
}

/// `ResourceType/id`, or `ResourceType/#<index>` for a resource without an id.
fn order_reference(
    kind: &str,
    resource: &Map<String, Value>,
    index: usize,
    at: &At<'_>,
) -> Result<String, AdapterError> {
    Ok(match fhir::opt_str(resource, "id", at)? {
        Some(id) => format!("{kind}/{id}"),
        None => format!("{kind}/#{index}"),
    })
}

/// The record section a client's prefetch key usually fills (`patient`, `conditions`,
/// `medications`, `egfr`, ...). Generic keys (`item1`) say nothing.
fn section_for_key(key: &str) -> Option<RecordSection> {
    let key = key.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| key.contains(w));
    if has(&[
        "imaging",
        "diagnosticreport",
        "report",
        "radiolog",
        "xray",
        "mri",
    ]) {
        Some(RecordSection::Imaging)
    } else if has(&["medication", "meds", "drug", "opioid", "benzo", "naloxone"]) {
        Some(RecordSection::Medications)
    } else if has(&[
        "servicerequest",
        "service",
        "procedure",
        "referral",
        "consult",
        "therapy",
    ]) {
        Some(RecordSection::ServiceRequests)
    } else if has(&["condition", "problem", "diagnos", "fracture"]) {
        Some(RecordSection::Conditions)
    } else if has(&[
        "observation",
        "lab",
        "egfr",
        "creat",
        "calcium",
        "vitamin",
        "vitd",
        "crcl",
    ]) {
        Some(RecordSection::Observations)
    } else if has(&["patient"]) {
        Some(RecordSection::Patient)
    } else {
        None
    }
}

fn section_for_type(resource_type: &str) -> Option<RecordSection> {
    Some(match resource_type {
        "Patient" => RecordSection::Patient,
        "Condition" => RecordSection::Conditions,
        "MedicationRequest" | "MedicationStatement" | "MedicationOrder" => {
            RecordSection::Medications
        }
        "Observation" => RecordSection::Observations,
        "ServiceRequest" | "ProcedureRequest" => RecordSection::ServiceRequests,
        "DiagnosticReport" | "ImagingStudy" => RecordSection::Imaging,
        _ => return None,
    })
}

/// An empty searchset still tells what was searched: its `self` link names the resource type.
fn self_link_section(bundle: &Map<String, Value>) -> Option<RecordSection> {
    let links = bundle.get("link")?.as_array()?;
    let url = links
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("self"))?
        .get("url")?
        .as_str()?;
    let path = url.split('?').next()?;
    section_for_type(path.rsplit('/').next()?)
}

struct RecordReader<'a> {
    patient: &'a mut PatientContext,
    supplied: &'a mut BTreeSet<RecordSection>,
    orders: &'a OrderSet,
    notes: &'a mut Notes,
}

impl RecordReader<'_> {
    fn is_draft(&self, reference: &str) -> bool {
        self.orders
            .medications
            .iter()
            .any(|m| m.reference.as_str() == reference)
            || self
                .orders
                .services
                .iter()
                .any(|s| s.reference.as_str() == reference)
    }

    fn read(
        &mut self,
        resource: &Map<String, Value>,
        bundle: &[Value],
        index: usize,
        at: &At<'_>,
    ) -> Result<(), AdapterError> {
        let Some(kind) = fhir::opt_str(resource, "resourceType", at)? else {
            return Ok(());
        };
        if let Some(section) = section_for_type(kind) {
            self.supplied.insert(section);
        }
        match kind {
            "Patient" => {
                let demographics = fhir::patient(resource, at)?;
                if self.patient.birth_date.is_none() && self.patient.sex.is_none() {
                    self.patient.birth_date = demographics.birth_date;
                    self.patient.sex = demographics.sex;
                }
            }
            "Condition" => self.patient.diagnoses.push(fhir::condition(resource, at)?),
            "MedicationRequest" | "MedicationStatement" | "MedicationOrder" => {
                let reference = order_reference(kind, resource, index, at)?;
                // The order being signed often comes back in prefetch too: count it once.
                if self.is_draft(&reference) {
                    self.notes.prefetch_duplicates += 1;
                    return Ok(());
                }
                let lookup = MedicationLookup { bundle };
                let order = fhir::medication_order(
                    resource,
                    &reference,
                    OrderStatus::Unknown,
                    &lookup,
                    at,
                    &mut self.notes.read,
                )?;
                if order.status.is_current() {
                    self.patient.active_medications.push(order);
                }
            }
            "ServiceRequest" | "ProcedureRequest" => {
                let reference = order_reference(kind, resource, index, at)?;
                if self.is_draft(&reference) {
                    self.notes.prefetch_duplicates += 1;
                    return Ok(());
                }
                let order = fhir::service_order(resource, &reference, OrderStatus::Unknown, at)?;
                if order.status.is_current() {
                    self.patient.active_services.push(order);
                }
            }
            "Observation" => {
                if let Some(lab) = fhir::observation(resource, at)? {
                    self.patient.labs.push(lab);
                }
            }
            "DiagnosticReport" => self
                .patient
                .imaging
                .push(fhir::diagnostic_report(resource, at)?),
            "ImagingStudy" => self
                .patient
                .imaging
                .push(fhir::imaging_study(resource, at)?),
            _ => {}
        }
        Ok(())
    }
}

/// Counts of what was read around rather than into the domain, turned into notes at the end.
#[derive(Default)]
struct Notes {
    ignored_orders: BTreeMap<String, usize>,
    skipped_entries: usize,
    prefetch_duplicates: usize,
    read: ReadNotes,
}

impl Notes {
    fn finish(self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, count) in self.ignored_orders {
            out.push(format!(
                "{count} {kind} in draftOrders not evaluated (not a medication or service order)"
            ));
        }
        if self.skipped_entries > 0 {
            out.push(format!(
                "{} draftOrders entries without a resource or resourceType skipped",
                self.skipped_entries
            ));
        }
        if self.prefetch_duplicates > 0 {
            out.push(format!(
                "{} prefetched order(s) are the draft orders themselves and were counted once",
                self.prefetch_duplicates
            ));
        }
        if self.read.extra_dosage_instructions > 0 {
            out.push(format!(
                "{} additional dosageInstruction entries not read (only the first is evaluated)",
                self.read.extra_dosage_instructions
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::orders::{Dose, Field, Route};
    use crate::domain::units::DoseUnit;
    use serde_json::json;

    fn request(draft_entries: Value, prefetch: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "hook": "order-sign",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {
                "userId": "Practitioner/1",
                "patientId": "123",
                "draftOrders": {"resourceType": "Bundle", "entry": draft_entries}
            },
            "prefetch": prefetch
        }))
        .unwrap()
    }

    fn translate(bytes: &[u8]) -> Translated {
        CdsHooksRequest::parse(bytes).unwrap().to_domain().unwrap()
    }

    #[test]
    fn reads_a_medication_request() {
        let bytes = request(
            json!([{"resource": {
                "resourceType": "MedicationRequest", "id": "oxy",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1049621"}], "text": "oxycodone 5 mg tab"},
                "dosageInstruction": [{
                    "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
                    "timing": {"code": {"text": "Q6H"}},
                    "asNeededBoolean": true,
                    "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg"}}]
                }],
                "dispenseRequest": {"expectedSupplyDuration": {"value": 5, "code": "d"}, "quantity": {"value": 20, "unit": "TAB"}}
            }}]),
            json!({}),
        );
        let t = translate(&bytes);
        let m = &t.orders.medications[0];
        assert_eq!(m.reference.as_str(), "MedicationRequest/oxy");
        assert_eq!(m.dose.given().unwrap().max().to_mg(), Some(5.0));
        assert_eq!(m.frequency.given().unwrap().per_day(), 4.0);
        assert_eq!(m.route, Field::Given(Route::Oral));
        assert!(m.as_needed);
        assert_eq!(m.supply_duration.given().unwrap().days(), 5.0);
        assert_eq!(
            m.dispense_quantity.given().unwrap().unit(),
            DoseUnit::Count(crate::domain::DoseForm::Tablet)
        );
        assert_eq!(t.patient_ref.as_deref(), Some("Patient/123"));
        assert!(t.patient.absent_sections.contains(&RecordSection::Patient));
    }

    #[test]
    fn an_unknown_unit_is_unreadable_with_its_fhir_path() {
        let bytes = request(
            json!([{"resource": {"resourceType": "MedicationRequest",
                "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 2, "unit": "spoonful"}}]}]}}]),
            json!({}),
        );
        let t = translate(&bytes);
        let m = &t.orders.medications[0];
        assert_eq!(m.reference.as_str(), "MedicationRequest/#0");
        let u = m.dose.unreadable().expect("unreadable dose");
        assert_eq!(
            u.field,
            "dosageInstruction[0].doseAndRate[0].doseQuantity.unit"
        );
        assert_eq!(u.raw, "spoonful");
    }

    #[test]
    fn wrong_types_are_errors_with_a_pointer() {
        let bytes = request(
            json!([{"resource": {"resourceType": "MedicationRequest", "dosageInstruction": "5 mg"}}]),
            json!({}),
        );
        let err = CdsHooksRequest::parse(&bytes)
            .unwrap()
            .to_domain()
            .unwrap_err();
        assert_eq!(
            err.path(),
            Some("/context/draftOrders/entry/0/resource/dosageInstruction")
        );

        let err = CdsHooksRequest::parse(br#"{"hook": 5, "hookInstance": "x", "context": {}}"#)
            .unwrap_err();
        assert_eq!(err.path(), Some("/hook"));
        assert_eq!(err.to_string(), "/hook: must be a string, found a number");
        let err = CdsHooksRequest::parse(
            br#"{"hook": "order-sign", "hookInstance": "x", "context": {"userId": "u", "patientId": {"name": "Jane Doe"}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("/context/patientId"));
        assert!(!err.to_string().contains("Jane"), "{err}");
        let err = CdsHooksRequest::parse(
            br#"{"hook": "order-sign", "hookInstance": "x", "context": {"userId": "Jane Doe 1961"}, "fhirAuthorization": {"access_token": "tok", "expires_in": "soon"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("/fhirAuthorization/expires_in"));
        assert!(!err.to_string().contains("soon"), "{err}");
        let err = CdsHooksRequest::parse(
            br#"{"hook": "order-sign", "hookInstance": "x", "context": []}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("/context"));
        let err = CdsHooksRequest::parse(
            br#"{"hook": "order-sign", "hookInstance": "x", "context": {"userId": "u", "patientId": "p"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("/context/draftOrders"));
        let err = CdsHooksRequest::parse(
            br#"{"hook": "order-sign", "hookInstance": "x", "context": {"userId": "u", "patientId": "p", "draftOrders": {"resourceType": "Patient"}}}"#,
        )
        .unwrap()
        .to_domain()
        .unwrap_err();
        assert_eq!(err.path(), Some("/context/draftOrders"));
    }

    #[test]
    fn prefetch_is_read_by_type_and_absent_sections_are_named() {
        let bytes = request(
            json!([]),
            json!({
                "item1": {"resourceType": "Patient", "birthDate": "1950-03-02", "gender": "female"},
                "item2": {"resourceType": "Bundle", "type": "searchset", "entry": [
                    {"resource": {"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "S32.010A"}]},
                                  "clinicalStatus": {"coding": [{"code": "active"}]}, "onsetDateTime": "2026-11-01"}},
                    {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "33914-3"}]},
                                  "valueQuantity": {"value": 28, "unit": "mL/min/{1.73_m2}"}, "effectiveDateTime": "2026-11-20"}},
                    {"resource": {"resourceType": "Observation", "status": "cancelled", "valueQuantity": {"value": 1, "unit": "x"}}},
                    {"resource": {"resourceType": "MedicationRequest", "id": "old", "status": "completed"}},
                    {"resource": {"resourceType": "MedicationStatement", "id": "cur", "status": "active", "medicationCodeableConcept": {"text": "alendronate"}}}
                ]},
                "item3": null,
                "serviceRequests": {"resourceType": "Bundle", "type": "searchset"}
            }),
        );
        let t = translate(&bytes);
        assert_eq!(
            t.patient.birth_date,
            chrono::NaiveDate::from_ymd_opt(1950, 3, 2)
        );
        assert_eq!(t.patient.diagnoses.len(), 1);
        assert_eq!(t.patient.labs.len(), 1);
        assert_eq!(t.patient.active_medications.len(), 1);
        assert_eq!(
            t.patient
                .absent_sections
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![RecordSection::Imaging],
            "service requests were supplied (empty bundle under a named key)"
        );
    }

    #[test]
    fn dose_range_and_ordered_entry() {
        let bytes = request(
            json!([{"resource": {"resourceType": "MedicationRequest", "id": "a",
            "dosageInstruction": [{"doseAndRate": [
                {"type": {"text": "calculated"}, "doseQuantity": {"value": 100, "unit": "mg"}},
                {"type": {"coding": [{"code": "ordered"}]}, "doseRange": {"low": {"value": 1, "unit": "TAB"}, "high": {"value": 2, "unit": "TAB"}}}
            ]}]}}]),
            json!({}),
        );
        let t = translate(&bytes);
        assert!(matches!(
            t.orders.medications[0].dose,
            Field::Given(Dose::Range { .. })
        ));
    }

    #[test]
    fn focus_follows_selections_on_order_select_only() {
        let body = |hook: &str| {
            serde_json::to_vec(&json!({"hook": hook, "hookInstance": "x", "context": {"userId": "u", "patientId": "p",
                "selections": ["MedicationRequest/a", null], "draftOrders": {"resourceType": "Bundle", "entry": []}}}))
            .unwrap()
        };
        let select = translate(&body("order-select"));
        assert_eq!(
            select.orders.focus,
            Some(vec![OrderRef("MedicationRequest/a".into())])
        );
        assert_eq!(translate(&body("order-sign")).orders.focus, None);
    }

    #[test]
    fn medication_references_resolve_to_contained_and_bundled_medications() {
        let bytes = request(
            json!([
                {"resource": {"resourceType": "MedicationRequest", "id": "a",
                    "contained": [{"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1049621"}]}}],
                    "medicationReference": {"reference": "#m1"}}},
                {"resource": {"resourceType": "MedicationRequest", "id": "b", "medicationReference": {"reference": "Medication/m2"}}},
                {"fullUrl": "urn:uuid:m2", "resource": {"resourceType": "Medication", "id": "m2", "code": {"text": "calcitonin nasal"}}},
                {"resource": {"resourceType": "MedicationRequest", "id": "c", "medicationReference": {"reference": "Medication/elsewhere", "display": "alendronate 70 mg"}}}
            ]),
            json!({}),
        );
        let t = translate(&bytes);
        let meds = &t.orders.medications;
        assert_eq!(meds.len(), 3, "the Medication itself is not an order");
        assert_eq!(
            meds[0]
                .medication
                .codes_in(crate::domain::codes::system::RXNORM)
                .next(),
            Some("1049621")
        );
        assert_eq!(meds[1].medication.text.as_deref(), Some("calcitonin nasal"));
        assert_eq!(
            meds[2].medication.text.as_deref(),
            Some("alendronate 70 mg")
        );
    }

    #[test]
    fn timing_variants_are_read() {
        let dosage = |timing: Value| {
            let bytes = request(
                json!([{"resource": {"resourceType": "MedicationRequest", "id": "a", "dosageInstruction": [{"timing": timing}]}}]),
                json!({}),
            );
            translate(&bytes).orders.medications.remove(0)
        };
        let m = dosage(json!({"repeat": {"when": "MORN"}}));
        assert_eq!(m.frequency.given().unwrap().per_day(), 1.0);
        let m = dosage(
            json!({"repeat": {"timeOfDay": ["08:00:00", "20:00:00"], "boundsDuration": {"value": 2, "unit": "wk"}}}),
        );
        assert_eq!(m.frequency.given().unwrap().per_day(), 2.0);
        assert_eq!(m.supply_duration.given().unwrap().days(), 14.0);
        let m = dosage(
            json!({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": "Q8H"}]}}),
        );
        assert_eq!(m.frequency.given().unwrap().per_day(), 3.0);
        let m = dosage(json!({"repeat": {"frequency": 1.5, "period": 1, "periodUnit": "d"}}));
        assert_eq!(
            m.frequency.unreadable().unwrap().field,
            "dosageInstruction[0].timing.repeat"
        );
        let m = dosage(
            json!({"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "boundsPeriod": {"start": "2026-01-15", "end": "2026-01-30"}}}),
        );
        assert_eq!(m.supply_duration.given().unwrap().days(), 15.0);
    }

    #[test]
    fn service_request_occurrence_gives_start_and_planned_length() {
        let bytes = request(
            json!([
                {"resource": {"resourceType": "ServiceRequest", "id": "rest", "status": "draft",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "59610006"}], "text": "Bed rest"},
                    "occurrencePeriod": {"start": "2026-11-23", "end": "2026-11-26"}}},
                {"resource": {"resourceType": "ServiceRequest", "id": "turn", "doNotPerform": true,
                    "occurrenceTiming": {"repeat": {"boundsDuration": {"value": 48, "code": "h"}}}}},
                {"resource": {"resourceType": "ServiceRequest", "occurrenceDateTime": "2026-11-24T10:00:00Z"}}
            ]),
            json!({}),
        );
        let t = translate(&bytes);
        let s = &t.orders.services;
        assert_eq!(s[0].planned_duration.given().unwrap().days(), 3.0);
        assert!(s[0].occurrence_start.is_some());
        assert!(s[1].do_not_perform);
        assert_eq!(s[1].planned_duration.given().unwrap().hours(), 48.0);
        assert_eq!(s[2].reference.as_str(), "ServiceRequest/#2");
        assert!(s[2].planned_duration.is_absent());
    }

    fn shared_dir() -> std::path::PathBuf {
        if let Ok(dir) = std::env::var("ORDERGUARD_SHARED") {
            return dir.into();
        }
        let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
        if beside.is_dir() {
            beside
        } else {
            "/work/shared".into()
        }
    }

    fn conformance_requests(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                conformance_requests(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                // The files with a stray brace are compared as their authors meant them.
                let text = if serde_json::from_str::<Value>(&text).is_err() {
                    text.trim_end()
                        .strip_suffix('}')
                        .unwrap_or(&text)
                        .to_owned()
                } else {
                    text
                };
                if text.contains("\"hook\"") {
                    out.push(text.into_bytes());
                }
            }
        }
    }

    #[test]
    fn pruning_changes_no_translation() {
        let mut requests = Vec::new();
        let shared = shared_dir().join("conformance");
        conformance_requests(&shared.join("cds-hooks"), &mut requests);
        conformance_requests(&shared.join("opioid-cds/cds-r4/requests"), &mut requests);
        requests.push(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/cds-hooks/order-sign-20-orders.json"
            ))
            .unwrap(),
        );
        assert!(requests.len() >= 30, "{}", requests.len());
        for bytes in &requests {
            let pruned = CdsHooksRequest::parse(bytes).and_then(|r| r.to_domain());
            let full = super::super::pruned::without_pruning(|| {
                CdsHooksRequest::parse(bytes).and_then(|r| r.to_domain())
            });
            assert_eq!(pruned, full);
        }
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let auth = FhirAuthorization {
            access_token: "secret-token".into(),
            token_type: "Bearer".into(),
            expires_in: Some(300),
            scope: None,
            subject: None,
        };
        assert!(!format!("{auth:?}").contains("secret-token"));
    }
}
