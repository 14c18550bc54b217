//! The Case v1 fields a mapping rule may target, with their value kinds.
//!
//! Profiles name case fields as dotted paths (`patient.birth_date`,
//! `services[].code.code`). Checking those names at load time — and checking
//! constants against enum vocabularies — needs a catalog of Case v1 that the
//! engine can walk; this is it. It mirrors `gateway_core::case` (a test builds
//! a case with every leaf set and checks it deserializes as a `Case`, so the
//! two cannot drift apart silently).

use gateway_core::case::{
    CaseStatus, CodeSystem, DecisionStatus, ProviderRole, Sex, SubscriberRelationship, Urgency,
};

/// What kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// ISO 8601 date `YYYY-MM-DD`.
    Date,
    /// RFC 3339 instant with offset.
    DateTime,
    /// A JSON number (quantities).
    Number,
    /// A positive integer (line and sequence numbers).
    Count,
    /// `true` / `false`.
    Bool,
    /// One of a fixed vocabulary.
    Enum(&'static [&'static str]),
    /// A list of text values (given names, address lines, modifiers).
    TextList,
    /// A nested object.
    Object(&'static [FieldDef]),
    /// A list of objects (services, coverages, …), filled by `foreach` or by index.
    ObjectList(&'static [FieldDef]),
    /// A map of text values under free keys (`references.placer_order`).
    TextMap,
}

/// How a field gets its value when no rule sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// Nothing: absent unless a rule sets it.
    None,
    /// The item's 1-based position in its list (service `line`, coverage `sequence`).
    Position,
}

/// One field of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// JSON name.
    pub name: &'static str,
    /// Value kind.
    pub kind: Kind,
    /// Case v1 requires it: an object (item) without it is dropped.
    pub required: bool,
    /// Filled automatically when no rule sets it.
    pub auto: Auto,
}

const fn f(name: &'static str, kind: Kind) -> FieldDef {
    FieldDef {
        name,
        kind,
        required: false,
        auto: Auto::None,
    }
}

const fn req(name: &'static str, kind: Kind) -> FieldDef {
    FieldDef {
        name,
        kind,
        required: true,
        auto: Auto::None,
    }
}

const fn pos(name: &'static str) -> FieldDef {
    FieldDef {
        name,
        kind: Kind::Count,
        required: true,
        auto: Auto::Position,
    }
}

// The allowed values of the Case v1 enums are the core enums' names, so a
// mapping accepts exactly what the Case deserializes.
/// Case statuses.
pub const STATUS: &[&str] = &CaseStatus::NAMES;
/// Decision statuses.
pub const DECISION_STATUS: &[&str] = &DecisionStatus::NAMES;
/// Urgencies.
pub const URGENCY: &[&str] = &Urgency::NAMES;
/// Administrative sex.
pub const SEX: &[&str] = &Sex::NAMES;
/// Subscriber relationships.
pub const RELATIONSHIP: &[&str] = &SubscriberRelationship::NAMES;
/// Provider roles.
pub const ROLE: &[&str] = &ProviderRole::NAMES;
/// Code systems.
pub const CODE_SYSTEM: &[&str] = &CodeSystem::NAMES;

const IDENTIFIER: &[FieldDef] = &[
    f("type", Kind::Text),
    req("value", Kind::Text),
    f("assigner", Kind::Text),
];
const NAME: &[FieldDef] = &[
    f("family", Kind::Text),
    f("given", Kind::TextList),
    f("prefix", Kind::Text),
    f("suffix", Kind::Text),
];
const ADDRESS: &[FieldDef] = &[
    f("lines", Kind::TextList),
    f("city", Kind::Text),
    f("state", Kind::Text),
    f("postal_code", Kind::Text),
    f("country", Kind::Text),
];
const PATIENT: &[FieldDef] = &[
    f("identifiers", Kind::ObjectList(IDENTIFIER)),
    f("name", Kind::Object(NAME)),
    f("birth_date", Kind::Date),
    f("sex", Kind::Enum(SEX)),
    f("address", Kind::Object(ADDRESS)),
    f("phone", Kind::Text),
];
const PAYER: &[FieldDef] = &[f("id", Kind::Text), f("name", Kind::Text)];
const COVERAGE: &[FieldDef] = &[
    pos("sequence"),
    f("payer", Kind::Object(PAYER)),
    f("member_id", Kind::Text),
    f("group_number", Kind::Text),
    f("plan_name", Kind::Text),
    f("subscriber_relationship", Kind::Enum(RELATIONSHIP)),
];
const PROVIDER: &[FieldDef] = &[
    req("role", Kind::Enum(ROLE)),
    f("npi", Kind::Text),
    f("name", Kind::Object(NAME)),
    f("organization", Kind::Text),
    f("identifiers", Kind::ObjectList(IDENTIFIER)),
    f("phone", Kind::Text),
];
const CODE: &[FieldDef] = &[
    req("system", Kind::Enum(CODE_SYSTEM)),
    req("code", Kind::Text),
    f("display", Kind::Text),
];
const PERIOD: &[FieldDef] = &[f("start", Kind::Date), f("end", Kind::Date)];
const SERVICE: &[FieldDef] = &[
    pos("line"),
    req("code", Kind::Object(CODE)),
    f("modifiers", Kind::TextList),
    f("quantity", Kind::Number),
    f("unit", Kind::Text),
    f("service_date", Kind::Object(PERIOD)),
    f("place_of_service", Kind::Text),
];
const DIAGNOSIS: &[FieldDef] = &[req("code", Kind::Object(CODE)), f("primary", Kind::Bool)];
const SERVICE_DECISION: &[FieldDef] = &[
    req("line", Kind::Count),
    req("status", Kind::Enum(DECISION_STATUS)),
    f("authorization_number", Kind::Text),
    f("quantity", Kind::Number),
    f("effective", Kind::Object(PERIOD)),
    f("reason_codes", Kind::TextList),
];
const DECISION: &[FieldDef] = &[
    req("status", Kind::Enum(DECISION_STATUS)),
    f("authorization_number", Kind::Text),
    f("effective", Kind::Object(PERIOD)),
    f("reason_codes", Kind::TextList),
    f("payer_trace", Kind::TextList),
    f("service_decisions", Kind::ObjectList(SERVICE_DECISION)),
    f("decided_at", Kind::DateTime),
    f("note", Kind::Text),
];
const ATTACHMENT: &[FieldDef] = &[
    req("kind", Kind::Text),
    f("media_type", Kind::Text),
    req("reference", Kind::Text),
    f("title", Kind::Text),
];
const SOURCE: &[FieldDef] = &[
    f("message_type", Kind::Text),
    f("control_id", Kind::Text),
    f("sender", Kind::Text),
];

