//! Reading and checking a store directory without opening the store: [`verify`].

use std::collections::BTreeMap;
use std::path::Path;

use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::storage::StopSign;
use paxstore_core::codec;
use paxstore_core::verify::{
    check_marker, describe_stopsign, human_bytes, list_dir, LogSummary, Part, Problem, Summary,
    Unreadable,
};
use rocksdb::{DBWithThreadMode, ReadOptions, SingleThreaded};

use crate::db::{FORMAT_VERSION, MAGIC};
use crate::identity::{identify, is_own_file_name, is_rocksdb_file_name, BACKEND};
use crate::keys::{
    decode_entry_key, meta_key, registered_log, Field, FORMAT_KEY, LOG_CF_PREFIX, META_CF,
};
use crate::options::RocksOptions;

/// Read-only access needs no shared column-family handles.
type Db = DBWithThreadMode<SingleThreaded>;

/// What a scan of a log's column family found: its lowest and highest index, the number of
/// keys, and the first index missing between them.
#[derive(Debug, Clone, Copy, Default)]
struct KeyRun {
    lo: Option<u64>,
    hi: Option<u64>,
    keys: u64,
    gap: Option<u64>,
}

fn scan_options() -> ReadOptions {
    let mut read = ReadOptions::default();
    read.set_verify_checksums(true);
    read.fill_cache(false);
    read
}

