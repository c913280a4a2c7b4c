//! The suite tests itself: the reference model and `MemoryStorage` pass every case, and
//! wrappers over `MemoryStorage` with planted bugs are each caught by named cases.

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{StopSign, Storage, StorageOp, StorageResult},
};
use storage_core::{
    conformance::{self, Harness, MemoryHarness},
    kv::{KVSnapshot, KeyValue},
    model::Model,
    MemoryStorage,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bug {
    /// `write_atomically` applies op by op and stops at the first error.
    NonAtomicBatch,
    /// `trim(i)` keeps entry `i - 1`.
    OffByOneTrim,
    /// After a trim, `get_entries` treats indices as relative to the trim point.
    ShiftedReadsAfterTrim,
    /// `get_log_len` counts trimmed entries.
    LenCountsTrimmed,
    /// Reopen keeps the log but forgets promise, rounds, indices, stop-sign and snapshot.
    MetadataLostOnReopen,
}

struct Planted {
    inner: MemoryStorage<KeyValue>,
    bug: Bug,
}

impl Storage<KeyValue> for Planted {
    fn write_atomically(&mut self, ops: Vec<StorageOp<KeyValue>>) -> StorageResult<()> {
        if self.bug == Bug::NonAtomicBatch {
            for op in ops {
                self.apply(op)?;
            }
            return Ok(());
        }
        // Route through our own methods so that the other bugs show in batches too, and roll
        // back on error.
        let before = self.inner.clone();
        for op in ops {
            if let Err(e) = self.apply(op) {
                self.inner = before;
                return Err(e);
            }
        }
        Ok(())
    }
    fn append_entry(&mut self, entry: KeyValue) -> StorageResult<()> {
        self.inner.append_entry(entry)
    }
    fn append_entries(&mut self, entries: Vec<KeyValue>) -> StorageResult<()> {
        self.inner.append_entries(entries)
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<KeyValue>) -> StorageResult<()> {
        self.inner.append_on_prefix(from_idx, entries)
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.inner.set_promise(n_prom)
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.inner.set_decided_idx(ld)
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        self.inner.get_decided_idx()
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.inner.set_accepted_round(na)
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        self.inner.get_accepted_round()
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<KeyValue>> {
        let first = self.inner.bounds().first;
        if self.bug == Bug::ShiftedReadsAfterTrim && first > 0 {
            return self.inner.get_entries(from + first, to + first);
        }
        self.inner.get_entries(from, to)
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        let len = self.inner.get_log_len()?;
        if self.bug == Bug::LenCountsTrimmed {
            return Ok(len + self.inner.bounds().first);
        }
        Ok(len)
    }
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<KeyValue>> {
        self.inner.get_suffix(from)
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        self.inner.get_promise()
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        self.inner.set_stopsign(s)
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        self.inner.get_stopsign()
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        if self.bug == Bug::OffByOneTrim && idx > self.inner.bounds().first {
            return self.inner.trim(idx - 1);
        }
        self.inner.trim(idx)
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.inner.set_compacted_idx(idx)
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        self.inner.get_compacted_idx()
    }
    fn set_snapshot(&mut self, snapshot: Option<KVSnapshot>) -> StorageResult<()> {
        self.inner.set_snapshot(snapshot)
    }
    fn get_snapshot(&self) -> StorageResult<Option<KVSnapshot>> {
        self.inner.get_snapshot()
    }
}

impl Planted {
    fn apply(&mut self, op: StorageOp<KeyValue>) -> StorageResult<()> {
        match op {
            StorageOp::AppendEntry(e) => self.append_entry(e),
            StorageOp::AppendEntries(v) => self.append_entries(v),
            StorageOp::AppendOnPrefix(i, v) => self.append_on_prefix(i, v),
            StorageOp::SetPromise(b) => self.set_promise(b),
            StorageOp::SetDecidedIndex(i) => self.set_decided_idx(i),
            StorageOp::SetAcceptedRound(b) => self.set_accepted_round(b),
            StorageOp::SetCompactedIdx(i) => self.set_compacted_idx(i),
            StorageOp::Trim(i) => self.trim(i),
            StorageOp::SetStopsign(s) => self.set_stopsign(s),
            StorageOp::SetSnapshot(s) => self.set_snapshot(s),
        }
    }
}

struct PlantedHarness(Bug);

impl Harness for PlantedHarness {
    type Store = Planted;
    fn create(&mut self) -> StorageResult<Planted> {
        Ok(Planted {
            inner: MemoryStorage::new(),
            bug: self.0,
        })
    }
    fn reopen(&mut self, store: Planted) -> StorageResult<Planted> {
        if self.0 != Bug::MetadataLostOnReopen {
            return Ok(store);
        }
        // Keep the log, lose everything else.
        let b = store.inner.bounds();
        let mut inner = MemoryStorage::new();
        inner.trim(b.first)?;
        inner.append_entries(store.inner.get_entries(b.first, b.next)?)?;
        Ok(Planted { inner, bug: self.0 })
    }
    fn is_persistent(&self) -> bool {
        true
    }
}

fn assert_caught(bug: Bug, must_fail: &[&str]) {
    let report = conformance::run_all(|| PlantedHarness(bug));
    let failed = report.failed();
    for name in must_fail {
        assert!(
            failed.contains(name),
            "planted bug {bug:?} was not caught by `{name}`; failed cases: {failed:?}"
        );
    }
}

#[test]
fn suite_has_at_least_forty_named_cases() {
    let cases = conformance::all_cases::<MemoryHarness>();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
}

#[test]
fn reference_model_passes_every_case() {
    struct ModelHarness;
    impl Harness for ModelHarness {
        type Store = Model<KeyValue>;
        fn create(&mut self) -> StorageResult<Self::Store> {
            Ok(Model::new())
        }
        fn reopen(&mut self, s: Self::Store) -> StorageResult<Self::Store> {
            Ok(s)
        }
        fn is_persistent(&self) -> bool {
            false
        }
    }
    let report = conformance::run_all(|| ModelHarness);
    assert!(report.is_success(), "{report}");
}

#[test]
fn memory_storage_passes_every_case() {
    let report = conformance::run_all(|| MemoryHarness);
    assert!(report.is_success(), "{report}");
}

#[test]
fn catches_non_atomic_batch() {
    assert_caught(
        Bug::NonAtomicBatch,
        &[
            "batch_failing_last_op_changes_nothing",
            "batch_failing_after_compaction_changes_nothing",
            "reopen_after_rejected_batch",
        ],
    );
}

#[test]
fn catches_off_by_one_trim() {
    assert_caught(
        Bug::OffByOneTrim,
        &[
            "trim_partial_drops_prefix",
            "log_len_counts_only_held_entries",
            "batch_trim_shape",
        ],
    );
}

#[test]
fn catches_shifted_reads_after_trim() {
    assert_caught(
        Bug::ShiftedReadsAfterTrim,
        &[
            "reads_after_trim_use_absolute_indices",
            "get_entries_below_trim_point_is_empty",
        ],
    );
}

#[test]
fn catches_log_len_counting_trimmed_entries() {
    assert_caught(
        Bug::LenCountsTrimmed,
        &[
            "log_len_counts_only_held_entries",
            "trim_partial_drops_prefix",
        ],
    );
}

#[test]
fn catches_metadata_lost_on_reopen() {
    assert_caught(
        Bug::MetadataLostOnReopen,
        &["reopen_preserves_all_state", "promise_set_and_overwritten"],
    );
}

#[test]
fn model_based_test_catches_non_atomic_batch() {
    let result = conformance::model_test::run(|| PlantedHarness(Bug::NonAtomicBatch), 500);
    assert!(
        result.is_err(),
        "the random sequences missed a non-atomic batch"
    );
}

#[test]
fn model_based_test_passes_on_memory_storage() {
    let cases = conformance::model_test::cases_from_env();
    conformance::model_test::run(|| MemoryHarness, cases).unwrap();
}
