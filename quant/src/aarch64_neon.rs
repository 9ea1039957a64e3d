//! AArch64 Advanced SIMD (NEON) dot-product kernels, and the integer kernels shared with the
//! `sdot` tier ([`crate::aarch64_dotprod`]).
//!
//! Every quantized kernel is written once, generic over [`DotI8`], the 16-lane int8 dot product:
//! this module's [`Widening`] forms it from `smull` (i8 × i8 → i16) and `sadalp` (pairwise add
//! into i32), which baseline ARMv8 has; the dotprod tier plugs in `sdot`. Both keep every
//! product and every sum exact, so the integer block sums equal the scalar reference's in
//! [`crate::legacy`], [`crate::kquants`] and [`crate::iquants`], for any bit pattern of the
//! quants; only the order of the f32 accumulation of the per-block terms differs. The float
//! formats form their products in f32 exactly as the scalar code does and sum them in f64
//! lanes, so they differ from it only by f64 reassociation.
//!
//! The kernels are `unsafe fn`s with `#[target_feature]`, reached only through the safe `_bytes`
//! wrappers in [`crate::dispatch`]'s NEON and dotprod tables, which are handed out only after
//! the features were detected. The legacy and k-quant loops take two blocks per iteration into
//! two accumulators. The quantized formats hold whole blocks (`check_dot` rejects any other
//! `n`), so they have no tail; the float kernels finish their last `n % 8` values one by one.
//! Multi-byte fields are read through byte vectors, so the kernels assume little-endian
//! AArch64; [`crate::dispatch`] offers neither tier on big-endian targets.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

use crate::block::{block_bytes, check_dot};
use crate::dispatch::Tier;
use crate::float::{BlockBF16, BlockF16, BlockF32};
use crate::iquants::{BlockIQ4NL, BlockIQ4XS, KVALUES_IQ4NL, xs_scale};
use crate::kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
use crate::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::num::{bf16_to_f32, f16_to_f32};
use crate::traits::blocks;

