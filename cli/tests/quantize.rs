//! `eddy quantize` end to end: a conversion that the library test also checks byte for byte
//! (SmolLM2 to Q8_0, the same file as llama.cpp's), then the command's refusals: exit status 1
//! with one `eddy: error:` line, the existing files untouched, nothing left behind.

mod common;

use std::process::Command;

fn eddy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn quantize_writes_a_file_that_generates_and_refuses_what_it_must() {
    let Some(model) = common::smollm2() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("eddy-cli-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("smollm2.q8_0.gguf");
    let out_s = out.to_str().unwrap();

    // A quantized input needs --allow-requantize.
    let o = eddy(&["quantize", &model, out_s, "q8_0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-requantize"));
    assert!(!out.exists());

    let o = eddy(&[
        "quantize",
        &model,
        out_s,
        "Q8_0",
        "--allow-requantize",
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = eddy(&[
        "generate",
        "-m",
        out_s,
        "-p",
        "The capital of France is",
        "-n",
        "8",
        "--temp",
        "0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Paris"));

    // The output exists now: refused without --force, replaced with it; the input never.
    let before = std::fs::metadata(&out).unwrap().len();
    let o = eddy(&["quantize", &model, out_s, "Q8_0", "--allow-requantize"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = eddy(&[
        "quantize",
        &model,
        &model,
        "Q8_0",
        "--allow-requantize",
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("input"));
    let o = eddy(&[
        "quantize",
        &model,
        out_s,
        "Q4_0",
        "--allow-requantize",
        "--force",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::metadata(&out).unwrap().len() < before);

    // Bad arguments are clap's (status 2); a file that is not GGUF is the reader's error.
    assert_eq!(
        eddy(&["quantize", &model, out_s, "Q4_9"]).status.code(),
        Some(2)
    );
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"not a model").unwrap();
    let o = eddy(&[
        "quantize",
        junk.to_str().unwrap(),
        dir.join("j.gguf").to_str().unwrap(),
        "Q8_0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a GGUF file"));

    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["junk.gguf", "smollm2.q8_0.gguf"]);
    let _ = std::fs::remove_dir_all(&dir);
}
