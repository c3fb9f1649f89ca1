//! The records the ends send each other, and their verification byte by byte: a
//! header of six little-endian words (magic, lane, tag, sequence number, length,
//! check word) and a position-dependent body, so that a shifted, repeated, foreign or
//! corrupt chunk shows; [`parse`] reads a received stream back into the records of
//! its own connection and direction.

const MAGIC: u32 = 0x5354_524D;
/// magic, lane, tag, seq, len, check: six little-endian words.
pub(super) const HEADER: usize = 24;

/// One direction of one connection: `tag` is the round times two plus the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamId {
    pub(super) lane: u32,
    pub(super) tag: u32,
}

fn check_word(id: StreamId, seq: u32, len: u32) -> u32 {
    (MAGIC ^ id.lane ^ id.tag.rotate_left(8) ^ seq.rotate_left(16) ^ len.rotate_left(24))
        .wrapping_mul(0x9E37_79B1)
}

fn body_key(id: StreamId, seq: u32) -> u32 {
    id.lane.wrapping_mul(0x85EB_CA6B)
        ^ id.tag.wrapping_mul(0xC2B2_AE35)
        ^ seq.wrapping_mul(0x27D4_EB2F)
}

/// Four body bytes: position-dependent, so a shifted, repeated or foreign chunk shows.
fn body_word(key: u32, word: u32) -> [u8; 4] {
    ((word ^ key).wrapping_mul(0x9E37_79B1) ^ word.rotate_left(16)).to_le_bytes()
}

pub(super) fn record(id: StreamId, seq: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + len);
    let (seq, len32) = (seq as u32, len as u32);
    for word in [
        MAGIC,
        id.lane,
        id.tag,
        seq,
        len32,
        check_word(id, seq, len32),
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let key = body_key(id, seq);
    let words = len / 4;
    for word in 0..words {
        out.extend_from_slice(&body_word(key, word as u32));
    }
    out.extend_from_slice(&body_word(key, words as u32)[..len % 4]);
    out
}

/// Where `body` first differs from the body of its record, if anywhere.
fn body_mismatch(key: u32, body: &[u8]) -> Option<usize> {
    body.chunks(4)
        .enumerate()
        .find(|(word, chunk)| **chunk != body_word(key, *word as u32)[..chunk.len()])
        .map(|(word, _)| word * 4)
}

/// A record found in a received stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    /// `None` for a header cut short before its sequence number.
    pub(super) seq: Option<usize>,
    pub(super) whole: bool,
}

/// Parses a received stream into the records of `id`, checking every byte.
pub(super) fn parse(id: StreamId, sizes: &[usize], data: &[u8]) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    let (mut at, mut next) = (0, 0usize);
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < 16 {
            // A header cut short: what there is must begin a header of this stream.
            let mut expect = Vec::new();
            for word in [MAGIC, id.lane, id.tag] {
                expect.extend_from_slice(&word.to_le_bytes());
            }
            let n = rest.len().min(expect.len());
            if rest[..n] != expect[..n] {
                return Err(format!("garbage at byte {at}: {:02x?}", &rest[..n]));
            }
            seen.push(Seen {
                seq: None,
                whole: false,
            });
            break;
        }
        let word = |i: usize| {
            u32::from_le_bytes([
                rest[4 * i],
                rest[4 * i + 1],
                rest[4 * i + 2],
                rest[4 * i + 3],
            ])
        };
        let (magic, lane, tag, seq) = (word(0), word(1), word(2), word(3));
        if magic != MAGIC {
            let after = match next {
                0 => "at the start".to_string(),
                n => format!("after record {}", n - 1),
            };
            return Err(format!(
                "garbage at byte {at} ({after}): {:02x?}",
                &rest[..16]
            ));
        }
        if (lane, tag) != (id.lane, id.tag) {
            return Err(format!(
                "byte {at}: a record of another stream (lane {lane}, tag {tag}, seq {seq}) \
                 in lane {}, tag {}",
                id.lane, id.tag
            ));
        }
        let seq = seq as usize;
        if seq < next {
            return Err(format!(
                "byte {at}: record {seq} after record {}: duplicated or out of order",
                next - 1
            ));
        }
        let Some(&len) = sizes.get(seq) else {
            return Err(format!(
                "byte {at}: record {seq} was never part of the stream"
            ));
        };
        if rest.len() >= HEADER
            && (word(4), word(5)) != (len as u32, check_word(id, seq as u32, len as u32))
        {
            return Err(format!("byte {at}: record {seq} has a corrupt header"));
        }
        let end = rest.len().min(HEADER + len);
        let body = rest.get(HEADER..end).unwrap_or(&[]);
        if let Some(bad) = body_mismatch(body_key(id, seq as u32), body) {
            return Err(format!(
                "record {seq} corrupt at its body byte {bad} (stream byte {})",
                at + HEADER + bad
            ));
        }
        seen.push(Seen {
            seq: Some(seq),
            whole: end == HEADER + len,
        });
        at += end;
        next = seq + 1;
    }
    Ok(seen)
}
