//! `llama-logits`: llama.cpp's logits on Eddy's synthetic models (issue #12).
//!
//! For each spec of `runtime/tests/synth/mod.rs` (one per architecture feature set), builds the
//! random-weight GGUF (byte-identical to what the test builds), writes it to a temporary file,
//! evaluates the fixed token sequence in llama.cpp in one batch with logits for every position,
//! and writes `runtime/tests/data/synthetic/<name>.json`: the FNV-1a hash and size of the GGUF,
//! the ids, and per position the log-sum-exp over the vocabulary and the top 10 `[id, logit]`.
//!
//! llama.cpp runs its exact path: F32 K/V cache, flash attention off, weights not repacked
//! (`use_extra_bufts = false`: Q8_0 matrices go through the plain `vec_dot`), one thread,
//! `n_ctx = n_batch = n_ubatch = 256`.
//!
//! Diagnostics (printed, nothing written): `--noise` compares the exact path with llama.cpp's
//! repacked weights and with its token-by-token evaluation (llama.cpp against itself: the
//! floor for any tolerance; flash attention changes only the order of the f32 arithmetic);
//! `--sensitivity` runs llama.cpp on copies of each model with one feature broken the way an
//! implementation could get it wrong (a RoPE factor table scaled or ignored, Phi-3's long and
//! short sets swapped, its attention factor ignored, Qwen2's biases or Qwen3's head-norm
//! weights dropped) and reports how far the logits move: a bug's size, against which the
//! test's tolerances are set. Scaling a factor table also shows whether llama.cpp uses it at
//! all (bit-identical logits: not used).

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use eddy::gguf::Gguf;
use llama_cpp_sys_2 as sys;

#[path = "../../../../runtime/tests/synth/mod.rs"]
mod synth;

// Declared in ggml-cpu.h (not bound by the sys crate): whether ggml was COMPILED with AMX.
extern "C" {
    fn ggml_cpu_has_amx_int8() -> i32;
}

const VERSION: &str = "llama-cpp-sys-2 0.1.161 (llama.cpp vendored, ggml 0.26.0)";
const TOP: usize = 10;

struct Args {
    models: PathBuf,
    out: PathBuf,
    only: Vec<String>,
    noise: bool,
    sensitivity: bool,
    verbose: bool,
}

const USAGE: &str = "usage: llama-logits [--models DIR] [--out DIR] [--only NAME]... [--noise] \
                     [--sensitivity] [-v]";

fn parse_args() -> Result<Args, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        models: root.join("models"),
        out: root.join("runtime/tests/data/synthetic"),
        only: Vec::new(),
        noise: false,
        sensitivity: false,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--models" => a.models = value("--models")?.into(),
            "--out" => a.out = value("--out")?.into(),
            "--only" => a.only.push(value("--only")?),
            "--noise" => a.noise = true,
            "--sensitivity" => a.sensitivity = true,
            "-v" | "--verbose" => a.verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    for name in &a.only {
        if synth::spec(name).is_none() {
            let names: Vec<&str> = synth::SPECS.iter().map(|s| s.name).collect();
            return Err(format!("no spec {name} (specs: {})", names.join(", ")));
        }
    }
    Ok(a)
}

unsafe extern "C" fn log_silent(
    _level: sys::ggml_log_level,
    _text: *const c_char,
    _ud: *mut c_void,
) {
}

unsafe extern "C" fn log_stderr(
    _level: sys::ggml_log_level,
    text: *const c_char,
    _ud: *mut c_void,
) {
    if !text.is_null() {
        // SAFETY: llama.cpp passes a NUL-terminated string.
        eprint!("{}", unsafe { CStr::from_ptr(text) }.to_string_lossy());
    }
}

