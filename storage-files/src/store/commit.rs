//! Group commit: writers queue their requests; the writer at the front of the queue becomes
//! the leader, takes every queued request (up to a byte budget) and commits them together
//! (one write, one `fdatasync`), then hands each writer its own result and wakes it. The next
//! writer at the front leads the next group. Engine-free: the commit itself is the closure
//! given to [`CommitQueue::submit`].

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};

use super::lock;

/// One writer's place: woken when its result is in, or when it reaches the front.
struct Slot<O> {
    wake: Condvar,
    out: Mutex<Option<O>>,
}

struct Waiter<R, O> {
    /// Taken by the leader that commits it.
    req: Option<R>,
    /// Its bytes, for the group budget.
    bytes: usize,
    slot: Arc<Slot<O>>,
}

/// The queue of requests waiting to be committed.
pub(crate) struct CommitQueue<R, O> {
    waiting: Mutex<VecDeque<Waiter<R, O>>>,
    max_group_bytes: usize,
    /// Woken when a request is queued: a leader waiting for its group to fill.
    arrived: Condvar,
    /// The largest group seen lately: a leader whose queue holds fewer waits (at most
    /// `max_wait`) for the writers of the last group to come back, instead of committing half
    /// of them and leaving the other half to the next group.
    recent: Mutex<(usize, u32)>,
    max_wait: std::time::Duration,
    /// Groups between their two stages. A leader waits while `max_in_flight` are: the
    /// writers queued meanwhile make its group larger, instead of each paying for its own
    /// `fdatasync`.
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: usize,
}

