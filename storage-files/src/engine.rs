//! The byte-level engine: segments, the active tail, the index and the metadata. It knows
//! nothing of the entry type; [`FilesStorage`](crate::FilesStorage) encodes and decodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use paxstore_core::bounds::Bounds;
use paxstore_core::plan::{self, Change};
use serde::Serialize;

use crate::env::{self, FileSystem, FsFile, FsLock};
use crate::error::{Error, Result};
use crate::format::{
    self, BatchBuilder, Checkpoint, Effect, Loc, MetaOp, SegmentHeader, SnapshotRef, Trailer,
};
use crate::index::{Index, Locs, Run};
use crate::options::FilesOptions;
use crate::purge::Purger;
use crate::stats::Stats;

/// A segment file on disk.
pub(crate) struct Segment {
    /// Open for the newest segment only; older ones are opened on demand through a small
    /// cache ([`HANDLES`]), so that open descriptors stay bounded however long the log.
    pub(crate) file: Option<Arc<dyn FsFile>>,
    pub(crate) path: PathBuf,
    /// Bytes in use (header, records, and for sealed segments the seal and trailer).
    pub(crate) size: u64,
}

/// The segment records are appended to.
pub(crate) struct Active {
    pub(crate) id: u64,
    /// Where the next record goes.
    pub(crate) end: u64,
    /// Length of the header (a segment holding only its header is empty).
    pub(crate) header_len: u64,
    /// Bytes reserved on disk for the file (its length, with preallocation).
    pub(crate) allocated: u64,
}

/// How far ahead of the write position a segment's space is reserved. Small enough that the
/// zeros recovery reads past the last record stay cheap, large enough that few `fdatasync`s
/// also have to flush a new file size.
pub(crate) const PREALLOCATE_STEP: u64 = 4 << 20;

/// Descriptors of sealed segments kept open for reads (least recently used dropped first).
pub(crate) const HANDLES: usize = 16;

/// Reserved space (with preallocation; at most a quarter of the segment size) that only a
/// record that frees space may use: when the disk is full, a trim can still be written, and
/// the space it frees lets the store go on.
pub(crate) const RESERVE: u64 = 64 << 10;

/// One batch on its way to disk: its record, built in the engine's reused buffer, the bounds
/// its plan leaves the log with, and the snapshot it sets (written at commit, before the
/// record that refers to it).
pub(crate) struct Batch {
    record: BatchBuilder,
    bounds: Bounds,
    /// `Some(new)` when the batch sets the snapshot (`new` its encoding, `None` to clear it).
    snapshot: Option<Option<Vec<u8>>>,
}

impl Batch {
    /// Drops the entries `>= at`, then appends `entries` at `at`.
    pub(crate) fn put<T: Serialize>(&mut self, at: usize, entries: &[T]) -> Result<()> {
        Ok(self.record.append(at as u64, entries)?)
    }

    /// `trim(to)`.
    pub(crate) fn trim(&mut self, to: usize) {
        self.record.trim(to as u64);
    }

    /// A metadata write.
    pub(crate) fn meta(&mut self, op: MetaOp) -> Result<()> {
        Ok(self.record.meta(op)?)
    }

    /// Sets the snapshot (its encoding, or `None` to clear it).
    pub(crate) fn snapshot(&mut self, bytes: Option<Vec<u8>>) {
        self.snapshot = Some(bytes);
    }
}

/// The files of a store: segments (the active one and the sealed ones), snapshot files, the
/// lock, the purger, the poison flag and the counters. Both stores use it: the single-log
/// [`Engine`] and the many-logs store's stream; neither's log state lives here.
pub(crate) struct Files {
    pub(crate) dir: PathBuf,
    pub(crate) opts: FilesOptions,
    pub(crate) fs: Arc<dyn FileSystem>,
    /// Declared before the lock so that pending deletions finish before the lock is released.
    pub(crate) purger: Purger,
    pub(crate) _lock: Box<dyn FsLock>,
    pub(crate) segments: BTreeMap<u64, Segment>,
    pub(crate) active: Option<Active>,
    pub(crate) poisoned: Option<String>,
    pub(crate) next_segment_id: u64,
    pub(crate) next_snapshot_id: u64,
    /// The store's marker.
    pub(crate) marker: paxstore_core::identity::Marker,
    pub(crate) stats: Stats,
    /// Open descriptors of sealed segments, most recently used last.
    pub(crate) handles: std::sync::Mutex<Vec<(u64, Arc<dyn FsFile>)>>,
}

/// The single-log store's engine: its files, and the one log's index and metadata.
pub(crate) struct Engine {
    pub(crate) files: Files,
    pub(crate) index: Index,
    pub(crate) meta: Checkpoint,
    /// The last record's buffer, reused for the next batch.
    pub(crate) scratch: Vec<u8>,
}

