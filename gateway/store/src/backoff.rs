//! Exponential backoff with jitter and a cap.
//!
//! It lives with the store because both retry queues the store persists use
//! it: the forwarder's outbox (crate `gateway-forward`) and the write-back
//! queue (crate `gateway-pipeline`).
//!
//! Delay after the n-th failure is `initial * multiplier^(n-1)`, capped at
//! `max`, then drawn uniformly from its upper half ("equal jitter") so that many
//! events failing together do not retry in lockstep while the delay still grows.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffPolicy {
    /// Delay after the first failure, in milliseconds (default 500).
    pub initial_ms: u64,
    /// Upper bound of any delay, in milliseconds (default 300 000 = 5 min).
    pub max_ms: u64,
    /// Growth factor per failure (default 2).
    pub multiplier: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial_ms: 500,
            max_ms: 300_000,
            multiplier: 2.0,
        }
    }
}

impl BackoffPolicy {
    /// The capped delay after `failures` consecutive failures (1 = first), before jitter.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(64) as i32;
        let raw = self.initial_ms as f64 * self.multiplier.max(1.0).powi(exp);
        let capped = raw.min(self.max_ms as f64).max(0.0);
        Duration::from_millis(capped as u64)
    }

    /// The delay to wait after `failures` consecutive failures, with jitter:
    /// uniform in `[ceiling/2, ceiling]`.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures).as_millis() as u64;
        let low = ceiling / 2;
        let ms = if ceiling > low {
            rand::rng().random_range(low..=ceiling)
        } else {
            ceiling
        };
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_is_capped() {
        let p = BackoffPolicy {
            initial_ms: 100,
            max_ms: 1_000,
            multiplier: 2.0,
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(5), Duration::from_millis(1_000));
        assert_eq!(p.ceiling(1_000), Duration::from_millis(1_000));
        for n in 1..20 {
            let d = p.delay(n);
            assert!(d <= p.ceiling(n) && d >= p.ceiling(n) / 2, "{n}: {d:?}");
        }
    }
}
