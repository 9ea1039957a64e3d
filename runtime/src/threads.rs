//! A small persistent thread pool for the forward pass.
//!
//! The context owns it; the calling thread takes part as worker 0. A parallel region is a number
//! of chunks (e.g. fixed blocks of rows of a weight matrix) and one closure; every thread claims
//! chunks one at a time from a shared counter and runs the closure on each, with its own worker
//! index for per-worker scratch. Chunk boundaries are fixed by the caller independently of the
//! thread count, so each output is always computed the same way and results are bit-identical
//! for any thread count, whichever thread ran which chunk.
//!
//! Claiming instead of a fixed share per thread matters on small shared devices: a worker that
//! the OS has descheduled (another process holds the core) claims nothing, and the calling
//! thread finishes the region alone instead of waiting for it at a barrier; a slower core simply
//! takes fewer chunks. The caller waits only for chunks already claimed. Workers spin briefly for
//! the next region, then park on a condition variable. Starting a region allocates nothing (the
//! closure is passed by reference), which keeps the decode loop allocation-free with threads on.
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

type Job = *const (dyn Fn(usize, usize) + Sync);

/// The region word: generation (20 bits, wrapping), chunk count (22 bits), next unclaimed chunk
/// (22 bits). One word, so that a claim (a compare-and-swap) succeeds only for a chunk of the
/// region that is still running: a worker that read the word of a finished region fails.
const CHUNK_BITS: u32 = 22;
const CHUNK_MASK: u64 = (1 << CHUNK_BITS) - 1;
const GEN_MASK: u64 = (1 << (64 - 2 * CHUNK_BITS)) - 1;
/// Most chunks in one region.
pub const MAX_CHUNKS: usize = CHUNK_MASK as usize;

fn pack(generation: u64, n_chunks: u64, next: u64) -> u64 {
    ((generation & GEN_MASK) << (2 * CHUNK_BITS)) | (n_chunks << CHUNK_BITS) | next
}

fn generation_of(word: u64) -> u64 {
    word >> (2 * CHUNK_BITS)
}

struct Shared {
    /// The current region's closure; written by the caller before the region word is published,
    /// read by a thread only after it claimed a chunk of that region.
    job: UnsafeCell<Option<Job>>,
    /// See [`pack`].
    region: AtomicU64,
    /// Chunks of the current region that have finished.
    done: AtomicUsize,
    /// A chunk panicked on a worker thread in the current region.
    worker_panicked: AtomicBool,
    /// Workers parked on `wake`.
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is only written by the pool's owner while no chunk of any region is claimed and
// unfinished (the previous region waited for `done == n_chunks`), and read by a worker only
// after a successful claim in the current region (the claim's Acquire pairs with the owner's
// Release publication of the region word), before that chunk is counted in `done`. The pointee
// is `Sync`. Every other field is a synchronisation primitive.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

impl Shared {
    /// Claims the next chunk of region `generation`, if that region is still running and has
    /// one left.
    fn claim(&self, generation: u64) -> Option<usize> {
        let mut word = self.region.load(Ordering::Acquire);
        loop {
            let n = (word >> CHUNK_BITS) & CHUNK_MASK;
            let next = word & CHUNK_MASK;
            if generation_of(word) != generation || next >= n {
                return None;
            }
            match self.region.compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next as usize),
                Err(now) => word = now,
            }
        }
    }
}

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
            region: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
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

    /// Runs `f(worker, chunk)` once for every `chunk` in `0..n_chunks`, on whichever threads
    /// claim them (`worker` is the index of the thread, 0 for the caller, below
    /// [`ThreadPool::n_threads`]), and returns when all have finished. Chunks beyond
    /// [`MAX_CHUNKS`] run on the calling thread.
    pub fn run_chunks(&self, n_chunks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        let Some(s) = self.shared.as_deref().filter(|_| n_chunks > 1) else {
            (0..n_chunks).for_each(|c| f(0, c));
            return;
        };
        let n = n_chunks.min(MAX_CHUNKS);
        // SAFETY: no chunk of an earlier region is claimed and unfinished (each `run_chunks`
        // waits for all of its chunks), so no thread reads `job` now. The lifetime is erased;
        // the pointer is only used for chunks of this region, all finished before this
        // function returns.
        unsafe {
            let erased: Job = std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), Job>(f);
            *s.job.get() = Some(erased);
        }
        s.done.store(0, Ordering::Relaxed);
        s.worker_panicked.store(false, Ordering::Relaxed);
        // Only this thread writes the region word.
        let generation = (generation_of(s.region.load(Ordering::Relaxed)) + 1) & GEN_MASK;
        {
            // Publish under the lock so that a worker about to park cannot miss it.
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.region
                .store(pack(generation, n as u64, 0), Ordering::Release);
        }
        if s.sleepers.load(Ordering::Acquire) > 0 {
            s.wake.notify_all();
        }
        // A panic in `f` on this thread must not leave workers holding a dangling job: the
        // remaining chunks still run, and all of them finish before unwinding further.
        let mut panic = None;
        while let Some(c) = s.claim(generation) {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0, c))) {
                panic.get_or_insert(p);
            }
            s.done.fetch_add(1, Ordering::Release);
        }
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) != n {
            spins += 1;
            if spins < SPIN_ITERS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        if s.worker_panicked.load(Ordering::Acquire) {
            panic!("a worker thread panicked in a parallel region");
        }
        (n..n_chunks).for_each(|c| f(0, c));
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new region: spin, then park.
        let mut spins = 0u32;
        let generation = loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let g = generation_of(s.region.load(Ordering::Acquire));
            if g != seen {
                break g;
            }
            spins += 1;
            if spins < SPIN_ITERS {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::AcqRel);
            while generation_of(s.region.load(Ordering::Acquire)) == seen
                && !s.shutdown.load(Ordering::Acquire)
            {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::AcqRel);
            spins = 0;
        };
        seen = generation;
        while let Some(c) = s.claim(generation) {
            // SAFETY: the owner wrote `job` before publishing this region (Release; our claim
            // read it with Acquire) and keeps the closure alive until every chunk of the region,
            // this one included, is counted in `done` below.
            let job = unsafe { *s.job.get() };
            if let Some(job) = job {
                // SAFETY: see above; the closure is `Sync`, so calling it from here is allowed.
                let f = unsafe { &*job };
                // A panicking chunk must still be counted, or the owner waits for ever.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index, c))).is_err() {
                    s.worker_panicked.store(true, Ordering::Release);
                }
            }
            s.done.fetch_add(1, Ordering::Release);
        }
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

