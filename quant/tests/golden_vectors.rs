//! Golden vectors from ggml itself (`testdata/golden/quant_vectors.json`, see testdata/README.md):
//! for 14 weight types, two cases of 512 values each.
//!
//! Per type and case:
//! - our reference quantization of `x` equals ggml's `quantized_hex` byte for byte;
//! - our dequantization of those bytes equals ggml's `dequantized` bit for bit;
//! - our conversion of `y` to the partner format equals ggml's CPU `from_float`
//!   (`y_quantized_hex`) byte for byte;
//! - our scalar dot product is within [`VEC_DOT_REL_TOL`] of ggml's CPU (SIMD) `vec_dot`, and
//!   within the activation-quantization error bound of the f64 dot of dequantized `x` with `y`.
//!
//! Run with `--nocapture` to see the measured dot-product differences.

use eddy_quant::{GgmlType, dequantize, from_float, quantize, row_bytes, type_traits, vec_dot};
use serde_json::Value;

/// Tolerance between our scalar dot product and ggml's CPU `vec_dot`, relative to `Σ|x_i·y_i|`
/// (the scale of the rounding error; a plain relative error would blow up near cancellation).
/// Both compute the same integer block sums exactly and differ only in how the per-block f32
/// terms are accumulated: ggml's AVX2/AVX-512 kernels use FMA and 8 or 16 lanes, ours follow
/// ggml's generic C order. That is a handful of f32 roundings (2⁻²⁴ ≈ 6e-8 each) of partial
/// sums bounded by `Σ|x·y|`. Measured on these vectors: at most 5.7e-8 (Q4_1 case 1), zero for
/// several types; 1e-6 leaves a margin of about 18 without hiding a wrong scale or a lost block,
/// which would be off by far more than that.
const VEC_DOT_REL_TOL: f64 = 1e-6;

fn golden_path() -> std::path::PathBuf {
    match std::env::var_os("EDDY_GOLDEN_DIR") {
        Some(d) => std::path::PathBuf::from(d).join("quant_vectors.json"),
        None => std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/golden/quant_vectors.json"
        )),
    }
}

fn load() -> Vec<Value> {
    let path = golden_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Value::Array(v)) => v,
        _ => panic!("{} is not a JSON array", path.display()),
    }
}

fn ggml_type(name: &str) -> GgmlType {
    let upper = name.to_ascii_uppercase();
    GgmlType::all()
        .find(|t| t.name() == upper)
        .unwrap_or_else(|| panic!("unknown type {name}"))
}

fn floats(v: &Value, key: &str) -> Vec<f32> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn hex(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key].as_str().unwrap_or_else(|| panic!("{key} missing"));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn first_diff(a: &[u8], b: &[u8], block: usize) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => {
            let n = a.iter().zip(b).filter(|(x, y)| x != y).count();
            format!(
                "{n} bytes differ, first at byte {i} (block {}, offset {}): ours {:02x}, ggml {:02x}",
                i / block,
                i % block,
                a[i],
                b[i]
            )
        }
        None => format!("lengths {} vs {}", a.len(), b.len()),
    }
}

/// Per case: what was measured, for the report.
struct Measured {
    case: u64,
    ours: f32,
    ggml: f32,
    rel_to_abs_sum: f64,
}

