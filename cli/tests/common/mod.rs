//! Shared helpers of the CLI tests: where the models and the golden files are.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Runs the `eddy` binary with `args`, `stdin` written to its standard input.
pub fn eddy_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `models/<file>` of the workspace (or `$EDDY_MODELS_DIR/<file>`) if present. When absent the
/// test is skipped with a loud message, unless `EDDY_REQUIRE_MODELS` is set (as in CI): then it
/// fails.
pub fn model(file: &str) -> Option<String> {
    let dir = std::env::var_os("EDDY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")));
    let path = dir.join(file);
    if path.is_file() {
        return Some(path.to_str().unwrap().to_owned());
    }
    assert!(
        std::env::var_os("EDDY_REQUIRE_MODELS").is_none(),
        "{} missing; run scripts/fetch-models.sh",
        path.display()
    );
    skipped(&format!(
        "{} not found; run scripts/fetch-models.sh (or scripts/test.sh)",
        path.display()
    ));
    None
}

/// Says loudly on the real stderr that a test is skipped. `eprintln!` would be captured by
/// the test harness and never shown for a passing test; a write to `std::io::stderr()` is not.
pub fn skipped(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {why} ***\n");
}

/// SmolLM2-135M-Instruct, Q4_1 (arch `llama`), the default model.
pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Gemma 3 270M, Q4_K_M (arch `gemma3`).
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
/// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (arch `qwen2`).
pub const QWEN2: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// The default model.
pub fn smollm2() -> Option<String> {
    model(SMOLLM2)
}

/// `testdata/golden/<file>` of the workspace (llama.cpp's reference outputs, see
/// `testdata/README.md`), or `$EDDY_GOLDEN_DIR/<file>` when that variable is set.
pub fn golden(file: &str) -> PathBuf {
    match std::env::var_os("EDDY_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d).join(file),
        None => {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/golden")).join(file)
        }
    }
}