/// Reads and checks the paxstore-rocks store in `dir` without opening it for writing: the
/// database is opened read-only (no lock is taken, nothing is written; the write-ahead log is
/// replayed into memory only), every column family is scanned whole with block checksums
/// verified, the format record and each log's metadata are decoded, and each log's entry keys
/// must run without a gap from the log's first index.
///
/// The [`Summary`] lists each log, each column family with its size, and the write-ahead log;
/// problems name the directory (RocksDB does not say where in its files), or the file for a
/// file that does not belong in the directory or a missing or damaged marker.
///
/// [`Unreadable`] when `dir` cannot be read, is not a paxstore-rocks store (its marker names
/// another backend, or it holds no RocksDB database with paxstore's metadata column family),
/// lost its `CURRENT` file, cannot be opened by RocksDB, or holds a format version this build
/// does not read.
pub fn verify(dir: &Path) -> Result<Summary, Unreadable> {
    let names = list_dir(dir)?;
    if !names.iter().any(|n| n == "CURRENT") {
        // Without CURRENT, RocksDB cannot say what the database holds; say what open does.
        let reason = match identify(dir, true) {
            Err(e) => e.to_string(),
            Ok(_) => "a paxstore-rocks store whose creation was cut short before RocksDB \
                      wrote its CURRENT file: it holds no data yet (the next open creates an \
                      empty database in it)"
                .into(),
        };
        return Err(Unreadable::new(dir, reason));
    }
    let mut problems = Vec::new();
    for name in names.iter().filter(|n| !is_own_file_name(n)) {
        problems.push(Problem {
            file: dir.join(name),
            offset: None,
            reason: "neither a RocksDB nor a paxstore-rocks file: paxstore-rocks refuses to \
                     open a directory that holds it (move it out of the store's directory)"
                .into(),
        });
    }
    let (marker, missing) = check_marker(
        dir,
        BACKEND,
        FORMAT_VERSION,
        "`RocksOptions::adopt_unmarked_store(true)`",
    )?;
    problems.extend(missing);
    // The database options paxstore-rocks opens with: they must agree on how the MANIFEST
    // tracks write-ahead-log files (RocksDB's read-only recovery crashes otherwise).
    let opts = RocksOptions::new().db_options();
    let cfs = Db::list_cf(&opts, dir).map_err(|e| Unreadable::new(dir, format!("RocksDB: {e}")))?;
    if !cfs.iter().any(|n| n == META_CF) {
        return Err(Unreadable::new(
            dir,
            format!(
                "a RocksDB database without the {META_CF:?} column family: not a paxstore store"
            ),
        ));
    }
    // Read-only: no lock is taken and nothing is written; the write-ahead log is replayed
    // into memory only.
    let db = Db::open_cf_for_read_only(&opts, dir, &cfs, false)
        .map_err(|e| Unreadable::new(dir, format!("RocksDB refuses to open it: {e}")))?;
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| Unreadable::new(dir, "the metadata column family cannot be opened"))?;
    let mut notes = Vec::new();
    let problem = |problems: &mut Vec<Problem>, reason: String| {
        problems.push(Problem {
            file: dir.to_path_buf(),
            offset: None,
            reason,
        })
    };

    let format_version = match db.get_cf(meta, FORMAT_KEY) {
        Ok(Some(bytes)) => match codec::decode::<(String, u32)>("format record", &bytes) {
            Ok((magic, v)) if magic == MAGIC => v,
            Ok((magic, _)) => {
                return Err(Unreadable::new(
                    dir,
                    format!("the format record names {magic:?}"),
                ))
            }
            Err(e) => {
                return Err(Unreadable::new(
                    dir,
                    format!("unreadable format record: {e}"),
                ))
            }
        },
        Ok(None) => {
            notes.push("no format record (a database whose creation was cut short)".into());
            0
        }
        Err(e) => {
            return Err(Unreadable::new(
                dir,
                format!("reading the format record: {e}"),
            ))
        }
    };
    if format_version > FORMAT_VERSION {
        return Err(Unreadable::new(
            dir,
            format!(
                "on-disk format version {format_version}, this build reads version \
                 {FORMAT_VERSION}"
            ),
        ));
    }

    // Every column family, scanned whole with block checksums verified.
    let mut parts = Vec::new();
    let mut records = 0u64;
    let mut entries = 0u64;
    let mut log_keys: BTreeMap<String, KeyRun> = BTreeMap::new();
    for name in &cfs {
        let Some(cf) = db.cf_handle(name) else {
            problem(
                &mut problems,
                format!("column family {name:?} cannot be opened"),
            );
            continue;
        };
        let log = name.strip_prefix(LOG_CF_PREFIX).map(str::to_string);
        let mut it = db.raw_iterator_cf_opt(cf, scan_options());
        it.seek_to_first();
        let mut run = KeyRun::default();
        let mut bytes = 0u64;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            run.keys += 1;
            bytes += (k.len() + v.len()) as u64;
            if log.is_some() {
                match decode_entry_key(k) {
                    Some(i) => {
                        let i = i as u64;
                        if let Some(h) = run.hi {
                            if Some(i) != h.checked_add(1) && run.gap.is_none() {
                                run.gap = Some(h.saturating_add(1));
                            }
                        }
                        run.lo.get_or_insert(i);
                        run.hi = Some(i);
                    }
                    None => problem(
                        &mut problems,
                        format!("column family {name:?}: a key of the wrong shape {k:02x?}"),
                    ),
                }
            }
            it.next();
        }
        if let Err(e) = it.status() {
            problem(&mut problems, format!("column family {name:?}: {e}"));
        }
        records += run.keys;
        if let Some(log) = &log {
            entries += run.keys;
            log_keys.insert(log.clone(), run);
        }
        let size = |p: &str| db.property_int_value_cf(cf, p).ok().flatten().unwrap_or(0);
        let (tables, memtables) = (
            size("rocksdb.total-sst-files-size"),
            size("rocksdb.cur-size-all-mem-tables"),
        );
        parts.push(Part {
            name: format!("column family {name}"),
            bytes: tables + memtables,
            detail: format!(
                "{} keys ({} of keys and values); table files {}, memtables {}",
                run.keys,
                human_bytes(bytes),
                human_bytes(tables),
                human_bytes(memtables),
            ),
        });
    }
    let wal: u64 = names
        .iter()
        .filter(|name| name.ends_with(".log") && is_rocksdb_file_name(name))
        .filter_map(|name| std::fs::symlink_metadata(dir.join(name)).ok())
        .map(|m| m.len())
        .sum();
    parts.push(Part {
        name: "write-ahead log (*.log)".into(),
        bytes: wal,
        detail: "shared by every log of the database".into(),
    });

    // Each registered log's metadata.
    let mut logs = Vec::new();
    let mut it = db.raw_iterator_cf_opt(meta, scan_options());
    it.seek_to_first();
    let mut registered = Vec::new();
    while let Some(k) = it.key() {
        if let Some(name) = registered_log(k) {
            registered.push(String::from_utf8_lossy(name).into_owned());
        }
        it.next();
    }
    if let Err(e) = it.status() {
        problem(&mut problems, format!("column family {META_CF:?}: {e}"));
    }
    drop(it);
    for name in registered {
        let get = |field: Field| -> Option<Vec<u8>> {
            db.get_cf(meta, meta_key(&name, field)).ok().flatten()
        };
        let mut bad = Vec::new();
        let mut decode_index = |field: Field| -> u64 {
            get(field)
                .map(|b| match codec::decode::<usize>(field.what(), &b) {
                    Ok(v) => v as u64,
                    Err(e) => {
                        bad.push(format!("log {name:?}: {e}"));
                        0
                    }
                })
                .unwrap_or(0)
        };
        let first = decode_index(Field::First);
        let decided = decode_index(Field::Decided);
        let compacted = decode_index(Field::Compacted);
        let ballot = |field: Field, bad: &mut Vec<String>| {
            get(field).and_then(|b| match codec::decode::<Ballot>(field.what(), &b) {
                Ok(v) => Some(v),
                Err(e) => {
                    bad.push(format!("log {name:?}: {e}"));
                    None
                }
            })
        };
        let promise = ballot(Field::Promise, &mut bad);
        let accepted = ballot(Field::AcceptedRound, &mut bad);
        let stopsign = get(Field::Stopsign).map(|b| {
            match codec::decode::<StopSign>(Field::Stopsign.what(), &b) {
                Ok(s) => describe_stopsign(&s),
                Err(e) => {
                    bad.push(format!("log {name:?}: {e}"));
                    "undecodable".into()
                }
            }
        });
        let snapshot_bytes = get(Field::Snapshot).map(|b| b.len() as u64);
        let run = log_keys.get(&name).copied().unwrap_or_default();
        let next = run.hi.map_or(first, |h| h.saturating_add(1)).max(first);
        if let Some(lo) = run.lo {
            if lo != first {
                bad.push(format!(
                    "log {name:?}: its first stored entry is {lo}, its metadata says {first}"
                ));
            }
        }
        if let Some(g) = run.gap {
            bad.push(format!("log {name:?}: entry {g} is missing"));
        }
        if run.lo.is_some() && run.keys != next - first {
            bad.push(format!(
                "log {name:?}: {} entries stored for the range [{first}, {next})",
                run.keys
            ));
        }
        for reason in bad {
            problem(&mut problems, reason);
        }
        logs.push(LogSummary {
            name,
            first,
            next,
            decided,
            compacted,
            promise,
            accepted,
            stopsign,
            snapshot_bytes,
        });
    }
    Ok(Summary {
        backend: BACKEND.to_string(),
        dir: dir.to_path_buf(),
        format_version,
        marker,
        logs,
        parts,
        records_checked: records,
        entries_checked: entries,
        problems,
        notes,
    })
}
