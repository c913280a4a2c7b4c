//! Run-time backend selection: [`AnyStorage<T>`], opened from a [`StorageSpec`] string.
//!
//! | spec | backend |
//! | --- | --- |
//! | `memory` | [`MemoryStorage`](crate::memory::MemoryStorage) (always compiled) |
//! | `files:<dir>` | `paxstore_files::FilesStorage` in directory `<dir>` (feature `files`) |
//! | `files-multi:<dir>#<log>` | `paxstore_files::FilesLog`, the log named `<log>` of the many-logs store (`paxstore_files::FilesStore`) in `<dir>`: all its logs share one stream and group commit (feature `files`) |
//! | `files-multi:<dir>` | its log named `default` |
//! | `rocks:<dir>` | `paxstore_rocks::RocksStorage`, the single log of the database in `<dir>` (feature `rocks`) |
//! | `rocks:<dir>#<log>` | the log named `<log>` of the database in `<dir>` (many logs share one database) |
//!
//! In a `rocks:` or `files-multi:` spec the first single `#` separates the directory from the
//! log name, and a `#` that is part of the directory's path is written twice:
//! `rocks:/data/a##b#shard-1` is log `shard-1` of the database in `/data/a#b`, and
//! `rocks:/data/a##b` its single log. (Log
//! names never contain `#`; a second single `#` is an error.) [`StorageSpec`]'s `Display`
//! writes specs this way, so a printed spec parses back to the same spec. `files:` paths are
//! taken verbatim, `#` included.
//!
//! Opening `rocks:<dir>#<log>` (or `files-multi:<dir>#<log>`) when `<dir>` does not exist but a directory named
//! `<dir>#<log>` does is refused ([`AnyError::AmbiguousSpec`]): that spec most likely meant
//! the directory whose name holds a `#`, and opening it as written would create a new, empty
//! store.
//!
//! Several `rocks:` specs naming logs of one database can be open at once in one process:
//! they share the database (`paxstore_rocks::RocksStore::open_shared`). Likewise several
//! `files-multi:` specs naming logs of one directory share its store
//! (`paxstore_files::FilesStore::open_shared`); each log has one handle at a time.
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
use paxstore_core::verify::{Summary, Unreadable};
use paxstore_core::StoreOptions;
use serde::{de::DeserializeOwned, Serialize};

/// What follows a backend's `name:` in a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Nothing: `memory`.
    Bare,
    /// A directory, taken verbatim: `files:<dir>`.
    Dir,
    /// A directory and an optional log name after the first single `#` (a `#` in the path is
    /// written `##`): `rocks:<dir>[#<log>]`.
    DirAndLog,
}

impl Syntax {
    fn usage(self, name: &str) -> String {
        match self {
            Syntax::Bare => name.to_string(),
            Syntax::Dir => format!("{name}:<dir>"),
            Syntax::DirAndLog => format!("{name}:<dir>[#<log>]"),
        }
    }
}

