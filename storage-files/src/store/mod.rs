//! `FilesStore`: many OmniPaxos logs in one directory, one stream of segments, group commit.
//!
//! Every log's `write_atomically` is one record (its log id, then a batch body as in the
//! single-log store) in the one stream. Concurrent writers are gathered into groups
//! ([`commit`]): the writer at the front of the queue writes the records of every queued
//! writer with one write and one `fdatasync`, applies them, and wakes each writer with its
//! own result, so every call still returns only once its record is durable.
//!
//! Each segment's header holds every log's metadata and bounds (and the set of logs) when the
//! segment was created; a sealed segment ends with a seal record listing, per log, the
//! positions of the entries whose latest copy it holds. Open reads the newest header, every
//! sealed segment's seal, and replays the newest segment's records: never a sealed segment's
//! records. See `MANY_LOGS.md` in this crate for the design and `FORMAT.md` for the bytes.
//!
//! Space: a segment is deleted once it is older than the oldest segment any log still needs.
//! A log that never trims would pin every later segment; at each rotation, while the segment
//! bytes exceed `max(4 × segment size, 2 × live entry bytes + 2 × segment size)`, the
//! rotation copies forward (a *relocation* record) the live entries of the oldest segments,
//! up to half a segment per rotation, so that they can be deleted.

mod commit;
mod recover;
mod stream;
mod verify;

pub use verify::verify_store;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use omnipaxos::storage::{Entry, StorageOp};
use paxstore_core::{
    bounds::Bounds,
    codec,
    plan::{Plan, Step},
};
use serde::{de::DeserializeOwned, Serialize};

use crate::engine::Files;
use crate::env::FsFile;
use crate::error::{Error, Result};
use crate::format::{self, BatchBuilder, Checkpoint, Effect, MetaOp, RegistryOp};
use crate::index::Index;
use crate::options::FilesOptions;
use crate::stats::Stats;

use commit::CommitQueue;

/// The backend name in a many-logs store's marker.
pub const BACKEND: &str = "files-multi";

/// The most bytes of records one group commit writes (at least one record).
const MAX_GROUP_BYTES: usize = 4 << 20;

/// One log's state in memory.
pub(crate) struct LogState {
    pub(crate) name: String,
    pub(crate) meta: Checkpoint,
    pub(crate) index: Index,
    /// Whether a [`FilesLog`] handle holds it.
    pub(crate) open: bool,
}

impl LogState {
    fn new(name: String) -> Self {
        LogState {
            name,
            meta: Checkpoint::default(),
            index: Index::new(),
            open: false,
        }
    }
}

/// A live segment as readers see it: its path, its bytes, an open descriptor.
pub(crate) struct SegView {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) file: Arc<dyn FsFile>,
}

/// What readers and the leader share: the logs and the live segments.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) logs: BTreeMap<u64, LogState>,
    pub(crate) names: BTreeMap<String, u64>,
    pub(crate) segs: BTreeMap<u64, SegView>,
}

impl State {
    /// The logs of a segment header's checkpoint, with empty indexes; an error names a log
    /// whose bounds are inverted or whose name is taken twice.
    pub(crate) fn from_checkpoint(
        logs: Vec<format::LogCheckpoint>,
    ) -> std::result::Result<State, String> {
        let mut state = State::default();
        for l in logs {
            if l.meta.first > l.meta.next || state.names.contains_key(&l.name) {
                return Err(format!(
                    "header checkpoint of log `{}` is inconsistent",
                    l.name
                ));
            }
            state.names.insert(l.name.clone(), l.id);
            let mut log = LogState::new(l.name);
            log.meta = l.meta;
            state.logs.insert(l.id, log);
        }
        Ok(state)
    }

    /// Puts a sealed segment's runs over what older segments' runs gave (runs of logs dropped
    /// since are skipped).
    pub(crate) fn apply_seal(&mut self, seg: u64, runs: Vec<format::SealRunRef>) {
        for run in runs {
            if let Some(log) = self.logs.get_mut(&run.log) {
                log.index.replace_table(seg, run);
            }
        }
    }

    /// Cuts every log's index to its checkpoint bounds (before the newest segment's replay).
    pub(crate) fn clamp(&mut self) {
        for log in self.logs.values_mut() {
            log.index.truncate(log.meta.next);
            log.index.trim(log.meta.first);
        }
    }
}

