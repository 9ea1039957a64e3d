//! Run-time selection of the dot-product kernels.
//!
//! The CPU's features are read once (with `std`: `is_x86_feature_detected!`, cached in a
//! `OnceLock`; without `std`: the `cfg(target_feature)` the crate was compiled for) and mapped to
//! a [`Tier`]. Each tier has a table of [`TypeTraits`] rows, built at compile time from the scalar
//! rows with `vec_dot` replaced wherever the tier has a faster kernel (and `from_float` of
//! Q8_K, byte for byte the scalar one); [`crate::type_traits`]
//! returns the rows of the active tier. The SIMD kernels are reachable only through these
//! tables, and a tier's table is handed out only if the CPU supports the tier, so the
//! `#[target_feature]` kernels never run on a CPU without those features.
//!
//! With `std`, the environment variable `EDDY_QUANT_TIER=scalar|avx2|avx512` picks a lower tier
//! (for comparisons and tests); a tier the CPU lacks is ignored in favour of the best supported
//! one. Tests that want every tier use [`type_traits_for`] directly. AMX is never used.
//!
//! On AArch64 the tiers are `neon` (every little-endian AArch64 CPU), `dotprod` (NEON with
//! `sdot`) and `i8mm` (dotprod with the Armv8.6 int8 matrix multiply `smmla`), detected with
//! `is_aarch64_feature_detected!` and selectable with `EDDY_QUANT_TIER=neon|dotprod|i8mm`; no CPU
//! supports the tiers of both architectures. `i8mm` differs from `dotprod` only in the packed
//! panel kernels of [`crate::panel`] (its `vec_dot` table is dotprod's: `smmla` multiplies two
//! rows by two columns, which a single dot product cannot use).

use crate::traits::{NUM_TYPES, QuantizeFn, SCALAR_ROWS, TypeTraits, VecDotFn, VecDotMultiFn};
use crate::{GgmlType, QuantError};

/// A family of kernels, from the portable one up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Portable scalar code (the reference).
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI (plus AVX2, FMA and F16C for the kernels it lacks).
    Avx512,
    /// AArch64 Advanced SIMD without the dot-product extension (e.g. Cortex-A72, Raspberry Pi 4):
    /// int8 products widened with `smull` and pairwise-added.
    Neon,
    /// AArch64 Advanced SIMD with `sdot` (FEAT_DotProd: Cortex-A76/Raspberry Pi 5, Apple M1+).
    Dotprod,
    /// AArch64 dotprod plus `smmla` (FEAT_I8MM, Armv8.6: Apple M2+, Graviton 3/4,
    /// Cortex-A710/X2 and later): the dotprod kernels, with `smmla` panel products for batched
    /// prefill.
    I8mm,
}

impl Tier {
    /// Every tier, lowest first within each architecture (a CPU supports the tiers of one
    /// architecture only).
    pub const ALL: [Tier; 6] = [
        Tier::Scalar,
        Tier::Avx2,
        Tier::Avx512,
        Tier::Neon,
        Tier::Dotprod,
        Tier::I8mm,
    ];

    /// The name used by `EDDY_QUANT_TIER`.
    pub const fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
            Tier::Neon => "neon",
            Tier::Dotprod => "dotprod",
            Tier::I8mm => "i8mm",
        }
    }

    /// Parses a name of [`Tier::name`] (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run the tier's kernels.
    pub fn is_supported(self) -> bool {
        match self {
            Tier::Scalar => true,
            Tier::Avx2 => has_avx2(),
            Tier::Avx512 => has_avx512(),
            Tier::Neon => has_neon(),
            Tier::Dotprod => has_dotprod(),
            Tier::I8mm => has_i8mm(),
        }
    }
}

impl core::fmt::Display for Tier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

