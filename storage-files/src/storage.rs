//! `FilesStorage<T>`: the OmniPaxos `Storage` over the segment engine.

use std::marker::PhantomData;
use std::path::Path;

use omnipaxos::storage::{Entry, StorageOp};
use paxstore_core::{
    bounds::Bounds,
    codec,
    plan::{Plan, Step},
};
use serde::{de::DeserializeOwned, Serialize};

use crate::engine::Engine;
use crate::error::Result;
use crate::format::MetaOp;
use crate::options::FilesOptions;
use crate::stats::Stats;

/// An OmniPaxos log on append-only segment files.
///
/// - One framed, checksummed record per `write_atomically`: a batch is all or nothing on disk,
///   and durable (`fdatasync`) before the call returns under the default sync policy.
/// - Trim writes a trim record, then deletes every segment wholly below the trim point and
///   fsyncs the directory: disk use stays within one segment of the live log.
/// - Snapshots go to their own file (temp name, fsync, rename, directory fsync) before the
///   record that points at them.
/// - Memory holds positions (8 bytes per entry), never entries; reads are positional.
/// - A failed fsync poisons the store: every later call fails; reopen to recover.
/// - The directory is locked for the life of the store.
///
/// ```
/// use omnipaxos::storage::Storage;
/// use paxstore_core::kv::KeyValue;
/// use paxstore_files::{FilesOptions, FilesStorage};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut log = FilesStorage::<KeyValue>::open(dir.path()).unwrap();
/// log.append_entries((0..10).map(|i| KeyValue::new("k", i, 32)).collect()).unwrap();
/// log.trim(4).unwrap();
/// drop(log);
/// // Options other than the defaults: `open_with`.
/// let log = FilesStorage::<KeyValue>::open_with(dir.path(), FilesOptions::new()).unwrap();
/// assert_eq!(log.get_log_len().unwrap(), 6);
/// assert_eq!(log.get_entries(4, 5).unwrap()[0].value, 4);
/// ```
pub struct FilesStorage<T: Entry> {
    engine: Engine,
    /// The last snapshot read, by snapshot file id: OmniPaxos asks for the snapshot on every
    /// read below the compacted index, and the file only changes when its id does.
    snapshot_cache: crate::storage_impl::SnapshotCache<T::Snapshot>,
    _entries: PhantomData<fn() -> T>,
}

impl<T: Entry> std::fmt::Debug for FilesStorage<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bounds = self.engine.bounds();
        f.debug_struct("FilesStorage")
            .field("dir", &self.engine.dir())
            .field("first", &bounds.first)
            .field("next", &bounds.next)
            .finish()
    }
}

impl<T> FilesStorage<T>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    /// Opens the store in `dir` (created if missing) with the default options (durable
    /// writes), recovering what is on disk.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, FilesOptions::new())
    }

    /// Opens the store in `dir` (created if missing) with `options`, recovering what is on
    /// disk.
    pub fn open_with(dir: impl AsRef<Path>, options: FilesOptions) -> Result<Self> {
        Ok(FilesStorage {
            engine: crate::recovery::open(dir.as_ref(), options)?,
            snapshot_cache: crate::storage_impl::SnapshotCache::new(),
            _entries: PhantomData,
        })
    }

    /// The engine's counters.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        self.engine.dir()
    }

    /// The store's marker: backend, format version and store id.
    pub fn marker(&self) -> &paxstore_core::identity::Marker {
        self.engine.marker()
    }

    /// The stored log bounds `[first, next)`.
    pub fn bounds(&self) -> paxstore_core::bounds::Bounds {
        self.engine.bounds()
    }

    /// Whether an earlier failure poisoned the store, and why.
    pub fn poisoned(&self) -> Option<String> {
        self.engine.check().err().map(|e| match e {
            crate::Error::Poisoned { reason } => reason,
            other => other.to_string(),
        })
    }

    /// Seals the active segment now and starts a new one.
    pub fn rotate(&mut self) -> Result<()> {
        self.engine.rotate()
    }

    /// Waits until the files that trims and snapshots made dead are deleted and the deletion
    /// is durable (they are deleted in the background by default; see
    /// [`FilesOptions::background_purge`]).
    pub fn wait_for_reclaim(&mut self) -> Result<()> {
        self.engine.wait_for_reclaim()
    }

    /// One call's path: the plan checks the batch, the engine batch encodes its steps, the
    /// engine commits it.
    fn write(&mut self, ops: Vec<StorageOp<T>>) -> Result<()> {
        self.engine.check()?;
        let plan = Plan::new(self.engine.bounds(), ops)?;
        let mut batch = self.engine.batch(plan.bounds());
        for step in plan {
            match step? {
                Step::Put { at, entries, .. } => batch.put(at, entries.as_slice())?,
                Step::DropPrefix { to, .. } | Step::Reset { to, .. } => batch.trim(to),
                Step::Promise(b) => batch.meta(MetaOp::Promise(b))?,
                Step::AcceptedRound(b) => batch.meta(MetaOp::Accepted(b))?,
                Step::DecidedIdx(i) => batch.meta(MetaOp::Decided(i as u64))?,
                Step::CompactedIdx(i) => batch.meta(MetaOp::Compacted(i as u64))?,
                Step::Stopsign(s) => batch.meta(MetaOp::Stopsign(s))?,
                Step::Snapshot(s) => batch.snapshot(
                    s.as_ref()
                        .map(|s| codec::encode("snapshot", s))
                        .transpose()?,
                ),
            }
        }
        self.engine.commit(batch)
    }

    fn read(&self, range: Option<std::ops::Range<usize>>) -> Result<Vec<T>> {
        self.engine.check()?;
        let Some(r) = range else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(r.len());
        self.engine
            .read_range(r.start as u64, r.end as u64, |bytes| {
                out.push(codec::decode("entry", bytes)?);
                Ok(())
            })?;
        Ok(out)
    }

    fn meta<R>(&self, f: impl FnOnce(&crate::format::Checkpoint) -> R) -> Result<R> {
        self.engine.check()?;
        Ok(f(self.engine.checkpoint()))
    }

    fn range(&self, f: impl FnOnce(Bounds) -> Option<std::ops::Range<usize>>) -> Result<Vec<T>> {
        self.read(f(self.engine.bounds()))
    }

    fn snapshot(&self) -> Result<Option<T::Snapshot>> {
        self.engine.check()?;
        match self.engine.checkpoint().snapshot {
            Some(r) => Ok(Some(
                self.snapshot_cache
                    .get(r, || self.engine.read_snapshot_file(r))?,
            )),
            None => Ok(None),
        }
    }
}

crate::storage_impl::storage_impl!(FilesStorage);
