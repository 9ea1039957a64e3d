//! Shared helpers of the integration tests: where the real models are.
#![allow(dead_code)]

use std::path::PathBuf;

/// SmolLM2-135M-Instruct, Q4_1 (arch `llama`).
pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Gemma 3 270M, Q4_K_M (arch `gemma3`).
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
/// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (arch `qwen2`).
pub const QWEN2: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// The workspace's `models/` folder, or `$EDDY_MODELS_DIR`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("EDDY_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")),
    }
}

/// The path of a model if it is present. When it is absent, the test is skipped with a loud
/// message, unless `EDDY_REQUIRE_MODELS` is set (as `.ci/run` does): then it fails.
pub fn model(file: &str) -> Option<PathBuf> {
    let path = models_dir().join(file);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("EDDY_REQUIRE_MODELS").is_some() {
        panic!(
            "model {} is missing and EDDY_REQUIRE_MODELS is set; run scripts/fetch-models.sh",
            path.display()
        );
    }
    skipped(&format!(
        "model {} not found. Run scripts/fetch-models.sh (or scripts/test.sh) to run this test.",
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
