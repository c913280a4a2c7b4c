//! The conformance suite's harnesses for this backend (feature `testing`): what
//! `tests/conformance.rs` and `tests/store_conformance.rs` of this crate run, and what a
//! wrapper of this backend can reuse.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use omnipaxos::storage::{Storage, StorageResult};
use paxstore_core::{
    conformance::{abandon_to_copy, DirHarness, Harness},
    kv::KeyValue,
};

use crate::{FilesLog, FilesOptions, FilesStorage, FilesStore};

/// Small segments, so that the suite's logs rotate and trims delete whole segments.
pub fn options() -> FilesOptions {
    FilesOptions::new().segment_size(256 << 10)
}

/// Opens the store in `dir` with [`options`]: the crash test's opener.
pub fn open(dir: &Path) -> StorageResult<FilesStorage<KeyValue>> {
    Ok(FilesStorage::open_with(dir, options())?)
}

/// The suite's harness for this backend: stores opened with [`open`] in a fresh temporary
/// directory ([`DirHarness`]).
pub fn harness() -> DirHarness<FilesStorage<KeyValue>> {
    DirHarness::new(open)
}

/// The log the suite drives in a many-logs store.
pub const SUITE_LOG: &str = "suite";

/// Opens log [`SUITE_LOG`] of the many-logs store in `dir` with [`options`]: the crash
/// test's opener for [`FilesStore`].
pub fn open_store_log(dir: &Path) -> StorageResult<FilesLog<KeyValue>> {
    Ok(FilesStore::open_with(dir, options())?.log(SUITE_LOG)?)
}

/// Three other logs of the same store written by a thread while the suite runs: appends,
/// trims, metadata, so that the suite's log shares every group commit, segment and rotation.
struct Noise {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), String>>,
}

impl Noise {
    fn start(store: &FilesStore) -> StorageResult<Noise> {
        let mut logs: Vec<FilesLog<KeyValue>> = (0..3)
            .map(|k| store.log(&format!("noise-{k}")))
            .collect::<Result<_, _>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let e = |e: Box<dyn std::error::Error>| format!("noise log: {e}");
            let mut round = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for (k, log) in logs.iter_mut().enumerate() {
                    let n = 1 + (round as usize + k) % 8;
                    log.append_entries(
                        (0..n)
                            .map(|i| KeyValue::new("noise", round * 8 + i as u64, 200))
                            .collect(),
                    )
                    .map_err(e)?;
                    if round % 16 == 15 {
                        let len = log.get_log_len().map_err(e)?;
                        let first = log.get_compacted_idx().map_err(e)?;
                        log.trim(first + len / 2).map_err(e)?;
                        log.set_compacted_idx(first + len / 2).map_err(e)?;
                    }
                }
                round += 1;
            }
            Ok(())
        });
        Ok(Noise { stop, thread })
    }

    fn stop(self) -> StorageResult<()> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self
            .thread
            .join()
            .map_err(|_| "the noise thread panicked")??)
    }
}

/// The suite's harness for a log of a shared [`FilesStore`]: the suite drives log
/// [`SUITE_LOG`] while a thread keeps writing three other logs of the same store. A reopen
/// stops the noise, closes everything, reopens the store and restarts the noise; an abandoned
/// reopen stops the noise first (a copy taken while other logs write is not what a kill
/// leaves), then copies the directory as a kill leaves it.
pub struct StoreHarness {
    dirs: Vec<tempfile::TempDir>,
    noise: Option<Noise>,
}

impl StoreHarness {
    /// A harness over a fresh temporary directory.
    ///
    /// # Panics
    ///
    /// If no temporary directory can be created (a test set-up failure).
    pub fn new() -> Self {
        StoreHarness {
            dirs: vec![tempfile::tempdir().expect("a temporary directory")],
            noise: None,
        }
    }

    fn open_last(&mut self) -> StorageResult<FilesLog<KeyValue>> {
        let dir = self.dirs.last().expect("a directory").path();
        let store = FilesStore::open_with(dir, options())?;
        let log = store.log(SUITE_LOG)?;
        self.noise = Some(Noise::start(&store)?);
        Ok(log)
    }

    fn stop_noise(&mut self) -> StorageResult<()> {
        match self.noise.take() {
            Some(noise) => noise.stop(),
            None => Ok(()),
        }
    }
}

impl Default for StoreHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StoreHarness {
    fn drop(&mut self) {
        let _ = self.stop_noise();
    }
}

impl Harness for StoreHarness {
    type Store = FilesLog<KeyValue>;
    fn create(&mut self) -> StorageResult<Self::Store> {
        self.open_last()
    }
    fn reopen(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        self.stop_noise()?;
        drop(store);
        self.open_last()
    }
    fn reopen_abandoned(&mut self, store: Self::Store) -> StorageResult<Self::Store> {
        self.stop_noise()?;
        let copy = abandon_to_copy(store, self.dirs.last().expect("a directory").path())?;
        self.dirs.push(copy);
        self.open_last()
    }
    fn is_persistent(&self) -> bool {
        true
    }
}
