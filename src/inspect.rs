//! What is on disk: the engine behind `paxstore inspect DIR` and `paxstore verify DIR`.
//!
//! [`examine`] reads a store directory without opening the store (no lock is taken, nothing is
//! written, a torn tail is not cut off) and checks everything it reads:
//!
//! - **files** (`storage-files`, see its `FORMAT.md`): segments below a gap in the ids are
//!   dead, as storage-files' open takes them (a note), and the run of consecutive ids that ends
//!   at the newest segment must hold the log's entries; every segment
//!   header and its checksum; every record's checksum and every entry's own checksum; batch
//!   bodies decoded; every segment but the newest sealed, with a seal record and a trailer
//!   that agree; snapshot files' headers, lengths and checksums; the snapshot the metadata
//!   refers to present and matching. The metadata is the newest segment's checkpoint with its
//!   records replayed, as recovery does.
//! - **rocks** (`storage-rocks`, feature `rocks`): the database opened read-only, every column
//!   family scanned with block checksums verified, each log's metadata decoded.
//!
//! Both start from the store marker (`PAXSTORE`, see `storage_core::identity`): the backend it
//! names is the backend examined, and the [`Summary`] shows it (backend, format, store id). A
//! store without its marker, with a damaged one, or with files in its directory that are not
//! its backend's is reported as a problem: the backends refuse to open such a directory.
//!
//! The result is a [`Summary`]: what is stored, the parts (files, column families) with their
//! sizes, [`Problem`]s (corruption, each naming the file and, where there is one, the offset)
//! and notes (harmless findings such as a torn final record, which the next open cuts off).
//! A directory that cannot be read at all, that cannot be identified as a store (an empty
//! one, one holding only `LOCK`, a RocksDB database that lost its `CURRENT` file), or holds a
//! format version this build does not read is an [`Unreadable`] error: never a clean result.

use std::fmt;
use std::path::{Path, PathBuf};

use omnipaxos::ballot_leader_election::Ballot;
use storage_core::identity::{Marker, MARKER_FILE};

use crate::any::Backend;

/// One piece of damage: the file and, where it applies, the byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The damaged (or missing) file.
    pub file: PathBuf,
    /// The byte offset of the damage in `file`.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} at offset {o}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// The directory could not be examined at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Unreadable {
    /// The directory or file that could not be read.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

fn unreadable(path: &Path, reason: impl Into<String>) -> Unreadable {
    Unreadable {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The state of one OmniPaxos log as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSummary {
    /// The log's name (`log` for a single-log store).
    pub name: String,
    /// The lowest stored index.
    pub first: u64,
    /// One past the highest stored index.
    pub next: u64,
    /// The decided index.
    pub decided: u64,
    /// The compacted index.
    pub compacted: u64,
    /// The promised round.
    pub promise: Option<Ballot>,
    /// The accepted round.
    pub accepted: Option<Ballot>,
    /// The stop-sign, described.
    pub stopsign: Option<String>,
    /// The encoded size of the snapshot, if there is one.
    pub snapshot_bytes: Option<u64>,
}

/// One file or column family of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The file or column family name.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// What it holds.
    pub detail: String,
}

/// Everything [`examine`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The backend that wrote the directory.
    pub backend: Backend,
    /// The directory.
    pub dir: PathBuf,
    /// The on-disk format version.
    pub format_version: u32,
    /// The store marker, if the directory has a readable one (its absence is a problem).
    pub marker: Option<Marker>,
    /// The logs stored (one for `files`, one per column family for `rocks`).
    pub logs: Vec<LogSummary>,
    /// Files or column families, with sizes.
    pub parts: Vec<Part>,
    /// Records (files) or keys (rocks) read and checked.
    pub records_checked: u64,
    /// Entries whose checksum was checked.
    pub entries_checked: u64,
    /// Corruption found; empty for a clean store.
    pub problems: Vec<Problem>,
    /// Harmless findings (a torn final record, leftover files).
    pub notes: Vec<String>,
}

