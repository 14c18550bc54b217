//! Store errors, and how they map onto the gateway-wide [`GatewayError`] kinds.
//!
//! Callers mostly need two answers: "did it commit?" (every `Err` means no) and
//! "is it worth retrying?" ([`StoreError::retryable`]), which decides whether an
//! adapter answers with a retryable negative acknowledgement.

use std::sync::Arc;

use gateway_core::GatewayError;

/// Everything that can go wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (I/O, corruption, constraint, busy).
    #[error("sqlite error while {context}: {source}")]
    Sqlite {
        /// What the store was doing.
        context: &'static str,
        /// The underlying error (shared: one failed commit fails a whole batch).
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The file was written by a newer gateway with a schema this binary does not know.
    #[error(
        "store schema version {found} is newer than this binary supports (version {supported}); \
         upgrade ehr-gateway or point it at another data directory"
    )]
    NewerSchema {
        /// The version found in the file.
        found: i64,
        /// The newest version this binary knows.
        supported: i64,
    },
    /// The integrity check at open found damage: refusing to write to it.
    #[error(
        "the store file {path} is damaged ({detail}); it was not opened for writing. Check a \
         backup with `ehr-gateway store verify FILE` and put it back with `ehr-gateway store \
         restore --from FILE --data-dir DIR`"
    )]
    Damaged {
        /// The store file.
        path: String,
        /// SQLite's first complaint.
        detail: String,
    },
    /// The store file does not exist (read-only opens never create one).
    #[error("store file {0} does not exist")]
    Missing(String),
    /// A decision (or another operation) named a case the store has never seen.
    #[error("unknown case {0}")]
    UnknownCase(String),
    /// A message id that is not in the store.
    #[error("unknown message {0}")]
    UnknownMessage(i64),
    /// An event id that is not in the store.
    #[error("unknown event {0}")]
    UnknownEvent(String),
    /// The operation is not valid for the row's current state (e.g. replaying an
    /// accepted message).
    #[error("{0}")]
    InvalidState(String),
    /// A decision's idempotency key was committed before with another
    /// request (another case or another decision).
    #[error("idempotency key of channel {channel} already used for a different decision")]
    IdempotencyKeyReused {
        /// The decision channel (`admin-api`, …).
        channel: String,
    },
    /// Stored JSON could not be (de)serialized.
    #[error("json error for {context}: {message}")]
    Json {
        /// What was being (de)serialized.
        context: &'static str,
        /// serde_json's message (no payload values).
        message: String,
    },
    /// A configuration value is unusable (sink URL, certificate, token).
    #[error("configuration error: {0}")]
    Config(String),
    /// The store cannot take more intake: it reached its size budget with
    /// nothing deliverable-and-delivered left to prune, or the disk (or
    /// SQLite's page limit) is full (`SQLITE_FULL`). Nothing of the refused
    /// operation was written; retry later (intake resumes by itself once
    /// delivery and pruning free space or the limit is raised).
    #[error("store full: {0}")]
    Full(String),
    /// The writer thread is gone (store closed or panicked).
    #[error("the store writer has stopped")]
    Closed,
    /// A file-system error outside SQLite (creating the directory, sink files).
    #[error("i/o error while {context}: {message}")]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The OS error.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |e| {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
                // A real full disk and SQLite's `max_page_count` both end
                // here: the same answer as a store at its size budget.
                return StoreError::Full(format!("the disk is full while {context}"));
            }
            StoreError::Sqlite {
                context,
                source: Arc::new(e),
            }
        }
    }

    pub(crate) fn json(context: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
        move |e| StoreError::Json {
            context,
            message: e.to_string(),
        }
    }

    /// Whether the same operation may succeed later (busy database, full disk,
    /// I/O hiccup). Unknown ids, invalid states and newer schemas never do.
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Sqlite { source, .. } => match source.sqlite_error_code() {
                Some(code) => matches!(
                    code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::OutOfMemory
                ),
                None => false,
            },
            StoreError::Io { .. } | StoreError::Closed | StoreError::Full(_) => true,
            _ => false,
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        GatewayError::internal(e.retryable(), e.to_string())
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
