//! Decision write-back: a decided [`Case`] becomes an HL7 v2 message for the
//! practice's interface engine, shaped by the profile's outbound template
//! (`mappings/<profile>/outbound-decision.toml`).
//!
//! Two message kinds, chosen by the template: `ORU^R01` (PID, ORC, OBR, one OBX
//! per decision fact — what Epic and NextGen result-routing expect) and
//! `MDM^T02` (EVN, PID, PV1, TXA, OBX text lines — a document in the chart, what
//! MEDITECH and eCW sites often prefer). Which facts go out, under which OBX-3
//! codes, and how statuses are spelled is data in the template, not code.
//!
//! Every value is escaped by [`crate::parse::escape::encode`] (hl7-parser's
//! builder double-escapes) and the message is encoded in the template's
//! charset (MSH-18). Absent facts produce no OBX: nothing is invented.
//!
//! Template example:
//!
//! ```toml
//! message_type = "ORU^R01"          # or "MDM^T02"
//! version = "2.5.1"
//! sending_application = "EHR-GATEWAY"
//! sending_facility = "MSO"
//! receiving_application = "EPIC"
//! receiving_facility = "NORTH"
//! # processing_id = "P"; charset = "UNICODE UTF-8"; accept_ack_type = "AL"
//! # document_type = "PRIORAUTH"     (MDM: TXA-2)
//! [status_text]                     # optional spelling of decision statuses
//! approved = "APPROVED"
//! [[observation]]
//! fact = "status"                   # status, authorization_number, effective_start,
//! code = "PA-STATUS^Prior auth status^L"   # effective_end, reason_codes, note,
//! # value_type = "ST"; label = "Status"    # decided_at, payer_trace
//! ```

use std::path::Path;

use gateway_core::Case;
use gateway_core::case::{DecisionStatus, Sex};
use serde::Deserialize;

use crate::parse::escape::encode;
use crate::parse::{Charset, Separators};

/// The outbound template of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTemplate {
    /// `ORU^R01` or `MDM^T02`.
    pub message_type: String,
    /// MSH-12, default `2.5.1`.
    #[serde(default = "default_version")]
    pub version: String,
    /// MSH-3.
    pub sending_application: String,
    /// MSH-4.
    #[serde(default)]
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    #[serde(default)]
    pub receiving_facility: String,
    /// MSH-11, default `P`.
    #[serde(default = "default_processing")]
    pub processing_id: String,
    /// MSH-15 (enhanced mode when set), e.g. `AL`.
    #[serde(default)]
    pub accept_ack_type: Option<String>,
    /// MSH-18 charset name; UTF-8 when absent.
    #[serde(default)]
    pub charset: Option<String>,
    /// TXA-2 for MDM messages; default `PRIORAUTH`.
    #[serde(default)]
    pub document_type: Option<String>,
    /// Spelling of decision statuses (`approved = "A"`); default upper-case names.
    #[serde(default)]
    pub status_text: std::collections::BTreeMap<String, String>,
    /// The facts to send, in order.
    #[serde(default, rename = "observation")]
    pub observations: Vec<Observation>,
}

/// One decision fact sent as an OBX.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// Which fact (see the module docs).
    pub fact: Fact,
    /// OBX-3, written as HL7 (`CODE^Text^L`); its `^` are the component separators.
    pub code: String,
    /// OBX-2; default `ST` (`DT` suits dates, `TX` text).
    #[serde(default)]
    pub value_type: Option<String>,
    /// Label for MDM text lines (`Status: APPROVED`); default from the fact.
    #[serde(default)]
    pub label: Option<String>,
}

/// A decision fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    /// Decision status (through `status_text`).
    Status,
    /// Authorization number.
    AuthorizationNumber,
    /// First day of the authorized period.
    EffectiveStart,
    /// Last day of the authorized period.
    EffectiveEnd,
    /// Payer reason codes (one OBX each).
    ReasonCodes,
    /// Free-text note.
    Note,
    /// When the payer decided.
    DecidedAt,
    /// Payer trace numbers (one OBX each).
    PayerTrace,
}

