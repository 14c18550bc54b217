//! `ehr-gateway demo --exit-after-traffic`, the real binary:
//! * with every tool this machine has (node + the Medplum packages for FHIR,
//!   Xvfb + python3-tk for the desktop bridge; CI installs them all), each
//!   part that ran created cases, the summary names the dashboard URL and
//!   the token file, and the temporary directory is gone afterwards;
//! * with `PATH` emptied, FHIR and the desktop bridge are listed as skipped
//!   with their reasons while HL7 v2 and X12 still run;
//! * either way no process the demo started (node, Xvfb, the legacy-EHR test
//!   application, their shells) is left: every child inherits a marker
//!   environment variable and none may carry it after the demo exits.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const MARK_VAR: &str = "EHR_GATEWAY_DEMO_TEST_MARK";

/// A marker unique to one demo run.
fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Runs the demo with `marker` in its environment; `path` replaces `PATH`.
fn run_demo(marker: &str, path: Option<&str>) -> Output {
    let mut command = Command::new(support::bin());
    command
        .args([
            "demo",
            "--exit-after-traffic",
            "--admin-listen",
            "127.0.0.1:0",
            "--repo",
        ])
        .arg(support::repo_root())
        .env(MARK_VAR, marker)
        // The test's own display is never used: the demo starts a private Xvfb.
        .env_remove("DISPLAY")
        .env_remove("RUST_LOG");
    if let Some(path) = path {
        command.env("PATH", path);
    }
    command.output().expect("run demo")
}

/// Command lines of live processes whose environment carries the marker.
fn marked_processes(marker: &str) -> Vec<String> {
    let needle = format!("{MARK_VAR}={marker}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let carries = environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes());
        if carries {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Asserts that no marked process survives (children get a moment to exit).
fn assert_no_children_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = marked_processes(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the demo left processes behind: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The count on the `Cases:` line of `adapter/…` groups, summed.
fn cases_of(stdout: &str, adapter: &str) -> usize {
    let section = stdout
        .split("\nCases: ")
        .nth(1)
        .expect("a Cases: section")
        .split("\n\n")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let group = words.next()?;
            let count = words.next()?.parse::<usize>().ok()?;
            group.starts_with(&format!("{adapter}/")).then_some(count)
        })
        .sum()
}

/// The `Skipped: <part> — <why>` reason for `part`, if listed.
fn skip_reason<'a>(stdout: &'a str, part: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("Skipped: {part} — ")))
}

/// The temporary directory the demo announced.
fn temp_dir(stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("temp dir:"))
        .expect("temp dir line");
    PathBuf::from(line.trim().split(" (").next().expect("path"))
}

fn assert_common(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // HL7 v2 and X12 run in-process and always run.
    assert!(cases_of(&stdout, "hl7v2") >= 5, "{stdout}");
    assert!(cases_of(&stdout, "x12") >= 3, "{stdout}");
    assert!(stdout.contains("HL7 v2 MLLP listener: sent "), "{stdout}");
    // The file drop's folders: the malformed interchange went to error/ with a rejecting 999.
    let error_folder = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("error/"))
        .expect("the error/ folder is shown");
    let counts: Vec<usize> = error_folder
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        counts.len() >= 2 && counts[0] >= 1 && counts[1] >= 1,
        "{error_folder}"
    );
    assert!(stdout.contains("999 (IK5*R"), "{stdout}");
    // Forwarding completed and a decision went through the admin API.
    assert!(stdout.contains("(0 pending, 0 dead-lettered)"), "{stdout}");
    assert!(
        stdout.contains("decision write-back: POST /api/v1/cases/case-"),
        "{stdout}"
    );
    assert!(stdout.contains("answered 202"), "{stdout}");
    // The dashboard URL, the token file and what to try next.
    assert!(
        stdout.contains("\nDashboard: http://localhost:"),
        "{stdout}"
    );
    assert!(stdout.contains("admin.token (mode 0600)"), "{stdout}");
    assert!(
        stdout.contains("ehr-gateway messages list --data-dir "),
        "{stdout}"
    );
    // The temporary directory is removed at exit (no --keep).
    let temp = temp_dir(&stdout);
    assert!(
        temp.starts_with(std::env::temp_dir()) && !temp.exists(),
        "{} should be gone",
        temp.display()
    );
    stdout
}