/// The mappable top-level fields of Case v1. `schema`, `case_id`,
/// `source.adapter`, `source.profile` and `source.received_at` are set by the
/// engine and the caller, never by rules.
pub const CASE: &[FieldDef] = &[
    f("tenant", Kind::Text),
    f("practice", Kind::Text),
    f("site", Kind::Text),
    f("source", Kind::Object(SOURCE)),
    f("status", Kind::Enum(STATUS)),
    f("urgency", Kind::Enum(URGENCY)),
    f("patient", Kind::Object(PATIENT)),
    f("coverages", Kind::ObjectList(COVERAGE)),
    f("providers", Kind::ObjectList(PROVIDER)),
    f("services", Kind::ObjectList(SERVICE)),
    f("diagnoses", Kind::ObjectList(DIAGNOSIS)),
    f("decision", Kind::Object(DECISION)),
    f("attachments", Kind::ObjectList(ATTACHMENT)),
    f("references", Kind::TextMap),
    f("notes", Kind::TextList),
];

/// Fields that exist in Case v1 but are computed, with the reason (for diagnostics).
pub const COMPUTED: &[(&str, &str)] = &[
    ("schema", "it is always `ehr-gateway/case/v1`"),
    ("case_id", "it is computed from the `[case_id]` key"),
    (
        "source.adapter",
        "it is set by the adapter that received the document",
    ),
    ("source.profile", "it is the profile name"),
    (
        "source.received_at",
        "it is the receive time the adapter passes in",
    ),
];

/// Looks up `name` among `fields`.
pub fn field(fields: &'static [FieldDef], name: &str) -> Option<&'static FieldDef> {
    fields.iter().find(|d| d.name == name)
}

/// Human name of a kind, for diagnostics.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text",
        Kind::Date => "a date (YYYY-MM-DD)",
        Kind::DateTime => "an RFC 3339 date-time with offset",
        Kind::Number => "a number",
        Kind::Count => "a positive whole number",
        Kind::Bool => "true or false",
        Kind::Enum(_) => "one of a fixed set of values",
        Kind::TextList => "a list of text values",
        Kind::Object(_) => "an object",
        Kind::ObjectList(_) => "a list of objects",
        Kind::TextMap => "a map of text values",
    }
}

/// Checks (and normalizes) a value for a scalar kind. `Err` says why it is invalid.
pub fn check_value(kind: Kind, value: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    match kind {
        Kind::Text | Kind::TextList | Kind::TextMap => Ok(Value::String(value.to_owned())),
        Kind::Date => {
            if value.len() == 10 && value.parse::<jiff::civil::Date>().is_ok() {
                Ok(Value::String(value.to_owned()))
            } else {
                Err("is not an ISO date YYYY-MM-DD (use a `date` transform)".into())
            }
        }
        Kind::DateTime => {
            if value.parse::<jiff::Timestamp>().is_ok() && value.contains('T') {
                Ok(Value::String(value.to_owned()))
            } else {
                Err("is not an RFC 3339 date-time with offset (use a `datetime` transform)".into())
            }
        }
        Kind::Number => value
            .trim()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| "is not a number".to_owned()),
        Kind::Count => match value.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(Value::from(n)),
            _ => Err("is not a positive whole number".into()),
        },
        Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
            "false" | "f" | "no" | "n" | "0" => Ok(Value::Bool(false)),
            _ => Err("is not true/false (also accepted: yes/no, y/n, 1/0)".into()),
        },
        Kind::Enum(values) => {
            if values.contains(&value) {
                Ok(Value::String(value.to_owned()))
            } else {
                Err(format!(
                    "is not one of: {}",
                    values
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
        Kind::Object(_) | Kind::ObjectList(_) => Err("cannot take a single value".into()),
    }
}
