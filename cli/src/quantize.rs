//! `eddy quantize`: a thin layer over `eddy::quantize` (the recipe and the writer live there).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use eddy::GgmlType;
use eddy::quantize::{FileType, QuantizeParams, QuantizeProgress, quantize_file};

use crate::args;

/// Arguments of `eddy quantize`, as llama.cpp's `llama-quantize` takes them.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The model to read (GGUF).
    pub input: PathBuf,
    /// The file to write; refused if it exists (unless --force) or is the input.
    pub output: PathBuf,
    /// The file type, as llama.cpp names it (case-insensitive): Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K
    /// Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS F16 BF16 F32 (and
    /// Q3_K, Q4_K, Q5_K for the _M mixes).
    #[arg(value_parser = file_type)]
    pub file_type: FileType,
    /// Convert tensors that are quantized already (dequantize, then quantize).
    #[arg(long)]
    pub allow_requantize: bool,
    /// No mixture: every tensor gets TYPE's base type (rows that do not fit still fall back).
    #[arg(long)]
    pub pure: bool,
    /// Type of output.weight (ggml's name: q8_0, q6_K, f16, ...).
    #[arg(long, value_name = "T", value_parser = tensor_type)]
    pub output_tensor_type: Option<GgmlType>,
    /// Type of token_embd.weight (ggml's name).
    #[arg(long, value_name = "T", value_parser = tensor_type)]
    pub token_embedding_type: Option<GgmlType>,
    /// Threads converting rows (1..=256; the output does not depend on it).
    #[arg(short = 't', long, default_value_t = 1, value_parser = args::threads)]
    pub threads: usize,
    /// Replace OUTPUT if it exists (never the input).
    #[arg(long)]
    pub force: bool,
}

fn file_type(s: &str) -> Result<FileType, String> {
    FileType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = FileType::all().map(|t| t.name()).collect();
        format!("unknown type; one of: {}", names.join(" "))
    })
}

fn tensor_type(s: &str) -> Result<GgmlType, String> {
    eddy::quantize::tensor_type_from_name(s).ok_or_else(|| {
        let names: Vec<&str> = GgmlType::all()
            .filter(|t| eddy::quantize::can_write(*t))
            .map(|t| t.name())
            .collect();
        format!("not a type Eddy writes; one of: {}", names.join(" "))
    })
}

/// Runs `eddy quantize`.
pub fn run(a: QuantizeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut params = QuantizeParams::new(a.file_type);
    params.allow_requantize = a.allow_requantize;
    params.pure = a.pure;
    params.output_tensor_type = a.output_tensor_type;
    params.token_embedding_type = a.token_embedding_type;
    params.n_threads = a.threads;
    params.overwrite = a.force;

    let start = Instant::now();
    let on = std::io::stderr().is_terminal();
    let mut last: Option<Instant> = None;
    let mut progress = |p: &QuantizeProgress<'_>| {
        if !on || last.is_some_and(|l| l.elapsed().as_secs_f64() < 0.25) {
            return;
        }
        last = Some(Instant::now());
        let pct = 100.0 * p.bytes_done as f64 / p.bytes_total.max(1) as f64;
        eprint!(
            "\r\x1b[Keddy: quantize [{}/{}] {} ({pct:.0} %)",
            p.tensor + 1,
            p.n_tensors,
            p.name
        );
        let _ = std::io::stderr().flush();
    };
    let result = quantize_file(&a.input, &a.output, &params, &mut progress);
    if on && last.is_some() {
        eprint!("\r\x1b[K");
    }
    let s = result?;
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    eprintln!(
        "eddy: quantize {} -> {} ({}): {} tensors, {} converted, {} fell back to a smaller \
         block; {:.1} MiB -> {:.1} MiB in {:.1} s",
        a.input.display(),
        a.output.display(),
        a.file_type,
        s.n_tensors,
        s.n_converted,
        s.n_fallback,
        mib(s.input_bytes),
        mib(s.output_bytes),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
