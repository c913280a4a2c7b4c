//! The leader's work: writing a group of records to the stream, rotating segments (seal,
//! header with every log's checkpoint, relocation of old live entries), reclaiming dead
//! segments; and the readers' way to entries.

use std::sync::atomic::Ordering;

use std::path::PathBuf;
use std::sync::Arc;

use super::{lock, Action, Inner, LogState, Request, SegView, State, Stream};
use crate::engine::apply_effects;
use crate::error::{Error, Result};
use crate::format::Loc;
use crate::format::{
    self, BatchBuilder, LogCheckpoint, RegistryOp, SealRun, StoreCheckpoint, Trailer,
};
use crate::index::{Locs, Run};

/// Largest relocation record (entry bytes), and at most a quarter of a segment.
const RELOCATE_CHUNK: u64 = 1 << 20;

/// A copy of `e` for the other members of a group that failed together.
fn duplicate(e: &Error) -> Error {
    match e {
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Poisoned { reason } => Error::Poisoned {
            reason: reason.clone(),
        },
        Error::Corrupt {
            path,
            offset,
            reason,
        } => Error::corrupt(path, *offset, reason.clone()),
        Error::TooLarge { bytes, limit } => Error::TooLarge {
            bytes: *bytes,
            limit: *limit,
        },
        other => Error::Poisoned {
            reason: other.to_string(),
        },
    }
}

/// A group on its way: its requests, their results so far, and the chunk written and not yet
/// made durable and applied.
pub(crate) struct Written {
    group: Vec<Request>,
    outs: Vec<Option<Result<()>>>,
    chunk: Option<Chunk>,
    /// The first request not written yet.
    next: usize,
}

/// Records `start..end` of a group, written with one write at `offset` of segment `seg`, the
/// `seq`-th chunk of the stream.
struct Chunk {
    seq: u64,
    seg: u64,
    offset: u64,
    start: usize,
    end: usize,
    sync: bool,
    file: std::sync::Arc<dyn crate::env::FsFile>,
}

fn fail_from(outs: &mut [Option<Result<()>>], e: &Error) {
    for out in outs.iter_mut().filter(|o| o.is_none()) {
        *out = Some(Err(duplicate(e)));
    }
}

/// The first stage of a group commit (under the stream's lock, before the next group may
/// start): writes the longest prefix of the group that fits in the active segment (rotating
/// first if not even its first record fits) with one write, without syncing it.
pub(crate) fn write_group(inner: &Inner, group: Vec<Request>) -> Written {
    let n = group.len();
    let mut w = Written {
        group,
        outs: (0..n).map(|_| None).collect(),
        chunk: None,
        next: 0,
    };
    write_chunk(inner, &mut w);
    w
}

/// Writes the next chunk of `w` (see [`write_group`]).
fn write_chunk(inner: &Inner, w: &mut Written) {
    let mut stream = lock(&inner.stream);
    let n = w.group.len();
    while w.next < n {
        let i = w.next;
        if let Err(e) = stream.files.check().and_then(|()| inner.check()) {
            inner.poison(&e);
            fail_from(&mut w.outs[i..], &e);
            w.next = n;
            return;
        }
        let first = &w.group[i];
        if first.record.len() as u64 - format::RECORD_HEADER as u64 > format::MAX_RECORD_BODY {
            w.outs[i] = Some(Err(Error::TooLarge {
                bytes: first.record.len() as u64,
                limit: format::MAX_RECORD_BODY,
            }));
            w.next += 1;
            continue;
        }
        if stream
            .files
            .full_for(first.record.len() as u64, first.frees)
        {
            // The seal lists every record of the segment: the chunks in flight first.
            let rotated = wait_applied(inner, stream.written)
                .and_then(|()| inner.check())
                .and_then(|()| rotate(inner, &mut stream));
            if let Err(e) = rotated {
                if stream.files.check().is_err() {
                    inner.poison(&e);
                }
                fail_from(&mut w.outs[i..], &e);
                w.next = n;
                return;
            }
        }
        // The longest run of records from `i` that fits in the active segment.
        let mut j = i + 1;
        let mut total = first.record.len() as u64;
        let room = stream.files.active.as_ref().map_or(0, |a| {
            (stream.files.opts.segment_size).saturating_sub(a.end + 2 * format::TRAILER_LEN as u64)
        });
        while j < n && total + (format::GROUP_RECORD + w.group[j].record.len()) as u64 <= room {
            total += w.group[j].record.len() as u64;
            j += 1;
        }
        let sync = w.group[i..j].iter().any(|r| r.sync);
        let frees = w.group[i..j].iter().all(|r| r.frees);
        let written = write_chunk_bytes(inner, &mut stream, frees, |buf| {
            for r in &w.group[i..j] {
                buf.extend_from_slice(&r.record);
            }
        });
        w.next = j;
        match written.and_then(|(seg, offset)| Ok((seg, offset, stream.files.handle(seg)?))) {
            Ok((seg, offset, file)) => {
                stream.written += 1;
                w.chunk = Some(Chunk {
                    seq: stream.written,
                    seg,
                    offset,
                    start: i,
                    end: j,
                    sync,
                    file,
                });
                return;
            }
            Err(e) => {
                if stream.files.check().is_err() {
                    inner.poison(&e);
                }
                fail_from(&mut w.outs[i..j], &e);
            }
        }
    }
}

