# Headless Chromium and its WebDriver: the conformance HTML report test
# (gateway/daemon/tests/conformance_html.rs) screenshots the report; the
# dashboard browser test (gateway/daemon/tests/dashboard_browser.rs) drives the
# dashboard through chromedriver. Sourced by .ci/run; apt_install skips what
# is already installed.
apt_install chromium chromium-driver
