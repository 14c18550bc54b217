//! Synthetic cases and inbound messages, and a fresh store, for the store's
//! unit tests, so each test module does not carry its own copy.

use gateway_core::Case;

use crate::model::{InboundOutcome, NewInbound};
use crate::{Store, StoreOptions};

/// A new store with default options in a temporary directory (kept alive
/// by the returned guard).
pub(crate) async fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("s.sqlite"), StoreOptions::default())
        .await
        .expect("store");
    (dir, store)
}

/// A minimal case `id` with `status`, as the `epic` HL7 profile makes them.
pub(crate) fn case(id: &str, status: &str) -> Case {
    serde_json::from_value(serde_json::json!({
        "schema": "ehr-gateway/case/v1", "case_id": id, "tenant": "mso-test",
        "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "ORM^O01",
                   "control_id": "MSG1", "received_at": "2026-11-22T10:00:00Z"},
        "status": status
    }))
    .expect("case")
}

/// An accepted HL7 order with control id `control` that maps to `case`.
pub(crate) fn inbound(control: &str, case: Case) -> NewInbound {
    NewInbound {
        adapter: "hl7v2".into(),
        profile: "epic".into(),
        sender: Some("EPIC".into()),
        control_id: Some(control.into()),
        message_type: Some("ORM^O01".into()),
        raw: format!("synthetic {control}").into_bytes(),
        received_at: "2026-11-22T11:00:00Z".into(),
        peer: None,
        outcome: InboundOutcome::Accepted {
            case: Box::new(case),
            event_type: None,
        },
        replay_of: None,
    }
}
