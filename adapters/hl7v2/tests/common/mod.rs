//! Shared helpers for the MLLP transport tests: an in-memory intake pipeline
//! that records what it is given (the real pipeline lives above this crate and
//! is exercised end to end by the daemon's tests), a raw MLLP test client and
//! synthetic messages.
#![allow(dead_code, missing_docs)]

pub mod peers;
pub mod pki;
pub mod scripted;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::GatewayError;
use gateway_core::adapter::{
    BoxFuture, CommitReceipt, InboundMessage, IntakeOutcome, IntakePipeline,
};
use gateway_hl7v2::mllp::{ListenerConfig, MllpListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

/// What the recording pipeline does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accept every message (rejects those that did not parse).
    Accept,
    /// Fail as if the disk were broken.
    Fail,
    /// Wait for `release` before returning.
    Block,
}

#[derive(Default)]
pub struct Recorded {
    pub messages: Vec<InboundMessage>,
}

pub struct RecordingPipeline {
    pub recorded: Mutex<Recorded>,
    pub mode: Mutex<Mode>,
    pub release: Notify,
    pub entered: Notify,
}

impl RecordingPipeline {
    pub fn new(mode: Mode) -> Arc<Self> {
        Arc::new(RecordingPipeline {
            recorded: Mutex::new(Recorded::default()),
            mode: Mutex::new(mode),
            release: Notify::new(),
            entered: Notify::new(),
        })
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    pub fn count(&self) -> usize {
        self.recorded.lock().expect("lock").messages.len()
    }

    pub fn control_ids(&self) -> Vec<String> {
        self.recorded
            .lock()
            .expect("lock")
            .messages
            .iter()
            .map(|m| gateway_hl7v2::mllp::ack_check::control_id_of(&m.raw).unwrap_or_default())
            .collect()
    }
}

impl IntakePipeline for RecordingPipeline {
    fn submit(
        &self,
        message: InboundMessage,
    ) -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>> {
        Box::pin(async move {
            let mode = *self.mode.lock().expect("lock");
            if mode == Mode::Block {
                self.entered.notify_one();
                self.release.notified().await;
            }
            if mode == Mode::Fail {
                return Err(GatewayError::internal(true, "disk unavailable"));
            }
            let parsed_ok = message.parsed.is_ok();
            let diagnostics = match &message.parsed {
                Ok(doc) => doc.diagnostics.clone(),
                Err(d) => d.clone(),
            };
            let mut rec = self.recorded.lock().expect("lock");
            rec.messages.push(message);
            let receipt = CommitReceipt {
                message_id: rec.messages.len() as i64,
            };
            Ok(if parsed_ok {
                IntakeOutcome::Accepted {
                    receipt,
                    case_id: format!("case-{}", receipt.message_id),
                    warnings: vec![],
                }
            } else {
                IntakeOutcome::Rejected {
                    receipt,
                    error: GatewayError::sender("message could not be parsed"),
                    diagnostics,
                }
            })
        })
    }
}

/// A listener on 127.0.0.1:0 served in the background; dropping `stop` ends it.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("listener stops")
            .expect("listener task");
    }
}

pub fn config() -> ListenerConfig {
    ListenerConfig::new("127.0.0.1:0".parse().expect("addr"), "epic")
}

pub async fn start(config: ListenerConfig, pipeline: Arc<dyn IntakePipeline>) -> Running {
    let listener = MllpListener::bind(config, pipeline).await.expect("bind");
    let addr = listener.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(listener.serve(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// A synthetic ORM^O01 with control id `id` (no PHI: made-up names and ids).
pub fn orm(id: &str) -> String {
    format!(
        "MSH|^~\\&|EPIC|CARDIO-NORTH|GATEWAY|MSO|20261122100000||ORM^O01|{id}|P|2.5.1\r\
         PID|1||E10001^^^HOSP^MR||TESTPATIENT^ALPHA||19700131|F\r\
         ORC|NW|ORD{id}\r\
         OBR|1|ORD{id}||78452^SPECT MPI^CPT\r"
    )
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 3);
    v.push(0x0B);
    v.extend_from_slice(payload);
    v.extend_from_slice(&[0x1C, 0x0D]);
    v
}

/// Reads one MLLP frame from a raw stream (test-side decoder, deliberately
/// independent of the codec under test).
pub async fn read_frame(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        loop {
            match stream.read(&mut byte).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    buf.push(byte[0]);
                    if buf.ends_with(&[0x1C, 0x0D]) {
                        let start = buf.iter().position(|b| *b == 0x0B)?;
                        return Some(buf[start + 1..buf.len() - 2].to_vec());
                    }
                }
            }
        }
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

/// Sends one framed message and reads the ACK.
pub async fn exchange(stream: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    stream.write_all(&frame(payload)).await.expect("write");
    read_frame(stream, Duration::from_secs(10))
        .await
        .expect("an ACK")
}

/// MSA-1 and MSA-2 of an ACK.
pub fn msa(ack: &[u8]) -> (String, String) {
    let s = String::from_utf8_lossy(ack);
    let line = s
        .split(['\r', '\n'])
        .find(|l| l.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {s:?}"));
    let f: Vec<&str> = line.split('|').collect();
    (
        f.get(1).unwrap_or(&"").to_string(),
        f.get(2).unwrap_or(&"").to_string(),
    )
}

pub fn has_err(ack: &[u8]) -> bool {
    String::from_utf8_lossy(ack)
        .split(['\r', '\n'])
        .any(|l| l.starts_with("ERR|"))
}

/// True when the peer closed the connection (EOF or reset) within `within`.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(within, async {
            loop {
                match stream.read(&mut b).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        })
        .await,
        Ok(true)
    )
}
