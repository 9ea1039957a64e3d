//! `llama-quantize`: llama.cpp's own quantizer (`llama_model_quantize`), so that Eddy can be
//! measured on the quantization types llama.cpp produces (Q4_0, Q8_0, Q4_K_M, ...) from the
//! models we have, with exactly llama.cpp's tensor-type choices (k-quant mixtures, the fallbacks
//! for rows that are not a multiple of 256, the output tensor's type).
//!
//! A thin wrapper: parameters start from `llama_model_quantize_default_params()` and only the
//! flags below change them. The TYPE names are those of llama.cpp's `llama-quantize` tool
//! (case-insensitive), tensor-type names those of `ggml_type_name` (q8_0, q6_K, f16, ...), as
//! that tool parses them. Not supported: imatrix, `--tensor-type`, `--override-kv`,
//! `--keep-split`, `--prune-layers`.
//!
//! The result is written to `OUTPUT.part` and renamed to OUTPUT only on success, so a failed
//! run never leaves a partial file under the final name; OUTPUT is refused when it is the input
//! file (same path, symlink or hard link).

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use llama_cpp_sys_2 as sys;

const VERSION: &str = "llama-cpp-sys-2 0.1.161 (llama.cpp vendored, ggml 0.26.0)";

/// TYPE names accepted on the command line, as llama.cpp's quantize tool spells them, and the
/// file type each selects. The `_S`/`_M`/`_L` k-quant types are llama.cpp's mixtures (e.g.
/// Q4_K_M: Q4_K, with Q6_K for some `attn_v`/`ffn_down` and for the output tensor); a tensor
/// whose rows are not a multiple of 256 falls back from a k-quant to a 32-block type (Q4_K ->
/// Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0, IQ4_XS -> IQ4_NL), with a warning.
const FTYPES: &[(&str, sys::llama_ftype)] = &[
    ("Q4_0", sys::LLAMA_FTYPE_MOSTLY_Q4_0),
    ("Q4_1", sys::LLAMA_FTYPE_MOSTLY_Q4_1),
    ("Q5_0", sys::LLAMA_FTYPE_MOSTLY_Q5_0),
    ("Q5_1", sys::LLAMA_FTYPE_MOSTLY_Q5_1),
    ("Q8_0", sys::LLAMA_FTYPE_MOSTLY_Q8_0),
    ("Q2_K", sys::LLAMA_FTYPE_MOSTLY_Q2_K),
    ("Q3_K_S", sys::LLAMA_FTYPE_MOSTLY_Q3_K_S),
    ("Q3_K_M", sys::LLAMA_FTYPE_MOSTLY_Q3_K_M),
    ("Q3_K_L", sys::LLAMA_FTYPE_MOSTLY_Q3_K_L),
    ("Q4_K_S", sys::LLAMA_FTYPE_MOSTLY_Q4_K_S),
    ("Q4_K_M", sys::LLAMA_FTYPE_MOSTLY_Q4_K_M),
    ("Q5_K_S", sys::LLAMA_FTYPE_MOSTLY_Q5_K_S),
    ("Q5_K_M", sys::LLAMA_FTYPE_MOSTLY_Q5_K_M),
    ("Q6_K", sys::LLAMA_FTYPE_MOSTLY_Q6_K),
    ("IQ4_NL", sys::LLAMA_FTYPE_MOSTLY_IQ4_NL),
    ("IQ4_XS", sys::LLAMA_FTYPE_MOSTLY_IQ4_XS),
    ("F16", sys::LLAMA_FTYPE_MOSTLY_F16),
    ("BF16", sys::LLAMA_FTYPE_MOSTLY_BF16),
    ("F32", sys::LLAMA_FTYPE_ALL_F32),
    // Aliases, as in llama.cpp's tool.
    ("Q3_K", sys::LLAMA_FTYPE_MOSTLY_Q3_K_M),
    ("Q4_K", sys::LLAMA_FTYPE_MOSTLY_Q4_K_M),
    ("Q5_K", sys::LLAMA_FTYPE_MOSTLY_Q5_K_M),
];

const USAGE: &str = "usage: llama-quantize INPUT.gguf OUTPUT.gguf TYPE [--allow-requantize] \
                     [--pure] [-t N] [--output-tensor-type T] [--token-embedding-type T] [-v]";

#[derive(Debug)]
struct Args {
    input: PathBuf,
    output: PathBuf,
    /// Index into FTYPES.
    ftype: usize,
    allow_requantize: bool,
    pure: bool,
    /// 0: llama.cpp uses every hardware thread.
    threads: i32,
    output_tensor_type: Option<sys::ggml_type>,
    token_embedding_type: Option<sys::ggml_type>,
    verbose: bool,
}

