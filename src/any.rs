//! Run-time backend selection: [`AnyStorage<T>`], opened from a [`StorageSpec`] string.
//!
//! | spec | backend |
//! | --- | --- |
//! | `memory` | [`MemoryStorage`] (always compiled) |
//! | `files:<dir>` | `storage_files::FilesStorage` in directory `<dir>` (feature `files`) |
//! | `rocks:<dir>` | `storage_rocks::RocksStorage`, the single log of the database in `<dir>` (feature `rocks`) |
//! | `rocks:<dir>#<log>` | the log named `<log>` of the database in `<dir>` (many logs share one database) |
//!
//! In a `rocks:` spec the first single `#` separates the directory from the log name, and a
//! `#` that is part of the directory's path is written twice: `rocks:/data/a##b#shard-1` is
//! log `shard-1` of the database in `/data/a#b`, and `rocks:/data/a##b` its single log. (Log
//! names never contain `#`; a second single `#` is an error.) [`StorageSpec`]'s `Display`
//! writes specs this way, so a printed spec parses back to the same spec. `files:` paths are
//! taken verbatim, `#` included.
//!
//! Opening `rocks:<dir>#<log>` when `<dir>` does not exist but a directory named
//! `<dir>#<log>` does is refused ([`AnyError::AmbiguousSpec`]): that spec most likely meant
//! the directory whose name holds a `#`, and opening it as written would create a new, empty
//! store.
//!
//! Several `rocks:` specs naming logs of one database can be open at once in one process:
//! they share the database (`storage_rocks::RocksStore::open_shared`).
//!
//! Parsing does not depend on the features: a spec naming a backend this build does not
//! include parses, and [`AnyStorage::open`] then fails with [`AnyError::NotCompiledIn`],
//! which names the cargo feature to enable.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use omnipaxos::{
    ballot_leader_election::Ballot,
    storage::{Entry, StopSign, Storage, StorageOp, StorageResult},
};
use serde::{de::DeserializeOwned, Serialize};
use storage_core::{MemoryStorage, StoreOptions};

/// A storage backend paxstore knows, compiled in or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// [`MemoryStorage`]: always compiled, not persistent.
    Memory,
    /// The segment-file engine (`storage-files`, feature `files`).
    Files,
    /// RocksDB (`storage-rocks`, feature `rocks`).
    Rocks,
}

impl Backend {
    /// Every backend, compiled in or not, in order of preference for a default (persistent
    /// first).
    pub const ALL: [Backend; 3] = [Backend::Files, Backend::Rocks, Backend::Memory];

    /// The backends this build includes, in order of preference.
    pub fn enabled() -> Vec<Backend> {
        Self::ALL
            .into_iter()
            .filter(|b| b.is_compiled_in())
            .collect()
    }

    /// The backends this build includes that persist to disk.
    pub fn persistent() -> Vec<Backend> {
        Self::enabled()
            .into_iter()
            .filter(|b| b.is_persistent())
            .collect()
    }

    /// The name used in specs and on the command line: `memory`, `files`, `rocks`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Files => "files",
            Backend::Rocks => "rocks",
        }
    }

    /// The cargo feature of `paxstore` that compiles this backend in.
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// Whether this build includes the backend.
    pub fn is_compiled_in(self) -> bool {
        match self {
            Backend::Memory => true,
            Backend::Files => cfg!(feature = "files"),
            Backend::Rocks => cfg!(feature = "rocks"),
        }
    }

    /// Whether the backend keeps its data on disk.
    pub fn is_persistent(self) -> bool {
        !matches!(self, Backend::Memory)
    }

    /// The spec of a store of this backend in `dir` (`dir` is ignored for memory).
    pub fn spec(self, dir: &Path) -> StorageSpec {
        match self {
            Backend::Memory => StorageSpec::Memory,
            Backend::Files => StorageSpec::Files(dir.to_path_buf()),
            Backend::Rocks => StorageSpec::Rocks {
                path: dir.to_path_buf(),
                log: None,
            },
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = AnyError;
    fn from_str(s: &str) -> Result<Self, AnyError> {
        match s {
            "memory" => Ok(Backend::Memory),
            "files" => Ok(Backend::Files),
            "rocks" => Ok(Backend::Rocks),
            other => Err(AnyError::UnknownScheme {
                spec: s.to_string(),
                scheme: other.to_string(),
            }),
        }
    }
}

/// A parsed storage spec: which backend, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSpec {
    /// `memory`.
    Memory,
    /// `files:<dir>`.
    Files(PathBuf),
    /// `rocks:<dir>` or `rocks:<dir>#<log>`.
    Rocks {
        /// The database directory.
        path: PathBuf,
        /// The log's name in the database; `None` for the database's single default log.
        log: Option<String>,
    },
}

