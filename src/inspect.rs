//! What is on disk: the engine behind `paxstore inspect DIR` and `paxstore verify DIR`.
//!
//! [`examine`] finds which backend wrote a directory ([`detect`]: from its `PAXSTORE` marker,
//! see `paxstore_core::identity`, or, without a readable one, from the names of its files) and
//! hands the directory to that backend's own verifier, which reads it without opening the
//! store (no lock is taken, nothing is written, a torn tail is not cut off) and checks
//! everything it reads with the backend's own readers:
//!
//! - **files**: `paxstore_files::verify` (feature `files`):
//!   segments, records, entries, seals and trailers, snapshot files, the metadata replayed as
//!   open replays it;
//! - **files-multi**: `paxstore_files::verify_store` (feature `files`): the many-logs store's
//!   segments, seals and trailers, the newest segment's records replayed, every log's
//!   checkpoint, entries and snapshot files;
//! - **rocks**: `paxstore_rocks::verify` (feature `rocks`): the database opened read-only,
//!   every column family scanned with block checksums verified, each log's metadata decoded.
//!
//! (Which verifier a backend has is its row in the backend table, [`Backend::verify`].)
//!
//! The result is a [`Summary`] (`paxstore_core::verify`, shared by every backend): what is
//! stored, the parts (files, column families) with their sizes, [`Problem`]s (corruption,
//! each naming the file and, where there is one, the offset) and notes (harmless findings
//! such as a torn final record, which the next open cuts off). A store without its marker,
//! with a damaged one, or with files in its directory that are not its backend's is reported
//! as a problem: the backends refuse to open such a directory. A directory that cannot be
//! read at all, that cannot be identified as a store (an empty one, one holding only `LOCK`,
//! a RocksDB database that lost its `CURRENT` file), or holds a format version this build does
//! not read is an [`Unreadable`] error: never a clean result.

use std::path::Path;

use paxstore_core::identity::MARKER_FILE;
pub use paxstore_core::verify::{describe_ballot, LogSummary, Part, Problem, Summary, Unreadable};
use paxstore_core::verify::{list_dir, read_marker};

use crate::any::Backend;

/// Which backend wrote `dir`: the one its marker names; for a directory without a readable
/// marker, the first (in [`Backend::ALL`]'s order) whose files it holds
/// ([`Backend::claims_file`]: paxstore-files segments, a RocksDB `CURRENT` file). A directory
/// that holds neither (an empty one, one holding only `LOCK`) is [`Unreadable`].
pub fn detect(dir: &Path) -> Result<Backend, Unreadable> {
    let names = list_dir(dir)?;
    let persistent = || Backend::ALL.into_iter().filter(|b| b.is_persistent());
    if let Some(Ok(marker)) = read_marker(dir) {
        return persistent()
            .find(|b| b.name() == marker.backend)
            .ok_or_else(|| {
                Unreadable::new(
                    dir,
                    format!(
                        "its marker names a backend this build does not know: {:?}",
                        marker.backend
                    ),
                )
            });
    }
    if let Some(backend) = persistent().find(|b| names.iter().any(|n| b.claims_file(n))) {
        return Ok(backend);
    }
    let held = if names.is_empty() {
        "it is empty".to_string()
    } else {
        let mut shown: Vec<String> = names.iter().take(6).map(|n| format!("`{n}`")).collect();
        if names.len() > 6 {
            shown.push(format!("and {} more", names.len() - 6));
        }
        format!("it holds {}", shown.join(", "))
    };
    Err(Unreadable::new(
        dir,
        format!(
            "cannot identify a paxstore store: no `{MARKER_FILE}` marker and no file that a \
             backend writes ({held})"
        ),
    ))
}

/// Reads and checks the store in `dir` with its backend's verifier (see the module docs).
pub fn examine(dir: &Path) -> Result<Summary, Unreadable> {
    detect(dir)?.verify(dir)
}
