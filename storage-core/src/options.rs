//! Options shared by every persistent backend.

/// When a persistent backend makes a write durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every write is on stable storage (`fdatasync` or the engine's equivalent) before the call
    /// returns `Ok`. What OmniPaxos acknowledges survives `kill -9` and power loss. The default,
    /// and the only policy under which the consensus guarantees of OmniPaxos hold.
    #[default]
    Always,
    /// Writes reach the operating system before the call returns, but are not synced.
    ///
    /// **Unsafe for consensus.** A process crash loses nothing, but a power loss or kernel
    /// crash can lose acknowledged writes: a node may forget a promise or an accepted entry it
    /// already reported, which can make a cluster decide two different values for one index.
    /// Use it for tests, benchmarks and caches that can be rebuilt, never for a replica whose
    /// votes count.
    Never,
}

impl SyncPolicy {
    /// Whether writes are synced before they are acknowledged.
    pub fn is_durable(self) -> bool {
        matches!(self, SyncPolicy::Always)
    }
}

/// Options common to all persistent backends; each backend's own options embed this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// When writes become durable. Default: [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
}

impl StoreOptions {
    /// The defaults: durable before acknowledging.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the sync policy.
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }
}
