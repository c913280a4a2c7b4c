//! The value codec shared by every persistent backend: bincode 2 over serde, behind one
//! format-version byte.
//!
//! Every encoded value is `[FORMAT_VERSION] ++ bincode(value)`. Decoding checks the version
//! byte, decodes exactly one value and rejects trailing bytes, so a truncated, padded or foreign
//! buffer gives an [`Error`], never a panic and never a silently wrong value.
//!
//! ```
//! use paxstore_core::codec;
//! let bytes = codec::encode("ballot", &(7u32, 3u64)).unwrap();
//! let back: (u32, u64) = codec::decode("ballot", &bytes).unwrap();
//! assert_eq!(back, (7, 3));
//! assert!(codec::decode::<(u32, u64)>("ballot", &bytes[..1]).is_err());
//! ```

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// The version byte written in front of every encoded value.
pub const FORMAT_VERSION: u8 = 1;

/// The largest value the decoder accepts (1 GiB): a corrupt length prefix can never make it
/// reserve more than this.
pub const MAX_VALUE_LEN: usize = 1 << 30;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_VALUE_LEN>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_VALUE_LEN>()
}

/// Encodes `value` as `[FORMAT_VERSION] ++ bincode(value)`.
///
/// `what` names the value in the error ("entry", "snapshot", ...).
pub fn encode<V: Serialize + ?Sized>(what: &'static str, value: &V) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(what, value, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `value` to `out`. On error `out` is restored to its former length.
pub fn encode_into<V: Serialize + ?Sized>(
    what: &'static str,
    value: &V,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    out.push(FORMAT_VERSION);
    match bincode::serde::encode_into_std_write(value, out, config()) {
        Ok(_) => Ok(()),
        Err(source) => {
            out.truncate(start);
            Err(Error::Encode { what, source })
        }
    }
}

/// Decodes one value written by [`encode`]; the whole buffer must be consumed.
pub fn decode<V: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<V> {
    let (value, used) = decode_prefix(what, bytes)?;
    if used != bytes.len() {
        return Err(Error::TrailingBytes {
            what,
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

/// Decodes one value written by [`encode`] from the front of `bytes`, returning it and the
/// number of bytes it occupied (version byte included).
pub fn decode_prefix<V: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<(V, usize)> {
    let (&version, body) = bytes.split_first().ok_or(Error::Empty { what })?;
    if version != FORMAT_VERSION {
        return Err(Error::FormatVersion {
            what,
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|source| Error::Decode { what, source })?;
    Ok((value, used + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnipaxos::{ballot_leader_election::Ballot, storage::StopSign, ClusterConfig};
    use proptest::prelude::*;

    #[test]
    fn ballots_and_stopsigns_round_trip() {
        let b = Ballot {
            config_id: 2,
            n: 9,
            priority: 1,
            pid: 3,
        };
        let bytes = encode("ballot", &b).unwrap();
        assert_eq!(decode::<Ballot>("ballot", &bytes).unwrap(), b);
        let ss = StopSign::with(
            ClusterConfig {
                configuration_id: 3,
                nodes: vec![1, 2, 4],
                flexible_quorum: None,
            },
            Some(vec![1, 2]),
        );
        let bytes = encode("stopsign", &ss).unwrap();
        assert_eq!(decode::<StopSign>("stopsign", &bytes).unwrap(), ss);
    }

    #[test]
    fn wrong_version_empty_and_trailing_bytes_are_errors() {
        let mut bytes = encode("entry", &42u64).unwrap();
        assert!(matches!(
            decode::<u64>("entry", &[]),
            Err(Error::Empty { .. })
        ));
        bytes.push(0);
        assert!(matches!(
            decode::<u64>("entry", &bytes),
            Err(Error::TrailingBytes { extra: 1, .. })
        ));
        bytes[0] = 99;
        let err = decode::<u64>("entry", &bytes).unwrap_err();
        assert!(matches!(err, Error::FormatVersion { found: 99, .. }));
        assert!(err.to_string().contains("version 99"));
    }

    #[test]
    fn encode_failure_leaves_buffer_untouched() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(
                &self,
                _: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("refused"))
            }
        }
        let mut out = vec![1, 2, 3];
        assert!(encode_into("entry", &Refuses, &mut out).is_err());
        assert_eq!(out, vec![1, 2, 3]);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<(String, Vec<u64>, Option<Ballot>)>("fuzz", &bytes);
            let _ = decode::<StopSign>("fuzz", &bytes);
        }
    }
}
