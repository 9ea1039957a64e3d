//! The one region of memory a context lives in.
//!
//! Every buffer a context needs (the KV arena, activations, logits) is a fixed slice of one
//! region, laid out by a single function ([`Carver`] walks it). Run over no memory, the walk
//! measures: that is [`crate::Context::memory_required`]. Run over the region, it hands out the
//! slices: at creation to check the size, and at every decode call, where it costs a few
//! dozen pointer splits and allocates nothing. Because both uses run the same code, the size a
//! caller is told and the memory the context touches cannot drift apart.
//!
//! The region is either allocated by the context ([`Region::owned`]) or handed in by the
//! embedder ([`Region::borrowed`]): the forward pass cannot tell the difference.

use bytemuck::Pod;

use crate::error::{Error, Result};

/// Alignment of the region and of every buffer in it (a cache line).
pub const ALIGN: usize = 64;

/// Where a context's buffers live.
#[derive(Debug)]
pub(crate) enum Region<'a> {
    /// Allocated by the context.
    Owned(HugePageBuffer),
    /// Handed in by the caller, already checked for size and alignment.
    Borrowed(&'a mut [u8]),
}

impl Region<'static> {
    /// A zeroed, [`ALIGN`]-aligned region of `len` bytes (allocating exactly `len` rounded up to
    /// a whole cache line), on huge pages where the system gives them ([`HugePageBuffer`]:
    /// attention streams the KV arena as decoding streams the weights); an error instead of an
    /// abort if the allocator refuses.
    pub(crate) fn owned(len: usize) -> Result<Region<'static>> {
        let buf = HugePageBuffer::new(len).ok_or(Error::OutOfMemory { bytes: len })?;
        Ok(Region::Owned(buf))
    }
}

impl<'a> Region<'a> {
    /// The caller's memory, if it holds `needed` bytes and starts on an [`ALIGN`] boundary.
    /// Bytes past `needed` are left alone.
    pub(crate) fn borrowed(mem: &'a mut [u8], needed: usize) -> Result<Region<'a>> {
        if mem.len() < needed {
            return Err(Error::BufferTooSmall {
                needed,
                got: mem.len(),
            });
        }
        let addr = mem.as_ptr() as usize;
        if !addr.is_multiple_of(ALIGN) {
            return Err(Error::Misaligned { addr, align: ALIGN });
        }
        Ok(Region::Borrowed(&mut mem[..needed]))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Region::Owned(buf) => buf.as_slice(),
            Region::Borrowed(m) => m,
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Region::Owned(buf) => buf.as_mut_slice(),
            Region::Borrowed(m) => m,
        }
    }
}

/// Hands out consecutive [`ALIGN`]-aligned slices of a region, or, without a region, only
/// counts the bytes they would take.
#[derive(Debug)]
pub(crate) struct Carver<'b> {
    rest: Option<&'b mut [u8]>,
    pos: usize,
}

impl<'b> Carver<'b> {
    /// Counts without handing out memory (every slice is empty).
    pub(crate) fn measure() -> Carver<'static> {
        Carver { rest: None, pos: 0 }
    }

    /// Hands out slices of `mem`, which must be [`ALIGN`]-aligned and at least as long as a
    /// measuring walk of the same layout said.
    pub(crate) fn over(mem: &'b mut [u8]) -> Carver<'b> {
        debug_assert_eq!(mem.as_ptr() as usize % ALIGN, 0);
        Carver {
            rest: Some(mem),
            pos: 0,
        }
    }

    /// Bytes used so far, rounded up to a whole [`ALIGN`] (the size of the region).
    pub(crate) fn used(&self) -> usize {
        self.pos.next_multiple_of(ALIGN)
    }

    /// The next `n` elements of `T`, starting on an [`ALIGN`] boundary; also returns their
    /// byte range in the region.
    pub(crate) fn take<T: Pod>(&mut self, n: usize) -> (&'b mut [T], core::ops::Range<usize>) {
        let start = self.pos.next_multiple_of(ALIGN);
        let bytes = n * size_of::<T>();
        let pad = start - self.pos;
        self.pos = start + bytes;
        let range = start..start + bytes;
        match self.rest.take() {
            None => (Default::default(), range),
            Some(mem) => {
                let (_, mem) = mem.split_at_mut(pad);
                let (mine, mem) = mem.split_at_mut(bytes);
                self.rest = Some(mem);
                (bytemuck::cast_slice_mut(mine), range)
            }
        }
    }

    /// [`Carver::take`] without the range.
    pub(crate) fn slice<T: Pod>(&mut self, n: usize) -> &'b mut [T] {
        self.take(n).0
    }
}

