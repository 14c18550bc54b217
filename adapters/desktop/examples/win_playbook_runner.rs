//! Runs one playbook with the real Windows driver and writes what happened as
//! JSON: the Windows half of `tests/wine_end_to_end.rs`, cross-built for
//! `x86_64-pc-windows-gnu` and started under Wine (or run on Windows by hand).
//!
//! Why a separate program: the engine and the Windows driver must run as a
//! Windows process on the same (Wine) desktop as the application they drive;
//! the Linux test starts both and checks the results — the captures (mapped
//! into a Case on the Linux side with the shipped profile), the abort reason,
//! the number of inputs sent, and the abort screenshot written to a file.
//!
//! ```text
//! win_playbook_runner --playbook FILE [--case CASE.json] --result OUT.json [--screenshot OUT.png]
//! ```
//!
//! Every driver call is bounded ([`gateway_desktop::BoundedDriver`]) as in the
//! daemon. The result never holds screen values other than the captures the
//! test asked for (synthetic data).

#[cfg(not(windows))]
fn main() {
    eprintln!(
        "win_playbook_runner is a Windows program: build it with --target x86_64-pc-windows-gnu \
         and run it on Windows or under Wine"
    );
    std::process::exit(2);
}

#[cfg(windows)]
fn main() {
    std::process::exit(match runner::run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("win_playbook_runner: {e}");
            1
        }
    });
}

#[cfg(windows)]
mod runner {
    use std::path::PathBuf;

    use gateway_desktop::windows::WindowsDriver;
    use gateway_desktop::{BoundedDriver, Bounds, Driver, Playbook, RunOptions, run_playbook};
    use serde_json::json;

    pub fn run() -> Result<(), String> {
        let mut playbook = None;
        let mut case = None;
        let mut result = None;
        let mut screenshot = None;
        let mut args = std::env::args_os().skip(1);
        while let Some(a) = args.next() {
            let a = a.to_string_lossy().into_owned();
            let value = args
                .next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{a} needs a value"))?;
            match a.as_str() {
                "--playbook" => playbook = Some(value),
                "--case" => case = Some(value),
                "--result" => result = Some(value),
                "--screenshot" => screenshot = Some(value),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let playbook = playbook.ok_or("--playbook is required")?;
        let result = result.ok_or("--result is required")?;
        let pb = Playbook::load(&playbook).map_err(|e| e.to_string())?;
        let case: Option<gateway_core::Case> = match case {
            Some(p) => Some(
                std::fs::read_to_string(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))?,
            ),
            None => None,
        };
        let mut driver = BoundedDriver::spawn(
            || WindowsDriver::connect().map(|d| Box::new(d) as Box<dyn Driver>),
            Bounds::default(),
        )
        .map_err(|e| e.to_string())?;
        let outcome = run_playbook(&pb, &mut driver, case.as_ref(), &RunOptions::default());
        let clipboard = driver.clipboard_get().ok().flatten();
        let report = match outcome {
            Ok(report) => json!({
                "ok": true,
                "driver": driver.name(),
                "steps": report.steps.len(),
                "elapsed_ms": report.elapsed.as_millis() as u64,
                "captures": report.captures,
                "clipboard_after": clipboard,
            }),
            Err(abort) => {
                let mut shot = serde_json::Value::Null;
                if let (Some(s), Some(path)) = (&abort.screenshot, &screenshot) {
                    std::fs::write(path, &s.png).map_err(|e| e.to_string())?;
                    shot = json!({"width": s.width, "height": s.height});
                }
                json!({
                    "ok": false,
                    "driver": driver.name(),
                    "reason": format!("{:?}", abort.reason),
                    "code": abort.reason.code(),
                    "completed_actions": abort.completed.iter().map(|s| s.action).collect::<Vec<_>>(),
                    "message": abort.to_string(),
                    "step": abort.step.as_ref().map(|s| s.1.clone()),
                    "inputs_sent": abort.inputs_sent,
                    "screenshot": shot,
                    "clipboard_after": clipboard,
                })
            }
        };
        std::fs::write(&result, report.to_string()).map_err(|e| e.to_string())
    }
}
