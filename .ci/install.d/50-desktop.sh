# Desktop bridge end-to-end tests (adapters/desktop): a private Xvfb per test
# binary, the python3-tk legacy-EHR test application, openbox for the EWMH path,
# xterm/x11-utils/xclip for debugging a failed run. Sourced by .ci/run.
apt_install xvfb xterm x11-utils python3-tk openbox xclip