/// An exact int8 dot product over 16 lanes.
pub(crate) trait DotI8 {
    /// `acc` plus the 16 products `a[i]·b[i]`, summed into the four i32 lanes in groups the
    /// implementation chooses (only the sum over all lanes is specified).
    ///
    /// # Safety
    /// The CPU must support the instructions of the implementation.
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// [`DotI8`] with baseline NEON: `smull`/`smull2` to i16 (a product of two i8 fits, even
/// −128·−128), then `sadalp` adds neighbouring products into the i32 lanes.
#[derive(Debug)]
pub(crate) struct Widening;

impl DotI8 for Widening {
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        vpadalq_s16(acc, vmull_high_s8(a, b))
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers (baseline NEON, which every AArch64 target this crate builds for enables)

/// Bytes `off..off + 16` of `s` as a vector.
#[inline]
#[target_feature(enable = "neon")]
fn ld_u8(s: &[u8], off: usize) -> uint8x16_t {
    let c: &[u8; 16] = s[off..off + 16].try_into().expect("16 bytes");
    // SAFETY: `c` is 16 readable bytes; `ld1` of bytes has no alignment requirement.
    unsafe { vld1q_u8(c.as_ptr()) }
}

/// Bytes `off..off + 16` of `s` as a vector.
#[inline]
#[target_feature(enable = "neon")]
fn ld_i8(s: &[i8], off: usize) -> int8x16_t {
    let c: &[i8; 16] = s[off..off + 16].try_into().expect("16 bytes");
    // SAFETY: as in `ld_u8`.
    unsafe { vld1q_s8(c.as_ptr()) }
}

#[inline]
#[target_feature(enable = "neon")]
fn s8(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(v)
}

/// Four little-endian halves widened to f32 with `fcvtl` (exact, as `f16_to_f32`).
#[inline]
#[target_feature(enable = "neon")]
fn f16x4(a: [u8; 2], b: [u8; 2], c: [u8; 2], d: [u8; 2]) -> float32x4_t {
    let bits = u64::from(u16::from_le_bytes(a))
        | (u64::from(u16::from_le_bytes(b)) << 16)
        | (u64::from(u16::from_le_bytes(c)) << 32)
        | (u64::from(u16::from_le_bytes(d)) << 48);
    let h = vcreate_u16(bits);
    let out: float32x4_t;
    // SAFETY: `fcvtl` (half to single precision) is part of baseline AArch64 Advanced SIMD; it
    // reads and writes only the named vector registers.
    unsafe {
        asm!(
            "fcvtl {out:v}.4s, {h:v}.4h",
            out = out(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// The products `x_d·y_d` (lane 0) and `x_m·y_s` (lane 1) of two pairs of halves.
#[inline]
#[target_feature(enable = "neon")]
fn scales2(xd: [u8; 2], yd: [u8; 2], xm: [u8; 2], ys: [u8; 2]) -> (f32, f32) {
    let v = f16x4(xd, xm, yd, ys);
    let p = vmul_f32(vget_low_f32(v), vget_high_f32(v));
    (vget_lane_f32::<0>(p), vget_lane_f32::<1>(p))
}

/// `Σ_j bsum(j)·m[j]` over the sixteen group sums of a Q8_K block, exact in i32.
#[inline]
#[target_feature(enable = "neon")]
fn bsums_dot(by: &BlockQ8K, m_lo: int16x8_t, m_hi: int16x8_t) -> i32 {
    let (b_lo, b_hi) = bsums(by);
    let p = vaddq_s32(
        vmull_s16(vget_low_s16(b_lo), vget_low_s16(m_lo)),
        vmull_high_s16(b_lo, m_lo),
    );
    let p = vaddq_s32(p, vmull_s16(vget_low_s16(b_hi), vget_low_s16(m_hi)));
    vaddvq_s32(vaddq_s32(p, vmull_high_s16(b_hi, m_hi)))
}

/// The sixteen i16 group sums of a Q8_K block (little-endian, loaded as bytes).
#[inline]
#[target_feature(enable = "neon")]
fn bsums(by: &BlockQ8K) -> (int16x8_t, int16x8_t) {
    let b = by.bsums.as_flattened();
    (
        vreinterpretq_s16_u8(ld_u8(b, 0)),
        vreinterpretq_s16_u8(ld_u8(b, 16)),
    )
}

/// Runs `$body` for each block pair `($bx, $by)` of `$x[..$nb]`, `$y[..$nb]`, two blocks per
/// iteration, with `$acc` bound to `$a0` for even and `$a1` for odd blocks.
macro_rules! two_blocks {
    ($x:expr, $y:expr, $nb:expr, $a0:ident, $a1:ident, |$bx:ident, $by:ident, $acc:ident| $body:block) => {{
        let (xs, ys) = (&$x[..$nb], &$y[..$nb]);
        let mut xp = xs.chunks_exact(2);
        let mut yp = ys.chunks_exact(2);
        for (x2, y2) in (&mut xp).zip(&mut yp) {
            {
                let ($bx, $by, $acc) = (&x2[0], &y2[0], &mut $a0);
                $body
            }
            {
                let ($bx, $by, $acc) = (&x2[1], &y2[1], &mut $a1);
                $body
            }
        }
        if let (Some($bx), Some($by)) = (xp.remainder().first(), yp.remainder().first()) {
            let $acc = &mut $a0;
            $body
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Legacy formats and IQ4_NL (32-weight blocks)

/// Q8_0 · Q8_0: per block `(d_x·d_y)·Σ q_x q_y`.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q8_0_q8_0<D: DotI8>(n: usize, x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (a0, a1) = (ld_i8(&bx.qs, 0), ld_i8(&bx.qs, 16));
        let (b0, b1) = (ld_i8(&by.qs, 0), ld_i8(&by.qs, 16));
        // SAFETY: the caller guarantees `D`'s instructions.
        let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), a0, b0), a1, b1) };
        let (d, _) = scales2(bx.d, by.d, [0; 2], [0; 2]);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(s), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// Q8_1 · Q8_1 (weights in the activation format): as Q8_0, the sums `s` unused.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q8_1_q8_1<D: DotI8>(n: usize, x: &[BlockQ8_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (a0, a1) = (ld_i8(&bx.qs, 0), ld_i8(&bx.qs, 16));
        let (b0, b1) = (ld_i8(&by.qs, 0), ld_i8(&by.qs, 16));
        // SAFETY: the caller guarantees `D`'s instructions.
        let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), a0, b0), a1, b1) };
        let (d, _) = scales2(bx.d, by.d, [0; 2], [0; 2]);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(s), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// The two nibble halves of 16 packed bytes: weights 0..16 (low) and 16..32 (high), 0..=15.
#[inline]
#[target_feature(enable = "neon")]
fn nibbles(qs: &[u8; 16]) -> (uint8x16_t, uint8x16_t) {
    let q = ld_u8(qs, 0);
    (vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(q))
}

/// Q4_0 · Q8_0: quants `q − 8`, per block `(d_x·d_y)·Σ (q_x − 8) q_y`.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q4_0_q8_0<D: DotI8>(n: usize, x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let eight = vdupq_n_s8(8);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (lo, hi) = nibbles(&bx.qs);
        let (a0, a1) = (vsubq_s8(s8(lo), eight), vsubq_s8(s8(hi), eight));
        let (b0, b1) = (ld_i8(&by.qs, 0), ld_i8(&by.qs, 16));
        // SAFETY: the caller guarantees `D`'s instructions.
        let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), a0, b0), a1, b1) };
        let (d, _) = scales2(bx.d, by.d, [0; 2], [0; 2]);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(s), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// Q4_1 · Q8_1: per block `(d_x·d_y)·Σ q_x q_y + m_x·s_y`, nibbles unsigned.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q4_1_q8_1<D: DotI8>(n: usize, x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut sum_ms = 0.0f32;
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (lo, hi) = nibbles(&bx.qs);
        let (b0, b1) = (ld_i8(&by.qs, 0), ld_i8(&by.qs, 16));
        // SAFETY: the caller guarantees `D`'s instructions.
        let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), s8(lo), b0), s8(hi), b1) };
        let (d, ms) = scales2(bx.d, by.d, bx.m, by.s);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(s), d);
        sum_ms += ms;
    });
    vaddvq_f32(vaddq_f32(acc0, acc1)) + sum_ms
}

/// The fifth quant bits of a Q5 block as 0x10 in the byte of each weight: weights 0..16 and
/// 16..32. Bit `j` of the little-endian `qh` belongs to weight `j`.
#[inline]
#[target_feature(enable = "neon")]
fn q5_high_bits(qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    const IDX_LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const IDX_HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let bytes = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(qh)));
    let bit = ld_u8(&BIT, 0);
    let lo = vqtbl1q_u8(bytes, ld_u8(&IDX_LO, 0));
    let hi = vqtbl1q_u8(bytes, ld_u8(&IDX_HI, 0));
    let m = vdupq_n_u8(0x10);
    (
        vandq_u8(vtstq_u8(lo, bit), m),
        vandq_u8(vtstq_u8(hi, bit), m),
    )
}

/// Q5_0 · Q8_0: quants `q − 16` with q the nibble plus the fifth bit.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q5_0_q8_0<D: DotI8>(n: usize, x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let sixteen = vdupq_n_s8(16);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (lo, hi) = nibbles(&bx.qs);
        let (h0, h1) = q5_high_bits(bx.qh);
        let a0 = vsubq_s8(s8(vorrq_u8(lo, h0)), sixteen);
        let a1 = vsubq_s8(s8(vorrq_u8(hi, h1)), sixteen);
        let (b0, b1) = (ld_i8(&by.qs, 0), ld_i8(&by.qs, 16));
        // SAFETY: the caller guarantees `D`'s instructions.
        let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), a0, b0), a1, b1) };
        let (d, _) = scales2(bx.d, by.d, [0; 2], [0; 2]);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(s), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// Q5_1 · Q8_1: per block `(d_x·d_y)·Σ q_x q_y + m_x·s_y`, quants 0..=31.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q5_1_q8_1<D: DotI8>(n: usize, x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut sum_ms = 0.0f32;
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (lo, hi) = nibbles(&bx.qs);
        let (h0, h1) = q5_high_bits(bx.qh);
        let (a0, a1) = (s8(vorrq_u8(lo, h0)), s8(vorrq_u8(hi, h1)));
        let (b0, b1) = (ld_i8(&by.qs, 0), ld_i8(&by.qs, 16));
        // SAFETY: the caller guarantees `D`'s instructions.
        let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), a0, b0), a1, b1) };
        let (d, ms) = scales2(bx.d, by.d, bx.m, by.s);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(s), d);
        sum_ms += ms;
    });
    vaddvq_f32(vaddq_f32(acc0, acc1)) + sum_ms
}

