#!/usr/bin/env bash
# The Windows build of the daemon itself under Wine on a private Xvfb:
# `ehr-gateway --version` lists the desktop adapter, and `ehr-gateway desktop
# run` (the CLI over the same bridge code as the daemon's adapter) drives the
# Win32 test application with the Windows driver and prints a Case.
#
# Manual, not part of `cargo test`: a debug Windows build of the daemon takes
# about 8 minutes on 2 cores the first time (aws-lc and SQLite through
# mingw-w64) and ~100 MB. Run it after changing the Windows driver or the
# daemon's desktop wiring:
#
#   adapters/desktop/tests/wine/daemon-under-wine.sh
#
# Needs what .ci/install.d/55-wine.sh and 50-desktop.sh install (wine, wine64,
# mingw-w64, the rustup target, Xvfb with xvfb-run).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
repo=$(pwd)
target=x86_64-pc-windows-gnu
cargo build --locked -q -p ehr-gateway --target "$target"
cargo build --locked -q -p gateway-desktop --example win_legacy_ehr_app --target "$target"
target_dir=$(cargo metadata --locked --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
exe="$target_dir/$target/debug/ehr-gateway.exe"
app="$target_dir/$target/debug/examples/win_legacy_ehr_app.exe"

work=$(mktemp -d)
cleanup() {
    WINEPREFIX="$work/prefix" wineserver -k 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

export REPO="$repo" EXE="$exe" APP="$app" WORK="$work"
xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" bash -euo pipefail -c '
    export WINEPREFIX="$WORK/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    mkdir -p "$WINEPREFIX"
    wineserver -p
    wineboot -i >/dev/null 2>&1
    # Wine 8 lacks bcryptprimitives.dll, which Rust std imports (see the .c file).
    x86_64-w64-mingw32-gcc -shared -O2 -s -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
        "$REPO/adapters/desktop/tests/wine/bcryptprimitives.c" -ladvapi32

    version=$(wine "$EXE" --version | tr -d "\r")
    echo "$version"
    case "$version" in
        *"adapters: "*desktop*) ;;
        *) echo "FAIL: --version does not list the desktop adapter"; exit 1 ;;
    esac

    wine "$APP" --order "Z:$REPO/sample-messages/desktop/legacy-desktop/order-screen.json" \
        --out "Z:$WORK/saved.json" --ready "Z:$WORK/ready" &
    app=$!
    for _ in $(seq 600); do [ -f "$WORK/ready" ] && break; sleep 0.1; done
    [ -f "$WORK/ready" ] || { echo "FAIL: the Win32 test application did not start"; exit 1; }
    cd "$REPO"
    wine "$EXE" desktop run --playbook "mappings\\legacy-desktop\\playbooks\\read-order.toml" --timing \
        > "$WORK/case.json"
    kill "$app"
    python3 - "$WORK/case.json" <<"PY"
import json, sys
case = json.load(open(sys.argv[1], encoding="utf-8"))
assert case["source"]["adapter"] == "desktop", case["source"]
assert case["source"]["control_id"] == "ORD-70001", case["source"]
assert case["patient"]["identifiers"][0]["value"] == "E10001"
assert case["patient"]["name"]["family"] == "M\u00fcller"
print("desktop run under Wine: case", case["case_id"], "from the Win32 order screen")
PY
'
echo "OK: the Windows daemon build lists and runs the desktop adapter under Wine"
