//! The shared conformance suite: every paxstore backend, and any user's backend, runs it.
//!
//! # Running it on your backend
//!
//! Implement [`Harness`] (create a fresh store, reopen it, reopen it as a killed process
//! leaves it, say whether it persists) and invoke [`conformance_tests!`](crate::conformance_tests)
//! in a test file. It expands to a module with one `#[test]` per named case, so `cargo test`
//! names each failing case, plus the model-based random test and, for a persistent backend,
//! the SIGKILL crash test:
//!
//! ```
//! use paxstore_core::conformance::{Harness, MemoryHarness};
//! paxstore_core::conformance_tests!(memory, MemoryHarness);
//! # fn main() {}
//! ```
//!
//! A persistent harness must name an opener for the crash test (`crash = |dir| open(dir)`) or
//! opt out explicitly (`no_crash = "why"`); otherwise its `persistent_harness_has_crash_test`
//! test fails and says how to add one.
//!
//! For one test over everything, [`run_all`] (or [`Suite`], to add the crash test) returns a
//! [`Report`] of every case, the random test and the crash test, saying what ran.
//!
//! What each case checks is in its name and its rustdoc in [`cases`]. Cases drive the store
//! and the reference [`Model`](crate::model::Model) in lock-step and compare every read after
//! every call; every case ends with a reopen and compares again.
//!
//! # Environment variables
//!
//! - `PAXSTORE_MODEL_CASES`: random sequences in the model-based test (default 256).
//! - `PAXSTORE_MODEL_SEED`: the seed of the random test (a failure prints the one to replay it
//!   with; default: a fresh seed each run).
//! - `PAXSTORE_MODEL_ENTRY_BYTES`: the largest entry payload of the random test (default
//!   32768; the default mix writes more than 256 KiB in most sequences).
//! - `PAXSTORE_CRASH_ITERATIONS`: rounds of the crash test (default 20; each round kills two
//!   children).
//! - `PAXSTORE_CRASH_DIR`: where the crash test puts its stores (default: the temporary
//!   directory).
//! - `PAXSTORE_CRASH_LAZYFS_FIFO`, `PAXSTORE_CRASH_LAZYFS_DONE`: the power-loss mode of the
//!   crash test (see [`crash`]): LazyFS's fault FIFO and its completion FIFO; requires
//!   `PAXSTORE_CRASH_DIR` inside the LazyFS mount.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use omnipaxos::storage::{Storage, StorageResult};

pub mod cases;
pub mod crash;
pub mod model_test;
mod subject;

pub use subject::{call_single_op, clone_op, describe, verify_store, Subject};

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

    /// Whether the store survives the process. A persistent harness must come with a crash
    /// test (or an explicit opt-out) and must implement [`reopen_abandoned`](Harness::reopen_abandoned).
    fn is_persistent(&self) -> bool;

    /// Abandons `store` the way a killed process does (its destructor must not run: nothing
    /// flushed, nothing closed) and opens what it left behind, as the same store.
    ///
    /// A persistent harness typically calls [`abandon`] on the store (which leaks it, with its
    /// lock), copies its directory with [`copy_dir`] (what the page cache holds is what
    /// survives a kill) and opens the copy, which later calls then use. Returning
    /// `self.reopen(store)` opts out (the crash test still covers single-op writes across a
    /// kill, in a child process).
    ///
    /// The default hands back `store` for a harness that does not persist, and fails for one
    /// that does, naming this method.
    fn reopen_abandoned(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        if self.is_persistent() {
            return Err("this harness is persistent but does not implement \
                        Harness::reopen_abandoned: abandon the store without dropping it \
                        (paxstore_core::conformance::abandon), copy its directory \
                        (paxstore_core::conformance::copy_dir) and open the copy; or return \
                        `self.reopen(store)` to opt out"
                .into());
        }
        Ok(store)
    }
}

/// Leaks `store` without running its destructor, as a process killed with SIGKILL does: no
/// flush, no close, locks stay held (so reopen a copy of its directory, see [`copy_dir`]).
pub fn abandon<S>(store: S) {
    std::mem::forget(store);
}

/// What a harness's `reopen_abandoned` does for a store in `dir`: leaks the store (no `Drop`,
/// its lock still held) and copies `dir` as it is now into a fresh temporary directory, the
/// files a kill would leave. Open the copy; keep the returned directory alive meanwhile.
pub fn abandon_to_copy<S>(store: S, dir: &Path) -> std::io::Result<tempfile::TempDir> {
    abandon(store);
    let copy = tempfile::tempdir()?;
    copy_dir(dir, copy.path())?;
    Ok(copy)
}