/// Runs every check for one type; panics with all failures listed.
fn check_type(name: &str) {
    let all = load();
    let entries: Vec<&Value> = all.iter().filter(|e| e["type"] == name).collect();
    assert_eq!(entries.len(), 2, "{name}: expected two cases");
    let ty = ggml_type(name);
    let traits = type_traits(ty).expect("supported");
    let mut failures = Vec::new();
    let mut measured = Vec::new();
    for e in entries {
        let case = e["case"].as_u64().unwrap_or(0);
        let n = e["n"].as_u64().expect("n") as usize;
        assert_eq!(e["block_size"].as_u64(), Some(u64::from(ty.block_size())));
        assert_eq!(e["type_size"].as_u64(), Some(u64::from(ty.type_size())));
        let x = floats(e, "x");
        let y = floats(e, "y");
        let want_q = hex(e, "quantized_hex");
        let want_deq = floats(e, "dequantized");
        let want_yq = hex(e, "y_quantized_hex");
        let yt = ggml_type(e["vec_dot_type"].as_str().expect("vec_dot_type"));
        assert_eq!(yt, traits.vec_dot_type, "{name}: partner type");
        assert_eq!(x.len(), n);

        // 1. Reference quantization, byte for byte.
        let mut q = vec![0u8; row_bytes(ty, n).expect("whole blocks")];
        quantize(ty, &x, &mut q).expect("quantize");
        if q != want_q {
            failures.push(format!(
                "case {case}: quantize: {}",
                first_diff(&q, &want_q, ty.type_size() as usize)
            ));
        }

        // 2. Dequantization of ggml's bytes, bit for bit.
        let mut deq = vec![0f32; n];
        dequantize(ty, &want_q, &mut deq).expect("dequantize");
        let bad: Vec<usize> = (0..n)
            .filter(|&i| deq[i].to_bits() != want_deq[i].to_bits())
            .collect();
        if let Some(&i) = bad.first() {
            failures.push(format!(
                "case {case}: dequantize: {} values differ, first at {i}: ours {:e}, ggml {:e}",
                bad.len(),
                deq[i],
                want_deq[i]
            ));
        }

        // 3. Activation conversion to the partner, byte for byte.
        let mut yq = vec![0u8; row_bytes(yt, n).expect("whole blocks")];
        from_float(yt, &y, &mut yq).expect("from_float");
        if yq != want_yq {
            failures.push(format!(
                "case {case}: from_float({yt}): {}",
                first_diff(&yq, &want_yq, yt.type_size() as usize)
            ));
        }

        // 4. Dot product on ggml's bytes (so that a quantizer failure does not hide this one).
        let ours = vec_dot(ty, n, &want_q, &want_yq).expect("vec_dot");
        let ggml = e["vec_dot"].as_f64().expect("vec_dot") as f32;
        let abs_sum: f64 = want_deq
            .iter()
            .zip(&y)
            .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
            .sum();
        let rel = (f64::from(ours) - f64::from(ggml)).abs() / abs_sum;
        if rel > VEC_DOT_REL_TOL {
            failures.push(format!(
                "case {case}: vec_dot: ours {ours}, ggml {ggml}, |diff|/Σ|xy| = {rel:e}"
            ));
        }
        measured.push(Measured {
            case,
            ours,
            ggml,
            rel_to_abs_sum: rel,
        });

        // 5. Close to the exact dot: the only approximation is the activation quantization, so
        // |ours − Σ x·y| ≤ Σ|x|·|ŷ − y| (ŷ: dequantized activations) plus, for Q8_1, the rounding
        // of its stored sum `s`, plus f32 rounding.
        let f64_dot = e["dot_dequant_f64"].as_f64().expect("dot_dequant_f64");
        let mut yhat = vec![0f32; n];
        dequantize(yt, &want_yq, &mut yhat).expect("dequantize y");
        let mut bound: f64 = want_deq
            .iter()
            .zip(y.iter().zip(&yhat))
            .map(|(&a, (&b, &bh))| f64::from(a).abs() * (f64::from(bh) - f64::from(b)).abs())
            .sum();
        if yt == GgmlType::Q8_1 {
            bound += q8_1_sum_rounding(ty, &want_q, &want_yq);
        }
        bound += 1e-5 * abs_sum;
        let err = (f64::from(ours) - f64_dot).abs();
        if err > bound {
            failures.push(format!(
                "case {case}: vec_dot {ours} vs f64 dot {f64_dot}: |diff| {err:e} > bound {bound:e}"
            ));
        }
    }
    for m in &measured {
        println!(
            "{name} case {}: vec_dot ours {:.9} ggml {:.9} |diff| {:.3e} |diff|/Σ|xy| {:.3e}",
            m.case,
            m.ours,
            m.ggml,
            (m.ours - m.ggml).abs(),
            m.rel_to_abs_sum
        );
    }
    assert!(failures.is_empty(), "{name}:\n  {}", failures.join("\n  "));
}

/// `Σ_blocks |m_x|·|s_y − d_y·Σq_y|`: the part of a `_1` × Q8_1 dot product that comes from
/// Q8_1 storing `d·Σq` rounded to f16 (and from `d` itself being rounded in the other term).
fn q8_1_sum_rounding(ty: GgmlType, xq: &[u8], yq: &[u8]) -> f64 {
    let f16 = |b: &[u8]| f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32());
    let xs = ty.type_size() as usize;
    let mut total = 0.0;
    for (bx, by) in xq.chunks_exact(xs).zip(yq.chunks_exact(36)) {
        let m = f16(&bx[2..4]);
        let d = f16(&by[0..2]);
        let s = f16(&by[2..4]);
        let sum_q: f64 = by[4..].iter().map(|&q| f64::from(q as i8)).sum();
        total += m.abs() * (s - d * sum_q).abs();
    }
    total
}

macro_rules! golden {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_type($name);
            }
        )*
    };
}

golden! {
    golden_f16 => "f16",
    golden_bf16 => "bf16",
    golden_q4_0 => "q4_0",
    golden_q4_1 => "q4_1",
    golden_q5_0 => "q5_0",
    golden_q5_1 => "q5_1",
    golden_q8_0 => "q8_0",
    golden_q2_k => "q2_K",
    golden_q3_k => "q3_K",
    golden_q4_k => "q4_K",
    golden_q5_k => "q5_K",
    golden_q6_k => "q6_K",
    golden_iq4_nl => "iq4_nl",
    golden_iq4_xs => "iq4_xs",
}

