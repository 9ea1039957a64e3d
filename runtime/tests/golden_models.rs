//! SmolLM2 (arch `llama`) against llama.cpp's exact path (`../shared/golden/`).
//!
//! Tolerances come from the golden README: llama.cpp's own batched and sequential evaluations
//! differ by up to ~0.8 logits and flip the argmax where the top-2 gap is below ~0.18, so
//! argmax agreement is asserted where the gap is at least 0.25.
//!
//! How close can two correct implementations be? Measured on `logits_smollm2.json` (2026-11-29):
//! - position 0 (no attention mixing: only matmuls, norms, activation quantization) agrees with
//!   llama.cpp to 4e-6: the quantized matmul path reproduces ggml's arithmetic;
//! - changing nothing but the summation order of the f32 dot products in our own attention
//!   (8 accumulators vs one running sum) moves the recorded top-5 logits by a median of 0.124
//!   and at most 0.59; storing V in f16 instead of f32 moves position 0 by up to 0.21. Every
//!   ulp-level difference flips some int8 activation quant and the flips compound over 30
//!   layers: that is this quantized model's noise floor for float-order differences.
//! - against llama.cpp (whose attention sums in tinyBLAS/AVX-512 order) the median is 0.13-0.14,
//!   the max 0.47-0.57: at that floor. The first guess of a 0.1 median is below it, so
//!   the median bound here is 0.2 (the max bound stays 1.0, the argmax rule is unchanged).

mod common;

use eddy::{Context, ContextParams, KvType, Model};
use serde_json::Value as Json;

fn load_json(file: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(common::golden(file)).unwrap()).unwrap()
}

