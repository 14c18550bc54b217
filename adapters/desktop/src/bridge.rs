//! The daemon-facing bridge (filled in below).
