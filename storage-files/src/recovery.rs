//! Opening a store: lock, list, check every segment header, take sealed segments' positions
//! from their trailers (without reading their records), replay the last segment, cut a torn
//! tail, check the snapshot file, remove leftovers.
//!
//! The cost is a fixed number of small reads per sealed segment plus one read of the last
//! segment, so it is bounded by the segment size, not by the length of the log.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::{Active, Engine, Files, Segment};
use crate::error::{Error, Result};
use crate::format::{self, DecodeError, Frame};
use crate::index::Index;
use crate::options::{FilesOptions, RecoveryMode};
use crate::stats::Stats;
use paxstore_core::identity::{Marker, MARKER_FILE, MARKER_TMP};

/// The backend name in the store marker.
pub const BACKEND: &str = "files";

pub(crate) fn decode_err(path: &Path, offset: u64, e: DecodeError) -> Error {
    match e {
        DecodeError::Corrupt(reason) => Error::corrupt(path, offset, reason),
        DecodeError::Version(found) => Error::FormatVersion {
            path: path.to_path_buf(),
            found,
            expected: format::FORMAT_VERSION,
        },
    }
}

/// The name of the lock file in a store directory.
pub const LOCK_FILE: &str = "LOCK";

pub(crate) fn open(dir: &Path, opts: FilesOptions) -> Result<Engine> {
    opts.validate()?;
    let started = Instant::now();
    let fs = opts.fs.clone();
    let Listing {
        marker,
        lock,
        segment_ids,
        snapshot_ids,
        leftovers,
    } = list_store(fs.as_ref(), dir, opts.adopt_unmarked, BACKEND)?;
    let mut segment_ids = segment_ids;

    let mut engine = Engine {
        files: Files::new(dir, opts, lock, marker),
        index: Index::new(),
        meta: Default::default(),
        scratch: Vec::new(),
    };
    // Segments below a gap in the ids are dead: their deletion was interrupted (a failed
    // unlink, or a power loss that kept a later unlink and not an earlier one). Only the run
    // of consecutive ids that ends at the newest segment is read; if the log's live entries
    // are not all in it, the check after replay reports the store as corrupt.
    let stale: Vec<u64> = segment_ids.drain(..live_from(&segment_ids)).collect();
    // The oldest segment read, when older ones were taken for dead.
    let stale_below = segment_ids.first().copied().filter(|_| !stale.is_empty());
    if let Some(&last) = segment_ids.last() {
        for &id in &segment_ids[..segment_ids.len() - 1] {
            open_sealed(&mut engine, id)?;
        }
        replay_last(&mut engine, last, stale_below)?;
        engine.next_segment_id = last + 1;
    }
    // What was just read may be only in the page cache (a process killed between a write
    // and its fdatasync, a seal's `set_len` before its fsync, a segment renamed into place
    // before the directory fsync). Everything below deletes or cuts on the strength of it,
    // and what this open returns is acted on by consensus: make it durable first.
    if let Some(&last) = segment_ids.last() {
        if engine.segments.contains_key(&last) {
            let file = engine.handle(last)?;
            engine.stats.fsyncs += 1;
            file.sync_all()
                .map_err(|e| Error::io("fsync", engine.path(&format::segment_name(last)), e))?;
        }
    }
    engine.next_snapshot_id = snapshot_ids.last().map_or(1, |&id| id + 1);
    let snapshots = vec![("the log".to_string(), &mut engine.meta.snapshot)];
    engine
        .files
        .settle_files(&leftovers, &snapshot_ids, snapshots, &stale)?;
    engine.reclaim_segments();
    engine.check()?;
    engine.stats.last_recovery = started.elapsed();
    Ok(engine)
}

/// What the start of an open finds in a store's directory.
pub(crate) struct Listing {
    pub(crate) marker: Marker,
    pub(crate) lock: Box<dyn crate::env::FsLock>,
    /// Segment ids, ascending.
    pub(crate) segment_ids: Vec<u64>,
    /// Snapshot file ids, ascending.
    pub(crate) snapshot_ids: Vec<u64>,
    /// Temp files of interrupted creations (the exact temp names the stores write).
    pub(crate) leftovers: Vec<String>,
}

