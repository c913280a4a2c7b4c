//! paxstore's append-only segment-file log engine for OmniPaxos.
//!
//! [`FilesStorage`] implements `omnipaxos::storage::Storage` on plain files in one directory:
//! segments of framed, checksummed records (one per `write_atomically` call), snapshot files,
//! and a lock file. `FORMAT.md` in this crate documents every byte.
//!
//! [`FilesStore`] holds many logs in one directory ([`FilesLog`] each), written as one stream
//! of segments with group commit: concurrent durable writes of different logs share one
//! `fdatasync`. The guarantees below hold for it store-wide (`MANY_LOGS.md` has the design).
//!
//! Module map: `store` (the many-logs store: group commit, stream, recovery, verify), `format` (bytes on disk; public with the cargo feature `format`, for the
//! decoder fuzz and corruption tests), `index` (positions in memory), [`env`](mod@env) (every
//! file-system call, real or fault-injecting), `engine` (segments, commit, rotation, space
//! reclamation), `recovery` (open, and the record walk it shares with [`verify()`]),
//! [`verify`](mod@verify) (checking a directory without opening it: `paxstore verify`),
//! [`options`], [`stats`], [`error`].
//!
//! Guarantees, with the default options:
//! - a call that returns `Ok` is on stable storage (`fdatasync` before acknowledging), and
//!   survives a process kill and a power loss; a call that returns `Err` leaves no trace that a
//!   later open could replay;
//! - a batch is applied whole or not at all, in memory and on disk, whatever the crash;
//! - a crash mid-write leaves at most a torn final record, which the next open cuts off;
//!   damage anywhere else is reported as [`Error::Corrupt`] with the file and offset;
//! - nothing is deleted or cut on the strength of data that is not durable: open first syncs
//!   the newest segment and the directory it read (what it returns is acted on by consensus),
//!   and a record that makes files dead is synced before they are deleted, under every
//!   [`SyncPolicy`];
//! - every file and directory the store creates is made durable by an fsync of its
//!   directory (the store directory's parent included) before it is relied on;
//! - after a failed fsync every call fails ([`Error::Poisoned`]) until the store is
//!   reopened from disk; a record whose `fdatasync` failed is cut off the file first;
//! - trimmed segments are deleted as soon as the trim is durable; a deletion that fails is
//!   retried, and segments left below a gap in the ids are taken for dead at open;
//! - where `fallocate` is not supported (FUSE, some NFS and ZFS setups) the store writes
//!   without preallocating.
//!
//! Under [`SyncPolicy::Never`] a power loss may lose acknowledged writes (a suffix of them),
//! never a batch in part; if the disk kept a later write and lost an earlier one, only a
//! [`RecoveryMode::Lenient`] open cuts the log at the hole.
//!
//! These guarantees are tested at every file-system call of OmniPaxos-shaped workloads on a
//! simulated file system that loses power ([`env::SimFs`], `tests/power_loss.rs`), and with
//! real dropped page caches under LazyFS (`scripts/power-loss.sh`).

#![deny(missing_docs)]

mod crc_range;
mod engine;
pub mod env;
pub mod error;
/// The on-disk format (see `FORMAT.md`): public only with the cargo feature `format`, for the
/// tests that craft and damage bytes (`tests/decoder_fuzz.rs`, `tests/corruption.rs`, ...).
#[cfg(feature = "format")]
pub mod format;
#[cfg(not(feature = "format"))]
mod format;
mod index;
pub mod options;
mod purge;
mod recovery;
pub mod stats;
mod storage;
mod storage_impl;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verify;

pub use error::{Error, Result};
pub use options::{FilesOptions, RecoveryMode};
pub use paxstore_core::SyncPolicy;
pub use recovery::{BACKEND, LOCK_FILE};
pub use stats::Stats;
pub use storage::FilesStorage;
pub use store::{verify_store, FilesLog, FilesStore, StoreStats, BACKEND as MULTI_BACKEND};
pub use verify::verify;
