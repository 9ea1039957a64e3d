//! `eddy perplexity` reproduces llama.cpp's numbers on Hamlet (`testdata/golden/`), within 1 %.
//! These are the slowest tests of the suite (about 8192 + 65536 evaluated tokens).

mod common;

use std::process::Command;

use common::{golden, smollm2};

use serde_json::Value as Json;

fn perplexity(args: &[&str]) -> Json {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("perplexity")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn read(file: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(golden(file)).unwrap()).unwrap()
}

#[test]
fn chunked_perplexity_matches_llama_cpp() {
    let Some(m) = smollm2() else { return };
    chunked_on(&m, "smollm2");
}

/// Qwen2.5-Coder 0.5B (arch `qwen2`): 8192 tokens through a 0.5B model, the slowest test here.
#[test]
fn qwen2_chunked_perplexity_matches_llama_cpp() {
    let Some(m) = common::model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else {
        return;
    };
    chunked_on(&m, "qwen2");
}

/// llama-perplexity's chunked mode (16 chunks of 512 tokens) against `ppl.json`, within 1 %,
/// with f32 K/V: the exact path the golden numbers were made with.
fn chunked_on(m: &str, name: &str) {
    let hamlet = golden("hamlet.txt");
    let want = read("ppl.json")["results"][name].clone();
    let got = perplexity(&[
        "-m",
        m,
        "-f",
        hamlet.to_str().unwrap(),
        "--ctx",
        "512",
        "--chunks",
        "16",
        "-t",
        "2",
        "--kv-type",
        "f32",
    ]);
    let (ppl, want_ppl) = (got["ppl"].as_f64().unwrap(), want["ppl"].as_f64().unwrap());
    eprintln!("{name} chunked: ours {ppl:.4}, llama.cpp {want_ppl:.4}");
    assert_eq!(got["tokens_scored"], want["scored"]);
    assert_eq!(got["text_tokens"], want["tokens"]);
    assert!((ppl / want_ppl - 1.0).abs() < 0.01, "{ppl} vs {want_ppl}");
}

#[test]
fn recompute_perplexity_matches_llama_cpp() {
    let Some(m) = smollm2() else { return };
    let hamlet = golden("hamlet.txt");
    let want = read("recompute_smollm2_hamlet.json");
    let got = perplexity(&[
        "-m",
        &m,
        "-f",
        hamlet.to_str().unwrap(),
        "--recompute",
        "--window",
        "256",
        "--stride",
        "64",
        "--max-tokens",
        "16384",
        "-t",
        "2",
        "--kv-type",
        "f32",
    ]);
    let (ppl, want_ppl) = (got["ppl"].as_f64().unwrap(), want["ppl"].as_f64().unwrap());
    eprintln!("recompute: ours {ppl:.4}, llama.cpp {want_ppl:.4}");
    assert_eq!(got["tokens_scored"], want["scored"]);
    assert!((ppl / want_ppl - 1.0).abs() < 0.01, "{ppl} vs {want_ppl}");
}

/// The stream mode on a short text: runs, scores every token after the first, and a window-only
/// arena (no sinks) is not better than 4 sinks once the window has turned many times.
#[test]
fn stream_mode_scores_every_token() {
    let Some(m) = smollm2() else { return };
    let hamlet = golden("hamlet.txt");
    let run = |sinks: &str| {
        perplexity(&[
            "-m",
            &m,
            "-f",
            hamlet.to_str().unwrap(),
            "--stream",
            "--sinks",
            sinks,
            "--window",
            "60",
            "--max-tokens",
            "1500",
        ])
    };
    let four = run("4");
    assert_eq!(four["tokens_scored"], 1499);
    assert!(four["ppl"].as_f64().unwrap().is_finite());
    let bad = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args([
            "perplexity",
            "-m",
            &m,
            "-f",
            hamlet.to_str().unwrap(),
            "--recompute",
            "--window",
            "8",
            "--stride",
            "9",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stride"));
    let zero = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["perplexity", "-m", &m, "-f", hamlet.to_str().unwrap()])
        .args(["--stream", "--sinks", "4", "--window", "0"])
        .output()
        .unwrap();
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("window of at least 1"));
}