/// How llama.cpp evaluates the sequence.
#[derive(Clone, Copy)]
struct Mode {
    /// Weight repacking (llama.cpp's default); off on the exact path.
    repack: bool,
    /// One `llama_decode` per token instead of one batch.
    one_by_one: bool,
    /// Flash attention (still with the F32 K/V cache): the same maths with an online softmax,
    /// so only the f32 rounding differs.
    flash: bool,
}

const EXACT: Mode = Mode {
    repack: false,
    one_by_one: false,
    flash: false,
};

/// llama.cpp's logits for every position of `tokens` (row i: the logits after token i).
fn llama_logits(path: &Path, tokens: &[i32], mode: Mode) -> Result<Vec<Vec<f32>>, String> {
    let cpath = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| "NUL in path")?;
    // SAFETY: the raw llama.cpp C API in its documented order (model, context, batch, decode,
    // logits); every pointer is checked for null, the batch is sized for the tokens written
    // into it, logits are read only for positions that requested them, and everything is
    // freed once.
    unsafe {
        let mut mparams = sys::llama_model_default_params();
        mparams.use_extra_bufts = mode.repack;
        let model = sys::llama_model_load_from_file(cpath.as_ptr(), mparams);
        if model.is_null() {
            return Err(format!("llama.cpp cannot load {}", path.display()));
        }
        let n_vocab = sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(model)) as usize;
        let mut cparams = sys::llama_context_default_params();
        cparams.n_ctx = synth::N_CTX as u32;
        cparams.n_batch = synth::N_CTX as u32;
        cparams.n_ubatch = synth::N_CTX as u32;
        cparams.n_seq_max = 1;
        cparams.n_threads = 1;
        cparams.n_threads_batch = 1;
        cparams.type_k = sys::GGML_TYPE_F32;
        cparams.type_v = sys::GGML_TYPE_F32;
        cparams.flash_attn_type = if mode.flash {
            sys::LLAMA_FLASH_ATTN_TYPE_ENABLED
        } else {
            sys::LLAMA_FLASH_ATTN_TYPE_DISABLED
        };
        cparams.no_perf = true;
        let ctx = sys::llama_init_from_model(model, cparams);
        if ctx.is_null() {
            sys::llama_model_free(model);
            return Err("cannot create the llama.cpp context".into());
        }
        let n_ctx = sys::llama_n_ctx(ctx) as usize;
        let mut result = if n_ctx == synth::N_CTX {
            Ok(Vec::new())
        } else {
            Err(format!(
                "llama.cpp made a context of {n_ctx}, not {}",
                synth::N_CTX
            ))
        };
        let chunks: Vec<(usize, &[i32])> = if mode.one_by_one {
            tokens.chunks(1).enumerate().collect()
        } else {
            vec![(0, tokens)]
        };
        for (first, chunk) in chunks {
            if result.is_err() {
                break;
            }
            let first = if mode.one_by_one { first } else { 0 };
            let mut batch = sys::llama_batch_init(chunk.len() as i32, 0, 1);
            for (i, &t) in chunk.iter().enumerate() {
                *batch.token.add(i) = t;
                *batch.pos.add(i) = (first + i) as i32;
                *batch.n_seq_id.add(i) = 1;
                *(*batch.seq_id.add(i)) = 0;
                *batch.logits.add(i) = 1;
            }
            batch.n_tokens = chunk.len() as i32;
            let rc = sys::llama_decode(ctx, batch);
            sys::llama_synchronize(ctx);
            if rc != 0 {
                result = Err(format!("llama_decode returned {rc}"));
            } else if let Ok(rows) = result.as_mut() {
                for i in 0..chunk.len() {
                    let p = sys::llama_get_logits_ith(ctx, i as i32);
                    if p.is_null() {
                        result = Err(format!("no logits for position {}", first + i));
                        break;
                    }
                    rows.push(std::slice::from_raw_parts(p, n_vocab).to_vec());
                }
            }
            sys::llama_batch_free(batch);
        }
        sys::llama_free(ctx);
        sys::llama_model_free(model);
        result
    }
}

fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
}

