//! The conformance suite's harness for this backend (feature `testing`): what
//! `tests/conformance.rs` of this crate runs, and what a wrapper of this backend can reuse.

use std::path::Path;

use omnipaxos::storage::StorageResult;
use paxstore_core::{conformance::DirHarness, kv::KeyValue};

use crate::{FilesOptions, FilesStorage};

/// Small segments, so that the suite's logs rotate and trims delete whole segments.
pub fn options() -> FilesOptions {
    FilesOptions::new().segment_size(256 << 10)
}

/// Opens the store in `dir` with [`options`]: the crash test's opener.
pub fn open(dir: &Path) -> StorageResult<FilesStorage<KeyValue>> {
    Ok(FilesStorage::open_with(dir, options())?)
}

/// The suite's harness for this backend: stores opened with [`open`] in a fresh temporary
/// directory ([`DirHarness`]).
pub fn harness() -> DirHarness<FilesStorage<KeyValue>> {
    DirHarness::new(open)
}
