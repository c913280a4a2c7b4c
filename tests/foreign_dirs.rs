//! The foreign-directory matrix: every persistent backend opened (through `AnyStorage`) on
//! every other backend's store, on a directory holding only `LOCK`, on a directory holding an
//! unrelated file, on a RocksDB directory that lost `CURRENT` (after a flush, so that its
//! write-ahead log is empty and RocksDB itself would not notice), and on each backend's store
//! with its marker deleted. Each open must be refused with an error that names the directory
//! and the problem, and leave every file byte for byte as it was (no file added, none
//! removed, none changed).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use omnipaxos::storage::{Storage, StorageOp};
use paxstore::{AnyStorage, Backend};
use paxstore_core::identity::MARKER_FILE;
use paxstore_core::kv::KeyValue;

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    paxstore_core::conformance::dir_bytes(dir).unwrap()
}

fn write_some(store: &mut AnyStorage<KeyValue>) {
    for b in 0..20u64 {
        store
            .write_atomically(vec![
                StorageOp::AppendEntries(
                    (b * 10..b * 10 + 10)
                        .map(|i| KeyValue::new("k", i, 300))
                        .collect(),
                ),
                StorageOp::SetDecidedIndex(b as usize * 10 + 10),
            ])
            .unwrap();
    }
}

fn spec(backend: Backend, dir: &Path) -> String {
    backend.spec(dir).to_string()
}

fn make_store(backend: Backend, dir: &Path) {
    write_some(&mut AnyStorage::open(&spec(backend, dir)).unwrap());
}

/// One directory of the matrix, and for each backend the words its refusal must contain.
struct Case {
    name: &'static str,
    make: fn(&Path),
    files_says: &'static [&'static str],
    rocks_says: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a files store",
            make: |d| make_store(Backend::Files, d),
            files_says: &[], // its own: opens
            rocks_says: &["its marker says it is a `files` store"],
        },
        Case {
            name: "a rocks store",
            make: |d| make_store(Backend::Rocks, d),
            files_says: &["its marker says it is a `rocks` store"],
            rocks_says: &[],
        },
        Case {
            name: "only LOCK",
            make: |d| fs::write(d.join("LOCK"), b"").unwrap(),
            files_says: &["`LOCK`", "no `PAXSTORE` marker"],
            rocks_says: &["`LOCK`", "no `PAXSTORE` marker"],
        },
        Case {
            name: "an unrelated file",
            make: |d| fs::write(d.join("notes.txt"), b"someone's notes").unwrap(),
            files_says: &["`notes.txt`"],
            rocks_says: &["`notes.txt`"],
        },
        Case {
            name: "a rocks store without CURRENT, WAL empty",
            make: |d| {
                make_store(Backend::Rocks, d);
                // Reopening flushes what the write-ahead log holds into table files and starts
                // an empty write-ahead log.
                drop(AnyStorage::<KeyValue>::open(&spec(Backend::Rocks, d)).unwrap());
                let wal: Vec<u64> = fs::read_dir(d)
                    .unwrap()
                    .map(|e| e.unwrap())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    .map(|e| e.metadata().unwrap().len())
                    .collect();
                assert!(!wal.is_empty() && wal.iter().all(|&l| l == 0), "{wal:?}");
                fs::remove_file(d.join("CURRENT")).unwrap();
            },
            files_says: &["its marker says it is a `rocks` store"],
            rocks_says: &["without its CURRENT file", ".sst"],
        },
        Case {
            name: "a files store without its marker",
            make: |d| {
                make_store(Backend::Files, d);
                fs::remove_file(d.join(MARKER_FILE)).unwrap();
            },
            files_says: &["no `PAXSTORE` marker", "adopt_unmarked_store"],
            rocks_says: &["seg-", "paxstore-files store"],
        },
        Case {
            name: "a rocks store without its marker",
            make: |d| {
                make_store(Backend::Rocks, d);
                fs::remove_file(d.join(MARKER_FILE)).unwrap();
            },
            files_says: &["`CURRENT`", "RocksDB database"],
            rocks_says: &["no `PAXSTORE` marker", "adopt_unmarked_store"],
        },
    ]
}

#[test]
fn every_backend_refuses_every_directory_that_is_not_its_store_and_changes_nothing() {
    let mut refusals = 0;
    for case in cases() {
        for backend in [Backend::Files, Backend::Rocks] {
            let said = match backend {
                Backend::Files => case.files_says,
                _ => case.rocks_says,
            };
            let dir = tempfile::tempdir().unwrap();
            (case.make)(dir.path());
            let before = snapshot(dir.path());
            let result = AnyStorage::<KeyValue>::open(&spec(backend, dir.path()));
            if said.is_empty() {
                // The control: the backend's own store opens, with its data.
                let store = result.unwrap_or_else(|e| panic!("{backend} on {}: {e}", case.name));
                assert_eq!(store.get_log_len().unwrap(), 200, "{}", case.name);
                continue;
            }
            let err = match result {
                Ok(_) => panic!("{backend} opened {}", case.name),
                Err(e) => e.to_string(),
            };
            assert_eq!(
                snapshot(dir.path()),
                before,
                "{backend} on {}: the refused open changed the directory ({err})",
                case.name
            );
            assert!(
                err.contains(&dir.path().display().to_string()),
                "{backend} on {}: the error names the directory: {err}",
                case.name
            );
            for needle in said {
                assert!(
                    err.contains(needle),
                    "{backend} on {}: {needle:?} not in: {err}",
                    case.name
                );
            }
            refusals += 1;
        }
    }
    assert_eq!(refusals, 12);
}