/// Copies the directory tree `from` into `to` (created; regular files and directories only),
/// reading files as they are now: what a killed process leaves on disk.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            match std::fs::copy(entry.path(), &target) {
                Ok(_) => {}
                // A file deleted by the abandoned store's background work: gone after a kill too.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Every entry directly in `dir` by name: a file with its bytes, a directory (or anything
/// else) as its name with a trailing `/` and no bytes. Taken before and after a call, it
/// shows that the call changed nothing in `dir`.
pub fn dir_bytes(dir: &Path) -> std::io::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut entries = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() {
            entries.insert(name, std::fs::read(entry.path())?);
        } else {
            entries.insert(format!("{name}/"), Vec::new());
        }
    }
    Ok(entries)
}

/// The harness of a persistent store that lives in one directory and is opened by
/// `open(dir)`: each case gets a fresh temporary directory; [`reopen`](Harness::reopen) drops
/// the store (releasing its lock) and opens the directory again;
/// [`reopen_abandoned`](Harness::reopen_abandoned) leaks the store with its lock, as a kill
/// does, and opens a copy of its directory as it is now ([`abandon_to_copy`]), which later
/// calls then use.
pub struct DirHarness<S> {
    /// The store's directory is the last one: each abandoned reopen adds a copy.
    dirs: Vec<tempfile::TempDir>,
    open: Opener<'static, S>,
}

impl<S> DirHarness<S> {
    /// A harness over a fresh temporary directory, opening stores with `open`.
    ///
    /// # Panics
    ///
    /// If no temporary directory can be created (a test set-up failure).
    pub fn new(open: impl Fn(&Path) -> StorageResult<S> + 'static) -> Self {
        DirHarness {
            dirs: vec![tempfile::tempdir().expect("a temporary directory")],
            open: Box::new(open),
        }
    }

    fn open_last(&self) -> StorageResult<S> {
        (self.open)(self.dirs.last().expect("a directory").path())
    }
}

impl<S: Storage<KeyValue>> Harness for DirHarness<S> {
    type Store = S;
    fn create(&mut self) -> StorageResult<S> {
        self.open_last()
    }
    fn reopen(&mut self, store: S) -> StorageResult<S> {
        drop(store);
        self.open_last()
    }
    fn reopen_abandoned(&mut self, store: S) -> StorageResult<S> {
        let copy = abandon_to_copy(store, self.dirs.last().expect("a directory").path())?;
        self.dirs.push(copy);
        self.open_last()
    }
    fn is_persistent(&self) -> bool {
        true
    }
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
            ballots_keep_every_field_raised_and_lowered
            stopsign_keeps_every_field
            metadata_lowered_survives_reopen
            batch_clears_held_stopsign_and_snapshot
            append_on_prefix_at_next_without_entries_is_noop
            append_on_prefix_one_past_next_with_entries_is_error
            empty_log_position_survives_reopen
            batch_failing_after_snapshot_changes_nothing
            batch_with_unencodable_snapshot_is_all_or_nothing
            reads_at_usize_max_bounds_are_empty
            single_ops_survive_reopen_without_drop
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
    ({ $module:ident, $harness:expr, [$($crash:tt)*] } $($case:ident)*) => {
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
                let config = $crate::conformance::model_test::ModelConfig::from_env()
                    .regressions(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/proptest-regressions/conformance-",
                        stringify!($module),
                        ".txt"
                    ));
                if let Err(failure) = $crate::conformance::model_test::run_with(|| $harness, &config) {
                    panic!("{}", failure);
                }
            }

            $crate::__paxstore_crash_test!($harness, $($crash)*);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __paxstore_crash_test {
    ($harness:expr, crash = $open:expr) => {
        /// Children killed with SIGKILL mid-write, twice per round (the second after a
        /// recovery and more writes): every acknowledged batch and single-op call survives and
        /// none is half applied.
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
    };
    ($harness:expr, no_crash = $reason:expr) => {
        // The crash test was opted out of: $reason
        const _: &str = $reason;
    };
    ($harness:expr,) => {
        /// A persistent harness must come with a crash test: fails, saying how to add one.
        #[test]
        fn persistent_harness_has_crash_test() {
            if let Err(failure) = $crate::conformance::require_crash_opener(&$harness) {
                panic!("{}", failure);
            }
        }
    };
}

