//! Opening a many-logs store: lock, list, the newest segment's header (every log's
//! checkpoint), every sealed segment's seal (positions), the newest segment's records, a torn
//! tail cut, coverage per log, leftovers removed. Sealed segments' records are never read.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use super::{commit::CommitQueue, stream, Counters, Inner, Order, SegView, State, Stream};
use crate::engine::{apply_effects, Active, Files, Segment};
use crate::error::{Error, Result};
use crate::format::{self, Frame, RegistryOp};
use crate::options::{FilesOptions, RecoveryMode};
use crate::recovery::{
    decode_err, is_torn_store_tail, list_store, live_from, scan_with, settle_tail, Listing, Reject,
};

pub(crate) fn open(dir: &Path, opts: FilesOptions) -> Result<Inner> {
    opts.validate()?;
    let started = Instant::now();
    let fs = opts.fs.clone();
    let Listing {
        marker,
        lock,
        segment_ids,
        snapshot_ids,
        leftovers,
    } = list_store(fs.as_ref(), dir, opts.adopt_unmarked, super::BACKEND)?;
    let mut segment_ids = segment_ids;
    let strict = opts.recovery == RecoveryMode::Strict;
    let mut files = Files::new(dir, opts.clone(), lock, marker.clone());
    let mut state = State::default();
    let mut next_log_id = 1;
    let stale: Vec<u64> = segment_ids.drain(..live_from(&segment_ids)).collect();
    let stale_below = segment_ids.first().copied().filter(|_| !stale.is_empty());
    let mut next_snapshot_id = snapshot_ids.last().map_or(1, |&id| id + 1);
    if let Some(&newest) = segment_ids.last() {
        // The newest header: every log and its metadata when the segment was created.
        let path = files.path(&format::segment_name(newest));
        let file = fs.open(&path).map_err(|e| Error::io("open", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        let (id, header_next_log, ckpt, hlen) =
            format::decode_store_header(&buf).map_err(|e| decode_err(&path, 0, e))?;
        if id != newest {
            return Err(Error::corrupt(
                &path,
                12,
                format!("header says segment {id}, file name says {newest}"),
            ));
        }
        next_log_id = header_next_log;
        next_snapshot_id = next_snapshot_id.max(ckpt.next_snapshot_id);
        state = State::from_checkpoint(ckpt.logs).map_err(|e| Error::corrupt(&path, 0, e))?;
        // Sealed segments, oldest first: each seal's runs over the older ones'.
        for &id in &segment_ids[..segment_ids.len() - 1] {
            open_sealed(&mut files, &mut state, id)?;
        }
        state.clamp();
        // The newest segment's records. Nothing is deleted on their strength before they are
        // made durable below (a dropped log's snapshot file goes with the orphans).
        let scan = scan_with(
            &buf,
            hlen,
            format::KIND_STORE_SEAL,
            |pos, kind, body, start| {
                replay(&mut state, newest, pos, kind, body, start, &mut next_log_id)
            },
        );
        let (pos, sealed, cut) = settle_tail(
            &mut files.stats,
            &path,
            file.as_ref(),
            &buf,
            scan.end,
            strict,
            is_torn_store_tail,
        )?;
        for log in state.logs.values() {
            if !log.index.covers(log.meta.first, log.meta.next) {
                let (first, next) = (log.meta.first, log.meta.next);
                let held = log.index.len();
                return Err(match stale_below {
                    Some(oldest) => Error::corrupt(
                        files.path(&format::segment_name(oldest - 1)),
                        0,
                        format!(
                            "segment {} is missing: log `{}` holds [{first}, {next}) but the \
                             segments from {oldest} hold {held} of those entries",
                            oldest - 1,
                            log.name
                        ),
                    ),
                    None => Error::corrupt(
                        &path,
                        0,
                        format!(
                            "after replay log `{}` holds [{first}, {next}) but the segments \
                             hold {held} of those entries",
                            log.name
                        ),
                    ),
                });
            }
        }
        files.segments.insert(
            newest,
            Segment {
                file: if sealed { None } else { Some(file.clone()) },
                path: path.clone(),
                size: pos as u64,
            },
        );
        if !sealed {
            files.active = Some(Active {
                id: newest,
                end: pos as u64,
                header_len: hlen as u64,
                allocated: if cut { pos as u64 } else { len },
            });
        }
        files.next_segment_id = newest + 1;
        // What was just read may be only in the page cache: make it durable before acting
        // on it (deleting, cutting, answering).
        files.stats.fsyncs += 1;
        file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
    }
    let snapshots = state
        .logs
        .values_mut()
        .map(|l| (format!("log `{}`", l.name), &mut l.meta.snapshot))
        .collect();
    files.settle_files(&leftovers, &snapshot_ids, snapshots, &stale)?;
    files.stats.last_recovery = started.elapsed();
    let queue = CommitQueue::new(
        super::MAX_GROUP_BYTES,
        opts.group_wait,
        opts.groups_in_flight,
    );
    let inner = Inner {
        dir: dir.to_path_buf(),
        opts,
        marker,
        queue,
        stream: Mutex::new(Stream {
            files,
            buf: Vec::new(),
            written: 0,
        }),
        order: Mutex::new(Order::default()),
        applied: std::sync::Condvar::new(),
        state: RwLock::new(state),
        registry: Mutex::new(()),
        next_log_id: AtomicU64::new(next_log_id),
        next_snapshot_id: AtomicU64::new(next_snapshot_id),
        poisoned: Mutex::new(None),
        counters: Counters::default(),
    };
    {
        let mut stream = super::lock(&inner.stream);
        let ids: Vec<u64> = stream.files.segments.keys().copied().collect();
        for id in ids {
            let view = SegView {
                path: stream.files.path(&format::segment_name(id)),
                size: stream.files.segments[&id].size,
                file: stream.files.handle(id)?,
            };
            inner.write_state().segs.insert(id, view);
        }
        if stream.files.active.is_none() {
            // A new store, or a newest segment that was sealed: start the next one.
            stream::create_segment(&inner, &mut stream)?;
        }
        // Open synced what it read: the newest segment is durable to its end.
        if let Some(a) = stream.files.active.as_ref() {
            super::lock(&inner.order).durable = (a.id, a.end);
        }
        stream::reclaim(&inner, &mut stream);
        stream.files.check()?;
    }
    Ok(inner)
}

/// A sealed segment: check its header prefix and trailer, take its seal's runs.
fn open_sealed(files: &mut Files, state: &mut State, id: u64) -> Result<()> {
    let path = files.path(&format::segment_name(id));
    let (len, _, runs) = read_seal(files.fs.as_ref(), &path)?;
    state.apply_seal(id, runs);
    files.segments.insert(
        id,
        Segment {
            file: None,
            path,
            size: len,
        },
    );
    Ok(())
}

/// Reads a sealed segment's header prefix, trailer and seal summary: the file's length, the
/// summary's offset and its runs (whose position tables are checked to lie between the header
/// and the summary; they are read on first use).
pub(crate) fn read_seal(
    fs: &dyn crate::env::FileSystem,
    path: &Path,
) -> Result<(u64, u64, Vec<format::SealRunRef>)> {
    let file = fs.open(path).map_err(|e| Error::io("open", path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", path, e))?;
    let mut prefix = vec![0u8; format::SEGMENT_HEADER_PREFIX.min(len as usize)];
    file.read_exact_at(&mut prefix, 0)
        .map_err(|e| Error::io("read header", path, e))?;
    let hlen = format::store_header_len(&prefix).map_err(|e| decode_err(path, 0, e))? as u64;
    let trailer_at = len
        .checked_sub(format::TRAILER_LEN as u64)
        .filter(|&t| t >= hlen);
    let trailer = trailer_at.and_then(|at| {
        let mut b = [0u8; format::TRAILER_LEN];
        file.read_exact_at(&mut b, at).ok()?;
        format::decode_trailer(&b)
    });
    let (Some(t), Some(trailer_at)) = (trailer, trailer_at) else {
        return Err(Error::corrupt(
            path,
            len.saturating_sub(format::TRAILER_LEN as u64),
            "segment is not the newest but has no valid trailer (not sealed, or damaged)",
        ));
    };
    if t.seal_offset < hlen || t.seal_offset >= trailer_at {
        return Err(Error::corrupt(
            path,
            trailer_at,
            "trailer disagrees with the file length",
        ));
    }
    let mut seal = vec![0u8; (trailer_at - t.seal_offset) as usize];
    file.read_exact_at(&mut seal, t.seal_offset)
        .map_err(|e| Error::io("read seal", path, e))?;
    let runs = match format::parse_frame(&seal) {
        Frame::Record {
            kind: format::KIND_STORE_SEAL,
            body,
            total,
        } if total == seal.len() => {
            format::parse_store_seal(&seal[body]).map_err(|e| decode_err(path, t.seal_offset, e))?
        }
        _ => return Err(Error::corrupt(path, t.seal_offset, "seal record damaged")),
    };
    if runs.len() as u64 != t.count {
        return Err(Error::corrupt(
            path,
            trailer_at,
            "trailer disagrees with the seal record",
        ));
    }
    if runs.iter().any(|r| {
        r.table_offset < hlen
            || r.table_offset
                .checked_add(8 * r.count as u64)
                .is_none_or(|end| end > t.seal_offset)
    }) {
        return Err(Error::corrupt(
            path,
            t.seal_offset,
            "seal summary places a position table outside the segment's records",
        ));
    }
    Ok((len, t.seal_offset, runs))
}

/// One record of the newest segment, replayed.
pub(crate) fn replay(
    state: &mut State,
    seg: u64,
    pos: usize,
    kind: u8,
    body: &[u8],
    start: usize,
    next_log_id: &mut u64,
) -> std::result::Result<(), Reject> {
    match kind {
        format::KIND_LOG_BATCH => {
            let (log, effects) =
                format::parse_log_batch(body, start).map_err(|error| Reject::Undecodable {
                    what: "log batch record",
                    error,
                })?;
            let l = state.logs.get_mut(&log).ok_or_else(|| {
                Reject::Rejected(format!(
                    "a batch of log {log}, which the store does not hold"
                ))
            })?;
            apply_effects(&mut l.meta, &mut l.index, seg, pos as u64, effects, true)
                .map_err(Reject::Rejected)
        }
        format::KIND_REGISTRY => {
            let op = format::parse_registry(body).map_err(|error| Reject::Undecodable {
                what: "registry record",
                error,
            })?;
            if let RegistryOp::Add { id, .. } = &op {
                *next_log_id = (*next_log_id).max(id + 1);
            }
            stream::apply_registry(state, &op)
                .map(|_| ())
                .map_err(Reject::Rejected)
        }
        // The position tables of the seal that follows (read through its summary).
        format::KIND_STORE_TABLES => Ok(()),
        format::KIND_GROUP => {
            format::parse_group(body)
                .map(|_| ())
                .map_err(|error| Reject::Undecodable {
                    what: "group record",
                    error,
                })
        }
        format::KIND_STORE_SEAL => {
            format::parse_store_seal(body)
                .map(|_| ())
                .map_err(|error| Reject::Undecodable {
                    what: "seal record",
                    error,
                })
        }
        k => Err(Reject::Rejected(format!(
            "record kind {k} belongs to a single-log store, not in a many-logs one"
        ))),
    }
}
