//! The suite run over OmniPaxos's own `omnipaxos_storage::memory_storage::MemoryStorage`.

use omnipaxos::storage::StorageResult;
use omnipaxos_storage::memory_storage::MemoryStorage as UpstreamMemory;
use paxstore_core::{
    conformance::{self, model_test::ModelConfig, Harness, Suite},
    kv::KeyValue,
};

struct Upstream;

impl Harness for Upstream {
    type Store = UpstreamMemory<KeyValue>;
    fn create(&mut self) -> StorageResult<Self::Store> {
        Ok(UpstreamMemory::default())
    }
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        Ok(store)
    }
    fn is_persistent(&self) -> bool {
        false
    }
}

/// Subtraction overflow in upstream's `get_entries`/`get_suffix`/`trim`/`append_on_prefix`:
/// `from - trimmed_idx` panics whenever an index below the trim point is read, trimmed or
/// synced, and every case that reads around the trim point after a trim hits it.
const PANICS_BELOW_TRIM_POINT: &str = "panicked: attempt to subtract with overflow";
/// Upstream's `append_on_prefix` never checks `from_idx <= next`: past the end with entries it
/// truncates nothing and appends at the wrong absolute index instead of failing, so a batch
/// ending in such an op is applied instead of being rejected as a whole.
const ACCEPTS_PREFIX_PAST_END: &str = "succeeded but the contract rejects it";

/// Every case upstream fails, with the defect that makes it fail.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    (
        "get_entries_below_trim_point_is_empty",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "get_entries_straddling_trim_point_is_empty",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "reads_after_trim_use_absolute_indices",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "get_suffix_below_trim_point_is_empty",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "append_on_prefix_at_first_after_trim",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "append_on_prefix_past_next_with_entries_is_error",
        ACCEPTS_PREFIX_PAST_END,
    ),
    (
        "append_on_prefix_below_first_is_error",
        PANICS_BELOW_TRIM_POINT,
    ),
    ("trim_below_first_is_noop", PANICS_BELOW_TRIM_POINT),
    ("trim_partial_drops_prefix", PANICS_BELOW_TRIM_POINT),
    ("trim_exactly_to_next_empties_log", PANICS_BELOW_TRIM_POINT),
    ("trim_beyond_end_then_append", PANICS_BELOW_TRIM_POINT),
    (
        "trim_beyond_end_then_append_on_prefix",
        PANICS_BELOW_TRIM_POINT,
    ),
    ("trim_repeated", PANICS_BELOW_TRIM_POINT),
    ("trim_on_fresh_store", PANICS_BELOW_TRIM_POINT),
    ("log_len_counts_only_held_entries", PANICS_BELOW_TRIM_POINT),
    ("batch_trim_shape", PANICS_BELOW_TRIM_POINT),
    (
        "batch_snapshot_plus_truncate_shape",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "batch_sync_log_with_snapshot_beyond_end",
        PANICS_BELOW_TRIM_POINT,
    ),
    ("batch_ops_apply_in_order", PANICS_BELOW_TRIM_POINT),
    (
        "batch_failing_last_op_changes_nothing",
        ACCEPTS_PREFIX_PAST_END,
    ),
    (
        "batch_failing_after_compaction_changes_nothing",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "batch_with_unencodable_entry_is_all_or_nothing",
        PANICS_BELOW_TRIM_POINT,
    ),
    ("store_usable_after_rejected_call", ACCEPTS_PREFIX_PAST_END),
    ("large_entries_one_mib", PANICS_BELOW_TRIM_POINT),
    ("large_snapshot", PANICS_BELOW_TRIM_POINT),
    ("long_log_hundred_thousand_entries", PANICS_BELOW_TRIM_POINT),
    ("reopen_preserves_all_state", PANICS_BELOW_TRIM_POINT),
    (
        "appends_after_reopen_land_at_absolute_index",
        PANICS_BELOW_TRIM_POINT,
    ),
    ("reopen_after_trim_beyond_end", PANICS_BELOW_TRIM_POINT),
    ("reopen_after_rejected_batch", ACCEPTS_PREFIX_PAST_END),
    ("repeated_reopen_with_writes", PANICS_BELOW_TRIM_POINT),
    // The second edition's cases: every one that trims hits the same panic first.
    (
        "batch_clears_held_stopsign_and_snapshot",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "append_on_prefix_at_next_without_entries_is_noop",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "append_on_prefix_one_past_next_with_entries_is_error",
        ACCEPTS_PREFIX_PAST_END,
    ),
    (
        "empty_log_position_survives_reopen",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "batch_failing_after_snapshot_changes_nothing",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "batch_with_unencodable_snapshot_is_all_or_nothing",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "reads_at_usize_max_bounds_are_empty",
        PANICS_BELOW_TRIM_POINT,
    ),
    (
        "single_ops_survive_reopen_without_drop",
        PANICS_BELOW_TRIM_POINT,
    ),
    // The random test (its seed fixed below) shrinks to one batch ending in an
    // `AppendOnPrefix` past the end, which upstream applies.
    (conformance::RANDOM_TEST, ACCEPTS_PREFIX_PAST_END),
];

/// The suite catches real bugs in a real backend: exactly these cases fail, each for the
/// reason given. (The overflow panics need debug assertions, which test builds have.) Not
/// persistent, so the crash test does not apply.
#[test]
fn upstream_memory_storage_fails_exactly_the_expected_cases() {
    let report = Suite::new(|| Upstream)
        .model(Some(ModelConfig::new(256).seed(20_260_101)))
        .run();
    assert!(
        report
            .to_string()
            .contains("crash test: not run (the harness does not persist)"),
        "{report}"
    );
    let failed = report.failed();
    let expected: Vec<&str> = EXPECTED_FAILURES.iter().map(|(n, _)| *n).collect();
    assert_eq!(failed, expected, "{report}");
    for (name, reason) in EXPECTED_FAILURES {
        let outcome = report.outcome(name).unwrap();
        let message = outcome.result.as_ref().unwrap_err();
        assert!(
            message.contains(reason),
            "`{name}` failed for another reason than expected ({reason}): {message}"
        );
    }
}

/// A batch that panics half way leaves upstream's store half applied: the promise and the
/// appended entries of the batch stay although the batch never returned.
#[test]
fn upstream_memory_storage_applies_a_panicking_batch_half_way() {
    use omnipaxos::storage::{Storage, StorageOp};
    use paxstore_core::conformance::cases::{ballot, entries};
    let mut store = UpstreamMemory::<KeyValue>::default();
    store.append_entries(entries(0..10)).unwrap();
    store.trim(5).unwrap();
    let batch = vec![
        StorageOp::SetPromise(ballot(4)),
        StorageOp::AppendEntries(entries(10..12)),
        StorageOp::AppendOnPrefix(2, entries(2..3)), // below the trim point: panics upstream
    ];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.write_atomically(batch)
    }));
    assert!(outcome.is_err(), "upstream no longer panics here");
    assert_eq!(store.get_promise().unwrap(), Some(ballot(4)));
    assert_eq!(store.get_log_len().unwrap(), 7);
}