impl Summary {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The names of the entries of directory `dir`, sorted.
fn list(dir: &Path) -> Result<Vec<String>, Unreadable> {
    let meta = std::fs::metadata(dir).map_err(|e| unreadable(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(unreadable(dir, "not a directory"));
    }
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e.to_string()))? {
        let e = e.map_err(|e| unreadable(dir, e.to_string()))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The marker of `dir`: `None` if there is no marker file, `Some(Err)` if it cannot be read.
fn read_marker(dir: &Path) -> Option<Result<Marker, String>> {
    let path = dir.join(MARKER_FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
        Ok(bytes) => Some(Marker::decode(&bytes).map_err(|e| e.to_string())),
    }
}

/// Which backend wrote `dir`: the one its marker names; for a directory without a readable
/// marker, the one whose files it holds (a RocksDB `CURRENT` file, storage-files segments).
/// A directory that holds neither (an empty one, one holding only `LOCK`) is [`Unreadable`].
pub fn detect(dir: &Path) -> Result<Backend, Unreadable> {
    let names = list(dir)?;
    if let Some(Ok(marker)) = read_marker(dir) {
        return match marker.backend.as_str() {
            "files" => Ok(Backend::Files),
            "rocks" => Ok(Backend::Rocks),
            other => Err(unreadable(
                dir,
                format!("its marker names a backend this build does not know: {other:?}"),
            )),
        };
    }
    if names.iter().any(|n| n == "CURRENT") {
        return Ok(Backend::Rocks);
    }
    if names
        .iter()
        .any(|n| n.starts_with("seg-") && n.ends_with(".log"))
    {
        return Ok(Backend::Files);
    }
    let held = if names.is_empty() {
        "it is empty".to_string()
    } else {
        let mut shown: Vec<String> = names.iter().take(6).map(|n| format!("`{n}`")).collect();
        if names.len() > 6 {
            shown.push(format!("and {} more", names.len() - 6));
        }
        format!("it holds {}", shown.join(", "))
    };
    Err(unreadable(
        dir,
        format!(
            "cannot identify a paxstore store: no `{MARKER_FILE}` marker, no segment files, no \
             RocksDB database ({held})"
        ),
    ))
}

#[cfg_attr(not(any(feature = "files", feature = "rocks")), allow(dead_code))]
/// The marker as found, for a store of `backend` whose own format version is `format`: the
/// marker if it is sound, and the problem to report otherwise.
fn check_marker(
    dir: &Path,
    backend: Backend,
    format: u32,
    adopt: &str,
) -> Result<(Option<Marker>, Option<Problem>), Unreadable> {
    let file = dir.join(MARKER_FILE);
    let problem = |reason: String| Problem {
        file: file.clone(),
        offset: None,
        reason,
    };
    Ok(match read_marker(dir) {
        None => (
            None,
            Some(problem(format!(
                "missing: the {backend} backend refuses to open a store without its marker; if \
                 this is the store's directory, open it once with {adopt}"
            ))),
        ),
        Some(Err(e)) => (
            None,
            Some(problem(format!(
                "damaged ({e}): the {backend} backend refuses to open the store"
            ))),
        ),
        Some(Ok(m)) => {
            if m.format != format {
                return Err(unreadable(
                    dir,
                    format!(
                        "its marker says format version {}, this build reads version {format}",
                        m.format
                    ),
                ));
            }
            (Some(m), None)
        }
    })
}

/// Reads and checks the store in `dir` (see the module docs).
pub fn examine(dir: &Path) -> Result<Summary, Unreadable> {
    match detect(dir)? {
        #[cfg(feature = "files")]
        Backend::Files => files::examine(dir),
        #[cfg(feature = "rocks")]
        Backend::Rocks => rocks::examine(dir),
        other => Err(unreadable(
            dir,
            format!(
                "holds a `{other}` store, which this build of paxstore does not include; \
                 rebuild with `--features {}`",
                other.feature()
            ),
        )),
    }
}

/// A short description of a ballot.
pub fn describe_ballot(b: &Ballot) -> String {
    format!("n={} pid={} config={}", b.n, b.pid, b.config_id)
}

#[cfg(feature = "files")]
mod files {
    use super::*;
    use storage_files::format::{
        self, Checkpoint, DecodeError, Effect, Frame, ENTRY_FRAME, KIND_BATCH, KIND_SEAL,
        TRAILER_LEN,
    };

    struct Walk {
        dir: PathBuf,
        problems: Vec<Problem>,
        notes: Vec<String>,
        records: u64,
        entries: u64,
    }

    impl Walk {
        fn problem(&mut self, file: &str, offset: Option<u64>, reason: impl Into<String>) {
            self.problems.push(Problem {
                file: self.dir.join(file),
                offset,
                reason: reason.into(),
            });
        }
    }

    fn apply(meta: &mut Checkpoint, effect: &Effect) {
        match effect {
            Effect::Append { at, locs } => meta.next = at + locs.len() as u64,
            Effect::Trim(i) => {
                if *i > meta.first {
                    meta.first = *i;
                    meta.next = meta.next.max(*i);
                }
            }
            Effect::Meta(op) => op.apply(meta),
        }
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Walks one segment; returns its header checkpoint (if the header is sound), the records
    /// read, whether it is sealed.
    fn segment(
        w: &mut Walk,
        name: &str,
        id: u64,
        bytes: &[u8],
        newest: bool,
        meta: &mut Option<Checkpoint>,
    ) -> Result<String, Unreadable> {
        let header = match format::decode_header(bytes) {
            Ok((h, len)) => (h, len),
            Err(DecodeError::Version(v)) => {
                return Err(unreadable(
                    &w.dir.join(name),
                    format!(
                        "on-disk format version {v}, this build reads version {}",
                        format::FORMAT_VERSION
                    ),
                ))
            }
            Err(DecodeError::Corrupt(reason)) => {
                w.problem(name, Some(0), format!("segment header: {reason}"));
                return Ok("bad header".into());
            }
        };
        let (h, mut at) = header;
        if h.id != id {
            w.problem(
                name,
                Some(12),
                format!("the header names segment {} but the file is {id}", h.id),
            );
        }
        let mut local = h.checkpoint.clone();
        let mut records = 0u64;
        let mut appended = 0u64;
        let mut sealed = false;
        let len = bytes.len();
        loop {
            match format::parse_frame(&bytes[at..]) {
                Frame::End => {
                    if !newest {
                        w.problem(
                            name,
                            Some(at as u64),
                            "the segment ends without a seal record, but only the newest \
                             segment may be open",
                        );
                    }
                    break;
                }
                Frame::Truncated => {
                    if newest {
                        w.notes.push(format!(
                            "{name}: torn final record at offset {at} ({} bytes, a write cut \
                             short by a crash; never acknowledged, the next open cuts it off)",
                            len - at
                        ));
                    } else {
                        w.problem(
                            name,
                            Some(at as u64),
                            "record cut short by the end of the file",
                        );
                    }
                    break;
                }
                Frame::Bad {
                    reason,
                    claimed_end,
                } => {
                    let valid_after = claimed_end
                        .map(|e| at + e)
                        .filter(|&e| e < len)
                        .is_some_and(|e| {
                            matches!(format::parse_frame(&bytes[e..]), Frame::Record { .. })
                        });
                    if newest && !valid_after {
                        w.notes.push(format!(
                            "{name}: torn final record at offset {at} ({reason}; nothing valid \
                             follows it, so it is a write cut short by a crash, never \
                             acknowledged; the next open cuts it off)"
                        ));
                    } else {
                        w.problem(name, Some(at as u64), reason);
                    }
                    break;
                }
                Frame::Record { kind, body, total } => {
                    records += 1;
                    let body_bytes = &bytes[at + body.start..at + body.end];
                    if kind == KIND_BATCH {
                        match format::parse_batch(body_bytes, body.start) {
                            Err(e) => {
                                let reason = match e {
                                    DecodeError::Corrupt(r) => r,
                                    DecodeError::Version(v) => format!("format version {v}"),
                                };
                                w.problem(name, Some(at as u64), format!("batch record: {reason}"));
                                break;
                            }
                            Ok(effects) => {
                                for effect in &effects {
                                    if let Effect::Append { at: index, locs } = effect {
                                        for (k, loc) in locs.iter().enumerate() {
                                            let start = at + loc.offset as usize;
                                            let frame = start - ENTRY_FRAME;
                                            let entry = &bytes[start..start + loc.len as usize];
                                            let stored = u32_at(bytes, frame + 4).unwrap_or(0);
                                            w.entries += 1;
                                            appended += 1;
                                            if crc32c::crc32c(entry) != stored {
                                                w.problem(
                                                    name,
                                                    Some(frame as u64),
                                                    format!(
                                                        "entry {} (in the record at offset \
                                                         {at}): checksum mismatch",
                                                        index + k as u64
                                                    ),
                                                );
                                            }
                                        }
                                    }
                                    apply(&mut local, effect);
                                }
                            }
                        }
                    } else if kind == KIND_SEAL {
                        let trailer_at = at + total;
                        if let Err(e) = format::parse_seal(body_bytes) {
                            w.problem(name, Some(at as u64), format!("seal record: {e:?}"));
                        }
                        match bytes
                            .get(trailer_at..trailer_at + TRAILER_LEN)
                            .and_then(format::decode_trailer)
                        {
                            None => w.problem(
                                name,
                                Some(trailer_at as u64),
                                "the seal record is not followed by a valid trailer",
                            ),
                            Some(t) => {
                                if t.seal_offset != at as u64 {
                                    w.problem(
                                        name,
                                        Some(trailer_at as u64),
                                        format!(
                                            "the trailer points at a seal record at offset {}, \
                                             the seal record is at {at}",
                                            t.seal_offset
                                        ),
                                    );
                                }
                                if trailer_at + TRAILER_LEN != len {
                                    w.problem(
                                        name,
                                        Some((trailer_at + TRAILER_LEN) as u64),
                                        format!(
                                            "{} bytes after the trailer",
                                            len - trailer_at - TRAILER_LEN
                                        ),
                                    );
                                }
                            }
                        }
                        sealed = true;
                        break;
                    }
                    at += total;
                }
            }
        }
        w.records += records;
        if newest {
            *meta = Some(local);
        }
        Ok(format!(
            "{}, first index {}, {records} records, {appended} entries written",
            if sealed { "sealed" } else { "open" },
            h.first_index
        ))
    }

    pub(super) fn examine(dir: &Path) -> Result<Summary, Unreadable> {
        let mut w = Walk {
            dir: dir.to_path_buf(),
            problems: Vec::new(),
            notes: Vec::new(),
            records: 0,
            entries: 0,
        };
        let mut segments = Vec::new();
        let mut snapshots = Vec::new();
        let mut sizes = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e.to_string()))? {
            let e = e.map_err(|e| unreadable(dir, e.to_string()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            sizes.insert(name.clone(), size);
            match format::parse_name(&name) {
                Some(("segment", id)) => segments.push((id, name)),
                Some((_, id)) => snapshots.push((id, name)),
                None if name == storage_files::LOCK_FILE || name == MARKER_FILE => {}
                None if format::is_own_name(&name) => w.notes.push(format!(
                    "{name}: a file being created when the store last stopped (deleted at the next open)"
                )),
                None => w.problem(
                    &name,
                    None,
                    "not a storage-files file: storage-files refuses to open a directory that \
                     holds it (move it out of the store's directory)",
                ),
            }
        }
        let (marker, missing) = check_marker(
            dir,
            Backend::Files,
            format::FORMAT_VERSION,
            "`FilesOptions::adopt_unmarked_store(true)`",
        )?;
        w.problems.extend(missing);
        segments.sort();
        snapshots.sort();
        // As storage-files' open does: segments below the last gap in the ids are dead (their
        // deletion was interrupted; the next open deletes them); the live log is the run of
        // consecutive ids that ends at the newest segment, and it must hold the log's entries.
        let live_from = segments
            .windows(2)
            .rposition(|pair| pair[1].0 != pair[0].0 + 1)
            .map_or(0, |i| i + 1);
        let dead: Vec<(u64, String)> = segments.drain(..live_from).collect();
        let mut parts = Vec::new();
        for (_, name) in &dead {
            parts.push(Part {
                name: name.clone(),
                bytes: sizes.get(name).copied().unwrap_or(0),
                detail: "dead: below a gap in the segment ids (a trim's deletion was \
                         interrupted); deleted at the next open"
                    .into(),
            });
        }
        if let Some((_, first_dead)) = dead.first() {
            w.notes.push(format!(
                "{} dead segment(s) from {first_dead} below a gap in the segment ids (the \
                 next open deletes them)",
                dead.len()
            ));
        }
        let mut first_live_index = None;
        let mut meta = None;
        for (k, (id, name)) in segments.iter().enumerate() {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| unreadable(&path, e.to_string()))?;
            if k == 0 {
                first_live_index = format::decode_header(&bytes)
                    .ok()
                    .map(|(h, _)| h.first_index);
            }
            let detail = segment(
                &mut w,
                name,
                *id,
                &bytes,
                k + 1 == segments.len(),
                &mut meta,
            )?;
            parts.push(Part {
                name: name.clone(),
                bytes: bytes.len() as u64,
                detail,
            });
        }
        let meta = meta.unwrap_or_default();
        if let (Some(from), Some((id, _))) = (first_live_index, segments.first()) {
            if meta.first < from && meta.first < meta.next {
                let missing = format::segment_name(id.saturating_sub(1));
                w.problem(
                    &missing,
                    None,
                    format!(
                        "segment missing: the log holds entries from {}, but the oldest \
                         segment of the live run starts at entry {from}",
                        meta.first
                    ),
                );
            }
        }
        let referenced = meta.snapshot;
        for (id, name) in &snapshots {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| unreadable(&path, e.to_string()))?;
            let is_ref = referenced.is_some_and(|r| r.id == *id);
            let check = || -> Result<String, (u64, String)> {
                let r = format::decode_snapshot_header(&bytes).map_err(|e| match e {
                    DecodeError::Corrupt(r) => (0, r),
                    DecodeError::Version(v) => (8, format!("format version {v}")),
                })?;
                if r.id != *id {
                    return Err((12, format!("the header names snapshot {}", r.id)));
                }
                let body = &bytes[format::SNAPSHOT_HEADER..];
                if body.len() as u64 != r.len {
                    return Err((
                        format::SNAPSHOT_HEADER as u64,
                        format!(
                            "the header says {} bytes, the file holds {}",
                            r.len,
                            body.len()
                        ),
                    ));
                }
                if crc32c::crc32c(body) != r.crc {
                    return Err((
                        format::SNAPSHOT_HEADER as u64,
                        "snapshot checksum mismatch".into(),
                    ));
                }
                if let Some(want) = referenced.filter(|_| is_ref) {
                    if want != r {
                        return Err((
                            0,
                            format!("the metadata refers to {want:?}, the file holds {r:?}"),
                        ));
                    }
                }
                Ok(format!("{} bytes of snapshot", r.len))
            };
            let detail = match check() {
                Ok(d) => d,
                Err((offset, reason)) if is_ref => {
                    w.problem(name, Some(offset), reason.clone());
                    format!("DAMAGED: {reason}")
                }
                Err((_, reason)) => {
                    format!("leftover, damaged ({reason}); deleted at the next open")
                }
            };
            let detail = if is_ref {
                format!("current snapshot, {detail}")
            } else {
                format!("not referenced (deleted at the next open); {detail}")
            };
            parts.push(Part {
                name: name.clone(),
                bytes: bytes.len() as u64,
                detail,
            });
        }
        if let Some(r) = referenced {
            if !snapshots.iter().any(|(id, _)| *id == r.id) {
                w.problem(
                    &format::snapshot_name(r.id),
                    None,
                    "the metadata refers to this snapshot file, which is missing",
                );
            }
        }
        let log = LogSummary {
            name: "log".into(),
            first: meta.first,
            next: meta.next,
            decided: meta.decided,
            compacted: meta.compacted,
            promise: meta.promise,
            accepted: meta.accepted,
            stopsign: meta.stopsign.as_ref().map(|s| {
                format!(
                    "config {} with nodes {:?}",
                    s.next_config.configuration_id, s.next_config.nodes
                )
            }),
            snapshot_bytes: meta.snapshot.map(|s| s.len),
        };
        Ok(Summary {
            backend: Backend::Files,
            dir: dir.to_path_buf(),
            format_version: format::FORMAT_VERSION,
            marker,
            logs: vec![log],
            parts,
            records_checked: w.records,
            entries_checked: w.entries,
            problems: w.problems,
            notes: w.notes,
        })
    }
}

#[cfg(feature = "rocks")]
mod rocks {
    use super::*;
    use omnipaxos::storage::StopSign;
    use storage_core::codec;
    use storage_rocks::rocksdb::{DBWithThreadMode, Options, ReadOptions, SingleThreaded};

