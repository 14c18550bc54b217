//! The MLLP frame codec: `0x0B <payload> 0x1C 0x0D`.
//!
//! Written here rather than taken from `hl7-mllp-codec`, which searches the
//! terminator from the end of the buffer and so merges coalesced frames
//! (found when the crate was evaluated). The rules this codec keeps:
//!
//! * bytes outside a frame (before `0x0B`) are discarded and **counted**; the
//!   caller reads the count with [`MllpCodec::take_discarded`] to log and meter it;
//! * frames may arrive split across any number of reads, including between the
//!   two terminator bytes, and several frames may arrive in one read;
//! * a `0x0B` inside a frame restarts the frame (the unterminated bytes before it
//!   are counted as discarded, whatever their length): a sender that gave up
//!   mid-frame and started over must not have its new message glued to the old
//!   fragment, nor get an answer to a fragment it no longer waits for;
//! * a frame longer than the maximum is never buffered whole: its bytes are
//!   dropped as they arrive (keeping only a short head so the receiver can still
//!   read MSH-10 and answer with a NAK), and when its terminator arrives the
//!   decoder yields [`MllpFrame::Oversized`] and resynchronises on the next frame.
//!
//! Decoding never fails on content; the only decode error is a stream that ends
//! inside a frame ([`MllpError::Truncated`], from `decode_eof`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Start-of-block byte (VT).
pub const START_BLOCK: u8 = 0x0B;
/// First end-of-block byte (FS).
pub const END_BLOCK: u8 = 0x1C;
/// Second end-of-block byte (CR).
pub const CARRIAGE_RETURN: u8 = 0x0D;

/// Default maximum payload size: 1 MiB is far above any order or result message
/// and small enough that 1,000 connections cannot exhaust memory.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// How many bytes of an oversized frame are kept for the NAK (MSH fits easily).
pub const OVERSIZED_HEAD: usize = 1024;

/// One decoded MLLP unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MllpFrame {
    /// A complete frame's payload, framing bytes removed.
    Message(Bytes),
    /// A frame that exceeded the maximum size; its content was dropped.
    Oversized {
        /// Total payload length seen (terminator excluded).
        len: usize,
        /// The first [`OVERSIZED_HEAD`] bytes of the payload, to answer with a NAK.
        head: Bytes,
    },
}

/// Errors of the MLLP codec.
#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    /// The underlying transport failed.
    #[error("MLLP transport error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream in the middle of a frame.
    #[error("stream ended inside an MLLP frame after {buffered} payload bytes")]
    Truncated {
        /// Payload bytes received for the unfinished frame.
        buffered: usize,
    },
    /// A payload to send contains a framing byte and cannot be framed safely.
    #[error("payload contains MLLP framing byte 0x{byte:02X} at offset {offset}")]
    FramingByteInPayload {
        /// The offending byte.
        byte: u8,
        /// Its offset in the payload.
        offset: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for `0x0B`.
    Idle,
    /// Inside a frame; the payload is buffered at the front of `src`.
    InFrame,
    /// Inside an oversized frame whose bytes are being dropped.
    Discarding,
}

/// Tokio codec for MLLP frames. Decodes into [`MllpFrame`], encodes payload bytes.
#[derive(Debug)]
pub struct MllpCodec {
    max_frame: usize,
    state: State,
    /// Bytes of the current in-frame buffer already scanned for a terminator.
    scanned: usize,
    /// Discarded bytes not yet reported through `take_discarded`.
    discarded: u64,
    /// Length of the oversized frame dropped so far.
    oversized_len: usize,
    /// Head of the oversized frame.
    oversized_head: BytesMut,
}

impl Default for MllpCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl MllpCodec {
    /// A codec accepting payloads of at most `max_frame` bytes (at least 1).
    pub fn new(max_frame: usize) -> Self {
        MllpCodec {
            max_frame: max_frame.max(1),
            state: State::Idle,
            scanned: 0,
            discarded: 0,
            oversized_len: 0,
            oversized_head: BytesMut::new(),
        }
    }

    /// The maximum payload size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether a frame has started and not yet ended (used for read deadlines).
    pub fn in_frame(&self) -> bool {
        self.state != State::Idle
    }

    /// Returns the number of bytes discarded outside frames (or from frames
    /// restarted by a new `0x0B`) since the last call, and resets it.
    pub fn take_discarded(&mut self) -> u64 {
        std::mem::take(&mut self.discarded)
    }

