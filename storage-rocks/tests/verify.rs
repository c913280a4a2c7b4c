//! `paxstore_rocks::verify`: each log's bounds and metadata read back from a live store and
//! from a closed one, the directory left byte for byte as it was, and a directory that is not
//! a paxstore-rocks store refused as unreadable.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::storage::Storage;
use paxstore_core::identity::{Marker, MARKER_FILE};
use paxstore_core::kv::KeyValue;
use paxstore_rocks::RocksStore;

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    paxstore_core::conformance::dir_bytes(dir).unwrap()
}

fn kv(i: u64) -> KeyValue {
    KeyValue::new("k", i, 100)
}

#[test]
fn verify_reads_every_log_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut a = store.log::<KeyValue>("a").unwrap();
    let mut b = store.log::<KeyValue>("shard-2").unwrap();
    a.append_entries((0..300).map(kv).collect()).unwrap();
    a.trim(120).unwrap();
    a.set_decided_idx(250).unwrap();
    a.set_compacted_idx(120).unwrap();
    let promise = Ballot {
        n: 4,
        pid: 2,
        ..Ballot::default()
    };
    a.set_promise(promise).unwrap();
    b.append_entries((0..7).map(kv).collect()).unwrap();

    let check = |ctx: &str| {
        let s = paxstore_rocks::verify(dir.path()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(s.is_clean(), "{ctx}: {:?}", s.problems);
        assert_eq!(s.backend, "rocks", "{ctx}");
        assert_eq!(s.format_version, paxstore_rocks::FORMAT_VERSION, "{ctx}");
        assert!(s.marker.is_some(), "{ctx}");
        let logs: Vec<_> = s
            .logs
            .iter()
            .map(|l| (l.name.as_str(), l.first, l.next, l.decided, l.compacted))
            .collect();
        assert_eq!(
            logs,
            vec![("a", 120, 300, 250, 120), ("shard-2", 0, 7, 0, 0)],
            "{ctx}"
        );
        assert_eq!(s.logs[0].promise, Some(promise), "{ctx}");
        assert_eq!(s.entries_checked, 180 + 7, "{ctx}");
        for cf in ["paxstore.meta", "paxstore.log.a", "paxstore.log.shard-2"] {
            assert!(
                s.parts
                    .iter()
                    .any(|p| p.name == format!("column family {cf}")),
                "{ctx}: {cf} missing from {:?}",
                s.parts
            );
        }
    };
    // The store open: a read-only open takes no lock.
    check("open store");
    drop((a, b, store));
    let before = snapshot(dir.path());
    check("closed store");
    assert!(
        snapshot(dir.path()) == before,
        "verify changed the directory"
    );
}

#[test]
fn verify_refuses_what_is_not_a_rocks_store() {
    let dir = tempfile::tempdir().unwrap();
    let reason = |dir: &Path| paxstore_rocks::verify(dir).unwrap_err().reason;
    assert!(paxstore_rocks::verify(&dir.path().join("missing")).is_err());
    fs::write(
        dir.path().join(MARKER_FILE),
        Marker::new("files", 1).encode(),
    )
    .unwrap();
    assert!(
        reason(dir.path()).contains("`files` store"),
        "{}",
        reason(dir.path())
    );
    assert_eq!(snapshot(dir.path()).len(), 1, "verify created nothing");
}