/// The IQ4 levels of 16 packed index bytes: weights 0..16 (low nibbles) and 16..32 (high).
#[inline]
#[target_feature(enable = "neon")]
fn iq4_levels(qs: &[u8], off: usize, table: int8x16_t) -> (int8x16_t, int8x16_t) {
    let q = ld_u8(qs, off);
    (
        vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0f))),
        vqtbl1q_s8(table, vshrq_n_u8::<4>(q)),
    )
}

/// The 16 IQ4 levels as a lookup vector.
#[inline]
#[target_feature(enable = "neon")]
fn iq4_table() -> int8x16_t {
    ld_i8(&KVALUES_IQ4NL, 0)
}

/// IQ4_NL · Q8_0: the indices looked up with `tbl`, per block `(d_x·d_y)·Σ level·q_y`.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn iq4_nl_q8_0<D: DotI8>(n: usize, x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let table = iq4_table();
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (a0, a1) = iq4_levels(&bx.qs, 0, table);
        let (b0, b1) = (ld_i8(&by.qs, 0), ld_i8(&by.qs, 16));
        // SAFETY: the caller guarantees `D`'s instructions.
        let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), a0, b0), a1, b1) };
        let (d, _) = scales2(bx.d, by.d, [0; 2], [0; 2]);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(s), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// IQ4_XS · Q8_K: per super-block `d_x·d_y·Σ_sub (ls − 32)·Σ level·q_y`, the sub-block sums
/// weighted in i32.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn iq4_xs_q8_k<D: DotI8>(n: usize, x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let table = iq4_table();
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let mut sumi = vdupq_n_s32(0);
        for ib in 0..QK_K / 32 {
            let (a0, a1) = iq4_levels(&bx.qs, 16 * ib, table);
            let (b0, b1) = (ld_i8(&by.qs, 32 * ib), ld_i8(&by.qs, 32 * ib + 16));
            // SAFETY: the caller guarantees `D`'s instructions.
            let s = unsafe { D::dot(D::dot(vdupq_n_s32(0), a0, b0), a1, b1) };
            sumi = vmlaq_n_s32(sumi, s, xs_scale(bx, ib) - 32);
        }
        let d = f16x4(bx.d, [0; 2], [0; 2], [0; 2]);
        let d = vgetq_lane_f32::<0>(d) * by.scale();
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(sumi), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

// ---------------------------------------------------------------------------------------------
// K-quants (256-weight super-blocks against Q8_K)

/// The three little-endian words of a 12-byte packed scale field.
#[inline]
fn words12(q: &[u8; 12]) -> [u32; 3] {
    let w = |i: usize| u32::from_le_bytes([q[i], q[i + 1], q[i + 2], q[i + 3]]);
    [w(0), w(4), w(8)]
}

/// The eight scales and eight minimums of a Q4_K/Q5_K block (as `kquants::k4_scales_mins`),
/// unpacked four at a time in 32-bit words: entries 0..4 are the low six bits of bytes 0..4
/// (scales) and 4..8 (minimums); entries 4..8 take their low nibble from bytes 8..12 and their
/// top two bits from bits 6..8 of bytes 0..4 (scales) or 4..8 (minimums).
#[inline]
fn k4_scales_mins_words(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const NIBBLE: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let [w0, w1, w2] = words12(q);
    let sc_hi = (w2 & NIBBLE) | (((w0 >> 6) & TOP2) << 4);
    let m_hi = ((w2 >> 4) & NIBBLE) | (((w1 >> 6) & TOP2) << 4);
    let join = |lo: u32, hi: u32| (u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes();
    (join(w0 & LOW6, sc_hi), join(w1 & LOW6, m_hi))
}

/// The sixteen Q3_K scales with the bias removed (as `kquants::q3k_scale(j) − 32`), unpacked
/// four at a time in 32-bit words: scale `j` has its low nibble in byte `j % 8` (low half for
/// `j < 8`, high half otherwise) and its top two bits in byte `8 + j % 4` at bit `2·(j / 4)`.
#[inline]
fn q3k_scales_words(q: &[u8; 12]) -> [i32; 16] {
    const NIBBLE: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let [w0, w1, w2] = words12(q);
    let low = [
        w0 & NIBBLE,
        w1 & NIBBLE,
        (w0 >> 4) & NIBBLE,
        (w1 >> 4) & NIBBLE,
    ];
    let mut out = [0i32; 16];
    for (k, (o, lo)) in out.chunks_exact_mut(4).zip(low).enumerate() {
        let word = lo | (((w2 >> (2 * k)) & TOP2) << 4);
        for (v, b) in o.iter_mut().zip(word.to_le_bytes()) {
            *v = i32::from(b) - 32;
        }
    }
    out
}

/// `f16(d)·d_y` and `f16(dmin)·d_y` of a k-quant block.
#[inline]
#[target_feature(enable = "neon")]
fn k_scales(d: [u8; 2], dmin: [u8; 2], by: &BlockQ8K) -> (f32, f32) {
    let v = vmulq_n_f32(f16x4(d, dmin, [0; 2], [0; 2]), by.scale());
    (vgetq_lane_f32::<0>(v), vgetq_lane_f32::<1>(v))
}

/// Q8_K · Q8_K (weights in the activation format): per block `(d_x·d_y)·Σ q_x q_y`.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q8_k_q8_k<D: DotI8>(n: usize, x: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (mut s0, mut s1) = (vdupq_n_s32(0), vdupq_n_s32(0));
        for k in 0..QK_K / 32 {
            let o = 32 * k;
            let (a0, a1) = (ld_i8(&bx.qs, o), ld_i8(&bx.qs, o + 16));
            let (b0, b1) = (ld_i8(&by.qs, o), ld_i8(&by.qs, o + 16));
            // SAFETY: the caller guarantees `D`'s instructions.
            unsafe {
                s0 = D::dot(s0, a0, b0);
                s1 = D::dot(s1, a1, b1);
            }
        }
        let d = bx.scale() * by.scale();
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(vaddq_s32(s0, s1)), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// Q2_K · Q8_K: per block `d·d_y·Σ_16 sc·Σ q_x q_y − dmin·d_y·Σ_16 m·bsum`, the 2-bit quants
/// taken from the packed bytes by shifting, all sums in i32.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q2_k_q8_k<D: DotI8>(n: usize, x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let three = vdupq_n_u8(3);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut sum_min = 0.0f32;
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let mins = vshrq_n_u8::<4>(ld_u8(&bx.scales, 0));
        let m_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins)));
        let m_hi = vreinterpretq_s16_u16(vmovl_high_u8(mins));
        let summs = bsums_dot(by, m_lo, m_hi);
        let mut sumi = vdupq_n_s32(0);
        for h in 0..2 {
            let (mut q0, mut q1) = (ld_u8(&bx.qs, 32 * h), ld_u8(&bx.qs, 32 * h + 16));
            for s in 0..4 {
                let o = 128 * h + 32 * s;
                let (b0, b1) = (ld_i8(&by.qs, o), ld_i8(&by.qs, o + 16));
                let (a0, a1) = (s8(vandq_u8(q0, three)), s8(vandq_u8(q1, three)));
                // SAFETY: the caller guarantees `D`'s instructions.
                let (p0, p1) = unsafe {
                    (
                        D::dot(vdupq_n_s32(0), a0, b0),
                        D::dot(vdupq_n_s32(0), a1, b1),
                    )
                };
                let is = 8 * h + 2 * s;
                sumi = vmlaq_n_s32(sumi, p0, i32::from(bx.scales[is] & 0x0f));
                sumi = vmlaq_n_s32(sumi, p1, i32::from(bx.scales[is + 1] & 0x0f));
                q0 = vshrq_n_u8::<2>(q0);
                q1 = vshrq_n_u8::<2>(q1);
            }
        }
        let (d, dmin) = k_scales(bx.d, bx.dmin, by);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(sumi), d);
        sum_min += dmin * summs as f32;
    });
    vaddvq_f32(vaddq_f32(acc0, acc1)) - sum_min
}