/// The `k` largest logits, best first (ties: lower id first).
fn top_k(x: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, x[i])).collect()
}

/// Max and median of |a-b| over each row's top-5 (taken in `a`).
fn top5_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, f32) {
    let mut d: Vec<f32> = Vec::new();
    for (ra, rb) in a.iter().zip(b) {
        for (id, v) in top_k(ra, 5) {
            d.push((v - rb[id]).abs());
        }
    }
    d.sort_by(f32::total_cmp);
    (*d.last().unwrap_or(&0.0), d[d.len() / 2])
}

fn json(spec: &synth::Spec, bytes: &[u8], ids: &[i32], rows: &[Vec<f32>]) -> String {
    let mut s = String::new();
    s.push_str("{\n");
    s.push_str(&format!("  \"name\": \"{}\",\n", spec.name));
    s.push_str(&format!("  \"arch\": \"{}\",\n", spec.family.arch()));
    s.push_str(&format!("  \"llama_cpp\": \"{VERSION}\",\n"));
    s.push_str(
        "  \"settings\": \"F32 K/V, flash attention off, no weight repacking, 1 thread, one \
         batch with logits for every position\",\n",
    );
    s.push_str(&format!(
        "  \"gguf_fnv1a64\": \"{:016x}\",\n",
        synth::fnv1a64(bytes)
    ));
    s.push_str(&format!("  \"gguf_bytes\": {},\n", bytes.len()));
    s.push_str(&format!("  \"n_ctx\": {},\n", synth::N_CTX));
    s.push_str(&format!(
        "  \"rope_factors\": \"{}\",\n",
        spec.rope_factors_used(synth::N_CTX)
    ));
    let ids_s: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    s.push_str(&format!("  \"ids\": [{}],\n", ids_s.join(", ")));
    s.push_str("  \"positions\": [\n");
    for (pos, row) in rows.iter().enumerate() {
        let top: Vec<String> = top_k(row, TOP)
            .iter()
            .map(|(id, v)| format!("[{id}, {v:?}]"))
            .collect();
        s.push_str(&format!(
            "    {{\"pos\": {pos}, \"logsumexp\": {:?}, \"top\": [{}]}}{}\n",
            logsumexp(row),
            top.join(", "),
            if pos + 1 < rows.len() { "," } else { "" }
        ));
    }
    s.push_str("  ]\n}\n");
    s
}

