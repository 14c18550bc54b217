//! Finding a case by one of its `references` (the Da Vinci PAS server finds
//! a request's case by its Claim identifier, which the mapping profile keeps
//! in `references.pas_claim` / `references.pas_submission`).
//!
//! The query filters by owning adapter and reads the reference from the case
//! snapshot (`json_extract`); there is no index on it yet, so the cost grows
//! with the adapter's cases (a known limit, fine for one practice's volume).

use rusqlite::OptionalExtension as _;

use crate::error::{Result, StoreError};
use crate::model::CaseRecord;
use crate::read::Reader;
use crate::store::Store;

impl Reader {
    /// The most recently updated case of `adapter` whose `references[name]`
    /// is `value`. `name` is a reference name (`[a-z0-9_]`); any other is
    /// refused.
    pub fn case_by_reference(
        &self,
        adapter: &str,
        name: &str,
        value: &str,
    ) -> Result<Option<CaseRecord>> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Io {
                context: "finding a case by reference",
                message: "reference names are [a-z0-9_]".to_owned(),
            });
        }
        let path = format!("$.references.{name}");
        let case_id: Option<String> = self
            .conn
            .query_row(
                "SELECT case_id FROM cases WHERE adapter = ?1
                 AND json_extract(snapshot, ?2) = ?3
                 ORDER BY updated_at_ms DESC LIMIT 1",
                rusqlite::params![adapter, path, value],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::sql("finding a case by reference"))?;
        match case_id {
            Some(id) => self.get_case(&id),
            None => Ok(None),
        }
    }

    /// The case the stored message `message_id` produced an event for.
    pub fn case_of_message(&self, message_id: i64) -> Result<Option<CaseRecord>> {
        match self.message_events(message_id)?.into_iter().next() {
            Some(event) => self.get_case(&event.case_id),
            None => Ok(None),
        }
    }
}

impl Store {
    /// See [`Reader::case_by_reference`].
    pub async fn case_by_reference(
        &self,
        adapter: &str,
        name: &str,
        value: &str,
    ) -> Result<Option<CaseRecord>> {
        let (adapter, name, value) = (adapter.to_owned(), name.to_owned(), value.to_owned());
        self.read(move |r| r.case_by_reference(&adapter, &name, &value))
            .await
    }

    /// See [`Reader::case_of_message`].
    pub async fn case_of_message(&self, message_id: i64) -> Result<Option<CaseRecord>> {
        self.read(move |r| r.case_of_message(message_id)).await
    }
}