/// Writes one chunk at the end of the active segment, unsynced: a group record saying how far
/// the segment is durable now, then what `fill` puts in the buffer, with one write. The
/// segment and the offset of the first byte after the group record.
fn write_chunk_bytes(
    inner: &Inner,
    stream: &mut Stream,
    frees: bool,
    fill: impl FnOnce(&mut Vec<u8>),
) -> Result<(u64, u64)> {
    let durable_end = match stream.files.active.as_ref() {
        Some(a) => {
            let durable = lock(&inner.order).durable;
            if durable.0 == a.id {
                durable.1
            } else {
                a.header_len
            }
        }
        None => 0,
    };
    let mut buf = std::mem::take(&mut stream.buf);
    buf.clear();
    buf.extend_from_slice(&format::encode_group(durable_end));
    fill(&mut buf);
    let written = stream.files.write_record(&buf, false, frees);
    if buf.capacity() <= 2 * super::MAX_GROUP_BYTES {
        stream.buf = buf;
    }
    written.map(|(seg, offset)| (seg, offset + format::GROUP_RECORD as u64))
}

/// Waits until every chunk up to `seq` is durable and applied (or failed).
fn wait_applied(inner: &Inner, seq: u64) -> Result<()> {
    let mut order = lock(&inner.order);
    while order.applied < seq {
        order = inner.applied.wait(order).unwrap_or_else(|p| p.into_inner());
    }
    Ok(())
}

