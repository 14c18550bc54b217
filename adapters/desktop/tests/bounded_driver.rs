//! Hard bounds without a display: a driver that stops answering (as a SIGSTOPped
//! X server makes every real call block) aborts the run with a driver timeout
//! instead of hanging it, every later call fails at once, and a driver that
//! cannot connect in time is reported as a timeout too. The real X11 case
//! (SIGSTOP of Xvfb mid-run) is in `x11_end_to_end.rs`.
//!
//! Also: the bridge's "read now" answers busy instead of waiting while another
//! run holds the desktop.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway_desktop::bridge::{DesktopBridge, DesktopConfig, DriverFactory, RunNow};
use gateway_desktop::driver::{MouseButton, Screenshot, WindowId, WindowInfo};
use gateway_desktop::keys::Chord;
use gateway_desktop::{
    AbortReason, BoundedDriver, Bounds, Driver, DriverError, Playbook, RunOptions, run_playbook,
};

/// A desktop with one window that hangs every call once `hung` is set.
struct Hanging {
    hung: Arc<AtomicBool>,
}

impl Hanging {
    fn gate(&self) {
        while self.hung.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Driver for Hanging {
    fn name(&self) -> &'static str {
        "hanging"
    }
    fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError> {
        self.gate();
        Ok(vec![WindowInfo {
            id: WindowId(1),
            title: "Other".into(),
            x: 0,
            y: 0,
            width: 10,
            height: 10,
        }])
    }
    fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError> {
        self.gate();
        Ok(None)
    }
    fn focus(&mut self, _: WindowId) -> Result<(), DriverError> {
        self.gate();
        Ok(())
    }
    fn type_text(&mut self, _: &str) -> Result<(), DriverError> {
        self.gate();
        Ok(())
    }
    fn key_chord(&mut self, _: &Chord) -> Result<(), DriverError> {
        self.gate();
        Ok(())
    }
    fn click(
        &mut self,
        _: WindowId,
        _: i32,
        _: i32,
        _: MouseButton,
        _: u8,
    ) -> Result<(), DriverError> {
        self.gate();
        Ok(())
    }
    fn clipboard_get(&mut self) -> Result<Option<String>, DriverError> {
        self.gate();
        Ok(None)
    }
    fn clipboard_set(&mut self, _: &str) -> Result<(), DriverError> {
        self.gate();
        Ok(())
    }
    fn screenshot(&mut self, _: Option<WindowId>) -> Result<Screenshot, DriverError> {
        self.gate();
        Err(DriverError::new("no screen"))
    }
}

/// Waits up to 30 s for a window that never appears: only a hung desktop can
/// end it early.
fn waiting_read() -> Playbook {
    Playbook::parse(
        Path::new("wait.toml"),
        r#"
name = "wait-forever"
kind = "read"
timeout_ms = 60000
[[step]]
id = "wait-order"
action = "wait_window"
title = "Never*"
timeout_ms = 30000
[[step]]
action = "copy"
capture = "order.number"
"#,
    )
    .expect("playbook parses")
}

/// Runs share the engine's process-wide input lock: keep this file's runs
/// apart so a lock wait never counts as a late abort.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const BOUNDS: Bounds = Bounds {
    call: Duration::from_millis(300),
    per_char: Duration::from_millis(1),
};

#[test]
fn a_hung_desktop_aborts_the_run_within_the_bound() {
    let _serial = serial();
    let hung = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&hung);
    let mut driver = BoundedDriver::spawn(
        move || Ok(Box::new(Hanging { hung: h }) as Box<dyn Driver>),
        BOUNDS,
    )
    .expect("connects");
    assert_eq!(driver.name(), "hanging");
    // Answers while the desktop answers.
    assert_eq!(driver.windows().expect("windows").len(), 1);

    let pb = waiting_read();
    let flip = Arc::clone(&hung);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        flip.store(true, Ordering::SeqCst);
        Instant::now()
    });
    let started = Instant::now();
    let abort = run_playbook(&pb, &mut driver, None, &RunOptions::default())
        .expect_err("a hung desktop aborts the run");
    let ended = Instant::now();
    let hung_at = stopper.join().expect("stopper");
    match &abort.reason {
        AbortReason::Driver(e) => assert!(e.is_timeout(), "{e}"),
        other => panic!("expected a driver timeout, got {other}"),
    }
    assert_eq!(abort.reason.code(), "driver_timeout");
    assert_eq!(
        abort.step.as_ref().map(|s| s.1.as_str()),
        Some("wait-order")
    );
    assert!(abort.screenshot.is_none(), "no screen from a hung desktop");
    assert!(abort.to_string().contains("hung or gone"), "{abort}");
    // The bound (plus the abort's fast-failing clean-up), not the 30 s step.
    let after_hang = ended.saturating_duration_since(hung_at);
    assert!(
        after_hang < BOUNDS.call * 4,
        "aborted {after_hang:?} after the desktop hung (bound {:?})",
        BOUNDS.call
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(driver.is_broken());

    // Every later call fails at once, even after the desktop answers again.
    hung.store(false, Ordering::SeqCst);
    let t = Instant::now();
    let e = driver.windows().expect_err("given up on");
    assert!(e.is_timeout());
    assert!(t.elapsed() < BOUNDS.call);
}

