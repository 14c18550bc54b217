# Desktop bridge on Windows, tested under Wine (adapters/desktop/tests/wine_end_to_end.rs):
# Debian's 64-bit Wine runs the x86_64-pc-windows-gnu builds of the Windows driver's
# test runner and the Win32 test application on the Xvfb the X11 tests use.
# The mingw-w64 linker and the rustup target build them. Sourced by .ci/run;
# idempotent and quiet (no i386 multiarch: the test programs are 64-bit only).
apt_install wine wine64 gcc-mingw-w64-x86-64
if command -v rustup >/dev/null 2>&1 \
    && ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
    timeout 180 rustup target add x86_64-pc-windows-gnu >/dev/null 2>&1 || true
fi
