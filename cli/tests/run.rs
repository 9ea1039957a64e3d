//! `eddy tokenize`, `eddy generate` and `eddy logits` on the default model, as tools call them.

mod common;

use std::process::{Command, Output};

use common::smollm2;

use serde_json::Value as Json;

fn eddy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(out: Output) -> Json {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tokenize_prints_the_ids() {
    let Some(m) = smollm2() else { return };
    let j = ok_json(eddy(&[
        "tokenize",
        "-m",
        &m,
        "-p",
        "Hello, world! How are you today?",
    ]));
    assert_eq!(
        j,
        serde_json::json!([19556, 28, 905, 17, 1073, 359, 346, 1834, 47])
    );
    // Special parsing on by default, off on request.
    let on = ok_json(eddy(&["tokenize", "-m", &m, "-p", "<|im_start|>"]));
    assert_eq!(on, serde_json::json!([1]));
    let off = ok_json(eddy(&[
        "tokenize",
        "-m",
        &m,
        "-p",
        "<|im_start|>",
        "--parse-special",
        "false",
    ]));
    assert!(off.as_array().unwrap().len() > 1);
}

#[test]
fn generate_greedy_json_and_streamed_text_agree() {
    let Some(m) = smollm2() else { return };
    let j = ok_json(eddy(&[
        "generate",
        "-m",
        &m,
        "-p",
        "The capital of France is",
        "-n",
        "6",
        "--temp",
        "0",
        "--json",
    ]));
    assert_eq!(
        j["prompt_ids"],
        serde_json::json!([504, 3575, 282, 4649, 314])
    );
    // llama.cpp's greedy continuation; its first near-tie is at step 5.
    let generated: Vec<u64> = j["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(&generated[..5], &[7042, 30, 198, 198, 504]);
    assert!(j["gen_tokens_per_s"].as_f64().unwrap() > 0.0);
    let text = j["text"].as_str().unwrap();
    assert!(text.starts_with(" Paris.\n\nThe"), "{text:?}");

    let out = eddy(&[
        "generate",
        "-m",
        &m,
        "-p",
        "The capital of France is",
        "-n",
        "6",
        "--temp",
        "0",
    ]);
    assert!(out.status.success());
    let streamed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(streamed.trim_end_matches('\n'), text.trim_end_matches('\n'));
}

#[test]
fn generate_with_a_seed_is_reproducible() {
    let Some(m) = smollm2() else { return };
    let run = |seed: &str| {
        ok_json(eddy(&[
            "generate",
            "-m",
            &m,
            "-p",
            "Once upon a time",
            "-n",
            "12",
            "--temp",
            "1.0",
            "--seed",
            seed,
            "--json",
        ]))["generated_ids"]
            .clone()
    };
    assert_eq!(run("42"), run("42"));
}

#[test]
fn logits_prints_the_golden_shape() {
    let Some(m) = smollm2() else { return };
    let dir = std::env::temp_dir().join(format!("eddy-logits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ids = dir.join("ids.json");
    std::fs::write(&ids, "[504, 3575, 282, 4649, 314]").unwrap();
    let j = ok_json(eddy(&[
        "logits",
        "-m",
        &m,
        "--ids",
        ids.to_str().unwrap(),
        "--top",
        "3",
        "--kv-type",
        "f32",
    ]));
    let positions = j["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 5);
    assert_eq!(positions[4]["pos"], 4);
    assert_eq!(positions[4]["top"].as_array().unwrap().len(), 3);
    // Greedy's first token after the prompt.
    assert_eq!(positions[4]["top"][0][0], 7042);
    assert!(
        positions[4]["logsumexp"].as_f64().unwrap() > positions[4]["top"][0][1].as_f64().unwrap()
    );

    std::fs::write(&ids, "[1, 2, 999999]").unwrap();
    let out = eddy(&["logits", "-m", &m, "--ids", ids.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("outside the vocabulary"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Streaming generation: 2000 tokens through an arena of 4 sinks + 64, far past the window.
#[test]
fn generate_streams_far_past_the_window() {
    let Some(m) = smollm2() else { return };
    let j = ok_json(eddy(&[
        "generate",
        "-m",
        &m,
        "-p",
        "Once upon a time",
        "-n",
        "2000",
        "--sinks",
        "4",
        "--window",
        "64",
        "--temp",
        "0.8",
        "--ignore-eos",
        "--json",
    ]));
    assert_eq!(j["generated_ids"].as_array().unwrap().len(), 2000);
    assert_eq!(j["n_window"], 64);
    assert_eq!(j["gen_tokens_per_s_per_100"].as_array().unwrap().len(), 20);
    let out = eddy(&["generate", "-m", &m, "-p", "x", "--window", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("window of at least 1"));
}

/// `eddy bench` reports what llama-bench does, and its streaming mode measures every depth.
/// (Only the shape of the report is checked: speed is measured by running the command, never
/// asserted by a test.)
#[test]
fn bench_reports_pp_tg_and_stream_depths() {
    let Some(m) = smollm2() else { return };
    let j = ok_json(eddy(&[
        "bench", "-m", &m, "-p", "8", "-n", "4", "-r", "1", "--json",
    ]));
    assert!(j["pp_tokens_per_s"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["tg_tokens_per_s"].as_f64().unwrap() > 0.0, "{j}");
    assert_eq!(j["threads"], 1);
    assert_eq!(j["n_ubatch"], 8, "{j}");
    let j = ok_json(eddy(&[
        "bench", "-m", &m, "-p", "8", "-n", "2", "-r", "1", "--ub", "3", "--json",
    ]));
    assert_eq!(j["n_ubatch"], 3, "{j}");
    assert!(j["pp_tokens_per_s"].as_f64().unwrap() > 0.0, "{j}");
    let j = ok_json(eddy(&[
        "bench", "-m", &m, "--stream", "5,300", "--window", "16", "-n", "3", "-r", "2", "--json",
    ]));
    let depths = j["depths"].as_array().unwrap();
    assert_eq!(depths.len(), 2, "{j}");
    assert_eq!(depths[1]["depth"], 300);
    assert!(
        depths[1]["best_tokens_per_s"].as_f64().unwrap() > 0.0,
        "{j}"
    );
    assert_eq!(depths[0]["best_vs_first"], 1.0);
    let bad = eddy(&["bench", "-m", &m, "--stream", "5", "--window", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--window"));
}

/// Every subcommand on Qwen2.5 (arch `qwen2`): tokenize and greedy generate equal llama.cpp's
/// golden ids (`greedy_qwen2.jsonl`, prompt "def fibonacci(n):", whose first 8 steps all have a
/// top-2 gap of at least 0.5), logits and bench print their JSON.
#[test]
fn every_command_runs_on_qwen2() {
    let Some(m) = common::model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else {
        return;
    };
    let prompt = "def fibonacci(n):";
    let ids = ok_json(eddy(&["tokenize", "-m", &m, "-p", prompt]));
    assert_eq!(ids, serde_json::json!([750, 75698, 1445, 1648]));
    let j = ok_json(eddy(&[
        "generate",
        "-m",
        &m,
        "-p",
        prompt,
        "-n",
        "8",
        "--temp",
        "0",
        "--kv-type",
        "f32",
        "--json",
    ]));
    assert_eq!(
        j["generated_ids"],
        serde_json::json!([198, 262, 421, 308, 2651, 220, 15, 510])
    );
    let l = ok_json(eddy(&["logits", "-m", &m, "-p", prompt, "--top", "3"]));
    assert_eq!(l["positions"].as_array().unwrap().len(), 4);
    let b = ok_json(eddy(&[
        "bench", "-m", &m, "-p", "16", "-n", "4", "-r", "1", "--json",
    ]));
    assert!(b["tg_tokens_per_s"].as_f64().unwrap() > 0.0, "{b}");
}

/// `eddy bench --json` reports the roofline: the weight bytes a token reads (every 2-D tensor
/// of SmolLM2, whose head is tied to the embedding, plus one embedding row), a measured read
/// bandwidth, the tg limit they give and the fraction of it reached.
#[test]
fn bench_reports_the_roofline() {
    let Some(m) = smollm2() else { return };
    let info = ok_json(eddy(&["inspect", "--json", &m]));
    let mut matrices = 0u64;
    let mut embd_row = 0u64;
    for t in info["tensors"].as_array().unwrap() {
        let shape = t["shape"].as_array().unwrap();
        let bytes = t["bytes"].as_u64().unwrap();
        if shape.len() == 2 {
            matrices += bytes;
        }
        if t["name"] == "token_embd.weight" {
            embd_row = bytes / shape[1].as_u64().unwrap();
        }
    }
    let b = ok_json(eddy(&[
        "bench", "-m", &m, "-p", "8", "-n", "4", "-r", "1", "--json",
    ]));
    assert_eq!(b["bytes_per_token"].as_u64().unwrap(), matrices + embd_row);
    let bw = b["bandwidth_gb_s"].as_f64().unwrap();
    assert!(bw > 0.0 && bw.is_finite(), "{b}");
    let limit = b["tg_limit_tokens_per_s"].as_f64().unwrap();
    let want = bw * 1e9 / (matrices + embd_row) as f64;
    assert!((limit / want - 1.0).abs() < 1e-9, "{limit} vs {want}");
    let frac = b["tg_fraction_of_limit"].as_f64().unwrap();
    let tg = b["tg_tokens_per_s"].as_f64().unwrap();
    assert!((frac - tg / limit).abs() < 1e-9, "{b}");
    // The peak resident set is the run's, not the probe's: the probe's buffer is as large as a
    // token's weights, and counting it made the peak about the file's size larger (the model's
    // weights are held once: mapped, or copied with their mapped pages released).
    let file_len = std::fs::metadata(&m).unwrap().len();
    let rss = b["peak_rss_bytes"].as_u64().unwrap();
    assert!(
        rss < file_len + (48 << 20),
        "peak RSS {rss} for a file of {file_len}: {b}"
    );
}