/// `bytes` with every F32 tensor whose name ends with `suffix` rewritten element by element by
/// `f(index, value)`.
fn patched(bytes: &[u8], suffix: &str, f: impl Fn(usize, f32) -> f32) -> Result<Vec<u8>, String> {
    let g = Gguf::from_vec(bytes.to_vec()).map_err(|e| e.to_string())?;
    let mut out = bytes.to_vec();
    let mut found = false;
    for t in g.tensors().filter(|t| t.name.ends_with(suffix)) {
        if t.ty != eddy::GgmlType::F32 {
            return Err(format!("{} is not F32", t.name));
        }
        found = true;
        let start = t.file_offset as usize;
        for (i, c) in out[start..start + t.data.len()]
            .chunks_exact_mut(4)
            .enumerate()
        {
            let v = f(i, f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            c.copy_from_slice(&v.to_le_bytes());
        }
    }
    if !found {
        return Err(format!("no tensor named *{suffix}"));
    }
    Ok(out)
}

/// The values of the F32 tensor `name`.
fn f32_tensor(bytes: &[u8], name: &str) -> Result<Vec<f32>, String> {
    let g = Gguf::from_vec(bytes.to_vec()).map_err(|e| e.to_string())?;
    let t = g.tensor(name).ok_or_else(|| format!("no tensor {name}"))?;
    Ok(t.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Copies of `spec`'s model with one feature broken, labelled.
fn broken_variants(
    spec: &synth::Spec,
    donor: &Gguf,
    bytes: &[u8],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut v = Vec::new();
    if spec.rope_freqs {
        v.push((
            "rope_freqs x1.5".into(),
            patched(bytes, "rope_freqs.weight", |_, x| x * 1.5)?,
        ));
        v.push((
            "rope_freqs ignored (all 1)".into(),
            patched(bytes, "rope_freqs.weight", |_, _| 1.0)?,
        ));
    }
    if let Some(l) = spec.long_rope {
        let short = f32_tensor(bytes, "rope_factors_short.weight")?;
        let long = f32_tensor(bytes, "rope_factors_long.weight")?;
        v.push((
            "rope_factors_short x1.5".into(),
            patched(bytes, "rope_factors_short.weight", |_, x| x * 1.5)?,
        ));
        v.push((
            "rope_factors_long x1.5".into(),
            patched(bytes, "rope_factors_long.weight", |_, x| x * 1.5)?,
        ));
        // The set llama.cpp does not use replaced by the one it uses: what an implementation
        // choosing the other set computes.
        let swapped = if spec.rope_factors_used(synth::N_CTX) == "long" {
            patched(bytes, "rope_factors_long.weight", |i, _| short[i])?
        } else {
            patched(bytes, "rope_factors_short.weight", |i, _| long[i])?
        };
        v.push(("the other factor set".into(), swapped));
        let mut no_factor = *spec;
        no_factor.long_rope = Some(synth::LongRope {
            attn_factor: 1.0,
            ..l
        });
        v.push((
            "attn_factor ignored (1.0)".into(),
            synth::build(&no_factor, donor),
        ));
    }
    if spec.family == synth::Family::Qwen2 {
        let mut b = bytes.to_vec();
        for t in ["attn_q.bias", "attn_k.bias", "attn_v.bias"] {
            b = patched(&b, t, |_, _| 0.0)?;
        }
        v.push(("Q/K/V biases dropped".into(), b));
        v.push((
            "K bias dropped".into(),
            patched(bytes, "attn_k.bias", |_, _| 0.0)?,
        ));
    }
    if spec.family == synth::Family::Qwen3 {
        let b = patched(bytes, "attn_q_norm.weight", |_, _| 1.0)?;
        v.push((
            "Q/K head-norm weights ignored (all 1)".into(),
            patched(&b, "attn_k_norm.weight", |_, _| 1.0)?,
        ));
    }
    Ok(v)
}

/// One line comparing `other` with the reference `rows`: top-5 differences, log-sum-exp,
/// and where the argmax changes, the largest reference top-2 gap at which it did.
fn summary(rows: &[Vec<f32>], other: &[Vec<f32>]) -> String {
    let (max, median) = top5_diff(rows, other);
    let lse = rows
        .iter()
        .zip(other)
        .map(|(a, b)| (logsumexp(a) - logsumexp(b)).abs())
        .fold(0f64, f64::max);
    let mut flips = 0;
    let mut flip_gap = 0f32;
    for (a, b) in rows.iter().zip(other) {
        let t = top_k(a, 2);
        if top_k(b, 1)[0].0 != t[0].0 {
            flips += 1;
            flip_gap = flip_gap.max(t[0].1 - t[1].1);
        }
    }
    format!(
        "top-5 |diff| max {max:.2e} median {median:.2e}, logsumexp max {lse:.2e}, argmax \
         changed at {flips} of {} positions{}",
        rows.len(),
        if flips > 0 {
            format!(" (largest gap {flip_gap:.3})")
        } else {
            String::new()
        }
    )
}

fn write_temp(name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join(format!("eddy-synth-{name}-{}.gguf", std::process::id()));
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn run_spec(a: &Args, spec: &synth::Spec, donor: &Gguf) -> Result<(), String> {
    let bytes = synth::build(spec, donor);
    let again = synth::build(spec, donor);
    if bytes != again {
        return Err(format!("{}: the generator is not deterministic", spec.name));
    }
    let ids: Vec<i32> = synth::tokens(synth::donor_vocab_size(donor))
        .iter()
        .map(|&t| t as i32)
        .collect();
    let path = write_temp(spec.name, &bytes)?;
    let rows = llama_logits(&path, &ids, EXACT);
    let _ = std::fs::remove_file(&path);
    let rows = rows?;

    let out = a.out.join(format!("{}.json", spec.name));
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    std::fs::write(&out, json(spec, &bytes, &ids, &rows))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut gaps: Vec<f32> = rows
        .iter()
        .map(|r| {
            let t = top_k(r, 2);
            t[0].1 - t[1].1
        })
        .collect();
    gaps.sort_by(f32::total_cmp);
    let lse: Vec<f64> = rows.iter().map(|r| logsumexp(r)).collect();
    println!(
        "{:<10} {} bytes, fnv1a64 {:016x}, rope factors {}: top-2 gap min {:.3} median {:.3}, \
         {} of {} below 0.1; logsumexp {:.2}..{:.2} -> {}",
        spec.name,
        bytes.len(),
        synth::fnv1a64(&bytes),
        spec.rope_factors_used(synth::N_CTX),
        gaps[0],
        gaps[gaps.len() / 2],
        gaps.iter().filter(|&&g| g < 0.1).count(),
        gaps.len(),
        lse.iter().copied().fold(f64::MAX, f64::min),
        lse.iter().copied().fold(f64::MIN, f64::max),
        out.display()
    );

    if a.noise {
        for (label, mode) in [
            (
                "repacked weights",
                Mode {
                    repack: true,
                    ..EXACT
                },
            ),
            (
                "token by token",
                Mode {
                    one_by_one: true,
                    ..EXACT
                },
            ),
            (
                "flash attention (f32 K/V)",
                Mode {
                    flash: true,
                    ..EXACT
                },
            ),
        ] {
            let path = write_temp(spec.name, &bytes)?;
            let other = llama_logits(&path, &ids, mode);
            let _ = std::fs::remove_file(&path);
            println!(
                "    llama.cpp exact vs {label}: {}",
                summary(&rows, &other?)
            );
        }
    }

    if a.sensitivity {
        for (label, b) in broken_variants(spec, donor, &bytes)? {
            let path = write_temp(spec.name, &b)?;
            let other = llama_logits(&path, &ids, EXACT);
            let _ = std::fs::remove_file(&path);
            let other = other?;
            let verdict = if other == rows { "bit-identical; " } else { "" };
            println!("    {label}: {verdict}{}", summary(&rows, &other));
        }
    }
    Ok(())
}

fn run(a: &Args) -> Result<(), String> {
    // SAFETY: a getter without arguments.
    if unsafe { ggml_cpu_has_amx_int8() } != 0 {
        // This VM advertises AMX but faults on AMX instructions (see README.md).
        return Err(
            "ggml was built with AMX; rebuild from tools/llama-bench (.cargo/config.toml)".into(),
        );
    }
    let donor_path = a.models.join(synth::DONOR);
    let donor = Gguf::open(&donor_path).map_err(|e| format!("{}: {e}", donor_path.display()))?;
    // SAFETY: llama.cpp's global setup, once, before any model is loaded.
    unsafe {
        sys::llama_log_set(
            Some(if a.verbose { log_stderr } else { log_silent }),
            std::ptr::null_mut(),
        );
        sys::llama_backend_init();
    }
    let mut result = Ok(());
    for spec in synth::SPECS {
        if !a.only.is_empty() && !a.only.iter().any(|n| n == spec.name) {
            continue;
        }
        if let Err(e) = run_spec(a, spec, &donor) {
            result = Err(e);
            break;
        }
    }
    // SAFETY: every model and context was freed in llama_logits.
    unsafe { sys::llama_backend_free() };
    result
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("llama-logits: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama-logits: {e}");
            ExitCode::FAILURE
        }
    }
}