impl StorageSpec {
    /// The backend the spec names.
    pub fn backend(&self) -> Backend {
        match self {
            StorageSpec::Memory => Backend::Memory,
            StorageSpec::Files(_) => Backend::Files,
            StorageSpec::Rocks { .. } => Backend::Rocks,
        }
    }

    /// The directory of a persistent store.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StorageSpec::Memory => None,
            StorageSpec::Files(p) | StorageSpec::Rocks { path: p, .. } => Some(p),
        }
    }
}

impl fmt::Display for StorageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageSpec::Memory => f.write_str("memory"),
            StorageSpec::Files(p) => write!(f, "files:{}", p.display()),
            StorageSpec::Rocks { path, log } => {
                let path = path.display().to_string().replace('#', "##");
                match log {
                    None => write!(f, "rocks:{path}"),
                    Some(log) => write!(f, "rocks:{path}#{log}"),
                }
            }
        }
    }
}

/// Splits the rest of a `rocks:` spec into the directory (with `##` read as `#`) and the log
/// name after the first single `#`.
fn split_rocks(rest: &str) -> Result<(String, Option<String>), &'static str> {
    let mut path = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '#' {
            path.push(c);
        } else if chars.peek().is_some_and(|&(_, c)| c == '#') {
            chars.next();
            path.push('#');
        } else {
            let log = &rest[i + 1..];
            if log.is_empty() {
                return Err("empty log name after `#` (write `##` for a `#` in the path)");
            }
            if log.contains('#') {
                return Err(
                    "a second `#` after the log's `#` (log names never contain `#`; write `##` \
                     for a `#` in the path)",
                );
            }
            return Ok((path, Some(log.to_string())));
        }
    }
    Ok((path, None))
}

impl FromStr for StorageSpec {
    type Err = AnyError;

    fn from_str(spec: &str) -> Result<Self, AnyError> {
        let invalid = |reason: &str| AnyError::InvalidSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = match spec.split_once(':') {
            Some((scheme, rest)) => (scheme, Some(rest)),
            None => (spec, None),
        };
        match (scheme, rest) {
            ("memory", None) | ("memory", Some("")) => Ok(StorageSpec::Memory),
            ("memory", Some(_)) => Err(invalid("the memory backend takes no path")),
            ("files", Some(path)) if !path.is_empty() => Ok(StorageSpec::Files(path.into())),
            ("files", _) => Err(invalid("expected `files:<dir>`")),
            ("rocks", Some(rest)) => {
                let (path, log) = split_rocks(rest).map_err(invalid)?;
                if path.is_empty() {
                    return Err(invalid("expected `rocks:<dir>` or `rocks:<dir>#<log>`"));
                }
                Ok(StorageSpec::Rocks {
                    path: path.into(),
                    log,
                })
            }
            ("rocks", None) => Err(invalid("expected `rocks:<dir>` or `rocks:<dir>#<log>`")),
            (scheme, _) => Err(AnyError::UnknownScheme {
                spec: spec.to_string(),
                scheme: scheme.to_string(),
            }),
        }
    }
}

