//! Helpers shared by the integration tests of `paxstore-files`.
//!
//! Each test binary uses a different subset of them.
#![allow(dead_code)]

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::{cases, verify_store};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::{CrashPattern, FileSystem, SimFs};
#[cfg(feature = "format")]
use paxstore_files::format::{self, Frame, Loc};
use paxstore_files::{FilesOptions, FilesStorage};

/// Small segments, so that a few hundred entries span several of them.
pub const SEGMENT: u64 = 4096 * 4;

pub type Store = FilesStorage<KeyValue>;

/// The default options with small segments.
pub fn opts() -> FilesOptions {
    FilesOptions::new().segment_size(SEGMENT)
}

/// The default options with small segments over the file system `fs`.
pub fn opts_on(fs: Arc<dyn FileSystem>) -> FilesOptions {
    opts().file_system(fs)
}

/// Opens `dir` with plain options, panicking with the error if it fails.
pub fn open(dir: &Path) -> Store {
    match Store::open_with(dir, opts()) {
        Ok(s) => s,
        Err(e) => panic!("open {} failed: {e}", dir.display()),
    }
}

/// The `paxstore_files::Error` behind a boxed `StorageResult` error.
pub fn files_err<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a paxstore_files::Error> {
    e.downcast_ref::<paxstore_files::Error>()
}

/// Applies `ops` to the store and, if the store accepted them, to the model.
pub fn apply(store: &mut Store, model: &mut Model<KeyValue>, ops: Vec<StorageOp<KeyValue>>) {
    let copy: Vec<_> = ops
        .iter()
        .map(paxstore_core::conformance::clone_op)
        .collect();
    model
        .apply_batch(&copy)
        .expect("the model accepts the batch");
    if let Err(e) = store.write_atomically(ops) {
        panic!("write_atomically failed: {e}");
    }
}

/// Panics unless the store's reads equal the model.
pub fn expect_state(store: &Store, model: &Model<KeyValue>, ctx: &str) {
    if let Err(e) = verify_store(store, model) {
        panic!("{ctx}: {e}");
    }
}

/// Copies the store directory `from` into `to` (created if missing).
pub fn copy_dir(from: &Path, to: &Path) {
    paxstore_core::conformance::copy_dir(from, to).unwrap();
}

/// Every file of `dir` with its bytes: to check that something changed nothing.
pub fn dir_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    paxstore_core::conformance::dir_bytes(dir).unwrap()
}

/// `paxstore_files::verify` of `dir`, checking that it changed nothing in the directory.
pub fn verify_unchanged(
    dir: &Path,
    ctx: &str,
) -> Result<paxstore_core::verify::Summary, paxstore_core::verify::Unreadable> {
    let before = dir_bytes(dir);
    let result = paxstore_files::verify(dir);
    assert!(
        dir_bytes(dir) == before,
        "{ctx}: verify changed the directory"
    );
    result
}

/// The segment files of `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, "seg-", ".log")
}

/// The snapshot files of `dir`, oldest first.
pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, "snap-", ".snap")
}

fn files_with(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    v.sort();
    v
}

/// The newest segment file of `dir`.
pub fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().expect("a segment file")
}

/// Flips bit `bit` of the byte at `offset` of `path`.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 1 << bit;
    fs::write(path, bytes).unwrap();
}

/// Entries `[from, from + n)` with a payload of `payload` bytes, distinguishable from the
/// suite's `entry(i)` by their key.
pub fn big_entries(from: usize, n: usize, payload: usize) -> Vec<KeyValue> {
    (from..from + n)
        .map(|i| KeyValue::new(format!("big-{}", i % 11), i as u64, payload))
        .collect()
}

/// `[AppendEntries(entry(next..next + n)), SetDecidedIndex(next)]`.
pub fn append_batch(model: &Model<KeyValue>, n: usize) -> Vec<StorageOp<KeyValue>> {
    let next = model.next;
    vec![
        StorageOp::AppendEntries(cases::entries(next..next + n)),
        StorageOp::SetDecidedIndex(next),
    ]
}

/// Every read a user can make, each one separately, without panicking; returns how many
/// failed. Reads that succeed must agree with `model` where the model is known, which callers
/// check separately; this only proves that nothing panics.
pub fn read_everything(store: &Store, upto: usize) -> usize {
    let mut failed = 0;
    let mut count = |ok: bool| failed += usize::from(!ok);
    count(store.get_promise().is_ok());
    count(store.get_accepted_round().is_ok());
    count(store.get_decided_idx().is_ok());
    count(store.get_compacted_idx().is_ok());
    count(store.get_stopsign().is_ok());
    count(store.get_snapshot().is_ok());
    count(store.get_log_len().is_ok());
    for i in 0..upto {
        count(store.get_entries(i, i + 1).is_ok());
    }
    count(store.get_entries(0, upto).is_ok());
    count(store.get_suffix(0).is_ok());
    failed
}

/// The header length, trailer and seal positions of a sealed segment.
#[cfg(feature = "format")]
pub struct Sealed {
    pub path: PathBuf,
    pub header_len: u64,
    pub seal_offset: u64,
    pub first: u64,
    pub locs: Vec<Loc>,
    pub len: u64,
}

