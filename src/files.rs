//! The segment-file backend (feature `files`, the default): `storage_files` re-exported, and
//! what [`AnyStorage`](crate::AnyStorage) needs of it.

pub use storage_files::*;

use omnipaxos::storage::Entry;
use serde::{de::DeserializeOwned, Serialize};
use storage_core::StoreOptions;

use storage_core::verify::{Summary, Unreadable};

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
    FilesStorage::open(dir, FilesOptions::new().store_options(options)).map_err(AnyError::backend)
}

pub(crate) fn any_reclaim<T>(store: &mut FilesStorage<T>) -> Result<(), AnyError>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.wait_for_purge().map_err(AnyError::backend)
}

pub(crate) fn any_poisoned<T>(store: &FilesStorage<T>) -> Option<String>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.poisoned()
}

pub(crate) fn any_verify(dir: &std::path::Path) -> Result<Summary, Unreadable> {
    storage_files::verify(dir)
}