/// Expands to a module `$module` with one `#[test]` per conformance case, plus
/// `model_based_random_sequences`, running on stores from the harness expression `$harness`
/// (evaluated afresh for each test).
///
/// - With `crash = OPEN`, where `OPEN: Fn(&Path) -> StorageResult<Store>` opens (or creates) a
///   store in a directory, it also adds `crash_sigkill_keeps_acknowledged_batches`.
/// - With `no_crash = "why"`, a persistent harness goes without the crash test, on purpose.
/// - With neither, it adds `persistent_harness_has_crash_test`, which fails for a persistent
///   harness and says how to add the crash test.
///
/// The random test persists the seeds of its failures in
/// `proptest-regressions/conformance-$module.txt` under the calling crate and replays them
/// first on every run.
///
/// ```ignore
/// paxstore_core::conformance_tests!(files, FilesHarness::new(), crash = |dir: &std::path::Path| {
///     FilesStorage::<KeyValue>::open_with(dir, Options::default()).map_err(Into::into)
/// });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $harness:expr, crash = $open:expr $(,)?) => {
        $crate::__paxstore_with_cases!(__paxstore_tests { $module, $harness, [crash = $open] });
    };
    ($module:ident, $harness:expr, no_crash = $reason:expr $(,)?) => {
        $crate::__paxstore_with_cases!(__paxstore_tests { $module, $harness, [no_crash = $reason] });
    };
    ($module:ident, $harness:expr $(,)?) => {
        $crate::__paxstore_with_cases!(__paxstore_tests { $module, $harness, [] });
    };
}

/// `Ok` unless `harness` is persistent: then the crash test is missing, and the failure says
/// how to add it (or opt out).
pub fn require_crash_opener<H: Harness>(harness: &H) -> CaseResult {
    if harness.is_persistent() {
        return Err(Failure::new(
            "this harness is persistent but has no crash test: give conformance_tests! an \
             opener, `crash = |dir: &std::path::Path| MyStore::open(dir)` (for run_all, use \
             Suite::new(..).crash(open, child_args)), or opt out explicitly with \
             `no_crash = \"why\"` (Suite::no_crash)",
        ));
    }
    Ok(())
}

/// The name of the random test in a [`Report`] and in the tests of
/// [`conformance_tests!`](crate::conformance_tests).
pub const RANDOM_TEST: &str = "model_based_random_sequences";
/// The name of the crash test in a [`Report`] and in the tests of
/// [`conformance_tests!`](crate::conformance_tests).
pub const CRASH_TEST: &str = "crash_sigkill_keeps_acknowledged_batches";

/// The outcome of one case in a [`Report`].
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// The case's name ([`RANDOM_TEST`] and [`CRASH_TEST`] for those two).
    pub name: &'static str,
    /// `Ok`, or the failure (a panic inside the backend is reported as a failure too).
    pub result: Result<(), String>,
}

/// What a [`Suite`] ran: every outcome, and a line per part saying what ran or why not.
#[derive(Debug, Clone)]
pub struct Report {
    /// One outcome per named case in suite order, then the random test and the crash test if
    /// they ran (or, for the crash test, failed to be set up).
    pub outcomes: Vec<CaseOutcome>,
    /// What ran, one line per part (named cases, random test, crash test), with the reason
    /// when a part did not run.
    pub ran: Vec<String>,
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
        for line in &self.ran {
            writeln!(f, "{line}")?;
        }
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

type Opener<'a, S> = Box<dyn Fn(&Path) -> StorageResult<S> + 'a>;

enum CrashSetup<'a, S> {
    Unset,
    OptOut(String),
    Run {
        open: Opener<'a, S>,
        child_args: Vec<String>,
        config: crash::CrashConfig,
    },
}

/// The whole suite as one call: the named cases, the random test and, for a persistent
/// backend, the crash test; [`run`](Suite::run) returns a [`Report`].
///
/// ```no_run
/// use paxstore_core::conformance::{crash, MemoryHarness, Suite};
/// // (a persistent harness would add `.crash(|dir| MyStore::open(dir), child_args)`)
/// let report = Suite::new(|| MemoryHarness).run();
/// assert!(report.is_success(), "{report}");
/// ```
pub struct Suite<'a, H: Harness> {
    make: Box<dyn Fn() -> H + 'a>,
    model: Option<model_test::ModelConfig>,
    crash: CrashSetup<'a, H::Store>,
}

impl<'a, H: Harness> Suite<'a, H> {
    /// The suite over fresh harnesses from `make`: every named case and the random test (its
    /// settings from the environment, [`model_test::ModelConfig::from_env`]).
    pub fn new(make: impl Fn() -> H + 'a) -> Self {
        Suite {
            make: Box::new(make),
            model: Some(model_test::ModelConfig::from_env()),
            crash: CrashSetup::Unset,
        }
    }

