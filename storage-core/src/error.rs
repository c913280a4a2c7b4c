//! The error type of the storage contract.

use std::fmt;

/// Every error that `paxstore-core` returns.
///
/// Each variant names what was attempted and where (index, op, the thing being decoded), so
/// that an operator reading a log line knows what happened without the source code. The type
/// converts into the `Box<dyn Error>` that [`omnipaxos::storage::StorageResult`] carries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `append_on_prefix(index, entries)` was called with an index the contract rejects:
    /// below the first stored entry, or past the log end with entries to append.
    #[error(
        "append_on_prefix({index}, {len} entries) rejected: the stored log holds [{first}, {next}); \
         the index must lie in [{first}, {next}] (or past {next} with no entries)"
    )]
    AppendOnPrefixOutOfRange {
        /// The index that was requested.
        index: usize,
        /// How many entries were to be appended.
        len: usize,
        /// The lowest stored index at the time of the call.
        first: usize,
        /// One past the highest stored index at the time of the call.
        next: usize,
    },
    /// A value could not be serialized.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded (`"entry"`, `"snapshot"`, ...).
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: bincode::error::EncodeError,
    },
    /// Bytes could not be deserialized into a value.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The deserializer's error.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// Encoded bytes carry a format version this build does not read.
    #[error("cannot decode {what}: format version {found}, this build reads version {expected}")]
    FormatVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The version byte this build writes and reads.
        expected: u8,
    },
    /// Encoded bytes were empty where a version byte was expected.
    #[error("cannot decode {what}: the buffer is empty")]
    Empty {
        /// What was being decoded.
        what: &'static str,
    },
    /// Bytes remained after a complete value was decoded.
    #[error("cannot decode {what}: {extra} unexpected bytes after the value")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// An operation on an index that overflows `usize` arithmetic.
    #[error("{op} at index {index} overflows the index space")]
    IndexOverflow {
        /// The operation.
        op: Op,
        /// The index involved.
        index: usize,
    },
}

/// The storage operation an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// `append_entry` / `append_entries` / `AppendEntry` / `AppendEntries`.
    Append,
    /// `append_on_prefix` / `AppendOnPrefix`.
    AppendOnPrefix,
    /// `trim` / `Trim`.
    Trim,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Append => "append",
            Op::AppendOnPrefix => "append_on_prefix",
            Op::Trim => "trim",
        })
    }
}

/// The result type used inside `paxstore-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