/// One cache line: the unit [`HugePageBuffer`] allocates, so that it is aligned without
/// over-allocating.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u8; ALIGN]);

// SAFETY: `Line` is `repr(C)` around a byte array whose size equals its alignment: it has no
// padding, every bit pattern is valid, and all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; it is also `Copy` and `'static`.
#[allow(unsafe_code)]
unsafe impl bytemuck::Pod for Line {}

/// Zeroed memory for data that is streamed again and again (the weight copies, a context's
/// region with its KV arena, and the bandwidth probe of `eddy bench`), on huge pages where the
/// system gives them.
///
/// An ordinary allocation (64-byte aligned, exactly the bytes asked for rounded up to a
/// cache line, so a counting global allocator sees it all), whose whole 2 MiB extents are
/// advised for huge pages on Linux (`madvise(MADV_HUGEPAGE)`, which the default "madvise"
/// setting of transparent huge pages honours) before it is first written. Streaming reads take
/// a TLB miss every page: on the AMD EPYC VM of 2026-12-08, a plain AVX2 read of 96 MiB from
/// one core ran at 21–26 GB/s on 4 KiB pages and 30–36 GB/s on huge pages (three runs each,
/// best of 30 passes); SmolLM2-as-Q4_0 decoded at 188–212 tok/s with its copies on 4 KiB
/// pages against 261–297 on huge pages (`eddy bench -t 1 -p 16 -n 64 -r 5`, four alternating
/// rounds), and at a context of 2048 tokens at 120–136 tok/s with its KV arena on 4 KiB pages
/// against 147–153 on huge pages (`-p 2048 -n 64 -r 2`, three rounds). A buffer below 2 MiB,
/// and the partial extents at either end, keep base pages.
#[derive(Debug)]
pub struct HugePageBuffer {
    lines: Vec<Line>,
    len: usize,
}

impl HugePageBuffer {
    /// The size of a huge page on x86-64, and on AArch64 with 4 KiB base pages.
    pub const HUGE_PAGE: usize = 2 << 20;

    /// `len` zeroed bytes, or `None` if the allocator refuses.
    pub fn new(len: usize) -> Option<HugePageBuffer> {
        let mut buf = Self::with_capacity(len)?;
        buf.grow(len);
        Some(buf)
    }

    /// An empty buffer that can [`grow`](Self::grow) to `capacity` bytes without moving; `None`
    /// if the allocator refuses. Nothing is resident until it grows.
    pub fn with_capacity(capacity: usize) -> Option<HugePageBuffer> {
        let mut lines = Vec::new();
        lines.try_reserve_exact(capacity.div_ceil(ALIGN)).ok()?;
        advise_huge_pages(lines.as_ptr() as usize, capacity);
        Some(HugePageBuffer { lines, len: 0 })
    }

