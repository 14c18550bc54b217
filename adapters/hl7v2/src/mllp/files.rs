//! Reading HL7 v2 messages from files to send over MLLP (the `send mllp`
//! command and the demo).
//!
//! Files as interface analysts keep them: one message, several concatenated,
//! or an FHS/BHS batch, with CR, LF or CRLF line ends. Message boundaries come
//! from the guarded parser's input splitter ([`crate::parse::parse_input`]);
//! each message is rewritten with CR segment terminators, as MLLP requires.

/// The messages in `raw`, each with CR segment terminators; empty when the
/// input holds no MSH segment.
pub fn split_messages(raw: &[u8]) -> Vec<Vec<u8>> {
    crate::parse::parse_input(raw)
        .messages
        .iter()
        .filter_map(|m| raw.get(m.range.clone()))
        .map(to_cr_segments)
        .collect()
}

/// Rewrites LF and CRLF line ends to CR and ends the last segment with one CR.
pub fn to_cr_segments(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 1);
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                out.push(b'\r');
                i += 1;
            }
            b'\n' => out.push(b'\r'),
            b => out.push(b),
        }
        i += 1;
    }
    while out.last() == Some(&b'\r') {
        out.pop();
    }
    out.push(b'\r');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_become_cr() {
        assert_eq!(
            to_cr_segments(b"MSH|a\r\nPID|1\nPV1|\n\n"),
            b"MSH|a\rPID|1\rPV1|\r"
        );
        assert_eq!(to_cr_segments(b"MSH|a\rPID|1"), b"MSH|a\rPID|1\r");
    }

    #[test]
    fn batches_and_concatenations_split_into_messages() {
        let raw = b"FHS|^~\\&|A\r\nBHS|^~\\&|A\r\nMSH|^~\\&|A|B|C|D|20260101||ORM^O01|1|P|2.5.1\r\nPID|1\r\nMSH|^~\\&|A|B|C|D|20260101||ORM^O01|2|P|2.5.1\nPID|2\nBTS|2\r\nFTS|1\r\n";
        let msgs = split_messages(raw);
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0],
            b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|1|P|2.5.1\rPID|1\r".to_vec()
        );
        assert!(msgs[1].ends_with(b"PID|2\r"));
        assert!(split_messages(b"no hl7 here").is_empty());
    }
}
