//! Builds a `serde_json::Value` of only the FHIR fields orderguard reads.
//!
//! Why: a real order-sign request is mostly what the pathway never looks at (extensions,
//! narrative `text.div`, `meta`, identifiers, references to the requester...). Building a full
//! `Value` for it costs about eight times what skipping it costs, and the adapter is on the hot
//! path of every call. Keys outside [`READ_KEYS`] are skipped while parsing, without allocating;
//! everything else (including wrong JSON types, which the readers report) is kept as sent.
//!
//! Whoever teaches [`super::fhir`] to read a new field adds its key here; the test
//! `pruning_changes_no_translation` translates every conformance request with and without
//! pruning and fails if the two differ.

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

/// Every object key the FHIR readers look at, sorted (binary search).
const READ_KEYS: &[&str] = &[
    "asNeededBoolean",
    "asNeededCodeableConcept",
    "assertedDate",
    "authoredOn",
    "birthDate",
    "boundsDuration",
    "boundsPeriod",
    "clinicalStatus",
    "code",
    "coding",
    "contained",
    "dateRecorded",
    "dateWritten",
    "description",
    "dispenseRequest",
    "display",
    "doNotPerform",
    "dosage",
    "dosageInstruction",
    "doseAndRate",
    "doseQuantity",
    "doseRange",
    "effectiveDateTime",
    "effectivePeriod",
    "end",
    "entry",
    "expectedSupplyDuration",
    "frequency",
    "frequencyMax",
    "fullUrl",
    "gender",
    "high",
    "id",
    "issued",
    "link",
    "low",
    "medicationCodeableConcept",
    "medicationReference",
    "occurrenceDateTime",
    "occurrencePeriod",
    "occurrenceTiming",
    "onsetDateTime",
    "onsetPeriod",
    "period",
    "periodMax",
    "periodUnit",
    "periodUnits",
    "procedureCode",
    "quantity",
    "recordedDate",
    "reference",
    "relation",
    "repeat",
    "resource",
    "resourceType",
    "route",
    "start",
    "started",
    "status",
    "system",
    "text",
    "timeOfDay",
    "timing",
    "type",
    "unit",
    "url",
    "value",
    "valueQuantity",
    "verificationStatus",
    "when",
];

thread_local! {
    /// Tests switch pruning off to prove it changes nothing.
    static KEEP_ALL: Cell<bool> = const { Cell::new(false) };
}

fn is_read(key: &str) -> bool {
    READ_KEYS.binary_search(&key).is_ok() || KEEP_ALL.with(Cell::get)
}

/// Runs `f` with pruning off (tests only).
#[cfg(test)]
pub(crate) fn without_pruning<R>(f: impl FnOnce() -> R) -> R {
    KEEP_ALL.with(|k| k.set(true));
    let result = f();
    KEEP_ALL.with(|k| k.set(false));
    result
}

/// A JSON value with the keys orderguard does not read left out.
pub(crate) struct Pruned(pub(crate) Value);

impl<'de> Deserialize<'de> for Pruned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PrunedVisitor).map(Pruned)
    }
}

struct PrunedVisitor;

impl<'de> DeserializeSeed<'de> for PrunedVisitor {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(PrunedVisitor)
    }
}

/// An object key, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for PrunedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(PrunedVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(PrunedVisitor)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if is_read(key.as_str()) {
                let value = map.next_value_seed(PrunedVisitor)?;
                out.insert(
                    match key {
                        Key::Borrowed(s) => s.to_owned(),
                        Key::Owned(s) => s,
                    },
                    value,
                );
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_for_binary_search() {
        assert!(READ_KEYS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn unread_keys_are_dropped_and_read_ones_kept_as_sent() {
        let Pruned(v) = serde_json::from_str(
            r#"{"resourceType": "MedicationRequest", "extension": [{"url": "x"}], "meta": {},
                "dosageInstruction": "wrong type kept", "id": null, "status": "dr\u0061ft"}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"resourceType": "MedicationRequest", "dosageInstruction": "wrong type kept", "id": null, "status": "draft"})
        );
    }
}
