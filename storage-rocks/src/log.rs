//! [`RocksStorage`]: one OmniPaxos log in a [`RocksStore`].

use std::fmt;
use std::ops::Range;
use std::path::Path;

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Entry, StopSign, Storage, StorageOp, StorageResult},
};
use paxstore_core::{
    bounds::Bounds,
    codec,
    plan::{Plan, Step},
};
use rocksdb::{AsColumnFamilyRef, BoundColumnFamily, ReadOptions, WriteBatch};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;

use crate::db::{RocksStore, Shared};
use crate::error::{Error, Result};
use crate::keys::{
    decode_entry_key, entry_key, log_cf, meta_key, Field, MetaKeys, ENTRY_KEYS_END, META_CF,
    SINGLE_LOG,
};
use crate::options::RocksOptions;

/// The largest number of entries a read reserves memory for up front: the bounds come from
/// disk, and a damaged bound must not make a read reserve absurd amounts.
const MAX_RESERVE: usize = 1 << 16;

/// One OmniPaxos log stored in a [`RocksStore`]: implements
/// [`Storage<T>`](omnipaxos::storage::Storage) for any entry type that serde can encode.
///
/// - Every `write_atomically` (and every single-op call) is one RocksDB `WriteBatch`, synced
///   before it returns under the default [`SyncPolicy`](paxstore_core::SyncPolicy): all or
///   nothing, in memory and on disk. An entry that cannot be encoded fails the batch before
///   anything is written.
/// - Entries are keyed by their absolute index (8 bytes, big-endian) in the log's own column
///   family; the metadata lives in the store's metadata column family.
/// - The bounds `[first, next)` and all metadata are cached in the handle and change only
///   after a batch committed: `get_log_len`, `get_decided_idx`, `get_compacted_idx` and the
///   other metadata getters never touch the disk.
/// - Reads outside `[first, next)` return an empty vector; every iterator carries lower and
///   upper bounds, so the range tombstones left by trims are never scanned.
/// - `trim` is a range deletion; the space is given back off the hot path (see
///   [`RocksStorage::reclaim`] and [`RocksOptions::reclaim_threshold`]).
///
/// ```
/// use omnipaxos::storage::{Storage, StorageOp};
/// use paxstore_core::kv::KeyValue;
/// use paxstore_rocks::RocksStorage;
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut log = RocksStorage::<KeyValue>::open(dir.path()).unwrap();
/// log.write_atomically(vec![
///     StorageOp::AppendEntries((0..10).map(|i| KeyValue::new("k", i, 32)).collect()),
///     StorageOp::SetDecidedIndex(10),
/// ]).unwrap();
/// log.write_atomically(vec![StorageOp::Trim(4), StorageOp::SetCompactedIdx(4)]).unwrap();
/// drop(log);
///
/// let log = RocksStorage::<KeyValue>::open(dir.path()).unwrap();
/// assert_eq!(log.get_log_len().unwrap(), 6);
/// assert_eq!(log.get_compacted_idx().unwrap(), 4);
/// assert!(log.get_entries(2, 6).unwrap().is_empty()); // below the trim point
/// assert_eq!(log.get_entries(4, 6).unwrap()[0].value, 4);
/// ```
pub struct RocksStorage<T: Entry> {
    store: RocksStore,
    name: String,
    cf_name: String,
    keys: MetaKeys,
    bounds: Bounds,
    meta: Meta<T>,
    /// Entries trimmed since the last reclamation was requested.
    trimmed_since_reclaim: u64,
    /// Why a write failed with an unknown outcome: every later call fails.
    poisoned: Option<String>,
}

/// The cached metadata.
struct Meta<T: Entry> {
    promise: Option<Ballot>,
    accepted_round: Option<Ballot>,
    decided_idx: usize,
    compacted_idx: usize,
    stopsign: Option<StopSign>,
    snapshot: Option<T::Snapshot>,
}

/// Metadata written by a batch, applied to the cache once the batch committed (the last
/// write of each field wins).
struct Pending<T: Entry> {
    promise: Option<Ballot>,
    accepted_round: Option<Ballot>,
    decided_idx: Option<usize>,
    compacted_idx: Option<usize>,
    stopsign: Option<Option<StopSign>>,
    snapshot: Option<Option<T::Snapshot>>,
}

