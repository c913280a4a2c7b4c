//! Open descriptors stay bounded however long the log: a log of 10,000 segments is opened and
//! read whole by a child process limited to 256 descriptors (`setrlimit(RLIMIT_NOFILE)`).

use std::path::{Path, PathBuf};
use std::process::Command;

use omnipaxos::storage::Storage;
use paxstore_core::kv::KeyValue;
use paxstore_files::{FilesOptions, FilesStorage, SyncPolicy};

type Store = FilesStorage<KeyValue>;

const CHILD_ENV: &str = "PAXSTORE_MANY_SEGMENTS_DIR";
const SEGMENTS: usize = 10_000;
const LIMIT: u64 = 256;

fn entry(i: usize) -> KeyValue {
    // About 3 KiB: with 4 KiB segments, one entry per segment.
    KeyValue::new("k", i as u64, 3000)
}

fn opts() -> FilesOptions {
    FilesOptions::new()
        .segment_size(4096)
        .sync(SyncPolicy::Never)
        .preallocate(false)
}

/// A directory on tmpfs if there is one (fsyncs cost nothing there), else the temp directory.
fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Not a test of its own: the child of `ten_thousand_segments_with_256_descriptors`.
#[test]
fn many_segments_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let limit = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: LIMIT,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let store = Store::open_with(&dir, FilesOptions::new()).unwrap_or_else(|e| panic!("open: {e}"));
    assert!(store.stats().live_segments as usize >= SEGMENTS);
    let n = store.get_log_len().unwrap();
    for from in (0..n).step_by(500) {
        let got = store
            .get_entries(from, (from + 500).min(n))
            .unwrap_or_else(|e| panic!("read from {from}: {e}"));
        for (k, e) in got.iter().enumerate() {
            assert_eq!(*e, entry(from + k), "entry {}", from + k);
        }
    }
    // Reads out of order, across the whole log.
    for i in (0..n).rev().step_by(97) {
        assert_eq!(store.get_entries(i, i + 1).unwrap()[0], entry(i));
    }
    println!("PAXSTORE-READ-ALL {n}");
}

#[test]
fn ten_thousand_segments_with_256_descriptors() {
    let dir = tempfile::tempdir_in(base()).unwrap();
    let mut store = Store::open_with(dir.path(), opts()).unwrap();
    for i in 0..SEGMENTS + 1 {
        store.append_entry(entry(i)).unwrap();
    }
    assert!(store.stats().live_segments as usize > SEGMENTS);
    drop(store);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "many_segments_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("PAXSTORE-READ-ALL {}", SEGMENTS + 1)),
        "the child with {LIMIT} descriptors failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
