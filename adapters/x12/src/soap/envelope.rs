//! The CORE real-time SOAP envelope, written with prefixed names and read by
//! local name (quick-xml ignores namespaces on input, so `soap:`, `soapenv:`,
//! `s:` or no prefix all parse; research notes crates.md §4).
//!
//! Output is SOAP 1.2 (`http://www.w3.org/2003/05/soap-envelope`) with the
//! CORE body element in the CORE Rule 2.2.0 namespace; the field elements are
//! unqualified. The X12 payload is text (XML-escaped, not CDATA).

use serde::{Deserialize, Serialize};

/// SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// CORE Rule 2.2.0 namespace.
pub const CORE_NS: &str = "http://www.caqh.org/SOAP/WSDL/CORERule2.2.0.xsd";

/// The fields of a real-time request or response body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreFields {
    /// `X12_278_Request_005010X217E1_2`, `X12_999_Response_005010X231A1`, …
    #[serde(rename = "PayloadType", default)]
    pub payload_type: String,
    /// `RealTime`, or the partner's `processing_mode` in what the client sends.
    #[serde(rename = "ProcessingMode", default)]
    pub processing_mode: String,
    /// A UUID chosen by the sender of this envelope.
    #[serde(rename = "PayloadID", default)]
    pub payload_id: String,
    /// xsd:dateTime (UTC, `Z`).
    #[serde(rename = "TimeStamp", default)]
    pub timestamp: String,
    /// The sender's CORE id.
    #[serde(rename = "SenderID", default)]
    pub sender_id: String,
    /// The receiver's CORE id.
    #[serde(rename = "ReceiverID", default)]
    pub receiver_id: String,
    /// CORE rule version (per partner: `2.2.0` or `v2.2.0` are both seen).
    #[serde(rename = "CORERuleVersion", default)]
    pub core_rule_version: String,
    /// The X12 interchange.
    #[serde(rename = "Payload", default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
    /// Response only: `Success` or an envelope error code.
    #[serde(rename = "ErrorCode", default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Response only: words for the error code.
    #[serde(
        rename = "ErrorMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename = "soapenv:Envelope")]
struct EnvelopeOut<'a> {
    #[serde(rename = "@xmlns:soapenv")]
    soap_ns: &'a str,
    #[serde(rename = "@xmlns:cor")]
    core_ns: &'a str,
    #[serde(rename = "soapenv:Header")]
    header: (),
    #[serde(rename = "soapenv:Body")]
    body: BodyWrapOut<'a>,
}

#[derive(Serialize)]
struct BodyWrapOut<'a> {
    #[serde(rename = "$value")]
    content: BodyOut<'a>,
}

#[derive(Serialize)]
enum BodyOut<'a> {
    #[serde(rename = "cor:COREEnvelopeRealTimeRequest")]
    Request(&'a CoreFields),
    #[serde(rename = "cor:COREEnvelopeRealTimeResponse")]
    Response(&'a CoreFields),
    #[serde(rename = "soapenv:Fault")]
    Fault(FaultOut<'a>),
}

#[derive(Serialize)]
struct FaultOut<'a> {
    #[serde(rename = "soapenv:Code")]
    code: FaultCodeOut<'a>,
    #[serde(rename = "soapenv:Reason")]
    reason: FaultReasonOut<'a>,
}

#[derive(Serialize)]
struct FaultCodeOut<'a> {
    #[serde(rename = "soapenv:Value")]
    value: &'a str,
    #[serde(rename = "soapenv:Subcode", skip_serializing_if = "Option::is_none")]
    subcode: Option<FaultSubcodeOut<'a>>,
}

#[derive(Serialize)]
struct FaultSubcodeOut<'a> {
    #[serde(rename = "soapenv:Value")]
    value: &'a str,
}

#[derive(Serialize)]
struct FaultReasonOut<'a> {
    #[serde(rename = "soapenv:Text")]
    text: FaultTextOut<'a>,
}

#[derive(Serialize)]
struct FaultTextOut<'a> {
    #[serde(rename = "@xml:lang")]
    lang: &'a str,
    #[serde(rename = "$text")]
    text: &'a str,
}

/// What a parsed envelope body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `COREEnvelopeRealTimeRequest`.
    Request(CoreFields),
    /// `COREEnvelopeRealTimeResponse`.
    Response(CoreFields),
    /// A SOAP fault: code value and reason text.
    Fault {
        /// `soapenv:Sender`, `soapenv:Receiver`, …
        code: String,
        /// The reason text.
        reason: String,
    },
}

