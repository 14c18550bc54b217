//! The expiry of the certificates the daemon's listeners serve.
//!
//! *Why*: an expired server certificate stops every client at once (the
//! central platform's decisions, the operators' browsers), and nothing in the
//! gateway would otherwise notice until then. The expiry is read from the
//! certificate file when the listener starts (a renewed certificate is served
//! after a restart), published as the gauge
//! `ehr_gateway_tls_certificate_expiry_seconds{listener}` (seconds until
//! `notAfter`, negative once expired) and fed to the `certificate_expiry`
//! alert rule, so the alert fires while there is still time to renew.

use std::time::Duration;

use metrics::{Unit, describe_gauge, gauge};
use tokio_util::sync::CancellationToken;

/// The gauge's name.
pub use gateway_core::metrics::TLS_CERTIFICATE_EXPIRY_SECONDS as EXPIRY_GAUGE;

/// One served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The listener serving it (`admin`, `fhir-rest-hook`); the gauge's label.
    pub listener: String,
    /// Its `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

impl Served {
    /// Seconds from `now` (Unix seconds) until the certificate expires.
    pub fn seconds_left(&self, now: i64) -> i64 {
        self.not_after.saturating_sub(now)
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Describes the gauge (once, with the other metrics).
pub fn describe() {
    describe_gauge!(
        EXPIRY_GAUGE,
        Unit::Seconds,
        "Seconds until the certificate a TLS listener serves expires (negative once expired)."
    );
}

/// Sets the gauge of every served certificate.
pub fn publish(served: &[Served]) {
    let now = now();
    for cert in served {
        gauge!(EXPIRY_GAUGE, "listener" => cert.listener.clone())
            .set(cert.seconds_left(now) as f64);
    }
}

/// Keeps the gauges current until `stop` is cancelled.
pub async fn gauges(served: Vec<Served>, every: Duration, stop: CancellationToken) {
    if served.is_empty() {
        return;
    }
    loop {
        publish(&served);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_left_go_negative_after_expiry() {
        let cert = Served {
            listener: "admin".to_owned(),
            not_after: 1_000,
        };
        assert_eq!(cert.seconds_left(400), 600);
        assert_eq!(cert.seconds_left(1_500), -500);
    }
}
