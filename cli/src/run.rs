//! `eddy tokenize`, `eddy generate`, `eddy logits`: the model-running subcommands.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use eddy::tokenizer::StreamDecoder;
use eddy::{Context, ContextParams, KvType, Model, Sampler, SamplerParams};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Where the input text (or ids) comes from.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Input {
    /// The prompt text.
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// A file holding the prompt text.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
}

impl Input {
    fn text(&self) -> Res<String> {
        match (&self.prompt, &self.file) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()).into()),
            (None, None) => Err("give -p TEXT or -f FILE".into()),
        }
    }
}

/// K/V cache element type on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KvArg {
    /// Half precision (default).
    F16,
    /// Single precision.
    F32,
}

impl From<KvArg> for KvType {
    fn from(k: KvArg) -> KvType {
        match k {
            KvArg::F16 => KvType::F16,
            KvArg::F32 => KvType::F32,
        }
    }
}

/// `eddy tokenize`.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// Path to the .gguf model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    #[command(flatten)]
    input: Input,
    /// Add BOS (default: the model's own setting).
    #[arg(long, action = clap::ArgAction::Set)]
    add_bos: Option<bool>,
    /// Parse special-token text such as `<|im_start|>` into its id.
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
    parse_special: bool,
}

fn load(path: &Path) -> Res<Model> {
    Ok(Model::load(path)?)
}

fn tokenize_prompt(
    model: &Model,
    text: &str,
    add_bos: Option<bool>,
    parse_special: bool,
) -> Vec<u32> {
    let tok = model.tokenizer();
    let add_special = add_bos.unwrap_or_else(|| tok.add_bos());
    tok.encode(text, add_special, parse_special)
}

pub fn tokenize(a: TokenizeArgs) -> Res<()> {
    let model = load(&a.model)?;
    let ids = tokenize_prompt(&model, &a.input.text()?, a.add_bos, a.parse_special);
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}

/// `eddy generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Path to the .gguf model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    #[command(flatten)]
    input: Input,
    /// Tokens to generate (generation also stops at end-of-generation tokens).
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    temp: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty over the last 64 tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Random seed: the same seed gives the same text.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Threads of the context's pool (the calling thread included).
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// K/V cache element type.
    #[arg(long, value_enum, default_value = "f16")]
    kv_type: KvArg,
    /// Attention-sink slots of the KV arena.
    #[arg(long, default_value_t = 4)]
    sinks: usize,
    /// Recent tokens the arena keeps besides the sinks; generation streams past it for ever
    /// (default: room for prompt + n-predict, up to the model's context).
    #[arg(long)]
    window: Option<usize>,
    /// Keep generating past end-of-generation tokens (for long streaming runs).
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub fn generate(a: GenerateArgs) -> Res<()> {
    let model = load(&a.model)?;
    let tok = model.tokenizer();
    let prompt = tokenize_prompt(&model, &a.input.text()?, None, true);
    if prompt.is_empty() {
        return Err("the prompt is empty after tokenization".into());
    }
    // The window: as asked, else room for the whole text up to the model's default.
    if a.window == Some(0) {
        return Err("--window 0: the arena needs a window of at least 1 token".into());
    }
    let window = match a.window {
        Some(w) => w,
        None => (prompt.len() + a.n_predict).min(model.hparams().n_ctx_train.min(4096)),
    };
    let params = ContextParams {
        n_sink: a.sinks,
        n_window: window
            .saturating_sub(if a.window.is_some() { 0 } else { a.sinks })
            .max(1),
        n_batch: prompt.len().min(512),
        kv_type: a.kv_type.into(),
        n_threads: a.threads,
        ..Default::default()
    };
    let mut ctx = Context::new(&model, params)?;
    let mut sampler = Sampler::new(
        model.hparams().n_vocab,
        SamplerParams {
            temperature: a.temp,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repeat_penalty: a.repeat_penalty,
            seed: a.seed,
            ..Default::default()
        },
    );
    let mut out = std::io::stdout().lock();
    let t0 = Instant::now();
    for chunk in prompt.chunks(ctx.params().n_batch) {
        ctx.decode(chunk)?;
    }
    for &t in &prompt {
        sampler.accept(t);
    }
    let t_prompt = t0.elapsed().as_secs_f64();

    let mut decoder = StreamDecoder::new(tok, false);
    let mut generated = Vec::with_capacity(a.n_predict);
    let mut text = String::new();
    let t1 = Instant::now();
    // Generation speed per block of 100 tokens: constant in streaming mode, however long.
    let mut block_rates = Vec::with_capacity(a.n_predict / 100 + 1);
    let mut block_start = Instant::now();
    let mut io_err = None;
    for _ in 0..a.n_predict {
        let next = sampler.sample(ctx.logits());
        sampler.accept(next);
        generated.push(next);
        if generated.len() % 100 == 0 {
            block_rates.push(100.0 / block_start.elapsed().as_secs_f64());
            block_start = Instant::now();
        }
        if tok.is_eog(next) && !a.ignore_eos {
            break;
        }
        decoder.push(next, |s| {
            if a.json {
                text.push_str(s);
            } else if io_err.is_none() {
                io_err = out.write_all(s.as_bytes()).and_then(|()| out.flush()).err();
            }
        });
        if let Some(e) = io_err.take() {
            return Err(e.into());
        }
        if generated.len() == a.n_predict {
            break;
        }
        ctx.decode(&[next])?;
    }
    decoder.finish(|s| {
        if a.json {
            text.push_str(s);
        } else {
            let _ = out.write_all(s.as_bytes());
        }
    });
    let t_gen = t1.elapsed().as_secs_f64();
    if a.json {
        let doc = json!({
            "prompt_ids": prompt,
            "generated_ids": generated,
            "text": text,
            "prompt_tokens_per_s": prompt.len() as f64 / t_prompt,
            "gen_tokens_per_s": generated.len() as f64 / t_gen,
            "gen_tokens_per_s_per_100": block_rates,
            "n_sink": ctx.params().n_sink,
            "n_window": ctx.params().n_window,
            "threads": a.threads,
        });
        writeln!(out, "{doc}")?;
    } else {
        writeln!(out)?;
        eprintln!(
            "eddy: prompt {} tokens in {:.2}s ({:.1} tok/s); generated {} tokens in {:.2}s ({:.1} tok/s)",
            prompt.len(),
            t_prompt,
            prompt.len() as f64 / t_prompt,
            generated.len(),
            t_gen,
            generated.len() as f64 / t_gen
        );
    }
    Ok(())
}