#[cfg(all(not(feature = "std"), target_arch = "x86_64"))]
fn has_avx2() -> bool {
    cfg!(all(
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn has_avx512() -> bool {
    has_avx2()
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512vnni")
}

#[cfg(all(not(feature = "std"), target_arch = "x86_64"))]
fn has_avx512() -> bool {
    has_avx2()
        && cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni"
        ))
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

// The AArch64 kernels read multi-byte fields through byte vectors: little-endian only.
#[cfg(all(feature = "std", target_arch = "aarch64"))]
fn has_neon() -> bool {
    cfg!(target_endian = "little") && std::arch::is_aarch64_feature_detected!("neon")
}

#[cfg(all(not(feature = "std"), target_arch = "aarch64"))]
fn has_neon() -> bool {
    cfg!(all(target_endian = "little", target_feature = "neon"))
}

#[cfg(not(target_arch = "aarch64"))]
fn has_neon() -> bool {
    false
}

#[cfg(all(feature = "std", target_arch = "aarch64"))]
fn has_dotprod() -> bool {
    has_neon() && std::arch::is_aarch64_feature_detected!("dotprod")
}

#[cfg(all(not(feature = "std"), target_arch = "aarch64"))]
fn has_dotprod() -> bool {
    has_neon() && cfg!(target_feature = "dotprod")
}

#[cfg(not(target_arch = "aarch64"))]
fn has_dotprod() -> bool {
    false
}

#[cfg(all(feature = "std", target_arch = "aarch64"))]
fn has_i8mm() -> bool {
    has_dotprod() && std::arch::is_aarch64_feature_detected!("i8mm")
}

#[cfg(all(not(feature = "std"), target_arch = "aarch64"))]
fn has_i8mm() -> bool {
    has_dotprod() && cfg!(target_feature = "i8mm")
}

#[cfg(not(target_arch = "aarch64"))]
fn has_i8mm() -> bool {
    false
}

/// The best tier this CPU supports.
pub fn best_supported() -> Tier {
    Tier::ALL
        .into_iter()
        .rev()
        .find(|t| t.is_supported())
        .unwrap_or(Tier::Scalar)
}

fn choose() -> Tier {
    #[cfg(feature = "std")]
    if let Some(want) = std::env::var("EDDY_QUANT_TIER")
        .ok()
        .and_then(|v| Tier::parse(&v))
        .filter(|t| t.is_supported())
    {
        return want;
    }
    best_supported()
}

/// The tier [`crate::type_traits`] uses: chosen on first call and fixed from then on.
#[cfg(feature = "std")]
pub fn active_tier() -> Tier {
    static ACTIVE: std::sync::OnceLock<Tier> = std::sync::OnceLock::new();
    *ACTIVE.get_or_init(choose)
}

/// The tier [`crate::type_traits`] uses (fixed by the compile-time target features).
#[cfg(not(feature = "std"))]
pub fn active_tier() -> Tier {
    choose()
}

/// [`crate::quantize_fused`] as `tier` computes it (that function uses [`active_tier`]). Every
/// tier writes the same bytes; they differ in speed. On x86-64 the AVX2 and AVX-512 tiers run
/// the quantizers compiled for FMA (a fused multiply-add is one instruction) and the scalar
/// tier the portable build (the C library's `fmaf`, several times slower); on AArch64 every
/// tier is FMA already. A tier this CPU lacks gives the portable build. Errors as
/// [`crate::quantize`]; `out` is untouched then.
pub fn quantize_fused_for(
    tier: Tier,
    ty: GgmlType,
    x: &[f32],
    out: &mut [u8],
) -> Result<(), QuantError> {
    crate::traits::traits_or_err(ty)?;
    let need = crate::row_bytes(ty, x.len())?;
    crate::traits::check_len(ty, "output", need, out.len())?;
    let fused = match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::Avx512 => crate::x86_avx2::quantize_fused_rows_avx2_checked(ty, x, out)
            .unwrap_or_else(|| crate::traits::quantize_fused_rows(ty, x, out)),
        _ => crate::traits::quantize_fused_rows(ty, x, out),
    };
    if fused {
        Ok(())
    } else {
        crate::quantize(ty, x, out)
    }
}

/// The kernels of `ty` in `tier`'s table, or `None` if this CPU does not support `tier` or this
/// crate cannot compute `ty`.
pub fn type_traits_for(tier: Tier, ty: GgmlType) -> Option<&'static TypeTraits> {
    if !tier.is_supported() {
        return None;
    }
    table(tier).iter().find(|t| t.ty == ty)
}

pub(crate) fn active_table() -> &'static [TypeTraits; NUM_TYPES] {
    table(active_tier())
}

/// The table of `tier`. Callers must have checked that the CPU supports `tier`.
fn table(tier: Tier) -> &'static [TypeTraits; NUM_TYPES] {
    match tier {
        Tier::Scalar => &SCALAR_TABLE,
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => &AVX2_TABLE,
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => &AVX512_TABLE,
        #[cfg(target_arch = "aarch64")]
        Tier::Neon => &NEON_TABLE,
        // i8mm CPUs all have dotprod, and `smmla` has no single-column use: dotprod's kernels.
        #[cfg(target_arch = "aarch64")]
        Tier::Dotprod | Tier::I8mm => &DOTPROD_TABLE,
        _ => &SCALAR_TABLE,
    }
}

