//! `llama-bench`: llama.cpp's pp/tg speed, measured the way `eddy bench` measures Eddy's, so
//! that the two can be run side by side (scripts/bench-vs-llama.sh).
//!
//! Method (as in shared/golden/speed.json): a prompt of `-p` tokens decoded as one batch (pp),
//! then `-n` tokens decoded one at a time with greedy argmax (tg); timings around llama_decode
//! only; best of `-r` repetitions after one warm-up; the KV cache is cleared before each.
//! Prompt token i is (i*7919 + 17) % min(n_vocab, 30000), the same synthetic prompt as eddy's.

use std::ffi::{c_char, c_void, CStr, CString};
use std::process::ExitCode;
use std::time::Instant;

use llama_cpp_sys_2 as sys;

const VERSION: &str = "llama-cpp-sys-2 0.1.161 (llama.cpp vendored, ggml 0.26.0)";

// Declared in ggml-cpu.h, which the sys crate does not bind; linked in with the CPU backend.
// Each reports what the library was COMPILED with (#if defined(__AVX512F__) ...).
extern "C" {
    fn ggml_cpu_has_avx2() -> i32;
    fn ggml_cpu_has_fma() -> i32;
    fn ggml_cpu_has_f16c() -> i32;
    fn ggml_cpu_has_avx512() -> i32;
    fn ggml_cpu_has_avx512_vbmi() -> i32;
    fn ggml_cpu_has_avx512_vnni() -> i32;
    fn ggml_cpu_has_avx512_bf16() -> i32;
    fn ggml_cpu_has_amx_int8() -> i32;
}

struct Args {
    model: String,
    threads: i32,
    prompt: usize,
    n_gen: usize,
    reps: usize,
    json: bool,
    verbose: bool,
}