/// The second stage (no stream lock: the next group is written meanwhile): makes the chunk
/// durable, waits for the chunks before it, applies it, and goes on with the rest of the
/// group; then deletes what it made dead. One result per request.
pub(crate) fn finish_group(inner: &Inner, mut w: Written) -> Vec<Result<()>> {
    let mut dead_snapshots = Vec::new();
    let mut freed = false;
    loop {
        let Some(chunk) = w.chunk.take() else { break };
        let synced = if chunk.sync {
            inner.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            chunk.file.sync_data().map_err(|e| {
                Error::io(
                    "fdatasync",
                    inner.dir.join(format::segment_name(chunk.seg)),
                    e,
                )
            })
        } else {
            Ok(())
        };
        inner.counters.groups.fetch_add(1, Ordering::Relaxed);
        // Chunks are applied in stream order, and one fails if any before it failed: its
        // `fdatasync` may have succeeded on pages an earlier failed one lost.
        let mut order = lock(&inner.order);
        while order.applied + 1 < chunk.seq {
            order = inner.applied.wait(order).unwrap_or_else(|p| p.into_inner());
        }
        let mut cut = false;
        let failure = match (&order.failed, synced) {
            (Some(reason), _) => Some(Error::Poisoned {
                reason: reason.clone(),
            }),
            (None, Err(e)) => {
                order.failed = Some(e.to_string());
                inner.poison(&e);
                cut = true;
                Some(e)
            }
            (None, Ok(())) => None,
        };
        match failure {
            Some(e) => fail_from(&mut w.outs[chunk.start..chunk.end], &e),
            None => {
                let mut state = inner.write_state();
                let mut offset = chunk.offset;
                let end = offset
                    + w.group[chunk.start..chunk.end]
                        .iter()
                        .map(|r| r.record.len() as u64)
                        .sum::<u64>();
                grew(&mut state, chunk.seg, end);
                for k in chunk.start..chunk.end {
                    let req = &mut w.group[k];
                    let applied = apply(&mut state, chunk.seg, offset, req, &mut dead_snapshots);
                    offset += req.record.len() as u64;
                    freed |= req.frees;
                    w.outs[k] = Some(applied.map_err(|reason| {
                        // The record is durable but memory disagrees with it: only a
                        // reopen can say what the log holds.
                        let e = Error::Poisoned {
                            reason: format!("a record could not be applied: {reason}"),
                        };
                        order.failed.get_or_insert(e.to_string());
                        inner.poison(&e);
                        e
                    }));
                }
                inner
                    .counters
                    .records
                    .fetch_add((chunk.end - chunk.start) as u64, Ordering::Relaxed);
                if chunk.sync {
                    order.durable = (chunk.seg, end);
                }
                // A synced chunk's fdatasync covers every chunk written before it.
                order.unsynced = !chunk.sync;
            }
        }
        order.applied = chunk.seq;
        inner.applied.notify_all();
        drop(order);
        if cut {
            // The batch fails, so its record (and any written after it, which fail too)
            // must not be replayed by a later open: cut it off, durably, if the file lets us.
            let mut stream = lock(&inner.stream);
            let reason = inner.check().err().map(|e| e.to_string());
            stream
                .files
                .poisoned
                .get_or_insert(reason.unwrap_or_default());
            let start = chunk.offset - format::GROUP_RECORD as u64;
            let _ = chunk
                .file
                .set_len(start)
                .and_then(|()| chunk.file.sync_all());
        }
        if w.next < w.group.len() {
            write_chunk(inner, &mut w);
        }
    }
    if freed || !dead_snapshots.is_empty() {
        let mut stream = lock(&inner.stream);
        if !dead_snapshots.is_empty() {
            let dir = stream.files.dir.clone();
            let paths = dead_snapshots
                .iter()
                .map(|&id| dir.join(format::snapshot_name(id)))
                .collect();
            stream.files.purger.submit(paths, dir, true);
        }
        if freed {
            reclaim(inner, &mut stream);
        }
    }
    // Requests still unanswered come after a failure that stopped the group.
    w.outs
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Err(Error::Poisoned {
                    reason: "the group commit stopped".into(),
                })
            })
        })
        .collect()
}

/// Applies one durable record at `offset` of segment `seg` (its effects are taken: a record
/// is applied once); a snapshot file it makes dead goes to `dead`.
fn apply(
    state: &mut State,
    seg: u64,
    offset: u64,
    req: &mut Request,
    dead: &mut Vec<u64>,
) -> std::result::Result<(), String> {
    match &mut req.action {
        Action::Batch { log, effects } => {
            let l = state
                .logs
                .get_mut(log)
                .ok_or_else(|| format!("a batch of log {log}, which the store does not hold"))?;
            let old = l.meta.snapshot;
            apply_effects(
                &mut l.meta,
                &mut l.index,
                seg,
                offset,
                std::mem::take(effects),
                true,
            )?;
            // A replaced snapshot file is dead once the record (synced) is applied.
            if let Some(old) = old.filter(|o| Some(o.id) != l.meta.snapshot.map(|s| s.id)) {
                dead.push(old.id);
            }
            Ok(())
        }
        Action::Registry(op) => {
            // A dropped log's snapshot file is dead once the (synced) record is applied.
            dead.extend(apply_registry(state, op)?);
            Ok(())
        }
    }
}

/// Adds or drops a log in memory (the record is durable, or being replayed); a dropped log's
/// snapshot file id, for the caller to delete once that is safe.
pub(crate) fn apply_registry(
    state: &mut State,
    op: &RegistryOp,
) -> std::result::Result<Option<u64>, String> {
    match op {
        RegistryOp::Add { id, name } => {
            if state.logs.contains_key(id) || state.names.contains_key(name) {
                return Err(format!("log {id} (`{name}`) added twice"));
            }
            state.logs.insert(*id, LogState::new(name.clone()));
            state.names.insert(name.clone(), *id);
        }
        RegistryOp::Drop { id } => {
            let log = state
                .logs
                .remove(id)
                .ok_or_else(|| format!("log {id} dropped but not held"))?;
            state.names.remove(&log.name);
            return Ok(log.meta.snapshot.map(|r| r.id));
        }
    }
    Ok(None)
}