/// The table of backends: the one place the facade names each backend. Each row gives the
/// variant of [`Backend`] and [`AnyStorage`], the spec and feature name, the `cfg` under which
/// it is compiled in, whether it persists, its spec syntax, its store type, its facade
/// module (`src/<module>.rs`: open, reclaim, verify) and the file names that betray its
/// directories when their marker is gone. Everything else ([`Backend`]'s methods, spec
/// parsing and printing, [`AnyStorage`] and its dispatch, [`DefaultStorage`](crate::DefaultStorage),
/// detection and verification in `inspect`, the command's backend lists) comes from here.
macro_rules! backends {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident {
            name: $name:literal,
            feature: $feature:literal,
            cfg: ($($cfg:tt)*),
            persistent: $persistent:literal,
            syntax: $syntax:expr,
            store: $($store:ident)::+,
            module: $module:ident,
            claims: $claims:expr $(,)?
        }
    )*) => {
        /// A storage backend paxstore knows, compiled in or not, in order of preference for a
        /// default (persistent first).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Backend {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Backend {
            /// Every backend, compiled in or not, in order of preference for a default.
            pub const ALL: [Backend; [$(stringify!($variant)),*].len()] = [$(Backend::$variant),*];

            /// The name used in specs and on the command line (`memory`, `files`, `rocks`).
            pub fn name(self) -> &'static str {
                match self { $( Backend::$variant => $name, )* }
            }

            /// The cargo feature of `paxstore` that compiles this backend in (its name).
            pub fn feature(self) -> &'static str {
                match self { $( Backend::$variant => $feature, )* }
            }

            /// Whether this build includes the backend.
            pub const fn is_compiled_in(self) -> bool {
                match self { $( Backend::$variant => cfg!($($cfg)*), )* }
            }

            /// Whether the backend keeps its data on disk.
            pub fn is_persistent(self) -> bool {
                match self { $( Backend::$variant => $persistent, )* }
            }

            /// What follows `name:` in this backend's specs.
            pub fn syntax(self) -> Syntax {
                match self { $( Backend::$variant => $syntax, )* }
            }

            /// Reads and checks the store of this backend in `dir` with the backend's own
            /// verifier, changing nothing (see [`inspect`](crate::inspect)); an [`Unreadable`]
            /// error for a backend this build does not include, or one without files.
            pub fn verify(self, dir: &Path) -> Result<Summary, Unreadable> {
                match self {
                    $( #[cfg($($cfg)*)] Backend::$variant => crate::$module::any_verify(dir), )*
                    #[allow(unreachable_patterns)]
                    other => Err(Unreadable::new(
                        dir,
                        format!(
                            "holds a `{other}` store, which this build of paxstore does not \
                             include; rebuild with `--features {}`",
                            other.feature()
                        ),
                    )),
                }
            }

            /// Whether a file named `name`, in a directory without a readable marker, says the
            /// directory holds a store of this backend.
            pub fn claims_file(self, name: &str) -> bool {
                let claims: fn(&str) -> bool = match self { $( Backend::$variant => $claims, )* };
                claims(name)
            }
        }

        /// A store of any compiled-in backend, chosen at run time; implements [`Storage<T>`]
        /// by delegating every call.
        ///
        /// ```
        /// use paxstore::{AnyStorage, Backend, paxstore_core::kv::KeyValue};
        /// let store = AnyStorage::<KeyValue>::open("memory").unwrap();
        /// assert_eq!(store.backend(), Backend::Memory);
        /// ```
        // A store is opened once and then used in place: the size of the largest variant
        // costs nothing, and boxing it would add an indirection to every call.
        #[allow(clippy::large_enum_variant)]
        pub enum AnyStorage<T: Entry> {
            $(
                $(#[doc = $doc])*
                #[cfg($($cfg)*)]
                $variant($($store)::+<T>),
            )*
        }

        impl<T: Entry> AnyStorage<T> {
            /// The backend of this store.
            pub fn backend(&self) -> Backend {
                match self { $( #[cfg($($cfg)*)] AnyStorage::$variant(_) => Backend::$variant, )* }
            }


        }

        impl<T: Entry> fmt::Debug for AnyStorage<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "AnyStorage::{:?}", self.backend())
            }
        }

        impl<T> AnyStorage<T>
        where
            T: Entry + Serialize + DeserializeOwned,
            T::Snapshot: Serialize + DeserializeOwned,
        {
            /// Opens (or creates) the store of a parsed spec.
            pub fn open_spec(spec: &StorageSpec, options: StoreOptions) -> Result<Self, AnyError> {
                AnyError::check_ambiguous(spec)?;
                match spec.backend {
                    $(
                        #[cfg($($cfg)*)]
                        Backend::$variant => {
                            crate::$module::any_open(spec, options).map(AnyStorage::$variant)
                        }
                    )*
                    #[allow(unreachable_patterns)]
                    backend => Err(AnyError::NotCompiledIn {
                        spec: spec.to_string(),
                        backend,
                        feature: backend.feature(),
                    }),
                }
            }

            /// Gives back the disk space that trims and snapshots freed so far, and returns
            /// once it is given back (a no-op for memory).
            pub fn reclaim(&mut self) -> Result<(), AnyError> {
                match self {
                    $( #[cfg($($cfg)*)] AnyStorage::$variant(s) => crate::$module::any_reclaim(s), )*
                }
            }

            /// Why the store refuses every call, when an earlier failure (a failed `fsync`)
            /// poisoned it; `None` for a healthy store.
            pub fn poisoned(&self) -> Option<String> {
                match self {
                    $( #[cfg($($cfg)*)] AnyStorage::$variant(s) => crate::$module::any_poisoned(s), )*
                }
            }

            /// The store as a `Storage` trait object (every call of the trait goes through
            /// here: one match, then the backend's own method).
            fn inner(&self) -> &dyn Storage<T> {
                match self { $( #[cfg($($cfg)*)] AnyStorage::$variant(s) => s, )* }
            }

            fn inner_mut(&mut self) -> &mut dyn Storage<T> {
                match self { $( #[cfg($($cfg)*)] AnyStorage::$variant(s) => s, )* }
            }
        }

        default_storage!(() $( [$($cfg)*] $($store)::+ , )*);
    };
}

/// `DefaultStorage<T>`: the store type of the first compiled-in row of the table.
macro_rules! default_storage {
    (($($seen:tt)*) [$($cfg:tt)*] $($store:ident)::+ , $($rest:tt)*) => {
        /// The preferred backend among those compiled in (the first row of the backend table
        /// whose feature is on: files, then rocks, then memory).
        #[cfg(all($($cfg)*, not(any($($seen)*))))]
        pub type DefaultStorage<T> = $($store)::+<T>;
        default_storage!(($($seen)* $($cfg)*,) $($rest)*);
    };
    (($($seen:tt)*)) => {};
}

backends! {
    /// The segment-file engine (`paxstore-files`, feature `files`, the default).
    Files {
        name: "files",
        feature: "files",
        cfg: (feature = "files"),
        persistent: true,
        syntax: Syntax::Dir,
        store: paxstore_files::FilesStorage,
        module: files,
        claims: |name| name.starts_with("seg-") && name.ends_with(".log"),
    }
    /// Many logs in one directory, one stream and group commit (`paxstore_files::FilesStore`,
    /// feature `files`).
    FilesMulti {
        name: "files-multi",
        feature: "files",
        cfg: (feature = "files"),
        persistent: true,
        syntax: Syntax::DirAndLog,
        store: paxstore_files::FilesLog,
        module: files_multi,
        // Its segments are named like a `files` store's: a directory that lost its marker is
        // taken for a `files` store (the row above), whose verifier reports the marker lost.
        claims: |_| false,
    }
    /// RocksDB, one column family per log (`paxstore-rocks`, feature `rocks`).
    Rocks {
        name: "rocks",
        feature: "rocks",
        cfg: (feature = "rocks"),
        persistent: true,
        syntax: Syntax::DirAndLog,
        store: paxstore_rocks::RocksStorage,
        module: rocks,
        claims: |name| name == "CURRENT",
    }
    /// `MemoryStorage`: always compiled, not persistent.
    Memory {
        name: "memory",
        feature: "memory",
        cfg: (all()),
        persistent: false,
        syntax: Syntax::Bare,
        store: paxstore_core::MemoryStorage,
        module: memory,
        claims: |_| false,
    }
}

impl Backend {
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

    /// The backend of the preferred compiled-in kind (the first of [`Backend::ALL`] this build
    /// includes): the backend of [`DefaultStorage`].
    pub const fn default_backend() -> Backend {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i].is_compiled_in() {
                return Self::ALL[i];
            }
            i += 1;
        }
        // The memory row is always compiled in.
        Self::ALL[Self::ALL.len() - 1]
    }

    /// The spec of a store of this backend in `dir` (`dir` is ignored for memory; the single
    /// log of a database).
    pub fn spec(self, dir: &Path) -> StorageSpec {
        StorageSpec {
            backend: self,
            path: (self.syntax() != Syntax::Bare).then(|| dir.to_path_buf()),
            log: None,
        }
    }

    fn from_name(name: &str) -> Option<Backend> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    fn usages() -> String {
        let all: Vec<String> = Self::ALL
            .iter()
            .map(|b| format!("`{}`", b.syntax().usage(b.name())))
            .collect();
        all.join(", ")
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
        Backend::from_name(s).ok_or_else(|| AnyError::UnknownScheme {
            spec: s.to_string(),
            scheme: s.to_string(),
            expected: Backend::usages(),
        })
    }
}

/// A parsed storage spec: which backend, where, and (for backends that hold many logs) which
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSpec {
    backend: Backend,
    path: Option<PathBuf>,
    log: Option<String>,
}

impl StorageSpec {
    /// The spec of a store of `backend` in `path` (ignored for memory), naming `log` (for a
    /// backend whose syntax has a log name; an error otherwise, or if `log` holds a `#`).
    pub fn new(
        backend: Backend,
        path: impl Into<PathBuf>,
        log: Option<&str>,
    ) -> Result<Self, AnyError> {
        let mut spec = backend.spec(&path.into());
        if let Some(log) = log {
            if backend.syntax() != Syntax::DirAndLog || log.is_empty() || log.contains('#') {
                return Err(AnyError::InvalidSpec {
                    spec: format!("{spec}#{log}"),
                    reason: format!(
                        "expected `{}` (log names are not empty and never contain `#`)",
                        backend.syntax().usage(backend.name())
                    ),
                });
            }
            spec.log = Some(log.to_string());
        }
        Ok(spec)
    }

    /// The backend the spec names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The directory of a persistent store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The log the spec names in a store of many logs; `None` for the store's single log.
    pub fn log(&self) -> Option<&str> {
        self.log.as_deref()
    }
}

impl fmt::Display for StorageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.backend.name();
        match (self.backend.syntax(), &self.path) {
            (Syntax::Bare, _) | (_, None) => f.write_str(name),
            (Syntax::Dir, Some(p)) => write!(f, "{name}:{}", p.display()),
            (Syntax::DirAndLog, Some(p)) => {
                let path = p.display().to_string().replace('#', "##");
                match &self.log {
                    None => write!(f, "{name}:{path}"),
                    Some(log) => write!(f, "{name}:{path}#{log}"),
                }
            }
        }
    }
}

