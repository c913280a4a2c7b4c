//! The RocksDB backend (feature `rocks`): `paxstore_rocks` re-exported, and what
//! [`AnyStorage`](crate::AnyStorage) needs of it.

pub use paxstore_rocks::*;

use omnipaxos::storage::Entry;
use paxstore_core::StoreOptions;
use serde::{de::DeserializeOwned, Serialize};

use paxstore_core::verify::{Summary, Unreadable};

use crate::any::{AnyError, StorageSpec};

pub(crate) fn any_open<T>(
    spec: &StorageSpec,
    options: StoreOptions,
) -> Result<RocksStorage<T>, AnyError>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    let dir = crate::any::spec_dir(spec)?;
    let opts = RocksOptions::new().store_options(options);
    // Shared: several logs of one database can be open at once in this process.
    let store = RocksStore::open_shared(dir, opts).map_err(AnyError::backend)?;
    store
        .log(spec.log().unwrap_or(SINGLE_LOG))
        .map_err(AnyError::backend)
}

pub(crate) fn any_reclaim<T>(store: &mut RocksStorage<T>) -> Result<(), AnyError>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.reclaim().map_err(AnyError::backend)
}

pub(crate) fn any_poisoned<T>(store: &RocksStorage<T>) -> Option<String>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    store.poisoned()
}

pub(crate) fn any_verify(dir: &std::path::Path) -> Result<Summary, Unreadable> {
    paxstore_rocks::verify(dir)
}
