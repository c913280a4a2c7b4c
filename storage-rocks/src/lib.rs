//! RocksDB storage for OmniPaxos: many logs in one database, one column family each.
//!
//! - [`RocksStore`]: one RocksDB database, cheap to clone and share across threads, holding a
//!   metadata column family and one column family per named log. All logs share one
//!   write-ahead log, so durable writes to many logs from many threads are committed together
//!   (RocksDB's group commit).
//! - [`RocksStorage<T>`]: one log, implementing [`omnipaxos::storage::Storage<T>`] for any
//!   entry type serde can encode. `RocksStorage::open(path)` is the one-line way to a durable
//!   single-log store.
//! - [`RocksOptions`]: the sync policy (durable by default), when trimmed space is reclaimed,
//!   and escape hatches to the underlying `rocksdb::Options`.
//! - [`Error`]: every failure, with the path, the column family or log and the operation.
//! - [`verify()`]: reads and checks a store directory without opening it for writing (what
//!   `paxstore inspect` and `paxstore verify` show), as a [`paxstore_core::verify::Summary`].
//!
//! The backend follows the paxstore storage contract (see `paxstore-core`) and passes its
//! conformance suite, crash tests included.
//!
//! ```
//! use omnipaxos::storage::Storage;
//! use paxstore_core::kv::KeyValue;
//! use paxstore_rocks::RocksStorage;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut log = RocksStorage::<KeyValue>::open(dir.path()).unwrap();
//! log.append_entry(KeyValue::new("k", 1, 64)).unwrap();
//! assert_eq!(log.get_log_len().unwrap(), 1);
//! ```
//!
//! # On disk
//!
//! Entries are keyed by their absolute index, 8 bytes big-endian, in the column family
//! `paxstore.log.<name>`; each log's metadata (promise, accepted round, decided and compacted
//! index, stop-sign, snapshot, trim point) lives under `<name>/<field>` in the column family
//! `paxstore.meta`, next to a format record. Values are encoded with
//! [`paxstore_core::codec`] (bincode behind a version byte).
//!
//! # Identity and locking
//!
//! A store's directory holds a `PAXSTORE` marker ([`paxstore_core::identity`]: backend
//! `rocks`, the format version, a random store id), written and made durable before anything
//! else when the store is created, next to RocksDB's own files. Open reads the directory
//! first ([`identify`]) and refuses, changing nothing, another backend's store, files that are
//! neither RocksDB's nor the marker, a directory without a marker
//! ([`RocksOptions::adopt_unmarked_store`] takes over a database written before markers), and
//! a database that lost its `CURRENT` file but holds data (RocksDB would start an empty
//! database over it). The directory is locked with an `flock` on `LOCK` (the lock
//! paxstore-files takes) as well as RocksDB's own `fcntl` lock on it.
//!
//! # Damage and crashes
//!
//! The write-ahead log is recovered with RocksDB's `TolerateCorruptedTailRecords` mode: a
//! torn last record (a write cut short by a crash, never acknowledged) is dropped, any other
//! damage makes [`RocksStore::open`] fail. Table files are checked at open and by checksum on
//! every read. One limit remains, shared by every write-ahead log: a *live* WAL file cut
//! short by an outside hand at a record boundary looks exactly like a crash before those
//! records were written, and recovers to that earlier state (RocksDB records the sizes of
//! closed WAL files in its MANIFEST and reports those).

#![deny(missing_docs)]

mod db;
mod dirlock;
mod error;
mod identity;
mod keys;
mod log;
mod options;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod verify;

pub use db::{RocksStore, FORMAT_VERSION};
pub use error::{Error, Result};
pub use identity::{identify, is_own_file_name, is_rocksdb_file_name, Found, BACKEND};
pub use keys::{MAX_NAME_LEN, SINGLE_LOG};
pub use log::RocksStorage;
pub use options::RocksOptions;
pub use verify::verify;

/// The `rocksdb` crate this backend is built on, for [`RocksOptions::tune_db`] and
/// [`RocksOptions::tune_logs`].
pub use rocksdb;