/// Splits the rest of a `<dir>[#<log>]` spec into the directory (with `##` read as `#`) and
/// the log name after the first single `#`.
fn split_log(rest: &str) -> Result<(String, Option<String>), &'static str> {
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
        let (scheme, rest) = match spec.split_once(':') {
            Some((scheme, rest)) => (scheme, Some(rest)),
            None => (spec, None),
        };
        let backend = Backend::from_name(scheme).ok_or_else(|| AnyError::UnknownScheme {
            spec: spec.to_string(),
            scheme: scheme.to_string(),
            expected: Backend::usages(),
        })?;
        let syntax = backend.syntax();
        let invalid = |reason: &str| AnyError::InvalidSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let expected = || invalid(&format!("expected `{}`", syntax.usage(backend.name())));
        let (path, log) = match (syntax, rest) {
            (Syntax::Bare, None | Some("")) => (None, None),
            (Syntax::Bare, Some(_)) => {
                return Err(invalid(&format!("the {backend} backend takes no path")))
            }
            (Syntax::Dir, Some(path)) if !path.is_empty() => (Some(path.into()), None),
            (Syntax::DirAndLog, Some(rest)) => {
                let (path, log) = split_log(rest).map_err(invalid)?;
                if path.is_empty() {
                    return Err(expected());
                }
                (Some(path.into()), log)
            }
            (Syntax::Dir | Syntax::DirAndLog, _) => return Err(expected()),
        };
        Ok(StorageSpec { backend, path, log })
    }
}

