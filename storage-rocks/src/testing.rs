//! The conformance suite's harness for this backend (feature `testing`): what
//! `tests/conformance.rs` of this crate runs, and what a wrapper of this backend can reuse.

use std::path::Path;

use omnipaxos::storage::StorageResult;
use paxstore_core::{conformance::DirHarness, kv::KeyValue};

use crate::RocksStorage;

/// Opens the single log of the database in `dir`: the crash test's opener.
pub fn open(dir: &Path) -> StorageResult<RocksStorage<KeyValue>> {
    Ok(RocksStorage::open(dir)?)
}

/// The suite's harness for this backend: single-log databases opened with [`open`] in a
/// fresh temporary directory ([`DirHarness`]; an abandoned store's database stays open,
/// leaked with its lock, and its files as they are are what a kill would leave).
pub fn harness() -> DirHarness<RocksStorage<KeyValue>> {
    DirHarness::new(open)
}
