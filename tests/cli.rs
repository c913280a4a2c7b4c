//! The `paxstore` command, run as a user runs it: `--help` everywhere, `verify` exit codes
//! (a flipped byte is found and located), `inspect`, a short `demo` and `torture` on every
//! persistent backend, `bench` in its quick size.

use std::path::Path;
use std::process::{Command, Output};

use omnipaxos::storage::{Storage, StorageOp};
use paxstore::Backend;
use paxstore_core::kv::KeyValue;

fn paxstore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paxstore"))
        .args(args)
        .output()
        .expect("run paxstore")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_subcommand_has_help() {
    let top = paxstore(&["--help"]);
    assert!(top.status.success());
    for sub in ["demo", "bench", "inspect", "verify", "torture"] {
        assert!(text(&top).contains(sub), "{sub} missing from --help");
        let out = paxstore(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help");
        assert!(
            text(&out).contains("Usage: paxstore"),
            "{sub}: {}",
            text(&out)
        );
    }
    assert!(
        !text(&top).contains("torture-child"),
        "the child command is hidden"
    );
}

#[test]
fn a_backend_not_compiled_in_is_refused_clearly() {
    for backend in Backend::ALL {
        if backend.is_compiled_in() {
            continue;
        }
        let out = paxstore(&["demo", "--backend", backend.name()]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains(&format!("--features {}", backend.feature())),
            "{}",
            text(&out)
        );
    }
    let out = paxstore(&["demo", "--backend", "tape"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown backend"), "{}", text(&out));
}

/// A files store with several batch records in a small segment size (so it rotates).
#[cfg(feature = "files")]
fn files_store(dir: &Path) {
    use paxstore_files::{FilesOptions, FilesStorage};
    let mut s =
        FilesStorage::<KeyValue>::open_with(dir, FilesOptions::new().segment_size(64 << 10))
            .unwrap();
    for b in 0..40 {
        let at = b * 10;
        s.write_atomically(vec![
            StorageOp::AppendEntries(
                (at..at + 10)
                    .map(|i| KeyValue::new("k", i as u64, 300))
                    .collect(),
            ),
            StorageOp::SetDecidedIndex(at + 10),
        ])
        .unwrap();
    }
    s.write_atomically(vec![
        StorageOp::Trim(50),
        StorageOp::SetCompactedIdx(50),
        StorageOp::SetSnapshot(Some(paxstore_core::kv::KVSnapshot::sized(4, 2048))),
    ])
    .unwrap();
}

#[cfg(feature = "files")]
#[test]
fn verify_finds_a_flipped_byte_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    files_store(dir.path());
    let clean = paxstore(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(text(&clean).contains("clean"));

    let inspect = paxstore(&["inspect", dir.path().to_str().unwrap()]);
    assert_eq!(inspect.status.code(), Some(0), "{}", text(&inspect));
    let shown = text(&inspect);
    for needle in [
        "backend:        files",
        "[50, 400)",
        "decided idx:  400",
        "compacted:    50",
        "snapshot:",
        "seg-",
    ] {
        assert!(shown.contains(needle), "{needle:?} not in:\n{shown}");
    }

    // Flip one byte inside the first record of the oldest segment.
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "the store rotated: {segments:?}");
    let target = &segments[segments.len() - 2];
    let mut bytes = std::fs::read(target).unwrap();
    // The first record starts after the segment header (paxstore-files' FORMAT.md): a 32-byte
    // prefix whose last 4 bytes are the checkpoint's length, the checkpoint, a 4-byte CRC.
    let ckpt_len = u32::from_le_bytes(bytes[28..32].try_into().unwrap()) as usize;
    let record = 32 + ckpt_len + 4;
    bytes[record + 40] ^= 0x20;
    std::fs::write(target, &bytes).unwrap();

    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let name = target.file_name().unwrap().to_str().unwrap();
    let said = text(&out);
    assert!(
        said.contains(&format!("{name} at offset {record}")),
        "names file and offset:\n{said}"
    );
    assert!(said.contains("checksum mismatch"), "{said}");
}

#[test]
fn verify_never_calls_an_unidentifiable_directory_clean() {
    let out = paxstore(&["verify", "/nonexistent/paxstore-store"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // An empty directory, and one holding only LOCK (a RocksDB directory that lost
    // everything else, CURRENT included): exit 3, never "clean".
    let empty = tempfile::tempdir().unwrap();
    let out = paxstore(&["verify", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("cannot identify"), "{}", text(&out));
    assert!(text(&out).contains("it is empty"), "{}", text(&out));
    let lock_only = tempfile::tempdir().unwrap();
    std::fs::write(lock_only.path().join("LOCK"), b"").unwrap();
    for cmd in ["verify", "inspect"] {
        let out = paxstore(&[cmd, lock_only.path().to_str().unwrap()]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {said}");
        assert!(
            said.contains("cannot identify") && said.contains("`LOCK`"),
            "{said}"
        );
        assert!(!said.contains("clean"), "{said}");
    }
}

#[test]
fn verify_exit_codes_are_distinct_from_usage_errors_and_documented() {
    let usage = paxstore(&["verify"]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
    let unknown = paxstore(&["verify", "--no-such-flag", "/tmp"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    let help = text(&paxstore(&["verify", "--help"]));
    for needle in [
        "0: clean",
        "1: corrupt",
        "3: unreadable",
        "2 is reserved for usage errors",
    ] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
    let help = text(&paxstore(&["inspect", "--help"]));
    assert!(help.contains("3: the directory cannot be read"), "{help}");
}

#[cfg(feature = "files")]
#[test]
fn inspect_and_verify_show_the_files_marker_and_report_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    files_store(dir.path());
    let id = {
        let s = paxstore_files::FilesStorage::<KeyValue>::open_with(
            dir.path(),
            paxstore_files::FilesOptions::new(),
        )
        .unwrap();
        s.marker().store_id
    };
    let id = format!("store id {id:032x}");
    for cmd in ["inspect", "verify"] {
        let out = paxstore(&[cmd, dir.path().to_str().unwrap()]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {said}");
        assert!(said.contains("backend files, format 1"), "{cmd}: {said}");
        assert!(said.contains(&id), "{cmd}: {id} not in {said}");
    }
    // A file paxstore-files refuses to open beside: a problem, not a note.
    std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("notes.txt: not a paxstore-files file"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
    // The marker deleted: open refuses the store, so verify does not call it clean.
    std::fs::remove_file(dir.path().join("PAXSTORE")).unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("PAXSTORE: missing"), "{said}");
    assert!(said.contains("adopt_unmarked_store"), "{said}");
}

#[cfg(feature = "files")]
#[test]
fn inspect_and_verify_detect_a_files_multi_store_by_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |log: &str| format!("files-multi:{}#{log}", dir.path().display());
    let mut a = paxstore::AnyStorage::<KeyValue>::open(&spec("shard-a")).unwrap();
    let mut b = paxstore::AnyStorage::<KeyValue>::open(&spec("shard-b")).unwrap();
    a.append_entries((0..40).map(|i| KeyValue::new("k", i, 32)).collect())
        .unwrap();
    b.append_entry(KeyValue::new("k", 7, 32)).unwrap();
    drop((a, b));
    for cmd in ["inspect", "verify"] {
        let out = paxstore(&[cmd, dir.path().to_str().unwrap()]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {said}");
        assert!(
            said.contains("backend files-multi, format"),
            "{cmd}: {said}"
        );
    }
    let said = text(&paxstore(&["inspect", dir.path().to_str().unwrap()]));
    for log in ["shard-a", "shard-b"] {
        assert!(said.contains(&format!("log \"{log}\"")), "{log}: {said}");
    }
}

#[test]
fn demo_runs_on_every_backend() {
    for backend in Backend::enabled() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("demo");
        let out = paxstore(&[
            "demo",
            "--backend",
            backend.name(),
            "--dir",
            root.to_str().unwrap(),
            "--writes",
            "4000",
            "--keys",
            "200",
        ]);
        let said = text(&out);
        assert!(out.status.success(), "{backend}:\n{said}");
        assert!(said.contains("RESULT: all nodes agree"), "{said}");
        assert!(said.contains("caught up: YES"), "{said}");
        if backend.is_persistent() {
            for node in 1..=3 {
                let verify = paxstore(&[
                    "verify",
                    root.join(format!("node-{node}")).to_str().unwrap(),
                ]);
                assert_eq!(
                    verify.status.code(),
                    Some(0),
                    "{backend}: {}",
                    text(&verify)
                );
            }
        }
    }
}

#[test]
fn torture_loses_nothing_on_every_persistent_backend() {
    for backend in Backend::persistent() {
        let dir = tempfile::tempdir().unwrap();
        let out = paxstore(&[
            "torture",
            "--backend",
            backend.name(),
            "--dir",
            dir.path().to_str().unwrap(),
            "--iterations",
            "5",
            "--max-batches",
            "100",
        ]);
        let said = text(&out);
        assert!(out.status.success(), "{backend}:\n{said}");
        assert!(said.contains("RESULT: nothing acknowledged lost"), "{said}");
    }
    let out = paxstore(&["torture", "--backend", "memory", "--dir", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(2), "memory cannot be tortured");
}

#[test]
fn torture_writes_many_logs_of_one_store_at_once() {
    let many: Vec<Backend> = Backend::persistent()
        .into_iter()
        .filter(|b| b.syntax() == paxstore::Syntax::DirAndLog)
        .collect();
    for backend in &many {
        let dir = tempfile::tempdir().unwrap();
        let out = paxstore(&[
            "torture",
            "--backend",
            backend.name(),
            "--logs",
            "3",
            "--dir",
            dir.path().to_str().unwrap(),
            "--iterations",
            "3",
            "--max-batches",
            "60",
            "--verbose",
        ]);
        let said = text(&out);
        assert!(out.status.success(), "{backend}:\n{said}");
        assert!(said.contains("RESULT: nothing acknowledged lost"), "{said}");
        assert!(said.contains("3 logs written at once"), "{said}");
        for log in ["log-0: ", "log-1: ", "log-2: "] {
            assert!(
                said.contains(log),
                "{backend}: every log is checked:\n{said}"
            );
        }
    }
    for backend in Backend::persistent() {
        if !many.contains(&backend) {
            let out = paxstore(&[
                "torture",
                "--backend",
                backend.name(),
                "--logs",
                "2",
                "--dir",
                "/tmp/x",
            ]);
            assert_eq!(out.status.code(), Some(2), "{backend}: {}", text(&out));
            assert!(text(&out).contains("single log"), "{}", text(&out));
        }
    }
}

/// Every file under `dir` (recursively) with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.insert(p.clone(), Vec::new());
            out.extend(tree(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn torture_seed_repeats_the_kill_points_and_a_missing_lazyfs_is_not_a_store_failure() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sub: &str, seed: &str, extra: &[&str]| {
        let path = dir.path().join(sub);
        let mut args = vec![
            "torture",
            "--dir",
            path.to_str().unwrap(),
            "--iterations",
            "4",
            "--max-batches",
            "40",
            "--seed",
            seed,
            "--verbose",
        ];
        args.extend_from_slice(extra);
        paxstore(&args)
    };
    let kill_points = |out: &Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("kill after"))
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (run("a", "42", &[]), run("b", "42", &[]));
    assert!(a.status.success() && b.status.success(), "{}", text(&a));
    assert!(
        text(&a).contains("seed 42,"),
        "the seed given is the seed printed: {}",
        text(&a)
    );
    assert_eq!(kill_points(&a).len(), 4, "{}", text(&a));
    assert_eq!(
        kill_points(&a),
        kill_points(&b),
        "same seed, same kill points"
    );
    assert_ne!(
        kill_points(&a),
        kill_points(&run("c", "43", &[])),
        "another seed, other kill points"
    );

    // No LazyFS behind the FIFOs: the file system under test is missing, exit code 4.
    let fifos = format!(
        "{0}/no-such-fifo,{0}/no-such-done",
        dir.path().to_str().unwrap()
    );
    let out = run("d", "42", &["--power-loss", &fifos]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("not a store failure"), "{}", text(&out));
    assert!(text(&out).contains("power losses:"), "{}", text(&out));
}

#[test]
fn bench_quick_prints_one_table() {
    let dir = tempfile::tempdir().unwrap();
    // What a user may keep in the directory given: bench must not touch it, even under the
    // names of the backends.
    for sub in ["files", "rocks", "memory"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join("precious"), sub.as_bytes()).unwrap();
    }
    std::fs::write(dir.path().join("precious"), b"mine").unwrap();
    let before = tree(dir.path());
    let mut args = vec![
        "bench",
        "--size",
        "quick",
        "--raw",
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    let names: Vec<String> = Backend::enabled()
        .iter()
        .map(|b| b.name().to_string())
        .collect();
    let list = names.join(",");
    args.extend(["--backends", &list]);
    let out = paxstore(&args);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for needle in [
        "append 64 x 128 B, durable",
        "snapshot-plus-truncate",
        "reopen",
        "(1.00x)",
    ] {
        assert!(said.contains(needle), "{needle:?} not in:\n{said}");
    }
    // 1 thread on 1 log and 8 threads on 8 logs (of one store where the backend has many).
    for backend in Backend::persistent() {
        for threads in [1, 8] {
            let needle = format!(
                "RESULT backend={backend} workload=parallel_append_{threads} ops={} ",
                threads * 10
            );
            assert!(said.contains(&needle), "{needle:?} not in:\n{said}");
        }
    }
    assert!(
        said.contains(&format!(
            "stores in {}/paxstore-bench-",
            dir.path().display()
        )),
        "{said}"
    );
    assert_eq!(
        tree(dir.path()),
        before,
        "bench changed what it did not create"
    );
}

/// A RocksDB store whose entries reached table files (small memtables force flushes).
#[cfg(feature = "rocks")]
fn rocks_store(dir: &Path) -> paxstore_core::identity::Marker {
    use paxstore_rocks::{RocksOptions, RocksStorage};
    let mut s =
        RocksStorage::<KeyValue>::open_with(dir, RocksOptions::new().write_buffer_bytes(64 << 10))
            .unwrap();
    for b in 0..100 {
        let at = b * 20;
        s.write_atomically(vec![
            StorageOp::AppendEntries(
                (at..at + 20)
                    .map(|i| KeyValue::new("k", i as u64, 1000))
                    .collect(),
            ),
            StorageOp::SetDecidedIndex(at + 20),
        ])
        .unwrap();
    }
    s.write_atomically(vec![StorageOp::Trim(100), StorageOp::SetCompactedIdx(100)])
        .unwrap();
    s.store().marker()
}

#[cfg(feature = "rocks")]
#[test]
fn rocks_inspect_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let marker = rocks_store(dir.path());
    let inspect = paxstore(&["inspect", dir.path().to_str().unwrap()]);
    let shown = text(&inspect);
    assert_eq!(inspect.status.code(), Some(0), "{shown}");
    for needle in [
        "backend:        rocks",
        "log \"log\"",
        "[100, 2000)",
        "decided idx:  2000",
        "compacted:    100",
        "column family paxstore.log.log",
    ] {
        assert!(shown.contains(needle), "{needle:?} not in:\n{shown}");
    }
    let clean = paxstore(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    // Both show the marker.
    let id = format!("backend rocks, format 1, store id {:032x}", marker.store_id);
    assert!(shown.contains(&id), "{id} not in:\n{shown}");
    assert!(text(&clean).contains(&id), "{id} not in:\n{}", text(&clean));

    // Flip one byte in the middle of the largest table file.
    let sst = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a table file");
    let mut bytes = std::fs::read(&sst).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x10;
    std::fs::write(&sst, &bytes).unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let name = sst.file_name().unwrap().to_str().unwrap();
    assert!(said.contains(name), "names the table file:\n{said}");
    assert!(said.contains("offset"), "and the offset:\n{said}");
}

#[cfg(feature = "rocks")]
#[test]
fn rocks_verify_refuses_to_call_damaged_identities_clean() {
    // A file RocksDB does not write: open refuses the directory, verify reports it.
    let dir = tempfile::tempdir().unwrap();
    rocks_store(dir.path());
    std::fs::write(dir.path().join("seg-0000000000000001.log"), b"x").unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("seg-0000000000000001.log: neither a RocksDB"),
        "{said}"
    );
    std::fs::remove_file(dir.path().join("seg-0000000000000001.log")).unwrap();

    // The marker deleted.
    std::fs::remove_file(dir.path().join("PAXSTORE")).unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("PAXSTORE: missing"), "{said}");

    // CURRENT deleted: the database cannot be identified; verify says why open refuses it.
    let dir = tempfile::tempdir().unwrap();
    rocks_store(dir.path());
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("without its CURRENT file"), "{said}");
}

/// A files store whose oldest segments were deleted by a trim, and the segment file names
/// left, oldest first.
#[cfg(feature = "files")]
fn trimmed_files_store(dir: &Path) -> Vec<String> {
    use paxstore_files::{FilesOptions, FilesStorage};
    let mut s =
        FilesStorage::<KeyValue>::open_with(dir, FilesOptions::new().segment_size(64 << 10))
            .unwrap();
    for b in 0..100 {
        let at = b * 10;
        s.write_atomically(vec![
            StorageOp::AppendEntries(
                (at..at + 10)
                    .map(|i| KeyValue::new("k", i as u64, 300))
                    .collect(),
            ),
            StorageOp::SetDecidedIndex(at + 10),
        ])
        .unwrap();
    }
    s.write_atomically(vec![StorageOp::Trim(650), StorageOp::SetCompactedIdx(650)])
        .unwrap();
    s.wait_for_reclaim().unwrap();
    drop(s);
    let mut segments: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    segments.sort();
    segments
}

#[cfg(feature = "files")]
#[test]
fn verify_takes_segments_below_a_gap_for_dead_as_open_does() {
    let dir = tempfile::tempdir().unwrap();
    let segments = trimmed_files_store(dir.path());
    let id = |name: &str| -> u64 {
        name.trim_start_matches("seg-")
            .trim_end_matches(".log")
            .parse()
            .unwrap()
    };
    let oldest = id(&segments[0]);
    assert!(oldest >= 3 && segments.len() >= 2, "{segments:?}");
    // A dead segment below a gap: a deletion that failed.
    let dead = format!("seg-{:016}.log", oldest - 2);
    std::fs::copy(dir.path().join(&segments[0]), dir.path().join(&dead)).unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("dead segment"), "{said}");
    // The store opens, as verify said, and the dead segment goes.
    drop(
        paxstore_files::FilesStorage::<KeyValue>::open_with(dir.path(), Default::default())
            .unwrap(),
    );
    // A live segment missing: the oldest of the live run.
    std::fs::remove_file(dir.path().join(&segments[0])).unwrap();
    let out = paxstore(&["verify", dir.path().to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("segment missing"), "{said}");
}