/// What a queued record does once durable.
pub(crate) enum Action {
    /// A batch of log `log`.
    Batch { log: u64, effects: Vec<Effect> },
    /// A log added or dropped.
    Registry(RegistryOp),
}

/// One record waiting for a group commit.
pub(crate) struct Request {
    pub(crate) record: Vec<u8>,
    pub(crate) action: Action,
    /// Whether it must be `fdatasync`ed before its call returns.
    pub(crate) sync: bool,
    /// Whether it frees space (a trim): it may use the disk-full reserve.
    pub(crate) frees: bool,
}

/// The leader's side: the files and a reusable buffer for a group's records.
pub(crate) struct Stream {
    pub(crate) files: Files,
    pub(crate) buf: Vec<u8>,
    /// Chunks written so far (each chunk's sequence number is its count).
    pub(crate) written: u64,
}

/// Chunks made durable and applied, in stream order.
#[derive(Default)]
pub(crate) struct Order {
    pub(crate) applied: u64,
    /// (segment, offset): everything before it in that segment is durable. A chunk's group
    /// record carries the offset (see `recovery::is_torn_store_tail`).
    pub(crate) durable: (u64, u64),
    /// Why a chunk failed: every chunk after it fails too.
    pub(crate) failed: Option<String>,
    /// Whether the last chunk applied was not synced (`SyncPolicy::Never`): then nothing may
    /// be deleted on the strength of the state until the active segment is synced.
    pub(crate) unsynced: bool,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: FilesOptions,
    pub(crate) marker: paxstore_core::identity::Marker,
    queue: CommitQueue<Request, Result<()>>,
    /// Taken by the leader while it writes (and by rotation, reclaim and open).
    pub(crate) stream: Mutex<Stream>,
    /// Chunks are made durable outside the stream's lock, so that the next group is written
    /// while one is being synced, and applied in order here.
    pub(crate) order: Mutex<Order>,
    pub(crate) applied: std::sync::Condvar,
    pub(crate) state: RwLock<State>,
    /// Serializes adding and dropping logs.
    registry: Mutex<()>,
    pub(crate) next_log_id: AtomicU64,
    pub(crate) next_snapshot_id: AtomicU64,
    /// Why the store is poisoned, readable without the stream's lock.
    pub(crate) poisoned: Mutex<Option<String>>,
    pub(crate) counters: Counters,
}

/// Counters the leader keeps beyond [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) fsyncs: AtomicU64,
    pub(crate) groups: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) relocated_bytes: AtomicU64,
    pub(crate) user_bytes: AtomicU64,
}

/// Locks `m`. Nothing panics while holding the store's locks, so a poisoned one still holds
/// consistent data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check(&self) -> Result<()> {
        match lock(&self.poisoned).clone() {
            Some(reason) => Err(Error::Poisoned { reason }),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&self, err: &Error) {
        tracing::error!(dir = %self.dir.display(), "store poisoned: {err}");
        lock(&self.poisoned).get_or_insert_with(|| err.to_string());
    }

    /// Commits `req` with whatever other writers queued meanwhile; returns once it is durable
    /// (or failed).
    fn submit(&self, req: Request) -> Result<()> {
        self.check()?;
        let bytes = req.record.len();
        self.queue.submit(
            req,
            bytes,
            |group| stream::write_group(self, group),
            |written| stream::finish_group(self, written),
            || {
                // A stage panicked: what reached the files is unknown.
                let e = Error::Poisoned {
                    reason: "a group commit failed unexpectedly".into(),
                };
                self.poison(&e);
                Err(e)
            },
        )
    }

    /// Opens log `name` for one handle: adds it (durably) if missing, and marks it open, both
    /// under the registry's lock so that a `drop_log` cannot come in between. Its id.
    fn open_log(&self, name: &str) -> Result<u64> {
        validate_name(name)?;
        let _registry = lock(&self.registry);
        let known = self.read_state().names.get(name).copied();
        let id = match known {
            Some(id) => id,
            None => {
                let id = self.next_log_id.fetch_add(1, Ordering::SeqCst);
                let op = RegistryOp::Add {
                    id,
                    name: name.to_string(),
                };
                self.submit(Request {
                    record: format::encode_registry(&op),
                    action: Action::Registry(op),
                    sync: true,
                    frees: false,
                })?;
                id
            }
        };
        let mut state = self.write_state();
        let log = state.logs.get_mut(&id).ok_or_else(|| Error::NoSuchLog {
            name: name.to_string(),
        })?;
        if log.open {
            return Err(Error::LogInUse {
                name: name.to_string(),
            });
        }
        log.open = true;
        Ok(id)
    }
}

