#![cfg(feature = "transports")]
//! CAQH CORE real-time SOAP: our client and our server talk over loopback
//! HTTPS with a freshly generated (rcgen) certificate.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::pipeline::MappingPipeline;
use gateway_core::adapter::BoxFuture;
use gateway_x12::ack::AckIdentity;
use gateway_x12::config::{PartnerConfig, ProcessingMode};
use gateway_x12::soap::client::{CoreClient, CoreReply, SoapClientError};
use gateway_x12::soap::server::{Responder, SoapServerState, serve};
use gateway_x12::write::MemoryControlNumbers;

/// A payer double: answers REQ-0001 with the approved sample response.
struct Payer;

impl Responder for Payer {
    fn respond<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let text = String::from_utf8_lossy(request);
            text.contains("BHT*0007*13*REQ-0001*")
                .then(|| common::sample("response-approved.x12"))
        })
    }
}

struct Running {
    url: String,
    ca: tempfile::NamedTempFile,
    pipeline: Arc<MappingPipeline>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(responder: Option<Arc<dyn Responder>>) -> Running {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    let pipeline = Arc::new(MappingPipeline::new());
    let state = Arc::new(SoapServerState {
        pipeline: pipeline.clone(),
        profile: "x12-278".into(),
        identity: AckIdentity {
            qualifier: "ZZ".into(),
            id: "DEMOPAYER".into(),
            newlines: false,
        },
        numbers: Arc::new(MemoryControlNumbers::new()),
        core_rule_version: "2.2.0".into(),
        responder,
        auth: Default::default(),
        audit: None,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = serve(
        "127.0.0.1:0",
        cert_pem.as_bytes(),
        key_pem.as_bytes(),
        "/core/realtime",
        1 << 20,
        state,
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .expect("server starts");
    let ca = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(ca.path(), cert_pem).expect("write ca");
    Running {
        url: format!(
            "https://localhost:{}/core/realtime",
            server.local_addr.port()
        ),
        ca,
        pipeline,
        stop: Some(stop),
    }
}

fn partner(r: &Running, version: &str) -> PartnerConfig {
    PartnerConfig {
        name: "demo-payer".into(),
        endpoint: r.url.clone(),
        sender_id: "CARDIONORTH".into(),
        receiver_id: "DEMOPAYER".into(),
        isa_receiver_id: None,
        isa_receiver_qualifier: "ZZ".into(),
        core_rule_version: version.into(),
        processing_mode: ProcessingMode::default(),
        request_payload_type: gateway_x12::soap::PAYLOAD_278_REQUEST.into(),
        ca_file: Some(r.ca.path().to_owned()),
        ca_only: true,
        client_identity: None,
        timeout_ms: 10_000,
    }
}

#[tokio::test]
async fn client_gets_the_278_response_over_https() {
    let server = start(Some(Arc::new(Payer))).await;
    let client = CoreClient::new(partner(&server, "2.2.0")).expect("client");
    let exchange = client
        .send(&common::sample("request.x12"))
        .await
        .expect("exchange");
    assert_eq!(
        exchange.envelope.payload_type,
        "X12_278_Response_005010X217E1_2"
    );
    assert_eq!(exchange.envelope.error_code.as_deref(), Some("Success"));
    assert_eq!(exchange.envelope.sender_id, "DEMOPAYER");
    assert_eq!(exchange.envelope.receiver_id, "CARDIONORTH");
    assert_ne!(exchange.envelope.payload_id, exchange.payload_id);
    let CoreReply::Response278(raw) = exchange.reply else {
        panic!("expected a 278")
    };
    assert_eq!(raw, common::sample("response-approved.x12"));
    let parsed = gateway_x12::parse_interchange(&raw).expect("parses");
    assert_eq!(
        parsed.sets[0].decision.as_ref().map(|d| d.status.as_str()),
        Some("approved")
    );
    // The request went through the pipeline before the answer.
    let committed = server.pipeline.committed();
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].status.as_deref(), Some("requested"));
    assert_eq!(committed[0].raw, common::sample("request.x12"));
}

#[tokio::test]
async fn without_a_278_the_answer_is_a_999_and_bad_x12_is_rejected() {
    let server = start(None).await;
    let client = CoreClient::new(partner(&server, "v2.2.0")).expect("client");
    let exchange = client
        .send(&common::sample("request.x12"))
        .await
        .expect("exchange");
    assert_eq!(
        exchange.envelope.payload_type,
        "X12_999_Response_005010X231A1"
    );
    let CoreReply::Acknowledgment { acks, .. } = exchange.reply else {
        panic!("expected a 999")
    };
    assert_eq!(acks.functional[0].status, "A");

    let bad = String::from_utf8(common::sample("request.x12"))
        .expect("ascii")
        .replace("HL*3*2*22*1~", "HL*3*9*22*1~");
    let exchange = client.send(bad.as_bytes()).await.expect("exchange");
    let CoreReply::Acknowledgment { acks, .. } = exchange.reply else {
        panic!("expected a 999")
    };
    let g = &acks.functional[0];
    assert_eq!(g.status, "R");
    assert_eq!(
        g.sets[0].segments[0].elements[0].reference.as_deref(),
        Some("734")
    );
    // Kept: the rejected request was still committed with its raw bytes.
    assert_eq!(
        server.pipeline.committed().last().map(|c| c.raw.clone()),
        Some(bad.into_bytes())
    );

    let exchange = client
        .send(&common::sample("request.x12")[..80])
        .await
        .expect("exchange");
    assert_eq!(
        exchange.envelope.payload_type,
        "X12_TA1_Response_00501X231A1"
    );
    let CoreReply::Acknowledgment { acks, .. } = exchange.reply else {
        panic!("expected a TA1")
    };
    assert_eq!(acks.ta1[0].note_code, "023");
}

#[tokio::test]
async fn the_partners_processing_mode_is_what_the_envelope_carries() {
    let server = start(Some(Arc::new(Payer))).await;
    let mut batch = partner(&server, "2.2.0");
    assert_eq!(
        batch.processing_mode,
        ProcessingMode::RealTime,
        "the default"
    );
    batch.processing_mode = ProcessingMode::Batch;
    let client = CoreClient::new(batch).expect("client");
    // Our server answers real time only, so a Batch envelope is refused with
    // the CORE error for exactly that element.
    match client.send(&common::sample("request.x12")).await {
        Err(SoapClientError::Envelope { code, .. }) => assert_eq!(code, "ProcessingModeIllegal"),
        other => panic!("{other:?}"),
    }
    assert!(server.pipeline.committed().is_empty());
}

#[tokio::test]
async fn envelope_errors_and_unavailable_store() {
    let server = start(None).await;
    let client = CoreClient::new(partner(&server, "3.0.0")).expect("client");
    match client.send(&common::sample("request.x12")).await {
        Err(SoapClientError::Envelope { code, .. }) => assert_eq!(code, "VersionMismatch"),
        other => panic!("{other:?}"),
    }
    assert!(server.pipeline.committed().is_empty());

    let client = CoreClient::new(partner(&server, "2.2.0")).expect("client");
    server.pipeline.fail.store(true, Ordering::SeqCst);
    match client.send(&common::sample("request.x12")).await {
        Err(e @ SoapClientError::Refused { status: 503, .. }) => assert!(e.retryable()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_uncommitted_request_gets_503_with_retry_after() {
    let server = start(None).await;
    server.pipeline.fail.store(true, Ordering::SeqCst);
    let fields = gateway_x12::soap::envelope::CoreFields {
        payload_type: gateway_x12::soap::PAYLOAD_278_REQUEST.into(),
        processing_mode: "RealTime".into(),
        payload_id: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into(),
        timestamp: "2026-12-01T10:00:00Z".into(),
        sender_id: "CARDIONORTH".into(),
        receiver_id: "DEMOPAYER".into(),
        core_rule_version: "2.2.0".into(),
        payload: String::from_utf8(common::sample("request.x12")).expect("utf-8 sample"),
        error_code: None,
        error_message: None,
    };
    let xml = gateway_x12::soap::envelope::write_request(&fields).expect("envelope");
    let ca = std::fs::read(server.ca.path()).expect("ca");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca pem"))
        .build()
        .expect("client");
    let response = http
        .post(&server.url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/soap+xml; charset=utf-8; action=\"RealTimeTransaction\"",
        )
        .body(xml)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 503);
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "Retry-After: {retry_after:?}"
    );
    assert!(server.pipeline.committed().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let server = start(None).await;
    let mut p = partner(&server, "2.2.0");
    p.ca_file = None;
    let client = CoreClient::new(p).expect("client");
    match client.send(&common::sample("request.x12")).await {
        Err(e @ SoapClientError::Transport { .. }) => assert!(e.retryable()),
        other => panic!("{other:?}"),
    }
}