/// Q3_K · Q8_K: the signed 3-bit quants rebuilt as `q2 + 4·hbit − 4`, per-16 signed scales
/// applied in i32, scaled by `d·d_y`.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q3_k_q8_k<D: DotI8>(n: usize, x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let (three, one, four) = (vdupq_n_u8(3), vdupq_n_u8(1), vdupq_n_s8(4));
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let sc = q3k_scales_words(&bx.scales);
        let (mut hm0, mut hm1) = (ld_u8(&bx.hmask, 0), ld_u8(&bx.hmask, 16));
        let mut sumi = vdupq_n_s32(0);
        for h in 0..2 {
            let (mut q0, mut q1) = (ld_u8(&bx.qs, 32 * h), ld_u8(&bx.qs, 32 * h + 16));
            for s in 0..4 {
                let o = 128 * h + 32 * s;
                let (b0, b1) = (ld_i8(&by.qs, o), ld_i8(&by.qs, o + 16));
                let a0 = vorrq_u8(vandq_u8(q0, three), vshlq_n_u8::<2>(vandq_u8(hm0, one)));
                let a1 = vorrq_u8(vandq_u8(q1, three), vshlq_n_u8::<2>(vandq_u8(hm1, one)));
                let (a0, a1) = (vsubq_s8(s8(a0), four), vsubq_s8(s8(a1), four));
                // SAFETY: the caller guarantees `D`'s instructions.
                let (p0, p1) = unsafe {
                    (
                        D::dot(vdupq_n_s32(0), a0, b0),
                        D::dot(vdupq_n_s32(0), a1, b1),
                    )
                };
                let is = 8 * h + 2 * s;
                sumi = vmlaq_n_s32(sumi, p0, sc[is]);
                sumi = vmlaq_n_s32(sumi, p1, sc[is + 1]);
                q0 = vshrq_n_u8::<2>(q0);
                q1 = vshrq_n_u8::<2>(q1);
                hm0 = vshrq_n_u8::<1>(hm0);
                hm1 = vshrq_n_u8::<1>(hm1);
            }
        }
        let (d, _) = k_scales(bx.d, [0; 2], by);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(sumi), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// The minimum term of Q4_K/Q5_K: `Σ_j bsum(j)·mins[j/2]`, exact in i32.
#[inline]
#[target_feature(enable = "neon")]
fn k4_min_sum(by: &BlockQ8K, mins: [u8; 8]) -> i32 {
    let m = vmovl_u8(vcreate_u8(u64::from_le_bytes(mins)));
    let (b_lo, b_hi) = bsums(by);
    // Sums of neighbouring groups of 16 (one per 32-weight sub-block), widened to i32.
    let (s_lo, s_hi) = (vpaddlq_s16(b_lo), vpaddlq_s16(b_hi));
    let m_lo = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(m)));
    let m_hi = vreinterpretq_s32_u32(vmovl_high_u16(m));
    vaddvq_s32(vmlaq_s32(vmulq_s32(s_lo, m_lo), s_hi, m_hi))
}

