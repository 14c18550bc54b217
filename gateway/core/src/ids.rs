//! Stable identifiers.
//!
//! A case id must be the same every time the same order arrives (a re-sent ORM,
//! a re-polled ServiceRequest, a 278 response for an earlier request), so it is
//! derived, not generated: a SHA-256 over the tenant and the source's order or
//! request key. Content hashes for duplicate detection use the same function
//! family so that the store and the adapters agree byte for byte.

use sha2::{Digest, Sha256};

/// The case id for `tenant` and a source key such as `epic:ORD1001`.
///
/// Shape: `case-` followed by 24 lowercase hex digits (96 bits).
pub fn case_id(tenant: &str, source_key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    hasher.update([0u8]);
    hasher.update(source_key.as_bytes());
    let digest = hasher.finalize();
    format!("case-{}", hex::encode(&digest[..12]))
}

/// Whether `text` has the shape of a [`case_id`]: `case-` and 24 lowercase
/// hex digits. Our outbound messages carry the case id as their reference (a
/// 278 request's BHT03, for one); a reply echoing it names the case itself.
pub fn is_case_id(text: &str) -> bool {
    text.strip_prefix("case-").is_some_and(|hex| {
        hex.len() == 24
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Hex SHA-256 of raw message bytes (duplicate detection, audit).
pub fn content_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_recognised_by_shape() {
        assert!(is_case_id(&case_id("mso-demo", "epic:ORD1001")));
        for text in [
            "case-",
            "case-0123456789abcdef0123456",
            "case-0123456789abcdef012345678",
            "case-0123456789ABCDEF01234567",
            "kase-0123456789abcdef01234567",
            "ORD1001",
        ] {
            assert!(!is_case_id(text), "{text}");
        }
    }

    #[test]
    fn case_ids_are_stable_and_separated_by_tenant() {
        let a = case_id("mso-demo", "epic:ORD1001");
        assert_eq!(a, case_id("mso-demo", "epic:ORD1001"));
        assert_ne!(a, case_id("mso-other", "epic:ORD1001"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(case_id("ab", "c"), case_id("a", "bc"));
        assert!(a.starts_with("case-") && a.len() == 29);
    }

    #[test]
    fn content_hash_is_sha256_hex() {
        assert_eq!(
            content_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
