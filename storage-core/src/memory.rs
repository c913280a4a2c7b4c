//! `MemoryStorage`: the in-memory backend, exact to the contract.

use std::collections::VecDeque;

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Entry, StopSign, Storage, StorageOp, StorageResult},
};

use crate::bounds::{Bounds, PrefixEffect, TrimEffect};
use crate::error::Result;

/// An in-memory OmniPaxos log that honours the paxstore contract line by line.
///
/// - Entries live in a `VecDeque` addressed by absolute index: a trim pops entries off the
///   front (cost proportional to what is trimmed, never to what remains).
/// - `write_atomically` validates the whole batch against the log bounds before applying
///   anything, so an `Err` leaves the store exactly as it was.
/// - Reads outside `[first, next)` return an empty vector, never a panic or a shifted range.
///
/// Nothing survives the process: use it for tests, simulations and as the reference for
/// comparisons.
///
/// ```
/// use omnipaxos::storage::Storage;
/// use storage_core::{kv::KeyValue, MemoryStorage};
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

    fn do_append(&mut self, entries: impl IntoIterator<Item = T>) -> Result<()> {
        let before = self.log.len();
        self.log.extend(entries);
        let added = self.log.len() - before;
        self.bounds
            .append(added)
            .inspect_err(|_| self.log.truncate(before))
    }

    fn do_append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> Result<()> {
        let mut bounds = self.bounds;
        match bounds.append_on_prefix(from_idx, entries.len())? {
            PrefixEffect::Noop => {}
            PrefixEffect::TruncateAndAppend { from } => {
                self.log.truncate(from - self.bounds.first);
                self.log.extend(entries);
            }
        }
        self.bounds = bounds;
        Ok(())
    }

    fn do_trim(&mut self, idx: usize) {
        let first = self.bounds.first;
        match self.bounds.trim(idx) {
            TrimEffect::Noop => {}
            TrimEffect::DropPrefix { to } => {
                self.log.drain(..to - first);
            }
            TrimEffect::Reset { .. } => self.log.clear(),
        }
    }

    /// Checks every op of a batch against the bounds it will meet, without changing anything.
    fn validate(&self, ops: &[StorageOp<T>]) -> Result<()> {
        let mut b = self.bounds;
        for op in ops {
            match op {
                StorageOp::AppendEntry(_) => b.append(1)?,
                StorageOp::AppendEntries(v) => b.append(v.len())?,
                StorageOp::AppendOnPrefix(i, v) => {
                    b.append_on_prefix(*i, v.len())?;
                }
                StorageOp::Trim(i) => {
                    b.trim(*i);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: StorageOp<T>) -> Result<()> {
        match op {
            StorageOp::AppendEntry(e) => self.do_append([e])?,
            StorageOp::AppendEntries(v) => self.do_append(v)?,
            StorageOp::AppendOnPrefix(i, v) => self.do_append_on_prefix(i, v)?,
            StorageOp::SetPromise(b) => self.promise = Some(b),
            StorageOp::SetDecidedIndex(i) => self.decided_idx = i,
            StorageOp::SetAcceptedRound(b) => self.accepted_round = Some(b),
            StorageOp::SetCompactedIdx(i) => self.compacted_idx = i,
            StorageOp::Trim(i) => self.do_trim(i),
            StorageOp::SetStopsign(s) => self.stopsign = s,
            StorageOp::SetSnapshot(s) => self.snapshot = s,
        }
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
        self.validate(&ops)?;
        for op in ops {
            // Cannot fail: `validate` checked every op against the bounds it meets in order,
            // and the remaining ops have no failure mode in memory.
            self.apply(op)?;
        }
        Ok(())
    }

    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        Ok(self.do_append([entry])?)
    }

    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.do_append(entries)?)
    }

    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.do_append_on_prefix(from_idx, entries)?)
    }

    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.promise = Some(n_prom);
        Ok(())
    }

    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.decided_idx = ld;
        Ok(())
    }

    fn get_decided_idx(&self) -> StorageResult<usize> {
        Ok(self.decided_idx)
    }

    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.accepted_round = Some(na);
        Ok(())
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
        self.stopsign = s;
        Ok(())
    }

    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        Ok(self.stopsign.clone())
    }

    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        self.do_trim(idx);
        Ok(())
    }

    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.compacted_idx = idx;
        Ok(())
    }

    fn get_compacted_idx(&self) -> StorageResult<usize> {
        Ok(self.compacted_idx)
    }

    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        self.snapshot = snapshot;
        Ok(())
    }

    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        Ok(self.snapshot.clone())
    }
}
