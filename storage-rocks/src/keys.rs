//! The on-disk layout: column family names, entry keys and metadata keys.
//!
//! - Column family [`META_CF`] holds the database's format record ([`FORMAT_KEY`]) and, for
//!   each log, its registration and metadata under `"<log>/<field>"`.
//! - Column family `"paxstore.log.<log>"` holds the log's entries under their absolute index,
//!   8 bytes big-endian, so that key order is index order.
//!
//! Log names are 1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9_.-]`: neither `/` nor `!` can
//! occur in them, so no log's keys can collide with another log's or with [`FORMAT_KEY`].

use crate::error::{Error, Result};

/// The column family of the database record and of every log's metadata.
pub(crate) const META_CF: &str = "paxstore.meta";
/// The prefix of each log's column family name.
pub(crate) const LOG_CF_PREFIX: &str = "paxstore.log.";
/// RocksDB's own column family (always present, unused by paxstore).
pub(crate) const DEFAULT_CF: &str = "default";
/// The key of the database's format record in [`META_CF`].
pub(crate) const FORMAT_KEY: &[u8] = b"!format";
/// The name of the log the single-log constructors ([`RocksStorage::open`]) open.
///
/// [`RocksStorage::open`]: crate::RocksStorage::open
pub const SINGLE_LOG: &str = "log";
/// The longest log name accepted, in bytes.
pub const MAX_NAME_LEN: usize = paxstore_core::names::MAX_LOG_NAME;

/// An exclusive upper bound above every entry key (all entry keys are 8 bytes).
pub(crate) const ENTRY_KEYS_END: [u8; 9] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0];

/// The key of the entry at absolute index `index`.
pub(crate) fn entry_key(index: usize) -> [u8; 8] {
    (index as u64).to_be_bytes()
}

/// The index stored in an entry key, or `None` if the key does not have the entry-key shape.
pub(crate) fn decode_entry_key(key: &[u8]) -> Option<usize> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    usize::try_from(u64::from_be_bytes(bytes)).ok()
}

/// The column family of log `name`.
pub(crate) fn log_cf(name: &str) -> String {
    format!("{LOG_CF_PREFIX}{name}")
}

/// Checks a log name against the rules above ([`paxstore_core::names`]).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    match paxstore_core::names::log_name_problem(name) {
        Some(reason) => Err(Error::InvalidLogName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// One metadata field of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// The log exists (value: its format record).
    Registered,
    /// `promise`.
    Promise,
    /// `accepted_round`.
    AcceptedRound,
    /// `decided_idx`.
    Decided,
    /// `compacted_idx`.
    Compacted,
    /// `stopsign` (absent when `None`).
    Stopsign,
    /// `snapshot` (absent when `None`).
    Snapshot,
    /// The lowest stored index (the highest trim point); absent means 0.
    First,
}

impl Field {
    fn tag(self) -> u8 {
        match self {
            Field::Registered => b'R',
            Field::Promise => b'p',
            Field::AcceptedRound => b'a',
            Field::Decided => b'd',
            Field::Compacted => b'c',
            Field::Stopsign => b's',
            Field::Snapshot => b'n',
            Field::First => b'f',
        }
    }

    /// The field's name in error messages.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Field::Registered => "log record",
            Field::Promise => "promise",
            Field::AcceptedRound => "accepted round",
            Field::Decided => "decided index",
            Field::Compacted => "compacted index",
            Field::Stopsign => "stop-sign",
            Field::Snapshot => "snapshot",
            Field::First => "first index",
        }
    }
}

/// The metadata key of `field` for log `name`.
pub(crate) fn meta_key(name: &str, field: Field) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 2);
    key.extend_from_slice(name.as_bytes());
    key.push(b'/');
    key.push(field.tag());
    key
}

/// The name of the log whose registration key `key` is (`"<log>/R"`), or `None` if `key` is
/// not a registration key.
pub(crate) fn registered_log(key: &[u8]) -> Option<&[u8]> {
    key.strip_suffix(meta_key("", Field::Registered).as_slice())
        .filter(|name| !name.is_empty())
}

/// The half-open key range holding every metadata key of log `name`.
pub(crate) fn meta_range(name: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = name.as_bytes().to_vec();
    start.push(b'/');
    let mut end = name.as_bytes().to_vec();
    end.push(b'/' + 1);
    (start, end)
}

/// The precomputed metadata keys of one log.
#[derive(Debug, Clone)]
pub(crate) struct MetaKeys {
    pub promise: Vec<u8>,
    pub accepted_round: Vec<u8>,
    pub decided: Vec<u8>,
    pub compacted: Vec<u8>,
    pub stopsign: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub first: Vec<u8>,
}

impl MetaKeys {
    pub(crate) fn new(name: &str) -> Self {
        MetaKeys {
            promise: meta_key(name, Field::Promise),
            accepted_round: meta_key(name, Field::AcceptedRound),
            decided: meta_key(name, Field::Decided),
            compacted: meta_key(name, Field::Compacted),
            stopsign: meta_key(name, Field::Stopsign),
            snapshot: meta_key(name, Field::Snapshot),
            first: meta_key(name, Field::First),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_by_index() {
        let keys: Vec<_> = [0usize, 1, 255, 256, 1 << 40, usize::MAX]
            .iter()
            .map(|&i| entry_key(i))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(keys
            .iter()
            .all(|k| k.as_slice() < ENTRY_KEYS_END.as_slice()));
        assert_eq!(decode_entry_key(&entry_key(1 << 40)), Some(1 << 40));
        assert_eq!(decode_entry_key(&[1, 2, 3]), None);
    }

    #[test]
    fn names_and_meta_ranges() {
        assert!(validate_name("shard-17_a.b").is_ok());
        for bad in ["", "a/b", "!x", "é", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        let (start, end) = meta_range("ab");
        for field in [
            Field::Registered,
            Field::Promise,
            Field::Snapshot,
            Field::First,
        ] {
            let k = meta_key("ab", field);
            assert!(start <= k && k < end);
            // a log whose name extends this one's is outside the range
            let other = meta_key("ab-c", field);
            assert!(!(start <= other && other < end));
        }
        assert!(!(start.as_slice() <= FORMAT_KEY && FORMAT_KEY < end.as_slice()));
        assert_eq!(
            registered_log(&meta_key("ab", Field::Registered)),
            Some(&b"ab"[..])
        );
        assert_eq!(registered_log(&meta_key("ab", Field::Promise)), None);
        assert_eq!(registered_log(FORMAT_KEY), None);
    }
}