impl std::ops::Deref for Engine {
    type Target = Files;
    fn deref(&self) -> &Files {
        &self.files
    }
}

impl std::ops::DerefMut for Engine {
    fn deref_mut(&mut self) -> &mut Files {
        &mut self.files
    }
}

impl Files {
    /// The files of the store in `dir` (locked by `lock`, marked `marker`), before open reads
    /// its segments.
    pub(crate) fn new(
        dir: &Path,
        opts: FilesOptions,
        lock: Box<dyn FsLock>,
        marker: paxstore_core::identity::Marker,
    ) -> Files {
        let fs = opts.fs.clone();
        Files {
            dir: dir.to_path_buf(),
            purger: Purger::new(fs.clone(), opts.background_purge),
            opts,
            fs,
            _lock: lock,
            segments: BTreeMap::new(),
            active: None,
            poisoned: None,
            next_segment_id: 1,
            next_snapshot_id: 1,
            handles: Default::default(),
            marker,
            stats: Stats::default(),
        }
    }

    /// The end of both stores' open, once what it read is durable: the directory synced, the
    /// temp files of interrupted creations removed, each snapshot file a log refers to
    /// (`snapshots`: who refers to it, and the reference) checked to exist with its size
    /// (Strict: corruption naming the referrer; Lenient: the reference is forgotten), every
    /// other snapshot file removed, and the segments below a gap in the ids (`stale`) queued
    /// for deletion.
    pub(crate) fn settle_files(
        &mut self,
        leftovers: &[String],
        snapshot_ids: &[u64],
        snapshots: Vec<(String, &mut Option<SnapshotRef>)>,
        stale: &[u64],
    ) -> Result<()> {
        self.sync_dir()?;
        for name in leftovers {
            let path = self.path(name);
            self.fs
                .remove_file(&path)
                .map_err(|e| Error::io("remove leftover", &path, e))?;
        }
        // The snapshots the metadata refers to must exist; other snapshot files are leftovers
        // of interrupted or superseded writes.
        let mut referenced = Vec::new();
        for (owner, snapshot) in snapshots {
            let Some(r) = *snapshot else { continue };
            let path = self.path(&format::snapshot_name(r.id));
            let ok = snapshot_ids.contains(&r.id)
                && self.fs.open(&path).and_then(|f| f.len()).is_ok_and(|len| {
                    len.checked_sub(format::SNAPSHOT_HEADER as u64) == Some(r.len)
                });
            if ok {
                referenced.push(r.id);
                continue;
            }
            match self.opts.recovery {
                crate::RecoveryMode::Strict => {
                    return Err(Error::corrupt(
                        &path,
                        0,
                        format!(
                            "snapshot file of {} bytes referred to by {owner} is missing or has \
                             the wrong size",
                            r.len
                        ),
                    ))
                }
                crate::RecoveryMode::Lenient => {
                    tracing::warn!(
                        "lenient recovery: forgetting missing snapshot {}",
                        path.display()
                    );
                    *snapshot = None;
                }
            }
        }
        let mut removed = !leftovers.is_empty();
        for &id in snapshot_ids {
            if !referenced.contains(&id) {
                let path = self.path(&format::snapshot_name(id));
                self.fs
                    .remove_file(&path)
                    .map_err(|e| Error::io("remove orphan snapshot", &path, e))?;
                removed = true;
            }
        }
        if removed {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        }
        // A trim may have been interrupted before it deleted the segments below it.
        if !stale.is_empty() {
            tracing::info!(
                "{}: deleting {} dead segments below a gap in the segment ids",
                self.dir.display(),
                stale.len()
            );
            let paths = stale
                .iter()
                .map(|&id| self.path(&format::segment_name(id)))
                .collect();
            self.purger.submit(paths, self.dir.clone(), true);
        }
        Ok(())
    }

