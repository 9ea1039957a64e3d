//! AArch64 dot-product kernels with `sdot` (FEAT_DotProd, "dotprod").
//!
//! The kernels are the generic ones of [`crate::aarch64_neon`] with [`Sdot`] as their int8 dot
//! product; the float formats have no use for `sdot` and share the NEON tier's kernels. `sdot`
//! is reached through `asm!` because its intrinsic (`vdotq_s32`) is not stable Rust; every kernel
//! here is compiled with `#[target_feature(enable = "neon,dotprod")]`, which also lets the
//! assembler accept the instruction. See the NEON module for the exactness argument.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

use crate::aarch64_neon::{
    DotI8, iq4_nl_q8_0, iq4_xs_q8_k, q2_k_q8_k, q3_k_q8_k, q4_0_q8_0, q4_1_q8_1, q4_k_q8_k,
    q5_0_q8_0, q5_1_q8_1, q5_k_q8_k, q6_k_q8_k, q8_0_q8_0, q8_1_q8_1, q8_k_q8_k, tier_kernel,
};
use crate::dispatch::Tier;
use crate::iquants::{BlockIQ4NL, BlockIQ4XS};
use crate::kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::traits::blocks;

/// [`DotI8`] with `sdot`: lane `i` gains `Σ_{k<4} a[4i+k]·b[4i+k]`, exact in i32.
#[derive(Debug)]
pub(crate) struct Sdot;

impl DotI8 for Sdot {
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: the caller guarantees FEAT_DotProd; `sdot` reads and writes only the named
        // vector registers.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }
}

/// The dotprod tier's quantized kernels.
macro_rules! dotprod_kernel {
    ($generic:ident, $name:ident, $bytes:ident, $bx:ty, $by:ty) => {
        tier_kernel!(
            Tier::Dotprod,
            "neon,dotprod",
            Sdot,
            $generic,
            $name,
            $bytes,
            $bx,
            $by
        );
    };
}

dotprod_kernel!(
    q4_0_q8_0,
    vec_dot_q4_0_q8_0_dotprod,
    vec_dot_q4_0_q8_0_dotprod_bytes,
    BlockQ4_0,
    BlockQ8_0
);
dotprod_kernel!(
    q4_1_q8_1,
    vec_dot_q4_1_q8_1_dotprod,
    vec_dot_q4_1_q8_1_dotprod_bytes,
    BlockQ4_1,
    BlockQ8_1
);
dotprod_kernel!(
    q5_0_q8_0,
    vec_dot_q5_0_q8_0_dotprod,
    vec_dot_q5_0_q8_0_dotprod_bytes,
    BlockQ5_0,
    BlockQ8_0
);
dotprod_kernel!(
    q5_1_q8_1,
    vec_dot_q5_1_q8_1_dotprod,
    vec_dot_q5_1_q8_1_dotprod_bytes,
    BlockQ5_1,
    BlockQ8_1
);
dotprod_kernel!(
    q8_0_q8_0,
    vec_dot_q8_0_q8_0_dotprod,
    vec_dot_q8_0_q8_0_dotprod_bytes,
    BlockQ8_0,
    BlockQ8_0
);
dotprod_kernel!(
    q8_1_q8_1,
    vec_dot_q8_1_q8_1_dotprod,
    vec_dot_q8_1_q8_1_dotprod_bytes,
    BlockQ8_1,
    BlockQ8_1
);
dotprod_kernel!(
    iq4_nl_q8_0,
    vec_dot_iq4_nl_q8_0_dotprod,
    vec_dot_iq4_nl_q8_0_dotprod_bytes,
    BlockIQ4NL,
    BlockQ8_0
);
dotprod_kernel!(
    iq4_xs_q8_k,
    vec_dot_iq4_xs_q8_k_dotprod,
    vec_dot_iq4_xs_q8_k_dotprod_bytes,
    BlockIQ4XS,
    BlockQ8K
);
dotprod_kernel!(
    q2_k_q8_k,
    vec_dot_q2_k_q8_k_dotprod,
    vec_dot_q2_k_q8_k_dotprod_bytes,
    BlockQ2K,
    BlockQ8K
);
dotprod_kernel!(
    q3_k_q8_k,
    vec_dot_q3_k_q8_k_dotprod,
    vec_dot_q3_k_q8_k_dotprod_bytes,
    BlockQ3K,
    BlockQ8K
);
dotprod_kernel!(
    q4_k_q8_k,
    vec_dot_q4_k_q8_k_dotprod,
    vec_dot_q4_k_q8_k_dotprod_bytes,
    BlockQ4K,
    BlockQ8K
);
dotprod_kernel!(
    q5_k_q8_k,
    vec_dot_q5_k_q8_k_dotprod,
    vec_dot_q5_k_q8_k_dotprod_bytes,
    BlockQ5K,
    BlockQ8K
);
dotprod_kernel!(
    q6_k_q8_k,
    vec_dot_q6_k_q8_k_dotprod,
    vec_dot_q6_k_q8_k_dotprod_bytes,
    BlockQ6K,
    BlockQ8K
);
dotprod_kernel!(
    q8_k_q8_k,
    vec_dot_q8_k_q8_k_dotprod,
    vec_dot_q8_k_q8_k_dotprod_bytes,
    BlockQ8K,
    BlockQ8K
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdot_is_exact() {
        if !Tier::Dotprod.is_supported() {
            return;
        }
        // SAFETY: FEAT_DotProd was detected just above.
        unsafe { crate::aarch64_neon::tests::check_dot_exact::<Sdot>() }
    }
}