/// Log names: [`paxstore_core::names`], as storage-rocks'.
fn validate_name(name: &str) -> Result<()> {
    match paxstore_core::names::log_name_problem(name) {
        Some(reason) => Err(Error::InvalidLogName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Many OmniPaxos logs in one directory, written as one stream of segments with group commit.
///
/// Cheap to clone and to share across threads: each clone is the same store. Each log is a
/// [`FilesLog`] (from [`log`](FilesStore::log)), an `omnipaxos::storage::Storage`; one handle
/// per log at a time. Concurrent writes to different logs are gathered into one write and one
/// `fdatasync`; every call returns only once its record is durable (with the default
/// [`SyncPolicy`](crate::SyncPolicy)). The directory is locked while any clone or handle lives.
///
/// ```
/// use omnipaxos::storage::Storage;
/// use paxstore_core::kv::KeyValue;
/// use paxstore_files::FilesStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = FilesStore::open(dir.path()).unwrap();
/// let mut a = store.log::<KeyValue>("shard-a").unwrap();
/// let mut b = store.log::<KeyValue>("shard-b").unwrap();
/// a.append_entries((0..10).map(|i| KeyValue::new("k", i, 32)).collect()).unwrap();
/// b.append_entry(KeyValue::new("k", 7, 32)).unwrap();
/// a.trim(4).unwrap();
/// drop((a, b, store));
///
/// let store = FilesStore::open(dir.path()).unwrap();
/// assert_eq!(store.logs(), ["shard-a", "shard-b"]);
/// let a = store.log::<KeyValue>("shard-a").unwrap();
/// assert_eq!(a.get_log_len().unwrap(), 6);
/// ```
#[derive(Clone)]
pub struct FilesStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FilesStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesStore")
            .field("dir", &self.inner.dir)
            .field("logs", &self.logs())
            .finish()
    }
}

/// Stores opened with [`FilesStore::open_shared`], by directory.
static SHARED: Mutex<Vec<(PathBuf, Weak<Inner>)>> = Mutex::new(Vec::new());

impl FilesStore {
    /// Opens the many-logs store in `dir` (created if missing) with the default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, FilesOptions::new())
    }

    /// Opens the many-logs store in `dir` (created if missing) with `options`, recovering
    /// what is on disk. A single-log store's directory (or any other) is refused untouched.
    pub fn open_with(dir: impl AsRef<Path>, options: FilesOptions) -> Result<Self> {
        Ok(FilesStore {
            inner: Arc::new(recover::open(dir.as_ref(), options)?),
        })
    }

    /// The store in `dir` if this process has it open through this function, else opens it
    /// with `options`: several users in one process (each with its own logs) share one store.
    pub fn open_shared(dir: impl AsRef<Path>, options: FilesOptions) -> Result<Self> {
        let key = std::path::absolute(dir.as_ref()).unwrap_or_else(|_| dir.as_ref().to_path_buf());
        let mut shared = lock(&SHARED);
        shared.retain(|(_, w)| w.strong_count() > 0);
        if let Some(inner) = shared
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(FilesStore { inner });
        }
        let store = Self::open_with(dir, options)?;
        shared.push((key, Arc::downgrade(&store.inner)));
        Ok(store)
    }

    /// The log `name`, created (durably, empty) if missing. One handle per log at a time:
    /// a second is [`Error::LogInUse`] until the first is dropped.
    pub fn log<T>(&self, name: &str) -> Result<FilesLog<T>>
    where
        T: Entry + Serialize + DeserializeOwned,
        T::Snapshot: Serialize + DeserializeOwned,
    {
        self.inner.check()?;
        let id = self.inner.open_log(name)?;
        Ok(FilesLog {
            store: self.clone(),
            id,
            name: name.to_string(),
            snapshot_cache: crate::storage_impl::SnapshotCache::new(),
            _entries: PhantomData,
        })
    }

    /// The names of the logs, in byte order.
    pub fn logs(&self) -> Vec<String> {
        self.inner.read_state().names.keys().cloned().collect()
    }

    /// Drops log `name` with everything it holds (durably); its space is reclaimed with the
    /// segments no other log needs. The log must not be open.
    pub fn drop_log(&self, name: &str) -> Result<()> {
        self.inner.check()?;
        let _registry = lock(&self.inner.registry);
        let id = {
            let state = self.inner.read_state();
            let id = *state.names.get(name).ok_or_else(|| Error::NoSuchLog {
                name: name.to_string(),
            })?;
            if state.logs.get(&id).is_some_and(|l| l.open) {
                return Err(Error::LogInUse {
                    name: name.to_string(),
                });
            }
            id
        };
        let op = RegistryOp::Drop { id };
        self.inner.submit(Request {
            record: format::encode_registry(&op),
            action: Action::Registry(op),
            sync: true,
            frees: true,
        })
    }

    /// Whether an earlier failure poisoned the store (every call of every log fails until it
    /// is reopened), and why.
    pub fn poisoned(&self) -> Option<String> {
        lock(&self.inner.poisoned).clone()
    }

    /// Seals the active segment now and starts a new one.
    pub fn rotate(&self) -> Result<()> {
        self.inner.check()?;
        stream::rotate_now(&self.inner)
    }

    /// Waits until the files made dead so far (trimmed segments, replaced snapshots, dropped
    /// logs) are deleted and the deletion is durable.
    pub fn wait_for_reclaim(&self) -> Result<()> {
        let mut stream = lock(&self.inner.stream);
        let result = stream.files.wait_for_reclaim();
        if let Err(e) = &result {
            self.inner.poison(e);
        }
        result
    }

    /// The store's counters: [`Stats`] over the whole stream.
    pub fn stats(&self) -> StoreStats {
        let stream = lock(&self.inner.stream);
        let mut files = stream.files.stats();
        drop(stream);
        let c = &self.inner.counters;
        files.fsyncs += c.fsyncs.load(Ordering::Relaxed);
        let state = self.inner.read_state();
        StoreStats {
            files,
            logs: state.logs.len() as u64,
            live_bytes: state.logs.values().map(|l| l.index.live_bytes()).sum(),
            groups: c.groups.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            user_bytes: c.user_bytes.load(Ordering::Relaxed),
            relocated_bytes: c.relocated_bytes.load(Ordering::Relaxed),
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The store's marker: backend `files-multi`, format version and store id.
    pub fn marker(&self) -> &paxstore_core::identity::Marker {
        &self.inner.marker
    }
}

/// Counters of a [`FilesStore`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// The stream's file counters (bytes written, fsyncs, segments).
    pub files: Stats,
    /// Logs in the store.
    pub logs: u64,
    /// Bytes of the live entries of every log.
    pub live_bytes: u64,
    /// Group commits since open (each one write and at most one `fdatasync`).
    pub groups: u64,
    /// Records committed since open (batches and registry changes).
    pub records: u64,
    /// Bytes of the records the logs' calls wrote since open.
    pub user_bytes: u64,
    /// Bytes of entries copied forward by relocation since open.
    pub relocated_bytes: u64,
}

