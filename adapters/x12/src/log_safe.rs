//! Sender-chosen text in logs: file names of the file drop and partner ids
//! such as the CORE `PayloadID`.
//!
//! *Why*: senders name files after patients and put what they like into
//! envelope ids, so the raw text may carry PHI (logs must not) or control
//! characters that forge log lines. Logs show a short, stable hash instead:
//! equal names give equal hashes, so an operator can still follow one file
//! or envelope through the log and find it on disk by hashing its name.

use sha2::{Digest, Sha256};

/// `sha256:` and the first 16 hex digits of the SHA-256 of `text`.
pub fn hashed(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::hashed;

    #[test]
    fn hashes_are_stable_short_and_carry_no_input_text() {
        let a = hashed("Doe_Jane_1970-01-31.x12");
        assert_eq!(a, hashed("Doe_Jane_1970-01-31.x12"));
        assert_ne!(a, hashed("Doe_John_1970-01-31.x12"));
        assert_eq!(a.len(), "sha256:".len() + 16);
        assert!(!a.contains("Doe"));
        assert!(!hashed("x\nFAKE LOG LINE").contains('\n'));
    }
}