/// Q4_K · Q8_K: per 32-weight sub-block `sc·Σ q_x q_y` in i32 (nibbles unsigned), scaled by
/// `d·d_y`; the minimum term from Q8_K's group sums as in the scalar kernel.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q4_k_q8_k<D: DotI8>(n: usize, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let m4 = vdupq_n_u8(0x0f);
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut sum_min = 0.0f32;
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (scales, mins) = k4_scales_mins_words(&bx.scales);
        let summin = k4_min_sum(by, mins);
        let mut sumi = vdupq_n_s32(0);
        for g in 0..QK_K / 64 {
            let (q0, q1) = (ld_u8(&bx.qs, 32 * g), ld_u8(&bx.qs, 32 * g + 16));
            let o = 64 * g;
            let (b0, b1) = (ld_i8(&by.qs, o), ld_i8(&by.qs, o + 16));
            let (b2, b3) = (ld_i8(&by.qs, o + 32), ld_i8(&by.qs, o + 48));
            let (lo0, lo1) = (s8(vandq_u8(q0, m4)), s8(vandq_u8(q1, m4)));
            let (hi0, hi1) = (s8(vshrq_n_u8::<4>(q0)), s8(vshrq_n_u8::<4>(q1)));
            // SAFETY: the caller guarantees `D`'s instructions.
            let (p_lo, p_hi) = unsafe {
                (
                    D::dot(D::dot(vdupq_n_s32(0), lo0, b0), lo1, b1),
                    D::dot(D::dot(vdupq_n_s32(0), hi0, b2), hi1, b3),
                )
            };
            sumi = vmlaq_n_s32(sumi, p_lo, i32::from(scales[2 * g]));
            sumi = vmlaq_n_s32(sumi, p_hi, i32::from(scales[2 * g + 1]));
        }
        let (d, dmin) = k_scales(bx.d, bx.dmin, by);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(sumi), d);
        sum_min += dmin * summin as f32;
    });
    vaddvq_f32(vaddq_f32(acc0, acc1)) - sum_min
}

/// Q5_K · Q8_K: as Q4_K with the fifth bit (bit `2g` of `qh[l]` for weight `64g + l`, bit
/// `2g + 1` for weight `64g + 32 + l`) added as 16.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q5_k_q8_k<D: DotI8>(n: usize, x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let (m4, one, two) = (vdupq_n_u8(0x0f), vdupq_n_u8(1), vdupq_n_u8(2));
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut sum_min = 0.0f32;
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let (scales, mins) = k4_scales_mins_words(&bx.scales);
        let summin = k4_min_sum(by, mins);
        let (mut qh0, mut qh1) = (ld_u8(&bx.qh, 0), ld_u8(&bx.qh, 16));
        let mut sumi = vdupq_n_s32(0);
        for g in 0..QK_K / 64 {
            let (q0, q1) = (ld_u8(&bx.qs, 32 * g), ld_u8(&bx.qs, 32 * g + 16));
            let o = 64 * g;
            let (b0, b1) = (ld_i8(&by.qs, o), ld_i8(&by.qs, o + 16));
            let (b2, b3) = (ld_i8(&by.qs, o + 32), ld_i8(&by.qs, o + 48));
            let lo0 = vorrq_u8(vandq_u8(q0, m4), vshlq_n_u8::<4>(vandq_u8(qh0, one)));
            let lo1 = vorrq_u8(vandq_u8(q1, m4), vshlq_n_u8::<4>(vandq_u8(qh1, one)));
            let hi0 = vorrq_u8(vshrq_n_u8::<4>(q0), vshlq_n_u8::<3>(vandq_u8(qh0, two)));
            let hi1 = vorrq_u8(vshrq_n_u8::<4>(q1), vshlq_n_u8::<3>(vandq_u8(qh1, two)));
            // SAFETY: the caller guarantees `D`'s instructions.
            let (p_lo, p_hi) = unsafe {
                (
                    D::dot(D::dot(vdupq_n_s32(0), s8(lo0), b0), s8(lo1), b1),
                    D::dot(D::dot(vdupq_n_s32(0), s8(hi0), b2), s8(hi1), b3),
                )
            };
            sumi = vmlaq_n_s32(sumi, p_lo, i32::from(scales[2 * g]));
            sumi = vmlaq_n_s32(sumi, p_hi, i32::from(scales[2 * g + 1]));
            qh0 = vshrq_n_u8::<2>(qh0);
            qh1 = vshrq_n_u8::<2>(qh1);
        }
        let (d, dmin) = k_scales(bx.d, bx.dmin, by);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(sumi), d);
        sum_min += dmin * summin as f32;
    });
    vaddvq_f32(vaddq_f32(acc0, acc1)) - sum_min
}

/// Q6_K · Q8_K: the 6-bit quants rebuilt from `ql` and `qh` and made signed (`q − 32`), the
/// signed per-16 scales applied in i32, scaled by `d·d_y`.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn q6_k_q8_k<D: DotI8>(n: usize, x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let (m4, m3, m32) = (vdupq_n_u8(0x0f), vdupq_n_u8(3), vdupq_n_s8(32));
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    two_blocks!(x, y, nb, acc0, acc1, |bx, by, acc| {
        let mut sumi = vdupq_n_s32(0);
        for h in 0..2 {
            let ql = [
                ld_u8(&bx.ql, 64 * h),
                ld_u8(&bx.ql, 64 * h + 16),
                ld_u8(&bx.ql, 64 * h + 32),
                ld_u8(&bx.ql, 64 * h + 48),
            ];
            let (qh0, qh1) = (ld_u8(&bx.qh, 32 * h), ld_u8(&bx.qh, 32 * h + 16));
            // The eight 16-weight chunks of this half, 0..=63: chunk k < 4 takes the low
            // nibbles of ql[k], chunk k ≥ 4 the high ones of ql[k − 4]; the two high bits come
            // from qh (qh0 for even k, qh1 for odd k) at bit 2·(k / 2).
            let mut qh = [qh0, qh1];
            let mut q = [vdupq_n_u8(0); 8];
            for k in 0..8 {
                let low = if k < 4 {
                    vandq_u8(ql[k], m4)
                } else {
                    vshrq_n_u8::<4>(ql[k - 4])
                };
                let hb = &mut qh[k % 2];
                q[k] = vorrq_u8(low, vshlq_n_u8::<4>(vandq_u8(*hb, m3)));
                *hb = vshrq_n_u8::<2>(*hb);
            }
            for (k, qk) in q.into_iter().enumerate() {
                let a = vsubq_s8(s8(qk), m32);
                let b = ld_i8(&by.qs, 128 * h + 16 * k);
                // SAFETY: the caller guarantees `D`'s instructions.
                let p = unsafe { D::dot(vdupq_n_s32(0), a, b) };
                sumi = vmlaq_n_s32(sumi, p, i32::from(bx.scales[8 * h + k]));
            }
        }
        let (d, _) = k_scales(bx.d, [0; 2], by);
        *acc = vmlaq_n_f32(*acc, vcvtq_f32_s32(sumi), d);
    });
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