fn help() -> String {
    let options = [
        "--allow-requantize        allow quantizing tensors that are already quantized",
        "--pure                    no k-quant mixture: every tensor gets TYPE's base type",
        "-t N                      threads (default 0: all hardware threads)",
        "--output-tensor-type T    ggml type of output.weight (e.g. q8_0, q6_K, f16)",
        "--token-embedding-type T  ggml type of token_embd.weight",
        "-v                        llama.cpp's whole log, with a line per tensor (default:",
        "                          errors, and warnings except per-tensor fallback lines)",
    ];
    let names: Vec<&str> = FTYPES.iter().map(|(n, _)| *n).collect();
    format!(
        "{USAGE}\n\nRequantizes INPUT with llama.cpp's quantizer ({VERSION}).\n  {}\n\n\
         TYPE (case-insensitive): {}\n",
        options.join("\n  "),
        names.join(" ")
    )
}

/// The FTYPES index of a TYPE name, case-insensitively.
fn parse_ftype(name: &str) -> Result<usize, String> {
    FTYPES
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let names: Vec<&str> = FTYPES.iter().map(|(n, _)| *n).collect();
            format!("unknown TYPE '{name}'; one of: {}", names.join(" "))
        })
}

/// A ggml tensor type by its `ggml_type_name` (q8_0, q6_K, f16, ...), case-insensitively, the
/// way llama.cpp's quantize tool parses `--output-tensor-type`.
fn parse_ggml_type(flag: &str, name: &str) -> Result<sys::ggml_type, String> {
    let mut known = Vec::new();
    for t in 0..sys::GGML_TYPE_COUNT {
        // SAFETY: ggml_type_name takes any value below GGML_TYPE_COUNT and returns a static
        // NUL-terminated string (or null for none).
        let p = unsafe { sys::ggml_type_name(t) };
        if p.is_null() {
            continue;
        }
        // SAFETY: non-null, static and NUL-terminated (above).
        let tn = unsafe { CStr::from_ptr(p) }.to_string_lossy();
        if tn.eq_ignore_ascii_case(name) {
            return Ok(t);
        }
        if tn != "DEPRECATED" {
            known.push(tn.into_owned());
        }
    }
    Err(format!(
        "{flag}: unknown ggml type '{name}'; one of: {}",
        known.join(" ")
    ))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut a = Args {
        input: PathBuf::new(),
        output: PathBuf::new(),
        ftype: 0,
        allow_requantize: false,
        pure: false,
        threads: 0,
        output_tensor_type: None,
        token_embedding_type: None,
        verbose: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--allow-requantize" => a.allow_requantize = true,
            "--pure" => a.pure = true,
            "-t" | "--threads" => {
                let v = value("-t")?;
                a.threads = v
                    .parse::<u16>()
                    .map_err(|_| format!("-t: not a thread count: {v}"))?
                    .into();
            }
            "--output-tensor-type" => {
                let v = value("--output-tensor-type")?;
                a.output_tensor_type = Some(parse_ggml_type("--output-tensor-type", &v)?);
            }
            "--token-embedding-type" => {
                let v = value("--token-embedding-type")?;
                a.token_embedding_type = Some(parse_ggml_type("--token-embedding-type", &v)?);
            }
            "-v" | "--verbose" => a.verbose = true,
            "-h" | "--help" => {
                print!("{}", help());
                std::process::exit(0);
            }
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}\n{USAGE}"))
            }
            _ => positional.push(arg),
        }
    }
    let [input, output, ftype] = <[String; 3]>::try_from(positional).map_err(|p| {
        format!(
            "expected INPUT OUTPUT TYPE, got {} argument(s)\n{USAGE}",
            p.len()
        )
    })?;
    a.input = input.into();
    a.output = output.into();
    a.ftype = parse_ftype(&ftype)?;
    Ok(a)
}

/// Whether all of llama.cpp's log is shown (`-v`); otherwise errors and warnings only.
static VERBOSE: AtomicBool = AtomicBool::new(false);
/// Whether the previous piece was shown, for GGML_LOG_LEVEL_CONT (a continuation of it).
static SHOWN: AtomicBool = AtomicBool::new(false);
/// Inside one of the per-tensor "ncols not divisible ... falling back to" lines, which
/// llama.cpp writes as several WARN pieces ending with a newline.
static IN_FALLBACK: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn log_filtered(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string, valid during the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let verbose = VERBOSE.load(Ordering::Relaxed);
    let show = match level {
        sys::GGML_LOG_LEVEL_ERROR => true,
        sys::GGML_LOG_LEVEL_WARN => {
            // The per-tensor fallback lines (up to one per tensor) are shown with -v only;
            // llama.cpp's summary ("N of M tensor(s) required fallback quantization") always.
            let fallback = IN_FALLBACK.load(Ordering::Relaxed)
                || (text.starts_with("warning: ") && text.contains("not divisible by"));
            IN_FALLBACK.store(fallback && !text.ends_with('\n'), Ordering::Relaxed);
            verbose || !fallback
        }
        sys::GGML_LOG_LEVEL_CONT => SHOWN.load(Ordering::Relaxed),
        _ => verbose,
    };
    SHOWN.store(show, Ordering::Relaxed);
    if show {
        eprint!("{text}");
    }
}

