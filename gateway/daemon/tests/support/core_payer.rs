//! A loopback payer behind CAQH CORE real-time SOAP, for tests of the
//! outbound 278 request path (`x12_requests`, the PAS end-to-end test).
//!
//! The payer is our real CORE SOAP server (HTTPS, CORE envelope, our 999
//! check on what it receives: only a request it accepts reaches the
//! responder) with a responder written for tests: it reads the request and
//! answers a 278 response echoing its BHT03 (our case id), its TRN*1 trace
//! (as TRN*2), payer, requester and patient, with the [`PayerAnswer`]'s
//! `HCR` decision. What it received is kept for the test to inspect.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gateway_core::GatewayError;
use gateway_core::adapter::{
    BoxFuture, CommitReceipt, InboundMessage, IntakeOutcome, IntakePipeline,
};
use gateway_x12::ack::AckIdentity;
use gateway_x12::control::ControlNumberAllocator;
use gateway_x12::soap::server::{BoundServer, Responder, SoapServerState, serve};
use gateway_x12::write::{
    EnvelopeParams, GroupOut, MemoryControlNumbers, Seg, Stamp, write_interchange,
};

/// The payer's ISA/GS id.
pub const PAYER_ID: &str = "DEMOPAYER";
/// The path the payer's CORE endpoint is served under.
pub const CORE_PATH: &str = "/core/realtime";

/// What the payer decides on every request it accepts: `HCR01` (`A1`
/// certified in total, `A3` not certified, `A4` pended, …) and `HCR02`,
/// the authorization number.
#[derive(Debug, Clone)]
pub struct PayerAnswer {
    /// HCR01, the action code.
    pub action: String,
    /// HCR02, the payer's authorization number.
    pub authorization: Option<String>,
}

impl PayerAnswer {
    /// Approved (`HCR*A1*<authorization>`).
    pub fn approved(authorization: &str) -> Self {
        PayerAnswer {
            action: "A1".into(),
            authorization: Some(authorization.into()),
        }
    }
}

/// A pipeline that keeps what our SOAP server's intake hands it (the payer
/// here; the requester's endpoint in `x12_writeback`).
#[derive(Default)]
pub struct Recorder {
    /// The messages received, in order.
    pub received: Mutex<Vec<InboundMessage>>,
}

impl IntakePipeline for Recorder {
    fn submit(
        &self,
        message: InboundMessage,
    ) -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>> {
        Box::pin(async move {
            let mut received = self.received.lock().expect("lock");
            received.push(message);
            Ok(IntakeOutcome::Kept {
                receipt: CommitReceipt {
                    message_id: i64::try_from(received.len()).unwrap_or(0),
                },
                reason: "recorded".into(),
                warnings: Vec::new(),
            })
        })
    }
}

/// The segments of an interchange written with `*` and `~`.
pub fn segments(text: &str) -> Vec<Vec<String>> {
    text.split('~')
        .map(|s| s.trim().split('*').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f.first().is_some_and(|id| !id.is_empty()))
        .collect()
}

fn seg_from(fields: &[String]) -> Seg {
    let mut seg = Seg::new(&fields[0]);
    for f in &fields[1..] {
        seg = if f.contains(':') {
            seg.c(&f.split(':').collect::<Vec<_>>())
        } else {
            seg.e(f.clone())
        };
    }
    seg
}