/// Why a spec could not be parsed or its store opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnyError {
    /// The spec's scheme (before the first `:`) names no backend.
    #[error("storage spec {spec:?}: unknown backend {scheme:?}; expected one of {expected}")]
    UnknownScheme {
        /// The whole spec.
        spec: String,
        /// The scheme found.
        scheme: String,
        /// The spec forms of every backend.
        expected: String,
    },
    /// The scheme is known but the rest of the spec is malformed.
    #[error("storage spec {spec:?}: {reason}")]
    InvalidSpec {
        /// The whole spec.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// `<name>:<dir>#<log>` names a directory that does not exist while `<dir>#<log>` does:
    /// the spec most likely meant that directory (write `##` for a `#` in a path). Nothing was
    /// created.
    #[error(
        "storage spec {spec:?}: {} does not exist, but {} does; a `#` in this spec starts the \
         log name, so write `##` for a `#` in the path ({suggested:?}), or create {} first if \
         you meant a log in it",
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
    /// The backend failed to open the store, or to reclaim space.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl AnyError {
    /// Wraps a backend's own error.
    // Used by the persistent backends' modules (none in a memory-only build).
    #[allow(dead_code)]
    pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        AnyError::Backend(Box::new(e))
    }

    /// Refuses `<dir>#<log>` when `<dir>` does not exist and a directory named `<dir>#<log>`
    /// does (see [`AnyError::AmbiguousSpec`]).
    pub(crate) fn check_ambiguous(spec: &StorageSpec) -> Result<(), AnyError> {
        let (Some(path), Some(name)) = (spec.path(), spec.log()) else {
            return Ok(());
        };
        let mut joined = path.as_os_str().to_owned();
        joined.push("#");
        joined.push(name);
        let other = PathBuf::from(joined);
        if !path.exists() && other.is_dir() {
            return Err(AnyError::AmbiguousSpec {
                spec: spec.to_string(),
                dir: path.to_path_buf(),
                suggested: spec.backend.spec(&other).to_string(),
                other,
            });
        }
        Ok(())
    }
}

