//! The conformance HTML report renders in a real browser: `ehr-gateway
//! conformance --html F`, then headless Debian Chromium screenshots `F`, and
//! the PNG is decoded and checked to show more than one flat color.
//!
//! Needs `chromium` (`.ci/install.d/70-chromium.sh`): fails without it when
//! `CI` is set, otherwise skips with a printed reason.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Runs `command`, killing it after `limit`; returns whether it succeeded.
fn run_bounded(command: &mut Command, limit: Duration) -> bool {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Decodes `png` to 8-bit RGBA-ish pixels; returns (width, height, distinct
/// colors, share of pixels that are not the most common color).
fn analyse(png_file: &Path) -> (u32, u32, usize, f64) {
    let file = std::io::BufReader::new(std::fs::File::open(png_file).expect("open png"));
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let channels = info.color_type.samples();
    let mut counts = std::collections::HashMap::<&[u8], usize>::new();
    for pixel in buf[..info.buffer_size()].chunks_exact(channels) {
        *counts.entry(pixel).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let most = counts.values().copied().max().unwrap_or(0);
    let other = (total - most) as f64 / total.max(1) as f64;
    (info.width, info.height, counts.len(), other)
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing (CI runs .ci/install.d/70-chromium.sh)"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let html = dir.path().join("report.html");
    let status = Command::new(support::bin())
        .current_dir(support::repo_root())
        .args(["conformance", "--suite"])
        .arg(support::repo_root().join("conformance/suites/epic"))
        .arg("--html")
        .arg(&html)
        .stdout(Stdio::null())
        .status()
        .expect("run conformance");
    // 0 or 1 both write the report; anything else is an error before it.
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
    let text = std::fs::read_to_string(&html).expect("HTML report written");
    assert!(
        text.contains("<table") && text.contains("epic"),
        "report lacks the epic suite"
    );

    let png_file = dir.path().join("report.png");
    let profile = dir.path().join("chromium-profile");
    let ok = run_bounded(
        Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", png_file.display()))
            .arg("--window-size=1280,900")
            .arg(format!("file://{}", html.display())),
        Duration::from_secs(90),
    );
    assert!(ok, "chromium failed to screenshot the report");
    let bytes = std::fs::read(&png_file).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG signature"
    );
    let (width, height, colors, other) = analyse(&png_file);
    assert_eq!((width, height), (1280, 900), "screenshot size");
    // Text, table borders and the pass/fail/skip row colors: a blank or
    // failed render is one flat color.
    assert!(colors > 8, "only {colors} distinct colors: a flat render");
    assert!(
        other > 0.01,
        "{:.2}% of pixels differ from the background: nothing rendered",
        other * 100.0
    );
}