impl<T: Entry> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            promise: None,
            accepted_round: None,
            decided_idx: None,
            compacted_idx: None,
            stopsign: None,
            snapshot: None,
        }
    }
}

/// A batch ready to commit, and what it does to the cache.
struct Staged<T: Entry> {
    batch: WriteBatch,
    bounds: Bounds,
    pending: Pending<T>,
    trimmed: u64,
}

impl<T: Entry> fmt::Debug for RocksStorage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStorage")
            .field("path", &self.store.path())
            .field("log", &self.name)
            .field("bounds", &self.bounds)
            .field("decided_idx", &self.meta.decided_idx)
            .field("compacted_idx", &self.meta.compacted_idx)
            .finish_non_exhaustive()
    }
}

impl<T: Entry> Drop for RocksStorage<T> {
    fn drop(&mut self) {
        self.store.shared().close_log(&self.name);
    }
}

impl<T> RocksStorage<T>
where
    T: Entry + Serialize + DeserializeOwned,
{
    /// Opens (or creates) a store in directory `path` holding one log, with the default
    /// options, and returns that log: the one-line way to get a durable OmniPaxos log.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, RocksOptions::default())
    }

    /// Like [`open`](Self::open), with options.
    pub fn open_with(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self> {
        RocksStore::open_with(path, options)?.log(SINGLE_LOG)
    }

    pub(crate) fn open_in(store: RocksStore, name: &str) -> Result<Self> {
        let shared = Arc::clone(store.shared());
        let (bounds, meta) = shared.open_log(name, || load::<T>(&shared, name))?;
        Ok(RocksStorage {
            store,
            name: name.to_string(),
            cf_name: log_cf(name),
            keys: MetaKeys::new(name),
            bounds,
            meta,
            trimmed_since_reclaim: 0,
            poisoned: None,
        })
    }
}

impl<T: Entry> RocksStorage<T> {
    /// The log's name in its store.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store holding this log.
    pub fn store(&self) -> &RocksStore {
        &self.store
    }

    /// The stored log bounds `[first, next)`.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Gives back the disk space of everything trimmed so far, now, in the calling thread:
    /// writes a synced range deletion below the trim point (so that no power loss can bring a
    /// trimmed entry back, nor, under [`SyncPolicy::Never`](paxstore_core::SyncPolicy::Never),
    /// undo the trim once files are gone), then drops the table files wholly below the trim
    /// point, compacts the range below it and flushes the metadata so that old
    /// write-ahead-log files can be deleted.
    ///
    /// The store also does this in the background after
    /// [`RocksOptions::reclaim_threshold`] trimmed entries; call this to bound disk use at a
    /// moment of your choosing (it does not block writers, but competes with them for I/O).
    pub fn reclaim(&mut self) -> Result<()> {
        self.check_usable()?;
        self.trimmed_since_reclaim = 0;
        self.store
            .shared()
            .reclaim(&self.name, self.bounds.first, None)
    }

    /// Why an earlier failure poisoned this log (a write whose outcome is unknown, e.g. a
    /// failed sync of the write-ahead log): every later call fails until the store is
    /// reopened from disk. `None` for a healthy log.
    pub fn poisoned(&self) -> Option<String> {
        self.poisoned.clone()
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned.is_some() {
            return Err(Error::Poisoned {
                path: self.store.path().to_path_buf(),
                log: self.name.clone(),
            });
        }
        Ok(())
    }

    fn contract(&self, source: paxstore_core::Error) -> Error {
        Error::Contract {
            path: self.store.path().to_path_buf(),
            log: self.name.clone(),
            source: Box::new(source),
        }
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            path: self.store.path().to_path_buf(),
            log: self.name.clone(),
            detail,
        }
    }

    fn log_cf<'a>(&self, shared: &'a Shared) -> Result<Arc<BoundColumnFamily<'a>>> {
        shared.db.cf_handle(&self.cf_name).ok_or_else(|| {
            self.corrupt(format!(
                "its column family {:?} disappeared while it was open",
                self.cf_name
            ))
        })
    }
}

