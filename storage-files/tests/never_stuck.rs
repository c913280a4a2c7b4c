//! A store never gets stuck on its own leftovers: a deletion that failed is retried, and the
//! gap it leaves in the segment ids is not taken for corruption.

use std::path::Path;
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use storage_core::conformance::verify_store;
use storage_core::kv::KeyValue;
use storage_core::model::Model;
use storage_files::env::{FileSystem, SimFs, Trigger};
use storage_files::{FilesOptions, FilesStorage};

type Store = FilesStorage<KeyValue>;

const DIR: &str = "/store";

fn opts(fs: &SimFs) -> FilesOptions {
    FilesOptions::new()
        .segment_size(8 << 10)
        .background_purge(false)
        .file_system(Arc::new(fs.clone()))
}

fn segments(fs: &SimFs) -> Vec<String> {
    let mut v: Vec<String> = fs
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("seg-") && n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

fn append(store: &mut Store, model: &mut Model<KeyValue>, n: usize) {
    let v: Vec<KeyValue> = (0..n)
        .map(|i| KeyValue::new("k", (model.next + i) as u64, 900))
        .collect();
    model.apply(&StorageOp::AppendEntries(v.clone())).unwrap();
    store.append_entries(v).unwrap();
}

#[test]
fn a_failed_unlink_then_more_trims_then_reopen() {
    let fs = SimFs::new();
    let mut store = Store::open(DIR, opts(&fs)).unwrap();
    let mut model = Model::new();
    for _ in 0..30 {
        append(&mut store, &mut model, 4);
    }
    let before = segments(&fs);
    assert!(before.len() >= 8, "{before:?}");
    // The first segment's deletion fails; the trim itself succeeds.
    fs.trigger("unlink", Trigger::Fail);
    let t = model.first + (model.next - model.first) / 2;
    model.apply(&StorageOp::Trim(t)).unwrap();
    store.trim(t).unwrap();
    assert!(
        store.poisoned().is_none(),
        "a failed unlink does not poison"
    );
    let after = segments(&fs);
    assert_eq!(
        after[0], before[0],
        "the segment whose unlink failed is still there"
    );
    assert_ne!(
        after[1], before[1],
        "the segments after it were deleted: a gap"
    );
    // More writes and trims, then a reopen: the gap is not corruption.
    for _ in 0..10 {
        append(&mut store, &mut model, 4);
    }
    let t = model.next - 6;
    model.apply(&StorageOp::Trim(t)).unwrap();
    store.trim(t).unwrap();
    assert!(
        !segments(&fs).contains(&before[0]),
        "the failed deletion was retried with the next trim"
    );
    drop(store);
    let store = Store::open(DIR, opts(&fs)).unwrap();
    verify_store(&store, &model).unwrap();
}

#[test]
fn a_gap_left_at_reopen_is_cleaned_up_by_open() {
    let fs = SimFs::new();
    let mut store = Store::open(DIR, opts(&fs)).unwrap();
    let mut model = Model::new();
    for _ in 0..30 {
        append(&mut store, &mut model, 4);
    }
    let before = segments(&fs);
    fs.trigger("unlink", Trigger::Fail);
    let t = model.next - 3;
    model.apply(&StorageOp::Trim(t)).unwrap();
    store.trim(t).unwrap();
    drop(store);
    assert_eq!(segments(&fs)[0], before[0]);
    let store = Store::open(DIR, opts(&fs)).unwrap();
    verify_store(&store, &model).unwrap();
    assert!(
        !segments(&fs).contains(&before[0]),
        "open deleted the dead segment below the gap"
    );
}

#[test]
fn a_missing_live_segment_is_still_corruption() {
    let fs = SimFs::new();
    let mut store = Store::open(DIR, opts(&fs)).unwrap();
    let mut model = Model::new();
    for _ in 0..30 {
        append(&mut store, &mut model, 4);
    }
    drop(store);
    let segs = segments(&fs);
    // Lose a segment in the middle of the live log.
    fs.remove_file(&Path::new(DIR).join(&segs[2])).unwrap();
    let err = Store::open(DIR, opts(&fs)).unwrap_err().to_string();
    assert!(
        err.contains("taken for dead") && err.contains("is missing"),
        "the error names the missing segment: {err}"
    );
}