/// Reads a sealed segment's layout (feature `format`: it decodes the on-disk format).
#[cfg(feature = "format")]
pub fn sealed(path: &Path) -> Sealed {
    let bytes = std::fs::read(path).unwrap();
    let (_, header_len) = format::decode_header(&bytes).unwrap();
    let t = format::decode_trailer(&bytes[bytes.len() - format::TRAILER_LEN..]).unwrap();
    let Frame::Record { body, .. } = format::parse_frame(&bytes[t.seal_offset as usize..]) else {
        panic!("no seal record at {}", t.seal_offset)
    };
    let seal = &bytes[t.seal_offset as usize..];
    let (first, locs) = format::parse_seal(&seal[body]).unwrap();
    assert_eq!(first, t.first);
    Sealed {
        path: path.to_path_buf(),
        header_len: header_len as u64,
        seal_offset: t.seal_offset,
        first,
        locs,
        len: bytes.len() as u64,
    }
}

// ---- the crash driver of `power_loss.rs` (one log) and `store_power_loss.rs` (many logs) ----

/// Steps written after a reopen (and crashed at each of their calls).
pub const AFTER_REOPEN: usize = 2;

/// The steps per crash workload: `PAXSTORE_SIM_STEPS`, default 48.
pub fn sim_steps() -> usize {
    std::env::var("PAXSTORE_SIM_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// The single-op step `k` of a crash workload on a log holding `m`: `set_promise`,
/// `set_decided_idx` (lowered as often as raised), `append_entries`, `trim`,
/// `set_accepted_round`, `append_on_prefix` or `set_stopsign`, by turns.
pub fn single_op(k: usize, m: &Model<KeyValue>) -> StorageOp<KeyValue> {
    let (first, next) = (m.first, m.next);
    let entries = |from: usize, n: usize| -> Vec<KeyValue> {
        (from..from + n)
            .map(|i| KeyValue::new(format!("s-{}", i % 5), (k * 1_000_000 + i) as u64, 700))
            .collect()
    };
    match (k / 4) % 7 {
        0 => StorageOp::SetPromise(cases::ballot(k as u32)),
        // Lowered as often as raised.
        1 => StorageOp::SetDecidedIndex(first + (next - first) / 3),
        2 => StorageOp::AppendEntries(entries(next, 2)),
        3 => StorageOp::Trim(first + (next - first) / 4),
        4 => StorageOp::SetAcceptedRound(cases::ballot(k as u32 + 1)),
        5 => {
            let at = next.saturating_sub(1).max(first);
            StorageOp::AppendOnPrefix(at, entries(at, 2))
        }
        _ if k % 8 == 3 => StorageOp::SetStopsign(None),
        _ => StorageOp::SetStopsign(Some(cases::stopsign(k as u32))),
    }
}

/// A crash workload: its name (which starts every message), its options and its file system.
#[derive(Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub options: fn() -> FilesOptions,
    pub sim: fn() -> SimFs,
}

impl Workload {
    pub fn durable(&self) -> bool {
        (self.options)().sync_policy().is_durable()
    }
}

/// What a store may hold after a crash: states `history[lo..=hi]` of the workload (for a
/// durable workload only `lo`, acknowledged, or `hi`, one step in flight).
#[derive(Clone, Copy, Debug)]
pub struct Allowed {
    pub lo: usize,
    pub hi: usize,
}

/// What [`explore`] needs of a crash test: how to open its store, run its steps and tell
/// which state of its history the store holds.
pub trait CrashDriver {
    /// An open store.
    type Opened;

    fn workload(&self) -> &Workload;
    /// The last state of the history a run may reach.
    fn last(&self) -> usize;
    /// Opens the store on `fs` to run steps on it (`fs` may be frozen).
    fn open(&self, fs: &SimFs) -> Result<Self::Opened, String>;
    /// Opens the store on the file system `fs` left by a power loss; the error says why it
    /// cannot be opened.
    fn open_after_loss(&self, fs: &SimFs) -> Result<Self::Opened, String> {
        self.open(fs)
            .map_err(|e| format!("strict open failed: {e}"))
    }
    /// Which allowed state the store holds.
    fn which(&self, opened: &Self::Opened, allowed: Allowed) -> Result<usize, String>;
    /// Runs step `k` (from state `k`) on the store.
    fn step(&self, opened: &mut Self::Opened, k: usize) -> Result<(), String>;
    /// The oldest state the store may hold once steps up to `acked` were acknowledged after
    /// an open that returned state `start`.
    fn oldest(&self, acked: usize, _start: usize) -> usize {
        acked
    }
    /// Checks the store left by the clean run.
    fn clean_run_done(&self, _opened: Self::Opened) {}
}

/// Runs the clean run of `n` steps, then crashes it at every file-system call `c` and checks
/// four power-loss patterns, a kill and a power loss, each followed by [`after_restart`]
/// crashes. Prints a summary and returns the crash states checked.
pub fn explore<D: CrashDriver>(d: &D, n: usize) -> usize {
    let w = *d.workload();
    let mut x = Crashes { d, states: 0 };
    let start = Allowed { lo: 0, hi: 0 };
    let clean = (w.sim)();
    let (done, opened) = x.drive_open(&clean, start, n, "clean run");
    assert_eq!(done.hi, n, "{}: the clean run", w.name);
    d.clean_run_done(opened.expect("the clean run's store"));
    let total = clean.mutations();
    for c in 0..total {
        let fs = (w.sim)();
        fs.crash_at(c);
        let label = format!("crash at call {c} of {total}");
        let allowed = x.drive(&fs, start, n, &label);
        assert!(
            fs.frozen(),
            "{}: {label}: the run is not deterministic",
            w.name
        );
        let patterns = [
            CrashPattern::DropAll,
            CrashPattern::KeepAll,
            CrashPattern::Random(c * 2 + 1),
            CrashPattern::Random(c * 2 + 2),
        ];
        for pattern in patterns {
            x.check(&fs, pattern, allowed, &format!("{label}, power loss"));
        }
        x.after_restart(&fs.kill(), allowed, &format!("{label}, kill"));
        let pattern = CrashPattern::Random(c + 1000);
        let lost = fs.power_loss(pattern);
        // After a power loss the store holds one state of `allowed` (checked above); which
        // one is found again by the reopen.
        x.after_restart(&lost, allowed, &format!("{label}, {pattern:?}"));
    }
    eprintln!(
        "{}: {n} steps, {total} file-system calls, {} crash states checked, 0 violations",
        w.name, x.states
    );
    x.states
}

/// A [`CrashDriver`] with the crash states checked so far.
struct Crashes<'a, D> {
    d: &'a D,
    states: usize,
}