fn ids_of(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn argmax(x: &[f32]) -> usize {
    eddy::sampler::argmax(x) as usize
}

fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// Evaluates `ids` in one batch with logits for every position.
fn all_logits(model: &Model, ids: &[u32], kv_type: KvType) -> Vec<Vec<f32>> {
    let mut ctx = Context::new(
        model,
        ContextParams {
            n_sink: 0,
            n_window: ids.len(),
            n_batch: ids.len(),
            kv_type,
            logits_all: true,
            ..Default::default()
        },
    )
    .unwrap();
    ctx.decode(ids).unwrap();
    (0..ids.len())
        .map(|i| ctx.logits_ith(i).unwrap().to_vec())
        .collect()
}

#[test]
fn logits_match_llama_cpp() {
    check_logits(common::SMOLLM2, "logits_smollm2.json", 0.25);
}

/// Gemma 3 (SentencePiece, BOS, sliding-window layers, Q5_0/Q8_0/Q4_K/Q6_K weights). Measured
/// 2026-11-29: argmax equal wherever the gap >= 0.25, top-5 median 0.122, max 0.72, with
/// GELU computed through f16 as ggml's CPU backend does (exact GELU: one argmax flip at gap
/// 0.46). Argmax is asserted where the gap >= 0.5: the kernel tiers alone move this model's
/// logits by up to 0.75 (see `gemma3_teacher_forced_argmax_f32_kv`), and with the grouped-query
/// attention (each key converted once, f32ops dot) the argmax at position 11 (gap 0.459)
/// flips, while the top-5 median stays 0.128 and the max drops to 0.54.
#[test]
fn gemma3_logits_match_llama_cpp() {
    check_logits(common::GEMMA3, "logits_gemma3.json", 0.5);
}

fn check_logits(model_file: &str, golden_file: &str, min_gap: f64) {
    let Some(path) = common::model(model_file) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let golden = load_json(golden_file);
    let ids = ids_of(&golden["ids"]);
    let logits = all_logits(&model, &ids, KvType::F32);
    let mut diffs = Vec::new();
    let mut lse_diffs = Vec::new();
    for p in golden["positions"].as_array().unwrap() {
        let pos = p["pos"].as_u64().unwrap() as usize;
        let ours = &logits[pos];
        let top = p["top"].as_array().unwrap();
        let gap = top[0][1].as_f64().unwrap() - top[1][1].as_f64().unwrap();
        if gap >= min_gap {
            assert_eq!(
                argmax(ours) as u64,
                top[0][0].as_u64().unwrap(),
                "argmax at position {pos} (gap {gap})"
            );
        }
        for t in &top[..5] {
            let id = t[0].as_u64().unwrap() as usize;
            diffs.push((ours[id] - t[1].as_f64().unwrap() as f32).abs());
        }
        lse_diffs.push((logsumexp(ours) - p["logsumexp"].as_f64().unwrap()).abs() as f32);
    }
    let max = diffs.iter().copied().fold(0f32, f32::max);
    let med = median(&mut diffs);
    let lse_max = lse_diffs.iter().copied().fold(0f32, f32::max);
    eprintln!(
        "top-5 logit |diff|: median {med:.4}, max {max:.4}; logsumexp max |diff| {lse_max:.4}"
    );
    assert!(med <= 0.2, "median {med}");
    assert!(max <= 1.0, "max {max}");
}

struct Greedy {
    prompt_ids: Vec<u32>,
    generated: Vec<u32>,
    gaps: Vec<f64>,
}

fn greedy_cases_of(file: &str) -> Vec<Greedy> {
    std::fs::read_to_string(common::golden(file))
        .unwrap()
        .lines()
        .map(|l| {
            let j: Json = serde_json::from_str(l).unwrap();
            Greedy {
                prompt_ids: ids_of(&j["prompt_ids"]),
                generated: ids_of(&j["generated_ids"]),
                gaps: j["top2_gap"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g.as_f64().unwrap())
                    .collect(),
            }
        })
        .collect()
}

/// Prompt + the golden continuation in one pass: at every step whose top-2 gap is at least
/// `min_gap`, our argmax must be the golden token, or the golden token must be within 0.05 of
/// our best logit (a near-tie in our evaluation: seen once in 280 steps, at golden gap 0.268,
/// ours 23.444 vs 23.424; logit differences at this model's noise floor reach 0.59, see the
/// top of this file).
fn teacher_forced(kv_type: KvType, min_gap: f64) {
    teacher_forced_on(common::SMOLLM2, "greedy_smollm2.jsonl", kv_type, min_gap);
}

/// Gemma 3's noise floor is higher than SmolLM2's. Measured with `eddy logits --ids` on the
/// prompt `[2, 105, 2364, 107, …]` plus 8 golden tokens, the same code with only the kernel
/// tier changed (EDDY_QUANT_TIER=scalar / avx2 / avx512, which differ only in the order of f32
/// sums inside the dot products): position 0 (BOS alone) moves by up to 0.06, position 15 by
/// 0.75 (top logit 6.495 / 5.744 / 6.247), and at step 7 each tier picks a different token
/// (golden gap 0.291). The mechanism: the activations are re-quantized to 8 bits before every
/// product, with a step of amax/127 that Gemma's large outliers make coarse, so a change in the
/// last bit of an input flips roundings and moves outputs by whole steps. Steps whose golden
/// gap is below 0.5 are therefore not a test of correctness for this model.
#[test]
fn gemma3_teacher_forced_argmax_f32_kv() {
    teacher_forced_on(common::GEMMA3, "greedy_gemma3.jsonl", KvType::F32, 0.5);
}

fn teacher_forced_on(model_file: &str, greedy_file: &str, kv_type: KvType, min_gap: f64) {
    let Some(path) = common::model(model_file) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let mut checked = 0;
    let mut flips: Vec<String> = Vec::new();
    for case in greedy_cases_of(greedy_file) {
        let mut ids = case.prompt_ids.clone();
        ids.extend(&case.generated);
        let logits = all_logits(&model, &ids, kv_type);
        let p = case.prompt_ids.len();
        for (step, (&want, &gap)) in case.generated.iter().zip(&case.gaps).enumerate() {
            if gap >= min_gap {
                let row = &logits[p + step - 1];
                let got = argmax(row) as u32;
                // A flip is tolerated only where our own evaluation is a near-tie between the
                // same two tokens (golden token within 0.05 of our best): both
                // implementations then agree on the ranking up to the noise floor.
                if got != want && row[got as usize] - row[want as usize] >= 0.05 {
                    flips.push(format!(
                        "step {step} of prompt {:?}…: golden {want} (gap {gap:.3}), ours {got}; \
                         our logits {:.3} (golden id) vs {:.3} (ours)",
                        &case.prompt_ids[..4],
                        row[want as usize],
                        row[got as usize]
                    ));
                }
                checked += 1;
            }
        }
    }
    eprintln!(
        "{kv_type:?}: {checked} teacher-forced steps with gap >= {min_gap}, {} differ",
        flips.len()
    );
    assert!(flips.is_empty(), "{kv_type:?}: {flips:#?}");
}

#[test]
fn teacher_forced_argmax_f32_kv() {
    teacher_forced(KvType::F32, 0.25);
}

#[test]
fn teacher_forced_argmax_f16_kv() {
    teacher_forced(KvType::F16, 0.5);
}

/// Free-running greedy decoding, one token at a time: equal to llama.cpp's continuation at
/// least up to the first near-tie (top-2 gap < 0.25).
#[test]
fn free_running_greedy_matches_until_first_near_tie() {
    free_running_greedy_on(common::SMOLLM2, "greedy_smollm2.jsonl");
}

fn free_running_greedy_on(model_file: &str, greedy_file: &str) {
    let Some(path) = common::model(model_file) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    for case in greedy_cases_of(greedy_file) {
        let mut ctx = Context::new(
            &model,
            ContextParams {
                n_window: 128,
                kv_type: KvType::F32,
                ..Default::default()
            },
        )
        .unwrap();
        ctx.decode(&case.prompt_ids).unwrap();
        let sure = case
            .gaps
            .iter()
            .position(|&g| g < 0.25)
            .unwrap_or(case.gaps.len());
        let mut ours = Vec::new();
        for _ in 0..=sure.min(case.generated.len() - 1) {
            let next = argmax(ctx.logits()) as u32;
            ours.push(next);
            ctx.decode(&[next]).unwrap();
        }
        assert_eq!(
            &ours[..sure],
            &case.generated[..sure],
            "prompt {:?}: first near-tie at step {sure}",
            case.prompt_ids
        );
        let same = ours
            .iter()
            .zip(&case.generated)
            .take_while(|(a, b)| a == b)
            .count();
        eprintln!(
            "prompt of {} tokens: {same} tokens equal, first near-tie at step {sure}",
            case.prompt_ids.len()
        );
    }
}

/// Batched prefill against token-by-token decoding. Batches of fewer than 8 tokens run the
/// per-token arithmetic and give the same bits. From 8 tokens on, SmolLM2's Q4_1 weights go
/// through the packed-panel kernels (`eddy_quant::panel`, bit-exact against their reference
/// there), which add the same integer block products in another f32 order. Through 30 layers of
/// 8-bit activation quantization such rounding differences grow to the model's noise floor:
/// the scalar and AVX2 `vec_dot`s, which differ only in f32 order too, give top-5 log-probs
/// 0.057 apart (median) and up to 0.52 on a 23-token prompt (`eddy logits --top 5` with
/// `EDDY_QUANT_TIER`). Measured 2026-11-29 here, batched vs token by token over this 34-token
/// prompt, both K/V types: KL divergence at most 0.0107, top-5 log-probs at most 0.43 apart,
/// argmax equal wherever the top two are 0.5 apart. The bounds leave headroom above that;
/// a wrong block, scale, row or column moves logits by whole units and the distribution with
/// them.
#[test]
fn batched_prefill_agrees_with_token_by_token() {
    batched_vs_token_by_token(common::SMOLLM2, "greedy_smollm2.jsonl", 3);
}

fn batched_vs_token_by_token(model_file: &str, greedy_file: &str, case: usize) {
    let Some(path) = common::model(model_file) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let case = &greedy_cases_of(greedy_file)[case];
    let ids = &case.prompt_ids;
    let params = |kv_type| ContextParams {
        n_sink: 0,
        n_window: ids.len(),
        kv_type,
        ..Default::default()
    };
    for kv_type in [KvType::F16, KvType::F32] {
        let batched = all_logits(&model, ids, kv_type);
        let mut ctx = Context::new(&model, params(kv_type)).unwrap();
        let (mut worst_kl, mut worst_top) = (0f64, 0f64);
        for (i, &t) in ids.iter().enumerate() {
            ctx.decode(&[t]).unwrap();
            let (a, b) = (ctx.logits(), &batched[i][..]);
            let (la, lb) = (logsumexp(a), logsumexp(b));
            let kl: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| {
                    let (px, py) = (x as f64 - la, y as f64 - lb);
                    px.exp() * (px - py)
                })
                .sum();
            let mut top: Vec<usize> = (0..a.len()).collect();
            top.sort_by(|&p, &q| a[q].total_cmp(&a[p]));
            let top_diff = top[..5]
                .iter()
                .map(|&t| ((a[t] as f64 - la) - (b[t] as f64 - lb)).abs())
                .fold(0.0, f64::max);
            assert!(kl <= 0.03, "{kv_type:?} position {i}: KL {kl}");
            assert!(
                top_diff <= 0.6,
                "{kv_type:?} position {i}: top-5 log-probs differ by {top_diff}"
            );
            if a[top[0]] - a[top[1]] >= 0.5 {
                assert_eq!(argmax(b), top[0], "{kv_type:?} position {i}");
            }
            worst_kl = worst_kl.max(kl);
            worst_top = worst_top.max(top_diff);
        }
        eprintln!(
            "{kv_type:?}: {} positions, batched vs token by token: KL at most {worst_kl:.4}, \
             top-5 log-probs at most {worst_top:.3} apart",
            ids.len()
        );
        // Small batches: the per-token arithmetic, bit for bit.
        ctx.reset();
        let mut one = Context::new(&model, params(kv_type)).unwrap();
        let mut pos = 0;
        for chunk in [5usize, 1, 7, 3] {
            let end = pos + chunk;
            ctx.decode(&ids[pos..end]).unwrap();
            for &t in &ids[pos..end] {
                one.decode(&[t]).unwrap();
            }
            assert!(
                ctx.logits() == one.logits(),
                "{kv_type:?}: a batch below 8 tokens differs from single tokens at {end}"
            );
            pos = end;
        }
    }
}

