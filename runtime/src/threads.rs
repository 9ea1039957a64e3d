//! A small persistent thread pool for the forward pass.
//!
//! The context owns it; the calling thread takes part as worker 0. A parallel region hands every
//! worker the same closure and its worker index; work is split by the callers into fixed ranges
//! (e.g. rows of a weight matrix), so each output is always computed the same way and results are
//! bit-identical for any thread count. Workers spin briefly for the next region, then park on a
//! condition variable. Starting a region allocates nothing (the closure is passed by reference),
//! which keeps the decode loop allocation-free with threads on.
//!
//! rayon is not used here: injecting work from a foreign thread costs microseconds and allocates
//! now and then, and a decode step runs about 40 regions per token.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Spins before parking (a region on these models takes tens of microseconds).
const SPIN_ITERS: u32 = 20_000;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// The current region's closure; written by the caller before `generation` is bumped, read
    /// by workers after they see the new generation.
    job: UnsafeCell<Option<Job>>,
    generation: AtomicU64,
    /// Workers that have not finished the current region.
    pending: AtomicUsize,
    /// Workers parked on `wake`.
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is only written by the pool's owner while no region is running (all workers
// have finished the previous one, `pending == 0`) and read by workers only between observing a
// new `generation` (Acquire, paired with the owner's Release) and decrementing `pending`. The
// pointee is `Sync`. Every other field is a synchronisation primitive.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A pool of `n_threads - 1` workers plus the calling thread. With one thread it allocates
/// nothing and starts nothing.
pub struct ThreadPool {
    shared: Option<Arc<Shared>>,
    handles: Vec<JoinHandle<()>>,
    n_threads: usize,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.n_threads)
            .finish()
    }
}

impl ThreadPool {
    /// A pool running regions on `n_threads` threads (the caller included); 0 is taken as 1.
    pub fn new(n_threads: usize) -> std::io::Result<ThreadPool> {
        let n_threads = n_threads.max(1);
        if n_threads == 1 {
            return Ok(ThreadPool {
                shared: None,
                handles: Vec::new(),
                n_threads,
            });
        }
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut handles = Vec::with_capacity(n_threads - 1);
        for index in 1..n_threads {
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("eddy-worker-{index}"))
                .spawn(move || worker(&shared, index))?;
            handles.push(handle);
        }
        Ok(ThreadPool {
            shared: Some(shared),
            handles,
            n_threads,
        })
    }

    /// Threads taking part in a region.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `f(i)` for every worker index `i` in `0..n_threads` (index 0 on the calling thread)
    /// and returns when all have finished.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        let Some(s) = self.shared.as_deref() else {
            f(0);
            return;
        };
        // SAFETY: no region is running (the previous `run` waited for `pending == 0`), so no
        // worker reads `job` now. The lifetime is erased; the pointer is only used until this
        // function returns, after every worker has finished with it.
        unsafe {
            let erased: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f);
            *s.job.get() = Some(erased);
        }
        s.pending.store(self.n_threads - 1, Ordering::Relaxed);
        {
            // Bump under the lock so that a worker about to park cannot miss it.
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.generation.fetch_add(1, Ordering::Release);
        }
        if s.sleepers.load(Ordering::Acquire) > 0 {
            s.wake.notify_all();
        }
        // A panic in `f` on this thread must not leave workers holding a dangling job: wait for
        // them before unwinding further.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < SPIN_ITERS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new region: spin, then park.
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins += 1;
            if spins < SPIN_ITERS {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::AcqRel);
            while s.generation.load(Ordering::Acquire) == seen
                && !s.shutdown.load(Ordering::Acquire)
            {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::AcqRel);
            spins = 0;
        }
        // SAFETY: the owner wrote `job` before bumping `generation` (Release; we loaded it with
        // Acquire) and keeps the closure alive until `pending` reaches 0, which happens only
        // after this call returns and we decrement it below.
        let job = unsafe { *s.job.get() };
        if let Some(job) = job {
            // SAFETY: see above; the closure is `Sync`, so calling it from here is allowed.
            let f = unsafe { &*job };
            // A panicking region must still be counted as finished, or the owner waits for ever.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index)));
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        {
            let _guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.shutdown.store(true, Ordering::Release);
        }
        shared.wake.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The fixed share of `0..n` that worker `i` of `parts` computes.
pub fn split(n: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    (n * i / parts)..(n * (i + 1) / parts)
}

/// A pointer to an output buffer that workers fill in disjoint ranges.
#[derive(Clone, Copy, Debug)]
pub struct SharedOut(*mut f32, usize);

// SAFETY: `SharedOut` only hands out disjoint sub-slices (see `range`), each to one worker.
unsafe impl Sync for SharedOut {}
// SAFETY: as above.
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// Wraps `out` for the duration of one region.
    pub fn new(out: &mut [f32]) -> SharedOut {
        SharedOut(out.as_mut_ptr(), out.len())
    }

    /// The sub-slice `r` of the buffer.
    ///
    /// # Safety
    /// `r` lies inside the buffer, no two live calls' ranges overlap, and the buffer passed to
    /// [`SharedOut::new`] outlives the returned slice and is not otherwise accessed meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: std::ops::Range<usize>) -> &mut [f32] {
        debug_assert!(r.start <= r.end && r.end <= self.1);
        // SAFETY: guaranteed by the caller (in bounds, disjoint, alive).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(r.start), r.end - r.start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_runs_each_region_once() {
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n).unwrap();
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..200 {
                pool.run(&|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 200));
        }
    }

    #[test]
    fn split_covers_everything_once() {
        for n in [0, 1, 7, 100, 49152] {
            for parts in 1..6 {
                let mut next = 0;
                for i in 0..parts {
                    let r = split(n, parts, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn disjoint_writes_and_parking() {
        let pool = ThreadPool::new(3).unwrap();
        let mut out = vec![0f32; 1001];
        for round in 0..50 {
            let shared = SharedOut::new(&mut out);
            pool.run(&|i| {
                let r = split(1001, 3, i);
                let start = r.start;
                // SAFETY: `split` ranges are disjoint and inside the buffer.
                let part = unsafe { shared.range(r) };
                for (j, v) in part.iter_mut().enumerate() {
                    *v = (start + j) as f32 + round as f32;
                }
            });
            assert!(
                out.iter()
                    .enumerate()
                    .all(|(j, &v)| v == j as f32 + round as f32)
            );
            if round == 10 {
                // Let the workers park, then wake them.
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}
