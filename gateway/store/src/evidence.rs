//! Operator evidence: images and notes an adapter keeps when it had to stop and
//! a person must look (today: the screenshot a desktop playbook takes when it
//! aborts on an unexpected window, a failed verification or a timeout).
//!
//! Evidence can show patient data (a screenshot of a chart), so it lives in the
//! store like raw messages do — never in loose files or logs — and is read one
//! item at a time through the admin API, which audits every read. Listing
//! returns metadata only (no body). Retention deletes evidence older than the
//! retention age together with the other finished data.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Result, StoreError};
use crate::read::Reader;
use crate::store::Store;
use crate::time::{now_ms, ts};

/// A piece of evidence to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvidence {
    /// The adapter that kept it (`desktop`).
    pub adapter: String,
    /// What it is (`abort-screenshot`).
    pub kind: String,
    /// The case it concerns, when known.
    pub case_id: Option<String>,
    /// MIME type of `body` (`image/png`).
    pub content_type: String,
    /// The bytes (may show PHI: never log them).
    pub body: Vec<u8>,
    /// PHI-free detail for the operator (reason, step, playbook), often JSON.
    pub detail: Option<String>,
}

impl std::fmt::Debug for NewEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEvidence")
            .field("adapter", &self.adapter)
            .field("kind", &self.kind)
            .field("case_id", &self.case_id)
            .field("content_type", &self.content_type)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Stored evidence without its body (what listings return).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRecord {
    /// Row id (the `{id}` of `GET /api/v1/evidence/{id}`).
    pub id: i64,
    /// When it was stored.
    pub at: Timestamp,
    /// The adapter that kept it.
    pub adapter: String,
    /// What it is.
    pub kind: String,
    /// The case it concerns, when known.
    pub case_id: Option<String>,
    /// MIME type of the body.
    pub content_type: String,
    /// Body size in bytes.
    pub size: u64,
    /// PHI-free detail.
    pub detail: Option<String>,
}

/// Stored evidence with its body.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredEvidence {
    /// Metadata.
    pub record: EvidenceRecord,
    /// The bytes.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for StoredEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEvidence")
            .field("record", &self.record)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Which evidence to list (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFilter {
    /// Only evidence about this case.
    pub case_id: Option<String>,
    /// Only evidence stored at or after this instant.
    pub since: Option<Timestamp>,
    /// Only evidence stored before this instant.
    pub until: Option<Timestamp>,
    /// At most this many rows.
    pub limit: usize,
}

impl Default for EvidenceFilter {
    fn default() -> Self {
        EvidenceFilter {
            case_id: None,
            since: None,
            until: None,
            limit: 100,
        }
    }
}

const COLUMNS: &str = "id, at_ms, adapter, kind, case_id, content_type, length(body), detail";

fn record(r: &Row<'_>) -> rusqlite::Result<EvidenceRecord> {
    Ok(EvidenceRecord {
        id: r.get(0)?,
        at: ts(r.get(1)?),
        adapter: r.get(2)?,
        kind: r.get(3)?,
        case_id: r.get(4)?,
        content_type: r.get(5)?,
        size: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        detail: r.get(7)?,
    })
}

fn insert(conn: &Connection, e: &NewEvidence) -> Result<i64> {
    conn.execute(
        "INSERT INTO evidence (at_ms, adapter, kind, case_id, content_type, body, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            now_ms(),
            e.adapter,
            e.kind,
            e.case_id,
            e.content_type,
            e.body,
            e.detail
        ],
    )
    .map_err(StoreError::sql("storing evidence"))?;
    Ok(conn.last_insert_rowid())
}

/// Deletes evidence stored before `cutoff_ms` (the retention hook); returns
/// how many rows went.
pub(crate) fn prune_before(conn: &Connection, cutoff_ms: i64) -> Result<u64> {
    conn.execute("DELETE FROM evidence WHERE at_ms < ?1", [cutoff_ms])
        .map(|n| n as u64)
        .map_err(StoreError::sql("pruning evidence"))
}

impl Store {
    /// Stores a piece of evidence (one commit); returns its id.
    pub async fn put_evidence(&self, evidence: NewEvidence) -> Result<i64> {
        self.inner
            .writer
            .write(move |conn| insert(conn, &evidence))
            .await
    }

    /// One piece of evidence with its body.
    pub async fn get_evidence(&self, id: i64) -> Result<Option<StoredEvidence>> {
        self.read(move |r| r.get_evidence(id)).await
    }

    /// Evidence metadata matching `filter`, newest first.
    pub async fn list_evidence(&self, filter: EvidenceFilter) -> Result<Vec<EvidenceRecord>> {
        self.read(move |r| r.list_evidence(&filter)).await
    }
}

impl Reader {
    /// One piece of evidence with its body.
    pub fn get_evidence(&self, id: i64) -> Result<Option<StoredEvidence>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS}, body FROM evidence WHERE id = ?1"),
                [id],
                |r| {
                    Ok(StoredEvidence {
                        record: record(r)?,
                        body: r.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(StoreError::sql("reading evidence"))
    }

    /// Evidence metadata matching `filter`, newest first.
    pub fn list_evidence(&self, filter: &EvidenceFilter) -> Result<Vec<EvidenceRecord>> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM evidence
                 WHERE (?1 IS NULL OR case_id = ?1) AND (?2 IS NULL OR at_ms >= ?2)
                   AND (?3 IS NULL OR at_ms < ?3)
                 ORDER BY at_ms DESC, id DESC LIMIT ?4"
            ))
            .and_then(|mut st| {
                st.query_map(
                    params![
                        filter.case_id,
                        filter.since.map(|t| t.as_millisecond()),
                        filter.until.map(|t| t.as_millisecond()),
                        limit
                    ],
                    record,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("listing evidence"))
    }
}