    /// Read-only access needs no shared column-family handles.
    type DB = DBWithThreadMode<SingleThreaded>;

    const META_CF: &str = "paxstore.meta";

    /// What a scan of a log's column family found: its lowest and highest key, the number of
    /// keys, and the first index missing between them.
    type KeyRun = (Option<u64>, Option<u64>, u64, Option<u64>);
    const LOG_PREFIX: &str = "paxstore.log.";

    fn scan_options() -> ReadOptions {
        let mut read = ReadOptions::default();
        read.set_verify_checksums(true);
        read.fill_cache(false);
        read
    }

    pub(super) fn examine(dir: &Path) -> Result<Summary, Unreadable> {
        let names = list(dir)?;
        if !names.iter().any(|n| n == "CURRENT") {
            // Without CURRENT, RocksDB cannot say what the database holds; say what open does.
            let reason = match storage_rocks::identify(dir, true) {
                Err(e) => e.to_string(),
                Ok(_) => "a storage-rocks store whose creation was cut short before RocksDB \
                          wrote its CURRENT file: it holds no data yet (the next open creates an \
                          empty database in it)"
                    .into(),
            };
            return Err(unreadable(dir, reason));
        }
        let mut problems = Vec::new();
        for name in names.iter().filter(|n| !storage_rocks::is_own_file_name(n)) {
            problems.push(Problem {
                file: dir.join(name),
                offset: None,
                reason: "neither a RocksDB nor a storage-rocks file: storage-rocks refuses to \
                         open a directory that holds it (move it out of the store's directory)"
                    .into(),
            });
        }
        let (marker, missing) = check_marker(
            dir,
            Backend::Rocks,
            storage_rocks::FORMAT_VERSION,
            "`RocksOptions::adopt_unmarked_store(true)`",
        )?;
        problems.extend(missing);
        // The database options storage-rocks opens with: they must agree on how the MANIFEST
        // tracks write-ahead-log files (RocksDB's read-only recovery crashes otherwise).
        let opts: Options = storage_rocks::RocksOptions::new().db_options();
        let names =
            DB::list_cf(&opts, dir).map_err(|e| unreadable(dir, format!("RocksDB: {e}")))?;
        if !names.iter().any(|n| n == META_CF) {
            return Err(unreadable(
                dir,
                format!("a RocksDB database without the {META_CF:?} column family: not a paxstore store"),
            ));
        }
        // Read-only: no lock is taken and nothing is written; the write-ahead log is replayed
        // into memory only.
        let db = DB::open_cf_for_read_only(&opts, dir, &names, false)
            .map_err(|e| unreadable(dir, format!("RocksDB refuses to open it: {e}")))?;
        let meta = db
            .cf_handle(META_CF)
            .ok_or_else(|| unreadable(dir, "the metadata column family cannot be opened"))?;
        let mut notes = Vec::new();
        let problem = |problems: &mut Vec<Problem>, reason: String| {
            problems.push(Problem {
                file: dir.to_path_buf(),
                offset: None,
                reason,
            })
        };

        let format_version = match db.get_cf(meta, b"!format") {
            Ok(Some(bytes)) => match codec::decode::<(String, u32)>("format record", &bytes) {
                Ok((magic, v)) if magic == "paxstore-rocks" => v,
                Ok((magic, _)) => {
                    return Err(unreadable(
                        dir,
                        format!("the format record names {magic:?}"),
                    ))
                }
                Err(e) => return Err(unreadable(dir, format!("unreadable format record: {e}"))),
            },
            Ok(None) => {
                notes.push("no format record (a database whose creation was cut short)".into());
                0
            }
            Err(e) => return Err(unreadable(dir, format!("reading the format record: {e}"))),
        };
        if format_version > storage_rocks::FORMAT_VERSION {
            return Err(unreadable(
                dir,
                format!(
                    "on-disk format version {format_version}, this build reads version {}",
                    storage_rocks::FORMAT_VERSION
                ),
            ));
        }

        // Every column family, scanned whole with block checksums verified.
        let mut parts = Vec::new();
        let mut records = 0u64;
        let mut entries = 0u64;
        let mut log_keys: std::collections::BTreeMap<String, KeyRun> = Default::default();
        for name in &names {
            let Some(cf) = db.cf_handle(name) else {
                problem(
                    &mut problems,
                    format!("column family {name:?} cannot be opened"),
                );
                continue;
            };
            let log = name.strip_prefix(LOG_PREFIX).map(str::to_string);
            let mut it = db.raw_iterator_cf_opt(cf, scan_options());
            it.seek_to_first();
            let (mut keys, mut bytes) = (0u64, 0u64);
            let (mut lo, mut hi, mut gap) = (None::<u64>, None::<u64>, None::<u64>);
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                keys += 1;
                bytes += (k.len() + v.len()) as u64;
                if log.is_some() {
                    match <[u8; 8]>::try_from(k) {
                        Ok(b) => {
                            let i = u64::from_be_bytes(b);
                            if let Some(h) = hi {
                                if i != h + 1 && gap.is_none() {
                                    gap = Some(h + 1);
                                }
                            }
                            lo.get_or_insert(i);
                            hi = Some(i);
                        }
                        Err(_) => problem(
                            &mut problems,
                            format!("column family {name:?}: a key of the wrong shape {k:02x?}"),
                        ),
                    }
                }
                it.next();
            }
            if let Err(e) = it.status() {
                problem(&mut problems, format!("column family {name:?}: {e}"));
            }
            records += keys;
            if let Some(log) = &log {
                entries += keys;
                log_keys.insert(log.clone(), (lo, hi, keys, gap));
            }
            let size = |p: &str| db.property_int_value_cf(cf, p).ok().flatten().unwrap_or(0);
            parts.push(Part {
                name: format!("column family {name}"),
                bytes: size("rocksdb.total-sst-files-size")
                    + size("rocksdb.cur-size-all-mem-tables"),
                detail: format!(
                    "{keys} keys ({} of keys and values); table files {}, memtables {}",
                    crate::util::human_bytes(bytes),
                    crate::util::human_bytes(size("rocksdb.total-sst-files-size")),
                    crate::util::human_bytes(size("rocksdb.cur-size-all-mem-tables")),
                ),
            });
        }
        let wal: u64 = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.ends_with(".log") && storage_rocks::is_rocksdb_file_name(&name)
                    })
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        parts.push(Part {
            name: "write-ahead log (*.log)".into(),
            bytes: wal,
            detail: "shared by every log of the database".into(),
        });

        // Each registered log's metadata.
        let mut logs = Vec::new();
        let mut it = db.raw_iterator_cf_opt(meta, scan_options());
        it.seek_to_first();
        let mut registered = Vec::new();
        while let Some(k) = it.key() {
            if let Some(name) = k.strip_suffix(b"/R") {
                registered.push(String::from_utf8_lossy(name).into_owned());
            }
            it.next();
        }
        for name in registered {
            let get = |tag: u8| -> Option<Vec<u8>> {
                let mut key = name.as_bytes().to_vec();
                key.push(b'/');
                key.push(tag);
                db.get_cf(meta, key).ok().flatten()
            };
            let mut bad = Vec::new();
            let mut decode_u64 = |tag: u8, what: &'static str| -> u64 {
                get(tag)
                    .map(|b| match codec::decode::<usize>(what, &b) {
                        Ok(v) => v as u64,
                        Err(e) => {
                            bad.push(format!("log {name:?}: {e}"));
                            0
                        }
                    })
                    .unwrap_or(0)
            };
            let first = decode_u64(b'f', "first index");
            let decided = decode_u64(b'd', "decided index");
            let compacted = decode_u64(b'c', "compacted index");
            let ballot = |tag: u8, what: &'static str, bad: &mut Vec<String>| {
                get(tag).and_then(|b| match codec::decode::<Ballot>(what, &b) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        bad.push(format!("log {name:?}: {e}"));
                        None
                    }
                })
            };
            let promise = ballot(b'p', "promise", &mut bad);
            let accepted = ballot(b'a', "accepted round", &mut bad);
            let stopsign = get(b's').map(|b| match codec::decode::<StopSign>("stop-sign", &b) {
                Ok(s) => format!(
                    "config {} with nodes {:?}",
                    s.next_config.configuration_id, s.next_config.nodes
                ),
                Err(e) => {
                    bad.push(format!("log {name:?}: {e}"));
                    "undecodable".into()
                }
            });
            let snapshot_bytes = get(b'n').map(|b| b.len() as u64);
            let (lo, hi, keys, gap) = log_keys.get(&name).copied().unwrap_or_default();
            let next = hi.map_or(first, |h| h + 1).max(first);
            if let Some(lo) = lo {
                if lo != first {
                    bad.push(format!(
                        "log {name:?}: its first stored entry is {lo}, its metadata says {first}"
                    ));
                }
            }
            if let Some(g) = gap {
                bad.push(format!("log {name:?}: entry {g} is missing"));
            }
            if lo.is_some() && keys != next - first {
                bad.push(format!(
                    "log {name:?}: {keys} entries stored for the range [{first}, {next})"
                ));
            }
            for reason in bad {
                problem(&mut problems, reason);
            }
            logs.push(LogSummary {
                name,
                first,
                next,
                decided,
                compacted,
                promise,
                accepted,
                stopsign,
                snapshot_bytes,
            });
        }
        Ok(Summary {
            backend: Backend::Rocks,
            dir: dir.to_path_buf(),
            format_version,
            marker,
            logs,
            parts,
            records_checked: records,
            entries_checked: entries,
            problems,
            notes,
        })
    }
}
