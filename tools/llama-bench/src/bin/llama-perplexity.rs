//! `llama-perplexity`: llama.cpp's chunked perplexity with a chosen K/V cache type, beside
//! `eddy perplexity` (its default chunked mode) for the quantized-cache table of the README.
//!
//! The convention of llama.cpp's `perplexity` tool and of Eddy's chunked mode: the text is
//! tokenized with BOS (when the model adds one), cut into chunks of `--ctx` tokens, the first
//! token of each chunk replaced by BOS, and each chunk scored from a fresh cache on its second
//! half (the negative log-likelihood of token `i + 1` from the logits at `i`, for
//! `ctx / 2 <= i < ctx - 1`), in f64.
//!
//! `llama-perplexity -m MODEL -f TEXT [--ctx 512] [--chunks N] [-t THREADS] [--cache-type-k T]
//! [--cache-type-v T]` with T one of f16, f32, q8_0, q4_0; prints one JSON object. Flash
//! attention is on (llama.cpp needs it for a quantized V cache; it is on for every type, so the
//! rows compare like with like).

use std::ffi::{c_char, c_void, CString};
use std::process::ExitCode;
use std::time::Instant;

use llama_cpp_sys_2 as sys;

struct Args {
    model: String,
    file: String,
    ctx: usize,
    chunks: Option<usize>,
    threads: i32,
    type_k: (String, sys::ggml_type),
    type_v: (String, sys::ggml_type),
}

