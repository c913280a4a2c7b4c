//! The error type of the segment-file engine.

use std::path::PathBuf;

/// Every error `paxstore-files` returns. Each names the file, and where it applies the offset
/// or the log index, so that an operator can find the damage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"write"`, `"fdatasync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another store in this process) holds the directory's lock.
    #[error(
        "{path} is locked by another paxstore instance (its LOCK file is held); close it first"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Data on disk failed a check: a bad checksum with valid data after it, a bad header, a
    /// missing segment or snapshot file.
    #[error("corrupt store: {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// The byte offset in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file was written by an unknown format version.
    #[error("{path}: on-disk format version {found}, this build reads version {expected}")]
    FormatVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// An earlier fsync (or a failed cleanup after a failed write) left the state of the files
    /// unknown; the store refuses every call. Reopen it to recover from what is on disk.
    #[error("store is poisoned and refuses every call; reopen it to recover: {reason}")]
    Poisoned {
        /// The failure that poisoned it.
        reason: String,
    },
    /// A value could not be encoded or decoded, or a batch broke the contract.
    #[error(transparent)]
    Core(#[from] paxstore_core::Error),
    /// A batch is too large for the format (a record must stay below 4 GiB).
    #[error("batch of {bytes} bytes is too large for one record (limit {limit})")]
    TooLarge {
        /// The encoded size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The directory is not a paxstore-files store: it holds another backend's store, files
    /// that are not a store's, or a store whose marker is gone. Nothing in it was changed.
    #[error("{dir} is not a paxstore-files store: {found}. {hint}")]
    Foreign {
        /// The directory.
        dir: PathBuf,
        /// What was found in it.
        found: String,
        /// What to do about it.
        hint: String,
    },
    /// A log name a [`FilesStore`](crate::FilesStore) does not take ([`paxstore_core::names`]):
    /// 1 to 128 bytes of ASCII letters, digits, `_`, `.` and `-`.
    #[error("invalid log name {name:?}: {reason}")]
    InvalidLogName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The store holds no log of this name.
    #[error("no log named `{name}` in the store")]
    NoSuchLog {
        /// The name.
        name: String,
    },
    /// The log is open through another handle (one handle per log at a time).
    #[error("log `{name}` is already open; drop its other handle first")]
    LogInUse {
        /// The name.
        name: String,
    },
    /// An option has a value the engine cannot use.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
