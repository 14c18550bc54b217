//! The daemon-facing bridge without a display: `WriteBack::apply` runs the
//! write playbook on the bridge's driver, returns a receipt, and on an abort
//! returns a non-retryable error for safety stops and hands the screenshot to
//! the evidence sink. The driver is an in-memory stand-in for a desktop.

use std::sync::{Arc, Mutex};

use gateway_core::Case;
use gateway_core::adapter::WriteBack;
use gateway_desktop::bridge::{
    AbortEvidence, DesktopBridge, DesktopConfig, DriverFactory, EvidenceSink,
};
use gateway_desktop::driver::{MouseButton, Screenshot, WindowId, WindowInfo};
use gateway_desktop::keys::Chord;
use gateway_desktop::{Driver, DriverError};

/// One window with one field that keeps at most `max_len` typed characters,
/// and a read-only patient banner at (1, 1) showing `banner`.
struct OneField {
    text: String,
    max_len: usize,
    clipboard: Option<String>,
    banner: String,
    on_banner: bool,
}

impl Driver for OneField {
    fn name(&self) -> &'static str {
        "one-field"
    }
    fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError> {
        Ok(vec![WindowInfo {
            id: WindowId(7),
            title: "Auth".into(),
            x: 0,
            y: 0,
            width: 100,
            height: 100,
        }])
    }
    fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError> {
        Ok(self.windows()?.pop())
    }
    fn focus(&mut self, _window: WindowId) -> Result<(), DriverError> {
        Ok(())
    }
    fn type_text(&mut self, text: &str) -> Result<(), DriverError> {
        self.text.extend(text.chars().take(self.max_len));
        Ok(())
    }
    fn key_chord(&mut self, chord: &Chord) -> Result<(), DriverError> {
        if chord.to_string() == "ctrl+c" {
            self.clipboard = Some(if self.on_banner {
                self.banner.clone()
            } else {
                self.text.clone()
            });
        }
        Ok(())
    }
    fn click(
        &mut self,
        _: WindowId,
        x: i32,
        y: i32,
        _: MouseButton,
        _: u8,
    ) -> Result<(), DriverError> {
        self.on_banner = (x, y) == (1, 1);
        Ok(())
    }
    fn clipboard_get(&mut self) -> Result<Option<String>, DriverError> {
        Ok(self.clipboard.clone())
    }
    fn clipboard_set(&mut self, text: &str) -> Result<(), DriverError> {
        self.clipboard = Some(text.to_owned());
        Ok(())
    }
    fn screenshot(&mut self, _: Option<WindowId>) -> Result<Screenshot, DriverError> {
        let png = gateway_desktop::png::encode_rgb(1, 1, &[1, 2, 3]).map_err(DriverError::new)?;
        Ok(Screenshot {
            width: 1,
            height: 1,
            png,
        })
    }
}

#[derive(Default)]
struct Kept(Mutex<Vec<AbortEvidence>>);

impl EvidenceSink for Kept {
    fn keep(&self, evidence: &AbortEvidence) -> Result<String, String> {
        self.0.lock().expect("lock").push(evidence.clone());
        Ok("memory".into())
    }
}

fn bridge(max_len: usize, sink: Arc<Kept>) -> (DesktopBridge, tempfile::TempDir) {
    bridge_on(max_len, "E1", sink)
}

fn bridge_on(
    max_len: usize,
    banner: &'static str,
    sink: Arc<Kept>,
) -> (DesktopBridge, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("write.toml");
    std::fs::write(
        &path,
        r#"
name = "write-auth"
kind = "write"
step_timeout_ms = 200
settle_ms = 0
[[step]]
action = "wait_window"
title = "Auth"
[[step]]
id = "check-patient"
action = "check_context"
fields = [{ name = "mrn", x = 1, y = 1, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
action = "click"
x = 5
y = 5
[[step]]
action = "type"
text = "{{decision.authorization_number}}"
[[step]]
id = "verify-auth"
action = "verify"
expect = "{{decision.authorization_number}}"
[[step]]
action = "check_context"
fields = [{ name = "mrn", x = 1, y = 1, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
action = "key"
keys = "ctrl+s"
commit = true
"#,
    )
    .expect("write playbook");
    let factory: DriverFactory = Box::new(move || {
        Ok(Box::new(OneField {
            text: String::new(),
            max_len,
            clipboard: None,
            banner: banner.to_owned(),
            on_banner: false,
        }) as Box<dyn Driver>)
    });
    let bridge = DesktopBridge::new(
        DesktopConfig::new(None, Some(path)),
        factory,
        Some(sink as Arc<dyn EvidenceSink>),
    )
    .expect("bridge");
    (bridge, dir)
}

fn case() -> Case {
    serde_json::from_value(serde_json::json!({
        "case_id": "case-9", "tenant": "t", "status": "approved",
        "source": {"adapter": "desktop", "profile": "legacy-desktop", "received_at": "2026-11-22T10:00:00Z"},
        "decision": {"status": "approved", "authorization_number": "PA-123456"},
        "patient": {"identifiers": [{"type": "MR", "value": "E1"}]}
    }))
    .expect("case")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_decisions_and_keeps_evidence_of_aborts() {
    let sink = Arc::new(Kept::default());
    let (ok, _dir) = bridge(64, Arc::clone(&sink));
    assert_eq!(ok.adapter(), "desktop");
    let receipt = ok.apply(&case()).await.expect("written");
    assert!(receipt.detail.contains("write-auth"), "{}", receipt.detail);
    assert!(sink.0.lock().expect("lock").is_empty());

    // A field that truncates: verification fails, not retryable, evidence kept.
    let (truncating, _dir2) = bridge(4, Arc::clone(&sink));
    let err = truncating.apply(&case()).await.expect_err("mismatch");
    assert!(!err.retryable, "{err}");
    assert!(!err.message.contains("PA-123456"), "{err}");
    let kept: Vec<AbortEvidence> = sink.0.lock().expect("lock").clone();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].reason, "verify_mismatch");
    assert_eq!(kept[0].case_id.as_deref(), Some("case-9"));
    assert!(kept[0].step.contains("verify-auth"));
    assert!(
        kept[0]
            .png
            .as_ref()
            .is_some_and(|p| p.starts_with(b"\x89PNG"))
    );

    // Another patient on screen: a write-back failure that is not retried,
    // naming the field and the evidence, never the values.
    let (wrong, _dir3) = bridge_on(64, "E2", Arc::clone(&sink));
    let err = wrong.apply(&case()).await.expect_err("wrong patient");
    assert!(!err.retryable, "{err}");
    assert!(
        err.message
            .contains("wrong patient or record on screen: field `mrn` differs"),
        "{err}"
    );
    assert!(err.message.contains("evidence kept as memory"), "{err}");
    assert!(
        !err.message.contains("E2") && !err.message.contains("E1"),
        "{err}"
    );
    let kept: Vec<AbortEvidence> = sink.0.lock().expect("lock").clone();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1].reason, "context_mismatch");
    assert!(kept[1].step.contains("check-patient"), "{}", kept[1].step);

    // A case without a decision is refused before any run.
    let mut undecided = case();
    undecided.decision = None;
    assert!(ok.apply(&undecided).await.is_err());
}
