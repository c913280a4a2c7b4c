//! Model-based property test: random OmniPaxos-shaped operation sequences, with reopens,
//! applied to the backend and the reference model; every read is compared after every step.

use omnipaxos::storage::StorageOp::{self, *};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::cases::{ballot, entry, snapshot_upto, stopsign};
use super::{Harness, Subject};
use crate::kv::KeyValue;

/// Environment variable giving the number of random sequences.
pub const CASES_ENV: &str = "PAXSTORE_MODEL_CASES";

/// The number of random sequences: `PAXSTORE_MODEL_CASES`, or 256.
pub fn cases_from_env() -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// One step of a random sequence. Indices are drawn as raw numbers and mapped onto the
/// current log bounds when the step runs, so that shrinking keeps sequences meaningful.
#[derive(Debug, Clone)]
pub enum Step {
    /// `append_entries` of `count` entries.
    Append {
        /// How many.
        count: u8,
    },
    /// `append_entry`.
    AppendOne,
    /// `append_on_prefix` at a point in `[first - 1, next + 2]`.
    AppendOnPrefix {
        /// Where, mapped onto the bounds.
        at: u16,
        /// How many entries.
        count: u8,
    },
    /// A bare `trim` at a point in `[0, next + 10]`.
    Trim {
        /// Where.
        at: u16,
    },
    /// OmniPaxos's trim batch.
    TrimShape {
        /// Where.
        at: u16,
    },
    /// OmniPaxos's snapshot-plus-truncate batch.
    SnapshotShape {
        /// Where.
        at: u16,
    },
    /// OmniPaxos's `sync_log` batch, optionally with a snapshot beyond the end and a stop-sign.
    SyncLog {
        /// Where the suffix starts.
        at: u16,
        /// Suffix length.
        count: u8,
        /// Whether a complete snapshot and trim come first (catch-up beyond the end).
        snapshot: bool,
        /// Whether a stop-sign is set.
        stopsign: bool,
    },
    /// A single metadata write.
    Meta {
        /// Which field.
        which: u8,
        /// The value.
        value: u16,
    },
    /// A batch of valid ops that ends in an invalid `AppendOnPrefix`.
    FailingBatch {
        /// How many entries the valid part appends.
        count: u8,
    },
    /// Close and reopen the store.
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..40).prop_map(|count| Step::Append { count }),
        1 => Just(Step::AppendOne),
        2 => (any::<u16>(), 0u8..12).prop_map(|(at, count)| Step::AppendOnPrefix { at, count }),
        1 => any::<u16>().prop_map(|at| Step::Trim { at }),
        2 => any::<u16>().prop_map(|at| Step::TrimShape { at }),
        2 => any::<u16>().prop_map(|at| Step::SnapshotShape { at }),
        2 => (any::<u16>(), 0u8..12, any::<bool>(), any::<bool>())
            .prop_map(|(at, count, snapshot, stopsign)| Step::SyncLog { at, count, snapshot, stopsign }),
        2 => (0u8..6, any::<u16>()).prop_map(|(which, value)| Step::Meta { which, value }),
        1 => (0u8..8).prop_map(|count| Step::FailingBatch { count }),
        2 => Just(Step::Reopen),
    ]
}

/// Maps a raw draw onto `[lo, hi]`.
fn pick(at: u16, lo: usize, hi: usize) -> usize {
    lo + at as usize % (hi - lo + 1)
}

fn fresh(from: usize, count: usize, salt: u64) -> Vec<KeyValue> {
    (from..from + count)
        .map(|i| {
            KeyValue::new(
                format!("key-{}", i % 11),
                salt * 1_000_000 + i as u64,
                (i % 5) * 9,
            )
        })
        .collect()
}

fn run_step<H: Harness>(s: &mut Subject<H>, step: &Step, salt: u64) -> super::CaseResult<()> {
    let (first, next) = (s.model().first, s.model().next);
    match *step {
        Step::Append { count } => s.op(AppendEntries(fresh(next, count as usize, salt))),
        Step::AppendOne => s.op(AppendEntry(entry(next))),
        Step::AppendOnPrefix { at, count } => {
            let i = pick(at, first.saturating_sub(1), next + 2);
            s.op(AppendOnPrefix(i, fresh(i, count as usize, salt)))
        }
        Step::Trim { at } => s.op(Trim(pick(at, 0, next + 10))),
        Step::TrimShape { at } => {
            let i = pick(at, first, next);
            s.batch(vec![Trim(i), SetCompactedIdx(i)]).map(drop)
        }
        Step::SnapshotShape { at } => {
            let i = pick(at, first, next);
            s.batch(vec![
                Trim(i),
                SetCompactedIdx(i),
                SetSnapshot(Some(snapshot_upto(i % 50))),
            ])
            .map(drop)
        }
        Step::SyncLog {
            at,
            count,
            snapshot,
            stopsign: ss,
        } => {
            let mut ops: Vec<StorageOp<KeyValue>> = vec![
                SetAcceptedRound(ballot(salt as u32)),
                SetDecidedIndex(first),
            ];
            let i = if snapshot {
                let i = pick(at, next, next + 30);
                ops.extend([
                    Trim(i),
                    SetCompactedIdx(i),
                    SetSnapshot(Some(snapshot_upto(i % 40))),
                ]);
                i
            } else {
                pick(at, first, next)
            };
            ops.push(AppendOnPrefix(i, fresh(i, count as usize, salt)));
            if ss {
                ops.push(SetStopsign(Some(stopsign(salt as u32 + 1))));
            }
            s.batch(ops).map(drop)
        }
        Step::Meta { which, value } => {
            let v = value as usize;
            s.op(match which {
                0 => SetPromise(ballot(value as u32)),
                1 => SetAcceptedRound(ballot(value as u32)),
                2 => SetDecidedIndex(v),
                3 => SetCompactedIdx(v),
                4 => SetStopsign((value % 2 == 0).then(|| stopsign(value as u32))),
                _ => SetSnapshot((value % 2 == 0).then(|| snapshot_upto(v % 30))),
            })
        }
        Step::FailingBatch { count } => {
            let accepted = s.batch(vec![
                AppendEntries(fresh(next, count as usize, salt)),
                SetDecidedIndex(next),
                Trim(first + 1),
                AppendOnPrefix(next + count as usize + 5, fresh(0, 1, salt)),
            ])?;
            if accepted {
                return Err(s.fail("a batch ending in AppendOnPrefix past next was accepted"));
            }
            Ok(())
        }
        Step::Reopen => s.reopen(),
    }
}

/// Runs `cases` random sequences, each on a fresh harness from `make`. On failure, returns
/// the (shrunk) sequence and what disagreed.
pub fn run<H: Harness>(make: impl Fn() -> H, cases: u32) -> Result<(), String> {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let steps = proptest::collection::vec(step(), 1..48);
    runner
        .run(&steps, |steps| {
            let mut s = Subject::new(make()).map_err(|f| TestCaseError::fail(f.message))?;
            for (n, step) in steps.iter().enumerate() {
                run_step(&mut s, step, n as u64 + 1).map_err(|f| {
                    TestCaseError::fail(format!("step {n} {step:?}: {}", f.message))
                })?;
            }
            s.finish().map_err(|f| TestCaseError::fail(f.message))
        })
        .map_err(|e| format!("model-based test failed: {e}"))
}
