//! Model-based property test: random OmniPaxos-shaped operation sequences, with reopens,
//! applied to the backend and the reference model; every read is compared after every step.
//!
//! Steps are single-op calls, OmniPaxos's batch shapes, batches of random ops composed
//! freely (which may fail as a whole), and reopens. Entries range from a few bytes to
//! [`ModelConfig::max_entry_bytes`], so that most sequences write more than 256 KiB (a small
//! segment of a segmented backend) and cross segment boundaries.
//!
//! A failure names the seed that replays it (`PAXSTORE_MODEL_SEED`), and with
//! [`ModelConfig::regressions`] proptest persists the failing case's own seed in that file
//! and replays it first on every later run.

use omnipaxos::storage::StorageOp::{self, *};
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};

use super::cases::{distinct_ballot, distinct_stopsign, entry, snapshot_upto};
use super::{Harness, Subject};
use crate::kv::{KVSnapshot, KeyValue};
use crate::model::Model;

/// Environment variable giving the number of random sequences.
pub const CASES_ENV: &str = "PAXSTORE_MODEL_CASES";
/// Environment variable giving the seed (a failure prints the one that replays it).
pub const SEED_ENV: &str = "PAXSTORE_MODEL_SEED";
/// Environment variable giving the largest entry payload in bytes.
pub const ENTRY_BYTES_ENV: &str = "PAXSTORE_MODEL_ENTRY_BYTES";
/// The default largest entry payload.
pub const DEFAULT_ENTRY_BYTES: usize = 32 << 10;

/// The number of random sequences: `PAXSTORE_MODEL_CASES`, or 256.
pub fn cases_from_env() -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The random test's settings.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Random sequences to run.
    pub cases: u32,
    /// The seed; `None` draws a fresh one (printed on failure).
    pub seed: Option<u64>,
    /// The largest entry payload, in bytes.
    pub max_entry_bytes: usize,
    /// A file in which proptest persists failing cases and from which it replays them first.
    pub regressions: Option<&'static str>,
}

impl ModelConfig {
    /// `cases` sequences, a fresh seed, the default entry sizes, nothing persisted.
    pub fn new(cases: u32) -> Self {
        ModelConfig {
            cases,
            seed: None,
            max_entry_bytes: DEFAULT_ENTRY_BYTES,
            regressions: None,
        }
    }

    /// From the environment: [`CASES_ENV`], [`SEED_ENV`], [`ENTRY_BYTES_ENV`].
    pub fn from_env() -> Self {
        let mut config = ModelConfig::new(cases_from_env());
        config.seed = std::env::var(SEED_ENV).ok().and_then(|v| v.parse().ok());
        if let Some(max) = std::env::var(ENTRY_BYTES_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.max_entry_bytes = max;
        }
        config
    }

    /// With this seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// With this many sequences.
    pub fn cases(mut self, cases: u32) -> Self {
        self.cases = cases;
        self
    }

    /// Persisting failures in the file `path` (created with its directories on the first
    /// failure) and replaying them first.
    pub fn regressions(mut self, path: &'static str) -> Self {
        self.regressions = Some(path);
        self
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        format!(
            "{} sequences, entries up to {} bytes, seed {}",
            self.cases,
            self.max_entry_bytes,
            self.seed
                .map_or_else(|| "fresh".to_string(), |s| s.to_string())
        )
    }
}

/// One op inside a random batch ([`Step::Batch`]); indices are mapped onto the bounds the op
/// meets after the ops before it.
#[derive(Debug, Clone)]
pub enum BatchOp {
    /// `AppendEntries` of `count` entries of a size drawn from `size`.
    Append {
        /// How many.
        count: u8,
        /// The size draw.
        size: u16,
    },
    /// `AppendOnPrefix` at a point in `[first - 1, next + 2]` (sometimes invalid).
    AppendOnPrefix {
        /// Where.
        at: u16,
        /// How many entries.
        count: u8,
    },
    /// `Trim` at a point in `[0, next + 10]`.
    Trim {
        /// Where.
        at: u16,
    },
    /// A metadata write (as [`Step::Meta`]).
    Meta {
        /// Which field.
        which: u8,
        /// The value.
        value: u16,
    },
    /// An entry (or, with `snapshot`, a snapshot) the codec refuses.
    Unencodable {
        /// A snapshot rather than an entry.
        snapshot: bool,
    },
}

