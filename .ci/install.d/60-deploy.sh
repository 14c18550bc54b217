# Deployment checks (issue 10). Sourced by .ci/run.
# systemd-analyze verifies packaging/ehr-gateway.service (gateway/daemon/tests/deploy_unit.rs);
# it works without a running systemd, so installing the package is enough.
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
# cargo-deny for the supply-chain step in .ci/run (compiles for a few minutes
# the first time; skipped when already installed).
command -v cargo-deny >/dev/null 2>&1 || cargo install cargo-deny --locked --quiet
