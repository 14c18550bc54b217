# Real MLLP peers for the gateway-hl7v2 interop tests and benchmark
# (sourced by .ci/run): python `hl7` (asyncio MLLP server, mllp_send) and npm
# node-hl7-server / node-hl7-client pinned by adapters/hl7v2/tests/peers/package-lock.json.
# Idempotent and quiet.

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
fi

if ! python3 -c 'import hl7.mllp' >/dev/null 2>&1 || ! command -v mllp_send >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check 'hl7==0.4.5' >/dev/null 2>&1 \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages 'hl7==0.4.5' >/dev/null
    command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1 || true
fi

hl7_peers_dir="adapters/hl7v2/tests/peers"
if [ ! -d "$hl7_peers_dir/node_modules/node-hl7-server" ] \
    || [ ! -d "$hl7_peers_dir/node_modules/node-hl7-client" ] \
    || [ "$hl7_peers_dir/package-lock.json" -nt "$hl7_peers_dir/node_modules/.package-lock.json" ]; then
    (cd "$hl7_peers_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1)
fi
unset hl7_peers_dir
