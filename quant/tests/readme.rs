//! The example of `README.md`, compiled and run.

use eddy_quant::{GgmlType, WeightMatrix, quantize, row_bytes};

fn decode_and_prefill(
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    xs: &[f32],
    n: usize,
) -> Result<(Vec<f32>, Vec<f32>), eddy_quant::QuantError> {
    let m = WeightMatrix::new(GgmlType::Q4_1, w, rows, cols)?;
    // Scratch for the quantized activations, sized once by the caller.
    let mut scratch = vec![0u8; m.scratch_bytes(n)?];
    let mut y = vec![0f32; rows];
    m.matvec(x, &mut scratch, &mut y)?; // y = W·x
    let mut ys = vec![0f32; n * rows];
    m.matmat(n, xs, &mut scratch, &mut ys)?; // ys[j·rows + r] = (W·x_j)[r]
    Ok((y, ys))
}

#[test]
fn readme_example_runs() {
    let (rows, cols, n) = (8, 64, 3);
    let weights: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut w = vec![0u8; rows * row_bytes(GgmlType::Q4_1, cols).unwrap()];
    quantize(GgmlType::Q4_1, &weights, &mut w).unwrap();
    let xs: Vec<f32> = (0..n * cols).map(|i| (i % 5) as f32 * 0.25).collect();
    let (y, ys) = decode_and_prefill(&w, rows, cols, &xs[..cols], &xs, n).unwrap();
    // Column 0 of the batch is the single vector, bit for bit.
    assert_eq!(
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        ys[..rows].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
