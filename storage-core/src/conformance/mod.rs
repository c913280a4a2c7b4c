//! The shared conformance suite: every paxstore backend, and any user's backend, runs it.
//!
//! # Running it on your backend
//!
//! Implement [`Harness`] (create a fresh store, reopen it, say whether it persists) and invoke
//! [`conformance_tests!`](crate::conformance_tests) in a test file. It expands to a module with
//! one `#[test]` per case, so `cargo test` names each failing case, plus a model-based random
//! test and, for persistent backends that name an opener, a SIGKILL crash test:
//!
//! ```
//! use storage_core::conformance::{Harness, MemoryHarness};
//! storage_core::conformance_tests!(memory, MemoryHarness);
//! # fn main() {}
//! ```
//!
//! For one test over everything, [`run_all`] returns a [`Report`].
//!
//! What each case checks is in its name and its rustdoc in [`cases`]. Cases drive the store
//! and the reference [`Model`](crate::model::Model) in lock-step and compare every read after
//! every call; every case ends with a reopen and compares again.
//!
//! # Environment variables
//!
//! - `PAXSTORE_MODEL_CASES`: random sequences in the model-based test (default 256).
//! - `PAXSTORE_CRASH_ITERATIONS`: SIGKILL iterations in the crash test (default 20).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use omnipaxos::storage::{Storage, StorageResult};

pub mod cases;
pub mod crash;
pub mod model_test;
mod subject;

pub use subject::{clone_op, describe, verify_store, Subject};

use crate::{kv::KeyValue, MemoryStorage};

/// How the suite gets stores of the backend under test.
///
/// A harness value serves one case: [`create`](Harness::create) is called once, then
/// [`reopen`](Harness::reopen) any number of times. A persistent backend typically keeps a
/// temporary directory in the harness.
pub trait Harness {
    /// The backend under test, storing the suite's [`KeyValue`] entries.
    type Store: Storage<KeyValue>;

    /// A fresh, empty store.
    fn create(&mut self) -> StorageResult<Self::Store>;

    /// Closes `store` (drops it, releasing locks) and opens the same store again. A backend
    /// that does not persist returns the store it was given.
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store>;

    /// Whether the store survives the process (the crash test applies only then).
    fn is_persistent(&self) -> bool;
}

/// The harness for [`MemoryStorage`]: not persistent, so a reopen keeps the same store.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryHarness;

impl Harness for MemoryHarness {
    type Store = MemoryStorage<KeyValue>;
    fn create(&mut self) -> StorageResult<Self::Store> {
        Ok(MemoryStorage::new())
    }
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        Ok(store)
    }
    fn is_persistent(&self) -> bool {
        false
    }
}

/// Why a case failed: what was read, what the contract requires, and the recent calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The explanation.
    pub message: String,
}

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The result of one case.
pub type CaseResult<T = ()> = Result<T, Failure>;

/// One named case, runnable on harnesses of type `H`.
pub struct Case<H: Harness> {
    /// The case's name (also its function name in [`cases`] and its test name).
    pub name: &'static str,
    /// The case.
    pub run: fn(H) -> CaseResult,
}

