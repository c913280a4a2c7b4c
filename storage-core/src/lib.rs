//! The paxstore storage contract for OmniPaxos.
//!
//! OmniPaxos keeps its replicated log through [`omnipaxos::storage::Storage`]. This crate states
//! what every paxstore backend (and any user's backend) must do, and checks it:
//!
//! - [`error`]: the error type, with context, boxed into `StorageResult` by `?`;
//! - [`codec`]: bincode 2 over serde behind a format-version byte, for persistent backends;
//! - [`options`]: the options shared by persistent backends (the sync policy);
//! - [`bounds`]: where the stored log starts and ends, and the ranges reads return;
//! - [`plan`]: the one place a batch is checked and turned into steps for a backend to write
//!   (the append, `append_on_prefix` and trim rules);
//! - [`MemoryStorage`]: an in-memory backend exact to the contract;
//! - [`model`]: a reference model written for clarity;
//! - [`verify`]: what a backend's verifier reports (`paxstore inspect`, `paxstore verify`);
//! - [`kv`]: a key-value entry type with a sized payload and its snapshot;
//! - `conformance` (feature `conformance`): the shared conformance suite.
//!
//! The benchmark workloads shared by every backend live outside the contract, in
//! `bench/workloads` (crate `paxstore-workloads`).
//!
//! # The contract, in short
//!
//! The whole contract, written for a backend author, is [`contract`] (`CONTRACT.md` in this
//! crate). In short:
//!
//! Indices are absolute. The stored log is `[first, next)`. `get_entries(from, to)` returns the
//! whole range or nothing; `trim(i)` drops `[first, i)` (or everything, restarting at `i`, when
//! `i > next`); `append_on_prefix(i, v)` needs `first <= i <= next` (a no-op past the end when
//! `v` is empty); `write_atomically` is all or nothing, in memory and on disk.

#![deny(missing_docs)]

pub mod bounds;
#[doc = include_str!("../CONTRACT.md")]
pub mod contract {}
pub mod codec;
pub mod error;
pub mod identity;
pub mod kv;
mod memory;
pub mod model;
pub mod names;
pub mod options;
pub mod plan;
pub mod verify;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, Result};
pub use memory::MemoryStorage;
pub use options::{StoreOptions, SyncPolicy};
