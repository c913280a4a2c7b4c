//! Options of the segment-file engine.

use std::sync::Arc;

use paxstore_core::{StoreOptions, SyncPolicy};

use crate::env::{FileSystem, StdFs};
use crate::error::{Error, Result};

/// What recovery does with damage it finds at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Only a torn final record (a write cut short by a crash) is cut off. A bad checksum with
    /// valid data after it, a bad header, a missing segment or snapshot file: open fails with
    /// [`Error::Corrupt`]. The default, and the only mode that never drops acknowledged
    /// data silently.
    #[default]
    Strict,
    /// Opens what can be opened: the last segment is cut at its first damaged record (dropping
    /// everything after it, acknowledged or not) and a missing or damaged snapshot file is
    /// forgotten. For salvaging a damaged store by hand, never for a replica that votes.
    Lenient,
}

/// Options for [`FilesStorage`](crate::FilesStorage); build with the methods.
///
/// ```
/// use paxstore_files::{FilesOptions, RecoveryMode};
/// let opts = FilesOptions::new().segment_size(8 << 20).recovery(RecoveryMode::Strict);
/// assert_eq!(opts.segment_size_bytes(), 8 << 20);
/// ```
#[derive(Clone)]
pub struct FilesOptions {
    pub(crate) core: StoreOptions,
    pub(crate) segment_size: u64,
    pub(crate) recovery: RecoveryMode,
    pub(crate) preallocate: bool,
    pub(crate) background_purge: bool,
    pub(crate) adopt_unmarked: bool,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) group_wait: std::time::Duration,
    pub(crate) groups_in_flight: usize,
}

impl std::fmt::Debug for FilesOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesOptions")
            .field("sync", &self.core.sync)
            .field("segment_size", &self.segment_size)
            .field("recovery", &self.recovery)
            .field("preallocate", &self.preallocate)
            .field("background_purge", &self.background_purge)
            .finish()
    }
}

impl Default for FilesOptions {
    fn default() -> Self {
        FilesOptions {
            core: StoreOptions::default(),
            segment_size: 64 << 20,
            recovery: RecoveryMode::Strict,
            preallocate: true,
            background_purge: true,
            adopt_unmarked: false,
            fs: Arc::new(StdFs),
            group_wait: std::time::Duration::from_micros(100),
            groups_in_flight: 2,
        }
    }
}

impl FilesOptions {
    /// Defaults: 64 MiB segments, durable writes, strict recovery, preallocation on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Segment size in bytes (4 KiB to 1 GiB); a segment is sealed once a record would take
    /// it past this size. A single larger batch gets a segment of its own.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// The sync policy. [`SyncPolicy::Never`] is unsafe for consensus: see its docs.
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.core.sync = sync;
        self
    }

    /// The options shared by all paxstore backends.
    pub fn store_options(mut self, core: StoreOptions) -> Self {
        self.core = core;
        self
    }

    /// The recovery mode.
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// Whether a new segment's disk space is reserved up front (`fallocate`), so that
    /// appends do not grow the file and `fdatasync` has no size to flush.
    pub fn preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self
    }

    /// Whether dead files (segments below a trim, superseded snapshots) are deleted by a
    /// worker thread (the default) rather than inside the call that made them dead. Either
    /// way they are dead only once the record that killed them is durable; a crash before the
    /// deletion leaves them for the next open to delete.
    pub fn background_purge(mut self, on: bool) -> Self {
        self.background_purge = on;
        self
    }

    /// Whether open may write a marker into a directory that holds paxstore-files' segments
    /// but no `PAXSTORE` marker (a store written before stores had markers, or whose marker
    /// was deleted). Off by default: such a directory is refused, since a store must never be
    /// mistaken for another one. Turn it on once, for a directory you know is this store's.
    pub fn adopt_unmarked_store(mut self, on: bool) -> Self {
        self.adopt_unmarked = on;
        self
    }

    /// Many-logs store ([`FilesStore`](crate::FilesStore)) only: how long a group commit's
    /// leader waits, at most, for as many writers as its recent groups held to queue (default
    /// 100 µs; zero: never wait). It costs a lone writer nothing (its groups hold one) and
    /// lets steady concurrent writers share one `fdatasync` instead of alternating in halves.
    pub fn group_wait(mut self, wait: std::time::Duration) -> Self {
        self.group_wait = wait;
        self
    }

    /// Many-logs store only: how many groups may be between their write and the end of their
    /// `fdatasync` at once (default 2, at least 1). With 2 the next group is written while one
    /// is being synced; more makes groups smaller (each leader syncs for fewer writers).
    pub fn groups_in_flight(mut self, groups: usize) -> Self {
        self.groups_in_flight = groups.max(1);
        self
    }

    /// The file system to use (tests pass a [`FaultyFs`](crate::env::FaultyFs)).
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// The configured segment size.
    pub fn segment_size_bytes(&self) -> u64 {
        self.segment_size
    }

    /// The configured sync policy.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.core.sync
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(4096..=1 << 30).contains(&self.segment_size) {
            return Err(Error::InvalidOption(format!(
                "segment size {} is outside 4 KiB..=1 GiB",
                self.segment_size
            )));
        }
        Ok(())
    }
}
