//! `eddy perplexity`: how well a model predicts a text, in three modes.
//!
//! - `--ctx N [--chunks C]` (the default, with 512): llama.cpp's convention (`testdata/golden/ppl.json`): the text is cut
//!   into independent chunks of N tokens, each evaluated from an empty cache (first token
//!   replaced by BOS when the model adds one), and the second half of each chunk is scored.
//! - `--stream --sinks S --window W [--max-tokens N]`: one continuous stream through the KV
//!   arena; every token is scored with whatever the arena holds when it is predicted.
//! - `--recompute --window W --stride K [--max-tokens N]`: the sliding window with
//!   re-computation that StreamingLLM compares against: targets in groups of K, each group
//!   scored from a fresh pass over the W tokens before its last target.
//!
//! All modes print one JSON line at the end: `ppl`, `tokens_scored`, `seconds`, `tokens_per_s`
//! and the mode's parameters. On a terminal, progress (tokens, rate, time left, perplexity so
//! far) is redrawn on one line of stderr; a pipe gets none.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use eddy::{Context, ContextParams, Model};
use serde_json::json;

use crate::args;
use crate::progress::Progress;
use crate::run::KvArgs;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `eddy perplexity`.
#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// Path to the .gguf model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// The text file to score (`-` reads standard input).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Chunk size of the llama.cpp-style mode, the default mode (with 512), 4 up to the model's
    /// trained context. `-c/--ctx-size` as in llama.cpp.
    #[arg(short = 'c', long, visible_alias = "ctx-size", value_name = "N",
          conflicts_with_all = ["stream", "recompute"], value_parser = args::int_in(4, 1 << 20),
          allow_hyphen_values = true)]
    ctx: Option<usize>,
    /// Most chunks to score in the chunked mode (default: all).
    #[arg(long, value_name = "C", conflicts_with_all = ["stream", "recompute"],
          value_parser = args::int_in(1, u64::MAX), allow_hyphen_values = true)]
    chunks: Option<usize>,
    /// One continuous stream through the sink + window arena.
    #[arg(long, conflicts_with = "recompute", requires = "window")]
    stream: bool,
    /// Sliding window with re-computation (the baseline).
    #[arg(long, requires_all = ["window", "stride"])]
    recompute: bool,
    /// Attention sinks in `--stream` mode, 0..=1024.
    #[arg(long, value_name = "S", default_value_t = 4, value_parser = args::sinks,
          allow_hyphen_values = true)]
    sinks: usize,
    /// Window size in `--stream` and `--recompute` modes, 1 up to the model's trained context.
    #[arg(long, value_name = "W", value_parser = args::window, allow_hyphen_values = true)]
    window: Option<usize>,
    /// Targets per fresh pass in `--recompute` mode, 1 up to the window.
    #[arg(long, value_name = "K", value_parser = args::int_in(1, 1 << 20),
          allow_hyphen_values = true)]
    stride: Option<usize>,
    /// Use only the first N tokens of the text.
    #[arg(long, value_name = "N", value_parser = args::count, allow_hyphen_values = true)]
    max_tokens: Option<usize>,
    #[command(flatten)]
    kv: KvArgs,
    /// Threads, 1..=256: the chunked and `--recompute` modes run independent passes in
    /// parallel (one single-threaded context each, at most one per core and per pass);
    /// `--stream` is one sequence and gives its context a pool of this size.
    #[arg(short = 't', long, value_name = "N", default_value_t = 1,
          value_parser = args::threads, allow_hyphen_values = true)]
    threads: usize,
}

/// Sum of negative log-likelihoods and a count.
#[derive(Default)]
struct Nll {
    sum: f64,
    n: usize,
}

impl Nll {
    fn add(&mut self, logits: &[f32], target: u32) {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max
            + logits
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        self.sum += lse - logits[target as usize] as f64;
        self.n += 1;
    }

    fn ppl(&self) -> f64 {
        (self.sum / self.n.max(1) as f64).exp()
    }
}