/// The file covers exactly the 14 types above.
#[test]
fn golden_file_covers_fourteen_types() {
    let all = load();
    let mut names: Vec<&str> = all.iter().filter_map(|e| e["type"].as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 14, "{names:?}");
}

/// ggml's CPU backend converts activations with its own Q8_0/Q8_1 code (multiplier 127/amax,
/// nearest-even rounding), not with the reference quantizer (1/d, ties away from zero); the
/// per-type tests check our CPU-path conversion against `y_quantized_hex`. This one measures
/// how much the file can tell the two apart: it counts the activation blocks where the
/// reference quantizer would differ from the file. (On these random vectors: none, since no
/// value lands on a rounding tie; `legacy`'s unit tests cover the tie cases.)
#[test]
fn activation_reference_vs_cpu_path_on_golden_vectors() {
    let all = load();
    let mut blocks = 0;
    let mut differ = 0;
    for e in &all {
        let yt = ggml_type(e["vec_dot_type"].as_str().expect("vec_dot_type"));
        if yt != GgmlType::Q8_0 && yt != GgmlType::Q8_1 {
            continue;
        }
        let y = floats(e, "y");
        let want = hex(e, "y_quantized_hex");
        let mut reference = vec![0u8; want.len()];
        quantize(yt, &y, &mut reference).expect("quantize");
        let bs = yt.type_size() as usize;
        for (a, b) in reference.chunks_exact(bs).zip(want.chunks_exact(bs)) {
            blocks += 1;
            differ += usize::from(a != b);
        }
    }
    println!("Q8_0/Q8_1 activation blocks: {blocks}, reference quantizer differs in {differ}");
    assert_eq!(blocks, 192);
}

/// The rows of `scripts/ggml-fused-hashes.c` (4096 blocks of 256 weights; the same generator, so
/// the same bits).
fn fused_rows() -> Vec<f32> {
    const SCALE: [f32; 4] = [0.02, 1.0, 1e-3, 50.0];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut x = vec![0.0f32; 4096 * 256];
    for (b, block) in x.chunks_exact_mut(256).enumerate() {
        for (i, v) in block.iter_mut().enumerate() {
            let u = (next() >> 40) as f32 / 16_777_216.0;
            let t = 2.0 * u - 1.0;
            *v = t * t * t * SCALE[b % 4];
            if b % 5 == 4 {
                *v = ((i % 13) as i32 - 6) as f32 * 0.125;
            }
            if b == 7 {
                *v = 0.0;
            }
            if b == 11 {
                *v = if i == 100 { 3.0 } else { 0.0 };
            }
        }
    }
    x
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `quantize_fused` writes the bytes of ggml's reference quantizers as llama.cpp's x86-64 GCC
/// build compiles them (FMA contracted; `tools/llama-bench`'s libggml-base, the one its
/// llama-quantize links): FNV-1a hashes printed by `scripts/ggml-fused-hashes.c` on the same
/// rows. The only check of Q2_K against llama.cpp (no model here has a Q2_K tensor), and of
/// Q4_1 and IQ4_XS in CI. The plain quantizers differ from these hashes where the rows put a
/// rounding on a tie (printed with `--nocapture`).
#[test]
fn fused_quantizers_match_llama_cpps_gcc_build() {
    let want: [(GgmlType, u64); 11] = [
        (GgmlType::Q4_0, 0xb0ba_4f37_f1ad_e387),
        (GgmlType::Q4_1, 0x4ed0_4ce5_2655_abbd),
        (GgmlType::Q5_0, 0xf64f_adef_67a2_7c3e),
        (GgmlType::Q5_1, 0x13d3_eec5_aff4_175b),
        (GgmlType::Q2_K, 0x5e23_b1d4_aee7_94e7),
        (GgmlType::Q3_K, 0xd28b_6435_11ce_9085),
        (GgmlType::Q4_K, 0xe31b_242a_a725_2856),
        (GgmlType::Q5_K, 0x2182_ce99_7dde_1879),
        (GgmlType::Q6_K, 0x9a04_a16f_0538_d56d),
        (GgmlType::IQ4_NL, 0x8663_ae9d_90ab_5782),
        (GgmlType::IQ4_XS, 0x2457_740c_d1c9_1989),
    ];
    let x = fused_rows();
    for (ty, hash) in want {
        let mut fused = vec![0u8; row_bytes(ty, x.len()).unwrap()];
        eddy_quant::quantize_fused(ty, &x, &mut fused).unwrap();
        let mut plain = vec![0u8; fused.len()];
        quantize(ty, &x, &mut plain).unwrap();
        let block = ty.type_size() as usize;
        let differ = plain
            .chunks(block)
            .zip(fused.chunks(block))
            .filter(|(p, f)| p != f)
            .count();
        println!("{ty}: the plain quantizer differs in {differ} blocks");
        assert_eq!(
            fnv1a(&fused),
            hash,
            "{ty}: quantize_fused differs from llama.cpp's build"
        );
    }
}
