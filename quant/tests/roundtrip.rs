//! Properties of every format over random and extreme data: quantize → dequantize error within
//! a named bound, dot products consistent with the dequantized values, wrong lengths and
//! unsupported types rejected with an error, and no panic on extreme inputs or arbitrary bytes.

use eddy_quant::{
    GgmlType, QuantError, dequantize, from_float, quantize, row_bytes, supported_types,
    type_traits, vec_dot,
};

/// Deterministic xorshift64* generator (no external crates).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Largest allowed RMS of `dequantize(quantize(x)) − x`, relative to the RMS of `x`, for rows
/// of standard normal values (weights look like this). Each bound is 1.3× the value measured
/// over 64 rows of 4096 values with the seed below (measured value in the comment), so a
/// regression that costs a third more error fails. The measured values follow from the step
/// sizes (a uniform step `s` gives an RMS error of about `s/√12`):
/// - F32 is exact; F16 keeps 11 significant bits, BF16 8.
/// - Q8_0/Q8_1: step amax/127 over 32 values; Q8_K the same over 256 (larger amax).
/// - Q5 formats: amax/16 or range/31; Q4 formats: amax/8 or range/15.
/// - k-quants pay for 4- or 6-bit sub-block scales; Q2_K and Q3_K have 4 and 8 levels.
/// - IQ4_NL/IQ4_XS: 16 levels, denser near zero, a little better than Q4_0/Q4_1.
const RMSE_BOUNDS: &[(GgmlType, f64)] = &[
    (GgmlType::F32, 0.0),
    (GgmlType::F16, 2.8e-4),    // 2.1e-4
    (GgmlType::BF16, 2.2e-3),   // 1.66e-3
    (GgmlType::Q4_0, 0.112),    // 0.0862
    (GgmlType::Q4_1, 0.102),    // 0.0781
    (GgmlType::Q5_0, 0.056),    // 0.0428
    (GgmlType::Q5_1, 0.050),    // 0.0378
    (GgmlType::Q8_0, 0.0070),   // 0.00537
    (GgmlType::Q8_1, 0.0070),   // 0.00537
    (GgmlType::Q2_K, 0.386),    // 0.2966
    (GgmlType::Q3_K, 0.196),    // 0.1508
    (GgmlType::Q4_K, 0.093),    // 0.0714
    (GgmlType::Q5_K, 0.047),    // 0.0361
    (GgmlType::Q6_K, 0.0231),   // 0.01775
    (GgmlType::Q8_K, 0.0092),   // 0.00702
    (GgmlType::IQ4_NL, 0.0991), // 0.0762
    (GgmlType::IQ4_XS, 0.0998), // 0.0768
];

/// Tolerance between a scalar dot product and the f64 dot of the dequantized operands,
/// relative to `Σ|x̂·ŷ|`. Integer block sums are exact; what remains is the f32 scaling and
/// accumulation (≈ 2⁻²⁴ per operation over a few hundred terms). Measured: at most 1.9e-8.
const DOT_VS_DEQUANT_REL_TOL: f64 = 1e-6;
/// The same for the `_1` formats, whose minimum term uses Q8_1's `s = d·Σq` stored as f16
/// (relative error up to 2⁻¹¹ of that term in every block) rather than the dequantized values.
/// Measured: 1.5e-5 (Q4_1), 9.2e-7 (Q5_1).
const DOT_VS_DEQUANT_REL_TOL_Q8_1: f64 = 1e-4;

fn rmse_bound(ty: GgmlType) -> f64 {
    RMSE_BOUNDS
        .iter()
        .find(|r| r.0 == ty)
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("no bound for {ty}"))
}

fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let mut q = vec![0u8; row_bytes(ty, x.len()).expect("whole blocks")];
    quantize(ty, x, &mut q).expect("quantize");
    let mut out = vec![0f32; x.len()];
    dequantize(ty, &q, &mut out).expect("dequantize");
    out
}

#[test]
fn quantize_dequantize_error_is_bounded() {
    const ROWS: usize = 64;
    const N: usize = 4096;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    assert_eq!(RMSE_BOUNDS.len(), supported_types().count());
    let rows: Vec<Vec<f32>> = (0..ROWS)
        .map(|_| (0..N).map(|_| rng.normal()).collect())
        .collect();
    for ty in supported_types() {
        let mut err2 = 0.0f64;
        let mut sig2 = 0.0f64;
        for x in &rows {
            let y = round_trip(ty, x);
            for (&a, &b) in x.iter().zip(&y) {
                err2 += (f64::from(a) - f64::from(b)).powi(2);
                sig2 += f64::from(a).powi(2);
            }
        }
        let rel = (err2 / sig2).sqrt();
        println!("{ty}: relative RMSE {rel:.5} (bound {})", rmse_bound(ty));
        assert!(
            rel <= rmse_bound(ty),
            "{ty}: relative RMSE {rel} > {}",
            rmse_bound(ty)
        );
    }
}