fn default_version() -> String {
    "2.5.1".into()
}

fn default_processing() -> String {
    "P".into()
}

/// Why a template or message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The template file could not be read.
    #[error("cannot read outbound template {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template is not valid.
    #[error("invalid outbound template: {0}")]
    Template(String),
    /// The case has no decision to write back.
    #[error("case {0} has no decision")]
    NoDecision(String),
}

impl OutboundTemplate {
    /// Parses a template from TOML text and checks it.
    pub fn from_toml(text: &str) -> Result<Self, OutboundError> {
        let t: OutboundTemplate =
            toml::from_str(text).map_err(|e| OutboundError::Template(e.to_string()))?;
        t.check()?;
        Ok(t)
    }

    /// Loads `path` (e.g. `mappings/epic/outbound-decision.toml`).
    pub fn load(path: &Path) -> Result<Self, OutboundError> {
        let text = std::fs::read_to_string(path).map_err(|source| OutboundError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    fn check(&self) -> Result<(), OutboundError> {
        if !matches!(self.message_type.as_str(), "ORU^R01" | "MDM^T02") {
            return Err(OutboundError::Template(format!(
                "message_type must be ORU^R01 or MDM^T02, not {}",
                self.message_type
            )));
        }
        if let Some(c) = &self.charset
            && Charset::from_msh18(c).is_none()
        {
            return Err(OutboundError::Template(format!("unknown charset {c}")));
        }
        for key in self.status_text.keys() {
            if key.parse::<DecisionStatus>().is_err() {
                return Err(OutboundError::Template(format!(
                    "unknown decision status {key} in status_text"
                )));
            }
        }
        if self.observations.is_empty() {
            return Err(OutboundError::Template(
                "at least one [[observation]] is needed".into(),
            ));
        }
        Ok(())
    }

    fn status(&self, s: DecisionStatus) -> String {
        let key = s.as_str();
        self.status_text
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_ascii_uppercase())
    }
}

/// `2026-12-01` → `20261201`; RFC 3339 → `YYYYMMDDHHMMSS±ZZZZ`; other text as is.
pub fn hl7_time(iso: &str) -> String {
    let (main, offset) = match iso.find(['Z', 'z']) {
        Some(i) => (&iso[..i], "+0000".to_owned()),
        None => match iso.get(10..).and_then(|t| t.rfind(['+', '-'])) {
            Some(i) => {
                let at = 10 + i;
                (&iso[..at], iso[at..].replace(':', ""))
            }
            None => (iso, String::new()),
        },
    };
    let main = main.split('.').next().unwrap_or(main);
    let digits: String = main.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return iso.to_owned();
    }
    format!("{digits}{offset}")
}