/// `OUTPUT.part`: where llama.cpp writes before the rename.
fn part_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn run(a: &Args) -> Result<(), String> {
    let (type_name, ftype) = FTYPES[a.ftype];
    let in_meta = std::fs::metadata(&a.input)
        .map_err(|e| format!("cannot read input {}: {e}", a.input.display()))?;
    if !in_meta.is_file() {
        return Err(format!("input {} is not a file", a.input.display()));
    }
    let part = part_path(&a.output);
    for target in [&a.output, &part] {
        if let Ok(m) = std::fs::metadata(target) {
            if m.dev() == in_meta.dev() && m.ino() == in_meta.ino() {
                return Err(format!(
                    "{} is the input file; refusing to overwrite it",
                    target.display()
                ));
            }
        }
    }
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(format!("output directory {} does not exist", dir.display()));
        }
    }
    let c_in = CString::new(a.input.as_os_str().as_encoded_bytes())
        .map_err(|_| "input path contains NUL")?;
    let c_part = CString::new(part.as_os_str().as_encoded_bytes())
        .map_err(|_| "output path contains NUL")?;

    VERBOSE.store(a.verbose, Ordering::Relaxed);
    let t = Instant::now();
    // SAFETY: the raw llama.cpp C API as its quantize tool uses it: log callback, backend init,
    // default parameters changed field by field, then llama_model_quantize with two
    // NUL-terminated paths and a pointer to parameters that outlive the call; the pointer
    // fields of the parameters (imatrix, overrides) stay null as the defaults set them.
    let rc = unsafe {
        sys::llama_log_set(Some(log_filtered), std::ptr::null_mut());
        sys::llama_backend_init();
        let mut p = sys::llama_model_quantize_default_params();
        p.ftype = ftype;
        p.nthread = a.threads;
        p.allow_requantize = a.allow_requantize;
        p.pure_ = a.pure;
        if let Some(t) = a.output_tensor_type {
            p.output_tensor_type = t;
        }
        if let Some(t) = a.token_embedding_type {
            p.token_embedding_type = t;
        }
        let rc = sys::llama_model_quantize(c_in.as_ptr(), c_part.as_ptr(), &p);
        sys::llama_backend_free();
        rc
    };
    if rc != 0 {
        let _ = std::fs::remove_file(&part);
        let hint = if a.allow_requantize {
            ""
        } else {
            " (an already quantized input needs --allow-requantize)"
        };
        return Err(format!(
            "llama_model_quantize failed (returned {rc}) for {} -> {type_name}; llama.cpp's \
             message is above{hint}",
            a.input.display()
        ));
    }
    std::fs::rename(&part, &a.output).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            part.display(),
            a.output.display()
        )
    })?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "llama-quantize: {} -> {} ({type_name}): {:.1} MiB -> {:.1} MiB in {:.1} s",
        a.input.display(),
        a.output.display(),
        in_meta.len() as f64 / (1 << 20) as f64,
        size as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("llama-quantize: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama-quantize: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn type_names_are_case_insensitive_and_map_to_llama_ftypes() {
        let a = args("in.gguf out.gguf q4_k_m --allow-requantize -t 2").unwrap();
        assert_eq!(FTYPES[a.ftype].1, sys::LLAMA_FTYPE_MOSTLY_Q4_K_M);
        assert!(a.allow_requantize && !a.pure);
        assert_eq!(a.threads, 2);
        assert_eq!(
            FTYPES[parse_ftype("F32").unwrap()].1,
            sys::LLAMA_FTYPE_ALL_F32
        );
        assert_eq!(
            FTYPES[parse_ftype("iq4_xs").unwrap()].1,
            sys::LLAMA_FTYPE_MOSTLY_IQ4_XS
        );
        assert!(parse_ftype("Q4_2").unwrap_err().contains("Q4_K_M"));
    }

    #[test]
    fn tensor_types_use_ggml_names() {
        let a = args("--output-tensor-type Q8_0 --token-embedding-type q6_k a b Q6_K").unwrap();
        assert_eq!(a.output_tensor_type, Some(sys::GGML_TYPE_Q8_0));
        assert_eq!(a.token_embedding_type, Some(sys::GGML_TYPE_Q6_K));
        assert!(args("a b Q8_0 --output-tensor-type q9").is_err());
    }

    #[test]
    fn wrong_arity_and_unknown_flags_are_errors() {
        assert!(args("a b").unwrap_err().contains("got 2"));
        assert!(args("a b c d").unwrap_err().contains("got 4"));
        assert!(args("a b Q8_0 --leave-output-tensor")
            .unwrap_err()
            .contains("unknown option"));
        assert!(args("a b Q8_0 -t").unwrap_err().contains("needs a value"));
    }
}
