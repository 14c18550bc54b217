//! Child process for the kill -9 test (`tests/kill9.rs`).
//!
//! `store-crash-child STORE_FILE WRITERS` appends synthetic accepted messages
//! from `WRITERS` concurrent tasks forever and prints one line per receipt,
//! **after** the commit returned: `ACK <message_id> <event_id> <control_id>`.
//! The parent kills it with SIGKILL at a random moment and checks that every
//! printed receipt is in the reopened store exactly once.

use std::io::Write;

use gateway_core::Case;
use gateway_core::case::CaseSource;
use gateway_store::{Disposition, InboundOutcome, NewInbound, Store, StoreOptions};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(writers)) = (args.get(1), args.get(2).and_then(|w| w.parse().ok()))
    else {
        eprintln!("usage: store-crash-child STORE_FILE WRITERS");
        return std::process::ExitCode::from(2);
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(run(path.clone(), writers))
}

async fn run(path: String, writers: u32) -> std::process::ExitCode {
    let store = match Store::open(&path, StoreOptions::default()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("open: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let pid = std::process::id();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let control = format!("P{pid}-W{w}-{i}");
                let source = CaseSource {
                    adapter: "hl7v2".to_owned(),
                    profile: "epic".to_owned(),
                    message_type: Some("ORM^O01".to_owned()),
                    control_id: Some(control.clone()),
                    sender: Some("CRASH^TEST".to_owned()),
                    received_at: "2026-11-22T10:00:00Z".to_owned(),
                };
                // A handful of cases per writer, so events share cases.
                let key = format!("crash:{pid}:{w}:{}", i % 4);
                let case = Case::new(
                    gateway_core::ids::case_id("mso-demo", &key),
                    "mso-demo",
                    source,
                );
                let message = NewInbound {
                    adapter: "hl7v2".to_owned(),
                    profile: "epic".to_owned(),
                    sender: Some("CRASH^TEST".to_owned()),
                    control_id: Some(control.clone()),
                    message_type: Some("ORM^O01".to_owned()),
                    raw: format!("MSH|^~\\&|CRASH|TEST|||||ORM^O01|{control}|P|2.5").into_bytes(),
                    received_at: "2026-11-22T10:00:00Z".to_owned(),
                    peer: None,
                    outcome: InboundOutcome::Accepted {
                        case: Box::new(case),
                        event_type: None,
                    },
                    replay_of: None,
                };
                match store.commit_inbound(message).await {
                    Ok(receipt) => {
                        let event = match receipt.disposition {
                            Disposition::Accepted { event_id, .. } => event_id,
                            other => format!("unexpected:{other:?}"),
                        };
                        let line =
                            format!("ACK {} {event} {control}\n", receipt.receipt.message_id);
                        let mut out = std::io::stdout().lock();
                        if out
                            .write_all(line.as_bytes())
                            .and_then(|()| out.flush())
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        eprintln!("commit: {e}");
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    std::process::ExitCode::FAILURE
}
