//! The `paxstore` command, run as a user runs it: `--help` everywhere, `verify` exit codes
//! (a flipped byte is found and located), `inspect`, a short `demo` and `torture` on every
//! persistent backend, `bench` in its quick size.

use std::path::Path;
use std::process::{Command, Output};

use omnipaxos::storage::{Storage, StorageOp};
use paxstore::Backend;
use storage_core::kv::KeyValue;

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
    use storage_files::{FilesOptions, FilesStorage};
    let mut s =
        FilesStorage::<KeyValue>::open(dir, FilesOptions::new().segment_size(64 << 10)).unwrap();
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
        StorageOp::SetSnapshot(Some(storage_core::kv::KVSnapshot::sized(4, 2048))),
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
    let record = storage_files::format::header_len(&bytes).unwrap();
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
fn verify_of_an_unreadable_directory_exits_2() {
    let out = paxstore(&["verify", "/nonexistent/paxstore-store"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let empty = tempfile::tempdir().unwrap();
    let out = paxstore(&["verify", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no paxstore store"), "{}", text(&out));
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
    let mut args = vec![
        "bench",
        "--size",
        "quick",
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
}

/// A RocksDB store whose entries reached table files (small memtables force flushes).
#[cfg(feature = "rocks")]
fn rocks_store(dir: &Path) {
    use storage_rocks::{RocksOptions, RocksStorage};
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
}

#[cfg(feature = "rocks")]
#[test]
fn rocks_inspect_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    rocks_store(dir.path());
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
