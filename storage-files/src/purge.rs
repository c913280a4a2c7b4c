//! Space reclamation off the hot path: a worker thread deletes files that no longer hold live
//! data (segments below a trim, superseded snapshots) and then fsyncs the directory.
//!
//! Deleting is never needed for correctness: the record that makes the files dead is durable
//! before they are queued, and open deletes any dead file a crash left behind. On a file system
//! mounted with online discard an unlink plus directory fsync can take milliseconds, which is
//! why it does not belong in `trim`'s latency. A failed directory fsync poisons the store (the
//! next call reports it), like any other failed fsync; a file that cannot be deleted is tried
//! again with the next deletion (and by the next open). The files after it are deleted all the
//! same: open takes segments below a gap in the ids for dead.

use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::env::FileSystem;

/// Files to delete, oldest first, and whether to fsync the directory afterwards.
struct Job {
    paths: Vec<PathBuf>,
    dir: PathBuf,
    sync_dir: bool,
}

#[derive(Default)]
struct State {
    pending: usize,
    error: Option<String>,
    fsyncs: u64,
    /// Files whose deletion failed, tried again with the next job.
    retry: Vec<PathBuf>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // The worker never panics while holding the lock; recover the state if a caller did.
    shared.0.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(fs: &dyn FileSystem, job: Job, shared: &Shared) {
    let mut error = None;
    let mut paths = std::mem::take(&mut lock(shared).retry);
    paths.extend(job.paths);
    let mut failed = Vec::new();
    for path in paths {
        // A file that cannot be deleted only wastes space: it is dead. Only a failed
        // directory fsync leaves the state of the files unknown.
        if let Err(e) = fs.remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(
                    "could not delete {}: {e}; trying again with the next deletion",
                    path.display()
                );
                failed.push(path);
            }
        }
    }
    let mut fsyncs = 0;
    if job.sync_dir {
        fsyncs = 1;
        if let Err(e) = fs.sync_dir(&job.dir) {
            error = Some(format!("fsync directory {}: {e}", job.dir.display()));
        }
    }
    let mut s = lock(shared);
    s.retry.extend(failed);
    s.fsyncs += fsyncs;
    if s.error.is_none() {
        s.error = error;
    }
    s.pending -= 1;
    shared.1.notify_all();
}

/// Deletes dead files, in a worker thread or inline.
pub(crate) struct Purger {
    fs: Arc<dyn FileSystem>,
    tx: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    shared: Shared,
}

impl Purger {
    /// A purger; `background` starts the worker thread.
    pub(crate) fn new(fs: Arc<dyn FileSystem>, background: bool) -> Self {
        let shared: Shared = Arc::default();
        let (tx, worker) = if background {
            let (tx, rx) = mpsc::channel::<Job>();
            let (wfs, wshared) = (fs.clone(), shared.clone());
            let spawned = std::thread::Builder::new()
                .name("paxstore-purge".into())
                .spawn(move || {
                    for job in rx {
                        run(wfs.as_ref(), job, &wshared);
                    }
                });
            match spawned {
                Ok(handle) => (Some(tx), Some(handle)),
                // Without a thread, purge inline.
                Err(_) => (None, None),
            }
        } else {
            (None, None)
        };
        Purger {
            fs,
            tx,
            worker,
            shared,
        }
    }

    /// Queues `paths` for deletion (oldest first).
    pub(crate) fn submit(&self, paths: Vec<PathBuf>, dir: PathBuf, sync_dir: bool) {
        if paths.is_empty() {
            return;
        }
        lock(&self.shared).pending += 1;
        let job = Job {
            paths,
            dir,
            sync_dir,
        };
        match &self.tx {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    run(self.fs.as_ref(), job, &self.shared);
                }
            }
            None => run(self.fs.as_ref(), job, &self.shared),
        }
    }

    /// Waits until every queued deletion is done; the first failure, if any.
    pub(crate) fn wait(&self) -> Result<(), String> {
        let mut s = lock(&self.shared);
        while s.pending > 0 {
            s = self.shared.1.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.error.clone().map_or(Ok(()), Err)
    }

    /// The first failure of a deletion so far.
    pub(crate) fn error(&self) -> Option<String> {
        lock(&self.shared).error.clone()
    }

    /// Directory fsyncs the worker made.
    pub(crate) fn fsyncs(&self) -> u64 {
        lock(&self.shared).fsyncs
    }
}

impl Drop for Purger {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