/// The payer's 278 response to `request`, or `None` when the request lacks
/// what a response must echo.
fn respond(request: &[u8], answer: &PayerAnswer) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(request).ok()?;
    let segs = segments(text);
    let find = |id: &str, first: &str| {
        segs.iter()
            .find(|s| s[0] == id && s.get(1).is_some_and(|v| v == first))
            .cloned()
    };
    let bht03 = find("BHT", "0007")?.get(3)?.clone();
    let trn = find("TRN", "1")?;
    let payer = find("NM1", "X3")?;
    let requester = find("NM1", "1P")?;
    let patient = find("NM1", "IL")?;
    let now = Stamp::now();
    let mut hcr = Seg::new("HCR").e(answer.action.clone());
    if let Some(authorization) = &answer.authorization {
        hcr = hcr.e(authorization.clone());
    }
    let body = vec![
        Seg::new("BHT")
            .e("0007")
            .e("11")
            .e(bht03)
            .e(now.ccyymmdd())
            .e(now.hhmm())
            .e("18"),
        Seg::new("HL").e("1").e("").e("20").e("1"),
        seg_from(&payer),
        Seg::new("HL").e("2").e("1").e("21").e("1"),
        seg_from(&requester),
        Seg::new("HL").e("3").e("2").e("22").e("1"),
        seg_from(&patient),
        Seg::new("HL").e("4").e("3").e("EV").e("0"),
        Seg::new("TRN")
            .e("2")
            .e(trn.get(2)?.clone())
            .e(trn.get(3)?.clone()),
        Seg::new("UM").e("HS").e("I").e("4").c(&["22", "B"]),
        hcr,
    ];
    let envelope = EnvelopeParams {
        sender_id: PAYER_ID.into(),
        application_sender: PAYER_ID.into(),
        receiver_id: "EHRGATEWAY".into(),
        application_receiver: "EHRGATEWAY".into(),
        newlines: false,
        ..EnvelopeParams::default()
    };
    let groups = [GroupOut {
        functional_id: "HI".into(),
        version: "005010X217".into(),
        set_id: "278".into(),
        sets: vec![body],
    }];
    write_interchange(&envelope, &groups, &MemoryControlNumbers::new(), &now)
        .ok()
        .map(|(bytes, _)| bytes)
}

struct Answerer(PayerAnswer);

impl Responder for Answerer {
    fn respond<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { respond(request, &self.0) })
    }
}

/// The payer's TLS identity: a self-signed certificate for `localhost` and
/// `127.0.0.1`, its PEM also written to `cert_file` (the gateway's
/// partner `ca_file`).
pub struct PayerTls {
    /// Certificate PEM.
    pub cert: String,
    /// Private key PEM.
    pub key: String,
    /// Where the certificate was written.
    pub cert_file: PathBuf,
}

impl PayerTls {
    /// A fresh identity, its certificate written into `dir`.
    pub fn new(dir: &Path) -> Self {
        let (cert, key) =
            gateway_x12::soap::tls::self_signed(&["localhost", "127.0.0.1"]).expect("certificate");
        let cert_file = dir.join("payer-cert.pem");
        std::fs::write(&cert_file, &cert).expect("payer certificate");
        PayerTls {
            cert,
            key,
            cert_file,
        }
    }

    /// The gateway's `[[x12.partners]]` entry `name` for the payer on
    /// `port` (the gateway sends as `EHRGATEWAY`, trusts only this
    /// certificate).
    pub fn partner_toml(&self, name: &str, port: u16) -> String {
        format!(
            r#"[[x12.partners]]
name = "{name}"
endpoint = "https://localhost:{port}{CORE_PATH}"
sender_id = "EHRGATEWAY"
receiver_id = "{PAYER_ID}"
isa_receiver_id = "{PAYER_ID}"
ca_file = "{cert}"
ca_only = true
timeout_ms = 5000
"#,
            cert = self.cert_file.display(),
        )
    }
}

/// A running loopback payer.
pub struct CorePayer {
    recorder: Arc<Recorder>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<BoundServer>,
}

impl CorePayer {
    /// Serves the payer on `127.0.0.1:port` (a port the gateway's config
    /// already names, so the payer may come up after the gateway).
    pub async fn start(port: u16, tls: &PayerTls, answer: PayerAnswer) -> Self {
        let recorder = Arc::new(Recorder::default());
        let numbers: Arc<dyn ControlNumberAllocator> = Arc::new(MemoryControlNumbers::new());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = serve(
            &format!("127.0.0.1:{port}"),
            tls.cert.as_bytes(),
            tls.key.as_bytes(),
            CORE_PATH,
            4 * 1024 * 1024,
            Arc::new(SoapServerState {
                pipeline: recorder.clone(),
                profile: "x12-278".into(),
                identity: AckIdentity {
                    id: PAYER_ID.into(),
                    ..AckIdentity::default()
                },
                numbers,
                core_rule_version: "2.2.0".into(),
                responder: Some(Arc::new(Answerer(answer))),
                auth: Default::default(),
                audit: None,
            }),
            async move {
                let _ = rx.await;
            },
        )
        .await
        .expect("payer server");
        CorePayer {
            recorder,
            stop: Some(tx),
            server: Some(server),
        }
    }

    /// Every request the payer took in (accepted or not by its 999 check).
    pub fn received(&self) -> Vec<InboundMessage> {
        self.recorder.received.lock().expect("lock").clone()
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.join().await;
        }
    }
}
