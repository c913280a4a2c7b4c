//! A key-value entry type and its snapshot, shaped like the `KeyValue` / `KVSnapshot` example of
//! the OmniPaxos documentation, with a payload of chosen size.
//!
//! The conformance suite, the benchmarks and the examples use these types so that any backend
//! generic over the entry type can be exercised with small and large entries and snapshots.
//! [`KeyValue::unencodable`] builds an entry whose serialization fails, to check that a backend
//! which encodes entries leaves its state untouched when a batch cannot be encoded, and
//! [`KVSnapshot::unencodable`] does the same for a snapshot.

use std::collections::BTreeMap;

use omnipaxos::storage::{Entry, Snapshot};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Opaque bytes carried by an entry; serialized as one byte string.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Payload {
    bytes: Vec<u8>,
    refuse_encoding: bool,
}

impl Payload {
    /// A payload holding `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Payload {
            bytes,
            refuse_encoding: false,
        }
    }

    /// A payload of `len` bytes derived from `seed` (deterministic, not all equal).
    pub fn filled(seed: u64, len: usize) -> Self {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let bytes = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Payload::new(bytes)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.refuse_encoding {
            return Err(serde::ser::Error::custom(
                "this payload refuses to be serialized (built by KeyValue::unencodable)",
            ));
        }
        serializer.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> de::Visitor<'de> for Visit {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload::new(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload::new(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    v.push(b);
                }
                Ok(Payload::new(v))
            }
        }
        deserializer.deserialize_byte_buf(Visit)
    }
}

/// A log entry: set `key` to `value`, with an opaque payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key written.
    pub key: String,
    /// The value written.
    pub value: u64,
    /// Extra bytes, to give entries a chosen size.
    pub payload: Payload,
}

impl KeyValue {
    /// `key = value` with a deterministic payload of `payload_len` bytes.
    pub fn new(key: impl Into<String>, value: u64, payload_len: usize) -> Self {
        KeyValue {
            key: key.into(),
            value,
            payload: Payload::filled(value, payload_len),
        }
    }

    /// An entry whose serialization always fails. A backend that does not encode entries
    /// stores it like any other; one that encodes must refuse the whole batch it is in.
    pub fn unencodable(key: impl Into<String>, value: u64) -> Self {
        KeyValue {
            key: key.into(),
            value,
            payload: Payload {
                bytes: Vec::new(),
                refuse_encoding: true,
            },
        }
    }
}

impl Entry for KeyValue {
    type Snapshot = KVSnapshot;
}

/// The last value (and payload) written for each key.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KVSnapshot {
    /// Key to `(value, payload)` of the last write.
    pub snapshotted: BTreeMap<String, (u64, Payload)>,
}

impl KVSnapshot {
    /// A snapshot with `keys` keys whose payloads add up to about `total_bytes`.
    pub fn sized(keys: usize, total_bytes: usize) -> Self {
        let per_key = total_bytes / keys.max(1);
        let snapshotted = (0..keys)
            .map(|k| {
                (
                    format!("key-{k}"),
                    (k as u64, Payload::filled(k as u64, per_key)),
                )
            })
            .collect();
        KVSnapshot { snapshotted }
    }

    /// A snapshot whose serialization always fails (one key whose payload refuses to be
    /// serialized, like [`KeyValue::unencodable`]). A backend that does not encode snapshots
    /// stores it like any other; one that encodes must refuse the whole batch it is in.
    pub fn unencodable(key: impl Into<String>, value: u64) -> Self {
        let payload = Payload {
            bytes: Vec::new(),
            refuse_encoding: true,
        };
        KVSnapshot {
            snapshotted: BTreeMap::from([(key.into(), (value, payload))]),
        }
    }
}

impl Snapshot<KeyValue> for KVSnapshot {
    fn create(entries: &[KeyValue]) -> Self {
        let mut snapshotted = BTreeMap::new();
        for e in entries {
            snapshotted.insert(e.key.clone(), (e.value, e.payload.clone()));
        }
        KVSnapshot { snapshotted }
    }

    fn merge(&mut self, delta: Self) {
        self.snapshotted.extend(delta.snapshotted);
    }

    fn use_snapshots() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn entries_round_trip_and_unencodable_refuses() {
        let e = KeyValue::new("a", 5, 100);
        let bytes = codec::encode("entry", &e).unwrap();
        assert_eq!(codec::decode::<KeyValue>("entry", &bytes).unwrap(), e);
        assert!(codec::encode("entry", &KeyValue::unencodable("a", 1)).is_err());
        assert!(codec::encode("snapshot", &KVSnapshot::unencodable("a", 1)).is_err());
        assert!(codec::encode("snapshot", &KVSnapshot::sized(2, 10)).is_ok());
    }

    #[test]
    fn snapshot_keeps_last_value_per_key() {
        let mut s = KVSnapshot::create(&[KeyValue::new("a", 1, 0), KeyValue::new("a", 2, 0)]);
        s.merge(KVSnapshot::create(&[KeyValue::new("b", 3, 0)]));
        assert_eq!(s.snapshotted["a"].0, 2);
        assert_eq!(s.snapshotted["b"].0, 3);
    }
}
