//! The many-logs segment-file backend (`files-multi`, feature `files`): what
//! [`AnyStorage`](crate::AnyStorage) needs of `paxstore_files::FilesStore`, whose logs
//! (`paxstore_files::FilesLog`) share one stream and group commit. The types themselves are
//! re-exported by [`files`](crate::files).

use omnipaxos::storage::Entry;
use paxstore_core::StoreOptions;
use paxstore_files::{FilesLog, FilesOptions, FilesStore};
use serde::{de::DeserializeOwned, Serialize};

use paxstore_core::verify::{Summary, Unreadable};

use crate::any::{AnyError, StorageSpec};

/// The log a `files-multi:<dir>` spec without `#<log>` names.
pub(crate) const DEFAULT_LOG: &str = "default";

pub(crate) fn any_open<T>(
    spec: &StorageSpec,
    options: StoreOptions,
) -> Result<FilesLog<T>, AnyError>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    let dir = crate::any::spec_dir(spec)?;
    // Shared: several logs of one store can be open at once in this process.
    let store = FilesStore::open_shared(dir, FilesOptions::new().store_options(options))
        .map_err(AnyError::backend)?;
    store
        .log(spec.log().unwrap_or(DEFAULT_LOG))
        .map_err(AnyError::backend)
}

pub(crate) fn any_reclaim<T>(store: &mut FilesLog<T>) -> Result<(), AnyError>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.store().wait_for_reclaim().map_err(AnyError::backend)
}

pub(crate) fn any_poisoned<T>(store: &FilesLog<T>) -> Option<String>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.poisoned()
}

pub(crate) fn any_verify(dir: &std::path::Path) -> Result<Summary, Unreadable> {
    paxstore_files::verify_store(dir)
}
