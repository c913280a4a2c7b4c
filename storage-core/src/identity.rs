//! The store marker: a small file every persistent paxstore backend writes into its directory
//! when it creates a store, before anything else, so that a store is never mistaken for
//! another backend's, for an empty directory, or for somebody else's files.
//!
//! The file is named [`MARKER_FILE`] and holds five lines of text:
//!
//! ```text
//! paxstore store marker
//! backend: files
//! format: 1
//! store-id: 8c3f0a4e9b2d41c7a1e05f6d2b9c8e71
//! crc32c: 5d0c1f9a
//! ```
//!
//! `backend` names the backend that owns the directory, `format` its on-disk format version,
//! `store-id` 128 random bits drawn at creation, and the last line is the CRC32C (Castagnoli) of
//! every byte before it, in lowercase hex. Backends write it under [`MARKER_TMP`], fsync it,
//! rename it into place and fsync the directory.

use std::hash::{BuildHasher, Hasher};

/// The marker's file name.
pub const MARKER_FILE: &str = "PAXSTORE";
/// The name the marker is written under before it is renamed into place.
pub const MARKER_TMP: &str = "PAXSTORE.tmp";
const FIRST_LINE: &str = "paxstore store marker";

/// What a marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The backend that owns the directory (`files`, `rocks`).
    pub backend: String,
    /// The backend's on-disk format version.
    pub format: u32,
    /// Drawn at random when the store was created.
    pub store_id: u128,
}

/// Why marker bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid paxstore marker: {0}")]
pub struct MarkerError(pub String);

impl Marker {
    /// A marker for a new store of `backend`, with a fresh random id.
    pub fn new(backend: &str, format: u32) -> Self {
        Marker {
            backend: backend.to_string(),
            format,
            store_id: random_id(),
        }
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let body = format!(
            "{FIRST_LINE}\nbackend: {}\nformat: {}\nstore-id: {:032x}\n",
            self.backend, self.format, self.store_id
        );
        let crc = crc32c::crc32c(body.as_bytes());
        format!("{body}crc32c: {crc:08x}\n").into_bytes()
    }

    /// Reads a marker file's bytes; any damage is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, MarkerError> {
        let err = |s: &str| MarkerError(s.to_string());
        let text = std::str::from_utf8(bytes).map_err(|_| err("not UTF-8 text"))?;
        let crc_at = text
            .rfind("crc32c: ")
            .ok_or_else(|| err("no checksum line"))?;
        let (body, crc_line) = text.split_at(crc_at);
        let crc = crc_line
            .strip_prefix("crc32c: ")
            .and_then(|l| l.strip_suffix('\n'))
            .filter(|h| h.len() == 8 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| err("unreadable checksum line"))?;
        if crc32c::crc32c(body.as_bytes()) != crc {
            return Err(err("checksum mismatch (the file is damaged)"));
        }
        let mut lines = body.lines();
        if lines.next() != Some(FIRST_LINE) {
            return Err(err("wrong first line"));
        }
        let mut field = |name: &str| -> Result<String, MarkerError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .map(str::to_string)
                .ok_or_else(|| MarkerError(format!("no {name} line")))
        };
        let backend = field("backend")?;
        let format = field("format")?
            .parse()
            .map_err(|_| err("unreadable format version"))?;
        let store_id = u128::from_str_radix(&field("store-id")?, 16)
            .map_err(|_| err("unreadable store id"))?;
        Ok(Marker {
            backend,
            format,
            store_id,
        })
    }
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} store, format {}, id {:032x}",
            self.backend, self.format, self.store_id
        )
    }
}

/// 128 random bits from the standard library's randomly seeded hasher (no extra dependency;
/// an id, not a secret), mixed with the clock and the process id.
fn random_id() -> u128 {
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u32(std::process::id());
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        *part = h.finish();
    }
    (u128::from(parts[0]) << 64) | u128::from(parts[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ids_differ() {
        let a = Marker::new("files", 1);
        let b = Marker::new("files", 1);
        assert_ne!(a.store_id, b.store_id);
        assert_eq!(Marker::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn any_damage_is_an_error() {
        let bytes = Marker::new("rocks", 3).encode();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                assert!(Marker::decode(&b).is_err(), "flip at {i} went unnoticed");
            }
        }
        for len in 0..bytes.len() {
            assert!(Marker::decode(&bytes[..len]).is_err());
        }
        assert!(Marker::decode(b"CURRENT").is_err());
    }

    #[test]
    fn the_checksum_is_lowercase_hex_only() {
        // Flipping bit 0x20 of a hex letter changes its case: the checksum line must not read
        // the same then (the CRC covers every byte before it, not the line itself).
        let mut uppercased = 0;
        for _ in 0..64 {
            let bytes = Marker::new("files", 1).encode();
            let text = String::from_utf8(bytes).unwrap();
            let at = text.rfind("crc32c: ").unwrap() + "crc32c: ".len();
            let upper = format!("{}{}", &text[..at], text[at..].to_uppercase());
            if upper != text {
                uppercased += 1;
                assert!(Marker::decode(upper.as_bytes()).is_err(), "{upper}");
            }
        }
        assert!(uppercased > 0);
    }
}