/// A pointer to an output buffer (of f32, or of `T`) that workers fill in disjoint ranges.
#[derive(Debug)]
pub struct SharedOut<T = f32>(*mut T, usize);

impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOut<T> {}

// SAFETY: `SharedOut` only hands out disjoint sub-slices (see `range`), each to one worker;
// the elements are plain data sent to that worker.
unsafe impl<T: Send> Sync for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// Wraps `out` for the duration of one region.
    pub fn new(out: &mut [T]) -> SharedOut<T> {
        SharedOut(out.as_mut_ptr(), out.len())
    }

    /// The sub-slice `r` of the buffer.
    ///
    /// # Safety
    /// `r` lies inside the buffer, no two live calls' ranges overlap, and the buffer passed to
    /// [`SharedOut::new`] outlives the returned slice and is not otherwise accessed meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: std::ops::Range<usize>) -> &mut [T] {
        debug_assert!(r.start <= r.end && r.end <= self.1);
        // SAFETY: guaranteed by the caller (in bounds, disjoint, alive).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(r.start), r.end - r.start) }
    }
}

/// Runs `f(i, row)` for each of the first `n` rows of `out` (rows of `len` elements): on the
/// pool, a few rows per chunk, from `min_parallel` rows on, else one after another on the
/// calling thread. For steps whose rows are independent (a token's norm, a column's
/// quantization): a row's result depends only on its index and its own elements, never on the
/// thread, so results are bit-identical for any thread count.
///
/// # Panics
/// If `out` holds fewer than `n * len` elements.
pub fn run_rows<T: Send>(
    pool: &ThreadPool,
    min_parallel: usize,
    out: &mut [T],
    len: usize,
    n: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    if len == 0 {
        return;
    }
    let out = &mut out[..n * len];
    if n < min_parallel || pool.n_threads() == 1 {
        for (i, row) in out.chunks_exact_mut(len).enumerate() {
            f(i, row);
        }
        return;
    }
    // Two chunks per thread, so that claiming balances them.
    let per = n.div_ceil(2 * pool.n_threads());
    let shared = SharedOut::new(out);
    pool.run_chunks(n.div_ceil(per), &|_, chunk| {
        let rows = chunk * per..((chunk + 1) * per).min(n);
        // SAFETY: chunk `chunk` runs exactly once in this region and chunks are disjoint row
        // ranges of `out` (in bounds: `chunk < n.div_ceil(per)` and `out` holds `n * len`
        // elements), which this function borrows mutably until the region has ended.
        let piece = unsafe { shared.range(rows.start * len..rows.end * len) };
        for (i, row) in piece.chunks_exact_mut(len).enumerate() {
            f(rows.start + i, row);
        }
    });
}

