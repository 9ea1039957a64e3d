//! The k-quant matrices of Qwen2.5 Q4_K_M as shipped (its `ffn_down` are Q4_K and Q6_K; the
//! other matrices, whose rows of 896 weights are not whole super-blocks, are Q5_0 and Q8_0) on a
//! tier with their row-interleaved kernels (AVX-512): copied into the interleaved layout at
//! load with their mapped pages released, resident memory within the file plus the context's
//! arena plus 16 MB, outputs in agreement with the row-by-row kernels to f32 rounding, and
//! bit-identical across thread counts and batch sizes (`common/interleaved.rs`). One test per
//! binary: it measures the process's RSS.

mod common;
#[path = "common/interleaved.rs"]
mod interleaved;

use eddy_quant::GgmlType;

#[test]
fn k_quant_weights_of_qwen_are_interleaved_within_the_memory_bound_and_agree() {
    let Some(path) = common::model(common::QWEN2) else {
        return;
    };
    // Batch-invariant where every matrix has its copy (AVX-512; AVX2 copies only the Q5_0).
    let formats = [
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];
    let tier = eddy_quant::dispatch::active_tier();
    let every_matrix_copied = formats
        .iter()
        .all(|&ty| eddy_quant::interleaved::kernels_for(tier, ty).is_some());
    interleaved::check_interleaved(&path, &formats, 0.06, 0.015, every_matrix_copied);
}