impl<T> RocksStorage<T>
where
    T: Entry + Serialize + DeserializeOwned,
{
    /// Applies `ops` as one batch: validated and encoded in full first, committed in one
    /// `WriteBatch`, and only then reflected in the cache.
    fn write(&mut self, ops: Vec<StorageOp<T>>) -> Result<()> {
        self.check_usable()?;
        if ops.is_empty() {
            return Ok(());
        }
        let shared = Arc::clone(self.store.shared());
        let staged = {
            let log = self.log_cf(&shared)?;
            let meta = shared.meta_cf()?;
            self.stage(ops, &log, &meta)?
        };
        if let Err(e) = shared.db.write_opt(staged.batch, &shared.write_opts) {
            // RocksDB may have written the batch to its WAL before failing (a failed sync):
            // what the disk holds is unknown until a reopen.
            let err = shared.rocks("write batch", &self.cf_name, e);
            self.poisoned = Some(err.to_string());
            return Err(err);
        }
        self.bounds = staged.bounds;
        let p = staged.pending;
        let m = &mut self.meta;
        if let Some(b) = p.promise {
            m.promise = Some(b);
        }
        if let Some(b) = p.accepted_round {
            m.accepted_round = Some(b);
        }
        if let Some(i) = p.decided_idx {
            m.decided_idx = i;
        }
        if let Some(i) = p.compacted_idx {
            m.compacted_idx = i;
        }
        if let Some(s) = p.stopsign {
            m.stopsign = s;
        }
        if let Some(s) = p.snapshot {
            m.snapshot = s;
        }
        if staged.trimmed > 0 {
            self.trimmed_since_reclaim = self.trimmed_since_reclaim.saturating_add(staged.trimmed);
            let threshold = shared.options.reclaim_threshold_entries();
            if threshold > 0 && self.trimmed_since_reclaim >= threshold {
                self.trimmed_since_reclaim = 0;
                self.store.schedule_reclaim(&self.name, self.bounds.first);
            }
        }
        Ok(())
    }

    /// Builds the batch for `ops` from their plan; nothing is changed.
    fn stage(
        &self,
        ops: Vec<StorageOp<T>>,
        log: &impl AsColumnFamilyRef,
        meta: &impl AsColumnFamilyRef,
    ) -> Result<Staged<T>> {
        let plan = Plan::new(self.bounds, ops).map_err(|e| self.contract(e))?;
        let bounds = plan.bounds();
        let mut batch = WriteBatch::default();
        let mut pending = Pending::<T>::default();
        let mut trimmed = 0u64;
        let mut buf = Vec::with_capacity(256);
        let keys = &self.keys;
        for step in plan {
            match step.map_err(|e| self.contract(e))? {
                Step::Put {
                    at,
                    old_next,
                    entries,
                } => {
                    // Keys [at, at + len) are overwritten by the puts; only the old entries
                    // beyond the new end need a deletion. (`at + len` cannot overflow: the
                    // plan accepted it.)
                    let new_next = at + entries.len();
                    if new_next < old_next {
                        batch.delete_range_cf(log, entry_key(new_next), entry_key(old_next));
                    }
                    self.put_entries(&mut batch, log, &mut buf, at, entries.as_slice())?;
                }
                Step::DropPrefix { from, to } => {
                    batch.delete_range_cf(log, entry_key(from), entry_key(to));
                    trimmed += (to - from) as u64;
                }
                Step::Reset { from, next, .. } => {
                    if from < next {
                        batch.delete_range_cf(log, entry_key(from), entry_key(next));
                    }
                    trimmed += (next - from) as u64;
                }
                Step::Promise(b) => {
                    self.put_meta(
                        &mut batch,
                        meta,
                        &mut buf,
                        &keys.promise,
                        Field::Promise,
                        &b,
                    )?;
                    pending.promise = Some(b);
                }
                Step::AcceptedRound(b) => {
                    self.put_meta(
                        &mut batch,
                        meta,
                        &mut buf,
                        &keys.accepted_round,
                        Field::AcceptedRound,
                        &b,
                    )?;
                    pending.accepted_round = Some(b);
                }
                Step::DecidedIdx(i) => {
                    self.put_meta(
                        &mut batch,
                        meta,
                        &mut buf,
                        &keys.decided,
                        Field::Decided,
                        &i,
                    )?;
                    pending.decided_idx = Some(i);
                }
                Step::CompactedIdx(i) => {
                    self.put_meta(
                        &mut batch,
                        meta,
                        &mut buf,
                        &keys.compacted,
                        Field::Compacted,
                        &i,
                    )?;
                    pending.compacted_idx = Some(i);
                }
                Step::Stopsign(s) => {
                    match &s {
                        Some(s) => self.put_meta(
                            &mut batch,
                            meta,
                            &mut buf,
                            &keys.stopsign,
                            Field::Stopsign,
                            s,
                        )?,
                        None => batch.delete_cf(meta, &keys.stopsign),
                    }
                    pending.stopsign = Some(s);
                }
                Step::Snapshot(s) => {
                    match &s {
                        Some(s) => self.put_meta(
                            &mut batch,
                            meta,
                            &mut buf,
                            &keys.snapshot,
                            Field::Snapshot,
                            s,
                        )?,
                        None => batch.delete_cf(meta, &keys.snapshot),
                    }
                    pending.snapshot = Some(s);
                }
            }
        }
        if bounds.first != self.bounds.first {
            self.put_meta(
                &mut batch,
                meta,
                &mut buf,
                &keys.first,
                Field::First,
                &bounds.first,
            )?;
        }
        Ok(Staged {
            batch,
            bounds,
            pending,
            trimmed,
        })
    }

    fn put_entries(
        &self,
        batch: &mut WriteBatch,
        log: &impl AsColumnFamilyRef,
        buf: &mut Vec<u8>,
        at: usize,
        entries: &[T],
    ) -> Result<()> {
        for (k, e) in entries.iter().enumerate() {
            buf.clear();
            codec::encode_into("entry", e, buf).map_err(|e| self.contract(e))?;
            // `at + k` cannot overflow: the bounds accepted `at + entries.len()`.
            batch.put_cf(log, entry_key(at + k), &buf[..]);
        }
        Ok(())
    }

    fn put_meta<V: Serialize + ?Sized>(
        &self,
        batch: &mut WriteBatch,
        meta: &impl AsColumnFamilyRef,
        buf: &mut Vec<u8>,
        key: &[u8],
        field: Field,
        value: &V,
    ) -> Result<()> {
        buf.clear();
        codec::encode_into(field.what(), value, buf).map_err(|e| self.contract(e))?;
        batch.put_cf(meta, key, &buf[..]);
        Ok(())
    }

    /// Reads the entries of `range`, which lies within the bounds: every one must be there.
    fn read(&self, range: Option<Range<usize>>) -> Result<Vec<T>> {
        self.check_usable()?;
        let Some(range) = range else {
            return Ok(Vec::new());
        };
        let shared = self.store.shared();
        let cf = self.log_cf(shared)?;
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(entry_key(range.start).to_vec());
        opts.set_iterate_upper_bound(entry_key(range.end).to_vec());
        let mut it = shared.db.raw_iterator_cf_opt(&cf, opts);
        it.seek(entry_key(range.start));
        let mut out = Vec::with_capacity(range.len().min(MAX_RESERVE));
        for index in range {
            let Some((key, value)) = it.item() else {
                it.status()
                    .map_err(|e| shared.rocks("read entries", &self.cf_name, e))?;
                return Err(self.corrupt(format!(
                    "entry {index} is missing (the log should hold [{}, {}))",
                    self.bounds.first, self.bounds.next
                )));
            };
            if decode_entry_key(key) != Some(index) {
                return Err(self.corrupt(format!(
                    "expected the key of entry {index}, found {key:02x?}"
                )));
            }
            let entry = codec::decode("entry", value).map_err(|source| Error::Decode {
                path: shared.path.clone(),
                log: self.name.clone(),
                what: format!("entry {index}"),
                source: Box::new(source),
            })?;
            out.push(entry);
            it.next();
        }
        Ok(out)
    }
}

