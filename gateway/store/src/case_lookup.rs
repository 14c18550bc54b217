//! Finding a case by one of its `references` (the Da Vinci PAS server finds
//! a request's case by its Claim identifier, which the mapping profile keeps
//! in `references.pas_claim` / `references.pas_submission`).
//!
//! The names looked up by are [`INDEXED_REFERENCES`]: every case upsert
//! keeps their current values in `case_references` (primary key `name, value,
//! case_id`), so a lookup is one index probe, whatever the number of cases. A
//! name not in the list is refused rather than answered by reading every
//! snapshot. References are only ever added or changed by a case's updates
//! (the pipeline keeps the stored ones), never removed, so a case without a
//! listed name costs its upsert nothing.

use gateway_core::Case;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::error::{Result, StoreError};
use crate::model::CaseRecord;
use crate::read::Reader;
use crate::store::Store;

/// The `references` names cases are looked up by: the Da Vinci PAS
/// server's Claim identifiers (the latest submission, the first Claim). An
/// adapter that finds cases by another reference adds its name here and to
/// migration 7's backfill (a new migration for a store already migrated).
pub const INDEXED_REFERENCES: &[&str] = &["pas_claim", "pas_submission"];

/// The lookup: one probe of `case_references`' primary key, the newest
/// case of the adapter first.
const BY_REFERENCE: &str = "SELECT c.case_id FROM case_references r
     JOIN cases c ON c.case_id = r.case_id
     WHERE r.name = ?1 AND r.value = ?2 AND c.adapter = ?3
     ORDER BY c.updated_at_ms DESC LIMIT 1";

/// Keeps `case_references` true for `case`, inside the transaction that
/// upserts its snapshot: each listed reference the case has, at its current
/// value (an earlier value of the same name is dropped).
pub(crate) fn index_references(conn: &Connection, case: &Case) -> Result<()> {
    for name in INDEXED_REFERENCES {
        let Some(value) = case.references.get(*name) else {
            continue;
        };
        conn.prepare_cached(
            "DELETE FROM case_references WHERE case_id = ?1 AND name = ?2 AND value <> ?3",
        )
        .and_then(|mut st| st.execute(params![case.case_id, name, value]))
        .map_err(StoreError::sql("updating a case reference"))?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO case_references (name, value, case_id) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut st| st.execute(params![name, value, case.case_id]))
        .map_err(StoreError::sql("indexing a case reference"))?;
    }
    Ok(())
}

impl Reader {
    /// The most recently updated case of `adapter` whose `references[name]`
    /// is `value`. `name` must be one of [`INDEXED_REFERENCES`]; any other
    /// is refused.
    pub fn case_by_reference(
        &self,
        adapter: &str,
        name: &str,
        value: &str,
    ) -> Result<Option<CaseRecord>> {
        if !INDEXED_REFERENCES.contains(&name) {
            return Err(StoreError::Io {
                context: "finding a case by reference",
                message: format!(
                    "cases are not looked up by `{name}` (indexed references: {})",
                    INDEXED_REFERENCES.join(", ")
                ),
            });
        }
        let case_id: Option<String> = self
            .conn
            .prepare_cached(BY_REFERENCE)
            .and_then(|mut st| {
                st.query_row(params![name, value, adapter], |r| r.get(0))
                    .optional()
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_indexed_reference_is_backfilled_by_its_migration() {
        let migration = crate::schema::migration_text(7).unwrap_or_default();
        for name in INDEXED_REFERENCES {
            assert!(
                migration.contains(&format!("'$.references.{name}'")),
                "migration 7 does not backfill `{name}`"
            );
        }
    }

    #[tokio::test]
    async fn a_lookup_probes_the_index_and_never_scans_the_cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path, crate::StoreOptions::default())
            .await
            .expect("store");
        store.close().await;
        let conn = Connection::open(&path).expect("open");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {BY_REFERENCE}"))
            .and_then(|mut st| {
                st.query_map(params!["pas_claim", "PA-1", "davinci-pas"], |r| {
                    r.get::<_, String>(3)
                })?
                .collect()
            })
            .expect("plan");
        let plan = plan.join("\n");
        assert!(
            plan.contains("SEARCH r USING PRIMARY KEY"),
            "the lookup does not probe case_references' key:\n{plan}"
        );
        assert!(
            !plan.contains("SCAN c") && !plan.contains("SCAN cases"),
            "the lookup scans the cases:\n{plan}"
        );
    }
}
