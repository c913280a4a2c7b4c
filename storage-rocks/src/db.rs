//! The database a [`RocksStore`] and its [`RocksStorage`](crate::RocksStorage) handles share:
//! the RocksDB handle and what goes with it ([`Shared`]), the handle type itself, and the
//! background reclaimer. `store` opens and manages stores, `log` reads and writes one log;
//! both build on this module, neither on the other.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use paxstore_core::codec;
use paxstore_core::identity::Marker;
use rocksdb::{
    BottommostLevelCompaction, BoundColumnFamily, Cache, CompactOptions, DBWithThreadMode,
    MultiThreaded, ReadOptions, WriteBatch, WriteOptions,
};

use crate::dirlock::DirLock;
use crate::error::{Error, Result};
use crate::keys::{entry_key, log_cf, meta_key, validate_name, Field, FORMAT_KEY, META_CF};
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
/// the database closes when the last clone and the last
/// [`RocksStorage`](crate::RocksStorage) opened from it are dropped. A directory can be open in one `RocksStore` (and its clones) at a time: a second
/// opener, in this process or another, gets [`Error::Locked`], except that
/// [`RocksStore::open_shared`] returns (a clone of) the store already open in this process.
///
/// ```
/// use omnipaxos::storage::Storage;
/// use paxstore_core::kv::KeyValue;
/// use paxstore_rocks::RocksStore;
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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
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
    pub(crate) log_options: rocksdb::Options,
    /// Synced or not according to the sync policy: every batch of a log.
    pub(crate) write_opts: WriteOptions,
    /// Always synced: log creation and removal, and the reclaimer's range deletions (which
    /// must be durable before it drops any file: see [`Shared::reclaim`]).
    pub(crate) synced: WriteOptions,
    /// The logs that have an open `RocksStorage`.
    pub(crate) open_logs: Mutex<HashSet<String>>,
    /// Held by a reclamation for its whole duration, and by `drop_log`.
    pub(crate) reclaim_lock: Mutex<()>,
    /// Incremented by every `drop_log`: a queued reclamation of an older epoch is skipped, so
    /// it can never touch a log created after a drop under the same name.
    pub(crate) drop_epoch: AtomicU64,
    /// The first background reclamation error since the last `wait_for_reclaim`.
    pub(crate) reclaim_error: Mutex<Option<String>>,
    /// The store's marker (`None` only while an unmarked database is being adopted).
    pub(crate) marker: Mutex<Option<Marker>>,
    pub(crate) _cache: Cache,
    /// Declared after `db`, so dropped after it: the `flock` descriptor is closed only once
    /// the database (and RocksDB's `fcntl` lock, which closing any descriptor of `LOCK` would
    /// drop) is closed.
    pub(crate) lock: DirLock,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

pub(crate) fn foreign_db(path: &Path, detail: String) -> Error {
    Error::Foreign {
        path: path.to_path_buf(),
        detail,
        hint: "Open it with the program that wrote it, or give paxstore-rocks an empty or new \
               directory."
            .into(),
    }
}

impl RocksStore {
    /// Starts the reclaimer thread of a database just opened and returns its first handle.
    pub(crate) fn start(shared: Arc<Shared>) -> Result<Self> {
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

    pub(crate) fn corrupt_db(&self, detail: String) -> Error {
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
    pub(crate) fn check_format(&self) -> Result<()> {
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
    pub(crate) fn drop_orphan_logs(&self, logs: &[String]) -> Result<()> {
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

    pub(crate) fn is_registered(&self, name: &str) -> Result<bool> {
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