    fn start_oversized(&mut self, src: &mut BytesMut) {
        // Keep a trailing 0x1C: its 0x0D may be in the next read.
        let keep = usize::from(src.last() == Some(&END_BLOCK));
        let drop_len = src.len() - keep;
        self.oversized_len = drop_len;
        let head_len = drop_len.min(OVERSIZED_HEAD);
        self.oversized_head = BytesMut::from(&src[..head_len]);
        src.advance(drop_len);
        self.scanned = 0;
        self.state = State::Discarding;
    }

    fn finish_oversized(&mut self) -> MllpFrame {
        self.state = State::Idle;
        MllpFrame::Oversized {
            len: std::mem::take(&mut self.oversized_len),
            head: std::mem::take(&mut self.oversized_head).freeze(),
        }
    }
}

/// What a scan of the in-frame bytes found.
enum Found {
    /// `0x1C 0x0D` at this index.
    End(usize),
    /// A new `0x0B` at this index.
    Restart(usize),
    /// Nothing yet.
    Nothing,
}

fn scan(buf: &[u8], from: usize) -> Found {
    let mut i = from;
    while i < buf.len() {
        match buf[i] {
            START_BLOCK => return Found::Restart(i),
            END_BLOCK if buf.get(i + 1) == Some(&CARRIAGE_RETURN) => return Found::End(i),
            _ => {}
        }
        i += 1;
    }
    Found::Nothing
}