/// Deletes the segments older than every log's oldest needed segment (never the newest).
pub(crate) fn reclaim(inner: &Inner, stream: &mut Stream) {
    let keep_from = inner
        .read_state()
        .logs
        .values()
        .filter_map(|l| l.index.oldest_segment())
        .min();
    // What the state says is dead must be durable before anything goes: under
    // `SyncPolicy::Never` an unsynced chunk (an `append_on_prefix` dropping old entries) may
    // have been applied after the synced trim that called this.
    if lock(&inner.order).unsynced {
        if let Some(id) = stream.files.active.as_ref().map(|a| a.id) {
            let synced = stream.files.handle(id).and_then(|file| {
                stream.files.stats.fsyncs += 1;
                file.sync_data().map_err(|e| {
                    Error::io("fdatasync", stream.files.path(&format::segment_name(id)), e)
                })
            });
            if let Err(e) = synced {
                stream.files.poisoned.get_or_insert(e.to_string());
                inner.poison(&e);
                return;
            }
            lock(&inner.order).unsynced = false;
        }
    }
    let before: Vec<u64> = stream.files.segments.keys().copied().collect();
    stream.files.delete_below(keep_from);
    let mut state = inner.write_state();
    for id in before {
        if !stream.files.segments.contains_key(&id) {
            state.segs.remove(&id);
        }
    }
}

/// Seals the active segment and starts the next one now (an API call: takes the stream).
pub(crate) fn rotate_now(inner: &Inner) -> Result<()> {
    let mut stream = lock(&inner.stream);
    stream.files.check()?;
    // The seal lists every record of the segment: the chunks in flight first.
    let result = wait_applied(inner, stream.written)
        .and_then(|()| inner.check())
        .and_then(|()| rotate(inner, &mut stream));
    if let Err(e) = &result {
        if stream.files.check().is_err() {
            inner.poison(e);
        }
    }
    result
}

/// Seal (every log's runs in the active segment), new segment (header with every log's
/// checkpoint), then relocation of old live entries if the segments take too much space.
pub(crate) fn rotate(inner: &Inner, stream: &mut Stream) -> Result<()> {
    if let Some(active) = stream.files.active.as_ref() {
        let (id, end) = (active.id, active.end);
        let runs = seal_runs(&inner.read_state(), id);
        let (mut buf, summary) = format::encode_store_seal(&runs, end);
        buf.extend_from_slice(&format::encode_trailer(&Trailer {
            seal_offset: end + summary as u64,
            first: 0,
            count: runs.len() as u64,
        }));
        stream.files.write_seal(&buf)?;
        let size = stream.files.segments.get(&id).map(|s| s.size);
        if let (Some(size), Some(view)) = (size, inner.write_state().segs.get_mut(&id)) {
            view.size = size;
        }
    }
    create_segment(inner, stream)?;
    relocate(inner, stream)
}

/// Every log's live runs stored in segment `seg`.
fn seal_runs(state: &State, seg: u64) -> Vec<SealRun> {
    let mut runs = Vec::new();
    for (&id, log) in &state.logs {
        for run in log.index.runs().iter().filter(|r| r.seg == seg) {
            // Runs of the active segment and relocated runs are built in memory: loaded.
            if let Some(v) = run.loaded() {
                runs.push(SealRun {
                    log: id,
                    at: run.start,
                    locs: v[(run.start - run.base) as usize..(run.end - run.base) as usize]
                        .to_vec(),
                });
            }
        }
    }
    runs
}

/// Creates the next segment with every log's checkpoint in its header.
pub(crate) fn create_segment(inner: &Inner, stream: &mut Stream) -> Result<()> {
    let header = {
        let state = inner.read_state();
        let ckpt = StoreCheckpoint {
            next_snapshot_id: inner.next_snapshot_id.load(Ordering::SeqCst),
            logs: state
                .logs
                .iter()
                .map(|(&id, l)| LogCheckpoint {
                    id,
                    name: l.name.clone(),
                    meta: l.meta.clone(),
                })
                .collect(),
        };
        format::encode_store_header(
            stream.files.next_segment_id,
            inner.next_log_id.load(Ordering::SeqCst),
            &ckpt,
        )?
    };
    stream.files.create_segment_with(&header)?;
    let id = stream.files.next_segment_id - 1;
    let view = SegView {
        path: stream.files.path(&format::segment_name(id)),
        size: header.len() as u64,
        file: stream.files.handle(id)?,
    };
    inner.write_state().segs.insert(id, view);
    // Its header is durable (synced, renamed, directory synced), and nothing else is in it.
    // The segment before it was sealed and synced.
    let mut order = lock(&inner.order);
    order.durable = (id, header.len() as u64);
    order.unsynced = false;
    Ok(())
}

