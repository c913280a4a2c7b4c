//! paxstore: tested, interchangeable storage backends for OmniPaxos.
//!
//! Every backend implements [`omnipaxos::storage::Storage<T>`] and passes the same conformance
//! suite (`paxstore_core::conformance`). Pick one:
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
//! use paxstore::{AnyStorage, paxstore_core::kv::KeyValue};
//!
//! let dir = tempfile::tempdir().unwrap();
//! # #[cfg(feature = "files")] {
//! let spec = format!("files:{}", dir.path().display());
//! let mut log = AnyStorage::<KeyValue>::open(&spec).unwrap();
//! log.append_entry(KeyValue::new("x", 1, 16)).unwrap();
//! assert_eq!(log.get_log_len().unwrap(), 1);
//! # }
//! // A backend this build does not include is a clear error, not a panic.
//! # #[cfg(not(feature = "rocks"))]
//! assert!(AnyStorage::<KeyValue>::open("rocks:/tmp/db").is_err());
//! assert!(AnyStorage::<KeyValue>::open("tape:/dev/st0").is_err());
//! ```
//!
//! `cluster` (feature `cluster`, part of the default `cli`) runs OmniPaxos nodes in one
//! process over any of these stores; the `paxstore` command (feature `cli`, on by default) is
//! built on it.

#![deny(missing_docs)]

pub mod any;
#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "files")]
mod files_multi;
#[cfg(feature = "cli")]
pub mod inspect;
pub mod memory;
#[cfg(feature = "rocks")]
pub mod rocks;

pub use any::{AnyError, AnyStorage, Backend, DefaultStorage, StorageSpec, Syntax};
pub use paxstore_core;
pub use paxstore_core::{StoreOptions, SyncPolicy};

/// The backend [`DefaultStorage`] names.
pub const DEFAULT_BACKEND: Backend = Backend::default_backend();