/// The start of both stores' open: the directory made (durably), its marker read or written
/// for `backend` (anything else refused), its lock taken, its files listed (a file that is not
/// the store's refused).
pub(crate) fn list_store(
    fs: &dyn crate::env::FileSystem,
    dir: &Path,
    adopt_unmarked: bool,
    backend: &str,
) -> Result<Listing> {
    ensure_dir(fs, dir)?;
    let names = fs
        .list(dir)
        .map_err(|e| Error::io("list directory", dir, e))?;
    let marker = identify(fs, dir, &names, adopt_unmarked, backend)?;
    let lock = take_lock(fs, &dir.join(LOCK_FILE))?;
    let names = fs
        .list(dir)
        .map_err(|e| Error::io("list directory", dir, e))?;
    if let Some(name) = names.iter().find(|n| !format::is_own_name(n)) {
        return Err(Error::Foreign {
            dir: dir.to_path_buf(),
            found: format!("`{name}` appeared in it while it was being opened"),
            hint: "Keep other files out of a store's directory.".into(),
        });
    }
    let mut segment_ids = Vec::new();
    let mut snapshot_ids = Vec::new();
    let mut leftovers = Vec::new();
    for name in names {
        match format::parse_name(&name) {
            Some(("segment", id)) => segment_ids.push(id),
            Some((_, id)) => snapshot_ids.push(id),
            // Only the exact temp names the stores write (checked by `is_own_name`).
            None if name.ends_with(".tmp") && name != MARKER_TMP => leftovers.push(name),
            None => {}
        }
    }
    segment_ids.sort_unstable();
    snapshot_ids.sort_unstable();
    Ok(Listing {
        marker,
        lock,
        segment_ids,
        snapshot_ids,
        leftovers,
    })
}

/// Creates `dir` if missing (and its missing parents) and makes its entry durable.
///
/// Every directory is made durable by an fsync of its parent before anything is created in it,
/// whether this call created it or an earlier open that may have died before that fsync. When
/// a directory is created, its parent's own entry is fsynced too, for the same reason (a
/// directory is only ever created once its parent's entry is durable, so one level suffices).
fn ensure_dir(fs: &dyn crate::env::FileSystem, dir: &Path) -> Result<()> {
    fn parent_of(dir: &Path) -> Option<&Path> {
        dir.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
    }
    fn sync_parent(fs: &dyn crate::env::FileSystem, dir: &Path) -> Result<()> {
        match parent_of(dir) {
            Some(parent) => fs
                .sync_dir(parent)
                .map_err(|e| Error::io("fsync directory", parent, e)),
            None => Ok(()),
        }
    }
    fn make(fs: &dyn crate::env::FileSystem, dir: &Path) -> Result<()> {
        match fs.create_dir(dir) {
            Ok(()) => {
                // Its parent may have been made by an open that died before its fsync.
                if let Some(parent) = parent_of(dir) {
                    sync_parent(fs, parent)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(parent) = parent_of(dir) else {
                    return Err(Error::io("create directory", dir, e));
                };
                make(fs, parent)?;
                match fs.create_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("create directory", dir, e)),
                }
            }
            Err(e) => return Err(Error::io("create directory", dir, e)),
        }
        sync_parent(fs, dir)
    }
    make(fs, dir)
}

