//! The on-disk format (see `FORMAT.md`): segment headers, record framing, batch bodies, seal
//! records and trailers, snapshot file headers. Pure functions over byte buffers; nothing here
//! touches a file. Decoders never panic: every length is checked against the buffer.

use omnipaxos::{ballot_leader_election::Ballot, storage::StopSign};
use serde::{Deserialize, Serialize};

use paxstore_core::codec;

/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PAXSEG\0\x01";
/// The first eight bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PAXSNP\0\x01";
/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the checkpoint in a segment header.
pub const SEGMENT_HEADER_PREFIX: usize = 32;
/// Record header: body length (u32), CRC32C (u32), kind (u8).
pub const RECORD_HEADER: usize = 9;
/// A record holding one `write_atomically` batch.
pub const KIND_BATCH: u8 = 1;
/// The record that seals a segment: the positions of its live entries.
pub const KIND_SEAL: u8 = 2;
/// A many-logs store's record holding one `write_atomically` batch of one log: the log id
/// (u64), then a batch body.
pub const KIND_LOG_BATCH: u8 = 3;
/// A many-logs store's record adding or dropping a log.
pub const KIND_REGISTRY: u8 = 4;
/// The record that seals a many-logs store's segment: the summary of every log's live runs in
/// it (their position tables are in the [`KIND_STORE_TABLES`] record before it).
pub const KIND_STORE_SEAL: u8 = 5;
/// The position tables of a many-logs store's sealed segment, just before its summary.
pub const KIND_STORE_TABLES: u8 = 7;
/// A many-logs store's record opening each chunk (the records written with one write): where
/// the stream was known durable when the chunk was written.
pub const KIND_GROUP: u8 = 6;
/// Length of a framed group record.
pub const GROUP_RECORD: usize = RECORD_HEADER + 8;
/// The first eight bytes of every segment of a many-logs store.
pub const STORE_SEGMENT_MAGIC: [u8; 8] = *b"PAXMLS\0\x01";
/// The fixed trailer at the end of a sealed segment.
pub const TRAILER_LEN: usize = 32;
const TRAILER_MAGIC: u32 = u32::from_le_bytes(*b"PXTR");
/// Snapshot file header length.
pub const SNAPSHOT_HEADER: usize = 36;
/// Largest record body (1 GiB; with segments of at most 1 GiB, offsets fit in 32 bits).
pub const MAX_RECORD_BODY: u64 = 1 << 30;

const OP_APPEND: u8 = 1;
const OP_TRIM: u8 = 2;
const OP_META: u8 = 3;
const OP_RELOCATE: u8 = 4;
/// Per-entry frame inside an append op: length (u32) and CRC32C (u32) of the entry bytes.
pub const ENTRY_FRAME: usize = 8;

/// Where a stored snapshot lives and how to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The snapshot file's id (`snap-{id:016x}.snap`).
    pub id: u64,
    /// Length of the encoded snapshot.
    pub len: u64,
    /// CRC32C of the encoded snapshot.
    pub crc: u32,
}

/// The metadata of the store; a copy sits in every segment header.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Lowest stored index.
    pub first: u64,
    /// One past the highest stored index.
    pub next: u64,
    /// Promised round.
    pub promise: Option<Ballot>,
    /// Accepted round.
    pub accepted: Option<Ballot>,
    /// Decided index.
    pub decided: u64,
    /// Compacted index.
    pub compacted: u64,
    /// Stop-sign.
    pub stopsign: Option<StopSign>,
    /// The current snapshot.
    pub snapshot: Option<SnapshotRef>,
}

/// A metadata write inside a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaOp {
    /// `SetPromise`.
    Promise(Ballot),
    /// `SetAcceptedRound`.
    Accepted(Ballot),
    /// `SetDecidedIndex`.
    Decided(u64),
    /// `SetCompactedIdx`.
    Compacted(u64),
    /// `SetStopsign`.
    Stopsign(Option<StopSign>),
    /// `SetSnapshot`, pointing at a snapshot file.
    Snapshot(Option<SnapshotRef>),
}

