//! `verify_store`: a many-logs store's directory checked without opening it.

use omnipaxos::storage::Storage;
use paxstore_core::{conformance::dir_bytes, kv::KeyValue};
use paxstore_files::{verify_store, FilesOptions, FilesStore};

fn filled(dir: &std::path::Path) {
    let store =
        FilesStore::open_with(dir, FilesOptions::new().segment_size(16 << 10)).expect("open");
    for k in 0..3 {
        let mut log = store.log::<KeyValue>(&format!("log-{k}")).expect("log");
        for i in 0..40u64 {
            log.append_entry(KeyValue::new("k", i, 100))
                .expect("append");
        }
        log.trim(10 + k).expect("trim");
    }
}

#[test]
fn a_clean_store_verifies_clean_with_every_log_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let before = dir_bytes(dir.path()).unwrap();
    let summary = verify_store(dir.path()).expect("readable");
    assert!(summary.is_clean(), "{:?}", summary.problems);
    assert_eq!(summary.backend, "files-multi");
    let bounds: Vec<(String, u64, u64)> = summary
        .logs
        .iter()
        .map(|l| (l.name.clone(), l.first, l.next))
        .collect();
    assert_eq!(
        bounds,
        [
            ("log-0".to_string(), 10, 40),
            ("log-1".to_string(), 11, 40),
            ("log-2".to_string(), 12, 40)
        ]
    );
    assert!(summary.entries_checked > 0);
    assert_eq!(
        dir_bytes(dir.path()).unwrap(),
        before,
        "verify changed the directory"
    );
}

#[test]
fn a_damaged_record_followed_by_valid_ones_is_a_problem_naming_the_newest_segment() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let newest = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    // A byte inside the newest segment's records, well before its last record.
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    let at = end / 2 + 200;
    bytes[at] ^= 0x55;
    std::fs::write(&newest, &bytes).unwrap();
    let summary = verify_store(dir.path()).expect("readable");
    assert!(!summary.is_clean(), "damage not reported");
    assert!(
        summary.problems.iter().any(|p| p.file == newest),
        "{:?}",
        summary.problems
    );
}

#[test]
fn a_single_log_store_is_not_taken_for_a_many_logs_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = paxstore_files::FilesStorage::<KeyValue>::open(dir.path()).unwrap();
    log.append_entry(KeyValue::new("k", 1, 8)).unwrap();
    drop(log);
    assert!(verify_store(dir.path()).is_err());
}

#[test]
fn a_damaged_position_table_is_reported_by_verify_and_by_the_read_that_needs_it() {
    use paxstore_files::format;
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "no sealed segment");
    let sealed = &segments[segments.len() - 2];
    let mut bytes = std::fs::read(sealed).unwrap();
    let t = format::decode_trailer(&bytes[bytes.len() - format::TRAILER_LEN..]).unwrap();
    let format::Frame::Record { body, .. } = format::parse_frame(&bytes[t.seal_offset as usize..])
    else {
        panic!("no seal summary")
    };
    let at = t.seal_offset as usize;
    let runs = format::parse_store_seal(&bytes[at + body.start..at + body.end]).unwrap();
    // A run still live after the trims (to 10, 11, 12).
    let run = runs.iter().find(|r| r.at + r.count as u64 > 13).unwrap();
    let name = format!("log-{}", run.log - 1);
    bytes[run.table_offset as usize + 4] ^= 0x40;
    std::fs::write(sealed, &bytes).unwrap();

    let summary = verify_store(dir.path()).expect("readable");
    assert!(
        summary
            .problems
            .iter()
            .any(|p| &p.file == sealed && p.offset == Some(run.table_offset)),
        "{:?}",
        summary.problems
    );
    // Open does not read the tables; the read that needs the damaged one fails, naming it.
    let store = FilesStore::open_with(dir.path(), FilesOptions::new().segment_size(16 << 10))
        .expect("open reads no table");
    let log = store.log::<KeyValue>(&name).unwrap();
    let last = (run.at + run.count as u64 - 1) as usize;
    let err = log
        .get_entries(last, last + 1)
        .expect_err("a damaged table read back");
    assert!(err.to_string().contains("position table"), "{err}");
}