/// Reads the store marker, or writes it into an empty directory (before anything else, so
/// that a crash during creation leaves an empty directory, a leftover temp marker, or a
/// marked store: all of which open takes). Anything else is refused, and nothing in the
/// directory is changed.
fn identify(
    fs: &dyn crate::env::FileSystem,
    dir: &Path,
    names: &[String],
    adopt_unmarked: bool,
    backend: &str,
) -> Result<Marker> {
    let foreign = |found: String, hint: &str| Error::Foreign {
        dir: dir.to_path_buf(),
        found,
        hint: hint.to_string(),
    };
    let path = dir.join(MARKER_FILE);
    if names.iter().any(|n| n == MARKER_FILE) {
        let file = fs
            .open(&path)
            .map_err(|e| Error::io("open marker", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        if len > 4096 {
            return Err(Error::corrupt(&path, 0, "marker file too large"));
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| Error::io("read marker", &path, e))?;
        let marker = Marker::decode(&bytes).map_err(|e| Error::corrupt(&path, 0, e.to_string()))?;
        if marker.backend != backend {
            let hint = match marker.backend.as_str() {
                crate::store::BACKEND => {
                    "It is a many-logs store: open it with `FilesStore` (spec `files:<dir>#<log>`)."
                }
                BACKEND => {
                    "It is a single-log store: open it with `FilesStorage` (spec `files:<dir>`)."
                }
                _ => "Open it with that backend.",
            };
            return Err(foreign(
                format!("its marker says it is a `{}` store", marker.backend),
                hint,
            ));
        }
        if marker.format != format::FORMAT_VERSION {
            return Err(Error::FormatVersion {
                path,
                found: marker.format,
                expected: format::FORMAT_VERSION,
            });
        }
        if let Some(name) = names.iter().find(|n| !format::is_own_name(n)) {
            return Err(foreign(
                format!("it holds `{name}`, which no paxstore-files store writes"),
                "Move that file out of the store's directory.",
            ));
        }
        return Ok(marker);
    }
    let others: Vec<&String> = names.iter().filter(|n| *n != MARKER_TMP).collect();
    let unmarked_store = !others.is_empty()
        && others.iter().all(|n| format::is_own_name(n))
        && others.iter().any(|n| format::parse_name(n).is_some());
    let adopt = unmarked_store && adopt_unmarked;
    if !others.is_empty() && !adopt {
        let mut shown: Vec<String> = others.iter().take(6).map(|n| format!("`{n}`")).collect();
        if others.len() > 6 {
            shown.push(format!("and {} more", others.len() - 6));
        }
        let found = format!(
            "it holds {} and no `{MARKER_FILE}` marker",
            shown.join(", ")
        );
        let hint = if unmarked_store {
            "It looks like a paxstore-files store whose marker was deleted, or one written \
             before stores had markers: if you are sure it is this store's directory, open it \
             once with `FilesOptions::adopt_unmarked_store(true)` to write a new marker."
        } else if others
            .iter()
            .any(|n| n.as_str() == "CURRENT" || n.starts_with("MANIFEST-"))
        {
            "It looks like a RocksDB database: open it with the rocks backend, or give \
             paxstore-files an empty or new directory."
        } else {
            "Give paxstore-files an empty or new directory (it creates it if missing)."
        };
        return Err(foreign(found, hint));
    }
    // A new store (or an unmarked one being adopted): the marker first, made durable.
    let marker = Marker::new(backend, format::FORMAT_VERSION);
    let tmp = dir.join(MARKER_TMP);
    if names.iter().any(|n| n == MARKER_TMP) {
        // Left by a creation that was interrupted: ours, and holding nothing.
        fs.remove_file(&tmp)
            .map_err(|e| Error::io("remove interrupted marker", &tmp, e))?;
    }
    let bytes = marker.encode();
    let file = fs.create(&tmp).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::Locked { path: tmp.clone() },
        _ => Error::io("create marker", &tmp, e),
    })?;
    file.write_all_at(&bytes, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write marker", &tmp, e))?;
    fs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename marker", &tmp, e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok(marker)
}

/// How long open keeps trying a held lock before reporting [`Error::Locked`].
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

/// Takes the directory's lock. A lock that is held is retried briefly: a process that forks
/// (to run any command) holds copies of all its descriptors, this lock's included, until the
/// child execs, so a store closed and reopened by a process that spawns children can find its
/// own released lock still held for that instant.
fn take_lock(fs: &dyn crate::env::FileSystem, path: &Path) -> Result<Box<dyn crate::env::FsLock>> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match fs.lock(path) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(Error::Locked {
                        path: path.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io("lock", path, e)),
        }
    }
}

