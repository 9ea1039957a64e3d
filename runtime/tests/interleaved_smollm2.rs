//! The model as shipped (SmolLM2 Q4_1, the default) on a tier with row-interleaved kernels
//! (AVX-512, AVX2): its Q4_1 matrices and its tied Q8_0 embedding (AVX-512 only) are copied
//! into the interleaved layout at load and their mapped pages released, resident memory stays within the file plus the context's arena plus
//! 16 MB, the outputs agree with the row-by-row kernels to f32 rounding and are bit-identical
//! across thread counts and batch sizes (`common/interleaved.rs`). One test per binary: it
//! measures the process's RSS.

mod common;
#[path = "common/interleaved.rs"]
mod interleaved;

use eddy_quant::GgmlType;

#[test]
fn q4_1_weights_of_the_default_model_are_interleaved_within_the_memory_bound_and_agree() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    // Batch-invariant on both tiers: AVX2, which does not copy Q8_0, multiplies the head by one
    // column only (the last token's logits).
    interleaved::check_interleaved(&path, &[GgmlType::Q4_1, GgmlType::Q8_0], 0.06, 0.015, true);
}