impl Decoder for MllpCodec {
    type Item = MllpFrame;
    type Error = MllpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<MllpFrame>, MllpError> {
        loop {
            match self.state {
                State::Idle => match src.iter().position(|&b| b == START_BLOCK) {
                    Some(i) => {
                        self.discarded += i as u64;
                        src.advance(i + 1);
                        self.state = State::InFrame;
                        self.scanned = 0;
                    }
                    None => {
                        self.discarded += src.len() as u64;
                        src.clear();
                        return Ok(None);
                    }
                },
                State::InFrame => {
                    // A terminator split across reads leaves 0x1C as the last
                    // scanned byte: look at it again.
                    let from = self.scanned.saturating_sub(1);
                    match scan(src, from) {
                        Found::End(i) if i <= self.max_frame => {
                            let payload = src.split_to(i).freeze();
                            src.advance(2);
                            self.state = State::Idle;
                            self.scanned = 0;
                            return Ok(Some(MllpFrame::Message(payload)));
                        }
                        Found::End(i) => {
                            // Arrived whole in one read but too long.
                            let head = Bytes::copy_from_slice(&src[..i.min(OVERSIZED_HEAD)]);
                            src.advance(i + 2);
                            self.state = State::Idle;
                            self.scanned = 0;
                            return Ok(Some(MllpFrame::Oversized { len: i, head }));
                        }
                        Found::Restart(i) => {
                            self.discarded += i as u64;
                            src.advance(i + 1);
                            self.scanned = 0;
                        }
                        Found::Nothing => {
                            self.scanned = src.len();
                            let pending = src.len() - usize::from(src.last() == Some(&END_BLOCK));
                            if pending > self.max_frame {
                                self.start_oversized(src);
                            }
                            return Ok(None);
                        }
                    }
                }
                State::Discarding => match scan(src, 0) {
                    Found::End(i) => {
                        self.add_oversized(&src[..i]);
                        src.advance(i + 2);
                        return Ok(Some(self.finish_oversized()));
                    }
                    Found::Restart(i) => {
                        // Never terminated: the sender gave up on it and is not
                        // waiting for an answer, so it is dropped like any other
                        // unterminated fragment (an answer would be a stray ACK).
                        self.discarded += (self.oversized_len + i) as u64;
                        self.oversized_len = 0;
                        self.oversized_head.clear();
                        src.advance(i + 1);
                        self.state = State::InFrame;
                        self.scanned = 0;
                    }
                    Found::Nothing => {
                        let keep = usize::from(src.last() == Some(&END_BLOCK));
                        let drop_len = src.len() - keep;
                        self.add_oversized(&src[..drop_len]);
                        src.advance(drop_len);
                        return Ok(None);
                    }
                },
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<MllpFrame>, MllpError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        match self.state {
            State::Idle => Ok(None),
            State::InFrame => {
                let buffered = src.len();
                src.clear();
                self.state = State::Idle;
                self.scanned = 0;
                Err(MllpError::Truncated { buffered })
            }
            State::Discarding => {
                let buffered = self.oversized_len + src.len();
                src.clear();
                self.oversized_len = 0;
                self.oversized_head.clear();
                self.state = State::Idle;
                Err(MllpError::Truncated { buffered })
            }
        }
    }
}

impl MllpCodec {
    fn add_oversized(&mut self, bytes: &[u8]) {
        let room = OVERSIZED_HEAD.saturating_sub(self.oversized_head.len());
        if room > 0 {
            self.oversized_head
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        self.oversized_len += bytes.len();
    }
}

/// Checks that `payload` can be framed: no `0x0B`, and no `0x1C` at all (a
/// `0x1C` followed by `0x0D` would end the frame early; a lone one is not valid
/// HL7 text either).
pub fn check_payload(payload: &[u8]) -> Result<(), MllpError> {
    match payload
        .iter()
        .position(|&b| b == START_BLOCK || b == END_BLOCK)
    {
        Some(offset) => Err(MllpError::FramingByteInPayload {
            byte: payload[offset],
            offset,
        }),
        None => Ok(()),
    }
}

/// Appends one framed payload to `dst` (no validation; see [`check_payload`]).
pub fn frame_into(payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(payload.len() + 3);
    dst.put_u8(START_BLOCK);
    dst.put_slice(payload);
    dst.put_u8(END_BLOCK);
    dst.put_u8(CARRIAGE_RETURN);
}

impl Encoder<&[u8]> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        check_payload(item)?;
        frame_into(item, dst);
        Ok(())
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), MllpError> {
        self.encode(&item[..], dst)
    }
}

/// Checks the decoder's invariants on one input; used by the `mllp_codec` fuzz
/// target and by the test that replays its corpus.
///
/// `data[0]` picks the maximum frame size, `data[1]` the read-chunk pattern, the
/// rest is the byte stream. Checked: decoding never panics; the stream fed in
/// chunks yields exactly what it yields fed whole; no payload exceeds the
/// maximum; the buffer never holds more than one maximum frame; every payload
/// re-encodes and decodes to itself.
pub fn self_check(data: &[u8]) -> Result<(), String> {
    let (max, pattern, stream) = match data {
        [a, b, rest @ ..] => (usize::from(*a) * 8 + 1, usize::from(*b), rest),
        _ => return Ok(()),
    };
    let run = |chunked: bool| -> Result<(Vec<MllpFrame>, u64), String> {
        let mut codec = MllpCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut step = 0;
        while pos < stream.len() {
            let len = if chunked {
                1 + (pattern.wrapping_mul(31).wrapping_add(step * 7) % 23)
            } else {
                stream.len()
            };
            let end = (pos + len).min(stream.len());
            buf.extend_from_slice(&stream[pos..end]);
            pos = end;
            step += 1;
            while let Some(frame) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
                out.push(frame);
            }
            if buf.len() > max + 1 {
                return Err(format!("buffer holds {} bytes, max frame {max}", buf.len()));
            }
        }
        Ok((out, codec.take_discarded()))
    };
    let (whole, junk_whole) = run(false)?;
    let (chunked, junk_chunked) = run(true)?;
    if whole != chunked {
        return Err(format!(
            "chunked decoding differs: {whole:?} vs {chunked:?}"
        ));
    }
    if junk_whole != junk_chunked {
        return Err(format!(
            "discarded count differs: {junk_whole} vs {junk_chunked}"
        ));
    }
    for frame in &whole {
        if let MllpFrame::Message(p) = frame {
            if p.len() > max {
                return Err(format!("payload of {} bytes over max {max}", p.len()));
            }
            let mut wire = BytesMut::new();
            let mut codec = MllpCodec::new(max);
            if codec.encode(&p[..], &mut wire).is_ok() {
                match codec.decode(&mut wire).map_err(|e| e.to_string())? {
                    Some(MllpFrame::Message(q)) if q == *p => {}
                    other => return Err(format!("round trip of {p:?} gave {other:?}")),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut MllpCodec, chunks: &[&[u8]]) -> Vec<MllpFrame> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = codec.decode(&mut buf).expect("decode") {
                out.push(frame);
            }
        }
        out
    }

    fn msg(s: &[u8]) -> MllpFrame {
        MllpFrame::Message(Bytes::copy_from_slice(s))
    }

    #[test]
    fn one_frame() {
        let mut c = MllpCodec::default();
        let frames = decode_all(&mut c, &[b"\x0bMSH|a\x1c\x0d"]);
        assert_eq!(frames, vec![msg(b"MSH|a")]);
        assert_eq!(c.take_discarded(), 0);
        assert!(!c.in_frame());
    }

    #[test]
    fn junk_before_start_is_counted() {
        let mut c = MllpCodec::default();
        let frames = decode_all(&mut c, &[b"GET / HTTP/1.0\r\n", b"xx\x0bA\x1c\x0d"]);
        assert_eq!(frames, vec![msg(b"A")]);
        assert_eq!(c.take_discarded(), 18);
        assert_eq!(c.take_discarded(), 0);
    }

    #[test]
    fn coalesced_frames_stay_separate() {
        let mut c = MllpCodec::default();
        let frames = decode_all(
            &mut c,
            &[b"\x0bONE\x1c\x0d\x0bTWO\x1c\x0d\x0bTHREE\x1c\x0d"],
        );
        assert_eq!(frames, vec![msg(b"ONE"), msg(b"TWO"), msg(b"THREE")]);
    }

    #[test]
    fn terminator_split_between_reads() {
        let mut c = MllpCodec::default();
        let frames = decode_all(&mut c, &[b"\x0bMSH|x\x1c", b"\x0d"]);
        assert_eq!(frames, vec![msg(b"MSH|x")]);
    }

    #[test]
    fn lone_fs_is_content() {
        let mut c = MllpCodec::default();
        let frames = decode_all(&mut c, &[b"\x0bA\x1cB\x1c\x0d"]);
        assert_eq!(frames, vec![msg(b"A\x1cB")]);
    }

    #[test]
    fn byte_by_byte() {
        let mut c = MllpCodec::default();
        let input = b"zz\x0bMSH|1\rPID|1\x1c\x0d\x0b\x1c\x0d";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let frames = decode_all(&mut c, &chunks);
        assert_eq!(frames, vec![msg(b"MSH|1\rPID|1"), msg(b"")]);
        assert_eq!(c.take_discarded(), 2);
    }

    #[test]
    fn start_inside_frame_restarts() {
        let mut c = MllpCodec::default();
        let frames = decode_all(&mut c, &[b"\x0bhalf a mess", b"\x0bWHOLE\x1c\x0d"]);
        assert_eq!(frames, vec![msg(b"WHOLE")]);
        assert_eq!(c.take_discarded(), 11);
    }

    #[test]
    fn oversize_in_one_read_then_resync() {
        let mut c = MllpCodec::new(4);
        let frames = decode_all(&mut c, &[b"\x0bTOOLONG\x1c\x0d\x0bOK\x1c\x0d"]);
        assert_eq!(
            frames,
            vec![
                MllpFrame::Oversized {
                    len: 7,
                    head: Bytes::from_static(b"TOOLONG")
                },
                msg(b"OK")
            ]
        );
    }

    #[test]
    fn oversize_streamed_is_not_buffered() {
        let mut c = MllpCodec::new(8);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\x0b");
        assert!(c.decode(&mut buf).expect("decode").is_none());
        for _ in 0..1000 {
            buf.extend_from_slice(b"0123456789");
            assert!(c.decode(&mut buf).expect("decode").is_none());
            assert!(buf.len() <= 10, "buffer grew to {}", buf.len());
        }
        buf.extend_from_slice(b"\x1c");
        assert!(c.decode(&mut buf).expect("decode").is_none());
        buf.extend_from_slice(b"\x0d\x0bOK\x1c\x0d");
        let first = c.decode(&mut buf).expect("decode");
        match first {
            Some(MllpFrame::Oversized { len, head }) => {
                assert_eq!(len, 10_000);
                assert_eq!(head.len(), OVERSIZED_HEAD);
                assert!(head.starts_with(b"0123456789"));
            }
            other => panic!("expected oversized, got {other:?}"),
        }
        assert_eq!(c.decode(&mut buf).expect("decode"), Some(msg(b"OK")));
    }

    #[test]
    fn exactly_max_is_accepted_even_with_split_terminator() {
        let mut c = MllpCodec::new(4);
        let frames = decode_all(&mut c, &[b"\x0bABCD\x1c", b"\x0d"]);
        assert_eq!(frames, vec![msg(b"ABCD")]);
        let frames = decode_all(&mut c, &[b"\x0bABCDE", b"\x1c\x0d"]);
        assert!(matches!(frames[..], [MllpFrame::Oversized { len: 5, .. }]));
    }

    #[test]
    fn unterminated_oversize_restarted_by_new_start_is_junk() {
        // Found by the fuzzer: chunked and whole input must agree, and an
        // abandoned fragment gets no answer, however long it was.
        for chunks in [
            &[&b"\x0bLONGLONG"[..], &b"\x0bOK\x1c\x0d"[..]][..],
            &[&b"\x0bLONGLONG\x0bOK\x1c\x0d"[..]][..],
        ] {
            let mut c = MllpCodec::new(3);
            let frames = decode_all(&mut c, chunks);
            assert_eq!(frames, vec![msg(b"OK")]);
            assert_eq!(c.take_discarded(), 8);
        }
    }

    #[test]
    fn eof_inside_frame_is_truncated() {
        let mut c = MllpCodec::default();
        let mut buf = BytesMut::from(&b"\x0bMSH|partial"[..]);
        assert!(c.decode(&mut buf).expect("decode").is_none());
        match c.decode_eof(&mut buf) {
            Err(MllpError::Truncated { buffered }) => assert_eq!(buffered, 11),
            other => panic!("expected truncated, got {other:?}"),
        }
        let mut empty = BytesMut::from(&b"trailing junk"[..]);
        assert!(c.decode_eof(&mut empty).expect("eof").is_none());
    }

    #[test]
    fn encoder_frames_and_refuses_framing_bytes() {
        let mut c = MllpCodec::default();
        let mut dst = BytesMut::new();
        c.encode(&b"MSH|x"[..], &mut dst).expect("encode");
        assert_eq!(&dst[..], b"\x0bMSH|x\x1c\x0d");
        assert!(matches!(
            c.encode(&b"A\x1c\x0dB"[..], &mut dst),
            Err(MllpError::FramingByteInPayload { offset: 1, .. })
        ));
        assert!(c.encode(&b"A\x0b"[..], &mut dst).is_err());
    }

    /// Payload bytes: anything but the framing bytes.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|v| v.into_iter().filter(|b| *b != 0x0B && *b != 0x1C).collect())
    }

