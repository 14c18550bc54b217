//! Third-party license notices for the release artifacts: the script lists
//! the crates the binary links for the chosen target with their licenses and
//! license texts — the Windows-only service crate only for a Windows target.

use std::path::Path;
use std::process::Command;

fn notices(target: Option<&str>) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new("python3");
    command
        .arg(root.join("gateway/daemon/packaging/third-party-notices.py"))
        .current_dir(&root);
    if let Some(target) = target {
        command.args(["--target", target]);
    }
    let Ok(out) = command.output() else {
        assert!(std::env::var_os("CI").is_none(), "python3 missing in CI");
        eprintln!("skipped: python3 is not installed");
        return None;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

#[test]
fn notices_follow_the_target() {
    // Both at once: each runs `cargo metadata` (several seconds).
    let (host, windows) = std::thread::scope(|scope| {
        let windows = scope.spawn(|| notices(Some("x86_64-pc-windows-msvc")));
        (notices(None), windows.join().expect("thread"))
    });
    let (Some(host), Some(windows)) = (host, windows) else {
        return;
    };
    for text in [&host, &windows] {
        assert!(text.contains("tokio"), "tokio missing");
        assert!(text.contains("rusqlite"), "rusqlite missing");
        assert!(text.contains("MIT"), "no license named");
        assert!(
            !text.contains("gateway-testkit"),
            "a dev-only crate is listed"
        );
    }
    assert!(windows.contains("windows-service"));
    assert!(!host.contains("windows-service"));
}