pub fn run(a: PerplexityArgs) -> Res<()> {
    args::warn_threads(a.threads, !a.stream);
    let model = Model::load(&a.model)?;
    let n_ctx_train = model.hparams().n_ctx_train;
    if let Some(n) = a.ctx {
        args::within_context("-c/--ctx", n, 4, n_ctx_train)?;
    }
    if let Some(w) = a.window {
        args::within_context("--window", w, 1, n_ctx_train)?;
    }
    let text = args::read_text("-f", &a.file)?;
    let tok = model.tokenizer();
    let mut tokens = tok.encode(&text, true, false);
    if let Some(n) = a.max_tokens {
        tokens.truncate(n);
    }
    let kv = a.kv;
    // Independent passes beyond the cores would only take turns, each with its own context.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = a.threads.min(cores);
    let start = Instant::now();
    let (nll, mode, evaluated) = if a.stream {
        let window = a.window.ok_or("--stream needs --window")?;
        stream(&model, &tokens, a.sinks, window, kv, a.threads)?
    } else if a.recompute {
        let window = a.window.ok_or("--recompute needs --window")?;
        let stride = a.stride.ok_or("--recompute needs --stride")?;
        recompute(&model, &tokens, window, stride, kv, workers)?
    } else {
        // llama.cpp's chunked mode is the default, with its default chunk of 512 tokens
        // (or the trained context if that is smaller).
        let n_ctx = a.ctx.unwrap_or(512.min(n_ctx_train.max(4)));
        chunks(&model, &tokens, n_ctx, a.chunks, kv, workers)?
    };
    let seconds = start.elapsed().as_secs_f64();
    let doc = json!({
        "ppl": nll.ppl(),
        "tokens_scored": nll.n,
        "tokens_evaluated": evaluated,
        "seconds": seconds,
        "tokens_per_s": evaluated as f64 / seconds,
        "text_tokens": tokens.len(),
        "mode": mode,
    });
    println!("{doc}");
    Ok(())
}

fn context(
    model: &Model,
    n_sink: usize,
    n_window: usize,
    n_batch: usize,
    kv: KvArgs,
) -> Res<Context<'static, &Model>> {
    Ok(Context::new(
        model,
        ContextParams {
            n_sink,
            n_window,
            n_batch,
            kv_type: kv.kv_type(),
            kv_type_k: kv.k(),
            kv_type_v: kv.v(),
            logits_all: true,
            ..Default::default()
        },
    )?)
}

/// Runs `jobs` independent jobs on `threads` workers (worker w takes jobs w, w + threads, …),
/// each with its own context made by `make`; sums the workers' NLLs in worker order, so the
/// result depends only on the thread count. `job` returns the tokens it evaluated.
fn parallel<'m>(
    threads: usize,
    jobs: usize,
    total_tokens: usize,
    make: impl Fn() -> Res<Context<'static, &'m Model>> + Sync,
    job: impl Fn(&mut Context<'static, &'m Model>, usize, &mut Nll) -> Res<usize> + Sync,
) -> Res<(Nll, usize)> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let done = AtomicUsize::new(0);
    let threads = threads.clamp(1, jobs.max(1));
    let progress = Mutex::new(Progress::new("perplexity", total_tokens));
    let results: Vec<Result<(Nll, usize), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let (make, job, done, progress) = (&make, &job, &done, &progress);
                scope.spawn(move || -> Result<(Nll, usize), String> {
                    let mut ctx = make().map_err(|e| e.to_string())?;
                    let mut nll = Nll::default();
                    let mut evaluated = 0;
                    for j in (w..jobs).step_by(threads) {
                        let n = job(&mut ctx, j, &mut nll).map_err(|e| e.to_string())?;
                        evaluated += n;
                        let all = done.fetch_add(n, Ordering::Relaxed) + n;
                        if let Ok(mut p) = progress.lock() {
                            p.update(all, || format!("ppl so far {:.3}", nll.ppl()));
                        }
                    }
                    Ok((nll, evaluated))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect()
    });
    if let Ok(mut p) = progress.lock() {
        p.finish();
    }
    let mut total = Nll::default();
    let mut evaluated = 0;
    for r in results {
        let (nll, n) = r?;
        total.sum += nll.sum;
        total.n += nll.n;
        evaluated += n;
    }
    Ok((total, evaluated))
}