fn read_header(
    engine: &Engine,
    id: u64,
    file: &dyn crate::env::FsFile,
    len: u64,
) -> Result<(format::SegmentHeader, usize)> {
    let path = engine.path(&format::segment_name(id));
    let mut prefix = vec![0u8; format::SEGMENT_HEADER_PREFIX.min(len as usize)];
    file.read_exact_at(&mut prefix, 0)
        .map_err(|e| Error::io("read header", &path, e))?;
    let hlen = format::header_len(&prefix).map_err(|e| decode_err(&path, 0, e))?;
    if hlen as u64 > len {
        return Err(Error::corrupt(&path, 0, "segment header cut short"));
    }
    let mut bytes = vec![0u8; hlen];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io("read header", &path, e))?;
    let (header, hlen) = format::decode_header(&bytes).map_err(|e| decode_err(&path, 0, e))?;
    if header.id != id {
        return Err(Error::corrupt(
            &path,
            12,
            format!("header says segment {}, file name says {id}", header.id),
        ));
    }
    Ok((header, hlen))
}

/// A segment before the last: check its header, take its run from the trailer.
fn open_sealed(engine: &mut Engine, id: u64) -> Result<()> {
    let path = engine.path(&format::segment_name(id));
    let file = engine
        .fs
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let (_, hlen) = read_header(engine, id, file.as_ref(), len)?;
    let trailer_at = len
        .checked_sub(format::TRAILER_LEN as u64)
        .filter(|&t| t >= hlen as u64);
    let trailer = trailer_at.and_then(|at| {
        let mut b = [0u8; format::TRAILER_LEN];
        file.read_exact_at(&mut b, at).ok()?;
        format::decode_trailer(&b)
    });
    let Some(t) = trailer else {
        return Err(Error::corrupt(
            &path,
            len.saturating_sub(format::TRAILER_LEN as u64),
            "segment is not the newest but has no valid trailer (not sealed, or damaged)",
        ));
    };
    let expected_len = t
        .count
        .checked_mul(8)
        .and_then(|n| n.checked_add(t.seal_offset))
        .and_then(|n| n.checked_add((format::RECORD_HEADER + 16 + format::TRAILER_LEN) as u64));
    if t.seal_offset < hlen as u64
        || expected_len != Some(len)
        || t.first.checked_add(t.count).is_none()
    {
        return Err(Error::corrupt(
            &path,
            len - format::TRAILER_LEN as u64,
            "trailer disagrees with the file length",
        ));
    }
    if t.count > 0 {
        engine.index.truncate(t.first);
        engine.index.push_lazy(id, t.first, t.count, t.seal_offset);
    }
    // The descriptor is closed here: reads open it again through the cache.
    drop(file);
    engine.segments.insert(
        id,
        Segment {
            file: None,
            path,
            size: len,
        },
    );
    Ok(())
}

/// Whether a complete record with a valid checksum starts anywhere at or after `from`: then
/// damage before it is corruption, not a torn final write (which leaves only zeros, or
/// nothing, after itself).
///
/// Linear in the buffer whatever its bytes: each candidate offset's checksum comes from
/// prefix checksums ([`RangeCrc`](crate::crc_range::RangeCrc)) in constant time, and only a
/// candidate whose checksum matches is parsed in full.
fn valid_record_after(buf: &[u8], from: usize) -> bool {
    valid_record_after_where(buf, from, |_, _| true)
}

/// Whether a complete record with a valid checksum for which `pred(kind, body)` holds starts
/// anywhere at or after `from` (see [`valid_record_after`]).
fn valid_record_after_where(buf: &[u8], from: usize, pred: impl Fn(u8, &[u8]) -> bool) -> bool {
    // A record's kind byte is not zero, so it starts at least a header before the last
    // non-zero byte.
    let Some(end) = buf.iter().rposition(|&b| b != 0) else {
        return false;
    };
    let Some(last_start) = (end + 1).checked_sub(format::RECORD_HEADER) else {
        return false;
    };
    if from > last_start {
        return false;
    }
    let crcs = crate::crc_range::RangeCrc::new(buf);
    (from..=last_start).any(|p| {
        if !format::is_record_kind(buf[p + 8]) {
            return false;
        }
        let len = u32::from_le_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) as usize;
        let Some(e) = (p + format::RECORD_HEADER)
            .checked_add(len)
            .filter(|&e| e <= buf.len())
        else {
            return false;
        };
        crcs.record_crc_matches(p, e)
            && match format::parse_frame(&buf[p..]) {
                Frame::Record { kind, body, .. } => pred(kind, &buf[p + body.start..p + body.end]),
                _ => false,
            }
    })
}

