//! Reading and checking a store directory without opening the store: [`verify`].
//!
//! What [`verify`] checks (see `FORMAT.md`): segments below a gap in the ids are dead, as open
//! takes them (a note), and the run of consecutive ids that ends at the newest segment must
//! hold the log's entries; every segment header and its checksum; every record's checksum and
//! every entry's own checksum; batch bodies decoded and replayed (appends and trims through
//! [`Bounds`], the contract's rule); every segment but the newest sealed, with a seal record
//! and a trailer that agree; snapshot files' headers, lengths and checksums; the snapshot the
//! metadata refers to present and matching. The metadata is the newest segment's checkpoint
//! with its records replayed, as open does, with open's own record walk
//! (`recovery::scan_records`): the end of the newest segment is a torn write (a note: the next
//! open cuts it off) exactly when open takes it for one, and damage otherwise.
//!
//! Nothing is written, cut, deleted or locked: a verify can run next to a live store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use paxstore_core::bounds::Bounds;
use paxstore_core::identity::MARKER_FILE;
use paxstore_core::plan;
use paxstore_core::verify::{
    check_marker, describe_stopsign, LogSummary, Part, Problem, Summary, Unreadable,
};

use crate::format::{self, Checkpoint, DecodeError, Effect, ENTRY_FRAME};
use crate::recovery::{is_torn_tail, live_from, scan_records, ScanEnd};

