//! The segment-file backend (feature `files`, the default): `paxstore_files` re-exported, and
//! what [`AnyStorage`](crate::AnyStorage) needs of it.

pub use paxstore_files::*;

use omnipaxos::storage::Entry;
use paxstore_core::StoreOptions;
use serde::{de::DeserializeOwned, Serialize};

use paxstore_core::verify::{Summary, Unreadable};

use crate::any::{AnyError, StorageSpec};

pub(crate) fn any_open<T>(
    spec: &StorageSpec,
    options: StoreOptions,
) -> Result<FilesStorage<T>, AnyError>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    let dir = crate::any::spec_dir(spec)?;
    FilesStorage::open_with(dir, FilesOptions::new().store_options(options))
        .map_err(AnyError::backend)
}

pub(crate) fn any_reclaim<T>(store: &mut FilesStorage<T>) -> Result<(), AnyError>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.wait_for_reclaim().map_err(AnyError::backend)
}

pub(crate) fn any_poisoned<T>(store: &FilesStorage<T>) -> Option<String>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.poisoned()
}

pub(crate) fn any_verify(dir: &std::path::Path) -> Result<Summary, Unreadable> {
    paxstore_files::verify(dir)
}
