//! What a backend's verifier reports: the shared shape of `paxstore inspect` and
//! `paxstore verify`, whatever the backend.
//!
//! Each persistent backend reads its own directory with its own readers and names and returns
//! a [`Summary`] (`paxstore_files::verify`, `paxstore_rocks::verify`). A verifier never opens the
//! store: it takes no lock, writes nothing, cuts nothing and deletes nothing, so it can run
//! next to a live store or on a copy of a damaged one.
//!
//! - A directory that cannot be read at all, or is not a store of the backend asked, or holds
//!   a format version this build does not read, is [`Unreadable`]: never a clean result.
//! - Otherwise the [`Summary`] says what is stored ([`LogSummary`] per log), what the store is
//!   made of ([`Part`]s: files, column families, with sizes), every piece of damage found
//!   ([`Problem`]: the file and, where there is one, the byte offset) and harmless findings
//!   (notes, such as a torn final record that the next open cuts off).
//!
//! The helpers below ([`list_dir`], [`read_marker`], [`check_marker`]) are the steps every
//! backend's verifier shares: they read the store marker ([`crate::identity`]) the same way
//! and report its absence or damage in the same words.

use std::fmt;
use std::path::{Path, PathBuf};

use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::storage::StopSign;

use crate::identity::{Marker, MARKER_FILE};

/// One piece of damage: the file and, where it applies, the byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The damaged (or missing) file.
    pub file: PathBuf,
    /// The byte offset of the damage in `file`.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} at offset {o}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// The directory could not be examined at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Unreadable {
    /// The directory or file that could not be read.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

impl Unreadable {
    /// `path` could not be examined, because of `reason`.
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        Unreadable {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The state of one OmniPaxos log as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSummary {
    /// The log's name (`log` for a single-log store).
    pub name: String,
    /// The lowest stored index.
    pub first: u64,
    /// One past the highest stored index.
    pub next: u64,
    /// The decided index.
    pub decided: u64,
    /// The compacted index.
    pub compacted: u64,
    /// The promised round.
    pub promise: Option<Ballot>,
    /// The accepted round.
    pub accepted: Option<Ballot>,
    /// The stop-sign, described ([`describe_stopsign`]).
    pub stopsign: Option<String>,
    /// The encoded size of the snapshot, if there is one.
    pub snapshot_bytes: Option<u64>,
}

/// One file or column family of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The file or column family name.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// What it holds.
    pub detail: String,
}

/// Everything a backend's verifier found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The backend that wrote the directory, by its marker name (`files`, `rocks`).
    pub backend: String,
    /// The directory.
    pub dir: PathBuf,
    /// The on-disk format version.
    pub format_version: u32,
    /// The store marker, if the directory has a readable one (its absence is a problem).
    pub marker: Option<Marker>,
    /// The logs stored (one for `files`, one per column family for `rocks`).
    pub logs: Vec<LogSummary>,
    /// Files or column families, with sizes.
    pub parts: Vec<Part>,
    /// Records (files) or keys (rocks) read and checked.
    pub records_checked: u64,
    /// Entries whose checksum was checked.
    pub entries_checked: u64,
    /// Corruption found; empty for a clean store.
    pub problems: Vec<Problem>,
    /// Harmless findings (a torn final record, leftover files).
    pub notes: Vec<String>,
}

