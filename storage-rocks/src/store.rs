//! Opening a [`RocksStore`] (identify, lock, open or create the database) and managing its
//! logs. The database state it shares with its log handles lives in `db`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use omnipaxos::storage::Entry;
use paxstore_core::identity::Marker;
use rocksdb::{Cache, ColumnFamilyDescriptor, ErrorKind, ReadOptions, WriteBatch, WriteOptions};
use serde::{de::DeserializeOwned, Serialize};

use crate::db::{foreign_db, lock, Db, Inner, RocksStore, Shared, FORMAT_VERSION};
use crate::dirlock::{self, DirKey};
use crate::error::{Error, Result};
use crate::identity::{ensure_dir, identify, write_marker, Found, BACKEND};
use crate::keys::{log_cf, meta_range, validate_name, DEFAULT_CF, LOG_CF_PREFIX, META_CF};
use crate::log::RocksStorage;
use crate::options::RocksOptions;

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
    /// The directory is locked twice: an `flock` on its `LOCK` file (which paxstore-files
    /// takes too), held until after the database is closed, and RocksDB's own lock.
    ///
    /// Errors: [`Error::Locked`] if the directory is open elsewhere (a second `open` in this
    /// process included: see [`open_shared`](Self::open_shared)); [`Error::Foreign`] if it
    /// holds something other than a paxstore-rocks store (another backend's, files that are
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

        RocksStore::start(shared)
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
}
