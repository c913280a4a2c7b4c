//! The in-memory backend (always compiled): exact to the contract, nothing survives the
//! process.

pub use paxstore_core::MemoryStorage;

use omnipaxos::storage::Entry;
use paxstore_core::StoreOptions;

use paxstore_core::verify::{Summary, Unreadable};

use crate::any::{AnyError, StorageSpec};

pub(crate) fn any_open<T: Entry>(
    _spec: &StorageSpec,
    _options: StoreOptions,
) -> Result<MemoryStorage<T>, AnyError> {
    Ok(MemoryStorage::new())
}

pub(crate) fn any_reclaim<T: Entry>(_store: &mut MemoryStorage<T>) -> Result<(), AnyError> {
    Ok(())
}

pub(crate) fn any_poisoned<T: Entry>(_store: &MemoryStorage<T>) -> Option<String> {
    None
}

pub(crate) fn any_verify(dir: &std::path::Path) -> Result<Summary, Unreadable> {
    Err(Unreadable::new(
        dir,
        "the memory backend keeps nothing on disk: there is no store to verify",
    ))
}