fn cache_type(s: &str) -> Result<(String, sys::ggml_type), String> {
    let t = match s.to_ascii_lowercase().as_str() {
        "f16" => sys::GGML_TYPE_F16,
        "f32" => sys::GGML_TYPE_F32,
        "q8_0" => sys::GGML_TYPE_Q8_0,
        "q4_0" => sys::GGML_TYPE_Q4_0,
        _ => return Err(format!("cache type {s:?}: expected f16, f32, q8_0 or q4_0")),
    };
    Ok((s.to_ascii_lowercase(), t))
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: String::new(),
        file: String::new(),
        ctx: 512,
        chunks: None,
        threads: 1,
        type_k: cache_type("f16")?,
        type_v: cache_type("f16")?,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: {v:?}"));
        match flag.as_str() {
            "-m" => a.model = value()?,
            "-f" => a.file = value()?,
            "--ctx" | "-c" => a.ctx = number(value()?)?,
            "--chunks" => a.chunks = Some(number(value()?)?),
            "-t" => a.threads = number(value()?)?.clamp(1, 256) as i32,
            "--cache-type-k" | "-ctk" => a.type_k = cache_type(&value()?)?,
            "--cache-type-v" | "-ctv" => a.type_v = cache_type(&value()?)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.model.is_empty() || a.file.is_empty() {
        return Err("usage: llama-perplexity -m MODEL -f TEXT [--ctx 512] [--chunks N] [-t T] \
                    [--cache-type-k T] [--cache-type-v T]"
            .into());
    }
    if a.ctx < 4 {
        return Err("--ctx must be at least 4".into());
    }
    Ok(a)
}

unsafe extern "C" fn log_silent(_: sys::ggml_log_level, _: *const c_char, _: *mut c_void) {}

fn run(a: &Args) -> Result<String, String> {
    let text = std::fs::read_to_string(&a.file).map_err(|e| format!("{}: {e}", a.file))?;
    let path = CString::new(a.model.as_str()).map_err(|_| "model path contains NUL")?;
    // SAFETY: the raw llama.cpp C API in its documented order (backend, model, context, batch,
    // decode, logits); every pointer is checked for null, every buffer is sized by what the
    // API reports, and everything is freed once at the end.
    unsafe {
        sys::llama_log_set(Some(log_silent), std::ptr::null_mut());
        sys::llama_backend_init();
        let model = sys::llama_model_load_from_file(path.as_ptr(), sys::llama_model_default_params());
        if model.is_null() {
            return Err(format!("cannot load model {}", a.model));
        }
        let vocab = sys::llama_model_get_vocab(model);
        let n_vocab = sys::llama_vocab_n_tokens(vocab) as usize;
        let add_bos = sys::llama_vocab_get_add_bos(vocab);
        let bos = sys::llama_vocab_bos(vocab);
        // Tokenize: a first call reports the count (negative) when the buffer is too small.
        let len = text.len() as i32;
        let need = -sys::llama_tokenize(
            vocab,
            text.as_ptr().cast(),
            len,
            std::ptr::null_mut(),
            0,
            add_bos,
            false,
        );
        let mut tokens = vec![0i32; need.max(0) as usize];
        let got = sys::llama_tokenize(
            vocab,
            text.as_ptr().cast(),
            len,
            tokens.as_mut_ptr(),
            tokens.len() as i32,
            add_bos,
            false,
        );
        tokens.truncate(got.max(0) as usize);
        let available = tokens.len() / a.ctx;
        let n_chunks = a.chunks.map_or(available, |c| c.min(available));
        if n_chunks == 0 {
            sys::llama_model_free(model);
            return Err(format!("{} tokens: fewer than one chunk", tokens.len()));
        }

        let mut cp = sys::llama_context_default_params();
        cp.n_ctx = a.ctx as u32;
        cp.n_batch = a.ctx.min(512) as u32;
        cp.n_ubatch = a.ctx.min(512) as u32;
        cp.n_seq_max = 1;
        cp.n_threads = a.threads;
        cp.n_threads_batch = a.threads;
        cp.type_k = a.type_k.1;
        cp.type_v = a.type_v.1;
        cp.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_ENABLED;
        cp.no_perf = true;
        let ctx = sys::llama_init_from_model(model, cp);
        if ctx.is_null() {
            sys::llama_model_free(model);
            return Err("cannot create the llama.cpp context (cache type unsupported?)".into());
        }
        let mem = sys::llama_get_memory(ctx);
        let n_batch = a.ctx.min(512);
        let mut batch = sys::llama_batch_init(n_batch as i32, 0, 1);
        let first = a.ctx / 2;
        let (mut nll, mut count) = (0f64, 0usize);
        let t0 = Instant::now();
        let mut failed = None;
        'chunks: for c in 0..n_chunks {
            let mut chunk = tokens[c * a.ctx..(c + 1) * a.ctx].to_vec();
            if add_bos {
                chunk[0] = bos;
            }
            sys::llama_memory_clear(mem, true);
            for (b, part) in chunk.chunks(n_batch).enumerate() {
                batch.n_tokens = part.len() as i32;
                for (i, &t) in part.iter().enumerate() {
                    *batch.token.add(i) = t;
                    *batch.pos.add(i) = (b * n_batch + i) as i32;
                    *batch.n_seq_id.add(i) = 1;
                    *(*batch.seq_id.add(i)).add(0) = 0;
                    *batch.logits.add(i) = 1;
                }
                let rc = sys::llama_decode(ctx, batch);
                if rc != 0 {
                    failed = Some(format!("llama_decode returned {rc}"));
                    break 'chunks;
                }
                for i in 0..part.len() {
                    let pos = b * n_batch + i;
                    if pos < first || pos + 1 >= a.ctx {
                        continue;
                    }
                    let l = sys::llama_get_logits_ith(ctx, i as i32);
                    if l.is_null() {
                        failed = Some("no logits".into());
                        break 'chunks;
                    }
                    let l = std::slice::from_raw_parts(l, n_vocab);
                    let max = l.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let sum: f64 = l.iter().map(|&v| f64::from(v - max).exp()).sum();
                    let target = l[chunk[pos + 1] as usize];
                    nll += sum.ln() - f64::from(target - max);
                    count += 1;
                }
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        sys::llama_batch_free(batch);
        sys::llama_free(ctx);
        sys::llama_model_free(model);
        sys::llama_backend_free();
        if let Some(e) = failed {
            return Err(e);
        }
        let ppl = (nll / count as f64).exp();
        Ok(format!(
            "{{\"engine\":\"llama.cpp\",\"model\":{:?},\"ctx\":{},\"chunks\":{n_chunks},\
             \"cache_type_k\":{:?},\"cache_type_v\":{:?},\"flash_attn\":true,\"ppl\":{ppl},\
             \"tokens_scored\":{count},\"seconds\":{seconds}}}",
            a.model, a.ctx, a.type_k.0, a.type_v.0
        ))
    }
}

fn main() -> ExitCode {
    match parse().and_then(|a| run(&a)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("llama-perplexity: {e}");
            ExitCode::FAILURE
        }
    }
}
