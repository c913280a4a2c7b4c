//! paxstore's append-only segment-file log engine for OmniPaxos.
//!
//! [`FilesStorage`] implements `omnipaxos::storage::Storage` on plain files in one directory:
//! segments of framed, checksummed records (one per `write_atomically` call), snapshot files,
//! and a lock file. `FORMAT.md` in this crate documents every byte.
//!
//! Module map: [`format`](mod@format) (bytes on disk), [`index`] (positions in memory), [`env`](mod@env) (every
//! file-system call, real or fault-injecting), `engine` (segments, commit, rotation, space
//! reclamation), `recovery` (open), [`options`], [`stats`], [`error`].
//!
//! Guarantees, with the default options:
//! - a call that returns `Ok` is on stable storage (`fdatasync` before acknowledging);
//! - a batch is applied whole or not at all, in memory and on disk, whatever the crash;
//! - a crash mid-write leaves at most a torn final record, which the next open cuts off;
//!   damage anywhere else is reported as [`FilesError::Corrupt`] with the file and offset;
//! - after a failed fsync every call fails ([`FilesError::Poisoned`]) until the store is
//!   reopened from disk;
//! - trimmed segments are deleted as soon as the trim is durable.

#![deny(missing_docs)]

mod engine;
pub mod env;
pub mod error;
pub mod format;
pub mod index;
pub mod options;
mod purge;
mod recovery;
pub mod stats;
mod storage;

pub use error::{FilesError, Result};
pub use options::{FilesOptions, RecoveryMode};
pub use recovery::LOCK_FILE;
pub use stats::Stats;
pub use storage::FilesStorage;
pub use storage_core::SyncPolicy;