/// What [`run_parts`] runs for each part: `(part, out_part, scratch)`.
pub type PartFn<'f> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'f;

/// Runs `f(part, out_part, scratch)` for every `part` of `out` cut into pieces of `part_len`
/// elements (the last may be shorter): `out_part` is that piece, `scratch` the `scratch_len`
/// elements of `scratch` that belong to the thread running it. Parts run in parallel on
/// `pool` when given, else one after another on the calling thread (with the first share of
/// scratch).
///
/// The safe face of [`SharedOut`] for regions whose items each own one contiguous piece of the
/// output: the forward pass itself needs no `unsafe`.
///
/// # Panics
/// If `part_len` is 0 or `scratch` holds fewer than `scratch_len` elements per thread (a bug
/// in the caller's buffer layout, caught before anything runs).
pub fn run_parts(
    pool: Option<&ThreadPool>,
    out: &mut [f32],
    part_len: usize,
    scratch: &mut [f32],
    scratch_len: usize,
    f: &PartFn<'_>,
) {
    assert!(part_len > 0, "run_parts: parts of 0 elements");
    let n_parts = out.len().div_ceil(part_len);
    let Some(pool) = pool else {
        let mine = &mut scratch[..scratch_len];
        for (i, piece) in out.chunks_mut(part_len).enumerate() {
            f(i, piece, mine);
        }
        return;
    };
    assert!(
        scratch.len() >= pool.n_threads() * scratch_len,
        "run_parts: {} scratch elements for {} threads of {scratch_len}",
        scratch.len(),
        pool.n_threads()
    );
    let (out_len, shared_out, shared_scratch) =
        (out.len(), SharedOut::new(out), SharedOut::new(scratch));
    pool.run_chunks(n_parts, &|worker, part| {
        let r = part * part_len..((part + 1) * part_len).min(out_len);
        // SAFETY: part `part` runs exactly once in this region and parts are disjoint ranges
        // of `out` (checked in bounds by construction: `part < n_parts`); `worker` is below
        // `n_threads` and runs one part at a time, so its share of `scratch` (in bounds by the
        // assert above) is used by nobody else meanwhile. Both buffers are borrowed mutably
        // by this function for the whole region, which ends before it returns.
        let (piece, mine) = unsafe {
            (
                shared_out.range(r),
                shared_scratch.range(worker * scratch_len..(worker + 1) * scratch_len),
            )
        };
        f(part, piece, mine);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once_on_a_valid_worker() {
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n).unwrap();
            for chunks in [0usize, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..50 {
                    pool.run_chunks(chunks, &|w, c| {
                        assert!(w < n);
                        hits[c].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
            }
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
            pool.run_chunks(11, &|_, c| {
                let r = split(1001, 11, c);
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

    /// A worker that is slow (as if descheduled) delays only the chunk it holds: the caller
    /// takes every other chunk.
    #[test]
    fn the_caller_takes_the_chunks_of_a_slow_worker() {
        let pool = ThreadPool::new(2).unwrap();
        let by_caller = AtomicUsize::new(0);
        pool.run_chunks(64, &|w, _| {
            if w == 0 {
                by_caller.fetch_add(1, Ordering::Relaxed);
            } else {
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        });
        assert!(by_caller.load(Ordering::Relaxed) >= 60, "{by_caller:?}");
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller_after_the_region() {
        let pool = ThreadPool::new(2).unwrap();
        let ran = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run_chunks(20, &|_, c| {
                ran.fetch_add(1, Ordering::Relaxed);
                assert!(c != 7, "chunk 7");
            })
        }));
        assert!(result.is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 20);
        // The pool still works.
        let hits = AtomicUsize::new(0);
        pool.run_chunks(9, &|_, _| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 9);
    }
}