/// Why a spec could not be parsed or its store opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnyError {
    /// The spec's scheme (before the first `:`) names no backend.
    #[error(
        "storage spec {spec:?}: unknown backend {scheme:?}; expected `memory`, `files:<dir>` \
         or `rocks:<dir>[#<log>]`"
    )]
    UnknownScheme {
        /// The whole spec.
        spec: String,
        /// The scheme found.
        scheme: String,
    },
    /// The scheme is known but the rest of the spec is malformed.
    #[error("storage spec {spec:?}: {reason}")]
    InvalidSpec {
        /// The whole spec.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// `rocks:<dir>#<log>` names a directory that does not exist while `<dir>#<log>` does: the
    /// spec most likely meant that directory (write `##` for a `#` in a path). Nothing was
    /// created.
    #[error(
        "storage spec {spec:?}: {} does not exist, but {} does; a `#` in a rocks spec starts \
         the log name, so write `##` for a `#` in the path ({suggested:?}), or create {} first \
         if you meant a log in it",
        dir.display(), other.display(), dir.display()
    )]
    AmbiguousSpec {
        /// The whole spec.
        spec: String,
        /// The directory the spec names.
        dir: PathBuf,
        /// The existing directory it probably meant.
        other: PathBuf,
        /// The spec for that directory.
        suggested: String,
    },
    /// The spec names a backend this build does not include.
    #[error(
        "storage spec {spec:?} needs the `{backend}` backend, which this build of paxstore does \
         not include; rebuild with `--features {feature}`"
    )]
    NotCompiledIn {
        /// The whole spec.
        spec: String,
        /// The backend named.
        backend: Backend,
        /// The cargo feature that includes it.
        feature: &'static str,
    },
    /// The segment-file backend failed to open the store.
    #[cfg(feature = "files")]
    #[error(transparent)]
    Files(#[from] storage_files::FilesError),
    /// The RocksDB backend failed to open the store.
    #[cfg(feature = "rocks")]
    #[error(transparent)]
    Rocks(#[from] storage_rocks::Error),
}

/// A store of any compiled-in backend, chosen at run time; implements [`Storage<T>`] by
/// delegating every call.
///
/// ```
/// use paxstore::{AnyStorage, Backend, storage_core::kv::KeyValue};
/// let store = AnyStorage::<KeyValue>::open("memory").unwrap();
/// assert_eq!(store.backend(), Backend::Memory);
/// ```
// A store is opened once and then used in place: the size of the largest variant costs
// nothing, and boxing it would add an indirection to every call.
#[allow(clippy::large_enum_variant)]
pub enum AnyStorage<T: Entry> {
    /// `memory`.
    Memory(MemoryStorage<T>),
    /// `files:<dir>`.
    #[cfg(feature = "files")]
    Files(storage_files::FilesStorage<T>),
    /// `rocks:<dir>[#<log>]`.
    #[cfg(feature = "rocks")]
    Rocks(storage_rocks::RocksStorage<T>),
}

impl<T: Entry> fmt::Debug for AnyStorage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyStorage::Memory(_) => f.write_str("AnyStorage::Memory"),
            #[cfg(feature = "files")]
            AnyStorage::Files(s) => f.debug_tuple("AnyStorage::Files").field(s).finish(),
            #[cfg(feature = "rocks")]
            AnyStorage::Rocks(s) => f.debug_tuple("AnyStorage::Rocks").field(s).finish(),
        }
    }
}

impl<T> AnyStorage<T>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    /// Opens (or creates) the store `spec` names, with the default options (durable writes).
    pub fn open(spec: &str) -> Result<Self, AnyError> {
        Self::open_with(spec, StoreOptions::default())
    }

    /// Opens (or creates) the store `spec` names, with the options shared by all backends
    /// (the sync policy).
    pub fn open_with(spec: &str, options: StoreOptions) -> Result<Self, AnyError> {
        let parsed: StorageSpec = spec.parse()?;
        Self::open_spec(&parsed, options)
    }

    /// Opens (or creates) the store of a parsed spec.
    pub fn open_spec(spec: &StorageSpec, options: StoreOptions) -> Result<Self, AnyError> {
        // `options` is unused when only the memory backend is compiled in.
        let _ = &options;
        match spec {
            StorageSpec::Memory => Ok(AnyStorage::Memory(MemoryStorage::new())),
            #[cfg(feature = "files")]
            StorageSpec::Files(dir) => Ok(AnyStorage::Files(storage_files::FilesStorage::open(
                dir,
                storage_files::FilesOptions::new().store_options(options),
            )?)),
            #[cfg(feature = "rocks")]
            StorageSpec::Rocks { path, log } => {
                if let Some(name) = log {
                    let mut joined = path.as_os_str().to_owned();
                    joined.push("#");
                    joined.push(name);
                    let other = PathBuf::from(joined);
                    if !path.exists() && other.is_dir() {
                        return Err(AnyError::AmbiguousSpec {
                            spec: spec.to_string(),
                            dir: path.clone(),
                            suggested: StorageSpec::Rocks {
                                path: other.clone(),
                                log: None,
                            }
                            .to_string(),
                            other,
                        });
                    }
                }
                let opts = storage_rocks::RocksOptions::new().store_options(options);
                // Shared: several logs of one database can be open at once in this process.
                let store = storage_rocks::RocksStore::open_shared(path, opts)?;
                let name = log.as_deref().unwrap_or(storage_rocks::SINGLE_LOG);
                Ok(AnyStorage::Rocks(store.log(name)?))
            }
            #[allow(unreachable_patterns)]
            _ => {
                let backend = spec.backend();
                Err(AnyError::NotCompiledIn {
                    spec: spec.to_string(),
                    backend,
                    feature: backend.feature(),
                })
            }
        }
    }
}

impl<T: Entry> AnyStorage<T> {
    /// The backend of this store.
    pub fn backend(&self) -> Backend {
        match self {
            AnyStorage::Memory(_) => Backend::Memory,
            #[cfg(feature = "files")]
            AnyStorage::Files(_) => Backend::Files,
            #[cfg(feature = "rocks")]
            AnyStorage::Rocks(_) => Backend::Rocks,
        }
    }
}

macro_rules! dispatch {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            AnyStorage::Memory($s) => $call,
            #[cfg(feature = "files")]
            AnyStorage::Files($s) => $call,
            #[cfg(feature = "rocks")]
            AnyStorage::Rocks($s) => $call,
        }
    };
}

