//! One spelling per value of the gateway's closed vocabularies (case and
//! decision statuses, source formats, code systems, …).
//!
//! *Why a macro:* each enum states its names once, next to its variants, and
//! gets the same API from that one table: `ALL` (every value, declaration
//! order), `NAMES` (their names, same order — for config validation, schema
//! tables and metrics label sets), `as_str`, [`std::str::FromStr`] and
//! [`std::fmt::Display`]. The names are the serde names; a test per enum
//! checks that serde agrees, so JSON, labels and lookups cannot drift apart.

/// A name that is not part of a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {vocabulary} `{name}`")]
pub struct UnknownName {
    /// Which vocabulary (`case status`, `source format`, …).
    pub vocabulary: &'static str,
    /// The name that was not found.
    pub name: String,
}

/// Implements `ALL`, `NAMES`, `as_str`, `FromStr` and `Display` for a unit
/// enum from its `Variant => "name"` table (`$what` names the vocabulary in
/// errors). Exported for the vocabularies of other crates (the store's
/// message states).
#[macro_export]
macro_rules! vocabulary {
    ($ty:ident, $what:literal { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];
            /// The names of [`Self::ALL`], in the same order.
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            /// The name used in JSON, config files and metrics labels.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::vocabulary::UnknownName;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::vocabulary::UnknownName {
                        vocabulary: $what,
                        name: name.to_owned(),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub use crate::vocabulary;

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use crate::case::{
        CaseStatus, CodeSystem, DecisionStatus, ProviderRole, Sex, SubscriberRelationship, Urgency,
    };
    use crate::event::CaseEventType;
    use crate::source::SourceFormat;

    /// Serde writes every value as its `as_str` name, `FromStr` reads it back
    /// and an unknown name is refused.
    fn agrees<T>(all: &[T], names: &[&str])
    where
        T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + FromStr + std::fmt::Display,
    {
        assert_eq!(all.len(), names.len());
        for (value, name) in all.iter().zip(names) {
            assert_eq!(
                serde_json::to_value(value).expect("serialize"),
                serde_json::Value::String((*name).to_owned())
            );
            assert_eq!(value.to_string(), *name);
            assert!(matches!(name.parse::<T>(), Ok(v) if v == *value));
        }
        assert!("no-such-name".parse::<T>().is_err());
    }

    #[test]
    fn every_vocabulary_agrees_with_serde() {
        agrees(&CaseStatus::ALL, &CaseStatus::NAMES);
        agrees(&DecisionStatus::ALL, &DecisionStatus::NAMES);
        agrees(&Urgency::ALL, &Urgency::NAMES);
        agrees(&Sex::ALL, &Sex::NAMES);
        agrees(&SubscriberRelationship::ALL, &SubscriberRelationship::NAMES);
        agrees(&ProviderRole::ALL, &ProviderRole::NAMES);
        agrees(&CodeSystem::ALL, &CodeSystem::NAMES);
        agrees(&CaseEventType::ALL, &CaseEventType::NAMES);
        agrees(&SourceFormat::ALL, &SourceFormat::NAMES);
    }

    #[test]
    fn decision_statuses_are_the_case_statuses_of_the_same_name() {
        for d in DecisionStatus::ALL {
            assert_eq!(d.as_str(), d.case_status().as_str());
        }
    }
}