impl MetaOp {
    /// Applies the write to a checkpoint.
    pub fn apply(&self, c: &mut Checkpoint) {
        match self {
            MetaOp::Promise(b) => c.promise = Some(*b),
            MetaOp::Accepted(b) => c.accepted = Some(*b),
            MetaOp::Decided(i) => c.decided = *i,
            MetaOp::Compacted(i) => c.compacted = *i,
            MetaOp::Stopsign(s) => c.stopsign = s.clone(),
            MetaOp::Snapshot(s) => c.snapshot = *s,
        }
    }
}

/// Position of an entry's encoded bytes: an offset and a length (in a record buffer, or in a
/// segment once the record is placed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Byte offset of the entry bytes (after its 8-byte frame).
    pub offset: u32,
    /// Length of the entry bytes.
    pub len: u32,
}

/// What one op of a batch record does to the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Drop entries `>= at`, then append entries at `at` (plain appends have `at == next`).
    Append {
        /// Where the entries land.
        at: u64,
        /// Their positions.
        locs: Vec<Loc>,
    },
    /// `trim(i)`.
    Trim(u64),
    /// A metadata write.
    Meta(MetaOp),
    /// Many-logs store only: the stored entries `[at, at + locs.len())` are unchanged, and
    /// their bytes are now here (written by the store's rewriter).
    Relocate {
        /// The first relocated index.
        at: u64,
        /// The entries' new positions.
        locs: Vec<Loc>,
    },
}

/// Why bytes could not be decoded: corrupt, or of another format version.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// The bytes are damaged or not ours.
    Corrupt(String),
    /// A format version this build does not read.
    Version(u32),
}

fn corrupt<T>(reason: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Corrupt(reason.into()))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

/// A segment header.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentHeader {
    /// The segment's id (`seg-{id:016x}.log`).
    pub id: u64,
    /// The index of the first entry appended to this segment (the log's `next` when created).
    pub first_index: u64,
    /// The store's metadata when the segment was created.
    pub checkpoint: Checkpoint,
}

/// Encodes a segment header.
pub fn encode_header(h: &SegmentHeader) -> Result<Vec<u8>, paxstore_core::Error> {
    let ckpt = codec::encode("segment checkpoint", &h.checkpoint)?;
    Ok(encode_header_with(
        SEGMENT_MAGIC,
        h.id,
        h.first_index,
        &ckpt,
    ))
}

/// The header layout both kinds of store share: magic, version, id, a u64 field, the
/// checkpoint's length and bytes, a CRC.
fn encode_header_with(magic: [u8; 8], id: u64, field: u64, ckpt: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(SEGMENT_HEADER_PREFIX + ckpt.len() + 4);
    b.extend_from_slice(&magic);
    b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&field.to_le_bytes());
    b.extend_from_slice(&(ckpt.len() as u32).to_le_bytes());
    b.extend_from_slice(ckpt);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// From the fixed prefix of a header: the whole header's length.
pub fn header_len(prefix: &[u8]) -> Result<usize, DecodeError> {
    header_len_with(prefix, SEGMENT_MAGIC)
}

fn header_len_with(prefix: &[u8], magic: [u8; 8]) -> Result<usize, DecodeError> {
    if prefix.len() < SEGMENT_HEADER_PREFIX {
        return corrupt(format!(
            "segment header needs {SEGMENT_HEADER_PREFIX} bytes, file has {}",
            prefix.len()
        ));
    }
    if prefix[..8] != magic {
        let other = if magic == SEGMENT_MAGIC {
            STORE_SEGMENT_MAGIC
        } else {
            SEGMENT_MAGIC
        };
        if prefix[..8] == other {
            return corrupt(if magic == SEGMENT_MAGIC {
                "a many-logs store's segment in a single-log store"
            } else {
                "a single-log store's segment in a many-logs store"
            });
        }
        return corrupt("not a paxstore segment (bad magic)");
    }
    let version = u32_at(prefix, 8).unwrap_or(0);
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(version));
    }
    let ckpt_len = u32_at(prefix, 28).unwrap_or(0) as usize;
    if ckpt_len > 64 << 20 {
        return corrupt(format!(
            "segment header claims a {ckpt_len}-byte checkpoint"
        ));
    }
    Ok(SEGMENT_HEADER_PREFIX + ckpt_len + 4)
}