    pub(crate) fn check(&self) -> Result<()> {
        match self.poisoned.clone().or_else(|| self.purger.error()) {
            Some(reason) => Err(Error::Poisoned { reason }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, err: &Error) {
        tracing::error!(dir = %self.dir.display(), "store poisoned: {err}");
        if self.poisoned.is_none() {
            self.poisoned = Some(err.to_string());
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn sync_dir(&mut self) -> Result<()> {
        self.stats.fsyncs += 1;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))
    }

    /// The store's marker.
    pub(crate) fn marker(&self) -> &paxstore_core::identity::Marker {
        &self.marker
    }

    /// Writes a snapshot file: temp name, fsync, rename, directory fsync. A failed fsync
    /// poisons the store, as everywhere.
    fn write_snapshot_file(&mut self, bytes: &[u8]) -> Result<SnapshotRef> {
        let id = self.next_snapshot_id;
        self.next_snapshot_id += 1;
        self.stats.bytes_written += (format::SNAPSHOT_HEADER + bytes.len()) as u64;
        self.stats.fsyncs += 2;
        write_snapshot(self.fs.as_ref(), &self.dir, id, bytes).map_err(|(e, fsync_failed)| {
            if fsync_failed {
                self.poison(&e);
            }
            e
        })
    }

    /// Whether a record of `len` bytes must go to a new segment: the active one holds records
    /// and the record would take it past the segment size (a record that frees space may use
    /// the space reserved past it).
    pub(crate) fn full_for(&self, len: u64, frees: bool) -> bool {
        self.active.as_ref().is_some_and(|a| {
            let end = a.end + len + (format::TRAILER_LEN as u64) * 2;
            a.end > a.header_len && !(frees && end <= a.allocated) && end > self.opts.segment_size
        })
    }

    /// Writes `record` (one or more whole framed records) at the end of the active segment,
    /// which must exist (see [`full_for`](Self::full_for)), and, if `sync`, makes it durable.
    /// Returns the segment and offset. On error nothing was applied in memory and the record
    /// is cut off the file; if the file's state is unknown the store is poisoned.
    ///
    /// Disk full: with preallocation, a record that does not free space must leave
    /// [`RESERVE`] bytes of the reserved space after it, or it fails (cleanly, nothing
    /// written). A record that frees space (a trim) may use that reserve, and is written in
    /// the active segment even past the segment size when it fits in the reserved space, so
    /// that the trim that would free space never needs new space.
    pub(crate) fn write_record(
        &mut self,
        record: &[u8],
        sync: bool,
        frees: bool,
    ) -> Result<(u64, u64)> {
        let Some((id, offset)) = self.active.as_ref().map(|a| (a.id, a.end)) else {
            return Err(Error::Poisoned {
                reason: "internal error: a record written with no active segment".into(),
            });
        };
        let (file, path) = (self.handle(id)?, self.segments[&id].path.clone());
        let need = offset + record.len() as u64;
        // A record that frees space may use the reserve; others must leave it.
        let reserve = RESERVE.min(self.opts.segment_size / 4);
        let keep = if frees { 0 } else { reserve };
        // Reserve a step ahead, but not far past the segment's end (the seal cuts it off).
        let step_to = (need + PREALLOCATE_STEP).min(self.opts.segment_size.max(need) + reserve);
        let short = self
            .active
            .as_ref()
            .is_some_and(|a| need + keep > a.allocated);
        if short && self.opts.preallocate {
            // Reserve the next step; failing that (disk full), just what this record needs.
            let mut reserved = None;
            for want in [step_to.max(need + keep), need + keep] {
                match self.preallocate(file.as_ref(), want, &path) {
                    Ok(true) => {
                        reserved = Some(want);
                        break;
                    }
                    Ok(false) => break,
                    Err(e) if want == need + keep => return Err(e),
                    Err(e) => {
                        tracing::warn!("{e}; reserving only what the record needs");
                    }
                }
            }
            if let (Some(want), Some(a)) = (reserved, self.active.as_mut()) {
                a.allocated = a.allocated.max(want);
            }
        }
        if let Err(e) = file.write_all_at(record, offset) {
            let err = Error::io("write", &path, e);
            if let Some(a) = self.active.as_mut() {
                a.allocated = offset;
            }
            // Cut off whatever part of the record reached the file; if even that fails the
            // tail is unknown.
            if let Err(e2) = file.set_len(offset) {
                self.poison(&Error::io("truncate after failed write", &path, e2));
            }
            return Err(err);
        }
        self.stats.bytes_written += record.len() as u64;
        if sync {
            self.stats.fsyncs += 1;
            if let Err(e) = file.sync_data() {
                // The batch fails, so its record must not be replayed by a later open: the
                // page cache may still hold it (a failed fdatasync says nothing of what
                // reached the disk). Cut it off and make the cut durable, then poison: the
                // file's state past older records is unknown.
                let err = Error::io("fdatasync", &path, e);
                if let Some(a) = self.active.as_mut() {
                    a.allocated = offset;
                }
                let cut = file.set_len(offset).and_then(|()| file.sync_all());
                if let Err(e2) = cut {
                    self.poison(&Error::io("cut a record whose fdatasync failed", &path, e2));
                }
                self.poison(&err);
                return Err(err);
            }
        }
        let end = offset + record.len() as u64;
        if let Some(a) = self.active.as_mut() {
            a.end = end;
        }
        if let Some(s) = self.segments.get_mut(&id) {
            s.size = s.size.max(end);
        }
        Ok((id, offset))
    }

    /// Reserves disk space for `file` up to `len`, if preallocation is on. Returns whether it
    /// did. Where the file system does not support it (FUSE, some NFS and ZFS setups), it is
    /// switched off for the life of the store and writes simply grow the file.
    fn preallocate(&mut self, file: &dyn FsFile, len: u64, path: &Path) -> Result<bool> {
        if !self.opts.preallocate {
            return Ok(false);
        }
        match file.allocate(len) {
            Ok(()) => Ok(true),
            Err(e) if env::is_unsupported(&e) => {
                tracing::warn!(
                    "{}: the file system does not support preallocation ({e}); writing without it",
                    path.display()
                );
                self.opts.preallocate = false;
                Ok(false)
            }
            Err(e) => Err(Error::io("preallocate", path, e)),
        }
    }

    /// Waits for queued file deletions to reach the disk.
    pub(crate) fn wait_for_reclaim(&mut self) -> Result<()> {
        if let Err(reason) = self.purger.wait() {
            self.poisoned.get_or_insert(reason.clone());
            return Err(Error::Poisoned { reason });
        }
        Ok(())
    }

    fn run_locs<'a>(&'a self, run: &'a Run) -> Result<&'a [Loc]> {
        if let Some(v) = run.loaded() {
            return Ok(v);
        }
        let Locs::Lazy { seal_offset, cell } = &run.locs else {
            return Err(Error::corrupt(
                &self.dir,
                0,
                "a single-log store's index holds a many-logs store's run",
            ));
        };
        let seg = self.segment(run.seg)?;
        let file = self.handle(run.seg)?;
        let mut head = [0u8; format::RECORD_HEADER];
        file.read_exact_at(&mut head, *seal_offset)
            .map_err(|e| Error::io("read seal", &seg.path, e))?;
        let body_len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if *seal_offset + (format::RECORD_HEADER + body_len) as u64 > seg.size {
            return Err(Error::corrupt(
                &seg.path,
                *seal_offset,
                "seal record overruns the segment",
            ));
        }
        let mut buf = vec![0u8; format::RECORD_HEADER + body_len];
        file.read_exact_at(&mut buf, *seal_offset)
            .map_err(|e| Error::io("read seal", &seg.path, e))?;
        let format::Frame::Record {
            kind: format::KIND_SEAL,
            body,
            ..
        } = format::parse_frame(&buf)
        else {
            return Err(Error::corrupt(
                &seg.path,
                *seal_offset,
                "seal record damaged",
            ));
        };
        let (first, locs) = format::parse_seal(&buf[body])
            .map_err(|e| Error::corrupt(&seg.path, *seal_offset, format!("{e:?}")))?;
        if first != run.base || (locs.len() as u64) < run.end - run.base {
            return Err(Error::corrupt(
                &seg.path,
                *seal_offset,
                "seal record disagrees with the trailer",
            ));
        }
        let _ = cell.set(Arc::new(locs));
        // Invariant: the cell was set just above (by us or a concurrent reader).
        Ok(run.loaded().expect("positions loaded"))
    }

    /// An open descriptor of segment `id`: the newest segment's own, or one from the cache of
    /// sealed segments' (opened on a miss, the least recently used closed beyond [`HANDLES`]).
    pub(crate) fn handle(&self, id: u64) -> Result<Arc<dyn FsFile>> {
        let seg = self.segment(id)?;
        if let Some(f) = &seg.file {
            return Ok(f.clone());
        }
        let mut cache = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = cache.iter().position(|(k, _)| *k == id) {
            let entry = cache.remove(i);
            let f = entry.1.clone();
            cache.push(entry);
            return Ok(f);
        }
        drop(cache);
        let f = self
            .fs
            .open(&seg.path)
            .map_err(|e| Error::io("open", &seg.path, e))?;
        self.cache_handle(id, f.clone());
        Ok(f)
    }

    pub(crate) fn cache_handle(&self, id: u64, f: Arc<dyn FsFile>) {
        let mut cache = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(k, _)| *k != id);
        if cache.len() >= HANDLES {
            cache.remove(0);
        }
        cache.push((id, f));
    }

    fn segment(&self, id: u64) -> Result<&Segment> {
        self.segments.get(&id).ok_or_else(|| {
            Error::corrupt(
                self.path(&format::segment_name(id)),
                0,
                "segment of a live entry is missing",
            )
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `buf` (a seal record and its trailer) at the end of the active segment, cuts the
    /// preallocated rest, fsyncs. Afterwards no segment is active.
    pub(crate) fn write_seal(&mut self, buf: &[u8]) -> Result<()> {
        let Some(active) = self.active.as_ref() else {
            return Ok(());
        };
        let (id, end) = (active.id, active.end);
        let (file, path) = (self.handle(id)?, self.segments[&id].path.clone());
        if let Err(e) = file.write_all_at(buf, end) {
            let err = Error::io("write seal", &path, e);
            if let Err(e2) = file.set_len(end) {
                self.poison(&Error::io("truncate after failed write", &path, e2));
            }
            return Err(err);
        }
        self.stats.bytes_written += buf.len() as u64;
        let new_end = end + buf.len() as u64;
        let durable = file
            .set_len(new_end)
            .map_err(|e| Error::io("set length", &path, e))
            .and_then(|_| {
                self.stats.fsyncs += 1;
                file.sync_all().map_err(|e| Error::io("fsync", &path, e))
            });
        if let Err(err) = durable {
            self.poison(&err);
            return Err(err);
        }
        if let Some(s) = self.segments.get_mut(&id) {
            s.size = new_end;
            // From now on it is read through the cache.
            if let Some(f) = s.file.take() {
                self.cache_handle(id, f);
            }
        }
        self.active = None;
        Ok(())
    }

    /// Creates the next segment with `header` (temp name, fsync, rename, directory fsync) and
    /// makes it active.
    pub(crate) fn create_segment_with(&mut self, header: &[u8]) -> Result<()> {
        let id = self.next_segment_id;
        let name = format::segment_name(id);
        let (tmp, path) = (self.path(&format!("{name}.tmp")), self.path(&name));
        let step = PREALLOCATE_STEP.min(self.opts.segment_size);
        let mut preallocated = false;
        let created = (|| -> Result<Arc<dyn FsFile>> {
            let file = self
                .fs
                .create(&tmp)
                .map_err(|e| Error::io("create", &tmp, e))?;
            // On a full disk the segment starts without its reserve: a record that frees space
            // then needs only its own bytes.
            preallocated = match self.preallocate(file.as_ref(), step, &tmp) {
                Ok(done) => done,
                Err(Error::Io { source, .. }) if env::is_disk_full(&source) => false,
                Err(e) => return Err(e),
            };
            file.write_all_at(header, 0)
                .map_err(|e| Error::io("write", &tmp, e))?;
            self.stats.bytes_written += header.len() as u64;
            self.stats.fsyncs += 1;
            file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
            self.fs
                .rename(&tmp, &path)
                .map_err(|e| Error::io("rename", &tmp, e))?;
            Ok(file)
        })();
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                let _ = self.fs.remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = self.sync_dir() {
            // The new file may or may not survive a crash; appending to it could lose
            // acknowledged writes.
            self.poison(&e);
            return Err(e);
        }
        self.segments.insert(
            id,
            Segment {
                file: Some(file),
                path,
                size: header.len() as u64,
            },
        );
        self.active = Some(Active {
            id,
            end: header.len() as u64,
            header_len: header.len() as u64,
            allocated: if preallocated {
                step
            } else {
                header.len() as u64
            },
        });
        self.next_segment_id = id + 1;
        Ok(())
    }

    /// Deletes the segments below `keep_from` (never the newest, whose header holds the
    /// metadata checkpoint; every segment below the newest when `None`), oldest first, then
    /// fsyncs the directory (in the purger).
    pub(crate) fn delete_below(&mut self, keep_from: Option<u64>) {
        let Some(&newest) = self.segments.keys().next_back() else {
            return;
        };
        let keep_from = keep_from.unwrap_or(newest).min(newest);
        let doomed: Vec<u64> = self
            .segments
            .range(..keep_from)
            .map(|(&id, _)| id)
            .collect();
        let mut paths = Vec::with_capacity(doomed.len());
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(k, _)| *k >= keep_from);
        for id in doomed {
            if let Some(seg) = self.segments.remove(&id) {
                paths.push(seg.path);
                self.stats.deleted_segments += 1;
            }
        }
        self.purger.submit(paths, self.dir.clone(), true);
    }

    /// Calls `f` with the encoded bytes of each entry in `[from, to)` (all stored), in order,
    /// after checking each entry's checksum, with the positions of `index`.
    pub(crate) fn read_range(
        &self,
        index: &Index,
        from: u64,
        to: u64,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut i = from;
        let mut k = index.find(i).ok_or_else(|| {
            Error::corrupt(&self.dir, 0, format!("index has no position for entry {i}"))
        })?;
        let mut buf = Vec::new();
        while i < to {
            let run = index.runs().get(k).ok_or_else(|| {
                Error::corrupt(&self.dir, 0, format!("index has no position for entry {i}"))
            })?;
            let locs = self.run_locs(run)?;
            let hi = to.min(run.end);
            let missing = || {
                Error::corrupt(
                    &self.dir,
                    0,
                    format!("positions of entries {i}..{hi} missing"),
                )
            };
            if run.start > i || hi <= i {
                return Err(missing());
            }
            let slice = locs
                .get((i - run.base) as usize..(hi - run.base) as usize)
                .filter(|s| !s.is_empty())
                .ok_or_else(missing)?;
            let seg = self.segment(run.seg)?;
            read_slice(
                self.handle(run.seg)?.as_ref(),
                &seg.path,
                seg.size,
                slice,
                i,
                &mut buf,
                &mut f,
            )?;
            i = hi;
            k += 1;
        }
        Ok(())
    }

    /// Reads snapshot file `r` and checks it against `r`: its encoded bytes.
    pub(crate) fn read_snapshot_file(&self, r: SnapshotRef) -> Result<Vec<u8>> {
        read_snapshot(self.fs.as_ref(), &self.dir, r)
    }

    /// The counters, with the segments' count and bytes.
    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.fsyncs += self.purger.fsyncs();
        s.live_segments = self.segments.len() as u64;
        s.segment_bytes = self.segments.values().map(|s| s.size).sum();
        s
    }
}

impl Engine {
    pub(crate) fn bounds(&self) -> Bounds {
        Bounds::new(self.meta.first as usize, self.meta.next as usize)
    }

    /// The store's metadata (bounds included).
    pub(crate) fn checkpoint(&self) -> &Checkpoint {
        &self.meta
    }

    /// Applies the effects of a batch record stored at `record_offset` of segment `seg`, with
    /// the log rules of [`paxstore_core::plan`]. Recovery calls it on what it reads; the write
    /// path on what it just made durable.
    pub(crate) fn apply_effects(
        &mut self,
        seg: u64,
        record_offset: u64,
        effects: Vec<Effect>,
    ) -> std::result::Result<(), String> {
        apply_effects(
            &mut self.meta,
            &mut self.index,
            seg,
            record_offset,
            effects,
            false,
        )
    }

    /// Starts a batch that leaves the log with `bounds`; its record is built in the
    /// buffer of the last one.
    pub(crate) fn batch(&mut self, bounds: Bounds) -> Batch {
        Batch {
            record: BatchBuilder::with_buffer(std::mem::take(&mut self.scratch)),
            bounds,
            snapshot: None,
        }
    }

    /// Makes one batch durable (its snapshot file first, then its record) and applies it.
    pub(crate) fn commit(&mut self, batch: Batch) -> Result<()> {
        self.check()?;
        let Batch {
            mut record,
            bounds,
            snapshot,
        } = batch;
        let old_snapshot = self.meta.snapshot;
        let snapshot_set = snapshot.is_some();
        let mut new_file = None;
        if let Some(snap) = snapshot {
            let r = match snap {
                Some(bytes) => {
                    let r = self.write_snapshot_file(&bytes)?;
                    new_file = Some(r.id);
                    Some(r)
                }
                None => None,
            };
            record.meta(MetaOp::Snapshot(r))?;
        }
        if record.is_empty() {
            return Ok(());
        }
        let (record, effects) = record.finish();
        let trims = effects.iter().any(|e| matches!(e, Effect::Trim(_)));
        // A record that makes files dead (a trim, a new snapshot) is synced whatever the sync
        // policy: the files are deleted on its strength, and a power loss that took the record
        // but not the deletions would leave a store that cannot open.
        let sync = self.opts.core.sync.is_durable() || trims || snapshot_set;
        let outcome = self.append_record(&record, sync, trims);
        if record.capacity() <= 4 << 20 {
            self.scratch = record;
        }
        let (seg, offset) = match outcome {
            Ok(at) => at,
            Err(e) => {
                // A poisoned store may have the record on disk (a failed fdatasync does not
                // mean the data did not land): then the file is the batch's snapshot and must
                // stay. If the record did not land, open removes the file as an orphan.
                if let (Some(id), None) = (new_file, &self.poisoned) {
                    let _ = self.fs.remove_file(&self.path(&format::snapshot_name(id)));
                }
                return Err(e);
            }
        };
        let applied = self.apply_effects(seg, offset, effects).and_then(|()| {
            (self.bounds() == bounds).then_some(()).ok_or_else(|| {
                format!(
                    "the record leaves the log at {:?}, its plan at {bounds:?}",
                    self.bounds()
                )
            })
        });
        if let Err(reason) = applied {
            // Cannot happen: the record holds the plan's steps, replayed by the same rules.
            let err = Error::corrupt(self.path(&format::segment_name(seg)), offset, reason);
            self.poison(&err);
            return Err(err);
        }
        // The batch is durable: what follows only reclaims space, and its failures must not
        // be reported as a failed batch.
        if old_snapshot != self.meta.snapshot {
            if let Some(old) = old_snapshot {
                // No directory fsync: if the removal is lost in a crash, open deletes the
                // unreferenced file again.
                let path = self.path(&format::snapshot_name(old.id));
                self.purger.submit(vec![path], self.dir.clone(), false);
            }
        }
        if trims {
            self.reclaim_segments();
        }
        Ok(())
    }

    /// Appends one record to the active segment (rotating first if it is full), and
    /// `fdatasync`s it if `sync`: its segment and offset.
    fn append_record(&mut self, record: &[u8], sync: bool, frees: bool) -> Result<(u64, u64)> {
        if record.len() as u64 - format::RECORD_HEADER as u64 > format::MAX_RECORD_BODY {
            return Err(Error::TooLarge {
                bytes: record.len() as u64,
                limit: format::MAX_RECORD_BODY,
            });
        }
        if self.full_for(record.len() as u64, frees) {
            self.seal_active()?;
        }
        if self.active.is_none() {
            self.create_segment()?;
        }
        self.files.write_record(record, sync, frees)
    }

    /// Seals the active segment: a seal record with the positions of its live entries and a
    /// trailer, the preallocated rest cut off, fsync. Afterwards no segment is active.
    pub(crate) fn seal_active(&mut self) -> Result<()> {
        let Some(active) = self.active.as_ref() else {
            return Ok(());
        };
        let (id, end) = (active.id, active.end);
        let (first, locs): (u64, Vec<Loc>) = match self.index.tail_run_of(id) {
            Some(run) => {
                // Invariant: the active segment's run was built by appends, so it is loaded.
                let v = run.loaded().expect("active run is loaded");
                (
                    run.start,
                    v[(run.start - run.base) as usize..(run.end - run.base) as usize].to_vec(),
                )
            }
            None => (self.meta.next, Vec::new()),
        };
        let mut buf = format::encode_seal(first, &locs);
        buf.extend_from_slice(&format::encode_trailer(&Trailer {
            seal_offset: end,
            first,
            count: locs.len() as u64,
        }));
        self.files.write_seal(&buf)
    }

    /// Creates the next segment (temp name, header with the metadata checkpoint, fsync,
    /// rename, directory fsync) and makes it active.
    pub(crate) fn create_segment(&mut self) -> Result<()> {
        let header = format::encode_header(&SegmentHeader {
            id: self.next_segment_id,
            first_index: self.meta.next,
            checkpoint: self.meta.clone(),
        })?;
        self.files.create_segment_with(&header)
    }

    /// Deletes the oldest segments that hold no live entry (never the newest, whose header
    /// holds the metadata checkpoint), oldest first, then fsyncs the directory.
    pub(crate) fn reclaim_segments(&mut self) {
        let keep_from = self.index.oldest_segment();
        self.files.delete_below(keep_from);
    }

    /// Seals the active segment and starts the next one.
    pub(crate) fn rotate(&mut self) -> Result<()> {
        self.check()?;
        self.seal_active()?;
        self.create_segment()
    }

    /// Calls `f` with the encoded bytes of each entry in `[from, to)` (all stored), in order,
    /// after checking each entry's checksum.
    pub(crate) fn read_range(
        &self,
        from: u64,
        to: u64,
        f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.files.read_range(&self.index, from, to, f)
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.files.stats();
        s.index_bytes = self.index.memory_bytes() as u64;
        s
    }
}

/// Applies the effects of a batch record stored at `record_offset` of segment `seg` to a log's
/// metadata and index, with the log rules of [`paxstore_core::plan`]: both stores' recovery
/// and write paths. `relocate` says whether relocation ops are allowed (many-logs store).
pub(crate) fn apply_effects(
    meta: &mut Checkpoint,
    index_of: &mut Index,
    seg: u64,
    record_offset: u64,
    effects: Vec<Effect>,
    relocate: bool,
) -> std::result::Result<(), String> {
    // Entry offsets from the record's start to the segment's.
    fn rebase(
        locs: Vec<Loc>,
        record_offset: u64,
    ) -> std::result::Result<impl ExactSizeIterator<Item = Loc>, String> {
        // Offsets grow along the record: the last is the largest.
        let end = locs.last().map_or(0, |l| record_offset + l.offset as u64);
        if end > u32::MAX as u64 {
            return Err(format!("entry offset {end} beyond 4 GiB"));
        }
        Ok(locs.into_iter().map(move |l| Loc {
            offset: (record_offset + l.offset as u64) as u32,
            len: l.len,
        }))
    }
    let index = |i: u64| usize::try_from(i).map_err(|_| format!("index {i} beyond usize"));
    let mut bounds = Bounds::new(meta.first as usize, meta.next as usize);
    for effect in effects {
        match effect {
            Effect::Append { at, locs } => {
                let change = plan::append_on_prefix(&mut bounds, index(at)?, locs.len())
                    .map_err(|e| format!("a record holds {e}"))?;
                if change.is_some() {
                    let rebased = rebase(locs, record_offset)?;
                    index_of.truncate(at);
                    index_of.append(seg, at, rebased);
                }
            }
            Effect::Trim(i) => match plan::trim(&mut bounds, index(i)?) {
                None => {}
                Some(Change::DropPrefix { to, .. }) => index_of.trim(to as u64),
                // A reset: the log restarts empty.
                Some(_) => index_of.clear(),
            },
            Effect::Meta(op) => op.apply(meta),
            Effect::Relocate { at, locs } => {
                if !relocate {
                    return Err("a relocation op in a single-log store's record".into());
                }
                // It changes no bound: it must lie inside the log.
                let end = at.checked_add(locs.len() as u64);
                if at < bounds.first as u64 || end.is_none_or(|e| e > bounds.next as u64) {
                    return Err(format!(
                        "a relocation of {} entries at {at} outside the log [{}, {})",
                        locs.len(),
                        bounds.first,
                        bounds.next
                    ));
                }
                index_of.replace(seg, at, rebase(locs, record_offset)?.collect());
            }
        }
        meta.first = bounds.first as u64;
        meta.next = bounds.next as u64;
    }
    Ok(())
}

/// Reads the entries at `slice` (positions in the segment file `file` at `path`, `size` bytes
/// long; the first is entry `i`) with one read into `buf`, checks each entry's checksum, and
/// calls `f` with each entry's bytes, in order.
pub(crate) fn read_slice(
    file: &dyn FsFile,
    path: &Path,
    size: u64,
    slice: &[Loc],
    i: u64,
    buf: &mut Vec<u8>,
    f: &mut impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    // Positions come from checksummed records; still, a foreign or damaged seal must
    // give an error, not an underflow or a huge allocation.
    let first = slice.iter().map(|l| l.offset as u64).min().unwrap_or(0);
    let end = slice
        .iter()
        .map(|l| l.offset as u64 + l.len as u64)
        .max()
        .unwrap_or(0);
    if first < format::ENTRY_FRAME as u64 || end > size {
        return Err(Error::corrupt(
            path,
            first,
            format!(
                "positions of entries {i}..{} lie outside the segment",
                i + slice.len() as u64
            ),
        ));
    }
    let lo = first - format::ENTRY_FRAME as u64;
    let span = end - lo;
    buf.resize(span as usize, 0);
    file.read_exact_at(buf, lo)
        .map_err(|e| Error::io("read", path, e))?;
    for (n, loc) in slice.iter().enumerate() {
        let s = (loc.offset as u64 - lo) as usize;
        let frame = &buf[s - format::ENTRY_FRAME..s];
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let bytes = &buf[s..s + loc.len as usize];
        if len != loc.len || crc32c::crc32c(bytes) != crc {
            return Err(Error::corrupt(
                path,
                loc.offset as u64,
                format!("entry {} fails its checksum", i + n as u64),
            ));
        }
        f(bytes)?;
    }
    Ok(())
}

/// Writes snapshot file `id` holding `bytes`: temp name, fsync, rename, directory fsync. On
/// failure the files are removed (nothing durable refers to them) and the error says whether
/// an fsync failed (then the caller poisons its store).
pub(crate) fn write_snapshot(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u64,
    bytes: &[u8],
) -> std::result::Result<SnapshotRef, (Error, bool)> {
    let r = SnapshotRef {
        id,
        len: bytes.len() as u64,
        crc: crc32c::crc32c(bytes),
    };
    let name = format::snapshot_name(r.id);
    let (tmp, path) = (dir.join(format!("{name}.tmp")), dir.join(&name));
    let mut fsync_failed = false;
    let result = (|| -> Result<()> {
        let file = fs.create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut buf = Vec::with_capacity(format::SNAPSHOT_HEADER + bytes.len());
        buf.extend_from_slice(&format::encode_snapshot_header(&r));
        buf.extend_from_slice(bytes);
        file.write_all_at(&buf, 0)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_all().map_err(|e| {
            fsync_failed = true;
            Error::io("fsync", &tmp, e)
        })?;
        fs.rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        fs.sync_dir(dir).map_err(|e| {
            fsync_failed = true;
            Error::io("fsync directory", dir, e)
        })
    })();
    if let Err(e) = result {
        let _ = fs.remove_file(&tmp);
        let _ = fs.remove_file(&path);
        return Err((e, fsync_failed));
    }
    Ok(r)
}

/// Reads snapshot file `r` in `dir` and checks it against `r`: its encoded bytes.
pub(crate) fn read_snapshot(fs: &dyn FileSystem, dir: &Path, r: SnapshotRef) -> Result<Vec<u8>> {
    let path = dir.join(format::snapshot_name(r.id));
    let file = fs
        .open(&path)
        .map_err(|e| Error::io("open snapshot", &path, e))?;
    let mut buf = vec![0u8; format::SNAPSHOT_HEADER + r.len as usize];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| Error::io("read snapshot", &path, e))?;
    let header = format::decode_snapshot_header(&buf).map_err(|e| match e {
        format::DecodeError::Version(found) => Error::FormatVersion {
            path: path.clone(),
            found,
            expected: format::FORMAT_VERSION,
        },
        format::DecodeError::Corrupt(reason) => Error::corrupt(&path, 0, reason),
    })?;
    if header != r {
        return Err(Error::corrupt(
            &path,
            0,
            "snapshot file does not match the record that refers to it",
        ));
    }
    let body = buf.split_off(format::SNAPSHOT_HEADER);
    if crc32c::crc32c(&body) != r.crc {
        return Err(Error::corrupt(
            &path,
            format::SNAPSHOT_HEADER as u64,
            "snapshot checksum mismatch",
        ));
    }
    Ok(body)
}
