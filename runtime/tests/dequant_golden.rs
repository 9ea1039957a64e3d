//! Dequantization of real model tensors against `../shared/golden/dequant.json`, written with
//! the `gguf` Python package's own (numpy) dequantizers: element count, shape, sampled values
//! and the sums Σx, Σ|x|, Σx².
//!
//! **What is exact.** gguf-py computes every format in f32 with the same operations in the
//! same order as ggml's `dequantize_row_*` (`x·d` for Q8_0; `(d·q) + m` for Q4_1; `d·q` for
//! Q5_0; `(d·sc)·q − dmin·m` for Q4_K; `(d·sc)·q` for Q6_K), each numpy operation rounded
//! separately (no fused multiply-add), and so do we. The sampled values are therefore compared
//! bit for bit.
//!
//! **What is not.** The sums are f64 sums over up to 1.7·10⁸ values, computed by the Python
//! side in its own order; we sum in file order, row by row. Each f64 addition is off by at most
//! 2⁻⁵³ relative, so the difference is bounded by `n·2⁻⁵³·Σ|x|` (1.9·10⁻⁸ relative for the
//! largest tensor). Measured: Σx and Σ|x| come out identical (dequantized values have at most
//! 19 significant bits, so these f64 sums are exact), Σx² differs by up to 1.7·10⁻¹⁰ (Gemma 3's
//! `token_embd`). [`SUM_REL_TOL`] = 10⁻⁹ lies between the measurement and the worst case; Σx
//! is compared relative to Σ|x| because it can cancel.

mod common;

use eddy::gguf::Gguf;
use eddy_quant::{dequantize, row_bytes};
use serde_json::Value;

/// Relative tolerance of the f64 sums (see the module comment): 10⁻⁹ of Σ|x| for Σx, of the
/// value itself for Σ|x| and Σx².
const SUM_REL_TOL: f64 = 1e-9;

fn golden() -> Value {
    let path = common::golden("dequant.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("dequant.json is JSON")
}

/// Checks every tensor listed for `key` in `model_file` and prints the measured sum
/// differences.
fn check_model(key: &str, model_file: &str) {
    let Some(path) = common::model(model_file) else {
        return;
    };
    let g = Gguf::open(&path).expect("open model");
    let golden = golden();
    let entries = golden[key].as_array().expect("model entry");
    assert!(!entries.is_empty());
    let mut failures = Vec::new();
    for e in entries {
        let name = e["tensor"].as_str().expect("tensor name");
        let t = g
            .tensor(name)
            .unwrap_or_else(|| panic!("{key}: no tensor {name}"));
        assert_eq!(
            t.ty.name(),
            e["type"].as_str().expect("type"),
            "{name}: type"
        );
        let shape: Vec<u64> = e["shape_gguf_order"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|v| v.as_u64().expect("dim"))
            .collect();
        assert_eq!(t.dims, &shape[..], "{name}: shape");
        let n = e["n_elements"].as_u64().expect("n_elements");
        assert_eq!(t.n_elements, n, "{name}: element count");

        // Dequantize row by row (the largest tensor would need 670 MB in one piece).
        let row = t.dims[0] as usize;
        let rb = row_bytes(t.ty, row).expect("rows are whole blocks");
        assert_eq!(
            t.data.len() as u64,
            n / row as u64 * rb as u64,
            "{name}: data size"
        );
        let mut samples: Vec<(u64, f64)> = e["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|s| (s[0].as_u64().expect("index"), s[1].as_f64().expect("value")))
            .collect();
        samples.sort_by_key(|s| s.0);
        let mut next = 0;
        let mut out = vec![0f32; row];
        let (mut sum, mut sum_abs, mut sum_sq) = (0f64, 0f64, 0f64);
        let mut count = 0u64;
        for (r, bytes) in t.data.chunks_exact(rb).enumerate() {
            dequantize(t.ty, bytes, &mut out).expect("dequantize");
            let base = (r * row) as u64;
            for &v in &out {
                let v = f64::from(v);
                sum += v;
                sum_abs += v.abs();
                sum_sq += v * v;
            }
            count += row as u64;
            while next < samples.len() && samples[next].0 < base + row as u64 {
                let (i, want) = samples[next];
                let got = out[(i - base) as usize];
                // The file holds f32 values written exactly; serde_json's default parser can be
                // one f64 ulp off, which rounding to f32 undoes, so the comparison is bitwise.
                if got.to_bits() != (want as f32).to_bits() {
                    failures.push(format!("{name}[{i}]: ours {got:e}, gguf-py {want:e}"));
                }
                next += 1;
            }
        }
        assert_eq!(count, n, "{name}: dequantized count");
        assert_eq!(next, samples.len(), "{name}: sample index past the end");

        let want_sum = e["sum"].as_f64().expect("sum");
        let want_abs = e["sum_abs"].as_f64().expect("sum_abs");
        let want_sq = e["sum_sq"].as_f64().expect("sum_sq");
        let d_sum = (sum - want_sum).abs() / want_abs;
        let d_abs = (sum_abs - want_abs).abs() / want_abs;
        let d_sq = (sum_sq - want_sq).abs() / want_sq;
        println!(
            "{key} {name} ({}, {n} values, {} samples): Σx {d_sum:.1e}, Σ|x| {d_abs:.1e}, Σx² {d_sq:.1e} (relative differences)",
            t.ty,
            samples.len()
        );
        for (what, d) in [("sum", d_sum), ("sum_abs", d_abs), ("sum_sq", d_sq)] {
            if d > SUM_REL_TOL {
                failures.push(format!("{name}: {what} differs by {d:e} (relative)"));
            }
        }
    }
    assert!(failures.is_empty(), "{key}:\n  {}", failures.join("\n  "));
}

#[test]
fn smollm2_tensors_dequantize_like_gguf_py() {
    check_model("smollm2", common::SMOLLM2);
}

#[test]
fn gemma3_tensors_dequantize_like_gguf_py() {
    check_model("gemma3", common::GEMMA3);
}