    /// The random test's settings; `None` leaves it out (the report says so).
    pub fn model(mut self, config: Option<model_test::ModelConfig>) -> Self {
        self.model = config;
        self
    }

    /// Adds the crash test: `open` opens (or creates) a store in a directory, in the child
    /// processes and in this one. The children re-execute the current executable with
    /// `child_args` and [`crash::CHILD_ENV`] set; those arguments must make it call
    /// [`Suite::run`] (or [`crash::run`]) again with the same opener, which then acts as the
    /// child. In a libtest test, use [`crash::libtest_args`] with the test's name; in a program
    /// whose `main` runs the suite, an empty vector. Rounds and the power-loss mode come from
    /// the environment ([`crash::CrashConfig::from_env`]).
    pub fn crash(
        mut self,
        open: impl Fn(&Path) -> StorageResult<H::Store> + 'a,
        child_args: Vec<String>,
    ) -> Self {
        let config = crash::CrashConfig::from_env();
        self.crash = CrashSetup::Run {
            open: Box::new(open),
            child_args,
            config,
        };
        self
    }

    /// Sets the number of crash rounds (after [`crash`](Suite::crash)).
    pub fn crash_rounds(mut self, rounds: u32) -> Self {
        if let CrashSetup::Run { config, .. } = &mut self.crash {
            config.rounds = rounds;
        }
        self
    }

    /// Goes without the crash test on purpose, for a persistent harness (`reason` is reported).
    pub fn no_crash(mut self, reason: impl Into<String>) -> Self {
        self.crash = CrashSetup::OptOut(reason.into());
        self
    }

    /// Runs everything and reports each outcome. A panic inside the backend fails that case
    /// and the run goes on. In a crash child (see [`crash`](Suite::crash)) it writes until
    /// killed and exits the process instead.
    pub fn run(self) -> Report {
        if let CrashSetup::Run { open, .. } = &self.crash {
            crash::child_main_if_requested(open);
        }
        let make = &self.make;
        let mut outcomes: Vec<CaseOutcome> = all_cases::<H>()
            .into_iter()
            .map(|case| CaseOutcome {
                name: case.name,
                result: guarded(|| (case.run)(make()).map_err(|f| f.message)),
            })
            .collect();
        let mut ran = vec![format!("named cases: {} run", outcomes.len())];
        match &self.model {
            Some(config) => {
                let mut config = config.clone();
                config.seed = Some(config.seed.unwrap_or_else(model_test::fresh_seed));
                let config = &config;
                ran.push(format!("random test: {}", config.describe()));
                outcomes.push(CaseOutcome {
                    name: RANDOM_TEST,
                    result: guarded(|| model_test::run_with(make, config)),
                });
            }
            None => ran.push("random test: not run (left out by Suite::model(None))".into()),
        }
        let persistent = make().is_persistent();
        match self.crash {
            CrashSetup::Run {
                open,
                child_args,
                config,
            } => {
                let result = guarded(|| crash::run_parent(&child_args, &open, &config));
                ran.push(match &result {
                    Ok(summary) => format!("crash test: {summary}"),
                    Err(_) => format!("crash test: {} (failed)", config.describe()),
                });
                outcomes.push(CaseOutcome {
                    name: CRASH_TEST,
                    result: result.map(drop),
                });
            }
            CrashSetup::OptOut(reason) => {
                ran.push(format!("crash test: not run (opted out: {reason})"))
            }
            CrashSetup::Unset if persistent => {
                ran.push("crash test: missing (the harness is persistent)".into());
                outcomes.push(CaseOutcome {
                    name: CRASH_TEST,
                    result: Err(require_crash_opener(&make())
                        .err()
                        .map_or_else(String::new, |f| f.message)),
                });
            }
            CrashSetup::Unset => {
                ran.push("crash test: not run (the harness does not persist)".into())
            }
        }
        Report { outcomes, ran }
    }
}

/// Runs the named cases and the random test on fresh harnesses from `make`, and reports each
/// outcome: [`Suite::new(make).run()`](Suite). A persistent harness gets a failing crash-test
/// outcome saying how to add it (use [`Suite::crash`]).
pub fn run_all<H: Harness>(make: impl Fn() -> H) -> Report {
    Suite::new(make).run()
}

/// Runs `f`, turning a panic into an `Err`.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => Err(format!("panicked: {}", panic_message(&panic))),
    }
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