/// Decodes a whole segment header (`bytes` must hold at least [`header_len`] bytes).
pub fn decode_header(bytes: &[u8]) -> Result<(SegmentHeader, usize), DecodeError> {
    let (id, first_index, ckpt, len) = decode_header_with(bytes, SEGMENT_MAGIC)?;
    let checkpoint = codec::decode("segment checkpoint", ckpt)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    Ok((
        SegmentHeader {
            id,
            first_index,
            checkpoint,
        },
        len,
    ))
}

/// Checks a header's length and CRC: its id, its u64 field, its checkpoint bytes, its length.
fn decode_header_with(
    bytes: &[u8],
    magic: [u8; 8],
) -> Result<(u64, u64, &[u8], usize), DecodeError> {
    let len = header_len_with(bytes, magic)?;
    if bytes.len() < len {
        return corrupt(format!(
            "segment header is {len} bytes, file has {}",
            bytes.len()
        ));
    }
    let stored = u32_at(bytes, len - 4).unwrap_or(0);
    if crc32c::crc32c(&bytes[..len - 4]) != stored {
        return corrupt("segment header checksum mismatch");
    }
    let id = u64_at(bytes, 12).unwrap_or(0);
    let field = u64_at(bytes, 20).unwrap_or(0);
    Ok((id, field, &bytes[SEGMENT_HEADER_PREFIX..len - 4], len))
}

/// One log's entry in a many-logs store's segment header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogCheckpoint {
    /// The log's id (never reused).
    pub id: u64,
    /// The log's name.
    pub name: String,
    /// Its metadata and bounds.
    pub meta: Checkpoint,
}

/// A many-logs store's segment header checkpoint: every log, when the segment was created.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StoreCheckpoint {
    /// The next snapshot file id.
    pub next_snapshot_id: u64,
    /// Every log, by id.
    pub logs: Vec<LogCheckpoint>,
}

/// Encodes a many-logs store's segment header (`next_log_id` in the u64 field).
pub fn encode_store_header(
    id: u64,
    next_log_id: u64,
    ckpt: &StoreCheckpoint,
) -> Result<Vec<u8>, paxstore_core::Error> {
    let bytes = codec::encode("store checkpoint", ckpt)?;
    Ok(encode_header_with(
        STORE_SEGMENT_MAGIC,
        id,
        next_log_id,
        &bytes,
    ))
}

/// From the fixed prefix of a many-logs store's header: the whole header's length.
pub fn store_header_len(prefix: &[u8]) -> Result<usize, DecodeError> {
    header_len_with(prefix, STORE_SEGMENT_MAGIC)
}

/// Decodes a many-logs store's segment header: segment id, next log id, checkpoint, length.
pub fn decode_store_header(
    bytes: &[u8],
) -> Result<(u64, u64, StoreCheckpoint, usize), DecodeError> {
    let (id, next_log_id, ckpt, len) = decode_header_with(bytes, STORE_SEGMENT_MAGIC)?;
    let ckpt =
        codec::decode("store checkpoint", ckpt).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    Ok((id, next_log_id, ckpt, len))
}

/// Fills in the header of a record whose body follows [`RECORD_HEADER`] placeholder bytes.
pub fn seal_record_frame(buf: &mut [u8], kind: u8) {
    let body_len = (buf.len() - RECORD_HEADER) as u32;
    buf[0..4].copy_from_slice(&body_len.to_le_bytes());
    buf[8] = kind;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), &buf[8..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// What the bytes at a position hold.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A record with a valid checksum: its kind, the body's range in the buffer, the total
    /// length.
    Record {
        /// The record kind.
        kind: u8,
        /// Body start (relative to the buffer).
        body: std::ops::Range<usize>,
        /// Header plus body.
        total: usize,
    },
    /// Only zeros from here on (preallocated space): the clean end of the log.
    End,
    /// The record is cut short by the end of the buffer (a torn write).
    Truncated,
    /// A complete record whose checksum does not match, or a nonsense header.
    Bad {
        /// What is wrong.
        reason: String,
        /// Where the record claims to end, if its length field is plausible.
        claimed_end: Option<usize>,
    },
}

/// Whether `kind` is a record kind of either store.
pub fn is_record_kind(kind: u8) -> bool {
    (KIND_BATCH..=KIND_STORE_TABLES).contains(&kind)
}