/// The space rule: while the segments hold more than `max(4 × segment size, 2 × live bytes +
/// 2 × segment size)`, copy the live entries of the oldest segments forward (at most half a
/// segment of entries per rotation), durably, then delete what that freed.
fn relocate(inner: &Inner, stream: &mut Stream) -> Result<()> {
    let seg_size = stream.files.opts.segment_size;
    let (mut total, live) = {
        let state = inner.read_state();
        let total: u64 = stream.files.segments.values().map(|s| s.size).sum();
        let live: u64 = state.logs.values().map(|l| l.index.live_bytes()).sum();
        (total, live)
    };
    let budget = (4 * seg_size).max(2 * live + 2 * seg_size);
    let Some(active) = stream.files.active.as_ref().map(|a| a.id) else {
        return Ok(());
    };
    let chunk = RELOCATE_CHUNK.min(seg_size / 4);
    let room = stream.files.active.as_ref().map_or(0, |a| {
        seg_size.saturating_sub(a.end + 2 * format::TRAILER_LEN as u64)
    });
    let mut moved = 0u64;
    let mut written = 0u64;
    let mut records = Vec::new();
    let oldest: Vec<(u64, u64)> = stream
        .files
        .segments
        .iter()
        .filter(|(&id, _)| id < active)
        .map(|(&id, s)| (id, s.size))
        .collect();
    'segments: for (seg, size) in oldest {
        if total <= budget || moved >= seg_size / 2 {
            break;
        }
        // Every log's live entries in `seg`, in chunks of at most `chunk` bytes:
        // (log, from, to).
        let work: Vec<(u64, u64, u64)> = {
            let state = inner.read_state();
            let mut work = Vec::new();
            for (&id, l) in &state.logs {
                for run in l.index.runs().iter().filter(|r| r.seg == seg) {
                    let Some(locs) = run.loaded() else { continue };
                    let (mut from, mut bytes) = (run.start, 0u64);
                    for i in run.start..run.end {
                        let len = locs
                            .get((i - run.base) as usize)
                            .map_or(0, |l| l.len as u64);
                        if bytes > 0 && bytes + len > chunk {
                            work.push((id, from, i));
                            (from, bytes) = (i, 0);
                        }
                        bytes += len;
                    }
                    work.push((id, from, run.end));
                }
            }
            work
        };
        for (log, from, to) in work {
            let mut entries: Vec<Vec<u8>> = Vec::with_capacity((to - from) as usize);
            read_entries(inner, log, from, to, |e| {
                entries.push(e.to_vec());
                Ok(())
            })?;
            let bytes: u64 = entries.iter().map(|e| e.len() as u64).sum();
            let mut batch = BatchBuilder::for_log(log, Vec::new());
            batch.relocate(from, entries.iter().map(|e| e.as_slice()));
            let (record, effects) = batch.finish();
            if written + (format::GROUP_RECORD + record.len()) as u64 > room {
                break 'segments;
            }
            written += record.len() as u64;
            moved += bytes;
            records.push((log, record, effects, bytes));
        }
        total = total.saturating_sub(size);
    }
    if records.is_empty() {
        return Ok(());
    }
    // One chunk, synced before anything is applied or deleted on its strength.
    let (seg, mut offset) = write_chunk_bytes(inner, stream, false, |buf| {
        for (_, record, _, _) in &records {
            buf.extend_from_slice(record);
        }
    })?;
    let file = stream.files.handle(seg)?;
    stream.files.stats.fsyncs += 1;
    if let Err(e) = file.sync_data() {
        let e = Error::io(
            "fdatasync",
            stream.files.path(&format::segment_name(seg)),
            e,
        );
        stream.files.poisoned.get_or_insert(e.to_string());
        return Err(e);
    }
    let mut state = inner.write_state();
    grew(&mut state, seg, offset + written);
    for (log, record, effects, bytes) in records {
        let l = state.logs.get_mut(&log).ok_or_else(|| Error::Poisoned {
            reason: format!("log {log} vanished during relocation"),
        })?;
        if let Err(reason) = apply_effects(&mut l.meta, &mut l.index, seg, offset, effects, true) {
            let e = Error::Poisoned {
                reason: format!("a relocation could not be applied: {reason}"),
            };
            stream.files.poisoned.get_or_insert(e.to_string());
            return Err(e);
        }
        offset += record.len() as u64;
        inner
            .counters
            .relocated_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }
    drop(state);
    let mut order = lock(&inner.order);
    order.durable = (seg, offset);
    order.unsynced = false;
    drop(order);
    reclaim(inner, stream);
    Ok(())
}