/// Calls `$callback! { { $args } case_a case_b ... }` with every case name; the single list
/// of cases, shared by [`conformance_tests!`](crate::conformance_tests) and [`all_cases`].
#[doc(hidden)]
#[macro_export]
macro_rules! __paxstore_with_cases {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! { { $($args)* }
            fresh_store_is_empty
            promise_set_and_overwritten
            accepted_round_set_and_overwritten
            decided_idx_set_and_overwritten
            compacted_idx_set_and_overwritten
            stopsign_set_overwritten_and_cleared
            snapshot_set_overwritten_and_cleared
            metadata_batch_last_write_wins
            append_entry_lands_at_next
            append_entries_lands_at_next
            append_empty_vec_is_noop
            get_entries_whole_log
            get_entries_is_half_open
            get_entries_empty_range_is_empty
            get_entries_past_end_is_empty
            get_entries_below_trim_point_is_empty
            get_entries_straddling_trim_point_is_empty
            reads_after_trim_use_absolute_indices
            get_suffix_from_each_position
            get_suffix_past_end_is_empty
            get_suffix_below_trim_point_is_empty
            append_on_prefix_shrinks
            append_on_prefix_extends
            append_on_prefix_at_next_appends
            append_on_prefix_with_no_entries_truncates
            append_on_prefix_at_first_after_trim
            append_on_prefix_past_next_without_entries_is_noop
            append_on_prefix_past_next_with_entries_is_error
            append_on_prefix_below_first_is_error
            trim_below_first_is_noop
            trim_partial_drops_prefix
            trim_exactly_to_next_empties_log
            trim_beyond_end_then_append
            trim_beyond_end_then_append_on_prefix
            trim_repeated
            trim_on_fresh_store
            log_len_counts_only_held_entries
            batch_trim_shape
            batch_snapshot_plus_truncate_shape
            batch_sync_log_with_snapshot_beyond_end
            batch_sync_log_replaces_suffix
            batch_sync_log_with_stopsign_past_end
            batch_ops_apply_in_order
            batch_failing_last_op_changes_nothing
            batch_failing_after_compaction_changes_nothing
            batch_with_unencodable_entry_is_all_or_nothing
            empty_batch_is_noop
            store_usable_after_rejected_call
            large_entries_one_mib
            large_snapshot
            long_log_hundred_thousand_entries
            reopen_fresh_store
            reopen_preserves_all_state
            appends_after_reopen_land_at_absolute_index
            reopen_after_trim_beyond_end
            reopen_after_append_on_prefix
            reopen_after_rejected_batch
            repeated_reopen_with_writes
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __paxstore_case_table {
    ({} $($case:ident)*) => {
        /// Every case, in order.
        pub fn all_cases<H: Harness>() -> Vec<Case<H>> {
            vec![$(Case { name: stringify!($case), run: cases::$case::<H> }),*]
        }
    };
}

__paxstore_with_cases!(__paxstore_case_table {});

#[doc(hidden)]
#[macro_export]
macro_rules! __paxstore_tests {
    ({ $module:ident, $harness:expr $(, crash = $open:expr)? } $($case:ident)*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    if let Err(failure) = $crate::conformance::cases::$case($harness) {
                        panic!("{}", failure);
                    }
                }
            )*

            /// Random OmniPaxos-shaped sequences (with reopens) against the reference model.
            #[test]
            fn model_based_random_sequences() {
                let cases = $crate::conformance::model_test::cases_from_env();
                if let Err(failure) = $crate::conformance::model_test::run(|| $harness, cases) {
                    panic!("{}", failure);
                }
            }

            $(
                /// Children killed with SIGKILL mid-write: every acknowledged batch survives
                /// and none is half applied.
                #[test]
                fn crash_sigkill_keeps_acknowledged_batches() {
                    let full = concat!(module_path!(), "::crash_sigkill_keeps_acknowledged_batches");
                    // libtest names tests without the crate name
                    let name = full.split_once("::").map_or(full, |(_, rest)| rest);
                    let iterations = $crate::conformance::crash::iterations_from_env();
                    if let Err(failure) = $crate::conformance::crash::run(name, $open, iterations) {
                        panic!("{}", failure);
                    }
                }
            )?
        }
    };
}

/// Expands to a module `$module` with one `#[test]` per conformance case, plus
/// `model_based_random_sequences`, running on stores from the harness expression `$harness`
/// (evaluated afresh for each test).
///
/// With `crash = OPEN`, where `OPEN: Fn(&Path) -> StorageResult<Store>` opens (or creates) a
/// store in a directory, it also adds `crash_sigkill_keeps_acknowledged_batches`.
///
/// ```ignore
/// storage_core::conformance_tests!(files, FilesHarness::new(), crash = |dir: &std::path::Path| {
///     FilesStorage::<KeyValue>::open(dir, Options::default()).map_err(Into::into)
/// });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $harness:expr $(, crash = $open:expr)? $(,)?) => {
        $crate::__paxstore_with_cases!(__paxstore_tests { $module, $harness $(, crash = $open)? });
    };
}

/// The outcome of one case in a [`Report`].
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: &'static str,
    /// `Ok`, or the failure (a panic inside the backend is reported as a failure too).
    pub result: Result<(), String>,
}

/// The outcome of every case, from [`run_all`].
#[derive(Debug, Clone)]
pub struct Report {
    /// One outcome per case, in suite order.
    pub outcomes: Vec<CaseOutcome>,
}

impl Report {
    /// The names of the failed cases.
    pub fn failed(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| o.result.is_err())
            .map(|o| o.name)
            .collect()
    }

    /// Whether every case passed.
    pub fn is_success(&self) -> bool {
        self.outcomes.iter().all(|o| o.result.is_ok())
    }

    /// The outcome of the case named `name`.
    pub fn outcome(&self, name: &str) -> Option<&CaseOutcome> {
        self.outcomes.iter().find(|o| o.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failed();
        writeln!(
            f,
            "{} passed, {} failed",
            self.outcomes.len() - failed.len(),
            failed.len()
        )?;
        for o in &self.outcomes {
            if let Err(e) = &o.result {
                writeln!(f, "FAILED {}: {}", o.name, e)?;
            }
        }
        Ok(())
    }
}

/// Runs every case on a fresh harness from `make` and reports each outcome. A panic inside
/// the backend fails that case and the run goes on.
pub fn run_all<H: Harness>(make: impl Fn() -> H) -> Report {
    let outcomes = all_cases::<H>()
        .into_iter()
        .map(|case| {
            let result = match catch_unwind(AssertUnwindSafe(|| (case.run)(make()))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(f)) => Err(f.message),
                Err(panic) => Err(format!("panicked: {}", panic_message(&panic))),
            };
            CaseOutcome {
                name: case.name,
                result,
            }
        })
        .collect();
    Report { outcomes }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}
