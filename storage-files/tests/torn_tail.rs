//! Torn tail: the last segment cut at every byte offset inside its last two records.
//!
//! A workload of acknowledged batches is written with the directory copied after each one.
//! A crash while batch `m + 1` was being written leaves the directory as it was after batch
//! `m` with a prefix of record `m + 1` at the end of the last segment (and the new snapshot
//! file, if the batch wrote one). For every cut offset `c` inside the last two records the test
//! builds exactly that directory (the copy after the last batch whose record ends at or before
//! `c`, the last segment replaced by the final segment's first `c` bytes, the final directory's
//! snapshot files added) and reopens it: the store must show exactly the model after `m`
//! batches, report the bytes it cut in `stats().torn_tail_bytes_cut`, and take new writes.
//!
//! With preallocation on, the bytes after the cut are zeros up to the segment size, as on a
//! preallocated file. A variant ends with a sealed last segment (the crash fell between the
//! seal and the creation of the next segment): the seal and its trailer are then the last
//! "record".

mod common;

use std::path::Path;
use std::sync::Arc;

use omnipaxos::storage::StorageOp;
use paxstore_core::conformance::cases::{ballot, rewritten, snapshot_upto, stopsign};
use paxstore_core::conformance::verify_store;
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::{FaultKind, FaultyFs};
use tempfile::TempDir;

use common::*;

type Ops = Vec<StorageOp<KeyValue>>;

/// Batch `k` of the workload before the final segment: appends, with a trim, a
/// snapshot-plus-truncate and a rewrite of the tail along the way.
fn early_batch(k: usize, m: &Model<KeyValue>) -> Ops {
    let (first, next) = (m.first, m.next);
    match k {
        0 => vec![
            StorageOp::SetPromise(ballot(1)),
            StorageOp::SetAcceptedRound(ballot(1)),
        ],
        8 => vec![
            StorageOp::Trim(first + 20),
            StorageOp::SetCompactedIdx(first + 20),
        ],
        14 => vec![
            StorageOp::Trim(next - 50),
            StorageOp::SetCompactedIdx(next - 50),
            StorageOp::SetSnapshot(Some(snapshot_upto(next - 50))),
        ],
        20 => vec![StorageOp::AppendOnPrefix(
            next - 5,
            (next - 5..next + 3).map(rewritten).collect(),
        )],
        _ => append_batch(m, 30),
    }
}

/// The batches written to the final segment: an append, a promise, a snapshot-plus-truncate
/// that supersedes a snapshot and deletes segments, and a follower rewrite with a stop-sign.
fn final_batch(k: usize, m: &Model<KeyValue>) -> Ops {
    let next = m.next;
    match k {
        0 => append_batch(m, 12),
        1 => vec![
            StorageOp::SetPromise(ballot(4)),
            StorageOp::SetDecidedIndex(next - 2),
        ],
        2 => vec![
            StorageOp::Trim(next - 30),
            StorageOp::SetCompactedIdx(next - 30),
            StorageOp::SetSnapshot(Some(snapshot_upto(next - 30))),
        ],
        _ => vec![
            StorageOp::SetAcceptedRound(ballot(4)),
            StorageOp::AppendOnPrefix(next - 3, (next - 3..next + 3).map(rewritten).collect()),
            StorageOp::SetStopsign(Some(stopsign(3))),
        ],
    }
}

/// The written workload: the directory and model after each batch, the last segment's name
/// and the end offset of each record in it (`ends[i] = (batches acknowledged, end)`).
struct Written {
    _dirs: Vec<TempDir>,
    after: Vec<(std::path::PathBuf, Model<KeyValue>)>,
    final_dir: TempDir,
    last_name: std::ffi::OsString,
    ends: Vec<(usize, u64)>,
}

fn write_workload(prealloc: bool, sealed: bool) -> Written {
    let final_dir = tempfile::tempdir().unwrap();
    let dir = final_dir.path();
    let fs = FaultyFs::new();
    let options = opts()
        .preallocate(prealloc)
        .file_system(Arc::new(fs.clone()));
    let mut store = Store::open_with(dir, options).unwrap();
    let mut model = Model::new();
    let mut dirs = Vec::new();
    let mut after = Vec::new();
    let mut lens = Vec::new();
    let mut snapshot_of = |store: &mut Store, model: &Model<KeyValue>| {
        store.wait_for_reclaim().unwrap();
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir, copy.path());
        after.push((copy.path().to_path_buf(), model.clone()));
        dirs.push(copy);
        lens.push(match segments(dir).pop() {
            Some(last) => {
                let len = std::fs::metadata(&last).unwrap().len();
                (last.file_name().unwrap().to_owned(), len)
            }
            None => (Default::default(), 0),
        });
    };
    snapshot_of(&mut store, &model);
    for k in 0..40 {
        let ops = early_batch(k, &model);
        apply(&mut store, &mut model, ops);
        snapshot_of(&mut store, &model);
    }
    store.rotate().unwrap();
    for k in 0..4 {
        let ops = final_batch(k, &model);
        apply(&mut store, &mut model, ops);
        snapshot_of(&mut store, &model);
    }
    if sealed {
        // Seal, then fail to create the next segment: the crash state between the two.
        fs.fail_nth(FaultKind::Create, 1);
        assert!(store.rotate().is_err());
        assert!(fs.fired() && store.poisoned().is_none());
        snapshot_of(&mut store, &model);
    }
    drop(store);
    let last_name = last_segment(dir).file_name().unwrap().to_owned();
    let ends = lens
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| *name == last_name)
        .map(|(m, (_, len))| (m, *len))
        .collect();
    Written {
        _dirs: dirs,
        after,
        final_dir,
        last_name,
        ends,
    }
}