/// How a walk of a segment's records ([`scan_records`]) ended.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// Nothing but zeros (preallocated space), or nothing at all, from `at`: the segment is
    /// open (not sealed) and its records end at `at`.
    Open {
        /// Where the records end.
        at: usize,
    },
    /// A seal record at `seal_at`, followed by a valid trailer that points at it and ends at
    /// `end` (which should be the end of the file).
    Sealed {
        /// The seal record's offset.
        seal_at: usize,
        /// Where the trailer ends.
        end: usize,
    },
    /// A seal record at `at` that is not followed by a valid trailer pointing at it (`trailer`
    /// is what the bytes at `trailer_at` decode to, if anything).
    SealWithoutTrailer {
        /// The seal record's offset.
        at: usize,
        /// Where its trailer should be.
        trailer_at: usize,
        /// The trailer found there, pointing elsewhere, if the bytes are one.
        trailer: Option<format::Trailer>,
    },
    /// The record at `at` runs past the end of the buffer.
    Truncated {
        /// The record's offset.
        at: usize,
    },
    /// The record at `at` has a bad checksum or a nonsense header.
    Bad {
        /// The record's offset.
        at: usize,
        /// What is wrong.
        reason: String,
    },
    /// The record at `at` has a valid checksum but its body does not decode.
    Undecodable {
        /// The record's offset.
        at: usize,
        /// `batch record` or `seal record`.
        what: &'static str,
        /// Why.
        error: DecodeError,
    },
    /// The caller refused the batch record at `at`.
    Rejected {
        /// The record's offset.
        at: usize,
        /// Why.
        reason: String,
    },
}

/// What [`scan_records`] read.
#[derive(Debug)]
pub(crate) struct Scan {
    /// How the walk ended.
    pub end: ScanEnd,
    /// Records with a valid checksum read (batches and seal).
    pub records: u64,
}

/// Walks the records of a segment held whole in `buf`, from `from` (the end of its header), to
/// its seal or to the first record that is not sound, giving each batch record's offset and
/// decoded effects (entry offsets relative to the record) to `on_batch`, in order. Reads only:
/// what to make of the way the walk ended is the caller's (open cuts a torn tail, verify
/// reports it), and [`is_torn_tail`] tells a torn write from damage.
pub(crate) fn scan_records(
    buf: &[u8],
    from: usize,
    mut on_batch: impl FnMut(usize, Vec<format::Effect>) -> std::result::Result<(), String>,
) -> Scan {
    scan_with(
        buf,
        from,
        format::KIND_SEAL,
        |pos, kind, body, body_start| match kind {
            format::KIND_BATCH => {
                let effects =
                    format::parse_batch(body, body_start).map_err(|error| Reject::Undecodable {
                        what: "batch record",
                        error,
                    })?;
                on_batch(pos, effects).map_err(Reject::Rejected)
            }
            format::KIND_SEAL => {
                format::parse_seal(body)
                    .map(|_| ())
                    .map_err(|error| Reject::Undecodable {
                        what: "seal record",
                        error,
                    })
            }
            k => Err(Reject::Rejected(format!(
                "record kind {k} belongs to a many-logs store, not in a single-log one"
            ))),
        },
    )
}

/// Why the callback of [`scan_with`] refused a record.
pub(crate) enum Reject {
    /// Its body does not decode.
    Undecodable {
        /// What the record is.
        what: &'static str,
        /// Why.
        error: DecodeError,
    },
    /// It decodes but cannot be applied.
    Rejected(String),
}