/// Threads claim chunks of rows and attention items whose arithmetic does not depend on the
/// thread: logits are bit-identical for 1, 2 and 3 threads, batched and token by token.
#[test]
fn logits_are_bit_identical_across_thread_counts() {
    bit_identical_across_threads(common::SMOLLM2, "greedy_smollm2.jsonl");
}

fn bit_identical_across_threads(model_file: &str, greedy_file: &str) {
    let Some(path) = common::model(model_file) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let ids = &greedy_cases_of(greedy_file)[1].prompt_ids;
    let run = |n_threads: usize| {
        let mut ctx = Context::new(
            &model,
            ContextParams {
                n_window: 64,
                n_batch: ids.len(),
                logits_all: true,
                n_threads,
                ..Default::default()
            },
        )
        .unwrap();
        ctx.decode(ids).unwrap();
        let mut rows: Vec<Vec<f32>> = (0..ids.len())
            .map(|i| ctx.logits_ith(i).unwrap().to_vec())
            .collect();
        for &t in &ids[..8] {
            ctx.decode(&[t]).unwrap();
            rows.push(ctx.logits().to_vec());
        }
        rows
    };
    let one = run(1);
    for n in [2, 3] {
        assert!(run(n) == one, "{n} threads differ from 1");
    }
}

// Qwen2.5-Coder-0.5B-Instruct Q4_K_M (arch `qwen2`: Q/K/V biases, NEOX RoPE base 1e6, 14
// query heads on 2 KV heads, tied head; Q5_0 with Q4_K, Q6_K and Q8_0 weights).

#[test]
fn qwen2_logits_match_llama_cpp() {
    check_logits(common::QWEN2, "logits_qwen2.json", 0.25);
}

#[test]
fn qwen2_teacher_forced_argmax_f32_kv() {
    teacher_forced_on(common::QWEN2, "greedy_qwen2.jsonl", KvType::F32, 0.25);
}

#[test]
fn qwen2_free_running_greedy_matches_until_first_near_tie() {
    free_running_greedy_on(common::QWEN2, "greedy_qwen2.jsonl");
}

#[test]
fn qwen2_batched_prefill_agrees_with_token_by_token() {
    batched_vs_token_by_token(common::QWEN2, "greedy_qwen2.jsonl", 3);
}

#[test]
fn qwen2_logits_are_bit_identical_across_thread_counts() {
    bit_identical_across_threads(common::QWEN2, "greedy_qwen2.jsonl");
}