// ---------------------------------------------------------------------------------------------
// Float formats (shared by the NEON and dotprod tiers)

/// Adds the eight f32 products `p0`, `p1` to four f64 accumulators (exact widening).
#[inline]
#[target_feature(enable = "neon")]
fn add_f64(acc: &mut [float64x2_t; 4], p0: float32x4_t, p1: float32x4_t) {
    acc[0] = vaddq_f64(acc[0], vcvt_f64_f32(vget_low_f32(p0)));
    acc[1] = vaddq_f64(acc[1], vcvt_high_f64_f32(p0));
    acc[2] = vaddq_f64(acc[2], vcvt_f64_f32(vget_low_f32(p1)));
    acc[3] = vaddq_f64(acc[3], vcvt_high_f64_f32(p1));
}

#[inline]
#[target_feature(enable = "neon")]
fn sum_f64(acc: [float64x2_t; 4]) -> f64 {
    vaddvq_f64(vaddq_f64(
        vaddq_f64(acc[0], acc[1]),
        vaddq_f64(acc[2], acc[3]),
    ))
}

/// F32 · F32 with NEON: products in f32 as the scalar kernel forms them, summed in f64 lanes,
/// eight values per iteration; the last `n % 8` one by one.
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn vec_dot_f32_f32_neon(n: usize, x: &[BlockF32], y: &[BlockF32]) -> f32 {
    debug_assert!(Tier::Neon.is_supported());
    check_dot(n, x, y);
    let (xb, yb) = (block_bytes(&x[..n]), block_bytes(&y[..n]));
    let f = |b: &[u8], o: usize| vreinterpretq_f32_u8(ld_u8(b, o));
    let mut acc = [vdupq_n_f64(0.0); 4];
    let body = n / 8 * 8;
    for o in (0..4 * body).step_by(32) {
        let p0 = vmulq_f32(f(xb, o), f(yb, o));
        let p1 = vmulq_f32(f(xb, o + 16), f(yb, o + 16));
        add_f64(&mut acc, p0, p1);
    }
    let mut sum = sum_f64(acc);
    for (a, b) in x[body..n].iter().zip(&y[body..n]) {
        sum += f64::from(f32::from_le_bytes(a.v) * f32::from_le_bytes(b.v));
    }
    sum as f32
}

/// Eight little-endian halves widened to f32 with `fcvtl`/`fcvtl2` (exact).
#[inline]
#[target_feature(enable = "neon")]
fn f16x8(b: &[u8], off: usize) -> (float32x4_t, float32x4_t) {
    let h = ld_u8(b, off);
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: `fcvtl`/`fcvtl2` are baseline AArch64 Advanced SIMD and touch only the named
    // registers (`out` operands are never allocated to the input's register).
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (lo, hi)
}

/// F16 · F16 with NEON: halves widened exactly, products in f32, summed in f64 lanes.
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn vec_dot_f16_f16_neon(n: usize, x: &[BlockF16], y: &[BlockF16]) -> f32 {
    debug_assert!(Tier::Neon.is_supported());
    check_dot(n, x, y);
    let (xb, yb) = (block_bytes(&x[..n]), block_bytes(&y[..n]));
    let mut acc = [vdupq_n_f64(0.0); 4];
    let body = n / 8 * 8;
    for o in (0..2 * body).step_by(16) {
        let ((x0, x1), (y0, y1)) = (f16x8(xb, o), f16x8(yb, o));
        add_f64(&mut acc, vmulq_f32(x0, y0), vmulq_f32(x1, y1));
    }
    let mut sum = sum_f64(acc);
    for (a, b) in x[body..n].iter().zip(&y[body..n]) {
        sum += f64::from(f16_to_f32(a.v) * f16_to_f32(b.v));
    }
    sum as f32
}

/// Eight little-endian bfloat16 widened to f32 (shifted into the upper halves, exact).
#[inline]
#[target_feature(enable = "neon")]
fn bf16x8(b: &[u8], off: usize) -> (float32x4_t, float32x4_t) {
    let h = vreinterpretq_u16_u8(ld_u8(b, off));
    (
        vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
        vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
    )
}

/// BF16 · BF16 with NEON: widened exactly, products in f32, summed in f64 lanes.
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn vec_dot_bf16_bf16_neon(n: usize, x: &[BlockBF16], y: &[BlockBF16]) -> f32 {
    debug_assert!(Tier::Neon.is_supported());
    check_dot(n, x, y);
    let (xb, yb) = (block_bytes(&x[..n]), block_bytes(&y[..n]));
    let mut acc = [vdupq_n_f64(0.0); 4];
    let body = n / 8 * 8;
    for o in (0..2 * body).step_by(16) {
        let ((x0, x1), (y0, y1)) = (bf16x8(xb, o), bf16x8(yb, o));
        add_f64(&mut acc, vmulq_f32(x0, y0), vmulq_f32(x1, y1));
    }
    let mut sum = sum_f64(acc);
    for (a, b) in x[body..n].iter().zip(&y[body..n]) {
        sum += f64::from(bf16_to_f32(a.v) * bf16_to_f32(b.v));
    }
    sum as f32
}

/// [`vec_dot_f32_f32_neon`] on raw bytes, for the dispatch tables.
pub(crate) fn vec_dot_f32_f32_neon_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockF32>(x), blocks::<BlockF32>(y));
    // SAFETY: installed only in the NEON and dotprod tables, handed out only after NEON was
    // detected.
    unsafe { vec_dot_f32_f32_neon(n, x, y) }
}

/// [`vec_dot_f16_f16_neon`] on raw bytes, for the dispatch tables.
pub(crate) fn vec_dot_f16_f16_neon_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockF16>(x), blocks::<BlockF16>(y));
    // SAFETY: as for `vec_dot_f32_f32_neon_bytes`.
    unsafe { vec_dot_f16_f16_neon(n, x, y) }
}

