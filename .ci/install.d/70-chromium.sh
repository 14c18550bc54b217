# Headless Chromium for the conformance HTML report test
# (gateway/daemon/tests/conformance_html.rs screenshots the report).
# Sourced by .ci/run; apt_install skips what is already installed.
apt_install chromium