const USAGE: &str =
    "usage: llama-bench -m MODEL [-t THREADS=1] [-p 128] [-n 64] [-r 3] [--json] [-v]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: String::new(),
        threads: 1,
        prompt: 128,
        n_gen: 64,
        reps: 3,
        json: false,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |s: String, name: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("{name}: not a number: {s}"))
        };
        match flag.as_str() {
            "-m" | "--model" => a.model = value("-m")?,
            "-t" | "--threads" => a.threads = num(value("-t")?, "-t")? as i32,
            "-p" | "--prompt" => a.prompt = num(value("-p")?, "-p")?,
            "-n" | "--n-gen" => a.n_gen = num(value("-n")?, "-n")?,
            "-r" | "--reps" => a.reps = num(value("-r")?, "-r")?,
            "--json" => a.json = true,
            "-v" | "--verbose" => a.verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.model.is_empty() {
        return Err(format!("-m MODEL is required\n{USAGE}"));
    }
    if a.threads < 1 || a.prompt == 0 || a.n_gen == 0 || a.reps == 0 {
        return Err("-t, -p, -n and -r must be at least 1".into());
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

/// The instruction sets ggml was compiled with, e.g. "AVX2 FMA F16C AVX512 AVX512_VNNI".
fn ggml_cpu_features() -> (String, bool) {
    // SAFETY: plain getters without arguments.
    unsafe {
        let list = [
            ("AVX2", ggml_cpu_has_avx2()),
            ("FMA", ggml_cpu_has_fma()),
            ("F16C", ggml_cpu_has_f16c()),
            ("AVX512", ggml_cpu_has_avx512()),
            ("AVX512_VBMI", ggml_cpu_has_avx512_vbmi()),
            ("AVX512_VNNI", ggml_cpu_has_avx512_vnni()),
            ("AVX512_BF16", ggml_cpu_has_avx512_bf16()),
            ("AMX_INT8", ggml_cpu_has_amx_int8()),
        ];
        let names: Vec<&str> = list
            .iter()
            .filter(|(_, on)| *on != 0)
            .map(|(n, _)| *n)
            .collect();
        (names.join(" "), ggml_cpu_has_amx_int8() != 0)
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn argmax(logits: &[f32]) -> i32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as i32
}

fn run(a: &Args) -> Result<(), String> {
    let (features, has_amx) = ggml_cpu_features();
    if has_amx {
        // This VM advertises AMX but faults on AMX instructions; the golden numbers are AMX off.
        return Err(format!(
            "ggml was built with AMX ({features}); rebuild from tools/llama-bench so that \
             .cargo/config.toml applies (GGML_AMX_*=OFF, no target-cpu=native)"
        ));
    }
    let path = CString::new(a.model.as_str()).map_err(|_| "model path contains NUL")?;
    // SAFETY: the raw llama.cpp C API, used in the documented order: backend init, model,
    // context, decode; every pointer is checked for null and freed once at the end.
    unsafe {
        sys::llama_log_set(
            Some(if a.verbose { log_stderr } else { log_silent }),
            std::ptr::null_mut(),
        );
        sys::llama_backend_init();
        if a.verbose {
            eprintln!(
                "system info: {}",
                CStr::from_ptr(sys::llama_print_system_info()).to_string_lossy()
            );
        }
        let mparams = sys::llama_model_default_params();
        let model = sys::llama_model_load_from_file(path.as_ptr(), mparams);
        if model.is_null() {
            return Err(format!("cannot load model {}", a.model));
        }
        let vocab = sys::llama_model_get_vocab(model);
        let n_vocab = sys::llama_vocab_n_tokens(vocab) as usize;

        let mut cparams = sys::llama_context_default_params();
        let n_batch = a.prompt.max(128);
        cparams.n_ctx = (a.prompt + a.n_gen).max(256) as u32;
        cparams.n_batch = n_batch as u32;
        cparams.n_ubatch = n_batch.min(512) as u32;
        cparams.n_seq_max = 1;
        cparams.n_threads = a.threads;
        cparams.n_threads_batch = a.threads;
        cparams.no_perf = true;
        let ctx = sys::llama_init_from_model(model, cparams);
        if ctx.is_null() {
            sys::llama_model_free(model);
            return Err("cannot create the llama.cpp context".into());
        }
        let mem = sys::llama_get_memory(ctx);

        let prompt: Vec<i32> = (0..a.prompt)
            .map(|i| ((i * 7919 + 17) % n_vocab.min(30000)) as i32)
            .collect();
        let (mut best_pp, mut best_tg) = (f64::MAX, f64::MAX);
        let mut result = Ok(());
        'reps: for rep in 0..=a.reps {
            sys::llama_memory_clear(mem, true);
            let mut tokens = prompt.clone();
            // llama_batch_get_one: sequence 0, positions tracked by llama_decode, logits of the
            // last token only.
            let batch = sys::llama_batch_get_one(tokens.as_mut_ptr(), tokens.len() as i32);
            let t = Instant::now();
            let rc = sys::llama_decode(ctx, batch);
            sys::llama_synchronize(ctx);
            let pp = t.elapsed().as_secs_f64();
            if rc != 0 {
                result = Err(format!("llama_decode (prompt) returned {rc}"));
                break 'reps;
            }
            let mut tg = 0.0;
            for _ in 0..a.n_gen {
                let logits = sys::llama_get_logits_ith(ctx, -1);
                if logits.is_null() {
                    result = Err("no logits".into());
                    break 'reps;
                }
                let mut next = [argmax(std::slice::from_raw_parts(logits, n_vocab))];
                let batch = sys::llama_batch_get_one(next.as_mut_ptr(), 1);
                let t = Instant::now();
                let rc = sys::llama_decode(ctx, batch);
                sys::llama_synchronize(ctx);
                tg += t.elapsed().as_secs_f64();
                if rc != 0 {
                    result = Err(format!("llama_decode (generation) returned {rc}"));
                    break 'reps;
                }
            }
            if rep > 0 {
                // Repetition 0 is the warm-up.
                best_pp = best_pp.min(pp);
                best_tg = best_tg.min(tg);
            }
        }
        sys::llama_free(ctx);
        sys::llama_model_free(model);
        sys::llama_backend_free();
        result?;

        let pp_rate = a.prompt as f64 / best_pp;
        let tg_rate = a.n_gen as f64 / best_tg;
        let name = std::path::Path::new(&a.model)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if a.json {
            let rss = peak_rss_bytes().map_or("null".to_string(), |b| b.to_string());
            println!(
                "{{\"engine\":\"llama.cpp\",\"version\":{},\"ggml_cpu\":{},\"model\":{},\"threads\":{},\
                 \"pp_tokens\":{},\"tg_tokens\":{},\"reps\":{},\"pp_tokens_per_s\":{},\
                 \"tg_tokens_per_s\":{},\"peak_rss_bytes\":{}}}",
                json_str(VERSION),
                json_str(&features),
                json_str(&name),
                a.threads,
                a.prompt,
                a.n_gen,
                a.reps,
                pp_rate,
                tg_rate,
                rss
            );
        } else {
            println!("llama.cpp: {VERSION}; ggml CPU: {features}");
            println!("| model | threads | test | t/s |");
            println!("|---|---|---|---|");
            println!("| {name} | {} | pp{} | {pp_rate:.1} |", a.threads, a.prompt);
            println!("| {name} | {} | tg{} | {tg_rate:.1} |", a.threads, a.n_gen);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("llama-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