/// [`vec_dot_bf16_bf16_neon`] on raw bytes, for the dispatch tables.
pub(crate) fn vec_dot_bf16_bf16_neon_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockBF16>(x), blocks::<BlockBF16>(y));
    // SAFETY: as for `vec_dot_f32_f32_neon_bytes`.
    unsafe { vec_dot_bf16_bf16_neon(n, x, y) }
}

// ---------------------------------------------------------------------------------------------
// The NEON tier's entry points

/// Declares a tier's kernel (`unsafe fn` with the tier's target features, calling a generic
/// kernel of this module with the tier's [`DotI8`]) and its safe `_bytes` wrapper.
macro_rules! tier_kernel {
    ($tier:expr, $feat:literal, $dot:ty, $generic:ident, $name:ident, $bytes:ident, $bx:ty, $by:ty) => {
        #[doc = concat!("`", stringify!($generic), "` with [`", stringify!($dot), "`].")]
        ///
        /// # Safety
        #[doc = concat!("The CPU must support `", $feat, "`.")]
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name(n: usize, x: &[$bx], y: &[$by]) -> f32 {
            debug_assert!($tier.is_supported());
            // SAFETY: this function's target features include every instruction of the
            // `DotI8` implementation, and the caller guarantees them.
            unsafe { $generic::<$dot>(n, x, y) }
        }

        #[doc = concat!("[`", stringify!($name), "`] on raw bytes, for the dispatch tables.")]
        pub(crate) fn $bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
            let (x, y) = (blocks::<$bx>(x), blocks::<$by>(y));
            // SAFETY: this function is installed only in the dispatch table of its tier, which
            // is handed out only after the tier's features were detected.
            unsafe { $name(n, x, y) }
        }
    };
}
pub(crate) use tier_kernel;

/// The NEON tier's quantized kernels.
macro_rules! neon_kernel {
    ($generic:ident, $name:ident, $bytes:ident, $bx:ty, $by:ty) => {
        tier_kernel!(
            Tier::Neon,
            "neon",
            Widening,
            $generic,
            $name,
            $bytes,
            $bx,
            $by
        );
    };
}

neon_kernel!(
    q4_0_q8_0,
    vec_dot_q4_0_q8_0_neon,
    vec_dot_q4_0_q8_0_neon_bytes,
    BlockQ4_0,
    BlockQ8_0
);
neon_kernel!(
    q4_1_q8_1,
    vec_dot_q4_1_q8_1_neon,
    vec_dot_q4_1_q8_1_neon_bytes,
    BlockQ4_1,
    BlockQ8_1
);
neon_kernel!(
    q5_0_q8_0,
    vec_dot_q5_0_q8_0_neon,
    vec_dot_q5_0_q8_0_neon_bytes,
    BlockQ5_0,
    BlockQ8_0
);
neon_kernel!(
    q5_1_q8_1,
    vec_dot_q5_1_q8_1_neon,
    vec_dot_q5_1_q8_1_neon_bytes,
    BlockQ5_1,
    BlockQ8_1
);
neon_kernel!(
    q8_0_q8_0,
    vec_dot_q8_0_q8_0_neon,
    vec_dot_q8_0_q8_0_neon_bytes,
    BlockQ8_0,
    BlockQ8_0
);
neon_kernel!(
    q8_1_q8_1,
    vec_dot_q8_1_q8_1_neon,
    vec_dot_q8_1_q8_1_neon_bytes,
    BlockQ8_1,
    BlockQ8_1
);
neon_kernel!(
    iq4_nl_q8_0,
    vec_dot_iq4_nl_q8_0_neon,
    vec_dot_iq4_nl_q8_0_neon_bytes,
    BlockIQ4NL,
    BlockQ8_0
);
neon_kernel!(
    iq4_xs_q8_k,
    vec_dot_iq4_xs_q8_k_neon,
    vec_dot_iq4_xs_q8_k_neon_bytes,
    BlockIQ4XS,
    BlockQ8K
);
neon_kernel!(
    q2_k_q8_k,
    vec_dot_q2_k_q8_k_neon,
    vec_dot_q2_k_q8_k_neon_bytes,
    BlockQ2K,
    BlockQ8K
);
neon_kernel!(
    q3_k_q8_k,
    vec_dot_q3_k_q8_k_neon,
    vec_dot_q3_k_q8_k_neon_bytes,
    BlockQ3K,
    BlockQ8K
);
neon_kernel!(
    q4_k_q8_k,
    vec_dot_q4_k_q8_k_neon,
    vec_dot_q4_k_q8_k_neon_bytes,
    BlockQ4K,
    BlockQ8K
);
neon_kernel!(
    q5_k_q8_k,
    vec_dot_q5_k_q8_k_neon,
    vec_dot_q5_k_q8_k_neon_bytes,
    BlockQ5K,
    BlockQ8K
);
neon_kernel!(
    q6_k_q8_k,
    vec_dot_q6_k_q8_k_neon,
    vec_dot_q6_k_q8_k_neon_bytes,
    BlockQ6K,
    BlockQ8K
);
neon_kernel!(
    q8_k_q8_k,
    vec_dot_q8_k_q8_k_neon,
    vec_dot_q8_k_q8_k_neon_bytes,
    BlockQ8K,
    BlockQ8K
);

// ---------------------------------------------------------------------------------------------
// Activation quantization: Q8_K

