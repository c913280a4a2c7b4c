//! What a directory holds before RocksDB is let near it: the store marker, the names of the
//! files, and whether a database that lost its `CURRENT` file still holds data.
//!
//! A store's directory holds the paxstore marker ([`MARKER_FILE`], see
//! [`paxstore_core::identity`]), written before anything else when the store is created, and
//! RocksDB's own files, matched by their exact name patterns (see [`is_own_file_name`]).
//! [`identify`] reads a directory without changing anything and says what
//! [`RocksStore::open`](crate::RocksStore::open) will do with it, or why it refuses it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use paxstore_core::identity::{Marker, MARKER_FILE, MARKER_TMP};

use crate::db::FORMAT_VERSION;
use crate::error::{Error, Result};

/// The backend name in the store marker.
pub const BACKEND: &str = "rocks";

/// What a directory holds, as [`identify`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// No directory, an empty one, or one holding only the temporary file of a marker write
    /// that was cut short: open creates a new store.
    Nothing,
    /// A marked store whose RocksDB database was never created (its creation was cut short
    /// after the marker was written, and holds no data): open creates the database.
    Unfinished(Marker),
    /// A marked store with its database.
    Store(Marker),
    /// A RocksDB database without a marker, found only when adoption was asked for: a
    /// database written before stores had markers, or whose marker was deleted. Open checks
    /// that it is a paxstore database before it writes a marker.
    Unmarked,
}

impl Found {
    /// The marker, if the directory has one.
    pub fn marker(&self) -> Option<&Marker> {
        match self {
            Found::Unfinished(m) | Found::Store(m) => Some(m),
            Found::Nothing | Found::Unmarked => None,
        }
    }
}

fn digits(s: &str, min: usize) -> bool {
    s.len() >= min && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `name` is a file RocksDB writes into a database directory, by its exact pattern:
/// `CURRENT`, `LOCK`, `IDENTITY`, `LOG`, `LOG.old[.<micros>]`, `MANIFEST-<n>`,
/// `OPTIONS-<n>[.dbtmp]`, and `<n>.log` (write-ahead log), `<n>.sst` / `<n>.ldb` (table files),
/// `<n>.blob`, `<n>.dbtmp`, where `<n>` is a file number of at least six decimal digits.
/// (`seg-0000000000000001.log`, a paxstore-files segment, is not one.)
pub fn is_rocksdb_file_name(name: &str) -> bool {
    if matches!(name, "CURRENT" | "LOCK" | "IDENTITY" | "LOG" | "LOG.old") {
        return true;
    }
    if let Some(micros) = name.strip_prefix("LOG.old.") {
        return digits(micros, 1);
    }
    if let Some(n) = name.strip_prefix("MANIFEST-") {
        return digits(n, 6);
    }
    if let Some(rest) = name.strip_prefix("OPTIONS-") {
        return digits(rest.strip_suffix(".dbtmp").unwrap_or(rest), 6);
    }
    match name.rsplit_once('.') {
        Some((n, ext)) => digits(n, 6) && matches!(ext, "log" | "sst" | "ldb" | "blob" | "dbtmp"),
        None => false,
    }
}

/// Whether `name` belongs in a paxstore-rocks store's directory: a RocksDB file
/// ([`is_rocksdb_file_name`]) or the marker (`PAXSTORE`, `PAXSTORE.tmp`).
pub fn is_own_file_name(name: &str) -> bool {
    name == MARKER_FILE || name == MARKER_TMP || is_rocksdb_file_name(name)
}

/// Evidence that a database without `CURRENT` held data: table files, a manifest written by
/// an open (the first, `MANIFEST-000001`, is written at creation; every open starts a new
/// one), or a non-empty write-ahead log. Returns a description of each.
fn data_without_current(files: &[(String, u64)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, len) in files {
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        if digits(stem, 6) && matches!(ext, "sst" | "ldb" | "blob") {
            found.push(format!("table file `{name}`"));
        } else if digits(stem, 6) && ext == "log" && *len > 0 {
            found.push(format!("write-ahead log `{name}` ({len} bytes)"));
        } else if let Some(n) = name.strip_prefix("MANIFEST-") {
            if digits(n, 6) && n.parse::<u64>().map_or(true, |n| n > 1) {
                found.push(format!(
                    "manifest `{name}` (written by an open of the database)"
                ));
            }
        }
    }
    found
}

fn shown(names: &[&str]) -> String {
    let mut out: Vec<String> = names.iter().take(6).map(|n| format!("`{n}`")).collect();
    if names.len() > 6 {
        out.push(format!("and {} more", names.len() - 6));
    }
    out.join(", ")
}

/// Reads the marker file of `dir`.
pub(crate) fn read_marker(dir: &Path) -> Result<Marker> {
    let path = dir.join(MARKER_FILE);
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| Error::Io { op, path, source }
    };
    let mut bytes = Vec::new();
    File::open(&path)
        .map_err(io("open marker"))?
        // A marker is about 120 bytes; reading a little more than 4 KiB bounds the damage.
        .take(4097)
        .read_to_end(&mut bytes)
        .map_err(io("read marker"))?;
    if bytes.len() > 4096 {
        return Err(Error::BadMarker {
            path,
            detail: "the file is larger than any marker".into(),
        });
    }
    Marker::decode(&bytes).map_err(|e| Error::BadMarker { path, detail: e.0 })
}

