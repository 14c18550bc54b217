//! A scripted MLLP receiver (a stand-in for an EHR's interface engine) that
//! answers each frame as a test function says: a given ACK, raw bytes, silence
//! or a closed connection. Counts connections and frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub enum Action {
    /// Answer with this ACK payload (framed).
    Ack(String),
    /// Write these bytes as they are.
    Raw(Vec<u8>),
    /// Write each chunk after its delay in milliseconds.
    Timed(Vec<(u64, Vec<u8>)>),
    /// Say nothing.
    Silent,
    /// Close the connection without answering.
    Close,
}

pub type Script = fn(connection: usize, frame: usize, control_id: &str) -> Action;

pub struct ScriptedReceiver {
    pub addr: String,
    pub connections: Arc<AtomicUsize>,
    pub frames: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn framed(payload: &str) -> Vec<u8> {
    let mut out = vec![0x0B];
    out.extend_from_slice(payload.as_bytes());
    out.extend_from_slice(&[0x1C, 0x0D]);
    out
}

pub fn ack(code: &str, id: &str) -> String {
    format!("MSH|^~\\&|EHR|FAC|GW|MSO|20260101||ACK^O01^ACK|A-{id}|P|2.5.1\rMSA|{code}|{id}\r")
}

impl ScriptedReceiver {
    pub async fn start(script: Script) -> ScriptedReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(listener, script)
    }

    pub fn start_on(listener: TcpListener, script: Script) -> ScriptedReceiver {
        let addr = listener.local_addr().expect("addr").to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let frames = Arc::new(AtomicUsize::new(0));
        let (c, f) = (connections.clone(), frames.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let conn = c.fetch_add(1, Ordering::SeqCst);
                let f = f.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let mut n_frame = 0;
                    loop {
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(2).position(|w| w == [0x1C, 0x0D]) {
                            let frame: Vec<u8> = buf.drain(..end + 2).collect();
                            f.fetch_add(1, Ordering::SeqCst);
                            let text =
                                String::from_utf8_lossy(&frame[1..frame.len() - 2]).to_string();
                            let id = text.split('|').nth(9).unwrap_or("").to_string();
                            let action = script(conn, n_frame, &id);
                            n_frame += 1;
                            match action {
                                Action::Ack(a) => {
                                    let mut out = vec![0x0B];
                                    out.extend_from_slice(a.as_bytes());
                                    out.extend_from_slice(&[0x1C, 0x0D]);
                                    let _ = s.write_all(&out).await;
                                }
                                Action::Raw(bytes) => {
                                    let _ = s.write_all(&bytes).await;
                                }
                                Action::Timed(parts) => {
                                    for (delay, bytes) in parts {
                                        tokio::time::sleep(std::time::Duration::from_millis(delay))
                                            .await;
                                        let _ = s.write_all(&bytes).await;
                                    }
                                }
                                Action::Silent => {}
                                Action::Close => return,
                            }
                        }
                    }
                });
            }
        });
        ScriptedReceiver {
            addr,
            connections,
            frames,
            task,
        }
    }

    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