#[derive(Deserialize)]
struct EnvelopeIn {
    #[serde(rename = "Header", default)]
    header: Option<HeaderIn>,
    #[serde(rename = "Body")]
    body: BodyIn,
}

/// The SOAP header: only the WS-Security UsernameToken is read.
#[derive(Deserialize, Default)]
struct HeaderIn {
    #[serde(rename = "Security", default)]
    security: Option<SecurityIn>,
}

#[derive(Deserialize, Default)]
struct SecurityIn {
    #[serde(rename = "UsernameToken", default)]
    token: Option<UsernameTokenIn>,
}

#[derive(Deserialize, Default)]
struct UsernameTokenIn {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Password", default)]
    password: PasswordIn,
}

#[derive(Deserialize, Default)]
struct PasswordIn {
    #[serde(rename = "@Type", default)]
    kind: String,
    #[serde(rename = "$text", default)]
    text: String,
}

#[derive(Deserialize)]
struct BodyIn {
    #[serde(rename = "$value")]
    content: BodyContentIn,
}

#[derive(Deserialize)]
enum BodyContentIn {
    #[serde(rename = "COREEnvelopeRealTimeRequest")]
    Request(CoreFields),
    #[serde(rename = "COREEnvelopeRealTimeResponse")]
    Response(CoreFields),
    Fault(FaultIn),
}

#[derive(Deserialize, Default)]
struct FaultIn {
    #[serde(rename = "Code", default)]
    code: FaultCodeIn,
    #[serde(rename = "Reason", default)]
    reason: FaultReasonIn,
}

#[derive(Deserialize, Default)]
struct FaultCodeIn {
    #[serde(rename = "Value", default)]
    value: String,
}

#[derive(Deserialize, Default)]
struct FaultReasonIn {
    #[serde(rename = "Text", default)]
    text: String,
}

/// Why an envelope could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a SOAP envelope we understand (the message names no payload data).
    #[error("not a CORE SOAP envelope: {0}")]
    Read(String),
    /// Serialization failed.
    #[error("cannot write the SOAP envelope: {0}")]
    Write(String),
}

fn write(body: BodyOut<'_>) -> Result<String, EnvelopeError> {
    let env = EnvelopeOut {
        soap_ns: SOAP12_NS,
        core_ns: CORE_NS,
        header: (),
        body: BodyWrapOut { content: body },
    };
    let xml = quick_xml::se::to_string(&env).map_err(|e| EnvelopeError::Write(e.to_string()))?;
    Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{xml}"))
}

/// A request envelope.
pub fn write_request(fields: &CoreFields) -> Result<String, EnvelopeError> {
    write(BodyOut::Request(fields))
}

/// A response envelope.
pub fn write_response(fields: &CoreFields) -> Result<String, EnvelopeError> {
    write(BodyOut::Response(fields))
}

/// A SOAP 1.2 fault (`code` is `Sender` or `Receiver`).
pub fn write_fault(code: &str, reason: &str) -> Result<String, EnvelopeError> {
    write_fault_with(code, None, reason)
}

/// A SOAP 1.2 fault whose `Subcode` carries a CORE envelope error code
/// (`cor:UnAuthorized`).
pub fn write_core_fault(
    code: &str,
    core_code: &str,
    reason: &str,
) -> Result<String, EnvelopeError> {
    write_fault_with(code, Some(&format!("cor:{core_code}")), reason)
}

fn write_fault_with(
    code: &str,
    subcode: Option<&str>,
    reason: &str,
) -> Result<String, EnvelopeError> {
    let value = format!("soapenv:{code}");
    write(BodyOut::Fault(FaultOut {
        code: FaultCodeOut {
            value: &value,
            subcode: subcode.map(|value| FaultSubcodeOut { value }),
        },
        reason: FaultReasonOut {
            text: FaultTextOut {
                lang: "en",
                text: reason,
            },
        },
    }))
}

/// Reads an envelope.
pub fn read(xml: &str) -> Result<Body, EnvelopeError> {
    read_with_token(xml).map(|(body, _)| body)
}

