//! Options of a [`RocksStore`](crate::RocksStore), and the RocksDB options they produce.

use std::fmt;
use std::sync::Arc;

use paxstore_core::{StoreOptions, SyncPolicy};
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, DBRecoveryMode};

type Tune = Arc<dyn Fn(&mut rocksdb::Options) + Send + Sync>;

/// How a [`RocksStore`](crate::RocksStore) is opened.
///
/// The defaults suit OmniPaxos logs: every write synced before it is acknowledged, RocksDB
/// tuned for append-at-the-end / trim-at-the-front (see the comments in the source of
/// [`RocksOptions::db_options`] and [`RocksOptions::log_options`]), and trimmed space given
/// back in the background once [`reclaim_threshold`](RocksOptions::reclaim_threshold) entries
/// of a log were trimmed.
///
/// ```
/// use paxstore_rocks::RocksOptions;
/// let options = RocksOptions::new()
///     .reclaim_threshold(50_000)
///     .tune_logs(|opts| opts.set_write_buffer_size(32 << 20));
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct RocksOptions {
    store: StoreOptions,
    reclaim_threshold: u64,
    block_cache_bytes: usize,
    write_buffer_bytes: usize,
    target_file_bytes: u64,
    tune_db: Option<Tune>,
    tune_logs: Option<Tune>,
    adopt_unmarked: bool,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            store: StoreOptions::default(),
            reclaim_threshold: 100_000,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            target_file_bytes: 8 << 20,
            tune_db: None,
            tune_logs: None,
            adopt_unmarked: false,
        }
    }
}

impl fmt::Debug for RocksOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksOptions")
            .field("store", &self.store)
            .field("reclaim_threshold", &self.reclaim_threshold)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("write_buffer_bytes", &self.write_buffer_bytes)
            .field("target_file_bytes", &self.target_file_bytes)
            .field("tune_db", &self.tune_db.is_some())
            .field("tune_logs", &self.tune_logs.is_some())
            .field("adopt_unmarked", &self.adopt_unmarked)
            .finish()
    }
}

impl RocksOptions {
    /// The defaults: durable writes, background reclamation every 100,000 trimmed entries,
    /// a 64 MiB block cache, 64 MiB memtables and 8 MiB table files per log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The options shared by all persistent paxstore backends (the sync policy).
    pub fn store_options(mut self, store: StoreOptions) -> Self {
        self.store = store;
        self
    }

