//! X12 acknowledgment error codes and the findings that carry them.
//!
//! Every problem the tokenizer, the envelope checker and the 278 loop builder
//! notice becomes a [`Finding`]: a core [`Diagnostic`] (stable `X0xx` code, words,
//! byte span, readable location) *plus* the acknowledgment level and code it maps
//! to, so that the 999/TA1 generator never has to re-derive why something failed.
//!
//! Code lists (X12 005010): TA1 note codes (TA105, element I18), 999 IK304
//! (segment syntax error, element 620), IK403 (element syntax error, element 621),
//! IK502 (transaction set syntax error, element 718) and AK905 (functional group
//! syntax error, element 716). Only the codes this crate emits have constants.

use gateway_core::{Diagnostic, Severity, Span};

/// TA105 interchange note codes.
pub mod ta1 {
    /// Control number in header and trailer do not match.
    pub const CONTROL_MISMATCH: &str = "001";
    /// Standard as noted in the control standards identifier is not supported.
    pub const STANDARD_NOT_SUPPORTED: &str = "002";
    /// Invalid segment terminator.
    pub const BAD_SEGMENT_TERMINATOR: &str = "004";
    /// Invalid interchange sender id.
    pub const BAD_SENDER_ID: &str = "006";
    /// Invalid interchange receiver id.
    pub const BAD_RECEIVER_ID: &str = "008";
    /// Invalid interchange date value.
    pub const BAD_DATE: &str = "014";
    /// Invalid interchange time value.
    pub const BAD_TIME: &str = "015";
    /// Invalid interchange version id value.
    pub const BAD_VERSION: &str = "017";
    /// Invalid interchange control number value.
    pub const BAD_CONTROL_NUMBER: &str = "018";
    /// Invalid acknowledgment requested value.
    pub const BAD_ACK_REQUESTED: &str = "019";
    /// Invalid test indicator value.
    pub const BAD_TEST_INDICATOR: &str = "020";
    /// Invalid number of included groups value.
    pub const BAD_GROUP_COUNT: &str = "021";
    /// Invalid control structure.
    pub const BAD_CONTROL_STRUCTURE: &str = "022";
    /// Improper (premature) end of file.
    pub const PREMATURE_EOF: &str = "023";
    /// Invalid interchange content (e.g. an invalid GS segment).
    pub const BAD_CONTENT: &str = "024";
    /// Invalid data element separator.
    pub const BAD_ELEMENT_SEPARATOR: &str = "026";
    /// Invalid component element separator.
    pub const BAD_COMPONENT_SEPARATOR: &str = "027";
}

/// AK905 functional group syntax error codes.
pub mod ak9 {
    /// Functional group version not supported.
    pub const VERSION_NOT_SUPPORTED: &str = "2";
    /// Functional group trailer missing.
    pub const TRAILER_MISSING: &str = "3";
    /// Group control number in the header and trailer do not agree.
    pub const CONTROL_MISMATCH: &str = "4";
    /// Number of included transaction sets does not match actual count.
    pub const COUNT_MISMATCH: &str = "5";
    /// Group control number violates syntax.
    pub const BAD_CONTROL_NUMBER: &str = "6";
}

/// IK502 transaction set syntax error codes.
pub mod ik5 {
    /// Transaction set not supported.
    pub const NOT_SUPPORTED: &str = "1";
    /// Transaction set trailer missing.
    pub const TRAILER_MISSING: &str = "2";
    /// Transaction set control number in header and trailer do not match.
    pub const CONTROL_MISMATCH: &str = "3";
    /// Number of included segments does not match actual count.
    pub const COUNT_MISMATCH: &str = "4";
    /// One or more segments in error.
    pub const SEGMENTS_IN_ERROR: &str = "5";
    /// Missing or invalid transaction set identifier.
    pub const BAD_SET_ID: &str = "6";
    /// Missing or invalid transaction set control number.
    pub const BAD_CONTROL_NUMBER: &str = "7";
    /// Transaction set control number not unique within the functional group.
    pub const CONTROL_NOT_UNIQUE: &str = "23";
    /// Implementation convention not supported.
    pub const IMPL_NOT_SUPPORTED: &str = "I6";
}

/// IK304 segment syntax error codes.
pub mod ik3 {
    /// Unrecognized segment id.
    pub const UNRECOGNIZED: &str = "1";
    /// Unexpected segment.
    pub const UNEXPECTED: &str = "2";
    /// Required segment missing.
    pub const REQUIRED_MISSING: &str = "3";
    /// Segment not in defined transaction set.
    pub const NOT_IN_SET: &str = "6";
    /// Segment not in proper sequence.
    pub const OUT_OF_SEQUENCE: &str = "7";
    /// Segment has data element errors.
    pub const ELEMENT_ERRORS: &str = "8";
}

