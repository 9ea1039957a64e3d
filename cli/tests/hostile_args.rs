//! Every subcommand fed hostile values: huge, tiny, negative, NaN, infinite, malformed. Each must
//! end with a clean failure (exit status 1 or 2: not a signal, not 101 for a panic), no
//! "panicked" on stderr, and one line of stderr naming the flag. Values that are valid however
//! large they look (`-n 99999999999`, `-n -1`) must run without sizing anything by them.

mod common;

use std::process::{Command, Output, Stdio};

use common::smollm2;

fn eddy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A clean refusal naming `flag` on one line.
fn assert_refused(args: &[&str], flag: &str) {
    let out = eddy(args);
    let err = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        matches!(code, Some(1 | 2)),
        "{args:?}: exit {:?} (want 1 or 2; 101 is a panic, none a signal)\n{err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(
        err.lines().any(|l| l.contains("error") && l.contains(flag)),
        "{args:?}: no error line naming {flag}:\n{err}"
    );
    assert!(out.stdout.is_empty(), "{args:?}: wrote to stdout");
}

/// The hostile values every numeric flag is tried with (besides its own table).
const HOSTILE: &[&str] = &[
    "-1",
    "-99999999999",
    "99999999999999999999999999999",
    "18446744073709551616",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "",
    "abc",
    "0x10",
];

/// Runs `base` + `flag value` for every hostile value plus `extra` ones, each refused with a
/// line naming `name` (the flag's long form, which clap's messages use); values the flag
/// accepts (`ok`) are skipped.
fn sweep(base: &[&str], flag: &str, name: &str, extra: &[&str], ok: &[&str]) {
    for v in HOSTILE.iter().chain(extra) {
        if ok.contains(v) {
            continue;
        }
        let mut args = base.to_vec();
        args.extend([flag, v]);
        assert_refused(&args, name);
    }
}

#[test]
fn generate_refuses_hostile_values() {
    let Some(m) = smollm2() else { return };
    // Each flag once: a repeated flag would be refused for the repetition, not the value.
    let base_n = ["generate", "-m", &m, "-p", "Hi", "--temp", "0"];
    sweep(&base_n, "-n", "--n-predict", &["-2", "1.5"], &["-1"]);
    let base_t = ["generate", "-m", &m, "-p", "Hi", "-n", "1"];
    // A temperature or penalty of 1e29 is valid (if useless): finite numbers are not refused.
    let huge = ["99999999999999999999999999999", "18446744073709551616"];
    sweep(&base_t, "--temp", "--temp", &["-0.5", "3.4e39"], &huge);
    let base = ["generate", "-m", &m, "-p", "Hi", "-n", "1", "--temp", "0"];
    sweep(&base, "--top-k", "--top-k", &["1.5"], &[]);
    sweep(
        &base,
        "--top-p",
        "--top-p",
        &["2", "-0.1", "1.0000001"],
        &[],
    );
    sweep(&base, "--min-p", "--min-p", &["5", "-0.01"], &[]);
    sweep(
        &base,
        "--repeat-penalty",
        "--repeat-penalty",
        &["0", "-1", "-0"],
        &huge,
    );
    sweep(
        &base,
        "--repeat-last-n",
        "--repeat-last-n",
        &["-2", "65537"],
        &["-1"],
    );
    sweep(&base, "--seed", "--seed", &["-2", "1.5"], &["-1"]);
    sweep(&base, "-t", "--threads", &["0", "257", "1000000"], &[]);
    sweep(&base, "--sinks", "--sinks", &["1025", "4294967296"], &[]);
    sweep(&base, "--window", "--window", &["0", "1048577"], &[]);
    sweep(&base, "-c", "--window", &["0"], &[]);
    sweep(&base, "--kv-type", "--kv-type", &["f8", "q4_1", "q8"], &[]);
    sweep(&base, "--kv-type-k", "--kv-type-k", &["f8", "q4_1"], &[]);
    sweep(&base, "--cache-type-v", "--kv-type-v", &["f8", "Q5_0"], &[]);
    // Within the parser's range but beyond the model's trained context (8192).
    assert_refused(&[&base[..], &["-c", "100000"]].concat(), "--window");
    assert_refused(&[&base[..], &["--window", "8193"]].concat(), "--window");
    // Inputs.
    assert_refused(&["generate", "-m", &m, "-f", "/nonexistent/x.txt"], "-f");
    assert_refused(&["generate", "-m", &m, "-f", "/"], "-f");
    assert_refused(&["generate", "-m", &m, "-p"], "--prompt");
    assert_refused(
        &["generate", "-m", "/nonexistent.gguf", "-p", "x"],
        "nonexistent",
    );
}

