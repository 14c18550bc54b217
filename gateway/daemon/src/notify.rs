//! systemd service notifications (`sd_notify`): `READY=1`, `STOPPING=1` and
//! watchdog pings, for `Type=notify` units with `WatchdogSec=`.
//!
//! *Why our own ~60 lines instead of a crate*: the protocol is one datagram of
//! `KEY=VALUE` lines to the Unix socket named by `$NOTIFY_SOCKET` (a path, or
//! `@name` for the Linux abstract namespace). `std::os::unix::net::UnixDatagram`
//! does it without `unsafe`, libc bindings or a libsystemd link, keeps the
//! dependency graph (and `cargo deny`'s surface) unchanged, and is trivially
//! testable with a datagram socket bound by the test. Without
//! `$NOTIFY_SOCKET` (not under systemd, or on Windows) every call is a no-op.

use std::time::Duration;

/// Sends `state` (newline-separated `KEY=VALUE` lines) to `$NOTIFY_SOCKET`.
/// Returns whether a notification was sent; failures are logged, never fatal.
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send(&socket, state) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "Cannot notify the service manager.");
            false
        }
    }
}

#[cfg(unix)]
fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::net::UnixDatagram;

    let bytes = socket.as_bytes();
    let datagram = UnixDatagram::unbound()?;
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt as _;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt as _;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            datagram.send_to_addr(state.as_bytes(), &address)?;
            return Ok(());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(std::io::Error::other(
                "abstract notify sockets exist only on Linux",
            ));
        }
    }
    datagram.send_to(state.as_bytes(), std::path::Path::new(socket))?;
    Ok(())
}

#[cfg(not(unix))]
fn send(_socket: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Ok(())
}

/// Tells systemd the daemon is up (store open, listeners bound).
pub fn ready() -> bool {
    notify(&format!("READY=1\nMAINPID={}", std::process::id()))
}

/// Tells systemd the daemon is stopping (draining).
pub fn stopping() -> bool {
    notify("STOPPING=1")
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when it is set
/// and meant for this process (`$WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog every [`watchdog_interval`] from the async runtime
/// until `stop` is cancelled: a wedged runtime stops the pings and systemd
/// restarts the service. `None` when no watchdog is configured.
pub fn spawn_watchdog(
    stop: tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = watchdog_interval()?;
    tracing::info!(
        interval_ms = every.as_millis() as u64,
        "Watchdog pings enabled."
    );
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => { notify("WATCHDOG=1"); }
            }
        }
    }))
}
