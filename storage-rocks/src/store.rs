//! [`RocksStore`]: one RocksDB database holding many logs.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;

use omnipaxos::storage::Entry;
use rocksdb::{
    BottommostLevelCompaction, BoundColumnFamily, Cache, ColumnFamilyDescriptor, CompactOptions,
    DBWithThreadMode, ErrorKind, MultiThreaded, ReadOptions, WriteBatch, WriteOptions,
};
use serde::{de::DeserializeOwned, Serialize};
use storage_core::codec;
use storage_core::identity::Marker;

use crate::dirlock::{self, DirKey, DirLock};
use crate::error::{Error, Result};
use crate::identity::{ensure_dir, identify, write_marker, Found, BACKEND};
use crate::keys::{
    entry_key, log_cf, meta_key, meta_range, validate_name, Field, DEFAULT_CF, FORMAT_KEY,
    LOG_CF_PREFIX, META_CF,
};
use crate::log::RocksStorage;
use crate::options::RocksOptions;

/// The RocksDB handle type: column families can be created and dropped through `&self`.
pub(crate) type Db = DBWithThreadMode<MultiThreaded>;

/// Written in the database's format record; anything else in that record is foreign.
pub(crate) const MAGIC: &str = "paxstore-rocks";
/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// A log's registration record: the format its entries and metadata are written in.
pub(crate) const LOG_FORMAT_VERSION: u32 = 1;

/// One RocksDB database holding any number of OmniPaxos logs, one column family each, all
/// sharing one write-ahead log (so that concurrent durable writes to different logs are
/// committed by one `fsync`).
///
/// A `RocksStore` is cheap to clone (a reference count) and can be shared across threads;
/// the database closes when the last clone and the last [`RocksStorage`] opened from it are
/// dropped. A directory can be open in one `RocksStore` (and its clones) at a time: a second
/// opener, in this process or another, gets [`Error::Locked`], except that
/// [`RocksStore::open_shared`] returns (a clone of) the store already open in this process.
///
/// ```
/// use omnipaxos::storage::Storage;
/// use storage_core::kv::KeyValue;
/// use storage_rocks::RocksStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = RocksStore::open(dir.path()).unwrap();
/// let mut shard_a = store.log::<KeyValue>("shard-a").unwrap();
/// let mut shard_b = store.log::<KeyValue>("shard-b").unwrap();
/// shard_a.append_entry(KeyValue::new("x", 1, 16)).unwrap();
/// shard_b.append_entries(vec![KeyValue::new("y", 2, 16); 3]).unwrap();
/// assert_eq!(shard_a.get_log_len().unwrap(), 1);
/// assert_eq!(store.logs().unwrap(), vec!["shard-a".to_string(), "shard-b".to_string()]);
/// drop(shard_b);
/// store.drop_log("shard-b").unwrap();
/// assert_eq!(store.logs().unwrap(), vec!["shard-a".to_string()]);
/// ```
#[derive(Clone)]
pub struct RocksStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    reclaimer: Option<Reclaimer>,
}

struct Reclaimer {
    tx: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

enum Job {
    Reclaim {
        log: String,
        upto: usize,
        epoch: u64,
    },
    Barrier(mpsc::Sender<()>),
}

/// What the store's handles and its reclaimer thread share.
pub(crate) struct Shared {
    pub(crate) db: Db,
    pub(crate) path: PathBuf,
    pub(crate) options: RocksOptions,
    log_options: rocksdb::Options,
    /// Synced or not according to the sync policy: every batch of a log.
    pub(crate) write_opts: WriteOptions,
    /// Always synced: log creation and removal, and the reclaimer's range deletions (which
    /// must be durable before it drops any file: see [`Shared::reclaim`]).
    synced: WriteOptions,
    /// The logs that have an open `RocksStorage`.
    open_logs: Mutex<HashSet<String>>,
    /// Held by a reclamation for its whole duration, and by `drop_log`.
    reclaim_lock: Mutex<()>,
    /// Incremented by every `drop_log`: a queued reclamation of an older epoch is skipped, so
    /// it can never touch a log created after a drop under the same name.
    drop_epoch: AtomicU64,
    /// The first background reclamation error since the last `wait_for_reclaim`.
    reclaim_error: Mutex<Option<String>>,
    /// The store's marker (`None` only while an unmarked database is being adopted).
    marker: Mutex<Option<Marker>>,
    _cache: Cache,
    /// Declared after `db`, so dropped after it: the `flock` descriptor is closed only once
    /// the database (and RocksDB's `fcntl` lock, which closing any descriptor of `LOCK` would
    /// drop) is closed.
    lock: DirLock,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes (sets of names, `()`, an error message) is consistent at
    // every instant, so a panic elsewhere while holding one does not invalidate it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop the reclaimer (it finishes the job at hand) before the database closes, so that
        // a reopen right after the last handle is dropped finds the directory unlocked.
        if let Some(Reclaimer { tx, thread }) = self.reclaimer.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.inner.shared.path)
            .finish_non_exhaustive()
    }
}

