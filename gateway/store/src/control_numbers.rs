//! Durable control-number counters (X12 ISA13, GS06, ST02).
//!
//! A control number an interchange went out with must never be used again for
//! the same scope — a partner that sees a repeated ISA13 treats the second
//! interchange as a duplicate and drops it. So numbers are allocated through the
//! store's writer: the counter row is advanced inside the group transaction and
//! the caller gets its numbers only after COMMIT. A crash after the allocation
//! at worst leaves a gap (numbers reserved but never sent), which X12 allows;
//! it can never hand out a number twice. Concurrent callers are serialized by
//! the single writer thread.
//!
//! Each scope (`x12/EHRGATEWAY/interchange`, …) is one row of
//! `control_numbers(scope, last)`. Numbers run `1..=max` and wrap from `max`
//! back to 1, the convention for the 9-digit X12 control numbers.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, StoreError};
use crate::store::Store;

impl Store {
    /// Reserves the next `count` numbers of `scope` (each in `1..=max`,
    /// wrapping from `max` to 1) and returns them in order, after COMMIT.
    ///
    /// `count` 0 returns nothing and writes nothing; `max` must be ≥ 1 and
    /// `count` at most `max` (otherwise a number would repeat in one answer).
    pub async fn allocate_control_numbers(
        &self,
        scope: &str,
        count: u32,
        max: u64,
    ) -> Result<Vec<u64>> {
        let mut numbers = self
            .allocate_control_numbers_many(vec![(scope.to_owned(), count)], max)
            .await?;
        Ok(numbers.pop().unwrap_or_default())
    }

    /// [`Store::allocate_control_numbers`] for several scopes in one write
    /// (one COMMIT, one fsync): the numbers of each `(scope, count)`, in the
    /// order asked. An X12 acknowledgment needs an ISA13, a GS06 and an ST02;
    /// asking for them one at a time made the sender wait for three commits.
    pub async fn allocate_control_numbers_many(
        &self,
        requests: Vec<(String, u32)>,
        max: u64,
    ) -> Result<Vec<Vec<u64>>> {
        if let Some((_, count)) = requests
            .iter()
            .find(|(_, count)| *count > 0 && (max == 0 || u64::from(*count) > max))
        {
            return Err(StoreError::InvalidState(format!(
                "cannot allocate {count} control numbers in 1..={max}"
            )));
        }
        if requests.iter().all(|(_, count)| *count == 0) {
            return Ok(requests.iter().map(|_| Vec::new()).collect());
        }
        let max = i64::try_from(max)
            .map_err(|_| StoreError::InvalidState("control number range exceeds i64".to_owned()))?;
        self.inner
            .writer
            .write(move |conn| {
                requests
                    .iter()
                    .map(|(scope, count)| match count {
                        0 => Ok(Vec::new()),
                        _ => allocate(conn, scope, *count, max),
                    })
                    .collect()
            })
            .await
    }

    /// The last number handed out for `scope` (0 when none yet).
    pub async fn last_control_number(&self, scope: &str) -> Result<u64> {
        let scope = scope.to_owned();
        self.inner
            .writer
            .write(move |conn| last(conn, &scope))
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    }
}

fn last(conn: &Connection, scope: &str) -> Result<i64> {
    Ok(conn
        .query_row(
            "SELECT last FROM control_numbers WHERE scope = ?1",
            params![scope],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(StoreError::sql("reading a control number"))?
        .unwrap_or(0))
}

fn allocate(conn: &Connection, scope: &str, count: u32, max: i64) -> Result<Vec<u64>> {
    let mut current = last(conn, scope)?;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        // A stored value above `max` (the range shrank) restarts at 1 too.
        current = if current >= max { 1 } else { current + 1 };
        out.push(u64::try_from(current).unwrap_or(1));
    }
    conn.execute(
        "INSERT INTO control_numbers (scope, last) VALUES (?1, ?2)
         ON CONFLICT(scope) DO UPDATE SET last = excluded.last",
        params![scope, current],
    )
    .map_err(StoreError::sql("advancing a control number"))?;
    Ok(out)
}
