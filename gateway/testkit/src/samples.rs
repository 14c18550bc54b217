//! Synthetic store rows for tests (made up; no PHI): a case, and the
//! accepted or rejected inbound message that carries it. Shared by the store's
//! and the forwarder's integration tests.

use gateway_core::Case;
use gateway_core::case::{CaseSource, Identifier, Patient};
use std::collections::HashMap;

use gateway_store::{Disposition, InboundOutcome, NewInbound, Store};

/// A synthetic case `n` for patient MRN `E1000{patient}`.
pub fn case(n: u32, patient: u32) -> Case {
    let source = CaseSource {
        adapter: "hl7v2".to_owned(),
        profile: "epic".to_owned(),
        message_type: Some("ORM^O01".to_owned()),
        control_id: Some(format!("MSG{n:04}")),
        sender: Some("EPIC^TESTHOSP".to_owned()),
        received_at: "2026-11-22T10:00:00Z".to_owned(),
    };
    let mut case = Case::new(
        gateway_core::ids::case_id("mso-demo", &format!("epic:ORD{n}")),
        "mso-demo",
        source,
    );
    case.practice = Some("cardio-north".to_owned());
    case.patient = Some(Patient {
        identifiers: vec![Identifier {
            kind: Some("MR".to_owned()),
            value: format!("E1000{patient}"),
            assigner: Some("TESTHOSP".to_owned()),
        }],
        ..Patient::default()
    });
    case
}

/// An accepted inbound message for `case` with control id `control` and raw bytes `raw`.
pub fn accepted(case: Case, control: &str, raw: &str) -> NewInbound {
    NewInbound {
        adapter: "hl7v2".to_owned(),
        profile: "epic".to_owned(),
        sender: Some("EPIC^TESTHOSP".to_owned()),
        control_id: Some(control.to_owned()),
        message_type: Some("ORM^O01".to_owned()),
        raw: raw.as_bytes().to_vec(),
        received_at: "2026-11-22T10:00:00Z".to_owned(),
        peer: Some("127.0.0.1:40000".to_owned()),
        outcome: InboundOutcome::Accepted {
            case: Box::new(case),
            event_type: None,
        },
        replay_of: None,
    }
}

/// A rejected inbound message.
pub fn rejected(control: &str, raw: &str, reason: &str) -> NewInbound {
    NewInbound {
        outcome: InboundOutcome::Rejected {
            reason: reason.to_owned(),
            diagnostics: vec![gateway_core::Diagnostic::error(
                "H001",
                "missing MSH segment",
            )],
        },
        ..accepted(case(0, 0), control, raw)
    }
}

/// Commits `per_case` messages for each of `cases` cases, interleaved across
/// the cases (round by round), each opening or updating its case with one
/// event. Returns event id → (case id, sequence).
pub async fn append_interleaved(
    store: &Store,
    cases: u32,
    per_case: u32,
) -> HashMap<String, (String, i64)> {
    let mut map = HashMap::new();
    for round in 0..per_case {
        for c in 0..cases {
            let r = store
                .commit_inbound(accepted(
                    case(c, c),
                    &format!("M{c}-{round}"),
                    &format!("raw {c} {round}"),
                ))
                .await
                .expect("commit");
            if let Disposition::Accepted {
                event_id,
                case_id,
                sequence,
                ..
            } = r.disposition
            {
                map.insert(event_id, (case_id, sequence));
            }
        }
    }
    map
}
