//! Packing of the store's large columns: `messages.raw`, `cases.snapshot`
//! and (since schema migration 11) `events.body`.
//!
//! Why: a ~1 KB HL7 message and the ~1.3 KB case made from it left 4.4× the
//! raw size in the database per message (issue #21), and a case row of that
//! size fits twice in a 4 KiB page with a third of the page left empty.
//! Level-1 zstd roughly halves both (the `mllp` bench's ORM^O01: raw
//! 1,022 → 558 bytes, snapshot 1,338 → 828) for a few microseconds of the
//! writer's CPU, and every commit writes fewer pages to the WAL.
//!
//! Each packed column has a codec column beside it (`raw_codec` and
//! `snapshot_codec`: schema migration 9; `body_codec`: 11): [`PLAIN`] for
//! every row stored before and for values that packing would not make
//! smaller, [`ZSTD`] for one zstd frame (with its content size in the
//! header), [`ZSTD_DICT_1`] for one zstd frame made with dictionary 1
//! (below). SQL reads the columns through `unpack_text(value, codec)` and
//! `unpack_blob(value, codec)`, registered on every connection the store
//! opens ([`register`]), so queries that work on the text in SQL (the event
//! body splice, the tenant read with `json_extract`) keep doing so.
//!
//! ## Dictionary 1 (schema migration 11)
//!
//! A value of a few hundred bytes to a few KB is too short for zstd to find
//! much to repeat within itself or to pay for its own entropy tables: most
//! of a frame was literals (segment names, field layouts, JSON keys) under a
//! Huffman table built and written for that frame alone, and a 262-byte
//! event envelope cost as many instructions as a 1 KB message. A trained
//! dictionary supplies both: content every frame may copy from, and entropy
//! tables the frame reuses (issue #21, round seven).
//!
//! What it holds matters more than its size: a dictionary trained on a
//! practice's own traffic would keep fragments of patients' records that
//! outlive retention's purge of the messages they came from. Dictionary 1
//! (`dictionaries/pack-1.bin`, 16 KiB, id `0x4D534F01`) is trained only on
//! the repository's synthetic samples, the cases `ehr-gateway map` made of
//! them and event envelopes for those cases; `tools/make_pack_dictionary.py`
//! records how. It ships in the binary and is **frozen**: every value packed
//! with it needs exactly these bytes to be read, so a test pins its SHA-256.
//! A better dictionary is a new file with a new id and a new codec; values
//! already stored keep theirs. Every frame carries the dictionary id, so a
//! frame read with the wrong dictionary is an error, not wrong bytes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::LazyLock;

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

use crate::error::{Result, StoreError};

/// Codec of a value stored as given.
const PLAIN: i64 = 0;
/// Codec of a value stored as one zstd frame (stores before migration 11).
const ZSTD: i64 = 1;
/// Codec of a value stored as one zstd frame made with dictionary 1.
const ZSTD_DICT_1: i64 = 2;

/// Dictionary 1: see the module docs. Never edit it (a test pins its hash).
static DICTIONARY_1: &[u8] = include_bytes!("../dictionaries/pack-1.bin");

/// Dictionary 1 prepared for compression at [`LEVEL`], once per process.
static ENCODER_1: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY_1, LEVEL));

/// Dictionary 1 prepared for decompression, once per process.
static DECODER_1: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY_1));

/// Level 1: on the bench's ~1 KB texts it packs as tightly as the default
/// level 3 (within 1%); higher levels cost more time for no gain at this
/// size, and the negative levels leave a quarter more bytes.
const LEVEL: i32 = 1;

/// The largest unpacked size a frame may declare: a damaged frame header
/// cannot make a reader allocate more. Far above any message the listeners
/// accept.
const MAX_UNPACKED: u64 = 256 * 1024 * 1024;