    /// Junk between frames: anything but a start byte.
    fn junk() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..20)
            .prop_map(|v| v.into_iter().filter(|b| *b != 0x0B).collect())
    }

    proptest! {
        #[test]
        fn any_split_of_frames_and_junk_yields_exactly_the_frames(
            frames in proptest::collection::vec((junk(), payload()), 0..12),
            trailing in junk(),
            cuts in proptest::collection::vec(0usize..4000, 0..40),
            max in 1usize..400,
        ) {
            let mut wire = Vec::new();
            let mut junk_len = trailing.len() as u64;
            for (j, p) in &frames {
                wire.extend_from_slice(j);
                junk_len += j.len() as u64;
                wire.push(START_BLOCK);
                wire.extend_from_slice(p);
                wire.extend_from_slice(&[END_BLOCK, CARRIAGE_RETURN]);
            }
            wire.extend_from_slice(&trailing);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            points.push(0);
            points.push(wire.len());
            points.sort_unstable();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &wire[w[0]..w[1]]).collect();

            let mut codec = MllpCodec::new(max);
            let got = decode_all(&mut codec, &chunks);
            let expected: Vec<MllpFrame> = frames.iter().map(|(_, p)| {
                if p.len() <= max {
                    msg(p)
                } else {
                    MllpFrame::Oversized {
                        len: p.len(),
                        head: Bytes::copy_from_slice(&p[..p.len().min(OVERSIZED_HEAD)]),
                    }
                }
            }).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(codec.take_discarded(), junk_len);
            prop_assert!(!codec.in_frame());
        }

        #[test]
        fn decoder_never_panics_and_bounds_memory(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40),
            max in 1usize..64,
        ) {
            let mut codec = MllpCodec::new(max);
            let mut buf = BytesMut::new();
            for chunk in &chunks {
                buf.extend_from_slice(chunk);
                while let Some(frame) = codec.decode(&mut buf).expect("decode is infallible") {
                    if let MllpFrame::Message(p) = frame {
                        prop_assert!(p.len() <= max);
                    }
                }
                prop_assert!(buf.len() <= max + 1);
            }
            let _ = codec.decode_eof(&mut buf);
        }
    }
}