/// [`crate::kquants::quantize_row_q8_k`] with NEON, byte for byte: the largest magnitude as the
/// unsigned maximum of the magnitudes' bits (which order non-negative floats as their values
/// do) with NaNs (bits above infinity's) zeroed first, so they are skipped as the scalar `>`
/// skips them (a float compare-and-select may be turned into `fmaxnm`, which lets a signalling
/// NaN through), its first occurrence by comparing bits; then per four values the scalar's exact
/// steps, `iscale·v` (`fmul`, no fused add), `+ 1.5·2^23`, the mantissa bits minus 2^22,
/// `min(127)`; `xtn` twice narrows to the low byte (the scalar's `as i8`), and `saddlv` sums
/// each 16 quants into i16. `iscale` and `d` are the scalar's divisions.
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn quantize_row_q8_k_neon(x: &[f32], out: &mut [BlockQ8K]) {
    debug_assert!(Tier::Neon.is_supported());
    crate::block::check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let p = xb.as_ptr();
        let magnitude = |v: float32x4_t| vandq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(!0 >> 1));
        // SAFETY: `xb` holds QK_K = 256 values, so every load of four at `4 k` (k < 64) is
        // inside; `vld1q_f32` has no alignment requirement beyond the element's.
        let amax_bits = unsafe {
            let inf = vdupq_n_u32(0x7f80_0000);
            let mut m = [vdupq_n_u32(0); 4];
            for k in 0..16 {
                for (a, mv) in m.iter_mut().enumerate() {
                    let v = magnitude(vld1q_f32(p.add(16 * k + 4 * a)));
                    *mv = vmaxq_u32(*mv, vbicq_u32(v, vcgtq_u32(v, inf)));
                }
            }
            vmaxvq_u32(vmaxq_u32(vmaxq_u32(m[0], m[1]), vmaxq_u32(m[2], m[3])))
        };
        if amax_bits == 0 {
            *b = <BlockQ8K as crate::block::GgmlBlock>::ZERO;
            continue;
        }
        // SAFETY: as above.
        let first = unsafe {
            let target = vdupq_n_u32(amax_bits);
            let mut at = 0;
            for k in 0..QK_K / 4 {
                let hit = vceqq_u32(magnitude(vld1q_f32(p.add(4 * k))), target);
                if vmaxvq_u32(hit) != 0 {
                    let lanes = [
                        vgetq_lane_u32::<0>(hit),
                        vgetq_lane_u32::<1>(hit),
                        vgetq_lane_u32::<2>(hit),
                        vgetq_lane_u32::<3>(hit),
                    ];
                    at = 4 * k + lanes.iter().position(|&l| l != 0).unwrap_or(0);
                    break;
                }
            }
            at
        };
        let iscale = -127.0 / xb[first];
        // SAFETY: the loads read `xb` (256 values), the stores write `b.qs` (256 bytes) 16 at
        // a time.
        unsafe {
            let scale = vdupq_n_f32(iscale);
            let magic = vdupq_n_f32(12_582_912.0);
            let mantissa = vdupq_n_s32(0x007f_ffff);
            let half = vdupq_n_s32(0x0040_0000);
            let top = vdupq_n_s32(127);
            let round = |v: float32x4_t| {
                let t = vaddq_f32(vmulq_f32(scale, v), magic);
                let i = vsubq_s32(vandq_s32(vreinterpretq_s32_f32(t), mantissa), half);
                vmovn_s32(vminq_s32(i, top))
            };
            let q = b.qs.as_mut_ptr();
            for (k, sum) in b.bsums.iter_mut().enumerate() {
                let v: [int16x4_t; 4] =
                    core::array::from_fn(|i| round(vld1q_f32(p.add(16 * k + 4 * i))));
                let bytes = vcombine_s8(
                    vmovn_s16(vcombine_s16(v[0], v[1])),
                    vmovn_s16(vcombine_s16(v[2], v[3])),
                );
                vst1q_s8(q.add(16 * k), bytes);
                *sum = vaddlvq_s8(bytes).to_le_bytes();
            }
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// [`quantize_row_q8_k_neon`] on raw bytes, for the NEON and dotprod tables and the k-quant
/// panels of the AArch64 tiers.
pub(crate) fn quantize_row_q8_k_neon_bytes(x: &[f32], out: &mut [u8]) {
    let out = crate::traits::blocks_mut::<BlockQ8K>(out);
    // SAFETY: installed only in the tables and panel kernels of the AArch64 tiers, handed out
    // only after detecting NEON (and more).
    unsafe { quantize_row_q8_k_neon(x, out) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `D` sums the 16 products exactly onto the accumulator, for the extreme
    /// quants (−128·−128 is the product that overflows i16 pair sums) and pseudo-random ones.
    ///
    /// # Safety
    /// The CPU must support `D`'s instructions.
    pub(crate) unsafe fn check_dot_exact<D: DotI8>() {
        let mut cases: Vec<([i8; 16], [i8; 16])> = vec![
            ([-128; 16], [-128; 16]),
            ([127; 16], [-128; 16]),
            ([-128; 16], [127; 16]),
            ([127; 16], [127; 16]),
        ];
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..64 {
            let mut a = [0i8; 16];
            let mut b = [0i8; 16];
            for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (*x, *y) = (s as i8, (s >> 8) as i8);
            }
            cases.push((a, b));
        }
        for (a, b) in cases {
            let want: i32 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            let acc = [1, -2, 3, 1 << 20];
            // SAFETY: the arrays are 16 bytes (4 × i32) long; the caller guarantees `D`.
            let got = unsafe {
                let acc = vld1q_s32(acc.as_ptr());
                vaddvq_s32(D::dot(acc, vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr())))
            };
            assert_eq!(got, want + 2 + (1 << 20), "{a:?} · {b:?}");
        }
    }

    /// The word-wise scale unpacking equals the scalar reference for every scale byte value
    /// in every position (the fields are independent bit ranges, so this covers all bits).
    #[test]
    fn scale_unpacking_matches_the_reference() {
        use crate::kquants::{k4_scales_mins, q3k_scale};
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..4096 {
            let mut q = [0u8; 12];
            for (i, b) in q.iter_mut().enumerate() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *b = if round < 256 {
                    (round + 37 * i) as u8
                } else {
                    s as u8
                };
            }
            assert_eq!(k4_scales_mins_words(&q), k4_scales_mins(&q), "{q:?}");
            let sc = q3k_scales_words(&q);
            for (j, &v) in sc.iter().enumerate() {
                assert_eq!(v, q3k_scale(&q, j) - 32, "{q:?} scale {j}");
            }
        }
    }

    #[test]
    fn widening_dot_is_exact() {
        assert!(Tier::Neon.is_supported());
        // SAFETY: NEON is present on every AArch64 CPU (asserted above).
        unsafe { check_dot_exact::<Widening>() }
    }
}
