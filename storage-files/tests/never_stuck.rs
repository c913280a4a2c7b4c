//! A store never gets stuck on its own leftovers: a deletion that failed is retried, and the
//! gap it leaves in the segment ids is not taken for corruption.

use std::path::Path;
use std::sync::Arc;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::verify_store;
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;
use paxstore_files::env::{CrashPattern, FileSystem, SimFs, Trigger};
use paxstore_files::{FilesOptions, FilesStorage};

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

/// A store of 30 batches of 4 entries (about ten segments).
fn filled_store() -> (SimFs, Store, Model<KeyValue>) {
    let fs = SimFs::new();
    let mut store = Store::open_with(DIR, opts(&fs)).unwrap();
    let mut model = Model::new();
    for _ in 0..30 {
        append(&mut store, &mut model, 4);
    }
    (fs, store, model)
}

#[test]
fn a_failed_unlink_then_more_trims_then_reopen() {
    let (fs, mut store, mut model) = filled_store();
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
    let store = Store::open_with(DIR, opts(&fs)).unwrap();
    verify_store(&store, &model).unwrap();
}

#[test]
fn a_gap_left_at_reopen_is_cleaned_up_by_open() {
    let (fs, mut store, mut model) = filled_store();
    let before = segments(&fs);
    fs.trigger("unlink", Trigger::Fail);
    let t = model.next - 3;
    model.apply(&StorageOp::Trim(t)).unwrap();
    store.trim(t).unwrap();
    drop(store);
    assert_eq!(segments(&fs)[0], before[0]);
    let store = Store::open_with(DIR, opts(&fs)).unwrap();
    verify_store(&store, &model).unwrap();
    assert!(
        !segments(&fs).contains(&before[0]),
        "open deleted the dead segment below the gap"
    );
}

#[test]
fn a_missing_live_segment_is_still_corruption() {
    let (fs, store, _) = filled_store();
    drop(store);
    let segs = segments(&fs);
    // Lose a segment in the middle of the live log.
    fs.remove_file(&Path::new(DIR).join(&segs[2])).unwrap();
    let err = Store::open_with(DIR, opts(&fs)).unwrap_err().to_string();
    assert!(
        err.contains("taken for dead") && err.contains("is missing"),
        "the error names the missing segment: {err}"
    );
}

/// Disk full: the write that does not fit fails cleanly (nothing acknowledged lost, the store
/// not poisoned), the trim that frees space still goes through (with preallocation, on a disk
/// with not one byte left: it uses the space reserved for it; without, it needs only its own
/// few bytes), and once it has freed space the store goes on; everything survives a reopen
/// and a power loss.
#[test]
fn disk_full_then_trim_frees_space_and_nothing_is_lost() {
    // With 256 KiB segments the disk fills inside a segment: no seal gives space back, and
    // only the reserve lets the trim through.
    for (preallocate, segment) in [(true, 64 << 10), (true, 256 << 10), (false, 64 << 10)] {
        let fs = SimFs::new();
        let opts = FilesOptions::new()
            .segment_size(segment)
            .preallocate(preallocate)
            .background_purge(false)
            .file_system(Arc::new(fs.clone()));
        let mut store = Store::open_with(DIR, opts.clone()).unwrap();
        let mut model = Model::new();
        fs.set_capacity(Some(fs.used() + (900 << 10)));
        let mut err = None;
        for _ in 0..1000 {
            let v: Vec<KeyValue> = (0..8)
                .map(|i| KeyValue::new("k", (model.next + i) as u64, 1000))
                .collect();
            match store.append_entries(v.clone()) {
                Ok(()) => model.apply(&StorageOp::AppendEntries(v)).unwrap(),
                Err(e) => {
                    err = Some(e.to_string());
                    break;
                }
            }
        }
        let err = err.expect("the disk filled up");
        assert!(err.contains("No space left"), "the error says so: {err}");
        assert!(
            store.poisoned().is_none(),
            "a full disk does not poison: {err}"
        );
        verify_store(&store, &model).unwrap();
        if preallocate {
            // Not one byte left: the trim must make do with the space reserved for it.
            fs.set_capacity(Some(fs.used()));
        }
        // The trim that frees space goes through on the full disk.
        let t = model.next - 10;
        model.apply(&StorageOp::Trim(t)).unwrap();
        store.trim(t).unwrap_or_else(|e| {
            panic!("preallocate {preallocate}, segment {segment}: trim on a full disk: {e}")
        });
        // The space it freed lets the store go on.
        for _ in 0..20 {
            append(&mut store, &mut model, 8);
        }
        verify_store(&store, &model).unwrap();
        drop(store);
        let lost = fs.power_loss(CrashPattern::DropAll);
        let store = Store::open_with(DIR, opts.file_system(Arc::new(lost))).unwrap();
        verify_store(&store, &model).unwrap();
    }
}
