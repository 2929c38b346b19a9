//! The host threads that run conv and linear jobs while the scheduler goes on (see `jobs.rs`).
//!
//! A run with more than one host thread starts `threads − 1` workers that take tasks from
//! one queue, oldest first, and stops them when it returns. A conv instruction lasts 10 to
//! 60 microseconds of host time, a large fc tile a few, about what it costs to wake a
//! sleeping thread or less, so an idle
//! worker polls the queue for a while before it sleeps (yielding its core between polls),
//! and the scheduler wakes it only when it sleeps: while jobs keep coming, handing one over
//! is a push under an uncontended lock.
//! The workers are scoped threads of the run, so none outlives it, and a guard closes the
//! queue however the run ends, so none waits forever.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Work that whoever takes it first runs; later takers find it gone.
pub(crate) trait Task: Send + Sync {
    /// Runs the work unless someone has; returns whether this call ran it.
    fn try_run(&self) -> bool;
}

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(100);

#[derive(Default)]
struct Inner {
    tasks: VecDeque<Arc<dyn Task>>,
    sleeping: usize,
    closed: bool,
}

/// The tasks no one has taken yet.
#[derive(Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    /// The queue's length, read without the lock by idle workers and the scheduler.
    queued: AtomicUsize,
    wake: Condvar,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // Tasks run outside the lock, so a panic never leaves it poisoned mid-update.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    /// Adds a task, waking a sleeping worker if there is one.
    pub(crate) fn push(&self, task: Arc<dyn Task>) {
        let mut g = lock(&self.inner);
        g.tasks.push_back(task);
        self.queued.fetch_add(1, Ordering::Release);
        if g.sleeping > 0 {
            self.wake.notify_one();
        }
    }

    /// The oldest task no one has taken, if any.
    pub(crate) fn pop(&self) -> Option<Arc<dyn Task>> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let task = lock(&self.inner).tasks.pop_front();
        if task.is_some() {
            self.queued.fetch_sub(1, Ordering::Release);
        }
        task
    }

    fn close(&self) {
        lock(&self.inner).closed = true;
        self.wake.notify_all();
    }

    /// A worker's loop: run tasks, spin while idle, then sleep until a push or the close.
    fn work(&self) {
        let mut idle = Instant::now();
        loop {
            if let Some(task) = self.pop() {
                task.try_run();
                idle = Instant::now();
                continue;
            }
            if idle.elapsed() < SPIN {
                // Yielding rather than spinning in place: when the machine has fewer free
                // cores than the run has threads, the scheduler's thread gets this one's.
                std::thread::yield_now();
                continue;
            }
            let mut g = lock(&self.inner);
            while g.tasks.is_empty() && !g.closed {
                g.sleeping += 1;
                g = self.wake.wait(g).unwrap_or_else(PoisonError::into_inner);
                g.sleeping -= 1;
            }
            if g.closed {
                return;
            }
            idle = Instant::now();
        }
    }
}

/// Closes the queue when the run ends, however it ends.
struct CloseOnDrop<'a>(&'a Queue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Calls `f` with a queue served by `n` worker threads (none and no queue for `n = 0`),
/// and stops the workers after it. A worker that cannot be started is done without: the
/// scheduler runs the tasks no one has taken itself.
pub(crate) fn with_workers<T>(n: usize, f: impl FnOnce(Option<Arc<Queue>>) -> T) -> T {
    if n == 0 {
        return f(None);
    }
    let queue = Arc::new(Queue::default());
    std::thread::scope(|s| {
        let _close = CloseOnDrop(&queue);
        for i in 0..n {
            let q = &queue;
            let _ = std::thread::Builder::new().name(format!("snnc-sim-{i}")).spawn_scoped(s, move || q.work());
        }
        f(Some(Arc::clone(&queue)))
    })
}
