//! The error type of `paxstore-rocks`.

use std::path::PathBuf;

/// Every error `paxstore-rocks` returns.
///
/// Each variant says what was attempted and where: the database directory, the column family
/// or log, the operation and, for entries, the index. It converts into the boxed error that
/// [`omnipaxos::storage::StorageResult`] carries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A RocksDB call failed.
    #[error("RocksDB {op} failed on {} (column family {cf:?}): {source}", path.display())]
    Rocks {
        /// What was being done (`"open"`, `"write batch"`, `"read entries"`, ...).
        op: &'static str,
        /// The database directory.
        path: PathBuf,
        /// The column family involved (`"*"` when the call spans the whole database).
        cf: String,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// The database is open elsewhere: in another process (or another backend), or in
    /// another [`RocksStore`] of this process (clone the first `RocksStore`, or open with
    /// [`RocksStore::open_shared`], to share it instead).
    ///
    /// [`RocksStore`]: crate::RocksStore
    /// [`RocksStore::open_shared`]: crate::RocksStore::open_shared
    #[error(
        "the RocksDB database at {} is already open (held by another process, or by another \
         RocksStore in this process: clone that RocksStore or use RocksStore::open_shared to \
         share it): {detail}",
        path.display()
    )]
    Locked {
        /// The database directory.
        path: PathBuf,
        /// Who holds it, as far as known (RocksDB's or the lock call's message).
        detail: String,
    },
    /// An entry or metadata value could not be encoded, or an index operation is invalid
    /// under the storage contract. Nothing was written.
    #[error("log {log:?} in {}: {source}", path.display())]
    Contract {
        /// The database directory.
        path: PathBuf,
        /// The log.
        log: String,
        /// The contract's error (what was refused, and why).
        #[source]
        source: Box<paxstore_core::Error>,
    },
    /// A stored value could not be decoded: damaged data, or a log opened with another entry
    /// type than the one it was written with.
    #[error("log {log:?} in {}: cannot decode the stored {what}: {source}", path.display())]
    Decode {
        /// The database directory.
        path: PathBuf,
        /// The log (or `"*"` for the database's own records).
        log: String,
        /// What was being decoded (`"entry 17"`, `"promise"`, ...).
        what: String,
        /// The codec's error.
        #[source]
        source: Box<paxstore_core::Error>,
    },
    /// The stored data breaks an invariant the backend maintains (a missing entry, a key of
    /// the wrong shape, metadata without its column family).
    #[error("log {log:?} in {} is damaged: {detail}", path.display())]
    Corrupt {
        /// The database directory.
        path: PathBuf,
        /// The log (or `"*"` for the database's own records).
        log: String,
        /// What is wrong.
        detail: String,
    },
    /// The directory holds something other than a paxstore-rocks store: another backend's
    /// store, files that are neither RocksDB's nor the marker's, a database without the
    /// paxstore marker, or a RocksDB database that is not paxstore's. Nothing in it was
    /// changed.
    #[error("{} is not a paxstore-rocks store: {detail}. {hint}", path.display())]
    Foreign {
        /// The directory.
        path: PathBuf,
        /// What was found.
        detail: String,
        /// What to do about it.
        hint: String,
    },
    /// The directory holds a RocksDB database that lost its `CURRENT` file but still holds
    /// data. Opening it would start an empty database and let RocksDB delete the old files,
    /// so it is refused; nothing in it was changed.
    #[error(
        "{} holds a RocksDB database without its CURRENT file, and data: {found}. Opening it \
         would start an empty database over it, so it is refused. Restore CURRENT (a backup, \
         or a one-line file naming the newest MANIFEST file, such as `MANIFEST-000012` and a \
         newline), or move the directory aside and start a new store elsewhere",
        path.display()
    )]
    NoCurrent {
        /// The database directory.
        path: PathBuf,
        /// The data found (table files, manifests, write-ahead-log files).
        found: String,
    },
    /// The store marker cannot be read: damaged, or not a marker. Nothing was changed.
    #[error(
        "the store marker {} is damaged: {detail}. Restore it from a backup; if you are sure \
         the directory is this backend's store, move the marker aside and open the store once \
         with RocksOptions::adopt_unmarked_store(true)",
        path.display()
    )]
    BadMarker {
        /// The marker file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// [`RocksStore::open_shared`](crate::RocksStore::open_shared) found the database open in
    /// this process with options it cannot share (another sync policy).
    #[error("the RocksDB database at {} is open in this process with other options: {detail}", path.display())]
    OptionsConflict {
        /// The database directory.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// The database was written by a newer (or unknown) version of this crate.
    #[error(
        "{} holds paxstore RocksDB format version {found}; this build reads version {expected}",
        path.display()
    )]
    FormatVersion {
        /// The database directory.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// A log name that cannot be used.
    #[error("invalid log name {name:?}: {reason}")]
    InvalidLogName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The log already has an open [`RocksStorage`](crate::RocksStorage) handle; a log has at
    /// most one (its bounds and metadata are cached in the handle).
    #[error("log {log:?} in {} is already open (a log has at most one RocksStorage handle)", path.display())]
    LogInUse {
        /// The database directory.
        path: PathBuf,
        /// The log.
        log: String,
    },
    /// The log does not exist.
    #[error("log {log:?} does not exist in {}", path.display())]
    NoSuchLog {
        /// The database directory.
        path: PathBuf,
        /// The log.
        log: String,
    },
    /// An earlier write to this log failed in a way that leaves its outcome on disk unknown
    /// (RocksDB itself stops accepting writes then). Every later call on this handle fails;
    /// reopen the store to see what reached the disk.
    #[error(
        "log {log:?} in {}: an earlier write failed with an unknown outcome; reopen the store",
        path.display()
    )]
    Poisoned {
        /// The database directory.
        path: PathBuf,
        /// The log.
        log: String,
    },
    /// A file-system call outside RocksDB failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The result type of `paxstore-rocks`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
