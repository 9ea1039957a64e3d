//! The table of GGML tensor types: ids as stored in GGUF files, block size and bytes per block.
//!
//! Every id that llama.cpp's `ggml.h` defines is here, including the ones Eddy cannot compute
//! yet, so that a file's tensor sizes are always right. Ids that ggml has retired (repacked
//! in-memory layouts that GGUF files must no longer contain) are known by name so that the
//! error for them can say so.

use core::fmt;

/// One GGML tensor type. The discriminant is the id stored in GGUF tensor infos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(non_camel_case_types)]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 16-bit IEEE half float.
    F16 = 1,
    /// 32 weights: f16 scale + 32 × 4-bit (4.5 bits per weight).
    Q4_0 = 2,
    /// 32 weights: f16 scale and minimum + 32 × 4-bit (5 bpw).
    Q4_1 = 3,
    /// 32 weights: f16 scale + 32 × 5-bit (5.5 bpw).
    Q5_0 = 6,
    /// 32 weights: f16 scale and minimum + 32 × 5-bit (6 bpw).
    Q5_1 = 7,
    /// 32 weights: f16 scale + 32 × int8 (8.5 bpw).
    Q8_0 = 8,
    /// 32 weights: f16 scale, f16 scaled sum + 32 × int8 (activation partner of Q4_1/Q5_1).
    Q8_1 = 9,
    /// 256-weight super-block, 2-bit quants with 4-bit sub-block scales (2.625 bpw).
    Q2_K = 10,
    /// 256-weight super-block, 3-bit quants with 6-bit scales (3.4375 bpw).
    Q3_K = 11,
    /// 256-weight super-block, 4-bit quants with 6-bit scales and minimums (4.5 bpw).
    Q4_K = 12,
    /// 256-weight super-block, 5-bit quants with 6-bit scales and minimums (5.5 bpw).
    Q5_K = 13,
    /// 256-weight super-block, 6-bit quants with 8-bit scales (6.5625 bpw).
    Q6_K = 14,
    /// 256 weights: f32 scale, int8 quants, int16 sums of 16 (activation partner of k-quants).
    Q8_K = 15,
    /// i-quant, 2.0625 bpw.
    IQ2_XXS = 16,
    /// i-quant, 2.3125 bpw.
    IQ2_XS = 17,
    /// i-quant, 3.0625 bpw.
    IQ3_XXS = 18,
    /// i-quant, 1.5625 bpw.
    IQ1_S = 19,
    /// 32 weights: f16 scale + 32 × 4-bit indices into a non-linear table (4.5 bpw).
    IQ4_NL = 20,
    /// i-quant, 3.4375 bpw.
    IQ3_S = 21,
    /// i-quant, 2.5625 bpw.
    IQ2_S = 22,
    /// 256-weight super-block of non-linear 4-bit indices with 6-bit scales (4.25 bpw).
    IQ4_XS = 23,
    /// 8-bit signed integer.
    I8 = 24,
    /// 16-bit signed integer.
    I16 = 25,
    /// 32-bit signed integer.
    I32 = 26,
    /// 64-bit signed integer.
    I64 = 27,
    /// 64-bit IEEE float.
    F64 = 28,
    /// i-quant, 1.75 bpw.
    IQ1_M = 29,
    /// bfloat16.
    BF16 = 30,
    /// Ternary, 1.6875 bpw.
    TQ1_0 = 34,
    /// Ternary, 2.0625 bpw.
    TQ2_0 = 35,
    /// Microscaling FP4: 32 × E2M1 with one E8M0 scale (4.25 bpw).
    MXFP4 = 39,
    /// NVIDIA FP4: 64 × E2M1 with four UE4M3 sub-block scales (4.5 bpw).
    NVFP4 = 40,
    /// 128 weights: f16 scale + 128 sign bits (1.125 bpw).
    Q1_0 = 41,
    /// 64 weights: f16 scale + 64 × 2-bit (2.25 bpw).
    Q2_0 = 42,
}