/// Says what `dir` holds, without changing anything in it: the decision
/// [`RocksStore::open_with`](crate::RocksStore::open_with) acts on (with
/// [`RocksOptions::adopt_unmarked_store`](crate::RocksOptions::adopt_unmarked_store) given as
/// `adopt_unmarked`).
///
/// Errors, each naming the directory, what was found and what to do:
/// [`Error::Foreign`] for another backend's store, files that are not RocksDB's nor the
/// marker, or a non-empty directory without a marker (an unmarked RocksDB database is taken
/// only with `adopt_unmarked`); [`Error::NoCurrent`] for a database that lost its `CURRENT`
/// file but holds data (opening it would start an empty database over it);
/// [`Error::BadMarker`] and [`Error::FormatVersion`] for a marker that is damaged or of
/// another format.
pub fn identify(dir: &Path, adopt_unmarked: bool) -> Result<Found> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(source) => {
            return Err(Error::Io {
                op: "read directory",
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files: Vec<(String, u64)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            op: "read directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        files.push((name, len));
    }
    files.sort();
    let has = |n: &str| files.iter().any(|(name, _)| name == n);
    let foreign = |found: String, hint: &str| Error::Foreign {
        path: dir.to_path_buf(),
        detail: found,
        hint: hint.to_string(),
    };
    let strangers: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !is_own_file_name(n))
        .collect();
    let files_store = |names: &[&str]| {
        names
            .iter()
            .any(|n| n.starts_with("seg-") || n.starts_with("snap-"))
    };

    if has(MARKER_FILE) {
        let marker = read_marker(dir)?;
        if marker.backend != BACKEND {
            return Err(foreign(
                format!("its marker says it is a `{}` store", marker.backend),
                "Open it with that backend.",
            ));
        }
        if marker.format != FORMAT_VERSION {
            return Err(Error::FormatVersion {
                path: dir.to_path_buf(),
                found: marker.format,
                expected: FORMAT_VERSION,
            });
        }
        if !strangers.is_empty() {
            return Err(foreign(
                format!(
                    "it holds {}, which neither RocksDB nor paxstore-rocks writes",
                    shown(&strangers)
                ),
                "Move those files out of the store's directory.",
            ));
        }
        if has("CURRENT") {
            return Ok(Found::Store(marker));
        }
        let evidence = data_without_current(&files);
        if !evidence.is_empty() {
            return Err(Error::NoCurrent {
                path: dir.to_path_buf(),
                found: evidence.join(", "),
            });
        }
        return Ok(Found::Unfinished(marker));
    }

    let others: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != MARKER_TMP)
        .collect();
    if others.is_empty() {
        return Ok(Found::Nothing);
    }
    if !strangers.is_empty() {
        let hint = if files_store(&strangers) {
            "It looks like a paxstore-files store: open it with the files backend, or give \
             paxstore-rocks an empty or new directory."
        } else {
            "Give paxstore-rocks an empty or new directory (it creates it if missing)."
        };
        return Err(foreign(
            format!(
                "it holds {}, which neither RocksDB nor paxstore-rocks writes, and no \
                 `{MARKER_FILE}` marker",
                shown(&strangers)
            ),
            hint,
        ));
    }
    if !has("CURRENT") {
        let evidence = data_without_current(&files);
        if !evidence.is_empty() {
            return Err(Error::NoCurrent {
                path: dir.to_path_buf(),
                found: evidence.join(", "),
            });
        }
        return Err(foreign(
            format!(
                "it holds {} but no RocksDB database (no `CURRENT`) and no `{MARKER_FILE}` \
                 marker",
                shown(&others)
            ),
            "It may be what is left of a database whose files were deleted, or of one whose \
             creation was cut short before stores had markers. If you are sure nothing in it \
             is needed, empty it; otherwise give paxstore-rocks a new directory.",
        ));
    }
    if adopt_unmarked {
        return Ok(Found::Unmarked);
    }
    Err(foreign(
        format!(
            "it holds a RocksDB database ({}) but no `{MARKER_FILE}` marker",
            shown(&others)
        ),
        "It looks like a paxstore-rocks store whose marker was deleted, or one written before \
         stores had markers: if you are sure it is this store's directory, open it once with \
         `RocksOptions::adopt_unmarked_store(true)` to write a new marker (open checks that \
         it is a paxstore database first).",
    ))
}

