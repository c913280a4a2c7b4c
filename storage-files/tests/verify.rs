//! `paxstore_files::verify` on a live store: it reads what the store holds without taking the
//! lock or changing a byte, and refuses, as unreadable, a directory that is not a paxstore-files
//! store.

mod common;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore_core::conformance::cases::{ballot, snapshot_upto, stopsign};
use paxstore_core::identity::{Marker, MARKER_FILE};
use paxstore_core::kv::KeyValue;
use paxstore_core::model::Model;

use common::*;

#[test]
fn verify_reads_an_open_store_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut model = Model::<KeyValue>::new();
    apply(
        &mut store,
        &mut model,
        vec![StorageOp::SetPromise(ballot(3))],
    );
    for _ in 0..40 {
        let ops = append_batch(&model, 20);
        apply(&mut store, &mut model, ops);
    }
    let (t, decided) = (model.first + 150, model.next - 3);
    apply(
        &mut store,
        &mut model,
        vec![
            StorageOp::Trim(t),
            StorageOp::SetCompactedIdx(t),
            StorageOp::SetSnapshot(Some(snapshot_upto(t))),
            StorageOp::SetDecidedIndex(decided),
            StorageOp::SetStopsign(Some(stopsign(4))),
        ],
    );
    for _ in 0..20 {
        let ops = append_batch(&model, 20);
        apply(&mut store, &mut model, ops);
    }
    store.wait_for_reclaim().unwrap();
    assert!(segments(dir.path()).len() >= 3, "the store rotated");

    // The store stays open (and locked) throughout.
    let summary = verify_unchanged(dir.path(), "open store").unwrap();
    assert!(summary.is_clean(), "{:?}", summary.problems);
    assert_eq!(summary.backend, "files");
    assert_eq!(summary.marker.as_ref(), Some(store.marker()));
    let log = &summary.logs[0];
    assert_eq!(
        (log.first, log.next, log.decided, log.compacted),
        (
            model.first as u64,
            model.next as u64,
            model.decided_idx as u64,
            model.compacted_idx as u64
        )
    );
    assert_eq!(log.promise, Some(ballot(3)));
    assert!(log
        .stopsign
        .as_deref()
        .is_some_and(|s| s.contains("config")));
    assert!(log.snapshot_bytes.is_some_and(|b| b > 0));
    assert!(summary.entries_checked >= (model.next - model.first) as u64);
    let files = dir_bytes(dir.path());
    for name in files
        .keys()
        .filter(|n| n.starts_with("seg-") || n.starts_with("snap-"))
    {
        assert!(
            summary.parts.iter().any(|p| &p.name == name),
            "{name} is not among the parts: {:?}",
            summary.parts
        );
    }

    // The lock is still the store's: it takes more writes, and a second opener is refused.
    let ops = append_batch(&model, 5);
    apply(&mut store, &mut model, ops);
    assert!(matches!(
        Store::open_with(dir.path(), opts()),
        Err(paxstore_files::Error::Locked { .. })
    ));
    assert_eq!(store.get_log_len().unwrap(), model.log_len());
}

#[test]
fn verify_refuses_what_is_not_a_files_store() {
    let dir = tempfile::tempdir().unwrap();
    let reason = |dir: &std::path::Path| paxstore_files::verify(dir).unwrap_err().reason;
    // Missing, empty, a file.
    assert!(paxstore_files::verify(&dir.path().join("missing")).is_err());
    assert!(reason(dir.path()).contains("not a paxstore-files store"));
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(reason(&file).contains("not a directory"));
    std::fs::remove_file(&file).unwrap();
    // Another backend's marker.
    std::fs::write(
        dir.path().join(MARKER_FILE),
        Marker::new("rocks", 1).encode(),
    )
    .unwrap();
    assert!(reason(dir.path()).contains("`rocks` store"));
    assert_eq!(dir_bytes(dir.path()).len(), 1, "verify created nothing");
}