#[test]
fn chat_refuses_hostile_values_and_inputs() {
    let Some(m) = smollm2() else { return };
    let base = ["chat", "-m", &m, "--temp", "0"];
    sweep(&base, "-n", "--n-predict", &["-2", "1.5"], &["-1"]);
    sweep(&base, "--top-p", "--top-p", &["2", "-0.1"], &[]);
    sweep(&base, "-t", "--threads", &["0", "257"], &[]);
    sweep(&base, "--sinks", "--sinks", &["1025"], &[]);
    sweep(&base, "-c", "--window", &["0"], &[]);
    sweep(&base, "--kv-type", "--kv-type", &["f8"], &[]);
    sweep(&base, "--keep-system", "--keep-system", &["maybe"], &[]);
    assert_refused(&[&base[..], &["-c", "100000"]].concat(), "--window");
    let dir = std::env::temp_dir().join(format!("eddy-hostile-chat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    assert_refused(
        &[&base[..], &["--render", "/nonexistent.json"]].concat(),
        "--render",
    );
    let bad_conv = file("conv.json", "{\"messages\": 3}");
    assert_refused(
        &[&base[..], &["--render", &bad_conv]].concat(),
        "conversation",
    );
    let bad_tools = file("tools.json", "{not json");
    assert_refused(
        &[&base[..], &["--tools", &bad_tools]].concat(),
        "conversation",
    );
    let bad_tmpl = file("t.jinja", "{% for m in messages %}");
    assert_refused(
        &[&base[..], &["--chat-template", &bad_tmpl]].concat(),
        "chat template",
    );
    let raising = file("r.jinja", "{{ raise_exception('roles must alternate') }}");
    let conv = file("ok.json", "[{\"role\": \"user\", \"content\": \"hi\"}]");
    assert_refused(
        &[&base[..], &["--chat-template", &raising, "--render", &conv]].concat(),
        "roles must alternate",
    );
    assert_refused(
        &[&base[..], &["--chat-template", "/nonexistent.jinja"]].concat(),
        "--chat-template",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tokenize_and_logits_refuse_hostile_values() {
    let Some(m) = smollm2() else { return };
    for v in ["maybe", "2", "", "-1"] {
        assert_refused(
            &["tokenize", "-m", &m, "-p", "x", "--add-bos", v],
            "--add-bos",
        );
        assert_refused(
            &["tokenize", "-m", &m, "-p", "x", "--parse-special", v],
            "--parse-special",
        );
    }
    assert_refused(&["tokenize", "-m", &m, "-f", "/nonexistent"], "-f");
    let base = ["logits", "-m", &m, "-p", "Hi"];
    sweep(&base, "--top", "--top", &["1.5"], &[]);
    sweep(&base, "--kv-type", "--kv-type", &["f8"], &[]);
    let dir = std::env::temp_dir().join(format!("eddy-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ids = dir.join("ids.json");
    for bad in [
        "[-1]",
        "[1.5]",
        "[4294967296]",
        "{}",
        "",
        "[1, 2, 999999]",
        "\u{0}\u{ff}",
    ] {
        std::fs::write(&ids, bad).unwrap();
        let out = eddy(&["logits", "-m", &m, "--ids", ids.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {err}");
        assert!(!err.contains("panicked"), "{bad:?}: {err}");
    }
    // More tokens than the trained context in one pass.
    let many: Vec<String> = (0..9000).map(|i| (i % 1000).to_string()).collect();
    std::fs::write(&ids, format!("[{}]", many.join(","))).unwrap();
    assert_refused(
        &["logits", "-m", &m, "--ids", ids.to_str().unwrap()],
        "--ids",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn perplexity_refuses_hostile_values() {
    let Some(m) = smollm2() else { return };
    let hamlet = common::golden("hamlet.txt");
    let h = hamlet.to_str().unwrap();
    let base = ["perplexity", "-m", &m, "-f", h];
    sweep(&base, "--ctx", "--ctx", &["0", "3", "1048577"], &[]);
    sweep(&base, "-c", "--ctx", &["0"], &[]);
    sweep(&base, "--chunks", "--chunks", &["0"], &[]);
    sweep(&base, "--max-tokens", "--max-tokens", &["1.5"], &[]);
    sweep(&base, "-t", "--threads", &["0", "257"], &[]);
    sweep(&base, "--kv-type", "--kv-type", &["f8"], &[]);
    let stream = ["perplexity", "-m", &m, "-f", h, "--stream"];
    sweep(
        &[&stream[..], &["--window", "16"]].concat(),
        "--sinks",
        "--sinks",
        &["1025"],
        &[],
    );
    sweep(&stream, "--window", "--window", &["0"], &[]);
    let recompute = [
        "perplexity",
        "-m",
        &m,
        "-f",
        h,
        "--recompute",
        "--window",
        "8",
    ];
    sweep(&recompute, "--stride", "--stride", &["0"], &[]);
    assert_refused(&[&recompute[..], &["--stride", "9"]].concat(), "--stride");
    assert_refused(&[&base[..], &["--ctx", "100000"]].concat(), "--ctx");
    assert_refused(&[&base[..], &["-c", "8193"]].concat(), "--ctx");
    assert_refused(&["perplexity", "-m", &m, "-f", "/nonexistent"], "-f");
}

#[test]
fn bench_refuses_hostile_values() {
    let Some(m) = smollm2() else { return };
    let base = ["bench", "-m", &m];
    sweep(&base, "-p", "--prompt", &["0", "65537"], &[]);
    sweep(&base, "-n", "--n-gen", &["0", "1048577"], &[]);
    sweep(&base, "-r", "--reps", &["0", "1001", "99999999999"], &[]);
    sweep(&base, "-t", "--threads", &["0", "257"], &[]);
    sweep(&base, "--ub", "--ubatch-size", &["0", "65537", "-3"], &[]);
    sweep(&base, "--kv-type", "--kv-type", &["f8"], &[]);
    sweep(
        &base,
        "--stream",
        "--stream",
        &["1,x", "5,-1", "100000001"],
        &[],
    );
    sweep(&base, "--sinks", "--sinks", &["1025"], &[]);
    sweep(&base, "--window", "--window", &["0"], &[]);
    // Together beyond the trained context (8192).
    assert_refused(&["bench", "-m", &m, "-p", "8000", "-n", "500"], "-p");
    assert_refused(
        &["bench", "-m", &m, "--stream", "5", "--window", "9000"],
        "--window",
    );
}

#[test]
fn inspect_refuses_hostile_values() {
    // No model needed: these are refused before any file is read, or name the file.
    let out = eddy(&["inspect"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("<MODEL|--model <MODEL>>"), "{err}");
    assert_refused(&["inspect", "-m"], "--model");
    assert_refused(&["inspect", "a.gguf", "-m", "b.gguf"], "--model");
    assert_refused(&["inspect", "-m", "/nonexistent.gguf"], "nonexistent");
    assert_refused(&["inspect", "/"], "/");
    assert_refused(&["inspect", "--json=maybe", "x.gguf"], "--json");
}

/// Valid values that look hostile: a huge `-n`, `-n -1` and `--seed -1` run (the arena is sized
/// by the window, never by `-n`); on this instruct model a plain question ends at once on
/// `<|im_end|>`, which the note on stderr explains.
#[test]
fn generate_accepts_huge_and_minus_one_counts() {
    let Some(m) = smollm2() else { return };
    let q = "What is the capital of France?";
    for n in ["99999999999", "18446744073709551615", "-1"] {
        let out = eddy(&["generate", "-m", &m, "-p", q, "--temp", "0", "-n", n]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "-n {n}: {err}");
        assert!(
            err.contains("stopped at once") && err.contains("<|im_start|>"),
            "-n {n}: {err}"
        );
    }
    let out = eddy(&[
        "generate", "-m", &m, "-p", q, "-n", "-1", "--seed", "-1", "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("eddy: seed "), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["seed"].is_u64(), "{j}");
}

/// More threads than cores runs, with a warning on stderr.
#[test]
fn threads_above_the_core_count_warn() {
    let Some(m) = smollm2() else { return };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 256 {
        return;
    }
    let t = (cores + 1).to_string();
    let out = eddy(&["generate", "-m", &m, "-p", "Hi", "-n", "2", "-t", &t]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("warning: -t {t} is more than the {cores} cores")),
        "{err}"
    );
}