/// fsyncs directory `dir`.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Creates `dir` (and missing parents) if it does not exist, and makes its entry durable.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Ok(()),
    };
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Io {
                op: "open directory",
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "it exists and is not a directory",
                ),
            })
        }
        Err(_) => {
            if fs::metadata(parent).is_err() {
                ensure_dir(parent)?;
            }
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(Error::Io {
                        op: "create directory",
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            }
        }
    }
    // Whether this call created it or an earlier open that died before this fsync did.
    sync_dir(parent)
}

/// Writes a new marker into `dir`: under [`MARKER_TMP`], fsynced, renamed into place, the
/// directory fsynced. A leftover temp file of an interrupted creation is replaced.
pub(crate) fn write_marker(dir: &Path) -> Result<Marker> {
    let marker = Marker::new(BACKEND, FORMAT_VERSION);
    let tmp = dir.join(MARKER_TMP);
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                op: "remove interrupted marker",
                path: tmp,
                source,
            })
        }
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io("create marker", &tmp))?;
    file.write_all(&marker.encode())
        .and_then(|()| file.sync_all())
        .map_err(io("write marker", &tmp))?;
    drop(file);
    fs::rename(&tmp, dir.join(MARKER_FILE)).map_err(io("rename marker", &tmp))?;
    sync_dir(dir)?;
    Ok(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdb_names_are_matched_exactly() {
        for ok in [
            "CURRENT",
            "LOCK",
            "IDENTITY",
            "LOG",
            "LOG.old",
            "LOG.old.1733100000123456",
            "MANIFEST-000001",
            "MANIFEST-1234567",
            "OPTIONS-000007",
            "OPTIONS-000007.dbtmp",
            "000004.log",
            "000010.sst",
            "000010.ldb",
            "000011.blob",
            "000001.dbtmp",
        ] {
            assert!(is_rocksdb_file_name(ok), "{ok}");
            assert!(is_own_file_name(ok), "{ok}");
        }
        for not in [
            "seg-0000000000000001.log",
            "snap-0000000000000001.snap",
            "1.log",
            "00004.log",
            "000004.LOG",
            "+00004.log",
            "000004.log.bak",
            "000004.txt",
            "MANIFEST-",
            "MANIFEST-00001x",
            "OPTIONS-7",
            "LOG.old.x",
            "LOCK.bak",
            "notes.txt",
            "PAXSTORE",
            "",
        ] {
            assert!(!is_rocksdb_file_name(not), "{not}");
        }
        assert!(is_own_file_name("PAXSTORE") && is_own_file_name("PAXSTORE.tmp"));
    }

    #[test]
    fn evidence_of_data_without_current() {
        let f = |n: &str, len: u64| (n.to_string(), len);
        assert!(data_without_current(&[
            f("LOCK", 0),
            f("IDENTITY", 37),
            f("MANIFEST-000001", 100),
            f("000001.dbtmp", 16),
            f("OPTIONS-000005", 7000),
            f("000004.log", 0),
        ])
        .is_empty());
        assert_eq!(data_without_current(&[f("000009.sst", 1)]).len(), 1);
        assert_eq!(data_without_current(&[f("MANIFEST-000005", 1)]).len(), 1);
        assert_eq!(data_without_current(&[f("000004.log", 1)]).len(), 1);
    }
}
