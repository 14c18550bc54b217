//! Fact checks: identifiers and codes are validated, never copied or guessed.
//!
//! A provider id that is not a valid NPI must not leave the gateway as an NPI
//! (a payer rejects it, or worse, attaches the request to another provider),
//! and a local code must not leave as CPT. These checks live here, in the
//! crate every other crate shares, so that the mapping engine (which applies
//! them to every case it builds) and every writer (278 requests, HL7
//! write-back) use the same rules:
//!
//! * [`npi_is_valid`]: 10 digits whose last is the Luhn check digit computed
//!   over the `80840` prefix and the first nine digits (CMS NPI standard).
//! * [`procedure_shape`]: which procedure code system a code's shape allows
//!   (CPT `99213`/`0001F`/`0042T`/`0001U`, HCPCS Level II `J1234`, CDT
//!   `D0120`), or none.
//! * [`check_case`]: applies the case-level rules to a built case and returns
//!   what it changed, with the field each change concerns, so the caller can
//!   point at the source position (never at the value: no PHI in diagnostics).

use crate::case::{Case, CodeSystem, Identifier};

/// True when `text` is a National Provider Identifier: exactly 10 ASCII
/// digits with a valid Luhn check digit over the `80840` prefix.
pub fn npi_is_valid(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    // Luhn over "80840" + the 10 digits: double every second digit from the right
    // (the check digit itself is not doubled).
    let digits = b"80840"
        .iter()
        .chain(bytes.iter())
        .map(|b| u32::from(b - b'0'));
    let all: Vec<u32> = digits.collect();
    let sum: u32 = all
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The Luhn check digit that makes `nine` (9 digits) a valid NPI, or `None`
/// when `nine` is not 9 ASCII digits. Used to write synthetic test data.
pub fn npi_check_digit(nine: &str) -> Option<char> {
    let bytes = nine.as_bytes();
    if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    (b'0'..=b'9')
        .map(char::from)
        .find(|c| npi_is_valid(&format!("{nine}{c}")))
}

/// True when `code` has the shape of a CPT code: four digits followed by a
/// digit (Category I), `F` (Category II), `T` (Category III) or `U` (PLA).
pub fn has_cpt_shape(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5
        && b[..4].iter().all(u8::is_ascii_digit)
        && matches!(b[4], b'0'..=b'9' | b'F' | b'T' | b'U')
}

/// True when `code` has the shape of a HCPCS Level II code: a letter `A`–`V`
/// other than `D` (dental codes are CDT) followed by four digits.
pub fn has_hcpcs_shape(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5
        && matches!(b[0], b'A'..=b'V')
        && b[0] != b'D'
        && b[1..].iter().all(u8::is_ascii_digit)
}

/// True when `code` has the shape of a CDT (dental) code: `D` and four digits.
pub fn has_cdt_shape(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5 && b[0] == b'D' && b[1..].iter().all(u8::is_ascii_digit)
}

/// True when `code` has the shape of an ICD-9-CM diagnosis code: `428`,
/// `428.0`, `V72.84`, `E880.9` (with or without the dot).
pub fn has_icd9_shape(code: &str) -> bool {
    let compact: String = code.chars().filter(|c| *c != '.').collect();
    let b = compact.as_bytes();
    match b.first() {
        Some(b'0'..=b'9') => (3..=5).contains(&b.len()) && b.iter().all(u8::is_ascii_digit),
        Some(b'V') => (3..=5).contains(&b.len()) && b[1..].iter().all(u8::is_ascii_digit),
        Some(b'E') => (4..=5).contains(&b.len()) && b[1..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// True when `code` has the shape of an ICD-10-CM code: a letter, a digit,
/// then one to five letters or digits, with an optional dot after the third
/// character (`I50.9`, `E11`, `S72.001A`).
pub fn has_icd10_shape(code: &str) -> bool {
    let compact: String = code.chars().filter(|c| *c != '.').collect();
    let b = compact.as_bytes();
    (3..=7).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[1].is_ascii_digit()
        && b[2..].iter().all(u8::is_ascii_alphanumeric)
}

/// The procedure code system a code's shape allows, if exactly one does.
pub fn procedure_shape(code: &str) -> Option<CodeSystem> {
    if has_cpt_shape(code) {
        Some(CodeSystem::Cpt)
    } else if has_hcpcs_shape(code) {
        Some(CodeSystem::Hcpcs)
    } else if has_cdt_shape(code) {
        Some(CodeSystem::Cdt)
    } else {
        None
    }
}

/// What [`check_case`] changed in a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactIssue {
    /// `providers[i].npi` failed the NPI check; it was moved to that
    /// provider's `identifiers` as a `local` identifier.
    InvalidNpi {
        /// The field, `providers[0].npi`.
        field: String,
    },
    /// A code labelled CPT lacks the CPT shape; it was relabelled to the
    /// system its shape shows (HCPCS, CDT) or `local`.
    NotCpt {
        /// The field, `services[0].code.system`.
        field: String,
        /// The system it now carries.
        now: CodeSystem,
    },
    /// A diagnosis labelled ICD-10-CM lacks the ICD-10 shape; it was
    /// relabelled `ICD-9` (ICD-9 shape) or `local`.
    NotIcd10 {
        /// The field, `diagnoses[0].code.system`.
        field: String,
        /// The system it now carries.
        now: CodeSystem,
    },
    /// `patient.birth_date` is not plausible (before 1880 or after the
    /// receive date); it was dropped.
    ImplausibleBirthDate {
        /// Always `patient.birth_date`.
        field: String,
    },
}

impl FactIssue {
    /// The case field the change concerns.
    pub fn field(&self) -> &str {
        match self {
            FactIssue::InvalidNpi { field }
            | FactIssue::NotCpt { field, .. }
            | FactIssue::NotIcd10 { field, .. }
            | FactIssue::ImplausibleBirthDate { field } => field,
        }
    }

    /// A message naming the field and never the value.
    pub fn message(&self) -> String {
        match self {
            FactIssue::InvalidNpi { field } => format!(
                "the value of `{field}` is not a valid NPI (10 digits, Luhn check over 80840); kept as a `local` identifier of the provider instead"
            ),
            FactIssue::NotCpt { field, now } => format!(
                "the code of `{field}` does not have the shape of a CPT code; labelled `{}` instead",
                now.as_str()
            ),
            FactIssue::NotIcd10 { field, now } => format!(
                "the code of `{field}` does not have the shape of an ICD-10-CM code; labelled `{}` instead",
                now.as_str()
            ),
            FactIssue::ImplausibleBirthDate { field } => format!(
                "the value of `{field}` is not a plausible birth date (before 1880 or after the receive date); it is dropped"
            ),
        }
    }
}

/// The earliest birth year the gateway accepts (older is a typing error).
pub const EARLIEST_BIRTH_YEAR: i32 = 1880;

/// Applies the case-level fact rules to `case` and returns every change:
///
/// * a provider `npi` that fails [`npi_is_valid`] is removed and kept in the
///   provider's `identifiers` as type `local`;
/// * a service or diagnosis code labelled CPT without the CPT shape gets the
///   system its shape shows ([`procedure_shape`]) or `local`;
/// * a diagnosis labelled ICD-10-CM without the ICD-10 shape becomes `ICD-9`
///   (ICD-9 shape) or `local`;
/// * a `patient.birth_date` before [`EARLIEST_BIRTH_YEAR`] or after `today`
///   (an ISO date, usually the receive date; not checked when `None`) is
///   dropped.
pub fn check_case(case: &mut Case, today: Option<&str>) -> Vec<FactIssue> {
    let mut issues = Vec::new();
    for (i, p) in case.providers.iter_mut().enumerate() {
        if let Some(npi) = p.npi.take() {
            if npi_is_valid(&npi) {
                p.npi = Some(npi);
            } else {
                if !p.identifiers.iter().any(|id| id.value == npi) {
                    p.identifiers.push(Identifier {
                        kind: Some("local".to_owned()),
                        value: npi,
                        assigner: None,
                    });
                }
                issues.push(FactIssue::InvalidNpi {
                    field: format!("providers[{i}].npi"),
                });
            }
        }
    }
    for (i, d) in case.diagnoses.iter_mut().enumerate() {
        if d.code.system == CodeSystem::Icd10Cm && !has_icd10_shape(&d.code.code) {
            let now = if has_icd9_shape(&d.code.code) {
                CodeSystem::Icd9
            } else {
                CodeSystem::Local
            };
            d.code.system = now;
            issues.push(FactIssue::NotIcd10 {
                field: format!("diagnoses[{i}].code.system"),
                now,
            });
        }
    }
    let codes = case
        .services
        .iter_mut()
        .enumerate()
        .map(|(i, s)| (format!("services[{i}].code.system"), &mut s.code))
        .chain(
            case.diagnoses
                .iter_mut()
                .enumerate()
                .map(|(i, d)| (format!("diagnoses[{i}].code.system"), &mut d.code)),
        );
    for (field, code) in codes {
        if code.system == CodeSystem::Cpt && !has_cpt_shape(&code.code) {
            let now = procedure_shape(&code.code).unwrap_or(CodeSystem::Local);
            code.system = now;
            issues.push(FactIssue::NotCpt { field, now });
        }
    }
    if let Some(patient) = case.patient.as_mut()
        && let Some(birth) = patient.birth_date.as_deref()
    {
        let year: Option<i32> = birth.get(..4).and_then(|y| y.parse().ok());
        let too_old = year.is_none_or(|y| y < EARLIEST_BIRTH_YEAR);
        // ISO dates compare correctly as text.
        let future = today.is_some_and(|t| birth > t);
        if too_old || future {
            patient.birth_date = None;
            issues.push(FactIssue::ImplausibleBirthDate {
                field: "patient.birth_date".to_owned(),
            });
        }
    }
    issues
}

/// Removes from `case` every fact a writer must not send: provider NPIs that
/// fail [`npi_is_valid`]. Returns how many were removed. Writers call this on
/// their copy of the case, so an invalid NPI is never written whatever path
/// the case took to them.
pub fn strip_unsendable(case: &mut Case) -> usize {
    let mut removed = 0;
    for p in &mut case.providers {
        if p.npi.as_deref().is_some_and(|n| !npi_is_valid(n)) {
            p.npi = None;
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_luhn() {
        // CMS's published example: 123456789 → check digit 3.
        assert!(npi_is_valid("1234567893"));
        assert_eq!(npi_check_digit("123456789"), Some('3'));
        assert!(!npi_is_valid("1234567890"));
        assert!(!npi_is_valid("3850"));
        assert!(!npi_is_valid("ShephardJ"));
        assert!(!npi_is_valid("12345678931"));
        assert!(!npi_is_valid(" 234567893"));
        assert!(!npi_is_valid("１234567893"));
    }

    #[test]
    fn shapes() {
        assert!(has_cpt_shape("78452") && has_cpt_shape("0001F") && has_cpt_shape("0042T"));
        assert!(!has_cpt_shape("4241") && !has_cpt_shape("MRS") && !has_cpt_shape("J1234"));
        assert!(has_hcpcs_shape("J1234") && !has_hcpcs_shape("D0120"));
        assert!(has_cdt_shape("D0120"));
        assert_eq!(procedure_shape("E0601"), Some(CodeSystem::Hcpcs));
        assert_eq!(procedure_shape("24725-4"), None);
        assert!(has_icd9_shape("428.0") && has_icd9_shape("V72.84") && has_icd9_shape("E880.9"));
        assert!(!has_icd9_shape("I50.9"));
        assert!(
            has_icd10_shape("I50.9") && has_icd10_shape("S72001A") && !has_icd10_shape("428.0")
        );
    }
}
