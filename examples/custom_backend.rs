//! Running the paxstore conformance suite against your own `Storage` implementation.
//!
//! `VecStore` below stands for "your backend": a log in a `Vec` with an offset, made atomic by
//! staging a copy of the state and swapping it in. The suite needs only a [`Harness`] that
//! creates (and reopens) stores of it. In a test file you would write
//! `paxstore_core::conformance_tests!(vec_store, VecHarness);` to get one `#[test]` per case;
//! this example calls [`conformance::run_all`] instead and prints the report: every named
//! case, the random test, and what did not run (the crash test: `VecStore` does not persist).
//!
//! A persistent backend also implements `Harness::reopen_abandoned` and adds the crash test:
//! `Suite::new(make).crash(|dir| MyStore::open(dir), vec![]).run()` in `main` (the crash
//! test re-runs this program as its children, which the same call turns into writers).
//!
//! Run with `cargo run --example custom_backend` (about 15 seconds).

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Entry, StopSign, Storage, StorageOp, StorageResult},
};
use paxstore_core::{
    conformance::{self, Harness},
    kv::KeyValue,
};

/// "Your" backend: a log in a `Vec`, entry `i` at `log[i - offset]`.
#[derive(Clone)]
struct VecStore<T: Entry> {
    log: Vec<T>,
    offset: usize,
    promise: Option<Ballot>,
    accepted: Option<Ballot>,
    decided: usize,
    compacted: usize,
    stopsign: Option<StopSign>,
    snapshot: Option<T::Snapshot>,
}

impl<T: Entry> VecStore<T> {
    fn new() -> Self {
        VecStore {
            log: Vec::new(),
            offset: 0,
            promise: None,
            accepted: None,
            decided: 0,
            compacted: 0,
            stopsign: None,
            snapshot: None,
        }
    }

    fn next(&self) -> usize {
        self.offset + self.log.len()
    }

    fn range(&self, from: usize, to: usize) -> Vec<T> {
        if self.offset <= from && from < to && to <= self.next() {
            self.log[from - self.offset..to - self.offset].to_vec()
        } else {
            Vec::new()
        }
    }

    fn apply(&mut self, op: StorageOp<T>) -> StorageResult<()> {
        match op {
            StorageOp::AppendEntry(e) => self.log.push(e),
            StorageOp::AppendEntries(mut v) => self.log.append(&mut v),
            StorageOp::AppendOnPrefix(i, mut v) => {
                if i < self.offset || (i > self.next() && !v.is_empty()) {
                    return Err(format!(
                        "append_on_prefix({i}) outside [{}, {}]",
                        self.offset,
                        self.next()
                    )
                    .into());
                }
                if i <= self.next() {
                    self.log.truncate(i - self.offset);
                    self.log.append(&mut v);
                }
            }
            StorageOp::Trim(i) if i > self.next() => {
                self.log.clear();
                self.offset = i;
            }
            StorageOp::Trim(i) if i > self.offset => {
                self.log.drain(..i - self.offset);
                self.offset = i;
            }
            StorageOp::Trim(_) => {}
            StorageOp::SetPromise(b) => self.promise = Some(b),
            StorageOp::SetAcceptedRound(b) => self.accepted = Some(b),
            StorageOp::SetDecidedIndex(i) => self.decided = i,
            StorageOp::SetCompactedIdx(i) => self.compacted = i,
            StorageOp::SetStopsign(s) => self.stopsign = s,
            StorageOp::SetSnapshot(s) => self.snapshot = s,
        }
        Ok(())
    }
}

impl<T: Entry> Storage<T> for VecStore<T> {
    fn write_atomically(&mut self, ops: Vec<StorageOp<T>>) -> StorageResult<()> {
        let mut staged = self.clone();
        for op in ops {
            staged.apply(op)?;
        }
        *self = staged;
        Ok(())
    }
    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        self.apply(StorageOp::AppendEntry(entry))
    }
    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        self.apply(StorageOp::AppendEntries(entries))
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        self.apply(StorageOp::AppendOnPrefix(from_idx, entries))
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.apply(StorageOp::SetPromise(n_prom))
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.apply(StorageOp::SetDecidedIndex(ld))
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        Ok(self.decided)
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.apply(StorageOp::SetAcceptedRound(na))
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        Ok(self.accepted)
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<T>> {
        Ok(self.range(from, to))
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        Ok(self.log.len())
    }
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<T>> {
        Ok(self.range(from, self.next()))
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        Ok(self.promise)
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        self.apply(StorageOp::SetStopsign(s))
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        Ok(self.stopsign.clone())
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        self.apply(StorageOp::Trim(idx))
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.apply(StorageOp::SetCompactedIdx(idx))
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        Ok(self.compacted)
    }
    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        self.apply(StorageOp::SetSnapshot(snapshot))
    }
    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        Ok(self.snapshot.clone())
    }
}

/// How the suite gets `VecStore`s. An in-memory store does not persist, so a reopen hands
/// back the same store; a persistent backend would drop it and open its directory again.
struct VecHarness;

impl Harness for VecHarness {
    type Store = VecStore<KeyValue>;
    fn create(&mut self) -> StorageResult<Self::Store> {
        Ok(VecStore::new())
    }
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        Ok(store)
    }
    fn is_persistent(&self) -> bool {
        false
    }
}

fn main() {
    let report = conformance::run_all(|| VecHarness);
    print!("{report}");
    if !report.is_success() {
        std::process::exit(1);
    }
}