thread_local! {
    /// One compression context per thread (the store writer), with
    /// dictionary 1 attached, reused rather than set up again for every value.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    /// One decompression context per thread (the writer, each reader) for
    /// frames without a dictionary ([`ZSTD`]).
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
    /// The same for frames made with dictionary 1 ([`ZSTD_DICT_1`]).
    static DECOMPRESSOR_1: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes` packed as one zstd frame with dictionary 1 ([`ZSTD_DICT_1`]) when
/// that makes them smaller; `None` when they are best stored as they are
/// ([`PLAIN`]).
pub(crate) fn pack(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let packed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Compressor::with_prepared_dictionary(&ENCODER_1).map_err(packing_failed)?);
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
    if packed.is_some() { ZSTD_DICT_1 } else { PLAIN }
}

/// The bytes a stored value of `codec` stands for.
fn unpack(stored: &[u8], codec: i64) -> Result<Cow<'_, [u8]>> {
    match codec {
        PLAIN => Ok(Cow::Borrowed(stored)),
        ZSTD => decompress(&DECOMPRESSOR, stored, Decompressor::new),
        ZSTD_DICT_1 => decompress(&DECOMPRESSOR_1, stored, || {
            Decompressor::with_prepared_dictionary(&DECODER_1)
        }),
        other => Err(unpacking_failed(format!("unknown codec {other}"))),
    }
}

/// One zstd frame decompressed with this thread's context in `slot` (made
/// by `make` on first use). The frame must declare its size, and a size the
/// store accepts, before anything is allocated for it.
fn decompress(
    slot: &'static std::thread::LocalKey<RefCell<Option<Decompressor<'static>>>>,
    stored: &[u8],
    make: impl FnOnce() -> std::io::Result<Decompressor<'static>>,
) -> Result<Cow<'static, [u8]>> {
    let size = zstd::zstd_safe::get_frame_content_size(stored)
        .ok()
        .flatten()
        .filter(|size| *size <= MAX_UNPACKED)
        .ok_or_else(|| unpacking_failed("the frame does not declare a size the store accepts"))?;
    let size = usize::try_from(size).map_err(unpacking_failed)?;
    slot.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(make().map_err(unpacking_failed)?);
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
            rusqlite::params![packed, ZSTD_DICT_1, text],
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
        assert!(unpack(&damaged, ZSTD_DICT_1).is_err());
        assert!(unpack(&damaged, ZSTD).is_err());
        assert!(unpack(b"plain", 7).is_err());
    }

    /// Every value packed with dictionary 1 needs exactly these bytes: a
    /// changed dictionary is a new file and a new codec, never an edit.
    #[test]
    fn dictionary_1_is_frozen() {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(DICTIONARY_1);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "2ce4033b6d96e582b2c4f065d1c75f30b965fa31de8081903ff4246d182a01d2"
        );
    }

    /// Values stored before migration 11 (one zstd frame, no dictionary)
    /// read back through SQL as before.
    #[test]
    fn values_packed_without_a_dictionary_still_read() {
        let text = format!("{{\"tenant\":\"mso\",\"n\":\"{}\"}}", "old row ".repeat(40));
        let old = zstd::bulk::compress(text.as_bytes(), LEVEL).expect("zstd");
        assert_eq!(
            unpack(&old, ZSTD).expect("unpacks").as_ref(),
            text.as_bytes()
        );
        let conn = Connection::open_in_memory().expect("db");
        register(&conn).expect("functions");
        let read: String = conn
            .query_row(
                "SELECT unpack_text(?1, ?2)",
                rusqlite::params![old, ZSTD],
                |r| r.get(0),
            )
            .expect("reads");
        assert_eq!(read, text);
    }

    /// The dictionary earns its place on values unlike the samples it was
    /// made from: a synthetic order and a case of our own words.
    #[test]
    fn dictionary_1_packs_smaller_than_zstd_alone() {
        let order = [
            "MSH|^~\\&|LAKESIDE|FAMILY-MED|GW|MSO|20270214081500||ORM^O01^ORM_O01|LK55012|P|2.5.1",
            "PID|1||LK-77120^^^LAKESIDE^MR||SAMPLE^BETA^R||19820605|M|||7 ELM ROW^^DENVER^CO^80202",
            "PV1|1|O|FM^2^^FAMILY-MED||||1588667638^KIDD^LEE^^^^^^NPI",
            "IN1|1|HMO^Health Maintenance|77021^^^^PAYER|DEMO CARE PLAN|||||G77",
            "ORC|NW|LK55012|||||^^^20270301^^R||20270214081500",
            "OBR|1|LK55012||73721^MRI KNEE W/O DYE^CPT4|||20270301090000",
            "DG1|1|I10|M25.561^Pain in right knee^I10|||A",
        ]
        .join("\r");
        let case = r#"{"schema":"ehr-gateway/case/v1","case_id":"case-0123456789abcdef01234567","tenant":"mso-lake","practice":"family-med","source":{"adapter":"hl7v2","profile":"lakeside","message_type":"ORM^O01","control_id":"LK55012","sender":"LAKESIDE^FAMILY-MED","received_at":"2027-02-14T08:15:02Z"},"status":"requested","patient":{"identifiers":[{"type":"MR","value":"LK-77120","assigner":"LAKESIDE"}],"name":{"family":"SAMPLE","given":["BETA","R"]},"birth_date":"1982-06-05","sex":"male"},"coverage":[{"payer_id":"77021","payer_name":"DEMO CARE PLAN","group":"G77"}],"services":[{"code":{"system":"CPT","code":"73721","display":"MRI KNEE W/O DYE"},"quantity":1}],"diagnoses":[{"system":"ICD-10-CM","code":"M25.561","display":"Pain in right knee"}]}"#;
        for value in [order.as_bytes(), case.as_bytes()] {
            let with = pack(value).expect("packs").expect("smaller");
            let without = zstd::bulk::compress(value, LEVEL).expect("zstd");
            assert!(
                with.len() * 10 < without.len() * 9,
                "{} bytes with the dictionary, {} without",
                with.len(),
                without.len()
            );
            assert_eq!(unpack(&with, ZSTD_DICT_1).expect("unpacks").as_ref(), value);
        }
    }
}