/// Calls `f` with the encoded bytes of each entry `[from, to)` of log `log` (all stored), in
/// order, checksums checked. The positions and descriptors are taken under the state's lock;
/// the reads run without it.
pub(crate) fn read_entries(
    inner: &Inner,
    log: u64,
    from: u64,
    to: u64,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let pieces = {
        let state = inner.read_state();
        let l = state.logs.get(&log).ok_or_else(|| Error::NoSuchLog {
            name: format!("#{log}"),
        })?;
        let mut pieces = Vec::new();
        let mut i = from;
        let missing = |i: u64| {
            Error::corrupt(
                &inner.dir,
                0,
                format!("log `{}`: no position for entry {i}", l.name),
            )
        };
        let mut k = l.index.find(i).ok_or_else(|| missing(i))?;
        while i < to {
            let run = l.index.runs().get(k).ok_or_else(|| missing(i))?;
            let locs = run_locs(&state, run)?;
            let hi = to.min(run.end);
            if run.start > i || hi <= i {
                return Err(missing(i));
            }
            let slice = locs
                .get((i - run.base) as usize..(hi - run.base) as usize)
                .ok_or_else(|| missing(i))?
                .to_vec();
            let seg = state.segs.get(&run.seg).ok_or_else(|| {
                Error::corrupt(
                    stream_path(inner, run.seg),
                    0,
                    "segment of a live entry is missing",
                )
            })?;
            pieces.push((seg.file.clone(), seg.path.clone(), seg.size, slice, i));
            i = hi;
            k += 1;
        }
        pieces
    };
    let mut buf = Vec::new();
    for (file, path, size, slice, i) in pieces {
        crate::engine::read_slice(file.as_ref(), &path, size, &slice, i, &mut buf, &mut f)?;
    }
    Ok(())
}

/// The positions of `run`: in memory, or read from its segment's position table (checked
/// against its CRC) on first use.
fn run_locs<'a>(state: &State, run: &'a Run) -> Result<&'a [Loc]> {
    if let Some(v) = run.loaded() {
        return Ok(v);
    }
    let Locs::Table { table, cell } = &run.locs else {
        return Err(Error::Poisoned {
            reason: "internal error: a many-logs store's run without a table".into(),
        });
    };
    let seg = state.segs.get(&run.seg).ok_or_else(|| {
        Error::corrupt(
            PathBuf::from(format::segment_name(run.seg)),
            0,
            "segment of a live entry is missing",
        )
    })?;
    let mut bytes = vec![0u8; 8 * table.count as usize];
    seg.file
        .read_exact_at(&mut bytes, table.table_offset)
        .map_err(|e| Error::io("read position table", &seg.path, e))?;
    let locs = format::parse_table(table, &bytes)
        .map_err(|e| crate::recovery::decode_err(&seg.path, table.table_offset, e))?;
    let _ = cell.set(Arc::new(locs));
    run.loaded().ok_or_else(|| Error::Poisoned {
        reason: "internal error: a position table did not load".into(),
    })
}

/// Segment `seg` now holds `end` bytes (readers check positions against it).
fn grew(state: &mut State, seg: u64, end: u64) {
    if let Some(view) = state.segs.get_mut(&seg) {
        view.size = view.size.max(end);
    }
}

fn stream_path(inner: &Inner, seg: u64) -> std::path::PathBuf {
    inner.dir.join(format::segment_name(seg))
}
