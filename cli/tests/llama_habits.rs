//! What a llama.cpp user types works: `-c/--ctx-size`, `-s/--seed`, `--repeat-last-n`, `-f -`
//! for standard input, `inspect -m`, perplexity's chunked mode by default, one default K/V type
//! (f16) stated in every `--help`; and pipes stay clean (no progress lines).

mod common;

use std::process::{Command, Output, Stdio};

use common::smollm2;
use serde_json::Value as Json;

fn eddy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok_json(out: Output) -> Json {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn every_kv_type_flag_defaults_to_f16_and_says_so() {
    for cmd in ["generate", "logits", "perplexity", "bench"] {
        let out = eddy(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd}");
        assert!(
            help.contains("f16 is the default in every subcommand")
                && help.contains("[default: f16]"),
            "{cmd} --help:\n{help}"
        );
    }
}

#[test]
fn generate_takes_ctx_size_seed_repeat_last_n_and_stdin() {
    let Some(m) = smollm2() else { return };
    let run = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "-m",
            &m,
            "-p",
            "Once upon a time",
            "-n",
            "8",
            "--temp",
            "1.0",
            "--json",
        ];
        args.extend(extra);
        ok_json(eddy(&args))
    };
    // -c and --ctx-size are the window; -s is --seed.
    let a = run(&["-c", "96", "-s", "7"]);
    let b = run(&["--ctx-size", "96", "--seed", "7"]);
    let c = run(&["--window", "96", "--seed", "7"]);
    assert_eq!(a["n_window"], 96);
    assert_eq!(a["generated_ids"], b["generated_ids"]);
    assert_eq!(a["generated_ids"], c["generated_ids"]);
    assert_eq!(a["seed"], 7);
    // --repeat-last-n: -1 (the window) and 0 (off) are taken.
    for n in ["-1", "0", "256"] {
        let j = run(&["--repeat-last-n", n, "--repeat-penalty", "1.3"]);
        assert_eq!(j["generated_ids"].as_array().unwrap().len(), 8, "{n}");
    }
    // -f - reads the prompt from standard input.
    let piped = ok_json(common::eddy_with_stdin(
        &[
            "generate", "-m", &m, "-f", "-", "-n", "4", "--temp", "0", "--json",
        ],
        "The capital of France is",
    ));
    assert_eq!(
        piped["prompt_ids"],
        serde_json::json!([504, 3575, 282, 4649, 314])
    );
    assert_eq!(piped["generated_ids"][0], 7042);
}

#[test]
fn stdin_and_inspect_m_work_like_their_file_forms() {
    let Some(m) = smollm2() else { return };
    let piped = ok_json(common::eddy_with_stdin(
        &["tokenize", "-m", &m, "-f", "-"],
        "Hello, world! How are you today?",
    ));
    assert_eq!(
        piped,
        serde_json::json!([19556, 28, 905, 17, 1073, 359, 346, 1834, 47])
    );
    let logits = ok_json(common::eddy_with_stdin(
        &["logits", "-m", &m, "-f", "-", "--top", "1"],
        "The capital of France is",
    ));
    assert_eq!(logits["positions"].as_array().unwrap().len(), 5);
    let by_flag = eddy(&["inspect", "-m", &m, "--json"]);
    let by_position = eddy(&["inspect", &m, "--json"]);
    assert!(by_flag.status.success());
    assert_eq!(by_flag.stdout, by_position.stdout);
}

/// With no mode, perplexity runs llama.cpp's chunked mode with 512-token chunks; `-c` sets the
/// chunk. Through a pipe, stderr carries no progress.
#[test]
fn perplexity_defaults_to_chunks_of_512() {
    let Some(m) = smollm2() else { return };
    let hamlet = common::golden("hamlet.txt");
    let h = hamlet.to_str().unwrap();
    let out = eddy(&["perplexity", "-m", &m, "-f", h, "--max-tokens", "600"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = ok_json(out);
    assert_eq!(
        j["mode"],
        serde_json::json!({"name": "chunks", "ctx": 512, "chunks": 1})
    );
    assert_eq!(j["tokens_scored"], 255);
    let text: String = std::fs::read_to_string(&hamlet)
        .unwrap()
        .chars()
        .take(3000)
        .collect();
    let j = ok_json(common::eddy_with_stdin(
        &[
            "perplexity",
            "-m",
            &m,
            "-f",
            "-",
            "-c",
            "128",
            "--chunks",
            "2",
        ],
        &text,
    ));
    assert_eq!(
        j["mode"],
        serde_json::json!({"name": "chunks", "ctx": 128, "chunks": 2})
    );
}

/// A prompt of more than 512 tokens (which prefills in pieces, to show progress on a terminal):
/// through a pipe, stderr gets only the final summary line.
#[test]
fn long_prefill_keeps_pipes_clean() {
    let Some(m) = smollm2() else { return };
    let text: String = std::fs::read_to_string(common::golden("hamlet.txt"))
        .unwrap()
        .chars()
        .take(4000)
        .collect();
    let out = common::eddy_with_stdin(
        &["generate", "-m", &m, "-f", "-", "-n", "4", "--temp", "0"],
        &text,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("eddy: prompt "), "{err}");
    let n: usize = err["eddy: prompt ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 512, "{err}");
}