/// Reads a log's bounds and metadata from disk.
fn load<T>(shared: &Shared, name: &str) -> Result<(Bounds, Meta<T>)>
where
    T: Entry + Serialize + DeserializeOwned,
{
    let meta = shared.meta_cf()?;
    let get = |field: Field| -> Result<Option<Vec<u8>>> {
        shared
            .db
            .get_pinned_cf(&meta, meta_key(name, field))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| shared.rocks("read metadata", META_CF, e))
    };
    fn decode<V: DeserializeOwned>(
        shared: &Shared,
        name: &str,
        field: Field,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<V>> {
        bytes
            .map(|b| {
                codec::decode(field.what(), &b).map_err(|source| Error::Decode {
                    path: shared.path.clone(),
                    log: name.to_string(),
                    what: field.what().into(),
                    source: Box::new(source),
                })
            })
            .transpose()
    }
    let first: usize = decode(shared, name, Field::First, get(Field::First)?)?.unwrap_or(0);
    let meta_values = Meta::<T> {
        promise: decode(shared, name, Field::Promise, get(Field::Promise)?)?,
        accepted_round: decode(
            shared,
            name,
            Field::AcceptedRound,
            get(Field::AcceptedRound)?,
        )?,
        decided_idx: decode(shared, name, Field::Decided, get(Field::Decided)?)?.unwrap_or(0),
        compacted_idx: decode(shared, name, Field::Compacted, get(Field::Compacted)?)?.unwrap_or(0),
        stopsign: decode(shared, name, Field::Stopsign, get(Field::Stopsign)?)?,
        snapshot: decode(shared, name, Field::Snapshot, get(Field::Snapshot)?)?,
    };

    // `next` is one past the last stored key at or above `first`.
    let cf_name = log_cf(name);
    let corrupt = |detail: String| Error::Corrupt {
        path: shared.path.clone(),
        log: name.to_string(),
        detail,
    };
    let cf = shared
        .db
        .cf_handle(&cf_name)
        .ok_or_else(|| corrupt(format!("its column family {cf_name:?} is missing")))?;
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(entry_key(first).to_vec());
    opts.set_iterate_upper_bound(ENTRY_KEYS_END.to_vec());
    let mut it = shared.db.raw_iterator_cf_opt(&cf, opts);
    it.seek_to_last();
    let last =
        match it.key() {
            Some(key) => Some(decode_entry_key(key).ok_or_else(|| {
                corrupt(format!("a key of the wrong shape in the log: {key:02x?}"))
            })?),
            None => None,
        };
    it.status()
        .map_err(|e| shared.rocks("find the log end", &cf_name, e))?;
    let next = match last {
        Some(last) => {
            // The stored keys are exactly [first, next): the first one must be there too.
            it.seek(entry_key(first));
            if it.key() != Some(&entry_key(first)[..]) {
                it.status()
                    .map_err(|e| shared.rocks("find the log start", &cf_name, e))?;
                return Err(corrupt(format!(
                    "entry {first} (the first after the trim point) is missing, yet entry {last} is there"
                )));
            }
            last.checked_add(1)
                .ok_or_else(|| corrupt(format!("an entry at index {last}")))?
        }
        None => first,
    };
    Ok((Bounds::new(first, next), meta_values))
}