/// The record walk of both kinds of store: every sound record (kind, body, where the body
/// starts) goes to `on_record` in order; a record of kind `seal_kind` ends the walk, with the
/// trailer check.
pub(crate) fn scan_with(
    buf: &[u8],
    from: usize,
    seal_kind: u8,
    mut on_record: impl FnMut(usize, u8, &[u8], usize) -> std::result::Result<(), Reject>,
) -> Scan {
    let mut pos = from;
    let mut records = 0;
    let end = loop {
        match format::parse_frame(&buf[pos..]) {
            Frame::Record { kind, body, total } => {
                records += 1;
                let slice = &buf[pos + body.start..pos + body.end];
                match on_record(pos, kind, slice, body.start) {
                    Ok(()) => {}
                    Err(Reject::Undecodable { what, error }) => {
                        break ScanEnd::Undecodable {
                            at: pos,
                            what,
                            error,
                        }
                    }
                    Err(Reject::Rejected(reason)) => break ScanEnd::Rejected { at: pos, reason },
                }
                if kind != seal_kind {
                    pos += total;
                    continue;
                }
                let trailer_at = pos + total;
                let trailer = buf
                    .get(trailer_at..trailer_at + format::TRAILER_LEN)
                    .and_then(format::decode_trailer);
                break match trailer {
                    Some(t) if t.seal_offset == pos as u64 => ScanEnd::Sealed {
                        seal_at: pos,
                        end: trailer_at + format::TRAILER_LEN,
                    },
                    trailer => ScanEnd::SealWithoutTrailer {
                        at: pos,
                        trailer_at,
                        trailer,
                    },
                };
            }
            Frame::End => break ScanEnd::Open { at: pos },
            Frame::Truncated => break ScanEnd::Truncated { at: pos },
            Frame::Bad { reason, .. } => break ScanEnd::Bad { at: pos, reason },
        }
    };
    Scan { end, records }
}

/// Whether the unsound record at `at` of a segment's buffer is a torn final write (a write
/// cut short by a crash, never acknowledged, which open cuts off): no valid record starts
/// anywhere after it. Otherwise it is damage.
pub(crate) fn is_torn_tail(buf: &[u8], at: usize) -> bool {
    !valid_record_after(buf, at + 1)
}

/// The many-logs store's rule for the unsound record at `at` of its newest segment: it is a
/// torn write (never acknowledged, cut off by open) unless a valid group record after it says
/// that the stream was durable past `at` when its chunk was written. Records after `at` that
/// were written while `at` was not yet durable (the rest of its own chunk, or a chunk written
/// while it was being synced) prove nothing: a power loss may keep them and lose `at`.
pub(crate) fn is_torn_store_tail(buf: &[u8], at: usize) -> bool {
    !valid_record_after_where(buf, at + 1, |kind, body| {
        kind == format::KIND_GROUP && format::parse_group(body).is_ok_and(|end| end > at as u64)
    })
}

/// Where the live segments start in `ids` (sorted): segments below the last gap in the ids
/// are dead (their deletion was interrupted: a failed unlink, or a power loss that kept a
/// later unlink and not an earlier one); the live log is the run of consecutive ids that ends
/// at the newest segment.
pub(crate) fn live_from(ids: &[u64]) -> usize {
    ids.windows(2)
        .rposition(|pair| pair[1] != pair[0] + 1)
        .map_or(0, |i| i + 1)
}

/// The newest segment: its header's checkpoint, then every record after it. `stale_below` is
/// the oldest segment open read when it took older ones for dead (below a gap in the ids).
fn replay_last(engine: &mut Engine, id: u64, stale_below: Option<u64>) -> Result<()> {
    let path = engine.path(&format::segment_name(id));
    let file = engine
        .fs
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let (header, hlen) = read_header(engine, id, file.as_ref(), len)?;
    if header.checkpoint.first > header.checkpoint.next {
        return Err(Error::corrupt(
            &path,
            0,
            format!(
                "header checkpoint holds the log [{}, {})",
                header.checkpoint.first, header.checkpoint.next
            ),
        ));
    }
    engine.meta = header.checkpoint;
    engine.index.truncate(engine.meta.next);
    engine.index.trim(engine.meta.first);
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| Error::io("read", &path, e))?;
    let scan = scan_records(&buf, hlen, |offset, effects| {
        engine.apply_effects(id, offset as u64, effects)
    });
    let strict = engine.opts.recovery == RecoveryMode::Strict;
    let (pos, sealed, cut) = settle_tail(
        &mut engine.files.stats,
        &path,
        file.as_ref(),
        &buf,
        scan.end,
        strict,
        is_torn_tail,
    )?;
    let (first, next) = (engine.meta.first, engine.meta.next);
    let runs = engine.index.runs();
    let contiguous = runs
        .iter()
        .zip(runs.iter().skip(1))
        .all(|(a, b)| a.end == b.start);
    let covered = contiguous
        && engine.index.len() == next - first
        && (first == next || engine.index.start() == Some(first));
    if !covered {
        let held = engine.index.len();
        return Err(match stale_below {
            // The gap is not a deletion that was interrupted: a segment the log needs is gone.
            Some(oldest) => Error::corrupt(
                engine.path(&format::segment_name(oldest - 1)),
                0,
                format!(
                    "segment {} is missing: the log holds [{first}, {next}) but segments {oldest} \
                     to {id} hold {held} of those entries (the segments below the gap were taken \
                     for dead)",
                    oldest - 1
                ),
            ),
            None => Error::corrupt(
                &path,
                0,
                format!(
                    "after replay the log holds [{first}, {next}) but the segments hold {held} \
                     of those entries"
                ),
            ),
        });
    }
    let size = pos as u64;
    let allocated = if cut { pos as u64 } else { len };
    // Only the active segment keeps its own descriptor; a sealed one is read through the cache.
    let file = if sealed {
        engine.cache_handle(id, file);
        None
    } else {
        Some(file)
    };
    engine.segments.insert(id, Segment { file, path, size });
    if !sealed {
        engine.active = Some(Active {
            id,
            end: pos as u64,
            header_len: hlen as u64,
            allocated,
        });
    }
    Ok(())
}