/// A framed group record: every byte of its segment before `durable_end` was durable when
/// the chunk it opens was written.
pub fn encode_group(durable_end: u64) -> [u8; GROUP_RECORD] {
    let mut buf = [0u8; GROUP_RECORD];
    buf[RECORD_HEADER..].copy_from_slice(&durable_end.to_le_bytes());
    seal_record_frame(&mut buf, KIND_GROUP);
    buf
}

/// Decodes a group record's body: its `durable_end`.
pub fn parse_group(body: &[u8]) -> Result<u64, DecodeError> {
    match u64_at(body, 0) {
        Some(end) if body.len() == 8 => Ok(end),
        _ => corrupt(format!("group record of {} bytes", body.len())),
    }
}

/// Reads the record framed at the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Frame {
    if buf.is_empty() || buf.iter().all(|&b| b == 0) {
        return Frame::End;
    }
    if buf.len() < RECORD_HEADER {
        return Frame::Truncated;
    }
    let len = u32_at(buf, 0).unwrap_or(0) as usize;
    let crc = u32_at(buf, 4).unwrap_or(0);
    let kind = buf[8];
    if !is_record_kind(kind) {
        return Frame::Bad {
            reason: format!("unknown record kind {kind}"),
            claimed_end: None,
        };
    }
    let total = RECORD_HEADER + len;
    if buf.len() < total {
        return Frame::Truncated;
    }
    let actual = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), &buf[8..total]);
    if actual != crc {
        return Frame::Bad {
            reason: format!(
                "record checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
            ),
            claimed_end: Some(total),
        };
    }
    Frame::Record {
        kind,
        body: RECORD_HEADER..total,
        total,
    }
}

/// Builds one batch record; entries are framed so that each can be read alone.
pub struct BatchBuilder {
    buf: Vec<u8>,
    ops: u32,
    effects: Vec<Effect>,
    /// Where the op count sits: after the record header, and after the log id in a
    /// many-logs store's record.
    count_at: usize,
    kind: u8,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new() -> Self {
        Self::with_buffer(Vec::with_capacity(4096))
    }