    /// Sets the sync policy. [`SyncPolicy::Always`] (the default) syncs the write-ahead log
    /// before each write is acknowledged; [`SyncPolicy::Never`] does not and is **unsafe for
    /// consensus** (see its documentation).
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.store = self.store.sync(sync);
        self
    }

    /// The sync policy in force.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.store.sync
    }

    /// After how many trimmed entries of one log the store reclaims the trimmed range in the
    /// background (drops the table files wholly inside it, then compacts it). `0` turns the
    /// automatic reclamation off; [`RocksStorage::reclaim`](crate::RocksStorage::reclaim)
    /// still works.
    pub fn reclaim_threshold(mut self, entries: u64) -> Self {
        self.reclaim_threshold = entries;
        self
    }

    /// The automatic reclamation threshold in entries (`0`: off).
    pub fn reclaim_threshold_entries(&self) -> u64 {
        self.reclaim_threshold
    }

    /// The size of the block cache shared by all logs of the store.
    pub fn block_cache_bytes(mut self, bytes: usize) -> Self {
        self.block_cache_bytes = bytes;
        self
    }

    /// The memtable size of each log.
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.write_buffer_bytes = bytes;
        self
    }

    /// The target size of each log's table files (smaller files let reclamation drop more of
    /// a trimmed range without rewriting it).
    pub fn target_file_bytes(mut self, bytes: u64) -> Self {
        self.target_file_bytes = bytes;
        self
    }

    /// Whether open may take over a paxstore RocksDB database that has no `PAXSTORE` marker
    /// (one written before stores had markers, or whose marker was deleted): open then checks
    /// that the database is a paxstore one (its column families and format record) and only
    /// then writes a marker. Off by default: such a directory is refused, since a store must
    /// never be mistaken for another one. Turn it on once, for a directory you know is this
    /// store's.
    pub fn adopt_unmarked_store(mut self, on: bool) -> Self {
        self.adopt_unmarked = on;
        self
    }

    /// Whether [`adopt_unmarked_store`](Self::adopt_unmarked_store) is on.
    pub fn adopt_unmarked(&self) -> bool {
        self.adopt_unmarked
    }

    /// Escape hatch: `f` may change the database-wide RocksDB options after paxstore set its
    /// own. paxstore still forces `create_if_missing` and `create_missing_column_families`
    /// afterwards; changing the WAL recovery mode or disabling paranoid checks weakens what
    /// the store detects after a crash.
    pub fn tune_db(mut self, f: impl Fn(&mut rocksdb::Options) + Send + Sync + 'static) -> Self {
        self.tune_db = Some(Arc::new(f));
        self
    }

    /// Escape hatch: `f` may change the RocksDB column-family options of every log after
    /// paxstore set its own (applied to logs created or opened by this store). The key
    /// comparator must stay the default bytewise one.
    pub fn tune_logs(mut self, f: impl Fn(&mut rocksdb::Options) + Send + Sync + 'static) -> Self {
        self.tune_logs = Some(Arc::new(f));
        self
    }

    /// The database-wide RocksDB options this store opens with (the user's
    /// [`tune_db`](Self::tune_db) applied).
    pub fn db_options(&self) -> rocksdb::Options {
        let mut o = rocksdb::Options::default();
        // A torn last record (a crash in the middle of a write that was never acknowledged) is
        // dropped; any other damage in the write-ahead log makes `open` fail instead of
        // silently recovering to an earlier point (PointInTime would) or skipping records.
        o.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        // Record the size of every closed WAL in the MANIFEST: a closed WAL that was truncated
        // or lost is an error at open rather than silently missing batches.
        o.set_track_and_verify_wals_in_manifest(true);
        // Check checksums and file sizes at open and fail on any inconsistency.
        o.set_paranoid_checks(true);
        // Two cores' worth of background work: one flush and one compaction at a time is
        // plenty for logs, whose compactions are small (data arrives in key order).
        o.set_max_background_jobs(2);
        // The metadata column family receives a small write with almost every batch and
        // rarely fills a memtable; without a bound it would pin every old WAL file. At 64 MiB
        // of WAL, RocksDB flushes the column families holding the oldest WAL.
        o.set_max_total_wal_size(64 << 20);
        // Bound the memtables of all logs together, whatever the number of logs.
        o.set_db_write_buffer_size(256 << 20);
        // Many logs writing durably at once: the WAL write of one commit group overlaps the
        // memtable insert of the previous one.
        o.set_enable_pipelined_write(true);
        // Keep RocksDB's own info log small; it lives in the database directory.
        o.set_keep_log_file_num(4);
        o.set_max_log_file_size(8 << 20);
        if let Some(tune) = &self.tune_db {
            tune(&mut o);
        }
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o
    }

    /// The column-family options of every log (the user's [`tune_logs`](Self::tune_logs)
    /// applied). `cache` is the block cache shared by the store.
    pub fn log_options(&self, cache: &Cache) -> rocksdb::Options {
        let mut o = self.base_cf_options(cache);
        // 64 MiB memtables (RocksDB's default): a log that is written fast flushes rarely, so
        // few flushes compete with its synced WAL writes; the database-wide bound below keeps
        // the memory of many logs in check (the largest memtable is flushed first).
        o.set_write_buffer_size(self.write_buffer_bytes);
        o.set_max_write_buffer_number(4);
        // Small table files: `delete_file_in_range` only drops files wholly inside the
        // trimmed range, so the smaller they are, the less is left to compact.
        o.set_target_file_size_base(self.target_file_bytes);
        o.set_max_bytes_for_level_base(self.target_file_bytes * 8);
        if let Some(tune) = &self.tune_logs {
            tune(&mut o);
        }
        o
    }

    /// The options of the metadata column family: a handful of small values per log.
    pub(crate) fn meta_options(&self, cache: &Cache) -> rocksdb::Options {
        let mut o = self.base_cf_options(cache);
        o.set_write_buffer_size(4 << 20);
        o
    }

    fn base_cf_options(&self, cache: &Cache) -> rocksdb::Options {
        let mut o = rocksdb::Options::default();
        // No compression on any level: entries are read back soon after they are written (hot
        // levels), OmniPaxos payloads are often already compact, and the build links no
        // compression library.
        o.set_compression_type(DBCompressionType::None);
        o.set_bottommost_compression_type(DBCompressionType::None);
        let mut table = BlockBasedOptions::default();
        // One block cache for the whole store, so that many logs share one memory budget.
        table.set_block_cache(cache);
        // 16 KiB blocks: a 64-entry read window of small entries usually sits in one or two
        // blocks, and the index stays small.
        table.set_block_size(16 << 10);
        // No Bloom filter: logs are read by range iteration, which filters do not serve.
        o.set_block_based_table_factory(&table);
        o
    }

    pub(crate) fn block_cache_size(&self) -> usize {
        self.block_cache_bytes
    }
}