/// What open makes of the way the walk of the newest segment ended: where its records end,
/// whether it is sealed, whether a torn tail (or, lenient, damage) was cut off (the cut made
/// durable). Damage followed by valid records is corruption in strict mode.
pub(crate) fn settle_tail(
    stats: &mut Stats,
    path: &Path,
    file: &dyn crate::env::FsFile,
    buf: &[u8],
    end: ScanEnd,
    strict: bool,
    is_torn: fn(&[u8], usize) -> bool,
) -> Result<(usize, bool, bool)> {
    let len = buf.len() as u64;
    let mut sealed = false;
    let mut cut = false;
    let pos = match end {
        ScanEnd::Open { at } => at,
        ScanEnd::Rejected { at, reason } => return Err(Error::corrupt(path, at as u64, reason)),
        ScanEnd::Undecodable { at, error, .. } => return Err(decode_err(path, at as u64, error)),
        ScanEnd::Sealed { end, .. } => {
            if buf[end..].iter().any(|&b| b != 0) {
                return Err(Error::corrupt(
                    path,
                    end as u64,
                    "data after the trailer of a sealed segment",
                ));
            }
            sealed = true;
            if (end as u64) < len {
                // Preallocated zeros the seal did not get to cut: the trailer must end the file.
                file.set_len(end as u64)
                    .map_err(|e| Error::io("truncate", path, e))?;
                file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
            }
            end
        }
        // The seal and its trailer are one write: a crash can leave the seal without (all of)
        // its trailer. The seal holds nothing the records before it do not, so it is cut like
        // a torn record, unless valid records follow.
        ScanEnd::SealWithoutTrailer { at, trailer_at, .. } => {
            if strict && !is_torn(buf, at) {
                return Err(Error::corrupt(
                    path,
                    trailer_at as u64,
                    "seal record without its trailer, with valid records after it",
                ));
            }
            cut = true;
            at
        }
        // A damaged length field can make any record look cut short: it is a torn write only
        // if no valid record follows.
        ScanEnd::Truncated { at } => {
            if strict && !is_torn(buf, at) {
                return Err(Error::corrupt(
                    path,
                    at as u64,
                    "record runs past the end of the segment, with valid records after it",
                ));
            }
            cut = true;
            at
        }
        ScanEnd::Bad { at, reason } => {
            if strict && !is_torn(buf, at) {
                return Err(Error::corrupt(
                    path,
                    at as u64,
                    format!("{reason}, with valid records after it"),
                ));
            }
            cut = true;
            at
        }
    };
    if cut {
        // A torn final record (or, in lenient mode, everything from the first damaged one).
        stats.torn_tail_bytes_cut = len - pos as u64;
        tracing::warn!(
            "{}: cutting {} bytes of torn tail at offset {pos}",
            path.display(),
            len - pos as u64
        );
        file.set_len(pos as u64)
            .map_err(|e| Error::io("truncate torn tail", path, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    }
    Ok((pos, sealed, cut))
}