/// Builds the decision message for `case` (segments end with `\r`, no framing).
/// `now` is an RFC 3339 instant or an HL7 timestamp (MSH-7, OBR-22, TXA-4).
pub fn build_decision_message(
    template: &OutboundTemplate,
    case: &Case,
    control_id: &str,
    now: &str,
) -> Result<Vec<u8>, OutboundError> {
    template.check()?;
    let decision = case
        .decision
        .as_ref()
        .ok_or_else(|| OutboundError::NoDecision(case.case_id.clone()))?;
    let seps = Separators::default();
    let e = |s: &str| encode(s, &seps).into_owned();
    let now = if now.contains('-') && now.contains('T') {
        hl7_time(now)
    } else {
        now.to_owned()
    };
    let mdm = template.message_type == "MDM^T02";
    let mut segs: Vec<String> = Vec::new();

    let structure = if mdm {
        "MDM^T02^MDM_T02"
    } else {
        "ORU^R01^ORU_R01"
    };
    let mut msh = vec![
        "MSH".to_owned(),
        seps.encoding_characters(),
        e(&template.sending_application),
        e(&template.sending_facility),
        e(&template.receiving_application),
        e(&template.receiving_facility),
        e(&now),
        String::new(),
        structure.to_owned(),
        e(control_id),
        e(&template.processing_id),
        e(&template.version),
    ];
    if template.accept_ack_type.is_some() || template.charset.is_some() {
        msh.extend([String::new(), String::new()]); // MSH-13, 14
        msh.push(e(template.accept_ack_type.as_deref().unwrap_or("")));
        msh.extend([String::new(), String::new()]); // MSH-16, 17
        msh.push(e(template.charset.as_deref().unwrap_or("")));
        while msh.last().is_some_and(String::is_empty) {
            msh.pop();
        }
    }
    segs.push(msh.join("|"));
    if mdm {
        segs.push(format!("EVN|T02|{}", e(&now)));
    }
    segs.push(pid(case, &e));
    let placer = case
        .references
        .get("placer_order")
        .map(|s| e(s))
        .unwrap_or_default();
    let filler = case
        .references
        .get("filler_order")
        .map(|s| e(s))
        .unwrap_or_default();
    if mdm {
        segs.push("PV1|1|O".to_owned());
        let doc_type = e(template.document_type.as_deref().unwrap_or("PRIORAUTH"));
        // TXA-1 set id, -2 type, -3 presentation, -4 activity time, -12 unique
        // document number, -14 placer order, -15 filler order, -17 completion status.
        let mut txa = vec![String::new(); 18];
        txa[0] = "TXA".into();
        txa[1] = "1".into();
        txa[2] = doc_type;
        txa[3] = "TX".into();
        txa[4] = e(&now);
        txa[12] = e(control_id);
        txa[14] = placer.clone();
        txa[15] = filler.clone();
        txa[17] = "AU".into();
        segs.push(txa.join("|"));
    } else {
        segs.push(format!("ORC|RE|{placer}|{filler}"));
        let service = case
            .services
            .first()
            .map(|s| {
                let sys = match s.code.system.as_str() {
                    "CPT" => "CPT4",
                    "HCPCS" => "HCPCS",
                    other => other,
                };
                format!(
                    "{}^{}^{}",
                    e(&s.code.code),
                    e(s.code.display.as_deref().unwrap_or("")),
                    e(sys)
                )
            })
            .unwrap_or_else(|| "PRIORAUTH^Prior authorization^L".to_owned());
        let mut obr = vec![String::new(); 26];
        obr[0] = "OBR".into();
        obr[1] = "1".into();
        obr[2] = placer.clone();
        obr[3] = filler.clone();
        obr[4] = service;
        obr[22] = e(&now);
        obr[25] = "F".into();
        segs.push(obr.join("|"));
    }
    let mut set_id = 0;
    for obs in &template.observations {
        let values: Vec<String> = match obs.fact {
            Fact::Status => vec![template.status(decision.status)],
            Fact::AuthorizationNumber => decision.authorization_number.iter().cloned().collect(),
            Fact::EffectiveStart => decision
                .effective
                .as_ref()
                .and_then(|p| p.start.as_deref())
                .map(hl7_time)
                .into_iter()
                .collect(),
            Fact::EffectiveEnd => decision
                .effective
                .as_ref()
                .and_then(|p| p.end.as_deref())
                .map(hl7_time)
                .into_iter()
                .collect(),
            Fact::ReasonCodes => decision.reason_codes.clone(),
            Fact::Note => decision.note.iter().cloned().collect(),
            Fact::DecidedAt => decision
                .decided_at
                .as_deref()
                .map(hl7_time)
                .into_iter()
                .collect(),
            Fact::PayerTrace => decision.payer_trace.clone(),
        };
        for v in values {
            set_id += 1;
            let vt = obs
                .value_type
                .clone()
                .unwrap_or_else(|| if mdm { "TX".into() } else { "ST".into() });
            let value = if mdm {
                format!(
                    "{}: {}",
                    obs.label.as_deref().unwrap_or(fact_label(obs.fact)),
                    v
                )
            } else {
                v
            };
            // OBX-3 is written by the template author in HL7 syntax: only
            // characters that would break the segment are escaped.
            let code: String = obs.code.split('^').map(&e).collect::<Vec<_>>().join("^");
            segs.push(format!(
                "OBX|{set_id}|{}|{code}||{}||||||F",
                e(&vt),
                e(&value)
            ));
        }
    }
    let charset = template
        .charset
        .as_deref()
        .and_then(Charset::from_msh18)
        .unwrap_or(Charset::Utf8);
    let mut text = segs.join("\r");
    text.push('\r');
    Ok(charset.encode(&text))
}