impl<T> Storage<T> for RocksStorage<T>
where
    T: Entry + Serialize + DeserializeOwned,
{
    fn write_atomically(&mut self, ops: Vec<StorageOp<T>>) -> StorageResult<()> {
        Ok(self.write(ops)?)
    }

    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::AppendEntry(entry)])?)
    }

    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::AppendEntries(entries)])?)
    }

    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::AppendOnPrefix(from_idx, entries)])?)
    }

    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::SetPromise(n_prom)])?)
    }

    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::SetDecidedIndex(ld)])?)
    }

    fn get_decided_idx(&self) -> StorageResult<usize> {
        self.check_usable()?;
        Ok(self.meta.decided_idx)
    }

    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::SetAcceptedRound(na)])?)
    }

    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        self.check_usable()?;
        Ok(self.meta.accepted_round)
    }

    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<T>> {
        Ok(self.read(self.bounds.entries_range(from, to))?)
    }

    fn get_log_len(&self) -> StorageResult<usize> {
        self.check_usable()?;
        Ok(self.bounds.len())
    }

    fn get_suffix(&self, from: usize) -> StorageResult<Vec<T>> {
        Ok(self.read(self.bounds.suffix_range(from))?)
    }

    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        self.check_usable()?;
        Ok(self.meta.promise)
    }

    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::SetStopsign(s)])?)
    }

    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        self.check_usable()?;
        Ok(self.meta.stopsign.clone())
    }

    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::Trim(idx)])?)
    }

    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::SetCompactedIdx(idx)])?)
    }

    fn get_compacted_idx(&self) -> StorageResult<usize> {
        self.check_usable()?;
        Ok(self.meta.compacted_idx)
    }

    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        Ok(self.write(vec![StorageOp::SetSnapshot(snapshot)])?)
    }

    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        self.check_usable()?;
        Ok(self.meta.snapshot.clone())
    }
}