fn fhir_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    node && support::repo_root()
        .join("adapters/fhir/tests/fhir-server/node_modules/@medplum/fhir-router")
        .is_dir()
}

fn desktop_available() -> bool {
    let xvfb = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join("Xvfb").is_file()));
    xvfb && gateway_desktop::legacy_app::python_tk_available()
}

#[test]
fn demo_runs_every_available_part_and_leaves_nothing_behind() {
    let ci = std::env::var_os("CI").is_some();
    let mark = marker("full");
    let out = run_demo(&mark, None);
    let stdout = assert_common(&out);
    assert_no_children_left(&mark);

    if fhir_available() {
        assert!(cases_of(&stdout, "fhir") >= 1, "{stdout}");
        assert!(stdout.contains("FHIR polling: "), "{stdout}");
        // FHIR owns a write-back, so the decision is written back to the FHIR server.
        assert!(
            stdout.contains("write-back by fhir (athenahealth): done"),
            "{stdout}"
        );
    } else {
        assert!(!ci, "CI must install node and the FHIR server packages");
        let why = skip_reason(&stdout, "FHIR polling").expect("FHIR skip reason");
        assert!(why.len() > 10, "{why}");
        eprintln!("FHIR part not checked: {why}");
    }
    if desktop_available() {
        assert!(cases_of(&stdout, "desktop") >= 1, "{stdout}");
        assert!(
            stdout.contains("(a private Xvfb the demo started)"),
            "{stdout}"
        );
    } else {
        assert!(!ci, "CI must install xvfb and python3-tk");
        let why = skip_reason(&stdout, "desktop bridge").expect("desktop skip reason");
        eprintln!("desktop part not checked: {why}");
    }
    if fhir_available() && desktop_available() {
        assert!(
            stdout.contains("Skipped: nothing, every part ran"),
            "{stdout}"
        );
    }
}

#[test]
fn demo_names_each_part_it_skips_and_why() {
    let mark = marker("bare");
    // No node, no Xvfb, no python3 on PATH: only the in-process parts can run.
    let out = run_demo(&mark, Some("/nonexistent-demo-path"));
    let stdout = assert_common(&out);
    assert_no_children_left(&mark);

    let fhir = skip_reason(&stdout, "FHIR polling").expect("FHIR is skipped");
    assert!(fhir.contains("node is not installed"), "{fhir}");
    let desktop = skip_reason(&stdout, "desktop bridge").expect("desktop is skipped");
    assert!(
        desktop.contains("DISPLAY is not set and Xvfb is not installed"),
        "{desktop}"
    );
    assert_eq!(cases_of(&stdout, "fhir"), 0, "{stdout}");
    assert_eq!(cases_of(&stdout, "desktop"), 0, "{stdout}");
    assert!(!stdout.contains("Skipped: nothing"), "{stdout}");
}

#[test]
fn demo_serves_until_sigterm_then_cleans_up() {
    use std::io::{BufRead as _, BufReader};
    let mark = marker("serve");
    let mut child = Command::new(support::bin())
        .args(["demo", "--admin-listen", "127.0.0.1:0", "--repo"])
        .arg(support::repo_root())
        .env(MARK_VAR, &mark)
        .env_remove("DISPLAY")
        .env("PATH", "/nonexistent-demo-path")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("Serving until Ctrl-C"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the demo never said it is serving: {seen:#?}");
            }
        }
    }
    let all = seen.join("\n");
    let temp = temp_dir(&all);
    assert!(temp.exists(), "{all}");
    // While serving, the dashboard URL answers on loopback.
    let port: u16 = all
        .split("Dashboard: http://localhost:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("dashboard port");
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin reachable");
    use std::io::{Read as _, Write as _};
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let until = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the demo did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!temp.exists(), "{} should be removed", temp.display());
    assert_no_children_left(&mark);
}