fn fact_label(f: Fact) -> &'static str {
    match f {
        Fact::Status => "Prior authorization status",
        Fact::AuthorizationNumber => "Authorization number",
        Fact::EffectiveStart => "Effective from",
        Fact::EffectiveEnd => "Effective through",
        Fact::ReasonCodes => "Reason",
        Fact::Note => "Note",
        Fact::DecidedAt => "Decided at",
        Fact::PayerTrace => "Payer reference",
    }
}

fn pid(case: &Case, e: &dyn Fn(&str) -> String) -> String {
    let Some(p) = &case.patient else {
        return "PID|1".to_owned();
    };
    let ids: Vec<String> = p
        .identifiers
        .iter()
        .map(|i| {
            format!(
                "{}^^^{}^{}",
                e(&i.value),
                e(i.assigner.as_deref().unwrap_or("")),
                e(i.kind.as_deref().unwrap_or(""))
            )
            .trim_end_matches('^')
            .to_owned()
        })
        .collect();
    let name = p
        .name
        .as_ref()
        .map(|n| {
            let mut parts = vec![e(n.family.as_deref().unwrap_or(""))];
            parts.extend(n.given.iter().take(2).map(|g| e(g)));
            parts.join("^")
        })
        .unwrap_or_default();
    let birth = p.birth_date.as_deref().map(hl7_time).unwrap_or_default();
    let sex = match p.sex {
        Some(Sex::Male) => "M",
        Some(Sex::Female) => "F",
        Some(Sex::Other) => "O",
        Some(Sex::Unknown) => "U",
        None => "",
    };
    let mut f = vec![
        "PID".to_owned(),
        "1".into(),
        String::new(),
        ids.join("~"),
        String::new(),
        name,
        String::new(),
        birth,
        sex.into(),
    ];
    while f.last().is_some_and(String::is_empty) {
        f.pop();
    }
    f.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_times() {
        assert_eq!(hl7_time("2026-12-01"), "20261201");
        assert_eq!(hl7_time("2026-11-22T10:00:00Z"), "20261122100000+0000");
        assert_eq!(
            hl7_time("2026-11-22T10:00:00.123-05:00"),
            "20261122100000-0500"
        );
    }

    #[test]
    fn template_checks() {
        assert!(OutboundTemplate::from_toml("message_type = \"ADT^A08\"\nsending_application=\"G\"\nreceiving_application=\"E\"\n[[observation]]\nfact=\"status\"\ncode=\"S\"").is_err());
        assert!(OutboundTemplate::from_toml("message_type = \"ORU^R01\"\nsending_application=\"G\"\nreceiving_application=\"E\"\nbogus=1\n[[observation]]\nfact=\"status\"\ncode=\"S\"").is_err());
        assert!(OutboundTemplate::from_toml("message_type = \"ORU^R01\"\nsending_application=\"G\"\nreceiving_application=\"E\"\n[[observation]]\nfact=\"status\"\ncode=\"S\"").is_ok());
    }
}
