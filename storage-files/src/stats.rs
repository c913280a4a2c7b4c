//! Counters the engine keeps about itself.

use std::time::Duration;

/// A snapshot of the engine's counters, from [`FilesStorage::stats`](crate::FilesStorage::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes written to segment and snapshot files since open.
    pub bytes_written: u64,
    /// `fdatasync`/`fsync` calls on files and directories since open.
    pub fsyncs: u64,
    /// Segment files currently on disk.
    pub live_segments: u64,
    /// Segment files deleted since open.
    pub deleted_segments: u64,
    /// Bytes of all live segment files.
    pub segment_bytes: u64,
    /// How long the last open's recovery took.
    pub last_recovery: Duration,
    /// Bytes cut from a torn tail by the last recovery.
    pub torn_tail_bytes_cut: u64,
    /// Bytes of entry positions held in memory.
    pub index_bytes: u64,
}
