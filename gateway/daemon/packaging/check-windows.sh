#!/usr/bin/env bash
# Compiles the daemon for Windows without a Windows machine: the cfg(windows)
# service code (src/service/windows.rs) and every cfg-gated Unix call.
# .ci/run runs it after clippy (about 3.5 min on 2 cores the first time:
# aws-lc and SQLite C code through mingw; seconds when warm), so a Unix-only
# call outside a cfg(unix) module turns CI red.
#
#   gateway/daemon/packaging/check-windows.sh            # check + clippy -D warnings
#
# Needs: rustup target x86_64-pc-windows-gnu, Debian gcc-mingw-w64-x86-64
# (installed here if missing). Checks only: nothing is linked or run.
set -euo pipefail
cd "$(dirname "$0")/../../.."
rustup target list --installed | grep -qx x86_64-pc-windows-gnu \
    || rustup target add x86_64-pc-windows-gnu
if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc-mingw-w64-x86-64 >/dev/null
fi
cargo clippy --locked --target x86_64-pc-windows-gnu -p ehr-gateway --all-targets -- -D warnings