/// IK403 data element syntax error codes.
pub mod ik4 {
    /// Mandatory data element missing.
    pub const REQUIRED_MISSING: &str = "1";
    /// Conditional required data element missing (the partner of a pair).
    pub const CONDITIONAL_MISSING: &str = "2";
    /// Too many data elements.
    pub const TOO_MANY_ELEMENTS: &str = "3";
    /// Data element too long.
    pub const TOO_LONG: &str = "5";
    /// Invalid character in data element.
    pub const BAD_CHARACTER: &str = "6";
    /// Invalid code value.
    pub const BAD_CODE: &str = "7";
    /// Invalid date.
    pub const BAD_DATE: &str = "8";
}

/// Where a finding sits in the envelope, and the acknowledgment code it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckCode {
    /// An interchange (ISA/IEA) problem: answered with a TA1 carrying this note code.
    Interchange {
        /// TA105 note code.
        note: &'static str,
    },
    /// A functional group problem: AK905 in the 999.
    Group {
        /// Index of the group in the interchange (0-based).
        group: usize,
        /// AK905 code.
        code: &'static str,
    },
    /// A transaction set problem: IK502 in the 999.
    Transaction {
        /// Index of the group (0-based).
        group: usize,
        /// Index of the transaction inside its group (0-based).
        set: usize,
        /// IK502 code.
        code: &'static str,
    },
    /// A segment or element problem: IK3 (and IK4 when `element` is set).
    Segment {
        /// Index of the group (0-based).
        group: usize,
        /// Index of the transaction inside its group (0-based).
        set: usize,
        /// IK301 segment id.
        segment_id: String,
        /// IK302 position of the segment in the set, ST = 1.
        position: usize,
        /// IK303 loop id, when known.
        loop_id: Option<String>,
        /// IK304 code.
        code: &'static str,
        /// The element-level detail (IK4), if the problem is in one element.
        element: Option<ElementError>,
    },
}

/// The IK4 part of a segment finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementError {
    /// IK401-1 element position in the segment (1-based).
    pub position: usize,
    /// IK401-2 component position, for composites.
    pub component: Option<usize>,
    /// IK402 data element reference number, when known.
    pub reference: Option<u32>,
    /// IK403 code.
    pub code: &'static str,
    /// IK404 copy of the bad value: only ever set for code values, never for
    /// names, ids or dates, so acknowledgments carry no patient data.
    pub bad_value: Option<String>,
}

/// One problem found in X12 input: a diagnostic plus its acknowledgment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What a human (and the store) sees.
    pub diagnostic: Diagnostic,
    /// What the 999/TA1 generator emits for it.
    pub ack: AckCode,
}

impl Finding {
    /// An error finding.
    pub fn error(code: &str, message: impl Into<String>, span: Option<Span>, ack: AckCode) -> Self {
        let mut diagnostic = Diagnostic::error(code, message);
        diagnostic.span = span;
        Finding { diagnostic, ack }.located()
    }

    /// A warning finding (acknowledged as accepted-with-errors where it lands in a set).
    pub fn warning(
        code: &str,
        message: impl Into<String>,
        span: Option<Span>,
        ack: AckCode,
    ) -> Self {
        let mut diagnostic = Diagnostic::warning(code, message);
        diagnostic.span = span;
        Finding { diagnostic, ack }.located()
    }

    /// True for error severity.
    pub fn is_error(&self) -> bool {
        self.diagnostic.severity == Severity::Error
    }

    /// Fills the diagnostic's readable location and appends the ack code to the
    /// message (`… [999 IK403=7]`), so a diagnostic alone says how it is answered.
    fn located(mut self) -> Self {
        let (location, suffix) = match &self.ack {
            AckCode::Interchange { note } => ("ISA".to_owned(), format!("TA1 TA105={note}")),
            AckCode::Group { code, .. } => ("GS".to_owned(), format!("999 AK905={code}")),
            AckCode::Transaction { code, .. } => ("ST".to_owned(), format!("999 IK502={code}")),
            AckCode::Segment {
                segment_id,
                loop_id,
                code,
                element,
                ..
            } => {
                let mut loc = match loop_id {
                    Some(l) => format!("{l}/{segment_id}"),
                    None => segment_id.clone(),
                };
                let suffix = match element {
                    Some(e) => {
                        loc.push_str(&format!("-{:02}", e.position));
                        if let Some(c) = e.component {
                            loc.push_str(&format!("-{c}"));
                        }
                        format!("999 IK304={code} IK403={}", e.code)
                    }
                    None => format!("999 IK304={code}"),
                };
                (loc, suffix)
            }
        };
        if self.diagnostic.location.is_none() {
            self.diagnostic.location = Some(location);
        }
        self.diagnostic.message = format!("{} [{suffix}]", self.diagnostic.message);
        self
    }
}