/// Cuts and reopens at every offset inside the last two records; returns the number of cuts.
fn torn_tail(prealloc: bool, sealed: bool) -> usize {
    // Record ends come from file lengths, which preallocation hides: take them from the same
    // workload written without it (the bytes are identical, checked below).
    let plain = write_workload(false, sealed);
    let ends = plain.ends.clone();
    let plain_bytes = std::fs::read(plain.final_dir.path().join(&plain.last_name)).unwrap();
    let w = if prealloc {
        write_workload(true, sealed)
    } else {
        plain
    };
    assert!(
        ends.len() >= 4,
        "the last segment holds at least three records: {ends:?}"
    );
    let final_bytes = std::fs::read(w.final_dir.path().join(&w.last_name)).unwrap();
    let end_last = ends.last().unwrap().1 as usize;
    assert_eq!(
        final_bytes[..end_last],
        plain_bytes[..],
        "same records with preallocation"
    );
    if prealloc && !sealed {
        assert_eq!(final_bytes.len() as u64, SEGMENT);
        assert!(final_bytes[end_last..].iter().all(|&b| b == 0));
    } else {
        assert_eq!(final_bytes.len(), end_last);
    }
    let final_snapshots = snapshots(w.final_dir.path());

    let start = ends[ends.len() - 3].1 as usize;
    let mut cuts = 0;
    for c in start..end_last {
        // The batches whose records lie wholly before the cut.
        let &(m, end_m) = ends.iter().rev().find(|&&(_, e)| e as usize <= c).unwrap();
        let (src, model) = &w.after[m];
        let label = format!(
            "prealloc {prealloc}, sealed {sealed}: cut at {c} (after batch {m}, record end {end_m})"
        );
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src, dir.path());
        for snap in &final_snapshots {
            let to = dir.path().join(snap.file_name().unwrap());
            if !to.exists() {
                std::fs::copy(snap, to).unwrap();
            }
        }
        let mut torn = final_bytes[..c].to_vec();
        if prealloc {
            torn.resize(SEGMENT as usize, 0);
        }
        let file_len = torn.len() as u64;
        std::fs::write(dir.path().join(&w.last_name), torn).unwrap();
        let tail_is_zeros = final_bytes[end_m as usize..c].iter().all(|&b| b == 0);

        // Verify, before the open cuts anything: clean, the state after `m` batches, and a
        // note about the torn tail exactly when there is one.
        let summary =
            verify_unchanged(dir.path(), &label).unwrap_or_else(|e| panic!("{label}: verify: {e}"));
        assert!(summary.is_clean(), "{label}: {:?}", summary.problems);
        let log = &summary.logs[0];
        assert_eq!(
            (log.first, log.next, log.decided, log.compacted),
            (
                model.first as u64,
                model.next as u64,
                model.decided_idx as u64,
                model.compacted_idx as u64
            ),
            "{label}: verify's metadata"
        );
        assert_eq!(
            summary.notes.iter().any(|n| n.contains("next open cuts")),
            !tail_is_zeros,
            "{label}: {:?}",
            summary.notes
        );

        let store = Store::open_with(dir.path(), opts().preallocate(prealloc))
            .unwrap_or_else(|e| panic!("{label}: open failed: {e}"));
        if let Err(e) = verify_store(&store, model) {
            panic!("{label}: not the state after {m} batches: {e}");
        }
        let expect_cut = if tail_is_zeros { 0 } else { file_len - end_m };
        let got_cut = store.stats().torn_tail_bytes_cut;
        if !(got_cut == expect_cut || (tail_is_zeros && got_cut == file_len - end_m)) {
            panic!("{label}: torn_tail_bytes_cut = {got_cut}, expected {expect_cut}");
        }
        check_writable(store, dir.path(), model, &label, prealloc);
        cuts += 1;
    }
    cuts
}

/// The recovered store takes a new batch, and a reopen shows it.
fn check_writable(
    mut store: Store,
    dir: &Path,
    model: &Model<KeyValue>,
    label: &str,
    prealloc: bool,
) {
    let mut model = model.clone();
    let ops = append_batch(&model, 4);
    apply(&mut store, &mut model, ops);
    expect_state(&store, &model, &format!("{label}: after a new batch"));
    drop(store);
    let store = Store::open_with(dir, opts().preallocate(prealloc))
        .unwrap_or_else(|e| panic!("{label}: reopen after a new batch failed: {e}"));
    expect_state(
        &store,
        &model,
        &format!("{label}: reopened after a new batch"),
    );
    assert_eq!(
        store.stats().torn_tail_bytes_cut,
        0,
        "{label}: a clean reopen cuts nothing"
    );
}

#[test]
fn torn_tail_without_preallocation() {
    let cuts = torn_tail(false, false);
    eprintln!("{cuts} cuts");
}

#[test]
fn torn_tail_with_preallocation() {
    let cuts = torn_tail(true, false);
    eprintln!("{cuts} cuts");
}

#[test]
fn torn_seal_of_the_last_segment() {
    let cuts = torn_tail(false, true);
    eprintln!("{cuts} cuts");
}

#[test]
fn torn_seal_of_the_last_segment_with_preallocation() {
    let cuts = torn_tail(true, true);
    eprintln!("{cuts} cuts");
}
