//! Clock helpers: the store keeps instants as milliseconds since the Unix epoch.

use jiff::Timestamp;

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Milliseconds back to a timestamp (out-of-range values clamp to the epoch).
pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// RFC 3339 in UTC with millisecond precision.
pub(crate) fn rfc3339(ms: i64) -> String {
    format!("{:.3}", ts(ms))
}

/// Parses an RFC 3339 instant with offset into milliseconds.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(|t| t.as_millisecond())
}