/// Reads and checks the paxstore-files store in `dir` without opening it (no lock is taken,
/// nothing is written, a torn tail is not cut off), and says what it holds: the log's bounds
/// and metadata, every file with its size and what it holds, and every problem found, each
/// naming the file and, where there is one, the byte offset (see the module docs).
///
/// [`Unreadable`] when `dir` cannot be read, is not a paxstore-files store (its marker names
/// another backend, or it has neither a marker nor segment files), or holds a format version
/// this build does not read.
pub fn verify(dir: &Path) -> Result<Summary, Unreadable> {
    let mut w = Walk {
        dir: dir.to_path_buf(),
        problems: Vec::new(),
        notes: Vec::new(),
        records: 0,
        entries: 0,
    };
    let mut segments = Vec::new();
    let mut snapshots = Vec::new();
    let mut sizes = BTreeMap::new();
    for name in paxstore_core::verify::list_dir(dir)? {
        let size = std::fs::symlink_metadata(dir.join(&name))
            .map(|m| m.len())
            .unwrap_or(0);
        sizes.insert(name.clone(), size);
        match format::parse_name(&name) {
            Some(("segment", id)) => segments.push((id, name)),
            Some((_, id)) => snapshots.push((id, name)),
            None if name == crate::LOCK_FILE || name == MARKER_FILE => {}
            None if format::is_own_name(&name) => w.notes.push(format!(
                "{name}: a file being created when the store last stopped (deleted at the next open)"
            )),
            None => w.problem(
                &name,
                None,
                "not a paxstore-files file: paxstore-files refuses to open a directory that \
                 holds it (move it out of the store's directory)",
            ),
        }
    }
    let (marker, missing) = check_marker(
        dir,
        crate::BACKEND,
        format::FORMAT_VERSION,
        "`FilesOptions::adopt_unmarked_store(true)`",
    )?;
    if marker.is_none() && segments.is_empty() {
        return Err(Unreadable::new(
            dir,
            format!(
                "not a paxstore-files store: no readable `{MARKER_FILE}` marker, no segment files"
            ),
        ));
    }
    w.problems.extend(missing);
    segments.sort();
    snapshots.sort();
    // As open does: segments below the last gap in the ids are dead (their deletion was
    // interrupted; the next open deletes them); the live log is the run of consecutive ids
    // that ends at the newest segment, and it must hold the log's entries.
    let ids: Vec<u64> = segments.iter().map(|(id, _)| *id).collect();
    let dead: Vec<(u64, String)> = segments.drain(..live_from(&ids)).collect();
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
        let bytes = std::fs::read(&path).map_err(|e| Unreadable::new(&path, e.to_string()))?;
        if k == 0 {
            first_live_index = format::decode_header(&bytes)
                .ok()
                .map(|(h, _)| h.first_index);
        }
        let detail = w.segment(name, *id, &bytes, k + 1 == segments.len(), &mut meta)?;
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
        let bytes = std::fs::read(&path).map_err(|e| Unreadable::new(&path, e.to_string()))?;
        let is_ref = referenced.is_some_and(|r| r.id == *id);
        let check = || -> Result<String, (u64, String)> {
            let r = format::decode_snapshot_header(&bytes).map_err(|e| match e {
                DecodeError::Corrupt(r) => (0, r),
                DecodeError::Version(v) => (8, format!("format version {v}")),
            })?;
            if r.id != *id {
                return Err((12, format!("the header names snapshot {}", r.id)));
            }
            let body = bytes.get(format::SNAPSHOT_HEADER..).unwrap_or_default();
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
    let log = log_summary("log", &meta);
    Ok(Summary {
        backend: crate::BACKEND.to_string(),
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

/// What a verifier reports of one log with metadata `meta` (both stores' verifiers).
pub(crate) fn log_summary(name: &str, meta: &Checkpoint) -> LogSummary {
    LogSummary {
        name: name.into(),
        first: meta.first,
        next: meta.next,
        decided: meta.decided,
        compacted: meta.compacted,
        promise: meta.promise,
        accepted: meta.accepted,
        stopsign: meta.stopsign.as_ref().map(describe_stopsign),
        snapshot_bytes: meta.snapshot.map(|s| s.len),
    }
}

/// What the walk of the directory found so far.
struct Walk {
    dir: PathBuf,
    problems: Vec<Problem>,
    notes: Vec<String>,
    records: u64,
    entries: u64,
}

/// Applies one effect of a batch record to the metadata by the contract's rules, as open
/// replays it ([`plan::append_on_prefix`], [`plan::trim`]); an append open would refuse is an
/// error.
fn replay(meta: &mut Checkpoint, effect: Effect) -> Result<(), String> {
    let index = |i: u64| usize::try_from(i).map_err(|_| format!("index {i} beyond this machine's"));
    let mut bounds = Bounds::new(index(meta.first)?, index(meta.next)?);
    match effect {
        Effect::Append { at, locs } => {
            plan::append_on_prefix(&mut bounds, index(at)?, locs.len())
                .map_err(|e| format!("a record holds {e}"))?;
        }
        Effect::Trim(i) => {
            plan::trim(&mut bounds, index(i)?);
        }
        Effect::Meta(op) => {
            op.apply(meta);
            return Ok(());
        }
        Effect::Relocate { .. } => {
            return Err("a relocation op in a single-log store's record".into());
        }
    }
    (meta.first, meta.next) = (bounds.first as u64, bounds.next as u64);
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Walk {
    fn problem(&mut self, file: &str, offset: Option<u64>, reason: impl Into<String>) {
        self.problems.push(Problem {
            file: self.dir.join(file),
            offset,
            reason: reason.into(),
        });
    }

    /// Walks one segment (`bytes`, the whole file) and describes it; for the newest segment
    /// (`newest`), sets `meta` to the metadata after replay.
    fn segment(
        &mut self,
        name: &str,
        id: u64,
        bytes: &[u8],
        newest: bool,
        meta: &mut Option<Checkpoint>,
    ) -> Result<String, Unreadable> {
        let (h, hlen) = match format::decode_header(bytes) {
            Ok(header) => header,
            Err(DecodeError::Version(v)) => {
                return Err(Unreadable::new(
                    &self.dir.join(name),
                    format!(
                        "on-disk format version {v}, this build reads version {}",
                        format::FORMAT_VERSION
                    ),
                ))
            }
            Err(DecodeError::Corrupt(reason)) => {
                self.problem(name, Some(0), format!("segment header: {reason}"));
                return Ok("bad header".into());
            }
        };
        if h.id != id {
            self.problem(
                name,
                Some(12),
                format!("the header names segment {} but the file is {id}", h.id),
            );
        }
        let mut local = h.checkpoint.clone();
        let mut appended = 0u64;
        let scan = scan_records(bytes, hlen, |at, effects| {
            for effect in effects {
                if let Effect::Append { at: index, locs } = &effect {
                    for (k, loc) in locs.iter().enumerate() {
                        let start = at + loc.offset as usize;
                        let frame = start.saturating_sub(ENTRY_FRAME);
                        let entry = bytes.get(start..start + loc.len as usize);
                        self.entries += 1;
                        appended += 1;
                        if entry.map(crc32c::crc32c) != u32_at(bytes, frame + 4) {
                            self.problem(
                                name,
                                Some(frame as u64),
                                format!(
                                    "entry {} (in the record at offset {at}): checksum mismatch",
                                    index + k as u64
                                ),
                            );
                        }
                    }
                }
                replay(&mut local, effect)?;
            }
            Ok(())
        });
        self.records += scan.records;
        let len = bytes.len();
        let torn = |at: usize| newest && is_torn_tail(bytes, at);
        let mut sealed = false;
        match scan.end {
            ScanEnd::Open { at } => {
                if !newest {
                    self.problem(
                        name,
                        Some(at as u64),
                        "the segment ends without a seal record, but only the newest segment \
                         may be open",
                    );
                }
            }
            ScanEnd::Sealed { seal_at, end } => {
                sealed = true;
                if end != len {
                    if newest && bytes[end..].iter().all(|&b| b == 0) {
                        self.notes.push(format!(
                            "{name}: {} bytes of preallocated zeros after the trailer at offset \
                             {seal_at} (a seal cut short by a crash before it trimmed the file; \
                             the next open cuts them off)",
                            len - end
                        ));
                    } else {
                        self.problem(
                            name,
                            Some(end as u64),
                            format!("{} bytes after the trailer", len - end),
                        );
                    }
                }
            }
            ScanEnd::SealWithoutTrailer {
                at,
                trailer_at,
                trailer,
            } => {
                if torn(at) {
                    self.notes.push(format!(
                        "{name}: seal record at offset {at} without its trailer (a seal cut \
                         short by a crash; the next open cuts it off)"
                    ));
                } else {
                    let reason = match trailer {
                        None => "the seal record is not followed by a valid trailer".to_string(),
                        Some(t) => format!(
                            "the trailer points at a seal record at offset {}, the seal record \
                             is at {at}",
                            t.seal_offset
                        ),
                    };
                    self.problem(name, Some(trailer_at as u64), reason);
                }
            }
            ScanEnd::Truncated { at } => {
                if torn(at) {
                    self.notes.push(format!(
                        "{name}: torn final record at offset {at} ({} bytes, a write cut short \
                         by a crash; never acknowledged, the next open cuts it off)",
                        len - at
                    ));
                } else if newest {
                    self.problem(
                        name,
                        Some(at as u64),
                        "record runs past the end of the segment, with valid records after it",
                    );
                } else {
                    self.problem(
                        name,
                        Some(at as u64),
                        "record cut short by the end of the file",
                    );
                }
            }
            ScanEnd::Bad { at, reason } => {
                if torn(at) {
                    self.notes.push(format!(
                        "{name}: torn final record at offset {at} ({reason}; nothing valid \
                         follows it, so it is a write cut short by a crash, never \
                         acknowledged; the next open cuts it off)"
                    ));
                } else {
                    self.problem(name, Some(at as u64), reason);
                }
            }
            ScanEnd::Undecodable { at, what, error } => {
                let reason = match error {
                    DecodeError::Corrupt(r) => r,
                    DecodeError::Version(v) => format!("format version {v}"),
                };
                self.problem(name, Some(at as u64), format!("{what}: {reason}"));
            }
            ScanEnd::Rejected { at, reason } => {
                self.problem(name, Some(at as u64), format!("batch record: {reason}"));
            }
        }
        if newest {
            *meta = Some(local);
        }
        Ok(format!(
            "{}, first index {}, {} records, {appended} entries written",
            if sealed { "sealed" } else { "open" },
            h.first_index,
            scan.records
        ))
    }
}