    /// An empty batch that builds its record in `buf` (cleared first), so that a caller can
    /// reuse one allocation for every batch.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(RECORD_HEADER + 4, 0);
        BatchBuilder {
            buf,
            ops: 0,
            effects: Vec::new(),
            count_at: RECORD_HEADER,
            kind: KIND_BATCH,
        }
    }

    /// An empty batch of log `log` of a many-logs store ([`KIND_LOG_BATCH`]), built in `buf`.
    pub fn for_log(log: u64, mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(RECORD_HEADER, 0);
        buf.extend_from_slice(&log.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        BatchBuilder {
            buf,
            ops: 0,
            effects: Vec::new(),
            count_at: RECORD_HEADER + 8,
            kind: KIND_LOG_BATCH,
        }
    }

    /// Adds "the stored entries from `at` on, whose encoded bytes are `entries`, now live
    /// here" (a many-logs store's rewriter).
    pub fn relocate<'a>(&mut self, at: u64, entries: impl IntoIterator<Item = &'a [u8]>) {
        self.buf.push(OP_RELOCATE);
        self.buf.extend_from_slice(&at.to_le_bytes());
        let count_at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        let mut locs = Vec::new();
        for e in entries {
            self.buf.extend_from_slice(&(e.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&crc32c::crc32c(e).to_le_bytes());
            locs.push(Loc {
                offset: self.buf.len() as u32,
                len: e.len() as u32,
            });
            self.buf.extend_from_slice(e);
        }
        self.buf[count_at..count_at + 4].copy_from_slice(&(locs.len() as u32).to_le_bytes());
        self.ops += 1;
        self.effects.push(Effect::Relocate { at, locs });
    }

    /// Whether no op was added.
    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }

    /// Adds "drop entries `>= at`, append `entries` at `at`". On an encoding error the builder
    /// is left as it was before the call.
    pub fn append<'a, T: Serialize + 'a>(
        &mut self,
        at: u64,
        entries: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), paxstore_core::Error> {
        let start = self.buf.len();
        self.buf.push(OP_APPEND);
        self.buf.extend_from_slice(&at.to_le_bytes());
        let count_at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        let mut locs = Vec::new();
        for e in entries {
            let frame_at = self.buf.len();
            self.buf.extend_from_slice(&[0u8; ENTRY_FRAME]);
            if let Err(err) = codec::encode_into("entry", e, &mut self.buf) {
                self.buf.truncate(start);
                return Err(err);
            }
            let bytes = &self.buf[frame_at + ENTRY_FRAME..];
            let (len, crc) = (bytes.len() as u32, crc32c::crc32c(bytes));
            self.buf[frame_at..frame_at + 4].copy_from_slice(&len.to_le_bytes());
            self.buf[frame_at + 4..frame_at + 8].copy_from_slice(&crc.to_le_bytes());
            locs.push(Loc {
                offset: (frame_at + ENTRY_FRAME) as u32,
                len,
            });
        }
        self.buf[count_at..count_at + 4].copy_from_slice(&(locs.len() as u32).to_le_bytes());
        self.ops += 1;
        self.effects.push(Effect::Append { at, locs });
        Ok(())
    }

    /// Adds `trim(i)`.
    pub fn trim(&mut self, i: u64) {
        self.buf.push(OP_TRIM);
        self.buf.extend_from_slice(&i.to_le_bytes());
        self.ops += 1;
        self.effects.push(Effect::Trim(i));
    }

    /// Adds a metadata write.
    pub fn meta(&mut self, op: MetaOp) -> Result<(), paxstore_core::Error> {
        let bytes = codec::encode("metadata op", &op)?;
        self.buf.push(OP_META);
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&bytes);
        self.ops += 1;
        self.effects.push(Effect::Meta(op));
        Ok(())
    }

    /// The framed record and its effects (entry offsets relative to the record start).
    pub fn finish(mut self) -> (Vec<u8>, Vec<Effect>) {
        let at = self.count_at;
        self.buf[at..at + 4].copy_from_slice(&self.ops.to_le_bytes());
        seal_record_frame(&mut self.buf, self.kind);
        (self.buf, self.effects)
    }
}

/// Decodes a batch body (`body_offset` is where the body starts relative to the record, so
/// that entry offsets come out relative to the record start).
pub fn parse_batch(body: &[u8], body_offset: usize) -> Result<Vec<Effect>, DecodeError> {
    let n = match u32_at(body, 0) {
        Some(n) => n,
        None => return corrupt("batch body shorter than its op count"),
    };
    let mut at = 4;
    let mut effects = Vec::with_capacity((n as usize).min(1024));
    for op_no in 0..n {
        let Some(&tag) = body.get(at) else {
            return corrupt(format!("batch ends before op {op_no} of {n}"));
        };
        at += 1;
        match tag {
            OP_APPEND | OP_RELOCATE => {
                let (Some(index), Some(count)) = (u64_at(body, at), u32_at(body, at + 8)) else {
                    return corrupt("append op header cut short");
                };
                at += 12;
                let mut locs = Vec::with_capacity((count as usize).min(1 << 16));
                for _ in 0..count {
                    let Some(len) = u32_at(body, at) else {
                        return corrupt("entry frame cut short");
                    };
                    let start = at + ENTRY_FRAME;
                    let end = start + len as usize;
                    if end > body.len() {
                        return corrupt(format!("entry of {len} bytes overruns the record"));
                    }
                    locs.push(Loc {
                        offset: (body_offset + start) as u32,
                        len,
                    });
                    at = end;
                }
                effects.push(if tag == OP_APPEND {
                    Effect::Append { at: index, locs }
                } else {
                    Effect::Relocate { at: index, locs }
                });
            }
            OP_TRIM => {
                let Some(i) = u64_at(body, at) else {
                    return corrupt("trim op cut short");
                };
                at += 8;
                effects.push(Effect::Trim(i));
            }
            OP_META => {
                let Some(len) = u32_at(body, at) else {
                    return corrupt("metadata op cut short");
                };
                let start = at + 4;
                let end = start + len as usize;
                let Some(bytes) = body.get(start..end) else {
                    return corrupt("metadata op overruns the record");
                };
                let op = codec::decode("metadata op", bytes)
                    .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
                effects.push(Effect::Meta(op));
                at = end;
            }
            t => return corrupt(format!("unknown op tag {t} in batch")),
        }
    }
    if at != body.len() {
        return corrupt(format!("{} stray bytes after the last op", body.len() - at));
    }
    Ok(effects)
}

