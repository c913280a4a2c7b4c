//! The directory lock: a second opener, in this process or another, gets
//! `paxstore_files::Error::Locked` and changes nothing; the lock goes with the store (dropped, or its
//! process killed), never with the `LOCK` file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use omnipaxos::storage::Storage;
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::LOCK_FILE;

use common::*;

/// Set in a child's environment to the directory it opens and holds.
const CHILD_ENV: &str = "PAXSTORE_LOCK_CHILD_DIR";

fn expect_locked(dir: &Path) {
    match Store::open_with(dir, opts()) {
        Err(paxstore_files::Error::Locked { path }) => {
            assert_eq!(path, dir.join(LOCK_FILE));
            let msg = paxstore_files::Error::Locked { path }.to_string();
            assert!(msg.contains("locked"), "{msg}");
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!(
            "a second store opened {} while the first holds it",
            dir.display()
        ),
    }
}

#[test]
fn second_open_in_this_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = open(dir.path());
    let mut model = Model::<KeyValue>::new();
    for _ in 0..3 {
        let ops = append_batch(&model, 50);
        apply(&mut first, &mut model, ops);
    }
    // A leftover file the second opener must not touch while the first is open.
    let leftover = dir.path().join("seg-00000000000000aa.log.tmp");
    std::fs::write(&leftover, b"x").unwrap();
    let before: Vec<_> = segments(dir.path())
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();

    expect_locked(dir.path());
    expect_locked(dir.path());

    assert!(leftover.exists(), "the refused opener deleted a file");
    let after: Vec<_> = segments(dir.path())
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "the refused opener changed a segment");
    // The first store is unaffected.
    let ops = append_batch(&model, 5);
    apply(&mut first, &mut model, ops);
    expect_state(
        &first,
        &model,
        "the first store after a refused second open",
    );

    drop(first);
    let second = open(dir.path());
    expect_state(
        &second,
        &model,
        "reopened after the first store was dropped",
    );
    assert!(
        !leftover.exists(),
        "open removes leftovers once it holds the lock"
    );
}

#[test]
fn lock_is_released_on_drop_and_reacquired() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let mut s = open(dir.path());
        expect_locked(dir.path());
        s.append_entry(KeyValue::new("k", round, 8)).unwrap();
        drop(s);
    }
    let s = open(dir.path());
    assert_eq!(s.get_log_len().unwrap(), 5);
    assert!(dir.path().join(LOCK_FILE).exists(), "the LOCK file stays");
}

/// Not a test of its own: the child of `lock_held_by_another_process`, which opens the store,
/// says so, and holds it until killed.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut store = open(Path::new(&dir));
    store.append_entry(KeyValue::new("child", 1, 8)).unwrap();
    println!("PAXSTORE-LOCKED");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn lock_held_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let held = lines.any(|l| l.is_ok_and(|l| l.contains("PAXSTORE-LOCKED")));
    if !held {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child did not open the store");
    }
    expect_locked(dir.path());
    // SIGKILL: the kernel releases the lock with the process; the LOCK file remains.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.path().join(LOCK_FILE).exists());
    let s = open(dir.path());
    assert_eq!(
        s.get_entries(0, 1).unwrap(),
        vec![KeyValue::new("child", 1, 8)]
    );
}