/// One log of a [`FilesStore`]: an OmniPaxos `Storage`.
///
/// Each `write_atomically` (and each single-op setter) is one record, durable before the call
/// returns (default sync policy), applied whole or not at all. Dropping the handle releases
/// the log for another [`FilesStore::log`] call.
pub struct FilesLog<T: Entry> {
    store: FilesStore,
    id: u64,
    name: String,
    /// The last snapshot read, by snapshot file id.
    snapshot_cache: crate::storage_impl::SnapshotCache<T::Snapshot>,
    _entries: PhantomData<fn() -> T>,
}

impl<T: Entry> std::fmt::Debug for FilesLog<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesLog")
            .field("dir", &self.store.inner.dir)
            .field("name", &self.name)
            .finish()
    }
}

impl<T: Entry> Drop for FilesLog<T> {
    fn drop(&mut self) {
        if let Some(log) = self.store.inner.write_state().logs.get_mut(&self.id) {
            log.open = false;
        }
    }
}

impl<T> FilesLog<T>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    /// The log's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store this log belongs to.
    pub fn store(&self) -> &FilesStore {
        &self.store
    }

    /// The stored log bounds `[first, next)`.
    pub fn bounds(&self) -> Bounds {
        self.meta(|m| Bounds::new(m.first as usize, m.next as usize))
            .unwrap_or(Bounds::new(0, 0))
    }

    /// Whether the store is poisoned, and why.
    pub fn poisoned(&self) -> Option<String> {
        self.store.poisoned()
    }

    fn meta<R>(&self, f: impl FnOnce(&Checkpoint) -> R) -> Result<R> {
        let inner = &self.store.inner;
        inner.check()?;
        let state = inner.read_state();
        let log = state.logs.get(&self.id).ok_or_else(|| Error::NoSuchLog {
            name: self.name.clone(),
        })?;
        Ok(f(&log.meta))
    }

    /// One call's path: plan, encode in this thread, queue for a group commit.
    fn write(&mut self, ops: Vec<StorageOp<T>>) -> Result<()> {
        let inner = &self.store.inner;
        inner.check()?;
        let bounds = self.meta(|m| Bounds::new(m.first as usize, m.next as usize))?;
        let plan = Plan::new(bounds, ops)?;
        let mut batch = BatchBuilder::for_log(self.id, Vec::new());
        let mut snapshot = None;
        let mut trims = false;
        for step in plan {
            match step? {
                Step::Put { at, entries, .. } => batch.append(at as u64, entries.as_slice())?,
                Step::DropPrefix { to, .. } | Step::Reset { to, .. } => {
                    trims = true;
                    batch.trim(to as u64)
                }
                Step::Promise(b) => batch.meta(MetaOp::Promise(b))?,
                Step::AcceptedRound(b) => batch.meta(MetaOp::Accepted(b))?,
                Step::DecidedIdx(i) => batch.meta(MetaOp::Decided(i as u64))?,
                Step::CompactedIdx(i) => batch.meta(MetaOp::Compacted(i as u64))?,
                Step::Stopsign(s) => batch.meta(MetaOp::Stopsign(s))?,
                Step::Snapshot(s) => {
                    snapshot = Some(
                        s.as_ref()
                            .map(|s| codec::encode("snapshot", s))
                            .transpose()?,
                    )
                }
            }
        }
        // The snapshot file is written (and made durable) before the record that refers to it.
        let mut new_file = None;
        if let Some(snap) = &snapshot {
            let r = match snap {
                Some(bytes) => {
                    let id = inner.next_snapshot_id.fetch_add(1, Ordering::SeqCst);
                    let r = crate::engine::write_snapshot(
                        inner.opts.fs.as_ref(),
                        &inner.dir,
                        id,
                        bytes,
                    )
                    .map_err(|(e, fsync_failed)| {
                        if fsync_failed {
                            inner.poison(&e);
                        }
                        e
                    })?;
                    new_file = Some(id);
                    Some(r)
                }
                None => None,
            };
            batch.meta(MetaOp::Snapshot(r))?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        let (record, effects) = batch.finish();
        inner
            .counters
            .user_bytes
            .fetch_add(record.len() as u64, Ordering::Relaxed);
        // A record that makes files dead (a trim, a new snapshot) is synced whatever the
        // policy: the files are deleted on its strength.
        let sync = inner.opts.core.sync.is_durable() || trims || snapshot.is_some();
        let result = inner.submit(Request {
            record,
            action: Action::Batch {
                log: self.id,
                effects,
            },
            sync,
            frees: trims,
        });
        if result.is_err() && inner.check().is_ok() {
            // Nothing durable refers to the new snapshot file (a poisoned store may have the
            // record on disk: then the file stays, and open sorts it out).
            if let Some(id) = new_file {
                let _ = inner
                    .opts
                    .fs
                    .remove_file(&inner.dir.join(format::snapshot_name(id)));
            }
        }
        result
    }

    fn read(&self, range: Option<std::ops::Range<usize>>) -> Result<Vec<T>> {
        let inner = &self.store.inner;
        inner.check()?;
        let Some(r) = range else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(r.len());
        stream::read_entries(inner, self.id, r.start as u64, r.end as u64, |bytes| {
            out.push(codec::decode("entry", bytes)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn range(&self, f: impl FnOnce(Bounds) -> Option<std::ops::Range<usize>>) -> Result<Vec<T>> {
        let range = self.meta(|m| f(Bounds::new(m.first as usize, m.next as usize)))?;
        self.read(range)
    }

    fn snapshot(&self) -> Result<Option<T::Snapshot>> {
        let Some(r) = self.meta(|m| m.snapshot)? else {
            return Ok(None);
        };
        let inner = &self.store.inner;
        let read = || crate::engine::read_snapshot(inner.opts.fs.as_ref(), &inner.dir, r);
        Ok(Some(self.snapshot_cache.get(r, read)?))
    }
}

crate::storage_impl::storage_impl!(FilesLog);
