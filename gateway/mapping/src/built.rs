//! The finished case as plain vectors, read into [`gateway_core::Case`] by
//! serde.
//!
//! Why not a `serde_json::Value`: the engine assembles a case once and
//! converts it straight into the typed `Case`. Building a `serde_json::Map`
//! for that (a `BTreeMap` with an allocated `String` per key) only for
//! `serde_json::from_value` to take it apart again was ~8% of a map's
//! instructions (callgrind, issue #21). Here an object is a vector of
//! (borrowed key, value) and this type is itself the serde `Deserializer`,
//! so nothing is rebuilt on the way. Leaves stay `serde_json::Value`s (what
//! the schema checks produce), and read exactly as `from_value` read them.
//!
//! Semantics kept from the map: inserting a key again replaces its value.
//! Field order does not matter to the derived `Deserialize` of a struct.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde_json::Value;

/// One value of the finished case.
pub(crate) enum Built<'k> {
    /// A scalar (or any value a schema check produced).
    Leaf(Value),
    /// An object with its members.
    Object(Object<'k>),
    /// A list.
    Array(Vec<Built<'k>>),
}

/// The members of an object, keys borrowed from the schema or the profile.
#[derive(Default)]
pub(crate) struct Object<'k>(Vec<(&'k str, Built<'k>)>);

impl<'k> Object<'k> {
    /// Sets `key` to `value`, replacing what it held.
    pub(crate) fn insert(&mut self, key: &'k str, value: Built<'k>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(member) => member.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// A scalar member.
    pub(crate) fn insert_leaf(&mut self, key: &'k str, value: Value) {
        self.insert(key, Built::Leaf(value));
    }

    /// Adds a member whose key is not there yet, without searching:
    /// finalizing writes each schema field of an object once, and a text
    /// map's keys are distinct already.
    pub(crate) fn push_new(&mut self, key: &'k str, value: Built<'k>) {
        debug_assert!(!self.contains_key(key), "member `{key}` added twice");
        self.0.push((key, value));
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every member of `other`, each replacing a member of the same key.
    pub(crate) fn extend(&mut self, other: Object<'k>) {
        for (key, value) in other.0 {
            self.insert(key, value);
        }
    }
}

impl<'de> de::Deserializer<'de> for Built<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Built::Leaf(value) => de::Deserializer::deserialize_any(value, visitor),
            Built::Object(object) => {
                let mut members = MapDeserializer::new(object.0.into_iter());
                let read = visitor.visit_map(&mut members)?;
                members.end()?;
                Ok(read)
            }
            Built::Array(items) => {
                let mut items = SeqDeserializer::new(items.into_iter());
                let read = visitor.visit_seq(&mut items)?;
                items.end()?;
                Ok(read)
            }
        }
    }

    /// Absent members are left out, never written as null: an object or a
    /// list is always `Some`; a leaf reads as `from_value` reads it.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Built::Leaf(value) => de::Deserializer::deserialize_option(value, visitor),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Built::Leaf(value) => {
                de::Deserializer::deserialize_enum(value, name, variants, visitor)
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Built::Leaf(value) => {
                de::Deserializer::deserialize_newtype_struct(value, name, visitor)
            }
            other => visitor.visit_newtype_struct(other),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'de, 'k> IntoDeserializer<'de, serde_json::Error> for Built<'k> {
    type Deserializer = Built<'k>;

    fn into_deserializer(self) -> Built<'k> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Case;
    use serde::Deserialize;

    /// The same JSON read both ways gives the same case: through a
    /// `serde_json::Value` (what the engine did before) and through `Built`.
    fn built_of(value: &Value) -> Built<'_> {
        match value {
            Value::Object(map) => {
                let mut object = Object::default();
                for (k, v) in map {
                    object.insert(k, built_of(v));
                }
                Built::Object(object)
            }
            Value::Array(items) => Built::Array(items.iter().map(built_of).collect()),
            leaf => Built::Leaf(leaf.clone()),
        }
    }

    fn sample() -> Value {
        serde_json::json!({
            "schema": gateway_core::case::CASE_SCHEMA_V1,
            "case_id": "case-0123456789abcdef01234567",
            "tenant": "mso-test",
            "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z",
                       "control_id": "C1"},
            "status": "submitted",
            "urgency": "routine",
            "patient": {"identifiers": [{"type": "MR", "value": "E1", "assigner": "DEMO"}],
                        "name": {"family": "TESTPERSON", "given": ["ALEX", "B"]},
                        "sex": "female"},
            "coverages": [{"member_id": "W1", "payer": {"id": "60054", "name": "DEMO PLAN"},
                           "sequence": 1, "subscriber_relationship": "self"}],
            "services": [{"line": 1, "code": {"system": "CPT", "code": "72148"},
                          "service_date": {"start": "2026-12-13"}}],
            "diagnoses": [{"code": {"system": "ICD-10-CM", "code": "M54.5"}, "primary": true}],
            "references": {"b": "2", "a": "1"},
            "notes": ["first", "second"]
        })
    }

    #[test]
    fn reads_the_same_case_as_from_value() {
        let json = sample();
        let via_value: Case = serde_json::from_value(json.clone()).expect("valid sample");
        let via_built = Case::deserialize(built_of(&json)).expect("reads");
        assert_eq!(
            serde_json::to_value(&via_built).expect("serializes"),
            serde_json::to_value(&via_value).expect("serializes")
        );
    }

    #[test]
    fn rejects_what_from_value_rejects() {
        for broken in [
            serde_json::json!({"status": "submitted"}),
            {
                let mut j = sample();
                j["status"] = Value::from("not-a-status");
                j
            },
            {
                let mut j = sample();
                j["patient"]["unknown_field"] = Value::from("x");
                j
            },
            {
                let mut j = sample();
                j["services"] = serde_json::json!({"line": 1});
                j
            },
        ] {
            let want = serde_json::from_value::<Case>(broken.clone()).map(|_| ());
            let got = Case::deserialize(built_of(&broken)).map(|_| ());
            assert!(want.is_err(), "the sample must be invalid: {broken}");
            assert_eq!(
                got.map_err(|e| e.to_string()),
                want.map_err(|e| e.to_string())
            );
        }
    }

    #[test]
    fn a_key_inserted_again_replaces_its_value() {
        let mut object = Object::default();
        object.insert_leaf("a", Value::from(1));
        object.insert_leaf("b", Value::from(2));
        let mut later = Object::default();
        later.insert_leaf("a", Value::from(3));
        object.extend(later);
        assert!(object.contains_key("a") && object.contains_key("b"));
        let read: std::collections::BTreeMap<String, i64> =
            Deserialize::deserialize(Built::Object(object)).expect("reads");
        assert_eq!(read, [("a".into(), 3), ("b".into(), 2)].into());
    }
}
