//! The `file` sink: CloudEvents as JSON lines in a directory.
//!
//! The embedded default for the demo and small sites. One event per line; a
//! batch of events is appended with one write and fsynced before any of them
//! counts as delivered, into one file
//! per UTC day (`events-YYYY-MM-DD.jsonl`) so files can be rotated by date.
//! A crash between the fsync and the store's bookkeeping re-appends the event on
//! restart: at-least-once, de-duplicated downstream by the event `id`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gateway_core::adapter::BoxFuture;

use gateway_store::OutboxEvent;

use crate::sink::{Sink, SinkResult};
use crate::{ForwardError, Result};

/// Settings of the file sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// Directory the JSONL files go to (created if missing).
    pub dir: PathBuf,
}

/// Appends events to JSONL files.
#[derive(Debug, Clone)]
pub struct FileSink {
    dir: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl FileSink {
    /// Creates the directory if needed.
    pub fn new(config: FileSinkConfig) -> Result<FileSink> {
        std::fs::create_dir_all(&config.dir).map_err(|e| ForwardError::Io {
            context: "creating the file sink directory",
            message: e.to_string(),
        })?;
        Ok(FileSink {
            dir: config.dir,
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// The file events appended now go to.
    pub fn current_file(&self) -> PathBuf {
        let day = jiff::Timestamp::now().strftime("%Y-%m-%d");
        self.dir.join(format!("events-{day}.jsonl"))
    }

    /// Appends `lines` (one event each) with one write and one fsync.
    fn append(&self, lines: &[String]) -> std::io::Result<()> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| std::io::Error::other("file sink lock poisoned"))?;
        let path = self.current_file();
        let created = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        file.write_all(&buf)?;
        file.sync_data()?;
        if created {
            // A new file's directory entry must be durable too.
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Appends `events` durably; one result for all of them.
    async fn append_events(&self, events: &[OutboxEvent]) -> SinkResult {
        // Stored bodies are compact JSON (no newlines); guard anyway so one
        // event is always one line.
        let lines: Vec<String> = events
            .iter()
            .map(|e| e.body.replace(['\n', '\r'], " "))
            .collect();
        let sink = self.clone();
        match tokio::task::spawn_blocking(move || sink.append(&lines)).await {
            Ok(Ok(())) => SinkResult::Delivered { http_status: None },
            Ok(Err(e)) => SinkResult::Retry {
                error: format!("file sink: {e}"),
                http_status: None,
                retry_after: None,
            },
            Err(e) => SinkResult::Retry {
                error: format!("file sink task: {e}"),
                http_status: None,
                retry_after: None,
            },
        }
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, SinkResult> {
        Box::pin(self.append_events(std::slice::from_ref(event)))
    }

    fn takes_batches(&self) -> bool {
        true
    }

    fn deliver_batch<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Vec<SinkResult>> {
        Box::pin(async move {
            let result = self.append_events(events).await;
            vec![result; events.len()]
        })
    }
}