/// Decodes a many-logs store's batch body: the log id and the batch's effects (entry offsets
/// relative to the record start, `body_offset` being where the body starts).
pub fn parse_log_batch(body: &[u8], body_offset: usize) -> Result<(u64, Vec<Effect>), DecodeError> {
    let Some(log) = u64_at(body, 0) else {
        return corrupt("log batch body shorter than its log id");
    };
    Ok((log, parse_batch(&body[8..], body_offset + 8)?))
}

/// A change to a many-logs store's set of logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryOp {
    /// A new log `id` named `name`, empty.
    Add {
        /// The log's id (never reused).
        id: u64,
        /// Its name.
        name: String,
    },
    /// Log `id` is dropped with everything it held.
    Drop {
        /// The log's id.
        id: u64,
    },
}

/// Encodes a registry record (framed).
pub fn encode_registry(op: &RegistryOp) -> Vec<u8> {
    let mut buf = vec![0u8; RECORD_HEADER];
    match op {
        RegistryOp::Add { id, name } => {
            buf.push(1);
            buf.extend_from_slice(&id.to_le_bytes());
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
        }
        RegistryOp::Drop { id } => {
            buf.push(2);
            buf.extend_from_slice(&id.to_le_bytes());
        }
    }
    seal_record_frame(&mut buf, KIND_REGISTRY);
    buf
}

/// Decodes a registry record's body.
pub fn parse_registry(body: &[u8]) -> Result<RegistryOp, DecodeError> {
    let (Some(&tag), Some(id)) = (body.first(), u64_at(body, 1)) else {
        return corrupt("registry record cut short");
    };
    match tag {
        1 => {
            let Some(len) = body
                .get(9..11)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            else {
                return corrupt("registry add cut short");
            };
            if body.len() != 11 + len {
                return corrupt("registry add: name length disagrees with the record");
            }
            let Ok(name) = std::str::from_utf8(&body[11..]) else {
                return corrupt("registry add: the name is not UTF-8");
            };
            Ok(RegistryOp::Add {
                id,
                name: name.to_string(),
            })
        }
        2 if body.len() == 9 => Ok(RegistryOp::Drop { id }),
        t => corrupt(format!("unknown registry op {t} ({} bytes)", body.len())),
    }
}

/// One log's run of entries in a many-logs store's seal, as written at rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct SealRun {
    /// The log's id.
    pub log: u64,
    /// The index of the first entry.
    pub at: u64,
    /// The entries' positions in the segment.
    pub locs: Vec<Loc>,
}

/// One log's run as open reads it from a seal's summary: where its position table is, not the
/// table itself (read on first use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealRunRef {
    /// The log's id.
    pub log: u64,
    /// The index of the first entry.
    pub at: u64,
    /// The number of entries.
    pub count: u32,
    /// Bytes of the entries (for the store's space accounting).
    pub bytes: u64,
    /// Where the run's position table (`count` × (offset u32, length u32)) is in the segment.
    pub table_offset: u64,
    /// CRC32C of the table.
    pub table_crc: u32,
}

/// Bytes of one run in a seal summary.
const SUMMARY_RUN: usize = 8 + 8 + 4 + 8 + 8 + 4;