    /// Zero-extends the buffer to `len` bytes (nothing if it is longer already). Written after
    /// the advice, so that the pages are faulted in as huge ones. Past the capacity the buffer
    /// moves (to memory not advised).
    pub fn grow(&mut self, len: usize) {
        if len > self.len {
            self.lines.resize(len.div_ceil(ALIGN), Line([0; ALIGN]));
            self.len = len;
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }

    /// The bytes, to write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

/// Asks Linux to back the whole 2 MiB extents of the `len` bytes at `addr` (an allocation of
/// this process) with huge pages. Advice only: a system without transparent huge pages, or
/// that declines, keeps base pages. Elsewhere (and under Miri, which has no `madvise`) nothing.
#[cfg(all(target_os = "linux", not(miri)))]
fn advise_huge_pages(addr: usize, len: usize) {
    let start = addr.next_multiple_of(HugePageBuffer::HUGE_PAGE);
    let end = (addr + len) / HugePageBuffer::HUGE_PAGE * HugePageBuffer::HUGE_PAGE;
    if start < end {
        // SAFETY: `madvise(MADV_HUGEPAGE)` only sets a flag on the mapping of the range (which
        // lies inside an allocation this process owns, on page boundaries): it changes no
        // byte, frees nothing and invalidates no reference; an error leaves all as it was.
        #[allow(unsafe_code)]
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn advise_huge_pages(_addr: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measuring_and_carving_agree() {
        let walk = |c: &mut Carver<'_>| {
            let a = c.slice::<f32>(3).len();
            let (b, r) = c.take::<u8>(5);
            let d = c.slice::<half::f16>(7).len();
            (a + b.len() + d, r)
        };
        let mut m = Carver::measure();
        let (n, r) = walk(&mut m);
        assert_eq!((n, r, m.used()), (0, 64..69, 192));
        let mut region = Region::owned(m.used()).unwrap();
        let mut c = Carver::over(region.bytes_mut());
        let (n, r2) = walk(&mut c);
        assert_eq!((n, r2, c.used()), (15, 64..69, 192));
    }

    #[test]
    fn huge_page_buffers_are_zeroed_aligned_and_exact() {
        // Miri interprets every byte: the sizes past a huge page only natively.
        let big: &[usize] = if cfg!(miri) {
            &[]
        } else {
            &[(2 << 20) + 5, 5 << 20]
        };
        for &len in [0, 1, 63, 64, 100].iter().chain(big) {
            let mut b = HugePageBuffer::new(len).unwrap();
            assert_eq!(b.as_slice().len(), len);
            assert!((b.as_slice().as_ptr() as usize).is_multiple_of(ALIGN));
            assert!(b.as_slice().iter().all(|&x| x == 0));
            b.as_mut_slice().fill(7);
            assert!(b.as_slice().iter().all(|&x| x == 7));
        }
        assert!(HugePageBuffer::new(usize::MAX).is_none());
        // Grown in steps, as the weight copies are: each step zeroed, earlier bytes kept, the
        // buffer never moved within its capacity.
        let mut b = HugePageBuffer::with_capacity(1000).unwrap();
        assert!(b.as_slice().is_empty());
        let mut at = 0;
        for end in [10, 10, 64, 65, 700, 1000] {
            b.grow(end);
            assert_eq!(b.as_slice().len(), end);
            assert!(b.as_slice()[at..].iter().all(|&x| x == 0));
            assert!(b.as_slice()[..at].iter().all(|&x| x == 1));
            b.as_mut_slice()[at..].fill(1);
            at = end;
        }
        let p = b.as_slice().as_ptr();
        b.grow(3);
        assert_eq!((b.as_slice().len(), b.as_slice().as_ptr()), (1000, p));
    }

    #[test]
    fn borrowed_memory_is_checked() {
        let mut owned = Region::owned(256).unwrap();
        let mem = owned.bytes_mut();
        assert!(matches!(
            Region::borrowed(&mut mem[..100], 128),
            Err(Error::BufferTooSmall {
                needed: 128,
                got: 100
            })
        ));
        assert!(matches!(
            Region::borrowed(&mut mem[4..], 128),
            Err(Error::Misaligned { align: 64, .. })
        ));
        assert_eq!(Region::borrowed(mem, 128).unwrap().bytes().len(), 128);
        assert!(matches!(
            Region::owned(usize::MAX),
            Err(Error::OutOfMemory { .. })
        ));
    }
}
