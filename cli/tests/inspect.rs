//! `eddy inspect` as a user runs it.

mod common;

use std::process::{Command, Output};

use eddy::gguf::writer::{GgufWriter, OwnedValue};
use serde_json::Value as Json;

fn eddy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .output()
        .unwrap()
}

fn inspect_json(path: &str) -> Json {
    let out = eddy(&["inspect", path, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_smollm2_json_and_text() {
    let Some(path) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let j = inspect_json(&path);
    assert_eq!(j["architecture"], "llama");
    assert_eq!(j["tensor_count"], 272);
    assert_eq!(j["tensors"].as_array().unwrap().len(), 272);
    assert_eq!(j["tensor_types"]["Q4_1"], 210);
    assert_eq!(j["file_type_name"], "MOSTLY_Q4_1");
    assert_eq!(j["tokenizer_model"], "gpt2");
    assert_eq!(j["context_length"], 8192);
    assert_eq!(j["vocab_size"], 49152);
    assert_eq!(j["metadata"]["llama.attention.head_count_kv"], 3);
    assert_eq!(j["metadata"]["llama.rope.freq_base"], 100000.0);
    assert_eq!(
        j["metadata"]["llama.attention.layer_norm_rms_epsilon"],
        1e-5
    );
    let tokens = &j["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(
        (tokens["len"].as_u64(), tokens["truncated"].as_bool()),
        (Some(49152), Some(true))
    );
    let emb = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "token_embd.weight")
        .unwrap();
    assert_eq!(emb["type"], "Q8_0");
    assert_eq!(emb["shape"], serde_json::json!([576, 49152]));
    let data = j["data_offset"].as_u64().unwrap() + j["tensor_bytes"].as_u64().unwrap();
    assert!(data <= j["file_size"].as_u64().unwrap());
    assert!(j["parameter_count"].as_u64().unwrap() > 130_000_000);

    let out = eddy(&["inspect", &path]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("architecture:   llama"), "{text}");
    assert!(text.contains("blk.29.ffn_down.weight"));
}

#[test]
fn inspect_gemma3() {
    let Some(path) = common::model("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let j = inspect_json(&path);
    assert_eq!(j["architecture"], "gemma3");
    assert_eq!(j["tensor_count"], 236);
    assert_eq!(j["tokenizer_model"], "llama");
    assert_eq!(j["tensor_types"]["Q6_K"], 9);
}

#[test]
fn inspect_refuses_bad_files_with_a_message() {
    let dir = std::env::temp_dir().join(format!("eddy-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.gguf");
    let out = eddy(&["inspect", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let mut w = GgufWriter::new();
    w.kv("general.architecture", OwnedValue::String("llama".into()));
    let mut bytes = w.to_bytes();
    bytes[4] = 1; // version 1
    let bad = dir.join("v1.gguf");
    std::fs::write(&bad, &bytes).unwrap();
    let out = eddy(&["inspect", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unsupported GGUF version 1"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let out = eddy(&["inspect", empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    std::fs::remove_dir_all(&dir).unwrap();
}