/// Encodes a many-logs store's seal, to be written at `at` of its segment: a TABLES record
/// (kind 7) with every run's position table, then the SUMMARY record (kind 5) listing the runs
/// with their tables' offsets and CRCs. Returns the bytes and the summary's offset in them (the
/// trailer points at the summary).
pub fn encode_store_seal(runs: &[SealRun], at: u64) -> (Vec<u8>, usize) {
    let tables: usize = runs.iter().map(|r| 8 * r.locs.len()).sum();
    let mut buf = Vec::with_capacity(2 * RECORD_HEADER + tables + 4 + SUMMARY_RUN * runs.len());
    buf.resize(RECORD_HEADER, 0);
    let mut refs = Vec::with_capacity(runs.len());
    for r in runs {
        let start = buf.len();
        for l in &r.locs {
            buf.extend_from_slice(&l.offset.to_le_bytes());
            buf.extend_from_slice(&l.len.to_le_bytes());
        }
        refs.push(SealRunRef {
            log: r.log,
            at: r.at,
            count: r.locs.len() as u32,
            bytes: r.locs.iter().map(|l| l.len as u64).sum(),
            table_offset: at + start as u64,
            table_crc: crc32c::crc32c(&buf[start..]),
        });
    }
    seal_record_frame(&mut buf, KIND_STORE_TABLES);
    let summary = buf.len();
    buf.resize(summary + RECORD_HEADER, 0);
    buf.extend_from_slice(&(refs.len() as u32).to_le_bytes());
    for r in &refs {
        buf.extend_from_slice(&r.log.to_le_bytes());
        buf.extend_from_slice(&r.at.to_le_bytes());
        buf.extend_from_slice(&r.count.to_le_bytes());
        buf.extend_from_slice(&r.bytes.to_le_bytes());
        buf.extend_from_slice(&r.table_offset.to_le_bytes());
        buf.extend_from_slice(&r.table_crc.to_le_bytes());
    }
    seal_record_frame(&mut buf[summary..], KIND_STORE_SEAL);
    (buf, summary)
}

/// Decodes a many-logs store's seal summary body.
pub fn parse_store_seal(body: &[u8]) -> Result<Vec<SealRunRef>, DecodeError> {
    let Some(n) = u32_at(body, 0) else {
        return corrupt("store seal summary cut short");
    };
    if (n as usize)
        .checked_mul(SUMMARY_RUN)
        .and_then(|b| b.checked_add(4))
        != Some(body.len())
    {
        return corrupt(format!(
            "store seal summary of {} bytes cannot hold {n} runs",
            body.len()
        ));
    }
    let mut runs = Vec::with_capacity(n as usize);
    for k in 0..n as usize {
        let b = 4 + k * SUMMARY_RUN;
        let run = SealRunRef {
            log: u64_at(body, b).unwrap_or(0),
            at: u64_at(body, b + 8).unwrap_or(0),
            count: u32_at(body, b + 16).unwrap_or(0),
            bytes: u64_at(body, b + 20).unwrap_or(0),
            table_offset: u64_at(body, b + 28).unwrap_or(0),
            table_crc: u32_at(body, b + 36).unwrap_or(0),
        };
        if run.at.checked_add(run.count as u64).is_none() {
            return corrupt("store seal run beyond the largest index");
        }
        runs.push(run);
    }
    Ok(runs)
}

