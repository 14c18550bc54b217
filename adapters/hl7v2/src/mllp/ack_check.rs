//! Reading and validating the ACK a receiver returns for a message we sent.
//!
//! An outbound message counts as delivered only when exactly one ACK comes
//! back, it is an `ACK` message with an MSA segment, MSA-1 is AA or CA, and
//! MSA-2 equals our MSH-10. Receivers get this wrong in practice:
//! node-hl7-server 2.5 answers the k-th message on a persistent connection
//! with k ACKs, most carrying another message's control id (DESIGN.md), and
//! Google's MLLP adapter never looks at the ACK at all (research notes). So the
//! checks here are strict and each failure names what was wrong.

use crate::ack::{AckParseError, parse_ack};
use crate::parse::header::find_header;

/// MSA-1 acknowledgment codes (original and enhanced mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept.
    CA,
    /// Commit error.
    CE,
    /// Commit reject.
    CR,
}

impl AckCode {
    /// Parses an MSA-1 value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }

    /// The code as written in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    /// AA or CA: the receiver took responsibility for the message.
    pub fn is_accept(self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }

    /// AR or CR: the receiver could not take it now; sending again may work.
    /// (AE/CE say the message itself is wrong: resending cannot help.)
    pub fn is_retryable(self) -> bool {
        matches!(self, AckCode::AR | AckCode::CR)
    }
}

/// What an ACK said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckSummary {
    /// MSA-1.
    pub code: AckCode,
    /// MSA-2: the control id being acknowledged.
    pub control_id: String,
    /// MSA-3 text message, when present.
    pub text: Option<String>,
    /// One line per ERR segment (ERR-8, else ERR-7, else ERR-3, else ERR-1).
    pub errors: Vec<String>,
}

impl AckSummary {
    /// `AA MSG0001` plus text and errors, for one-line output.
    pub fn one_line(&self) -> String {
        let mut s = format!("{} {}", self.code.as_str(), self.control_id);
        if let Some(t) = &self.text {
            s.push_str(" text=");
            s.push_str(t);
        }
        for e in &self.errors {
            s.push_str(" err=");
            s.push_str(e);
        }
        s
    }
}

/// Why an ACK is not acceptable as the answer to our message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The response could not be read as an ACK (not HL7, no MSA, bad MSA-1).
    #[error("{0}")]
    Unreadable(#[from] AckParseError),
    /// MSA-2 is not our MSH-10.
    #[error("MSA-2 {got:?} does not acknowledge our control id {expected:?}")]
    WrongControlId {
        /// Our MSH-10.
        expected: String,
        /// What MSA-2 said.
        got: String,
    },
}

/// The MSH-10 of a message we are about to send (`None` if it has none).
pub fn control_id_of(message: &[u8]) -> Option<String> {
    let h = find_header(message)?;
    let id = h.text(10, 1);
    (!id.is_empty()).then_some(id)
}

/// Reads MSA and ERR from an ACK payload (through the guarded parser, so
/// escapes in the texts are decoded).
pub fn read_ack(payload: &[u8]) -> Result<AckSummary, AckError> {
    let ack = parse_ack(payload)?;
    let code = AckCode::parse(&ack.code).ok_or(AckParseError::BadCode)?;
    let errors = ack
        .errors
        .into_iter()
        .map(|e| {
            [e.user_message, e.diagnostic, e.code, e.location]
                .into_iter()
                .flatten()
                .find(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "(ERR without text)".to_string())
        })
        .collect();
    Ok(AckSummary {
        code,
        control_id: ack.acknowledged_control_id.unwrap_or_default(),
        text: ack.text.filter(|t| !t.trim().is_empty()),
        errors,
    })
}

/// Reads an ACK and checks that it answers `expected_control_id`.
pub fn validate_ack(payload: &[u8], expected_control_id: &str) -> Result<AckSummary, AckError> {
    let ack = read_ack(payload)?;
    if ack.control_id != expected_control_id {
        return Err(AckError::WrongControlId {
            expected: expected_control_id.to_string(),
            got: ack.control_id,
        });
    }
    Ok(ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_accept() {
        let a = validate_ack(
            b"MSH|^~\\&|R|F|S|F|20260101||ACK^O01^ACK|A1|P|2.5.1\rMSA|AA|MSG1\r",
            "MSG1",
        )
        .expect("valid");
        assert_eq!(a.code, AckCode::AA);
        assert!(a.code.is_accept());
        assert_eq!(a.one_line(), "AA MSG1");
    }

    #[test]
    fn reads_errors_and_text() {
        let a = read_ack(
            b"MSH|^~\\&|R|F|S|F|20260101||ACK|A1|P|2.5.1\nMSA|AE|MSG1|bad PID\nERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 is required\n",
        )
        .expect("read");
        assert_eq!(a.code, AckCode::AE);
        assert!(!a.code.is_retryable());
        assert_eq!(a.text.as_deref(), Some("bad PID"));
        assert_eq!(a.errors, vec!["PID-3 is required".to_string()]);
    }

    #[test]
    fn wrong_control_id_is_caught() {
        let err = validate_ack(b"MSH|^~\\&|||||||ACK|ACK|P|2.5\rMSA|AA|OTHER\r", "MSG2")
            .expect_err("mismatch");
        assert_eq!(
            err,
            AckError::WrongControlId {
                expected: "MSG2".into(),
                got: "OTHER".into()
            }
        );
    }

    #[test]
    fn garbage_is_not_an_ack() {
        assert!(matches!(
            read_ack(b"HTTP/1.1 400"),
            Err(AckError::Unreadable(AckParseError::Unparseable(_)))
        ));
        assert_eq!(
            read_ack(b"MSH|^~\\&|||||||ACK|1|P|2.5\r"),
            Err(AckError::Unreadable(AckParseError::NoMsa))
        );
        assert_eq!(
            read_ack(b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA|OK|1\r"),
            Err(AckError::Unreadable(AckParseError::BadCode))
        );
    }

    #[test]
    fn control_id_of_message() {
        assert_eq!(
            control_id_of(b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|C123|P|2.5.1\rPID|1").as_deref(),
            Some("C123")
        );
        assert_eq!(
            control_id_of(b"MSH|^~\\&|A|B|C|D|x||ORM^O01||P|2.5.1"),
            None
        );
    }
}