/// One step of a random sequence. Indices are drawn as raw numbers and mapped onto the
/// current log bounds when the step runs, so that shrinking keeps sequences meaningful.
#[derive(Debug, Clone)]
pub enum Step {
    /// `append_entries` of `count` entries.
    Append {
        /// How many.
        count: u8,
        /// The size draw (see [`payload_len`]).
        size: u16,
    },
    /// `append_entry`.
    AppendOne,
    /// `append_on_prefix` at a point in `[first - 1, next + 2]`.
    AppendOnPrefix {
        /// Where, mapped onto the bounds.
        at: u16,
        /// How many entries.
        count: u8,
        /// The size draw.
        size: u16,
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
    /// A single metadata write: promise, accepted round (ballots differing in every field),
    /// decided or compacted index (raised or lowered), stop-sign or snapshot (set or cleared).
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
    /// A batch of random ops, valid or not: applied whole or refused whole.
    Batch(Vec<BatchOp>),
    /// Close and reopen the store.
    Reopen,
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        3 => (0u8..20, any::<u16>()).prop_map(|(count, size)| BatchOp::Append { count, size }),
        2 => (any::<u16>(), 0u8..8).prop_map(|(at, count)| BatchOp::AppendOnPrefix { at, count }),
        2 => any::<u16>().prop_map(|at| BatchOp::Trim { at }),
        4 => (0u8..6, any::<u16>()).prop_map(|(which, value)| BatchOp::Meta { which, value }),
        1 => any::<bool>().prop_map(|snapshot| BatchOp::Unencodable { snapshot }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..40, any::<u16>()).prop_map(|(count, size)| Step::Append { count, size }),
        1 => Just(Step::AppendOne),
        2 => (any::<u16>(), 0u8..12, any::<u16>())
            .prop_map(|(at, count, size)| Step::AppendOnPrefix { at, count, size }),
        1 => any::<u16>().prop_map(|at| Step::Trim { at }),
        2 => any::<u16>().prop_map(|at| Step::TrimShape { at }),
        2 => any::<u16>().prop_map(|at| Step::SnapshotShape { at }),
        2 => (any::<u16>(), 0u8..12, any::<bool>(), any::<bool>())
            .prop_map(|(at, count, snapshot, stopsign)| Step::SyncLog { at, count, snapshot, stopsign }),
        2 => (0u8..6, any::<u16>()).prop_map(|(which, value)| Step::Meta { which, value }),
        1 => (0u8..8).prop_map(|count| Step::FailingBatch { count }),
        3 => proptest::collection::vec(batch_op(), 1..8).prop_map(Step::Batch),
        2 => Just(Step::Reopen),
    ]
}

/// The strategy of whole sequences (1 to 47 steps).
pub fn sequences() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 1..48)
}

/// The payload length of the entries of a step with size draw `draw`: half the draws a few
/// bytes, a quarter up to 4 KiB, a quarter between `max / 2` and `max` (never above `max`;
/// entries then add up to 36 bytes each so that neighbours differ).
pub fn payload_len(draw: u16, max: usize) -> usize {
    let d = draw as usize;
    let len = match d % 8 {
        0..=3 => d % 48,
        4 | 5 => 256 + d % 4096,
        _ => {
            let half = max / 2;
            half + d % (max - half + 1)
        }
    };
    len.min(max)
}

/// The entry payload bytes a sequence appends (at most; some appends may be refused).
pub fn appended_payload_bytes(steps: &[Step], max: usize) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Append { count, size } => *count as usize * payload_len(*size, max),
            Step::AppendOnPrefix { count, size, .. } => *count as usize * payload_len(*size, max),
            Step::Batch(ops) => ops
                .iter()
                .map(|op| match op {
                    BatchOp::Append { count, size } => *count as usize * payload_len(*size, max),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        })
        .sum()
}

/// Maps a raw draw onto `[lo, hi]`.
fn pick(at: u16, lo: usize, hi: usize) -> usize {
    lo + at as usize % (hi - lo + 1)
}

fn fresh(from: usize, count: usize, salt: u64, len: usize) -> Vec<KeyValue> {
    (from..from + count)
        .map(|i| {
            KeyValue::new(
                format!("key-{}", i % 11),
                salt * 1_000_000 + i as u64,
                len + (i % 5) * 9,
            )
        })
        .collect()
}

fn meta(which: u8, value: u16) -> StorageOp<KeyValue> {
    let v = value as usize;
    match which {
        0 => SetPromise(distinct_ballot(value as u32)),
        1 => SetAcceptedRound(distinct_ballot(value as u32)),
        2 => SetDecidedIndex(v),
        3 => SetCompactedIdx(v),
        4 => SetStopsign((value % 2 == 0).then(|| distinct_stopsign(value as u32 % 40))),
        _ => SetSnapshot((value % 2 == 0).then(|| snapshot_upto(v % 30))),
    }
}

/// The ops of a random batch, each mapped onto the bounds it meets after the ops before it.
fn compose(
    model: &Model<KeyValue>,
    draws: &[BatchOp],
    salt: u64,
    max: usize,
) -> Vec<StorageOp<KeyValue>> {
    let mut staged = model.clone();
    draws
        .iter()
        .map(|draw| {
            let (first, next) = (staged.first, staged.next);
            let op = match *draw {
                BatchOp::Append { count, size } => {
                    AppendEntries(fresh(next, count as usize, salt, payload_len(size, max)))
                }
                BatchOp::AppendOnPrefix { at, count } => {
                    let i = pick(at, first.saturating_sub(1), next + 2);
                    AppendOnPrefix(i, fresh(i, count as usize, salt, 20))
                }
                BatchOp::Trim { at } => Trim(pick(at, 0, next + 10)),
                BatchOp::Meta { which, value } => meta(which, value),
                BatchOp::Unencodable { snapshot: false } => {
                    AppendEntry(KeyValue::unencodable("poison", salt))
                }
                BatchOp::Unencodable { snapshot: true } => {
                    SetSnapshot(Some(KVSnapshot::unencodable("poison", salt)))
                }
            };
            // An invalid op leaves the staged bounds as they were, like the model's batch.
            let _ = staged.apply(&op);
            op
        })
        .collect()
}