/// Legacy formats have a simple worst case per value: half a step, or a whole step where the
/// largest value of the opposite sign is clamped (Q4_0, Q5_0), plus the f16 rounding of the
/// scale (relative 2⁻¹¹ of up to 127 steps) and of the minimum.
#[test]
fn legacy_max_error_per_block() {
    let mut rng = Rng(7);
    let cases: [(GgmlType, f64); 6] = [
        (GgmlType::Q4_0, 1.0 / 8.0),
        (GgmlType::Q4_1, 2.0 / 15.0 / 2.0),
        (GgmlType::Q5_0, 1.0 / 16.0),
        (GgmlType::Q5_1, 2.0 / 31.0 / 2.0),
        (GgmlType::Q8_0, 0.5 / 127.0),
        (GgmlType::Q8_1, 0.5 / 127.0),
    ];
    let x: Vec<f32> = (0..32 * 512).map(|_| rng.normal()).collect();
    for (ty, step_frac) in cases {
        let y = round_trip(ty, &x);
        for (xb, yb) in x.chunks_exact(32).zip(y.chunks_exact(32)) {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
            // Scale rounding: at most 2^-11 relative on d (≤ amax/step) times the quant, and on m.
            let bound = amax * (step_frac + 2.0 * 2f64.powi(-11)) * 1.0001;
            for (&a, &b) in xb.iter().zip(yb) {
                let e = (f64::from(a) - f64::from(b)).abs();
                assert!(e <= bound, "{ty}: |{a} − {b}| = {e} > {bound}");
            }
        }
    }
}

#[test]
fn dot_products_match_the_dequantized_operands() {
    let mut rng = Rng(42);
    const N: usize = 1024;
    for ty in supported_types() {
        let traits = type_traits(ty).expect("supported");
        let yt = traits.vec_dot_type;
        let x: Vec<f32> = (0..N).map(|_| rng.normal()).collect();
        let y: Vec<f32> = (0..N).map(|_| rng.normal()).collect();
        let mut xq = vec![0u8; row_bytes(ty, N).expect("blocks")];
        let mut yq = vec![0u8; row_bytes(yt, N).expect("blocks")];
        quantize(ty, &x, &mut xq).expect("quantize");
        from_float(yt, &y, &mut yq).expect("from_float");
        let (mut xd, mut yd) = (vec![0f32; N], vec![0f32; N]);
        dequantize(ty, &xq, &mut xd).expect("dequantize x");
        dequantize(yt, &yq, &mut yd).expect("dequantize y");
        let exact: f64 = xd
            .iter()
            .zip(&yd)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let scale: f64 = xd
            .iter()
            .zip(&yd)
            .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
            .sum();
        let ours = f64::from(vec_dot(ty, N, &xq, &yq).expect("vec_dot"));
        let tol = if yt == GgmlType::Q8_1 {
            DOT_VS_DEQUANT_REL_TOL_Q8_1
        } else {
            DOT_VS_DEQUANT_REL_TOL
        };
        let rel = (ours - exact).abs() / scale;
        println!("{ty}·{yt}: |dot − dequantized dot|/Σ|xy| = {rel:.3e}");
        assert!(rel <= tol, "{ty}: {ours} vs {exact}, rel {rel:e} > {tol:e}");
    }
}