/// What an id found in a file means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeLookup {
    /// A type this table knows.
    Known(GgmlType),
    /// An id ggml used once for a repacked layout and removed from GGUF files (name given).
    Removed(&'static str),
    /// An id ggml has never defined (as of the table's date).
    Unknown,
}

/// (type, name, weights per block, bytes per block) for every known type, in id order.
const TABLE: &[(GgmlType, &str, u32, u32)] = &[
    (GgmlType::F32, "F32", 1, 4),
    (GgmlType::F16, "F16", 1, 2),
    (GgmlType::Q4_0, "Q4_0", 32, 18),
    (GgmlType::Q4_1, "Q4_1", 32, 20),
    (GgmlType::Q5_0, "Q5_0", 32, 22),
    (GgmlType::Q5_1, "Q5_1", 32, 24),
    (GgmlType::Q8_0, "Q8_0", 32, 34),
    (GgmlType::Q8_1, "Q8_1", 32, 36),
    (GgmlType::Q2_K, "Q2_K", 256, 84),
    (GgmlType::Q3_K, "Q3_K", 256, 110),
    (GgmlType::Q4_K, "Q4_K", 256, 144),
    (GgmlType::Q5_K, "Q5_K", 256, 176),
    (GgmlType::Q6_K, "Q6_K", 256, 210),
    (GgmlType::Q8_K, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, "IQ4_XS", 256, 136),
    (GgmlType::I8, "I8", 1, 1),
    (GgmlType::I16, "I16", 1, 2),
    (GgmlType::I32, "I32", 1, 4),
    (GgmlType::I64, "I64", 1, 8),
    (GgmlType::F64, "F64", 1, 8),
    (GgmlType::IQ1_M, "IQ1_M", 256, 56),
    (GgmlType::BF16, "BF16", 1, 2),
    (GgmlType::TQ1_0, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, "MXFP4", 32, 17),
    (GgmlType::NVFP4, "NVFP4", 64, 36),
    (GgmlType::Q1_0, "Q1_0", 128, 18),
    (GgmlType::Q2_0, "Q2_0", 64, 18),
];

/// Ids that ggml retired from GGUF files, with their old names.
const REMOVED: &[(u32, &str)] = &[
    (4, "Q4_2"),
    (5, "Q4_3"),
    (31, "Q4_0_4_4"),
    (32, "Q4_0_4_8"),
    (33, "Q4_0_8_8"),
    (36, "IQ4_NL_4_4"),
    (37, "IQ4_NL_4_8"),
    (38, "IQ4_NL_8_8"),
];