/// `rows` with the `vec_dot` of `ty` replaced by `f`. Any multi-column kernel of `ty` is
/// dropped, since it was written to match the `vec_dot` being replaced.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
const fn with_vec_dot(
    mut rows: [TypeTraits; NUM_TYPES],
    ty: GgmlType,
    f: VecDotFn,
) -> [TypeTraits; NUM_TYPES] {
    let mut i = 0;
    while i < NUM_TYPES {
        if rows[i].ty as u32 == ty as u32 {
            rows[i].vec_dot = f;
            rows[i].vec_dot_multi = None;
        }
        i += 1;
    }
    rows
}

/// `rows` with the dot products of `ty` set to the pair `single` (its `vec_dot`) and `multi`
/// (its `vec_dot_multi`), where `multi` reproduces `single` bit for bit (`tests/matrix.rs` checks
/// every pair). Setting both at once keeps the pair consistent whatever else replaces the
/// `vec_dot` of `ty` before or after ([`with_vec_dot`] drops `multi`).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const fn with_vec_dot_pair(
    mut rows: [TypeTraits; NUM_TYPES],
    ty: GgmlType,
    single: VecDotFn,
    multi: VecDotMultiFn,
) -> [TypeTraits; NUM_TYPES] {
    let mut i = 0;
    while i < NUM_TYPES {
        if rows[i].ty as u32 == ty as u32 {
            rows[i].vec_dot = single;
            rows[i].vec_dot_multi = Some(multi);
        }
        i += 1;
    }
    rows
}

/// `rows` with the activation conversion (`from_float`) of `ty` replaced by `f`, which must
/// write the same bytes as the scalar one (`tests/kernel_parity.rs` checks).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
const fn with_from_float(
    mut rows: [TypeTraits; NUM_TYPES],
    ty: GgmlType,
    f: QuantizeFn,
) -> [TypeTraits; NUM_TYPES] {
    let mut i = 0;
    while i < NUM_TYPES {
        if rows[i].ty as u32 == ty as u32 {
            rows[i].from_float = f;
        }
        i += 1;
    }
    rows
}

static SCALAR_TABLE: [TypeTraits; NUM_TYPES] = SCALAR_ROWS;

#[cfg(target_arch = "x86_64")]
const AVX2_ROWS: [TypeTraits; NUM_TYPES] = {
    use crate::x86_avx2 as k;
    let r = SCALAR_ROWS;
    let r = with_vec_dot(r, GgmlType::Q8_0, k::vec_dot_q8_0_q8_0_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_K, k::vec_dot_q4_k_q8_k_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q6_K, k::vec_dot_q6_k_q8_k_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_0, k::vec_dot_q4_0_q8_0_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_0, k::vec_dot_q5_0_q8_0_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_1, k::vec_dot_q5_1_q8_1_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_1, k::vec_dot_q8_1_q8_1_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q2_K, k::vec_dot_q2_k_q8_k_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q3_K, k::vec_dot_q3_k_q8_k_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_K, k::vec_dot_q5_k_q8_k_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_K, k::vec_dot_q8_k_q8_k_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::IQ4_NL, k::vec_dot_iq4_nl_q8_0_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::IQ4_XS, k::vec_dot_iq4_xs_q8_k_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::F32, k::vec_dot_f32_f32_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::F16, k::vec_dot_f16_f16_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::BF16, k::vec_dot_bf16_bf16_avx2_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_1, k::vec_dot_q4_1_q8_1_avx2_bytes);
    let r = with_from_float(r, GgmlType::Q8_K, k::quantize_row_q8_k_avx2_bytes);
    multi_column_avx2(r)
};