impl<T> Storage<T> for AnyStorage<T>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    fn write_atomically(&mut self, ops: Vec<StorageOp<T>>) -> StorageResult<()> {
        dispatch!(self, s => s.write_atomically(ops))
    }
    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        dispatch!(self, s => s.append_entry(entry))
    }
    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        dispatch!(self, s => s.append_entries(entries))
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        dispatch!(self, s => s.append_on_prefix(from_idx, entries))
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        dispatch!(self, s => s.set_promise(n_prom))
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        dispatch!(self, s => s.set_decided_idx(ld))
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        dispatch!(self, s => s.get_decided_idx())
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        dispatch!(self, s => s.set_accepted_round(na))
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        dispatch!(self, s => s.get_accepted_round())
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<T>> {
        dispatch!(self, s => s.get_entries(from, to))
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        dispatch!(self, s => s.get_log_len())
    }
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<T>> {
        dispatch!(self, s => s.get_suffix(from))
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        dispatch!(self, s => s.get_promise())
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        let stopsign = s;
        dispatch!(self, s => s.set_stopsign(stopsign))
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        dispatch!(self, s => s.get_stopsign())
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        dispatch!(self, s => s.trim(idx))
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        dispatch!(self, s => s.set_compacted_idx(idx))
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        dispatch!(self, s => s.get_compacted_idx())
    }
    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        dispatch!(self, s => s.set_snapshot(snapshot))
    }
    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        dispatch!(self, s => s.get_snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        let cases = [
            ("memory", StorageSpec::Memory),
            ("memory:", StorageSpec::Memory),
            (
                "files:/var/lib/app/log",
                StorageSpec::Files("/var/lib/app/log".into()),
            ),
            (
                "rocks:/var/lib/app/db#shard-7",
                StorageSpec::Rocks {
                    path: "/var/lib/app/db".into(),
                    log: Some("shard-7".into()),
                },
            ),
            (
                "rocks:rel/db",
                StorageSpec::Rocks {
                    path: "rel/db".into(),
                    log: None,
                },
            ),
            (
                "rocks:/d##x",
                StorageSpec::Rocks {
                    path: "/d#x".into(),
                    log: None,
                },
            ),
            (
                "rocks:/d#x",
                StorageSpec::Rocks {
                    path: "/d".into(),
                    log: Some("x".into()),
                },
            ),
            (
                "rocks:/a##b###shard-1",
                StorageSpec::Rocks {
                    path: "/a#b#".into(),
                    log: Some("shard-1".into()),
                },
            ),
            ("files:/d#x", StorageSpec::Files("/d#x".into())),
        ];
        for (text, spec) in cases {
            assert_eq!(text.parse::<StorageSpec>().unwrap(), spec, "{text}");
            let printed = spec.to_string();
            assert_eq!(printed.parse::<StorageSpec>().unwrap(), spec, "{printed}");
        }
    }

    #[test]
    fn every_rocks_spec_prints_and_parses_back() {
        let paths = [
            "/d",
            "/d#x",
            "#",
            "##",
            "/a#",
            "#/a",
            "/a##b#",
            "rel/x#y#z",
            "/%23",
        ];
        for path in paths {
            for log in [None, Some("x"), Some("shard-7")] {
                let spec = StorageSpec::Rocks {
                    path: path.into(),
                    log: log.map(str::to_string),
                };
                let printed = spec.to_string();
                assert_eq!(printed.parse::<StorageSpec>().unwrap(), spec, "{printed}");
            }
        }
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        for (text, needle) in [
            ("tape:/dev/st0", "unknown backend \"tape\""),
            ("/var/lib/app", "unknown backend"),
            ("files:", "expected `files:<dir>`"),
            ("files", "expected `files:<dir>`"),
            ("rocks:", "expected `rocks:<dir>`"),
            ("rocks:/db#", "empty log name"),
            ("rocks:/a#b#c", "a second `#`"),
            ("rocks:#x", "expected `rocks:<dir>`"),
            ("memory:/x", "takes no path"),
        ] {
            let err = text.parse::<StorageSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn backend_not_compiled_in_names_the_feature() {
        for backend in Backend::ALL {
            if backend.is_compiled_in() {
                continue;
            }
            let spec = backend.spec(Path::new("/nonexistent"));
            let err =
                AnyStorage::<storage_core::kv::KeyValue>::open_spec(&spec, StoreOptions::default())
                    .unwrap_err();
            assert!(matches!(err, AnyError::NotCompiledIn { .. }));
            assert!(err
                .to_string()
                .contains(&format!("--features {}", backend.feature())));
        }
    }
}
