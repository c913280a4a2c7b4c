//! `MemoryStorage`: the in-memory backend, exact to the contract.

use std::collections::VecDeque;

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Entry, StopSign, Storage, StorageOp, StorageResult},
};

use crate::bounds::Bounds;
use crate::error::Result;
use crate::plan::{self, Entries, Plan, Step};

/// An in-memory OmniPaxos log that honours the paxstore contract line by line.
///
/// - Entries live in a `VecDeque` addressed by absolute index: a trim pops entries off the
///   front (cost proportional to what is trimmed, never to what remains).
/// - `write_atomically` goes through a [`Plan`](crate::plan::Plan), which checks the whole
///   batch against the log bounds before anything is applied, so an `Err` leaves the store
///   exactly as it was.
/// - Reads outside `[first, next)` return an empty vector, never a panic or a shifted range.
///
/// Nothing survives the process: use it for tests, simulations and as the reference for
/// comparisons.
///
/// ```
/// use omnipaxos::storage::Storage;
/// use paxstore_core::{kv::KeyValue, MemoryStorage};
///
/// let mut store = MemoryStorage::<KeyValue>::new();
/// store.append_entries((0..10).map(|i| KeyValue::new("k", i, 0)).collect()).unwrap();
/// store.trim(4).unwrap();
/// assert_eq!(store.get_log_len().unwrap(), 6);
/// assert!(store.get_entries(2, 6).unwrap().is_empty()); // below the trim point
/// assert_eq!(store.get_entries(4, 6).unwrap().len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStorage<T: Entry> {
    log: VecDeque<T>,
    bounds: Bounds,
    promise: Option<Ballot>,
    accepted_round: Option<Ballot>,
    decided_idx: usize,
    compacted_idx: usize,
    stopsign: Option<StopSign>,
    snapshot: Option<T::Snapshot>,
}

impl<T: Entry> Default for MemoryStorage<T> {
    fn default() -> Self {
        MemoryStorage {
            log: VecDeque::new(),
            bounds: Bounds::default(),
            promise: None,
            accepted_round: None,
            decided_idx: 0,
            compacted_idx: 0,
            stopsign: None,
            snapshot: None,
        }
    }
}

impl<T: Entry> MemoryStorage<T> {
    /// An empty store: no metadata, decided and compacted index 0, an empty log at index 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored log bounds `[first, next)`.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Applies one step of a plan, `self.bounds` being the bounds it meets. The caller
    /// updates the bounds afterwards.
    fn apply(&mut self, step: Step<T>) {
        match step {
            Step::Put { at, entries, .. } => {
                self.log.truncate(at - self.bounds.first);
                match entries {
                    Entries::One(e) => self.log.push_back(e),
                    // Extending from the vector itself moves the entries in one copy.
                    Entries::Many(v) => self.log.extend(v),
                }
            }
            Step::DropPrefix { from, to } => {
                self.log.drain(..to - from);
            }
            Step::Reset { .. } => self.log.clear(),
            Step::Promise(b) => self.promise = Some(b),
            Step::AcceptedRound(b) => self.accepted_round = Some(b),
            Step::DecidedIdx(i) => self.decided_idx = i,
            Step::CompactedIdx(i) => self.compacted_idx = i,
            Step::Stopsign(s) => self.stopsign = s,
            Step::Snapshot(s) => self.snapshot = s,
        }
    }

    /// A single-op call: checked, then applied.
    fn write(&mut self, op: StorageOp<T>) -> Result<()> {
        let mut bounds = self.bounds;
        if let Some(step) = plan::step(&mut bounds, op)? {
            self.apply(step);
        }
        self.bounds = bounds;
        Ok(())
    }

    fn collect(&self, range: Option<std::ops::Range<usize>>) -> Vec<T> {
        match range {
            Some(r) => {
                let first = self.bounds.first;
                self.log
                    .range(r.start - first..r.end - first)
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        }
    }
}

impl<T: Entry> Storage<T> for MemoryStorage<T> {
    fn write_atomically(&mut self, ops: Vec<StorageOp<T>>) -> StorageResult<()> {
        // The plan checks the whole batch before anything is applied.
        let mut steps = Plan::new(self.bounds, ops)?.into_iter();
        while let Some(step) = steps.next() {
            self.apply(step?);
            self.bounds = steps.bounds();
        }
        Ok(())
    }

    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        Ok(self.write(StorageOp::AppendEntry(entry))?)
    }

    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.write(StorageOp::AppendEntries(entries))?)
    }

    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.write(StorageOp::AppendOnPrefix(from_idx, entries))?)
    }

    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        Ok(self.write(StorageOp::SetPromise(n_prom))?)
    }

    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        Ok(self.write(StorageOp::SetDecidedIndex(ld))?)
    }

    fn get_decided_idx(&self) -> StorageResult<usize> {
        Ok(self.decided_idx)
    }

    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        Ok(self.write(StorageOp::SetAcceptedRound(na))?)
    }

    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        Ok(self.accepted_round)
    }

    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<T>> {
        Ok(self.collect(self.bounds.entries_range(from, to)))
    }

    fn get_log_len(&self) -> StorageResult<usize> {
        Ok(self.bounds.len())
    }

    fn get_suffix(&self, from: usize) -> StorageResult<Vec<T>> {
        Ok(self.collect(self.bounds.suffix_range(from)))
    }

    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        Ok(self.promise)
    }

    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        Ok(self.write(StorageOp::SetStopsign(s))?)
    }

    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        Ok(self.stopsign.clone())
    }

    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        Ok(self.write(StorageOp::Trim(idx))?)
    }

    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        Ok(self.write(StorageOp::SetCompactedIdx(idx))?)
    }

    fn get_compacted_idx(&self) -> StorageResult<usize> {
        Ok(self.compacted_idx)
    }

    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        Ok(self.write(StorageOp::SetSnapshot(snapshot))?)
    }

    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        Ok(self.snapshot.clone())
    }
}