/// The AVX2 multi-column kernels of `x86_matmat`, each with the single-column kernel it
/// reproduces.
#[cfg(target_arch = "x86_64")]
const fn multi_column_avx2(r: [TypeTraits; NUM_TYPES]) -> [TypeTraits; NUM_TYPES] {
    use crate::x86_avx2 as k;
    use crate::x86_matmat as m;
    use GgmlType::*;
    let r = with_vec_dot_pair(
        r,
        Q8_0,
        k::vec_dot_q8_0_q8_0_avx2_bytes,
        m::vec_dot_multi_q8_0_q8_0_avx2_bytes,
    );
    let r = with_vec_dot_pair(
        r,
        Q4_1,
        k::vec_dot_q4_1_q8_1_avx2_bytes,
        m::vec_dot_multi_q4_1_q8_1_avx2_bytes,
    );
    let r = with_vec_dot_pair(
        r,
        Q4_K,
        k::vec_dot_q4_k_q8_k_avx2_bytes,
        m::vec_dot_multi_q4_k_q8_k_avx2_bytes,
    );
    let r = with_vec_dot_pair(
        r,
        Q6_K,
        k::vec_dot_q6_k_q8_k_avx2_bytes,
        m::vec_dot_multi_q6_k_q8_k_avx2_bytes,
    );
    with_vec_dot_pair(
        r,
        Q5_0,
        k::vec_dot_q5_0_q8_0_avx2_bytes,
        m::vec_dot_multi_q5_0_q8_0_avx2_bytes,
    )
}

/// Only handed out when [`Tier::Avx2`] is supported.
#[cfg(target_arch = "x86_64")]
static AVX2_TABLE: [TypeTraits; NUM_TYPES] = AVX2_ROWS;

/// Only handed out when [`Tier::Avx512`] is supported.
#[cfg(target_arch = "x86_64")]
static AVX512_TABLE: [TypeTraits; NUM_TYPES] = {
    use crate::x86_avx512 as k;
    let r = AVX2_ROWS;
    let r = with_vec_dot(r, GgmlType::Q8_0, k::vec_dot_q8_0_q8_0_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_0, k::vec_dot_q4_0_q8_0_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_0, k::vec_dot_q5_0_q8_0_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_1, k::vec_dot_q5_1_q8_1_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::IQ4_NL, k::vec_dot_iq4_nl_q8_0_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_K, k::vec_dot_q4_k_q8_k_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q6_K, k::vec_dot_q6_k_q8_k_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q2_K, k::vec_dot_q2_k_q8_k_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q3_K, k::vec_dot_q3_k_q8_k_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_K, k::vec_dot_q8_k_q8_k_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::BF16, k::vec_dot_bf16_bf16_avx512_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_1, k::vec_dot_q4_1_q8_1_avx512_bytes);
    let r = with_from_float(r, GgmlType::Q8_K, k::quantize_row_q8_k_avx512_bytes);
    multi_column_avx512(r)
};

/// The AVX-512 multi-column kernels of `x86_matmat` with their single-column kernels.
#[cfg(target_arch = "x86_64")]
const fn multi_column_avx512(r: [TypeTraits; NUM_TYPES]) -> [TypeTraits; NUM_TYPES] {
    use crate::x86_avx512 as k;
    use crate::x86_matmat as m;
    let r = with_vec_dot_pair(
        r,
        GgmlType::Q8_0,
        k::vec_dot_q8_0_q8_0_avx512_bytes,
        m::vec_dot_multi_q8_0_q8_0_avx512_bytes,
    );
    let r = with_vec_dot_pair(
        r,
        GgmlType::Q4_1,
        k::vec_dot_q4_1_q8_1_avx512_bytes,
        m::vec_dot_multi_q4_1_q8_1_avx512_bytes,
    );
    let r = with_vec_dot_pair(
        r,
        GgmlType::Q5_0,
        k::vec_dot_q5_0_q8_0_avx512_bytes,
        m::vec_dot_multi_q5_0_q8_0_avx512_bytes,
    );
    let r = with_vec_dot_pair(
        r,
        GgmlType::Q4_K,
        k::vec_dot_q4_k_q8_k_avx512_bytes,
        m::vec_dot_multi_q4_k_q8_k_avx512_bytes,
    );
    with_vec_dot_pair(
        r,
        GgmlType::Q6_K,
        k::vec_dot_q6_k_q8_k_avx512_bytes,
        m::vec_dot_multi_q6_k_q8_k_avx512_bytes,
    )
}