/// `eddy logits`.
#[derive(Args, Debug)]
pub struct LogitsArgs {
    /// Path to the .gguf model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// The text to evaluate.
    #[arg(short = 'p', long = "prompt", group = "src")]
    prompt: Option<String>,
    /// A file with the text to evaluate.
    #[arg(short = 'f', long = "file", group = "src")]
    file: Option<PathBuf>,
    /// A file with a JSON array of token ids to evaluate.
    #[arg(long = "ids", group = "src")]
    ids: Option<PathBuf>,
    /// How many of the highest logits to print per position.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// K/V cache element type.
    #[arg(long, value_enum, default_value = "f16")]
    kv_type: KvArg,
}

pub fn logits(a: LogitsArgs) -> Res<()> {
    let model = load(&a.model)?;
    let ids: Vec<u32> = match (&a.prompt, &a.file, &a.ids) {
        (Some(p), _, _) => tokenize_prompt(&model, p, None, true),
        (_, Some(f), _) => tokenize_prompt(&model, &std::fs::read_to_string(f)?, None, true),
        (_, _, Some(f)) => serde_json::from_str(&std::fs::read_to_string(f)?)
            .map_err(|e| format!("{}: expected a JSON array of token ids: {e}", f.display()))?,
        _ => return Err("give -p TEXT, -f FILE or --ids FILE".into()),
    };
    if ids.is_empty() {
        return Err("no tokens to evaluate".into());
    }
    let n_batch = ids.len().min(512);
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_sink: 0,
            n_window: ids.len(),
            n_batch,
            kv_type: a.kv_type.into(),
            logits_all: true,
            ..Default::default()
        },
    )?;
    let n_vocab = model.hparams().n_vocab;
    let k = a.top.min(n_vocab);
    let mut positions = Vec::with_capacity(ids.len());
    let mut order: Vec<u32> = (0..n_vocab as u32).collect();
    for (c, chunk) in ids.chunks(n_batch).enumerate() {
        ctx.decode(chunk)?;
        for i in 0..chunk.len() {
            let row = ctx.logits_ith(i).ok_or("missing logits")?;
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            let by_logit =
                |x: &u32, y: &u32| row[*y as usize].total_cmp(&row[*x as usize]).then(x.cmp(y));
            if k > 0 && k < n_vocab {
                order.select_nth_unstable_by(k - 1, by_logit);
            }
            order[..k].sort_unstable_by(by_logit);
            let top: Vec<_> = order[..k]
                .iter()
                .map(|&t| json!([t, row[t as usize]]))
                .collect();
            positions.push(json!({"pos": c * n_batch + i, "logsumexp": lse, "top": top}));
        }
    }
    println!("{}", json!({"ids": ids, "positions": positions}));
    Ok(())
}
