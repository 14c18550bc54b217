//! Packing of the store's two large columns: `messages.raw` and
//! `cases.snapshot`.
//!
//! Why: a ~1 KB HL7 message and the ~1.3 KB case made from it left 4.4× the
//! raw size in the database per message (issue #21), and a case row of that
//! size fits twice in a 4 KiB page with a third of the page left empty.
//! Level-1 zstd roughly halves both (the `mllp` bench's ORM^O01: raw
//! 1,022 → 558 bytes, snapshot 1,338 → 828) for a few microseconds of the
//! writer's CPU, and every commit writes fewer pages to the WAL.
//!
//! Each packed column has a codec column beside it (`raw_codec`,
//! `snapshot_codec`; schema migration 9): [`PLAIN`] for every row stored
//! before and for values that packing would not make smaller, [`ZSTD`] for
//! one zstd frame (with its content size in the header). SQL reads the
//! columns through `unpack_text(value, codec)` and `unpack_blob(value,
//! codec)`, registered on every connection the store opens ([`register`]),
//! so queries that work on the text in SQL (the event body splice, the
//! tenant read with `json_extract`) keep doing so.

use std::borrow::Cow;
use std::cell::RefCell;

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};

use crate::error::{Result, StoreError};

/// Codec of a value stored as given.
const PLAIN: i64 = 0;
/// Codec of a value stored as one zstd frame.
const ZSTD: i64 = 1;

/// Level 1: on the bench's ~1 KB texts it packs as tightly as the default
/// level 3 (within 1%); higher levels cost more time for no gain at this
/// size, and the negative levels leave a quarter more bytes.
const LEVEL: i32 = 1;

/// The largest unpacked size a frame may declare: a damaged frame header
/// cannot make a reader allocate more. Far above any message the listeners
/// accept.
const MAX_UNPACKED: u64 = 256 * 1024 * 1024;

thread_local! {
    /// One compression context per thread (the store writer), reused
    /// rather than allocated and set up again for every value.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// One decompression context per thread (the writer, each reader).
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes` packed as one zstd frame ([`ZSTD`]) when that makes them
/// smaller; `None` when they are best stored as they are ([`PLAIN`]).
pub(crate) fn pack(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let packed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(LEVEL).map_err(packing_failed)?);
        }
        match slot.as_mut() {
            Some(compressor) => compressor.compress(bytes).map_err(packing_failed),
            None => Err(packing_failed("no compression context")),
        }
    })?;
    Ok((packed.len() < bytes.len()).then_some(packed))
}

/// The codec of what [`pack`] returned.
pub(crate) fn codec_of(packed: &Option<Vec<u8>>) -> i64 {
    if packed.is_some() { ZSTD } else { PLAIN }
}

/// The bytes a stored value of `codec` stands for.
fn unpack(stored: &[u8], codec: i64) -> Result<Cow<'_, [u8]>> {
    match codec {
        PLAIN => Ok(Cow::Borrowed(stored)),
        ZSTD => {
            let size = zstd::zstd_safe::get_frame_content_size(stored)
                .ok()
                .flatten()
                .filter(|size| *size <= MAX_UNPACKED)
                .ok_or_else(|| {
                    unpacking_failed("the frame does not declare a size the store accepts")
                })?;
            let size = usize::try_from(size).map_err(unpacking_failed)?;
            DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new().map_err(unpacking_failed)?);
                }
                match slot.as_mut() {
                    Some(decompressor) => decompressor
                        .decompress(stored, size)
                        .map(Cow::Owned)
                        .map_err(unpacking_failed),
                    None => Err(unpacking_failed("no decompression context")),
                }
            })
        }
        other => Err(unpacking_failed(format!("unknown codec {other}"))),
    }
}

/// [`unpack`] of a value that is UTF-8 text (a case snapshot).
fn unpack_text(stored: &[u8], codec: i64) -> Result<String> {
    let text = unpack(stored, codec)?;
    String::from_utf8(text.into_owned()).map_err(unpacking_failed)
}

/// Registers `unpack_text(value, codec)` (TEXT) and `unpack_blob(value,
/// codec)` (BLOB) on `conn`. Both are deterministic, so SQLite may use them
/// in indexes; it still calls them once per appearance in a statement, so a
/// query reads several fields of one snapshot with one `json_extract`.
pub(crate) fn register(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("unpack_text", 2, flags, |ctx| {
        sql_unpack(ctx, |stored, codec| {
            unpack_text(stored, codec).map(Value::Text)
        })
    })
    .and_then(|()| {
        conn.create_scalar_function("unpack_blob", 2, flags, |ctx| {
            sql_unpack(ctx, |stored, codec| {
                unpack(stored, codec).map(|b| Value::Blob(b.into_owned()))
            })
        })
    })
    .map_err(StoreError::sql("registering the unpack functions"))
}

/// Calls `f` with the stored bytes (TEXT or BLOB) and the codec; NULL stays
/// NULL.
fn sql_unpack(
    ctx: &Context<'_>,
    f: impl FnOnce(&[u8], i64) -> Result<Value>,
) -> rusqlite::Result<Value> {
    let stored = match ctx.get_raw(0) {
        ValueRef::Null => return Ok(Value::Null),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
        _ => {
            let e = unpacking_failed("the stored value is neither text nor bytes");
            return Err(rusqlite::Error::UserFunctionError(Box::new(e)));
        }
    };
    let codec: i64 = ctx.get(1)?;
    f(stored, codec).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
}

fn packing_failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidState(format!("packing a stored value failed: {e}"))
}

fn unpacking_failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidState(format!("a packed stored value cannot be read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn what_is_packed_unpacks_to_the_same_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..4096),
            repeat in 1usize..8,
        ) {
            // Repeated input packs; random input mostly stays plain.
            let input: Vec<u8> = bytes.iter().copied().cycle().take(bytes.len() * repeat).collect();
            let packed = pack(&input).expect("packs");
            let codec = codec_of(&packed);
            let stored = packed.unwrap_or_else(|| input.clone());
            prop_assert!(stored.len() <= input.len());
            let back = unpack(&stored, codec).expect("unpacks");
            prop_assert_eq!(back.as_ref(), input.as_slice());
        }
    }

    #[test]
    fn sql_reads_packed_and_plain_values_alike() {
        let conn = Connection::open_in_memory().expect("db");
        register(&conn).expect("functions");
        let text = format!(
            "{{\"tenant\":\"mso\",\"notes\":\"{}\"}}",
            "synthetic note ".repeat(20)
        );
        let packed = pack(text.as_bytes())
            .expect("packs")
            .expect("repeated text packs");
        conn.execute_batch("CREATE TABLE t (v, codec INTEGER)")
            .expect("table");
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2), (?3, 0)",
            rusqlite::params![packed, ZSTD, text],
        )
        .expect("rows");
        let read: Vec<String> = conn
            .prepare("SELECT unpack_text(v, codec) FROM t")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("reads");
        assert_eq!(read, vec![text.clone(), text.clone()]);
        let tenant: String = conn
            .query_row(
                "SELECT json_extract(unpack_text(v, codec), '$.tenant') FROM t LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("json");
        assert_eq!(tenant, "mso");
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let mut damaged = pack("HL7 ".repeat(100).as_bytes())
            .expect("packs")
            .expect("repeated text packs");
        let last = damaged.len() - 1;
        damaged.truncate(last / 2);
        assert!(unpack(&damaged, ZSTD).is_err());
        assert!(unpack(b"plain", 7).is_err());
    }
}