/// The NEON tier's kernels; the float ones are shared with the dotprod tier.
#[cfg(target_arch = "aarch64")]
const NEON_ROWS: [TypeTraits; NUM_TYPES] = {
    use crate::aarch64_neon as k;
    let r = SCALAR_ROWS;
    let r = with_vec_dot(r, GgmlType::Q4_0, k::vec_dot_q4_0_q8_0_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_1, k::vec_dot_q4_1_q8_1_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_0, k::vec_dot_q5_0_q8_0_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_1, k::vec_dot_q5_1_q8_1_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_0, k::vec_dot_q8_0_q8_0_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_1, k::vec_dot_q8_1_q8_1_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q2_K, k::vec_dot_q2_k_q8_k_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q3_K, k::vec_dot_q3_k_q8_k_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_K, k::vec_dot_q4_k_q8_k_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_K, k::vec_dot_q5_k_q8_k_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q6_K, k::vec_dot_q6_k_q8_k_neon_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_K, k::vec_dot_q8_k_q8_k_neon_bytes);
    let r = with_vec_dot(r, GgmlType::IQ4_NL, k::vec_dot_iq4_nl_q8_0_neon_bytes);
    let r = with_vec_dot(r, GgmlType::IQ4_XS, k::vec_dot_iq4_xs_q8_k_neon_bytes);
    let r = with_vec_dot(r, GgmlType::F32, k::vec_dot_f32_f32_neon_bytes);
    let r = with_vec_dot(r, GgmlType::F16, k::vec_dot_f16_f16_neon_bytes);
    let r = with_from_float(r, GgmlType::Q8_K, k::quantize_row_q8_k_neon_bytes);
    with_vec_dot(r, GgmlType::BF16, k::vec_dot_bf16_bf16_neon_bytes)
};

/// Only handed out when [`Tier::Neon`] is supported.
#[cfg(target_arch = "aarch64")]
static NEON_TABLE: [TypeTraits; NUM_TYPES] = NEON_ROWS;

/// Only handed out when [`Tier::Dotprod`] (or [`Tier::I8mm`], which implies it) is supported.
#[cfg(target_arch = "aarch64")]
static DOTPROD_TABLE: [TypeTraits; NUM_TYPES] = {
    use crate::aarch64_dotprod as k;
    let r = NEON_ROWS;
    let r = with_vec_dot(r, GgmlType::Q4_0, k::vec_dot_q4_0_q8_0_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_1, k::vec_dot_q4_1_q8_1_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_0, k::vec_dot_q5_0_q8_0_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_1, k::vec_dot_q5_1_q8_1_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_0, k::vec_dot_q8_0_q8_0_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_1, k::vec_dot_q8_1_q8_1_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q2_K, k::vec_dot_q2_k_q8_k_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q3_K, k::vec_dot_q3_k_q8_k_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q4_K, k::vec_dot_q4_k_q8_k_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q5_K, k::vec_dot_q5_k_q8_k_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q6_K, k::vec_dot_q6_k_q8_k_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::Q8_K, k::vec_dot_q8_k_q8_k_dotprod_bytes);
    let r = with_vec_dot(r, GgmlType::IQ4_NL, k::vec_dot_iq4_nl_q8_0_dotprod_bytes);
    with_vec_dot(r, GgmlType::IQ4_XS, k::vec_dot_iq4_xs_q8_k_dotprod_bytes)
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(Tier::parse(t.name()), Some(t));
        }
        assert_eq!(Tier::parse("AVX2"), Some(Tier::Avx2));
        assert_eq!(Tier::parse("NEON"), Some(Tier::Neon));
        assert_eq!(Tier::parse("dotprod"), Some(Tier::Dotprod));
        assert_eq!(Tier::parse("I8MM"), Some(Tier::I8mm));
        assert_eq!(Tier::parse("amx"), None);
    }

    #[test]
    fn active_tier_is_supported() {
        assert!(active_tier().is_supported());
        assert!(Tier::Scalar.is_supported());
        assert!(type_traits_for(Tier::Scalar, GgmlType::Q4_1).is_some());
    }

    /// i8mm implies dotprod, and the best tier of an i8mm CPU is i8mm, not dotprod.
    #[test]
    fn i8mm_sits_above_dotprod() {
        if Tier::I8mm.is_supported() {
            assert!(Tier::Dotprod.is_supported());
            assert_eq!(best_supported(), Tier::I8mm);
        }
        assert!(Tier::Dotprod < Tier::I8mm);
    }

    #[test]
    fn unsupported_tiers_hand_out_no_table() {
        for t in Tier::ALL {
            assert_eq!(
                type_traits_for(t, GgmlType::Q8_0).is_some(),
                t.is_supported(),
                "{t}"
            );
        }
    }
}