/// The directory of a spec whose backend needs one (every spec parsed from a string, or made
/// by [`Backend::spec`] for such a backend, has one).
// Used by the persistent backends' modules (none in a memory-only build).
#[allow(dead_code)]
pub(crate) fn spec_dir(spec: &StorageSpec) -> Result<&Path, AnyError> {
    spec.path().ok_or_else(|| AnyError::InvalidSpec {
        spec: spec.to_string(),
        reason: format!(
            "expected `{}`",
            spec.backend.syntax().usage(spec.backend.name())
        ),
    })
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
}

impl<T> Storage<T> for AnyStorage<T>
where
    T: Entry + Serialize + DeserializeOwned,
    T::Snapshot: Serialize + DeserializeOwned,
{
    fn write_atomically(&mut self, ops: Vec<StorageOp<T>>) -> StorageResult<()> {
        self.inner_mut().write_atomically(ops)
    }
    fn append_entry(&mut self, entry: T) -> StorageResult<()> {
        self.inner_mut().append_entry(entry)
    }
    fn append_entries(&mut self, entries: Vec<T>) -> StorageResult<()> {
        self.inner_mut().append_entries(entries)
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<T>) -> StorageResult<()> {
        self.inner_mut().append_on_prefix(from_idx, entries)
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.inner_mut().set_promise(n_prom)
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.inner_mut().set_decided_idx(ld)
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        self.inner().get_decided_idx()
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.inner_mut().set_accepted_round(na)
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        self.inner().get_accepted_round()
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<T>> {
        self.inner().get_entries(from, to)
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        self.inner().get_log_len()
    }
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<T>> {
        self.inner().get_suffix(from)
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        self.inner().get_promise()
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        self.inner_mut().set_stopsign(s)
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        self.inner().get_stopsign()
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        self.inner_mut().trim(idx)
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.inner_mut().set_compacted_idx(idx)
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        self.inner().get_compacted_idx()
    }
    fn set_snapshot(&mut self, snapshot: Option<T::Snapshot>) -> StorageResult<()> {
        self.inner_mut().set_snapshot(snapshot)
    }
    fn get_snapshot(&self) -> StorageResult<Option<T::Snapshot>> {
        self.inner().get_snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        let cases = [
            ("memory", Backend::Memory.spec(Path::new(""))),
            ("memory:", Backend::Memory.spec(Path::new(""))),
            (
                "files:/var/lib/app/log",
                Backend::Files.spec(Path::new("/var/lib/app/log")),
            ),
            (
                "rocks:/var/lib/app/db#shard-7",
                StorageSpec::new(Backend::Rocks, "/var/lib/app/db", Some("shard-7")).unwrap(),
            ),
            ("rocks:rel/db", Backend::Rocks.spec(Path::new("rel/db"))),
            ("rocks:/d##x", Backend::Rocks.spec(Path::new("/d#x"))),
            (
                "rocks:/d#x",
                StorageSpec::new(Backend::Rocks, "/d", Some("x")).unwrap(),
            ),
            (
                "rocks:/a##b###shard-1",
                StorageSpec::new(Backend::Rocks, "/a#b#", Some("shard-1")).unwrap(),
            ),
            ("files:/d#x", Backend::Files.spec(Path::new("/d#x"))),
            (
                "files-multi:/var/lib/app/logs#shard-7",
                StorageSpec::new(Backend::FilesMulti, "/var/lib/app/logs", Some("shard-7"))
                    .unwrap(),
            ),
            (
                "files-multi:/d##x",
                Backend::FilesMulti.spec(Path::new("/d#x")),
            ),
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
                let spec = StorageSpec::new(Backend::Rocks, path, log).unwrap();
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
            ("rocks:", "expected `rocks:<dir>[#<log>]`"),
            ("rocks:/db#", "empty log name"),
            ("rocks:/a#b#c", "a second `#`"),
            ("rocks:#x", "expected `rocks:<dir>[#<log>]`"),
            ("memory:/x", "takes no path"),
            ("files-multi:", "expected `files-multi:<dir>[#<log>]`"),
            ("files-multi:/a#b#c", "a second `#`"),
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
            let err = AnyStorage::<paxstore_core::kv::KeyValue>::open_spec(
                &spec,
                StoreOptions::default(),
            )
            .unwrap_err();
            assert!(matches!(err, AnyError::NotCompiledIn { .. }));
            assert!(err
                .to_string()
                .contains(&format!("--features {}", backend.feature())));
        }
    }
}
