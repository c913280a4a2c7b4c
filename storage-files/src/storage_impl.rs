//! What the two stores' `Storage` implementations share: the snapshot cache, and the
//! `Storage` impl itself, written once over four inherent methods each store has (`write`,
//! `meta`, `range`, `snapshot`).

use std::sync::Mutex;

use paxstore_core::codec;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::format::SnapshotRef;

/// The last snapshot read, by snapshot file id: OmniPaxos asks for the snapshot on every read
/// below the compacted index, and the file only changes when its id does.
pub(crate) struct SnapshotCache<S>(Mutex<Option<(u64, S)>>);

impl<S: Clone + DeserializeOwned> SnapshotCache<S> {
    pub(crate) fn new() -> Self {
        SnapshotCache(Mutex::new(None))
    }

    /// Snapshot `r`, from the cache or decoded from what `read` returns.
    pub(crate) fn get(&self, r: SnapshotRef, read: impl FnOnce() -> Result<Vec<u8>>) -> Result<S> {
        // A poisoned cache lock only means a reader panicked mid-clone; the cached value is
        // still whole (it is replaced only by assignment).
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, snapshot)) = cache.as_ref() {
            if *cached == r.id {
                return Ok(snapshot.clone());
            }
        }
        let snapshot: S = codec::decode("snapshot", &read()?)?;
        *cache = Some((r.id, snapshot.clone()));
        Ok(snapshot)
    }
}

/// `impl Storage<T> for $ty<T>` over the type's inherent `write(ops)`, `meta(|checkpoint| ..)`,
/// `range(|bounds| range)` and `snapshot()`.
macro_rules! storage_impl {
    ($ty:ident) => {
        impl<T> omnipaxos::storage::Storage<T> for $ty<T>
        where
            T: omnipaxos::storage::Entry + serde::Serialize + serde::de::DeserializeOwned,
            T::Snapshot: serde::Serialize + serde::de::DeserializeOwned,
        {
            fn write_atomically(
                &mut self,
                ops: Vec<omnipaxos::storage::StorageOp<T>>,
            ) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(ops)?)
            }
            fn append_entry(&mut self, entry: T) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::AppendEntry(entry)])?)
            }
            fn append_entries(&mut self, entries: Vec<T>) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::AppendEntries(entries)])?)
            }
            fn append_on_prefix(
                &mut self,
                from_idx: usize,
                entries: Vec<T>,
            ) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::AppendOnPrefix(
                    from_idx, entries,
                )])?)
            }
            fn set_promise(
                &mut self,
                n_prom: omnipaxos::ballot_leader_election::Ballot,
            ) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::SetPromise(n_prom)])?)
            }
            fn set_decided_idx(&mut self, ld: usize) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::SetDecidedIndex(ld)])?)
            }
            fn get_decided_idx(&self) -> omnipaxos::storage::StorageResult<usize> {
                Ok(self.meta(|m| m.decided as usize)?)
            }
            fn set_accepted_round(
                &mut self,
                na: omnipaxos::ballot_leader_election::Ballot,
            ) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::SetAcceptedRound(na)])?)
            }
            fn get_accepted_round(
                &self,
            ) -> omnipaxos::storage::StorageResult<Option<omnipaxos::ballot_leader_election::Ballot>>
            {
                Ok(self.meta(|m| m.accepted)?)
            }
            fn get_entries(
                &self,
                from: usize,
                to: usize,
            ) -> omnipaxos::storage::StorageResult<Vec<T>> {
                Ok(self.range(|b| b.entries_range(from, to))?)
            }
            fn get_log_len(&self) -> omnipaxos::storage::StorageResult<usize> {
                Ok(self.meta(|m| (m.next - m.first) as usize)?)
            }
            fn get_suffix(&self, from: usize) -> omnipaxos::storage::StorageResult<Vec<T>> {
                Ok(self.range(|b| b.suffix_range(from))?)
            }
            fn get_promise(
                &self,
            ) -> omnipaxos::storage::StorageResult<Option<omnipaxos::ballot_leader_election::Ballot>>
            {
                Ok(self.meta(|m| m.promise)?)
            }
            fn set_stopsign(
                &mut self,
                s: Option<omnipaxos::storage::StopSign>,
            ) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::SetStopsign(s)])?)
            }
            fn get_stopsign(
                &self,
            ) -> omnipaxos::storage::StorageResult<Option<omnipaxos::storage::StopSign>> {
                Ok(self.meta(|m| m.stopsign.clone())?)
            }
            fn trim(&mut self, idx: usize) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::Trim(idx)])?)
            }
            fn set_compacted_idx(&mut self, idx: usize) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::SetCompactedIdx(idx)])?)
            }
            fn get_compacted_idx(&self) -> omnipaxos::storage::StorageResult<usize> {
                Ok(self.meta(|m| m.compacted as usize)?)
            }
            fn set_snapshot(
                &mut self,
                snapshot: Option<T::Snapshot>,
            ) -> omnipaxos::storage::StorageResult<()> {
                Ok(self.write(vec![omnipaxos::storage::StorageOp::SetSnapshot(snapshot)])?)
            }
            fn get_snapshot(&self) -> omnipaxos::storage::StorageResult<Option<T::Snapshot>> {
                Ok(self.snapshot()?)
            }
        }
    };
}

pub(crate) use storage_impl;