/// Reads an envelope and the WS-Security UsernameToken of its header, if it
/// carries one (`wsse:Security/wsse:UsernameToken`, read by local name).
pub fn read_with_token(
    xml: &str,
) -> Result<(Body, Option<super::auth::UsernameToken>), EnvelopeError> {
    let env: EnvelopeIn = quick_xml::de::from_str(xml).map_err(|e| {
        // quick-xml errors name elements and positions, never text content.
        EnvelopeError::Read(e.to_string())
    })?;
    let token = env
        .header
        .and_then(|h| h.security)
        .and_then(|s| s.token)
        .map(|t| super::auth::UsernameToken {
            username: t.username.trim().to_owned(),
            password: t.password.text,
            password_type: t.password.kind.trim().to_owned(),
        });
    let body = match env.body.content {
        BodyContentIn::Request(f) => Body::Request(f),
        BodyContentIn::Response(f) => Body::Response(f),
        BodyContentIn::Fault(f) => Body::Fault {
            code: f.code.value,
            reason: f.reason.text,
        },
    };
    Ok((body, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_ws_security_username_token_from_the_header() {
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://www.w3.org/2003/05/soap-envelope"
            xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
            <soapenv:Header><wsse:Security soapenv:mustUnderstand="true"><wsse:UsernameToken>
            <wsse:Username>payer-a</wsse:Username>
            <wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">s3cret &amp; more</wsse:Password>
            </wsse:UsernameToken></wsse:Security></soapenv:Header>
            <soapenv:Body><cor:COREEnvelopeRealTimeRequest xmlns:cor="x"><PayloadType>P</PayloadType>
            <SenderID>A</SenderID></cor:COREEnvelopeRealTimeRequest></soapenv:Body></soapenv:Envelope>"#;
        let (body, token) = read_with_token(xml).expect("reads");
        assert!(matches!(body, Body::Request(f) if f.sender_id == "A"));
        let token = token.expect("a token");
        assert_eq!(token.username, "payer-a");
        assert_eq!(token.password, "s3cret & more");
        assert_eq!(token.password_type, super::super::auth::PASSWORD_TEXT);
        let (_, none) = read_with_token(&write_request(&fields()).expect("writes")).expect("reads");
        assert!(none.is_none());
    }

    fn fields() -> CoreFields {
        CoreFields {
            payload_type: "X12_278_Request_005010X217E1_2".into(),
            processing_mode: "RealTime".into(),
            payload_id: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into(),
            timestamp: "2026-11-23T09:00:00Z".into(),
            sender_id: "CARDIONORTH".into(),
            receiver_id: "DEMOPAYER".into(),
            core_rule_version: "2.2.0".into(),
            payload: "ISA*00*<&>~".into(),
            error_code: None,
            error_message: None,
        }
    }

    #[test]
    fn request_round_trips_and_escapes() {
        let xml = write_request(&fields()).expect("writes");
        assert!(xml.contains("<cor:COREEnvelopeRealTimeRequest>"), "{xml}");
        assert!(xml.contains("ISA*00*&lt;&amp;&gt;~"), "{xml}");
        assert_eq!(read(&xml).expect("reads"), Body::Request(fields()));
    }

    #[test]
    fn reads_other_prefixes_cdata_and_faults() {
        let xml = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
            <c:COREEnvelopeRealTimeResponse xmlns:c="x"><PayloadType>P</PayloadType><ProcessingMode>RealTime</ProcessingMode>
            <PayloadID>1</PayloadID><TimeStamp>t</TimeStamp><SenderID>a</SenderID><ReceiverID>b</ReceiverID>
            <CORERuleVersion>v2.2.0</CORERuleVersion><Payload><![CDATA[ISA*<x>~]]></Payload><ErrorCode>Success</ErrorCode>
            </c:COREEnvelopeRealTimeResponse></s:Body></s:Envelope>"#;
        match read(xml).expect("reads") {
            Body::Response(f) => {
                assert_eq!(f.payload, "ISA*<x>~");
                assert_eq!(f.core_rule_version, "v2.2.0");
                assert_eq!(f.error_code.as_deref(), Some("Success"));
            }
            other => panic!("{other:?}"),
        }
        let fault = write_fault("Sender", "bad envelope").expect("writes");
        assert_eq!(
            read(&fault).expect("reads"),
            Body::Fault {
                code: "soapenv:Sender".into(),
                reason: "bad envelope".into()
            }
        );
        let core = write_core_fault("Sender", "UnAuthorized", "no certificate").expect("writes");
        assert!(
            core.contains(
                "<soapenv:Subcode><soapenv:Value>cor:UnAuthorized</soapenv:Value></soapenv:Subcode>"
            ),
            "{core}"
        );
        assert!(read("<oops>").is_err());
        assert!(read("").is_err());
    }
}