impl<R, O> CommitQueue<R, O> {
    /// A queue whose groups hold at most `max_group_bytes` (and at least one request), whose
    /// leaders wait at most `max_wait` for their group to fill, with at most `max_in_flight`
    /// groups between their stages.
    pub(crate) fn new(
        max_group_bytes: usize,
        max_wait: std::time::Duration,
        max_in_flight: usize,
    ) -> Self {
        CommitQueue {
            waiting: Mutex::new(VecDeque::new()),
            max_group_bytes,
            arrived: Condvar::new(),
            recent: Mutex::new((1, 0)),
            max_wait,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Queues `req` (of `bytes` bytes) and returns its result once a leader (this thread or
    /// another) has committed it. A leader commits its group (oldest first) in two stages:
    /// `write` (the next leader waits for it), then `finish` (the next leader may start its
    /// own `write` meanwhile), which must return one result per request in the same order; if
    /// either panics, every request of the group gets `failed()`.
    pub(crate) fn submit<W>(
        &self,
        req: R,
        bytes: usize,
        write: impl FnOnce(Vec<R>) -> W,
        finish: impl FnOnce(W) -> Vec<O>,
        failed: impl Fn() -> O,
    ) -> O {
        let slot = Arc::new(Slot {
            wake: Condvar::new(),
            out: Mutex::new(None),
        });
        let mut queue = lock(&self.waiting);
        queue.push_back(Waiter {
            req: Some(req),
            bytes,
            slot: slot.clone(),
        });
        self.arrived.notify_one();
        loop {
            if let Some(out) = lock(&slot.out).take() {
                return out;
            }
            // The front request leads; a request taken into a group is never at the front
            // while its leader (in front of it) works.
            if queue
                .front()
                .is_some_and(|w| Arc::ptr_eq(&w.slot, &slot) && w.req.is_some())
            {
                break;
            }
            queue = slot.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        // Lead: wait for a group in flight to finish if too many are, and briefly for the
        // writers of the last groups, then take the queued requests, oldest first, within the
        // budget.
        while self.in_flight.load(std::sync::atomic::Ordering::SeqCst) >= self.max_in_flight {
            queue = self.arrived.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        let want = lock(&self.recent).0;
        if queue.len() < want && !self.max_wait.is_zero() {
            let deadline = std::time::Instant::now() + self.max_wait;
            while queue.len() < want {
                let now = std::time::Instant::now();
                if now >= deadline {
                    break;
                }
                queue = self
                    .arrived
                    .wait_timeout(queue, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let mut group = Vec::new();
        let mut total = 0;
        for w in queue.iter_mut() {
            if !group.is_empty() && total + w.bytes > self.max_group_bytes {
                break;
            }
            let Some(req) = w.req.take() else { break };
            total += w.bytes;
            group.push(req);
        }
        let n = group.len();
        drop(queue);
        {
            // The largest group of the last 64, so that a load that drops is followed.
            let mut recent = lock(&self.recent);
            recent.1 += 1;
            if recent.1 >= 64 {
                *recent = (n, 0);
            } else {
                recent.0 = recent.0.max(n);
            }
        }
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let written = catch_unwind(AssertUnwindSafe(|| write(group))).ok();
        // Hand the queue over: the group leaves it, and the next writer at the front may lead
        // while this group finishes.
        let mut queue = lock(&self.waiting);
        let members: Vec<Arc<Slot<O>>> = (0..n)
            .filter_map(|_| queue.pop_front().map(|w| w.slot))
            .collect();
        if let Some(next) = queue.front() {
            next.slot.wake.notify_one();
        }
        drop(queue);
        let outs = written
            .and_then(|w| catch_unwind(AssertUnwindSafe(|| finish(w))).ok())
            .filter(|outs| outs.len() == n)
            .unwrap_or_else(|| (0..n).map(|_| failed()).collect());
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // Under the queue's lock, so that a leader between its check and its wait hears it.
        let queue = lock(&self.waiting);
        self.arrived.notify_all();
        drop(queue);
        let mut own = None;
        for (member, out) in members.into_iter().zip(outs) {
            if Arc::ptr_eq(&member, &slot) {
                own = Some(out);
            } else {
                *lock(&member.out) = Some(out);
                member.wake.notify_one();
            }
        }
        own.unwrap_or_else(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn a_lone_writer_commits_its_own_request() {
        let q = CommitQueue::<u32, u32>::new(1 << 20, Duration::ZERO, 2);
        let out = q.submit(
            7,
            1,
            |g| g,
            |g| g.into_iter().map(|r| r * 2).collect(),
            || 0,
        );
        assert_eq!(out, 14);
    }

    #[test]
    fn concurrent_writers_are_grouped_and_each_gets_its_own_result() {
        let q = Arc::new(CommitQueue::<(usize, u64), (usize, u64)>::new(
            1 << 20,
            Duration::ZERO,
            2,
        ));
        let groups = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (q, groups, commits) = (q.clone(), groups.clone(), commits.clone());
                std::thread::spawn(move || {
                    for k in 0..200u64 {
                        let out = q.submit(
                            (t, k),
                            100,
                            |g| {
                                commits.fetch_add(1, Ordering::SeqCst);
                                // A slow first stage, like a write under the stream's lock,
                                // lets a queue build up behind the leader.
                                std::thread::sleep(Duration::from_micros(200));
                                lock(&groups).push(g.len());
                                g
                            },
                            |g| {
                                // The second stage overlaps the next group's first.
                                std::thread::sleep(Duration::from_micros(100));
                                g
                            },
                            || (usize::MAX, 0),
                        );
                        assert_eq!(out, (t, k), "a writer got another's result");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let groups = lock(&groups);
        assert_eq!(
            groups.iter().sum::<usize>(),
            8 * 200,
            "a request committed twice or never"
        );
        assert!(
            commits.load(Ordering::SeqCst) < 8 * 200,
            "no group ever held more than one request"
        );
    }

    #[test]
    fn groups_keep_the_queue_order_and_the_byte_budget() {
        let q = Arc::new(CommitQueue::<u64, u64>::new(250, Duration::ZERO, 2));
        let order = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (q, order) = (q.clone(), order.clone());
                std::thread::spawn(move || {
                    for k in 0..100u64 {
                        q.submit(
                            t * 1000 + k,
                            100,
                            |g| g,
                            |g| {
                                assert!(g.len() <= 2, "group of {} over the budget", g.len());
                                lock(&order).extend(g.iter().copied());
                                std::thread::sleep(Duration::from_micros(100));
                                g
                            },
                            || 0,
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Each writer's own requests are committed in the order it made them.
        let order = lock(&order);
        for t in 0..4u64 {
            let mine: Vec<u64> = order.iter().copied().filter(|v| v / 1000 == t).collect();
            assert_eq!(mine, (0..100).map(|k| t * 1000 + k).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_stage_fails_its_whole_group_and_the_queue_goes_on() {
        let q = Arc::new(CommitQueue::<u32, Result<u32, ()>>::new(
            1 << 20,
            Duration::ZERO,
            2,
        ));
        let out = q.submit(1, 1, |g| g, |_| panic!("planted"), || Err(()));
        assert_eq!(out, Err(()));
        let out = q.submit(
            2,
            1,
            |_| -> Vec<u32> { panic!("planted") },
            |g| g.into_iter().map(Ok).collect(),
            || Err(()),
        );
        assert_eq!(out, Err(()));
        let out = q.submit(3, 1, |g| g, |g| g.into_iter().map(Ok).collect(), || Err(()));
        assert_eq!(out, Ok(3));
    }
}