impl<D: CrashDriver> Crashes<'_, D> {
    fn name(&self) -> &'static str {
        self.d.workload().name
    }

    /// Opens the file system left by a power loss and checks what it holds.
    fn check(&mut self, crashed: &SimFs, pattern: CrashPattern, allowed: Allowed, label: &str) {
        self.states += 1;
        let fs = &crashed.power_loss(pattern);
        let fail = |why: String| -> ! {
            panic!(
                "{} {label}, {pattern:?}: {why}\nlast calls before the crash:\n  {}\ncalls of the open after it:\n  {}",
                self.name(),
                crashed.trace().join("\n  "),
                fs.trace().join("\n  ")
            )
        };
        let opened = match self.d.open_after_loss(fs) {
            Ok(o) => o,
            Err(why) => fail(why),
        };
        if let Err(why) = self.d.which(&opened, allowed) {
            fail(why);
        }
    }

    /// Opens a store on `fs` holding one of `allowed` and runs steps up to `to`. Returns
    /// what the store may hold if the file system is now frozen (or has lost power).
    fn drive(&self, fs: &SimFs, allowed: Allowed, to: usize, label: &str) -> Allowed {
        self.drive_open(fs, allowed, to, label).0
    }

    /// [`drive`](Self::drive), also returning the store if every step went through.
    fn drive_open(
        &self,
        fs: &SimFs,
        allowed: Allowed,
        to: usize,
        label: &str,
    ) -> (Allowed, Option<D::Opened>) {
        let mut opened = match self.d.open(fs) {
            Ok(o) => o,
            Err(_) if fs.frozen() => return (allowed, None),
            Err(e) => panic!("{} {label}: open failed without a crash: {e}", self.name()),
        };
        // What open returned is the floor from now on: it has been acted on.
        let start = self
            .d
            .which(&opened, allowed)
            .unwrap_or_else(|e| panic!("{} {label}: the reopened store {e}", self.name()));
        for k in start..to {
            if let Err(e) = self.d.step(&mut opened, k) {
                assert!(
                    fs.frozen(),
                    "{} {label}: step {k} failed without a crash: {e}\n  {}",
                    self.name(),
                    fs.trace().join("\n  ")
                );
                let lo = self.d.oldest(k, start);
                return (Allowed { lo, hi: k + 1 }, None);
            }
        }
        let lo = self.d.oldest(to, start);
        (Allowed { lo, hi: to }, Some(opened))
    }

    /// From `base` (a file system after a kill or a power loss, holding one of `allowed`):
    /// a reopen and [`AFTER_REOPEN`] more steps, crashed at each of their calls and at the
    /// end, each followed by a power loss.
    fn after_restart(&mut self, base: &SimFs, allowed: Allowed, label: &str) {
        let probe = base.fork();
        let to = (allowed.hi + AFTER_REOPEN).min(self.d.last());
        self.drive(&probe, allowed, to, label);
        let calls = probe.mutations();
        for j in 0..=calls {
            let fs = base.fork();
            if j < calls {
                fs.crash_at(j);
            }
            let now = self.drive(&fs, allowed, to, label);
            let label = format!("{label}, reopen crashed at call {j}");
            for pattern in [CrashPattern::DropAll, CrashPattern::Random(j + 7)] {
                self.check(&fs, pattern, now, &label);
            }
        }
    }
}