impl Summary {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A short description of a ballot.
pub fn describe_ballot(b: &Ballot) -> String {
    format!("n={} pid={} config={}", b.n, b.pid, b.config_id)
}

/// A short description of a stop-sign: the configuration it starts.
pub fn describe_stopsign(s: &StopSign) -> String {
    format!(
        "config {} with nodes {:?}",
        s.next_config.configuration_id, s.next_config.nodes
    )
}

/// `bytes` in human units (`512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The names of the entries of directory `dir`, sorted; [`Unreadable`] if `dir` is not a
/// directory or cannot be listed.
pub fn list_dir(dir: &Path) -> Result<Vec<String>, Unreadable> {
    let meta = std::fs::metadata(dir).map_err(|e| Unreadable::new(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(Unreadable::new(dir, "not a directory"));
    }
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Unreadable::new(dir, e.to_string()))? {
        let e = e.map_err(|e| Unreadable::new(dir, e.to_string()))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The marker of `dir`: `None` if there is no marker file, `Some(Err(why))` if it cannot be
/// read or decoded (a file larger than any marker, 4 KiB, is not read whole).
pub fn read_marker(dir: &Path) -> Option<Result<Marker, String>> {
    use std::io::Read;
    let path = dir.join(MARKER_FILE);
    let mut bytes = Vec::new();
    let read = std::fs::File::open(&path).and_then(|f| f.take(4097).read_to_end(&mut bytes));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
        Ok(_) if bytes.len() > 4096 => Some(Err("the file is larger than any marker".into())),
        Ok(_) => Some(Marker::decode(&bytes).map_err(|e| e.to_string())),
    }
}

/// The marker of a store of `backend` whose own format version is `format`, as found: the
/// marker if it is sound; otherwise the problem to report (a missing marker names `adopt`,
/// the option that writes a new one). A marker that names another backend or another format
/// version is [`Unreadable`]: the directory is not a store this verifier reads.
pub fn check_marker(
    dir: &Path,
    backend: &str,
    format: u32,
    adopt: &str,
) -> Result<(Option<Marker>, Option<Problem>), Unreadable> {
    let file = dir.join(MARKER_FILE);
    let problem = |reason: String| Problem {
        file: file.clone(),
        offset: None,
        reason,
    };
    Ok(match read_marker(dir) {
        None => (
            None,
            Some(problem(format!(
                "missing: the {backend} backend refuses to open a store without its marker; if \
                 this is the store's directory, open it once with {adopt}"
            ))),
        ),
        Some(Err(e)) => (
            None,
            Some(problem(format!(
                "damaged ({e}): the {backend} backend refuses to open the store"
            ))),
        ),
        Some(Ok(m)) => {
            if m.backend != backend {
                return Err(Unreadable::new(
                    dir,
                    format!(
                        "its marker says it is a `{}` store, not a `{backend}` one",
                        m.backend
                    ),
                ));
            }
            if m.format != format {
                return Err(Unreadable::new(
                    dir,
                    format!(
                        "its marker says format version {}, this build reads version {format}",
                        m.format
                    ),
                ));
            }
            (Some(m), None)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn problems_name_file_and_offset() {
        let p = Problem {
            file: "/s/seg-1.log".into(),
            offset: Some(40),
            reason: "checksum mismatch".into(),
        };
        assert_eq!(
            p.to_string(),
            "/s/seg-1.log at offset 40: checksum mismatch"
        );
        let p = Problem { offset: None, ..p };
        assert_eq!(p.to_string(), "/s/seg-1.log: checksum mismatch");
    }

    #[test]
    fn markers_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_dir(&dir.path().join("missing")).is_err());
        let (m, p) = check_marker(dir.path(), "files", 1, "`adopt`").unwrap();
        assert!(m.is_none() && p.unwrap().reason.contains("missing"));
        std::fs::write(dir.path().join(MARKER_FILE), b"garbage").unwrap();
        let (m, p) = check_marker(dir.path(), "files", 1, "`adopt`").unwrap();
        assert!(m.is_none() && p.unwrap().reason.contains("damaged"));
        std::fs::write(dir.path().join(MARKER_FILE), vec![b'x'; 1 << 20]).unwrap();
        let (m, p) = check_marker(dir.path(), "files", 1, "`adopt`").unwrap();
        assert!(m.is_none() && p.unwrap().reason.contains("larger than any marker"));
        let marker = Marker::new("files", 2);
        std::fs::write(dir.path().join(MARKER_FILE), marker.encode()).unwrap();
        assert!(check_marker(dir.path(), "files", 1, "`adopt`").is_err());
        assert!(check_marker(dir.path(), "rocks", 2, "`adopt`").is_err());
        let (m, p) = check_marker(dir.path(), "files", 2, "`adopt`").unwrap();
        assert_eq!((m, p), (Some(marker), None));
        assert_eq!(list_dir(dir.path()).unwrap(), vec![MARKER_FILE.to_string()]);
    }
}