impl GgmlType {
    /// Every known type, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|row| row.0)
    }

    /// Looks up an id read from a file.
    pub fn lookup(id: u32) -> TypeLookup {
        if let Some(row) = TABLE.iter().find(|row| row.0 as u32 == id) {
            return TypeLookup::Known(row.0);
        }
        match REMOVED.iter().find(|row| row.0 == id) {
            Some(row) => TypeLookup::Removed(row.1),
            None => TypeLookup::Unknown,
        }
    }

    /// The type with this id, if it is a known one.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        match Self::lookup(id) {
            TypeLookup::Known(t) => Some(t),
            _ => None,
        }
    }

    /// The id stored in GGUF files.
    pub fn id(self) -> u32 {
        self as u32
    }

    fn row(self) -> &'static (GgmlType, &'static str, u32, u32) {
        // Every variant has exactly one row (checked by a unit test); the fallback keeps this
        // function total without a panic path.
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[0])
    }

    /// The name llama.cpp prints (upper case, e.g. `Q4_K`).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Weights per block (1 for the plain number types).
    pub fn block_size(self) -> u32 {
        self.row().2
    }

    /// Bytes per block.
    pub fn type_size(self) -> u32 {
        self.row().3
    }

    /// True for block-quantized types (block size > 1 or sub-byte weights).
    pub fn is_quantized(self) -> bool {
        !matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::F64
                | GgmlType::I8
                | GgmlType::I16
                | GgmlType::I32
                | GgmlType::I64
        )
    }

    /// Bytes taken by `n` weights, or `None` when `n` is not a whole number of blocks or the
    /// size overflows `u64`.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let bs = u64::from(self.block_size());
        if n % bs != 0 {
            return None;
        }
        (n / bs).checked_mul(u64::from(self.type_size()))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_one_row_and_ids_round_trip() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(GgmlType::from_id(row.0 as u32), Some(row.0));
            assert_eq!(row.0.name(), row.1);
            assert_eq!(
                TABLE.iter().filter(|r| r.0 == row.0).count(),
                1,
                "row {i} duplicated"
            );
        }
        // Ids 0..=42 are each known, removed, or (none here) unknown; 43 is past the end.
        for id in 0..=42u32 {
            assert_ne!(GgmlType::lookup(id), TypeLookup::Unknown, "id {id}");
        }
        assert_eq!(GgmlType::lookup(43), TypeLookup::Unknown);
        assert_eq!(GgmlType::lookup(u32::MAX), TypeLookup::Unknown);
        assert_eq!(GgmlType::lookup(31), TypeLookup::Removed("Q4_0_4_4"));
    }

    /// Sizes written out from the block layouts in ggml-common.h, independently of TABLE.
    #[test]
    fn block_sizes_match_the_ggml_layouts() {
        const QK_K: u32 = 256;
        let half = 2;
        let expect = [
            (GgmlType::Q4_0, 32, half + 16),
            (GgmlType::Q4_1, 32, 2 * half + 16),
            (GgmlType::Q5_0, 32, half + 4 + 16),
            (GgmlType::Q5_1, 32, 2 * half + 4 + 16),
            (GgmlType::Q8_0, 32, half + 32),
            (GgmlType::Q8_1, 32, 2 * half + 32),
            (GgmlType::Q2_K, QK_K, QK_K / 16 + QK_K / 4 + 2 * half),
            (GgmlType::Q3_K, QK_K, QK_K / 8 + QK_K / 4 + 12 + half),
            (GgmlType::Q4_K, QK_K, 2 * half + 12 + QK_K / 2),
            (GgmlType::Q5_K, QK_K, 2 * half + 12 + QK_K / 8 + QK_K / 2),
            (GgmlType::Q6_K, QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + half),
            (GgmlType::Q8_K, QK_K, 4 + QK_K + 2 * (QK_K / 16)),
            (GgmlType::IQ2_XXS, QK_K, half + 2 * (QK_K / 8)),
            (GgmlType::IQ2_XS, QK_K, half + 2 * (QK_K / 8) + QK_K / 32),
            (GgmlType::IQ3_XXS, QK_K, half + 3 * QK_K / 8),
            (GgmlType::IQ1_S, QK_K, half + QK_K / 8 + 2 * (QK_K / 32)),
            (GgmlType::IQ4_NL, 32, half + 16),
            (
                GgmlType::IQ3_S,
                QK_K,
                half + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64,
            ),
            (
                GgmlType::IQ2_S,
                QK_K,
                half + QK_K / 4 + QK_K / 32 + QK_K / 32,
            ),
            (GgmlType::IQ4_XS, QK_K, half + 2 + QK_K / 64 + QK_K / 2),
            (GgmlType::IQ1_M, QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            (
                GgmlType::TQ1_0,
                QK_K,
                (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + half,
            ),
            (GgmlType::TQ2_0, QK_K, QK_K / 4 + half),
            (GgmlType::MXFP4, 32, 1 + 16),
            (GgmlType::NVFP4, 64, 64 / 16 + 64 / 2),
            (GgmlType::Q1_0, 128, half + 128 / 8),
            (GgmlType::Q2_0, 64, half + 64 / 4),
        ];
        for (t, bs, ts) in expect {
            assert_eq!((t.block_size(), t.type_size()), (bs, ts), "{t}");
        }
    }

    #[test]
    fn bytes_for_checks_blocks_and_overflow() {
        assert_eq!(GgmlType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(GgmlType::Q4_0.bytes_for(33), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
        assert_eq!(GgmlType::Q4_K.bytes_for(0), Some(0));
    }
}
