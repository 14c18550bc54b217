# NATS JetStream fleet tests (gateway/daemon/tests/nats_*.rs, gateway/forward
# tests): a real nats-server (Debian package, 2.9.x) started on loopback by
# the tests themselves. Sourced by .ci/run; idempotent and quiet.
if ! command -v nats-server >/dev/null 2>&1; then
    apt_install nats-server
fi
