//! paxstore: tested, interchangeable storage backends for OmniPaxos.
//!
//! Every backend implements [`omnipaxos::storage::Storage<T>`] and passes the same conformance
//! suite (`storage_core::conformance`). Pick one:
//!
//! - **by feature flag**, at compile time: [`DefaultStorage<T>`] is the preferred backend the
//!   enabled features provide (files, then rocks, then memory), and each backend is
//!   re-exported under its own module: [`memory`] (always), `files` (feature `files`, on by
//!   default), `rocks` (feature `rocks`, opt-in: it builds RocksDB's C++);
//! - **at run time**, from a string such as `memory`, `files:/var/lib/app/log` or
//!   `rocks:/var/lib/app/db#shard-7` (`#` starts the log name; `##` is a `#` in the path: see
//!   [`any`]): [`AnyStorage<T>`].
//!
//! ```
//! use omnipaxos::storage::Storage;
//! use paxstore::{AnyStorage, cluster::KvCommand};
//!
//! let dir = tempfile::tempdir().unwrap();
//! # #[cfg(feature = "files")] {
//! let spec = format!("files:{}", dir.path().display());
//! let mut log = AnyStorage::<KvCommand>::open(&spec).unwrap();
//! log.append_entry(KvCommand::new("x", 1)).unwrap();
//! assert_eq!(log.get_log_len().unwrap(), 1);
//! # }
//! // A backend this build does not include is a clear error, not a panic.
//! # #[cfg(not(feature = "rocks"))]
//! assert!(AnyStorage::<KvCommand>::open("rocks:/tmp/db").is_err());
//! assert!(AnyStorage::<KvCommand>::open("tape:/dev/st0").is_err());
//! ```
//!
//! [`cluster`] runs OmniPaxos nodes in one process over any of these stores; the `paxstore`
//! command (feature `cli`, on by default) is built on it.

#![deny(missing_docs)]

pub mod any;
pub mod cluster;
#[cfg(feature = "cli")]
pub mod inspect;
// What `inspect`'s RocksDB part borrows from the command's helpers (the command itself uses
// `paxstore_workloads` directly). Goes away when `inspect` moves into the backends.
#[cfg(all(feature = "cli", feature = "rocks"))]
mod util {
    pub(crate) use paxstore_workloads::human_bytes;
}

pub use any::{AnyError, AnyStorage, Backend, StorageSpec};
pub use storage_core;
pub use storage_core::{StoreOptions, SyncPolicy};

/// The in-memory backend (always compiled): exact to the contract, nothing survives the
/// process.
pub mod memory {
    pub use storage_core::MemoryStorage;
}

/// The segment-file backend (feature `files`, the default): `storage_files` re-exported.
#[cfg(feature = "files")]
pub mod files {
    pub use storage_files::*;
}

/// The RocksDB backend (feature `rocks`): `storage_rocks` re-exported.
#[cfg(feature = "rocks")]
pub mod rocks {
    pub use storage_rocks::*;
}

/// The preferred backend among those compiled in: the segment-file engine (feature `files`).
#[cfg(feature = "files")]
pub type DefaultStorage<T> = storage_files::FilesStorage<T>;

/// The preferred backend among those compiled in: RocksDB (feature `rocks`, without `files`).
#[cfg(all(not(feature = "files"), feature = "rocks"))]
pub type DefaultStorage<T> = storage_rocks::RocksStorage<T>;

/// The preferred backend among those compiled in: memory (neither `files` nor `rocks`).
#[cfg(all(not(feature = "files"), not(feature = "rocks")))]
pub type DefaultStorage<T> = storage_core::MemoryStorage<T>;

/// The backend [`DefaultStorage`] names.
pub const DEFAULT_BACKEND: Backend = if cfg!(feature = "files") {
    Backend::Files
} else if cfg!(feature = "rocks") {
    Backend::Rocks
} else {
    Backend::Memory
};
