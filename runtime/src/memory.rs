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
    /// Allocated by the context: the first `len` bytes of `lines`.
    Owned { lines: Vec<Line>, len: usize },
    /// Handed in by the caller, already checked for size and alignment.
    Borrowed(&'a mut [u8]),
}

/// One cache line: the unit the owned region is allocated in, so that it is aligned without
/// over-allocating.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Line([u8; ALIGN]);

// SAFETY: `Line` is `repr(C)` around a byte array whose size equals its alignment: it has no
// padding, every bit pattern is valid, and all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; it is also `Copy` and `'static`.
#[allow(unsafe_code)]
unsafe impl bytemuck::Pod for Line {}

impl Region<'static> {
    /// A zeroed, [`ALIGN`]-aligned region of `len` bytes (allocating exactly `len` rounded up to
    /// a whole cache line); an error instead of an abort if the allocator refuses.
    pub(crate) fn owned(len: usize) -> Result<Region<'static>> {
        let n = len.div_ceil(ALIGN);
        let mut lines = Vec::new();
        lines
            .try_reserve_exact(n)
            .map_err(|_| Error::OutOfMemory { bytes: len })?;
        lines.resize(n, Line([0; ALIGN]));
        Ok(Region::Owned { lines, len })
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
            Region::Owned { lines, len } => &bytemuck::cast_slice(lines)[..*len],
            Region::Borrowed(m) => m,
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Region::Owned { lines, len } => &mut bytemuck::cast_slice_mut(lines)[..*len],
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