/// Decodes a position table read from `r.table_offset`, checking its CRC.
pub fn parse_table(r: &SealRunRef, bytes: &[u8]) -> Result<Vec<Loc>, DecodeError> {
    if bytes.len() != 8 * r.count as usize || crc32c::crc32c(bytes) != r.table_crc {
        return corrupt(format!(
            "position table of log {} at {} fails its checksum",
            r.log, r.at
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Loc {
            offset: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            len: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The seal record of a segment: its live run `[first, first + locs.len())` and positions.
pub fn encode_seal(first: u64, locs: &[Loc]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(RECORD_HEADER + 16 + locs.len() * 8);
    buf.resize(RECORD_HEADER, 0);
    buf.extend_from_slice(&first.to_le_bytes());
    buf.extend_from_slice(&(locs.len() as u64).to_le_bytes());
    for l in locs {
        buf.extend_from_slice(&l.offset.to_le_bytes());
        buf.extend_from_slice(&l.len.to_le_bytes());
    }
    seal_record_frame(&mut buf, KIND_SEAL);
    buf
}

/// Decodes a seal body.
pub fn parse_seal(body: &[u8]) -> Result<(u64, Vec<Loc>), DecodeError> {
    let (Some(first), Some(n)) = (u64_at(body, 0), u64_at(body, 8)) else {
        return corrupt("seal record cut short");
    };
    if n.checked_mul(8).and_then(|b| b.checked_add(16)) != Some(body.len() as u64) {
        return corrupt(format!(
            "seal record of {} bytes cannot hold {n} positions",
            body.len()
        ));
    }
    let locs = (0..n as usize)
        .map(|k| Loc {
            offset: u32_at(body, 16 + 8 * k).unwrap_or(0),
            len: u32_at(body, 20 + 8 * k).unwrap_or(0),
        })
        .collect();
    Ok((first, locs))
}

/// The fixed trailer of a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the seal record.
    pub seal_offset: u64,
    /// First index of the segment's live run.
    pub first: u64,
    /// Number of entries in the run.
    pub count: u64,
}

/// Encodes a trailer.
pub fn encode_trailer(t: &Trailer) -> [u8; TRAILER_LEN] {
    let mut b = [0u8; TRAILER_LEN];
    b[0..8].copy_from_slice(&t.seal_offset.to_le_bytes());
    b[8..16].copy_from_slice(&t.first.to_le_bytes());
    b[16..24].copy_from_slice(&t.count.to_le_bytes());
    b[24..28].copy_from_slice(&TRAILER_MAGIC.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a trailer; `None` if the bytes are not one.
pub fn decode_trailer(b: &[u8]) -> Option<Trailer> {
    if b.len() != TRAILER_LEN
        || u32_at(b, 24)? != TRAILER_MAGIC
        || crc32c::crc32c(&b[0..28]) != u32_at(b, 28)?
    {
        return None;
    }
    Some(Trailer {
        seal_offset: u64_at(b, 0)?,
        first: u64_at(b, 8)?,
        count: u64_at(b, 16)?,
    })
}

/// Encodes a snapshot file header.
pub fn encode_snapshot_header(r: &SnapshotRef) -> [u8; SNAPSHOT_HEADER] {
    let mut b = [0u8; SNAPSHOT_HEADER];
    b[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[12..20].copy_from_slice(&r.id.to_le_bytes());
    b[20..28].copy_from_slice(&r.len.to_le_bytes());
    b[28..32].copy_from_slice(&r.crc.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..32]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a snapshot file header.
pub fn decode_snapshot_header(b: &[u8]) -> Result<SnapshotRef, DecodeError> {
    if b.len() < SNAPSHOT_HEADER || b[0..8] != SNAPSHOT_MAGIC {
        return corrupt("not a paxstore snapshot file (bad magic)");
    }
    let version = u32_at(b, 8).unwrap_or(0);
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(version));
    }
    if crc32c::crc32c(&b[0..32]) != u32_at(b, 32).unwrap_or(0) {
        return corrupt("snapshot header checksum mismatch");
    }
    Ok(SnapshotRef {
        id: u64_at(b, 12).unwrap_or(0),
        len: u64_at(b, 20).unwrap_or(0),
        crc: u32_at(b, 28).unwrap_or(0),
    })
}

/// Segment file name for `id`.
pub fn segment_name(id: u64) -> String {
    format!("seg-{id:016x}.log")
}

/// Snapshot file name for `id`.
pub fn snapshot_name(id: u64) -> String {
    format!("snap-{id:016x}.snap")
}

/// Parses `seg-{id}.log` / `snap-{id}.snap` names.
pub fn parse_name(name: &str) -> Option<(&'static str, u64)> {
    let (kind, rest) = if let Some(r) = name
        .strip_prefix("seg-")
        .and_then(|r| r.strip_suffix(".log"))
    {
        ("segment", r)
    } else if let Some(r) = name
        .strip_prefix("snap-")
        .and_then(|r| r.strip_suffix(".snap"))
    {
        ("snapshot", r)
    } else {
        return None;
    };
    // Exactly what `segment_name`/`snapshot_name` write: 16 lowercase hex digits (no sign, no
    // uppercase), so that open never takes a file it did not create for one of its own.
    if rest.len() != 16 || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(rest, 16).ok().map(|id| (kind, id))
}

/// Whether `name` is one of the names a paxstore-files store creates in its directory: the
/// marker, the lock, segments, snapshots and their temp names.
pub fn is_own_name(name: &str) -> bool {
    name == paxstore_core::identity::MARKER_FILE
        || name == paxstore_core::identity::MARKER_TMP
        || name == crate::LOCK_FILE
        || parse_name(name).is_some()
        || name
            .strip_suffix(".tmp")
            .is_some_and(|n| parse_name(n).is_some())
}