/// llama.cpp's chunked perplexity.
fn chunks(
    model: &Model,
    tokens: &[u32],
    n_ctx: usize,
    max_chunks: Option<usize>,
    kv: KvArgs,
    threads: usize,
) -> Res<(Nll, serde_json::Value, usize)> {
    if n_ctx < 4 {
        return Err(format!("--ctx {n_ctx} is too small (at least 4)").into());
    }
    let available = tokens.len() / n_ctx;
    let n_chunks = max_chunks.map_or(available, |c| c.min(available));
    if n_chunks == 0 {
        return Err(format!(
            "the text has {} tokens, fewer than one chunk of {n_ctx}",
            tokens.len()
        )
        .into());
    }
    let bos = model
        .tokenizer()
        .add_bos()
        .then(|| model.tokenizer().special_ids().bos)
        .flatten();
    let n_batch = n_ctx.min(512);
    let first = n_ctx / 2;
    let (nll, evaluated) = parallel(
        threads,
        n_chunks,
        n_chunks * n_ctx,
        || context(model, 0, n_ctx, n_batch, kv),
        |ctx, c, nll| {
            // The first token of every chunk is replaced by BOS when the model adds one.
            let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
            if let Some(b) = bos {
                chunk[0] = b;
            }
            ctx.reset();
            for (b, batch) in chunk.chunks(n_batch).enumerate() {
                ctx.decode(batch)?;
                for i in 0..batch.len() {
                    let pos = b * n_batch + i;
                    if pos >= first && pos + 1 < n_ctx {
                        nll.add(ctx.logits_ith(i).ok_or("missing logits")?, chunk[pos + 1]);
                    }
                }
            }
            Ok(n_ctx)
        },
    )?;
    Ok((
        nll,
        json!({"name": "chunks", "ctx": n_ctx, "chunks": n_chunks}),
        evaluated,
    ))
}

/// One stream through the arena; token i is scored from the logits at i - 1.
fn stream(
    model: &Model,
    tokens: &[u32],
    n_sink: usize,
    n_window: usize,
    kv: KvArgs,
    threads: usize,
) -> Res<(Nll, serde_json::Value, usize)> {
    if tokens.len() < 2 {
        return Err("the text has fewer than 2 tokens".into());
    }
    let n_batch = 64;
    let mut ctx = Context::new(
        model,
        ContextParams {
            n_sink,
            n_window,
            n_batch,
            kv_type: kv.kv_type(),
            kv_type_k: kv.k(),
            kv_type_v: kv.v(),
            logits_all: true,
            n_threads: threads,
            ..Default::default()
        },
    )?;
    let mut nll = Nll::default();
    let mut progress = Progress::new("perplexity", tokens.len());
    for (b, batch) in tokens.chunks(n_batch).enumerate() {
        ctx.decode(batch)?;
        for i in 0..batch.len() {
            let pos = b * n_batch + i;
            if pos + 1 < tokens.len() {
                nll.add(ctx.logits_ith(i).ok_or("missing logits")?, tokens[pos + 1]);
            }
        }
        progress.update(b * n_batch + batch.len(), || {
            format!("ppl so far {:.3}", nll.ppl())
        });
    }
    progress.finish();
    Ok((
        nll,
        json!({"name": "stream", "sinks": n_sink, "window": n_window}),
        tokens.len(),
    ))
}

/// Sliding window with re-computation: targets 1.. in groups of `stride`; each group scored from
/// a fresh pass over the `window` tokens before its last target.
fn recompute(
    model: &Model,
    tokens: &[u32],
    window: usize,
    stride: usize,
    kv: KvArgs,
    threads: usize,
) -> Res<(Nll, serde_json::Value, usize)> {
    if stride == 0 || window == 0 || stride > window {
        return Err(format!("--stride {stride}: allowed 1..={window} (at most --window)").into());
    }
    if tokens.len() < 2 {
        return Err("the text has fewer than 2 tokens".into());
    }
    let n_batch = window.min(512);
    let groups = (tokens.len() - 1).div_ceil(stride);
    let (nll, evaluated) = parallel(
        threads,
        groups,
        groups * window,
        || context(model, 0, window, n_batch, kv),
        |ctx, g, nll| {
            let group_first = 1 + g * stride;
            let group_last = (group_first + stride - 1).min(tokens.len() - 1);
            let pass_start = group_last.saturating_sub(window);
            let pass = &tokens[pass_start..group_last];
            ctx.reset();
            for (b, batch) in pass.chunks(n_batch).enumerate() {
                ctx.decode(batch)?;
                for i in 0..batch.len() {
                    let pos = pass_start + b * n_batch + i;
                    if pos + 1 >= group_first && pos < group_last {
                        nll.add(ctx.logits_ith(i).ok_or("missing logits")?, tokens[pos + 1]);
                    }
                }
            }
            Ok(pass.len())
        },
    )?;
    Ok((
        nll,
        json!({"name": "recompute", "window": window, "stride": stride}),
        evaluated,
    ))
}