#[test]
fn wrong_lengths_and_types_are_errors_and_leave_output_untouched() {
    for ty in supported_types() {
        let bs = ty.block_size() as usize;
        let ts = ty.type_size() as usize;
        if bs > 1 {
            // A row that is not a whole number of blocks.
            let x = vec![0.5f32; bs + 1];
            let mut out = vec![0xaau8; 2 * ts];
            assert_eq!(
                quantize(ty, &x, &mut out),
                Err(QuantError::NotWholeBlocks { ty, n: bs + 1 })
            );
            assert!(out.iter().all(|&b| b == 0xaa), "{ty}: output touched");
            let mut f = vec![7.0f32; bs + 1];
            assert!(matches!(
                dequantize(ty, &vec![0u8; 2 * ts], &mut f),
                Err(QuantError::NotWholeBlocks { .. })
            ));
            assert!(f.iter().all(|&v| v == 7.0));
            assert!(matches!(
                row_bytes(ty, 2 * bs - 1),
                Err(QuantError::NotWholeBlocks { .. })
            ));
        }
        // Byte buffers one short or one long.
        let x = vec![0.25f32; 2 * bs];
        for len in [2 * ts - 1, 2 * ts + 1] {
            let mut out = vec![0xaau8; len];
            assert!(matches!(
                quantize(ty, &x, &mut out),
                Err(QuantError::LengthMismatch { what: "output", .. })
            ));
            assert!(out.iter().all(|&b| b == 0xaa));
            let mut f = vec![7.0f32; 2 * bs];
            assert!(matches!(
                dequantize(ty, &vec![0u8; len], &mut f),
                Err(QuantError::LengthMismatch { what: "input", .. })
            ));
            assert!(f.iter().all(|&v| v == 7.0));
        }
        // vec_dot checks both operands against n.
        let yt = type_traits(ty).expect("supported").vec_dot_type;
        let n = 2 * bs.max(yt.block_size() as usize);
        let xq = vec![0u8; row_bytes(ty, n).expect("blocks")];
        let yq = vec![0u8; row_bytes(yt, n).expect("blocks")];
        assert_eq!(vec_dot(ty, n, &xq, &yq), Ok(0.0));
        assert!(matches!(
            vec_dot(ty, n, &xq, &yq[1..]),
            Err(QuantError::LengthMismatch { what: "y", .. })
        ));
        assert!(matches!(
            vec_dot(ty, n, &xq[1..], &yq),
            Err(QuantError::LengthMismatch { what: "x", .. })
        ));
    }
    // Types without kernels.
    for ty in [
        GgmlType::IQ2_XXS,
        GgmlType::TQ1_0,
        GgmlType::I32,
        GgmlType::F64,
    ] {
        let mut out = [0f32; 256];
        assert_eq!(
            dequantize(ty, &[0u8; 1024], &mut out),
            Err(QuantError::Unsupported { ty })
        );
        assert!(type_traits(ty).is_none());
    }
    // The error message names the type and the lengths.
    let e = quantize(GgmlType::Q4_0, &[0.0; 32], &mut [0u8; 17]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Q4_0 output buffer has length 17, expected 18"
    );
}

#[test]
fn extreme_inputs_never_panic() {
    const N: usize = 512;
    let mut rng = Rng(3);
    let mut inputs: Vec<(&str, Vec<f32>)> = vec![
        ("zeros", vec![0.0; N]),
        ("negative zeros", vec![-0.0; N]),
        ("constant", vec![0.75; N]),
        ("large", (0..N).map(|_| rng.normal() * 1e30).collect()),
        ("all +1e30", vec![1e30; N]),
        ("all -1e30", vec![-1e30; N]),
        ("tiny", (0..N).map(|_| rng.normal() * 1e-30).collect()),
        ("subnormal", (0..N).map(|_| rng.normal() * 1e-40).collect()),
        ("f32::MAX", vec![f32::MAX; N]),
        (
            "±f32::MAX",
            (0..N)
                .map(|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX })
                .collect(),
        ),
    ];
    let mut mixed: Vec<f32> = (0..N).map(|_| rng.normal() * 1e-30).collect();
    mixed[5] = 1e30;
    mixed[300] = -1e30;
    inputs.push(("tiny with two huge", mixed));
    let mut one_hot = vec![0.0f32; N];
    one_hot[17] = -3.0;
    inputs.push(("one non-zero", one_hot));

    for ty in supported_types() {
        let yt = type_traits(ty).expect("supported").vec_dot_type;
        for (what, x) in &inputs {
            let mut q = vec![0u8; row_bytes(ty, N).expect("blocks")];
            quantize(ty, x, &mut q).expect("quantize");
            let mut d = vec![0f32; N];
            dequantize(ty, &q, &mut d).expect("dequantize");
            let mut yq = vec![0u8; row_bytes(yt, N).expect("blocks")];
            from_float(yt, x, &mut yq).expect("from_float");
            let _ = vec_dot(ty, N, &q, &yq).expect("vec_dot");
            if x.iter().all(|&v| v == 0.0) {
                assert!(
                    d.iter().all(|&v| v == 0.0),
                    "{ty} {what}: zeros do not stay zeros"
                );
            }
            if *what == "one non-zero" {
                // The lone value is its block's extreme, which every format keeps within a
                // small fraction of itself.
                assert!((d[17] + 3.0).abs() < 0.2, "{ty}: {}", d[17]);
            }
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(11);
    for ty in supported_types() {
        let yt = type_traits(ty).expect("supported").vec_dot_type;
        let n = 512;
        for _ in 0..50 {
            let xq = rng.bytes(row_bytes(ty, n).expect("blocks"));
            let yq = rng.bytes(row_bytes(yt, n).expect("blocks"));
            let mut d = vec![0f32; n];
            dequantize(ty, &xq, &mut d).expect("dequantize");
            let _ = vec_dot(ty, n, &xq, &yq).expect("vec_dot");
        }
    }
}