fn run_step<H: Harness>(
    s: &mut Subject<H>,
    step: &Step,
    salt: u64,
    max: usize,
) -> super::CaseResult<()> {
    let (first, next) = (s.model().first, s.model().next);
    match step {
        &Step::Append { count, size } => s.op(AppendEntries(fresh(
            next,
            count as usize,
            salt,
            payload_len(size, max),
        ))),
        Step::AppendOne => s.op(AppendEntry(entry(next))),
        &Step::AppendOnPrefix { at, count, size } => {
            let i = pick(at, first.saturating_sub(1), next + 2);
            s.op(AppendOnPrefix(
                i,
                fresh(i, count as usize, salt, payload_len(size, max)),
            ))
        }
        &Step::Trim { at } => s.op(Trim(pick(at, 0, next + 10))),
        &Step::TrimShape { at } => {
            let i = pick(at, first, next);
            s.batch(vec![Trim(i), SetCompactedIdx(i)]).map(drop)
        }
        &Step::SnapshotShape { at } => {
            let i = pick(at, first, next);
            s.batch(vec![
                Trim(i),
                SetCompactedIdx(i),
                SetSnapshot(Some(snapshot_upto(i % 50))),
            ])
            .map(drop)
        }
        &Step::SyncLog {
            at,
            count,
            snapshot,
            stopsign: ss,
        } => {
            let mut ops: Vec<StorageOp<KeyValue>> = vec![
                SetAcceptedRound(distinct_ballot(salt as u32)),
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
            ops.push(AppendOnPrefix(i, fresh(i, count as usize, salt, 30)));
            if ss {
                ops.push(SetStopsign(Some(distinct_stopsign(salt as u32 + 1))));
            }
            s.batch(ops).map(drop)
        }
        &Step::Meta { which, value } => s.op(meta(which, value)),
        &Step::FailingBatch { count } => {
            let accepted = s.batch(vec![
                AppendEntries(fresh(next, count as usize, salt, 12)),
                SetDecidedIndex(next),
                Trim(first + 1),
                AppendOnPrefix(next + count as usize + 5, fresh(0, 1, salt, 12)),
            ])?;
            if accepted {
                return Err(s.fail("a batch ending in AppendOnPrefix past next was accepted"));
            }
            Ok(())
        }
        Step::Batch(draws) => {
            let ops = compose(s.model(), draws, salt, max);
            s.batch(ops).map(drop)
        }
        Step::Reopen => s.reopen(),
    }
}

/// A fresh seed from the clock and the process id.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    splitmix(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng_from(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    let mut x = seed;
    for chunk in bytes.chunks_mut(8) {
        x = splitmix(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs `cases` random sequences, each on a fresh harness from `make`, with the seed from
/// `PAXSTORE_MODEL_SEED` (or a fresh one) and the entry sizes from the environment; nothing is
/// persisted. On failure, returns the (shrunk) sequence, what disagreed, and the seed.
pub fn run<H: Harness>(make: impl Fn() -> H, cases: u32) -> Result<(), String> {
    run_with(make, &ModelConfig::from_env().cases(cases))
}

/// Runs the random test as `config` says. On failure, returns the (shrunk) sequence, what
/// disagreed, and how to replay it.
pub fn run_with<H: Harness>(make: impl Fn() -> H, config: &ModelConfig) -> Result<(), String> {
    let seed = config.seed.unwrap_or_else(fresh_seed);
    let max = config.max_entry_bytes.max(1);
    let proptest_config = Config {
        cases: config.cases,
        failure_persistence: config
            .regressions
            .map(|p| Box::new(FileFailurePersistence::Direct(p)) as _),
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(proptest_config, rng_from(seed));
    runner
        .run(&sequences(), |steps| {
            let mut s = Subject::new(make()).map_err(|f| TestCaseError::fail(f.message))?;
            for (n, step) in steps.iter().enumerate() {
                run_step(&mut s, step, n as u64 + 1, max).map_err(|f| {
                    TestCaseError::fail(format!("step {n} {step:?}: {}", f.message))
                })?;
            }
            s.finish().map_err(|f| TestCaseError::fail(f.message))
        })
        .map_err(|e| {
            format!(
                "model-based test failed; replay it with {SEED_ENV}={seed} {CASES_ENV}={} \
                 {ENTRY_BYTES_ENV}={max}{}: {e}",
                config.cases,
                config
                    .regressions
                    .map_or_else(String::new, |p| format!(" (its case is also saved in {p})"))
            )
        })
}