#[test]
fn connecting_to_a_hung_desktop_times_out() {
    let t = Instant::now();
    let e = BoundedDriver::spawn(
        || {
            std::thread::sleep(Duration::from_secs(3));
            Err(DriverError::new("late"))
        },
        BOUNDS,
    )
    .expect_err("connect times out");
    assert!(e.is_timeout(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));

    let e = BoundedDriver::spawn(|| Err(DriverError::new("no display")), BOUNDS)
        .expect_err("connect fails");
    assert!(!e.is_timeout());
    assert!(e.to_string().contains("no display"));
}

#[test]
fn typing_gets_more_time_per_character() {
    /// Types at 2 ms per character.
    struct SlowTyper;
    impl Driver for SlowTyper {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError> {
            Ok(Vec::new())
        }
        fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError> {
            Ok(None)
        }
        fn focus(&mut self, _: WindowId) -> Result<(), DriverError> {
            Ok(())
        }
        fn type_text(&mut self, text: &str) -> Result<(), DriverError> {
            std::thread::sleep(Duration::from_millis(2) * text.chars().count() as u32);
            Ok(())
        }
        fn key_chord(&mut self, _: &Chord) -> Result<(), DriverError> {
            Ok(())
        }
        fn click(
            &mut self,
            _: WindowId,
            _: i32,
            _: i32,
            _: MouseButton,
            _: u8,
        ) -> Result<(), DriverError> {
            Ok(())
        }
        fn clipboard_get(&mut self) -> Result<Option<String>, DriverError> {
            Ok(None)
        }
        fn clipboard_set(&mut self, _: &str) -> Result<(), DriverError> {
            Ok(())
        }
        fn screenshot(&mut self, _: Option<WindowId>) -> Result<Screenshot, DriverError> {
            Err(DriverError::new("none"))
        }
    }
    let bounds = Bounds {
        call: Duration::from_millis(100),
        per_char: Duration::from_millis(10),
    };
    let mut d =
        BoundedDriver::spawn(|| Ok(Box::new(SlowTyper) as Box<dyn Driver>), bounds).expect("ok");
    // 200 chars take ~400 ms: over the plain 100 ms bound, within 100 + 2000 ms.
    d.type_text(&"x".repeat(200))
        .expect("typing is bounded by its length");
    assert!(!d.is_broken());
}

#[test]
fn a_second_run_is_answered_busy_not_queued() {
    let _serial = serial();
    let hung = Arc::new(AtomicBool::new(false));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("read.toml");
    std::fs::write(
        &path,
        r#"
name = "slow-read"
kind = "read"
[[step]]
action = "wait_window"
title = "Never*"
timeout_ms = 1500
[[step]]
action = "copy"
capture = "order.number"
"#,
    )
    .expect("write playbook");
    let h = Arc::clone(&hung);
    let factory: DriverFactory = Box::new(move || {
        Ok(Box::new(Hanging {
            hung: Arc::clone(&h),
        }) as Box<dyn Driver>)
    });
    let bridge =
        DesktopBridge::new(DesktopConfig::new(Some(path), None), factory, None).expect("bridge");
    let first = bridge.clone();
    let running = std::thread::spawn(move || {
        let pb = first.read_playbook().expect("read playbook").clone();
        first.try_run_blocking(&pb, None)
    });
    std::thread::sleep(Duration::from_millis(300));
    let pb = bridge.read_playbook().expect("read playbook").clone();
    let t = Instant::now();
    assert!(matches!(bridge.try_run_blocking(&pb, None), RunNow::Busy));
    assert!(t.elapsed() < Duration::from_millis(500), "answered at once");
    match running.join().expect("first run") {
        RunNow::Aborted(failed) => {
            assert!(matches!(
                failed.abort.reason,
                AbortReason::WindowNotFound(_)
            ));
            assert!(failed.evidence.is_none(), "no sink configured");
        }
        other => panic!("the first run should time out waiting: {other:?}"),
    }
    // Free again: the next run starts (and aborts the same way).
    assert!(matches!(
        bridge.try_run_blocking(&pb, None),
        RunNow::Aborted(_)
    ));
}
