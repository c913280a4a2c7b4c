//! The reference model: the contract ([`contract`](crate::contract), `CONTRACT.md`) written
//! for clarity, not speed.
//!
//! A `BTreeMap` from absolute index to entry, the two bounds and the metadata. Every rule is
//! spelled out on its own, independently of the [`plan`](crate::plan) rules the backends
//! share, so that a mistake in those rules shows up as a disagreement with the model.

use std::collections::BTreeMap;

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Entry, StopSign, Storage, StorageOp, StorageResult},
};

/// Why the model refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model refused {op}: {reason}")]
pub struct ModelError {
    /// The operation.
    pub op: &'static str,
    /// The rule that refused it.
    pub reason: String,
}

/// The state every backend must show after the same sequence of calls.
#[derive(Debug, Clone)]
pub struct Model<T: Entry> {
    /// The stored entries by absolute index; exactly the keys `first..next`.
    pub log: BTreeMap<usize, T>,
    /// The lowest stored index.
    pub first: usize,
    /// One past the highest stored index.
    pub next: usize,
    /// The promised round.
    pub promise: Option<Ballot>,
    /// The accepted round.
    pub accepted_round: Option<Ballot>,
    /// The decided index.
    pub decided_idx: usize,
    /// The compacted index.
    pub compacted_idx: usize,
    /// The stop-sign.
    pub stopsign: Option<StopSign>,
    /// The snapshot.
    pub snapshot: Option<T::Snapshot>,
}

impl<T: Entry> Default for Model<T> {
    fn default() -> Self {
        Model {
            log: BTreeMap::new(),
            first: 0,
            next: 0,
            promise: None,
            accepted_round: None,
            decided_idx: 0,
            compacted_idx: 0,
            stopsign: None,
            snapshot: None,
        }
    }
}

impl<T: Entry> Model<T> {
    /// The state of a fresh store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries held.
    pub fn log_len(&self) -> usize {
        self.next - self.first
    }

    /// What `get_entries(from, to)` must return.
    pub fn entries(&self, from: usize, to: usize) -> Vec<T> {
        let whole_range_stored = self.first <= from && from < to && to <= self.next;
        if !whole_range_stored {
            return Vec::new();
        }
        self.log.range(from..to).map(|(_, e)| e.clone()).collect()
    }

    /// What `get_suffix(from)` must return.
    pub fn suffix(&self, from: usize) -> Vec<T> {
        if from < self.first || from >= self.next {
            return Vec::new();
        }
        self.log.range(from..).map(|(_, e)| e.clone()).collect()
    }

    fn push(&mut self, entry: T) {
        self.log.insert(self.next, entry);
        self.next += 1;
    }

    /// Applies one operation, or refuses it without changing anything.
    pub fn apply(&mut self, op: &StorageOp<T>) -> Result<(), ModelError> {
        match op {
            StorageOp::AppendEntry(e) => self.push(e.clone()),
            StorageOp::AppendEntries(v) => v.iter().for_each(|e| self.push(e.clone())),
            StorageOp::AppendOnPrefix(i, v) => {
                let i = *i;
                if i < self.first {
                    return Err(ModelError {
                        op: "append_on_prefix",
                        reason: format!("index {i} is below the first stored index {}", self.first),
                    });
                }
                if i > self.next {
                    if v.is_empty() {
                        return Ok(()); // a stop-sign counted one past the end: nothing to do
                    }
                    return Err(ModelError {
                        op: "append_on_prefix",
                        reason: format!("index {i} is past the log end {} with entries", self.next),
                    });
                }
                self.log.split_off(&i);
                self.next = i;
                v.iter().for_each(|e| self.push(e.clone()));
            }
            StorageOp::Trim(i) => {
                let i = *i;
                if i <= self.first {
                    // nothing below `first` is stored
                } else if i <= self.next {
                    self.log = self.log.split_off(&i);
                    self.first = i;
                } else {
                    self.log.clear();
                    self.first = i;
                    self.next = i;
                }
            }
            StorageOp::SetPromise(b) => self.promise = Some(*b),
            StorageOp::SetDecidedIndex(i) => self.decided_idx = *i,
            StorageOp::SetAcceptedRound(b) => self.accepted_round = Some(*b),
            StorageOp::SetCompactedIdx(i) => self.compacted_idx = *i,
            StorageOp::SetStopsign(s) => self.stopsign = s.clone(),
            StorageOp::SetSnapshot(s) => self.snapshot = s.clone(),
        }
        Ok(())
    }

    /// Applies a batch all or nothing.
    pub fn apply_batch(&mut self, ops: &[StorageOp<T>]) -> Result<(), ModelError> {
        let mut staged = self.clone();
        for op in ops {
            staged.apply(op)?;
        }
        *self = staged;
        Ok(())
    }
}

/// The model is itself a backend; the suite runs over it to check the suite.
impl<T: Entry> Storage<T> for Model<T> {
    fn write_atomically(&mut self, ops: Vec<StorageOp<T>>) -> StorageResult<()> {
        Ok(self.apply_batch(&ops)?)
    }
    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::AppendEntry(entry))?)
    }
    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::AppendEntries(entries))?)
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::AppendOnPrefix(from_idx, entries))?)
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::SetPromise(n_prom))?)
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::SetDecidedIndex(ld))?)
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        Ok(self.decided_idx)
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::SetAcceptedRound(na))?)
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        Ok(self.accepted_round)
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<T>> {
        Ok(self.entries(from, to))
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        Ok(self.log_len())
    }
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<T>> {
        Ok(self.suffix(from))
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        Ok(self.promise)
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::SetStopsign(s))?)
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        Ok(self.stopsign.clone())
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::Trim(idx))?)
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::SetCompactedIdx(idx))?)
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        Ok(self.compacted_idx)
    }
    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        Ok(self.apply(&StorageOp::SetSnapshot(snapshot))?)
    }
    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        Ok(self.snapshot.clone())
    }
}
