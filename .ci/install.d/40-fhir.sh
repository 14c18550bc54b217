# FHIR adapter tests: Node + Medplum's FHIR router for the loopback FHIR server
# (adapters/fhir/tests/fhir-server). Sourced by .ci/run; idempotent and quiet.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
(
    cd adapters/fhir/tests/fhir-server
    if [ ! -d node_modules/@medplum/fhir-router ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error >/dev/null
    fi
)