/// Maps an error of `DB::open` to [`Error::Locked`] when RocksDB could not take the
/// directory's lock file.
fn open_error(path: &Path, op: &'static str, e: rocksdb::Error) -> Error {
    // RocksDB's messages for a lock held by another process ("While lock file: ...LOCK")
    // and by this process ("lock hold by current process ...").
    let msg = e.to_string();
    if e.kind() == ErrorKind::IOError
        && (msg.contains("While lock file") || msg.contains("lock hold by current process"))
    {
        Error::Locked {
            path: path.to_path_buf(),
            detail: msg,
        }
    } else {
        Error::Rocks {
            op,
            path: path.to_path_buf(),
            cf: "*".into(),
            source: e,
        }
    }
}

/// The stores open in this process, by directory, for [`RocksStore::open_shared`].
static OPEN: Mutex<Vec<(DirKey, Weak<Inner>)>> = Mutex::new(Vec::new());

fn foreign_db(path: &Path, detail: String) -> Error {
    Error::Foreign {
        path: path.to_path_buf(),
        detail,
        hint: "Open it with the program that wrote it, or give storage-rocks an empty or new \
               directory."
            .into(),
    }
}

impl RocksStore {
    /// Opens (or creates) the store in directory `path` with the default [`RocksOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, RocksOptions::default())
    }

    /// Opens (or creates) the store in directory `path`.
    ///
    /// A new store's directory gets the paxstore marker (`PAXSTORE`: backend `rocks`, the
    /// format version, a random store id) before anything else, made durable; a crash while
    /// a store is being created leaves a directory that the next open finishes creating. An
    /// existing directory is read first ([`identify`](crate::identify)) and refused, with
    /// nothing in it changed, unless it is this backend's store.
    ///
    /// The directory is locked twice: an `flock` on its `LOCK` file (which storage-files
    /// takes too), held until after the database is closed, and RocksDB's own lock.
    ///
    /// Errors: [`Error::Locked`] if the directory is open elsewhere (a second `open` in this
    /// process included: see [`open_shared`](Self::open_shared)); [`Error::Foreign`] if it
    /// holds something other than a storage-rocks store (another backend's, files that are
    /// not RocksDB's, a database without the marker: see
    /// [`RocksOptions::adopt_unmarked_store`]); [`Error::NoCurrent`] for a database that lost
    /// its `CURRENT` file but holds data; [`Error::BadMarker`] for a damaged marker;
    /// [`Error::FormatVersion`] for a store of another format version; [`Error::Rocks`] when
    /// RocksDB refuses the database (a damaged table file or write-ahead log, for instance).
    pub fn open_with(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self> {
        let store = Self::open_unregistered(path.as_ref(), options)?;
        store.register();
        Ok(store)
    }

    /// Like [`open_with`](Self::open_with), but if the directory's store is already open in
    /// this process (by any `RocksStore` or [`RocksStorage`] not yet dropped, whatever path
    /// reached it), returns that store (a clone) instead of [`Error::Locked`]: so that code
    /// opening logs independently, such as `paxstore::AnyStorage`, can hold several logs of
    /// one database at once.
    ///
    /// A store already open keeps the options it was opened with; if its sync policy differs
    /// from `options`', the result is [`Error::OptionsConflict`].
    pub fn open_shared(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self> {
        let path = path.as_ref();
        let mut open = lock(&OPEN);
        open.retain(|(_, weak)| weak.strong_count() > 0);
        if let Ok(key) = DirKey::of(path) {
            let found = open
                .iter()
                .filter(|(k, _)| *k == key)
                .find_map(|(_, weak)| weak.upgrade());
            if let Some(inner) = found {
                let theirs = inner.shared.options.sync_policy();
                if theirs != options.sync_policy() {
                    return Err(Error::OptionsConflict {
                        path: path.to_path_buf(),
                        detail: format!(
                            "it was opened with sync policy {theirs:?}, this open asks for {:?}",
                            options.sync_policy()
                        ),
                    });
                }
                return Ok(RocksStore { inner });
            }
        }
        let store = Self::open_unregistered(path, options)?;
        open.push((
            store.inner.shared.lock.key().clone(),
            Arc::downgrade(&store.inner),
        ));
        Ok(store)
    }

    fn register(&self) {
        let mut open = lock(&OPEN);
        open.retain(|(_, weak)| weak.strong_count() > 0);
        open.push((
            self.inner.shared.lock.key().clone(),
            Arc::downgrade(&self.inner),
        ));
    }

    fn open_unregistered(path: &Path, options: RocksOptions) -> Result<Self> {
        let path = path.to_path_buf();
        let adopt = options.adopt_unmarked();
        let found = identify(&path, adopt)?;
        // What the directory must look like once it is locked: nothing may have changed.
        let expected = match &found {
            Found::Nothing => {
                ensure_dir(&path)?;
                Found::Unfinished(write_marker(&path)?)
            }
            other => other.clone(),
        };
        let dir_lock = dirlock::lock(&path)?;
        let again = identify(&path, adopt)?;
        if again != expected {
            return Err(Error::Locked {
                path,
                detail: "the directory changed while it was being opened (another process \
                         created or opened a store in it at the same time)"
                    .into(),
            });
        }
        let existed = matches!(expected, Found::Store(_) | Found::Unmarked);
        let cache = Cache::new_lru_cache(options.block_cache_size());
        let db_options = options.db_options();
        let log_options = options.log_options(&cache);
        let meta_options = options.meta_options(&cache);

        let mut descriptors = Vec::new();
        let mut log_cfs = Vec::new();
        if existed {
            let names = Db::list_cf(&db_options, &path)
                .map_err(|e| open_error(&path, "list column families", e))?;
            if !names.iter().any(|n| n == META_CF) {
                return Err(foreign_db(
                    &path,
                    format!(
                        "a RocksDB database without the {META_CF:?} column family (it has \
                         {names:?})"
                    ),
                ));
            }
            for name in names {
                let cf_options = if name == META_CF {
                    meta_options.clone()
                } else if let Some(log) = name.strip_prefix(LOG_CF_PREFIX) {
                    validate_name(log).map_err(|_| {
                        foreign_db(
                            &path,
                            format!("column family {name:?} is not a paxstore log"),
                        )
                    })?;
                    log_cfs.push(log.to_string());
                    log_options.clone()
                } else if name == DEFAULT_CF {
                    db_options.clone()
                } else {
                    return Err(foreign_db(&path, format!("unknown column family {name:?}")));
                };
                descriptors.push(ColumnFamilyDescriptor::new(name, cf_options));
            }
        } else {
            descriptors.push(ColumnFamilyDescriptor::new(META_CF, meta_options));
        }
        let db = Db::open_cf_descriptors(&db_options, &path, descriptors)
            .map_err(|e| open_error(&path, "open", e))?;

        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(options.sync_policy().is_durable());
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        let marker = expected.marker().cloned();
        let shared = Arc::new(Shared {
            db,
            path,
            options,
            log_options,
            write_opts,
            synced,
            open_logs: Mutex::new(HashSet::new()),
            reclaim_lock: Mutex::new(()),
            drop_epoch: AtomicU64::new(0),
            reclaim_error: Mutex::new(None),
            // Replaced below when an unmarked database is adopted.
            marker: Mutex::new(marker.clone()),
            _cache: cache,
            lock: dir_lock,
        });
        shared.check_format()?;
        if marker.is_none() {
            // Adoption: the database is a paxstore one (its column families and format record
            // say so); only now is the marker written.
            let written = write_marker(&shared.path)?;
            *lock(&shared.marker) = Some(written);
        }
        shared.drop_orphan_logs(&log_cfs)?;

        let (tx, rx) = mpsc::channel();
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("paxstore-rocks-reclaim".into())
            .spawn(move || reclaim_loop(&for_thread, rx))
            .map_err(|source| Error::Io {
                op: "spawn the reclaimer thread for",
                path: shared.path.clone(),
                source,
            })?;
        Ok(RocksStore {
            inner: Arc::new(Inner {
                shared,
                reclaimer: Some(Reclaimer { tx, thread }),
            }),
        })
    }

    /// The store's marker: backend `rocks`, format version, and the store id drawn at
    /// creation.
    pub fn marker(&self) -> Marker {
        lock(&self.inner.shared.marker)
            .clone()
            .unwrap_or_else(|| Marker {
                // Unreachable: open fails unless the store has a marker by the time it returns.
                backend: BACKEND.into(),
                format: FORMAT_VERSION,
                store_id: 0,
            })
    }

    /// Opens the log `name`, creating it if it does not exist.
    ///
    /// A log has at most one open handle ([`Error::LogInUse`] otherwise): its bounds and
    /// metadata are cached in the handle. Names are 1 to 128 bytes of ASCII letters, digits,
    /// `_`, `.` and `-`. Opening an existing log with another entry type than it was written
    /// with gives [`Error::Decode`] on the first read of an entry.
    pub fn log<T>(&self, name: &str) -> Result<RocksStorage<T>>
    where
        T: Entry + Serialize + DeserializeOwned,
    {
        RocksStorage::open_in(self.clone(), name)
    }

    /// The names of the logs in the store, in byte order.
    pub fn logs(&self) -> Result<Vec<String>> {
        let shared = &self.inner.shared;
        let meta = shared.meta_cf()?;
        let mut read = ReadOptions::default();
        // Every log name starts with one of [-.0-9A-Z_a-z]: all between '-' and 'z'.
        read.set_iterate_lower_bound(b"-".to_vec());
        read.set_iterate_upper_bound(b"{".to_vec());
        let mut it = shared.db.raw_iterator_cf_opt(&meta, read);
        it.seek_to_first();
        let mut names = Vec::new();
        while let Some(key) = it.key() {
            if let Some(name) = key.strip_suffix(b"/R") {
                let name = String::from_utf8(name.to_vec()).map_err(|_| {
                    shared.corrupt_db(format!("a log registration key {key:?} is not UTF-8"))
                })?;
                names.push(name);
            }
            it.next();
        }
        it.status()
            .map_err(|e| shared.rocks("list logs", META_CF, e))?;
        Ok(names)
    }

    /// Removes log `name` and everything in it. The log must not be open.
    ///
    /// The log's metadata is deleted first (one synced write), then its column family is
    /// dropped: a crash in between leaves a column family without metadata, which the next
    /// open removes.
    pub fn drop_log(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let shared = &self.inner.shared;
        let open = lock(&shared.open_logs);
        if open.contains(name) {
            return Err(Error::LogInUse {
                path: shared.path.clone(),
                log: name.to_string(),
            });
        }
        if !shared.is_registered(name)? {
            return Err(Error::NoSuchLog {
                path: shared.path.clone(),
                log: name.to_string(),
            });
        }
        let _reclaiming = lock(&shared.reclaim_lock);
        let meta = shared.meta_cf()?;
        let (start, end) = meta_range(name);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(&meta, start, end);
        shared
            .db
            .write_opt(batch, &shared.synced)
            .map_err(|e| shared.rocks("drop log: delete metadata", META_CF, e))?;
        let cf = log_cf(name);
        if shared.db.cf_handle(&cf).is_some() {
            shared
                .db
                .drop_cf(&cf)
                .map_err(|e| shared.rocks("drop log: drop column family", &cf, e))?;
        }
        shared.drop_epoch.fetch_add(1, Ordering::SeqCst);
        drop(open);
        Ok(())
    }

    /// Waits until the background reclamations queued so far have run. Returns the first
    /// error a background reclamation met since the last call (reclamation only gives disk
    /// space back: an error there loses no data).
    pub fn wait_for_reclaim(&self) -> Result<()> {
        let shared = &self.inner.shared;
        if let Some(reclaimer) = &self.inner.reclaimer {
            let (tx, rx) = mpsc::channel();
            if reclaimer.tx.send(Job::Barrier(tx)).is_ok() {
                // An error here means the thread is gone; nothing is left to wait for.
                let _ = rx.recv();
            }
        }
        match lock(&shared.reclaim_error).take() {
            Some(detail) => Err(Error::Corrupt {
                path: shared.path.clone(),
                log: "*".into(),
                detail: format!("background reclamation failed: {detail}"),
            }),
            None => Ok(()),
        }
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &RocksOptions {
        &self.inner.shared.options
    }

    /// RocksDB's sequence number of the last committed write: it changes with every write
    /// that reaches the database, so equal numbers before and after a call prove that the
    /// call wrote nothing.
    pub fn latest_sequence_number(&self) -> u64 {
        self.inner.shared.db.latest_sequence_number()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Queues a background reclamation of log `log` below `upto`.
    pub(crate) fn schedule_reclaim(&self, log: &str, upto: usize) {
        if let Some(reclaimer) = &self.inner.reclaimer {
            let epoch = self.inner.shared.drop_epoch.load(Ordering::SeqCst);
            // Fails only once the thread is gone, i.e. while the store is being closed.
            let _ = reclaimer.tx.send(Job::Reclaim {
                log: log.to_string(),
                upto,
                epoch,
            });
        }
    }
}

fn reclaim_loop(shared: &Shared, rx: mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        // Take everything queued: several requests for one log collapse into the highest.
        let mut targets: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        let mut barriers = Vec::new();
        let mut add = |job| match job {
            Job::Reclaim { log, upto, epoch } => {
                let t = targets.entry(log).or_insert((upto, epoch));
                if (epoch, upto) > (t.1, t.0) {
                    *t = (upto, epoch);
                }
            }
            Job::Barrier(tx) => barriers.push(tx),
        };
        add(job);
        while let Ok(job) = rx.try_recv() {
            add(job);
        }
        for (log, (upto, epoch)) in targets {
            if let Err(e) = shared.reclaim(&log, upto, Some(epoch)) {
                lock(&shared.reclaim_error).get_or_insert(e.to_string());
            }
        }
        for b in barriers {
            let _ = b.send(());
        }
    }
}

impl Shared {
    pub(crate) fn rocks(&self, op: &'static str, cf: &str, source: rocksdb::Error) -> Error {
        Error::Rocks {
            op,
            path: self.path.clone(),
            cf: cf.to_string(),
            source,
        }
    }

    fn corrupt_db(&self, detail: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            log: "*".into(),
            detail,
        }
    }

    pub(crate) fn meta_cf(&self) -> Result<Arc<BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(META_CF)
            .ok_or_else(|| self.corrupt_db(format!("the {META_CF:?} column family is missing")))
    }

    /// Checks the database's format record, writing it into a fresh database.
    fn check_format(&self) -> Result<()> {
        let meta = self.meta_cf()?;
        let record = self
            .db
            .get_pinned_cf(&meta, FORMAT_KEY)
            .map_err(|e| self.rocks("read the format record", META_CF, e))?;
        match record {
            Some(bytes) => {
                let (magic, version): (String, u32) = codec::decode("format record", &bytes)
                    .map_err(|e| {
                        foreign_db(&self.path, format!("unreadable format record: {e}"))
                    })?;
                if magic != MAGIC {
                    return Err(foreign_db(
                        &self.path,
                        format!("format record names {magic:?}"),
                    ));
                }
                if version != FORMAT_VERSION {
                    return Err(Error::FormatVersion {
                        path: self.path.clone(),
                        found: version,
                        expected: FORMAT_VERSION,
                    });
                }
                Ok(())
            }
            None => {
                // A fresh database, or one whose creation was cut short before the record was
                // written: then the metadata column family is still empty.
                let mut read = ReadOptions::default();
                read.set_iterate_lower_bound(Vec::new());
                read.set_iterate_upper_bound(vec![0xff; 2]);
                let mut it = self.db.raw_iterator_cf_opt(&meta, read);
                it.seek_to_first();
                let empty = !it.valid();
                it.status()
                    .map_err(|e| self.rocks("read metadata", META_CF, e))?;
                drop(it);
                if !empty {
                    return Err(self.corrupt_db("metadata without a format record".into()));
                }
                let value = codec::encode("format record", &(MAGIC, FORMAT_VERSION))
                    .map_err(|e| self.corrupt_db(e.to_string()))?;
                let mut batch = WriteBatch::default();
                batch.put_cf(&meta, FORMAT_KEY, value);
                self.db
                    .write_opt(batch, &self.synced)
                    .map_err(|e| self.rocks("write the format record", META_CF, e))
            }
        }
    }

    /// Drops the column families of logs that have no registration: left by a crash in the
    /// middle of `drop_log` or of a log's creation.
    ///
    /// The missing registration this acts on is durable, even if it was read back from a
    /// write-ahead-log tail that never reached the disk (a crash between a write and its
    /// sync): `DB::open` flushes everything it recovers from the write-ahead log into synced
    /// table files, with a synced MANIFEST change, before it returns (RocksDB's
    /// `avoid_flush_during_recovery` is off, and the `rocksdb` crate has no setter for it).
    fn drop_orphan_logs(&self, logs: &[String]) -> Result<()> {
        for log in logs {
            if !self.is_registered(log)? {
                let cf = log_cf(log);
                self.db
                    .drop_cf(&cf)
                    .map_err(|e| self.rocks("drop an unregistered log", &cf, e))?;
            }
        }
        Ok(())
    }

    fn is_registered(&self, name: &str) -> Result<bool> {
        let meta = self.meta_cf()?;
        let record = self
            .db
            .get_pinned_cf(&meta, meta_key(name, Field::Registered))
            .map_err(|e| self.rocks("read a log record", META_CF, e))?;
        match record {
            None => Ok(false),
            Some(bytes) => {
                let version: u32 =
                    codec::decode("log record", &bytes).map_err(|source| Error::Decode {
                        path: self.path.clone(),
                        log: name.to_string(),
                        what: Field::Registered.what().into(),
                        source: Box::new(source),
                    })?;
                if version != LOG_FORMAT_VERSION {
                    return Err(Error::FormatVersion {
                        path: self.path.clone(),
                        found: version,
                        expected: LOG_FORMAT_VERSION,
                    });
                }
                Ok(true)
            }
        }
    }

    /// Reserves log `name` for one handle (creating the log if needed) and runs `load` while
    /// the reservation is being made; the reservation is dropped again if `load` fails.
    pub(crate) fn open_log<R>(&self, name: &str, load: impl FnOnce() -> Result<R>) -> Result<R> {
        validate_name(name)?;
        let mut open = lock(&self.open_logs);
        if open.contains(name) {
            return Err(Error::LogInUse {
                path: self.path.clone(),
                log: name.to_string(),
            });
        }
        let cf = log_cf(name);
        let has_cf = self.db.cf_handle(&cf).is_some();
        if self.is_registered(name)? {
            if !has_cf {
                return Err(Error::Corrupt {
                    path: self.path.clone(),
                    log: name.to_string(),
                    detail: format!(
                        "the log is registered but its column family {cf:?} is missing"
                    ),
                });
            }
        } else {
            // Column family first, registration second: a crash in between leaves an
            // unregistered column family, which the next open drops.
            if !has_cf {
                self.db
                    .create_cf(&cf, &self.log_options)
                    .map_err(|e| self.rocks("create log column family", &cf, e))?;
            }
            let meta = self.meta_cf()?;
            let value = codec::encode("log record", &LOG_FORMAT_VERSION)
                .map_err(|e| self.corrupt_db(e.to_string()))?;
            let mut batch = WriteBatch::default();
            batch.put_cf(&meta, meta_key(name, Field::Registered), value);
            self.db
                .write_opt(batch, &self.synced)
                .map_err(|e| self.rocks("register log", META_CF, e))?;
        }
        let loaded = load()?;
        open.insert(name.to_string());
        Ok(loaded)
    }

    /// Releases the reservation of log `name` (its handle is being dropped).
    pub(crate) fn close_log(&self, name: &str) {
        lock(&self.open_logs).remove(name);
    }

    /// Gives back the disk space of log `log` below index `upto`: a synced range deletion of
    /// `[0, upto)` (covering anything a dropped file might uncover), then
    /// `delete_file_in_range` (whole table files inside the range go at once), then a
    /// compaction of the range (rewrites the files straddling `upto`, drops the tombstones),
    /// then a flush of the metadata column family so that old WAL files can go as well.
    ///
    /// With `epoch`, does nothing if a log was dropped since the request was made.
    pub(crate) fn reclaim(&self, log: &str, upto: usize, epoch: Option<u64>) -> Result<()> {
        let _reclaiming = lock(&self.reclaim_lock);
        if epoch.is_some_and(|e| e != self.drop_epoch.load(Ordering::SeqCst)) || upto == 0 {
            return Ok(());
        }
        let cf_name = log_cf(log);
        let Some(cf) = self.db.cf_handle(&cf_name) else {
            return Ok(());
        };
        let (start, end) = (entry_key(0), entry_key(upto));
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(&cf, start, end);
        // Synced, and before any file is dropped: `delete_file_in_range` commits the drop with
        // a synced MANIFEST change, so a power loss right after it keeps the drop and loses
        // whatever the write-ahead log had not synced yet.
        // - A dropped file may hold the range tombstone of an earlier trim, hiding older copies
        //   of trimmed entries in a lower-level file that straddles `upto` and stays: only this
        //   deletion keeps them hidden once that file is gone. Unsynced, they could come back
        //   below the log's first index.
        // - Under `SyncPolicy::Never`, the trim that moved the log's start to `upto` may still
        //   be in the page cache only: dropping the files above the old start before the trim
        //   is durable could leave, after a power loss, the old start with its entries gone (a
        //   log that no longer opens). A synced write makes the write-ahead log durable up to
        //   itself (RocksDB syncs every WAL file not synced yet), so that trim is durable too.
        // A synced write is the cheapest way to both: one WAL sync per reclamation, shared with
        // concurrent durable writers by group commit (a memtable flush would write a table
        // file as well). If the write or its sync fails, nothing is dropped: the error is
        // returned, and RocksDB (paranoid checks on) accepts no more writes after a failed
        // WAL sync, so every log handle's next write fails and poisons it.
        self.db
            .write_opt(batch, &self.synced)
            .map_err(|e| self.rocks("reclaim: delete range", &cf_name, e))?;
        // The end key is inclusive here: stop at the last trimmed index.
        self.db
            .delete_file_in_range_cf(&cf, start, entry_key(upto - 1))
            .map_err(|e| self.rocks("reclaim: delete files in range", &cf_name, e))?;
        let mut compact = CompactOptions::default();
        // Other logs' automatic compactions keep running meanwhile.
        compact.set_exclusive_manual_compaction(false);
        // Rewrite the bottom level too (that is where the trimmed entries are), but not the
        // files this compaction itself just wrote there.
        compact.set_bottommost_level_compaction(BottommostLevelCompaction::ForceOptimized);
        // RocksDB's C API reports no error from a manual compaction; a failed one leaves the
        // space unreclaimed, never data lost.
        self.db
            .compact_range_cf_opt(&cf, Some(start), Some(end), &compact);
        let meta = self.meta_cf()?;
        self.db
            .flush_cf(&meta)
            .map_err(|e| self.rocks("reclaim: flush metadata", META_CF, e))
    }
}
