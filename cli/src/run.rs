//! `eddy tokenize`, `eddy generate`, `eddy logits`: the model-running subcommands.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use eddy::constraint::{Constraint, ConstraintKind};
use eddy::tokenizer::StreamDecoder;
use eddy::{Context, ContextParams, KvType, Model, Sampler, SamplerParams};
use serde_json::json;

use crate::args;
use crate::progress::Progress;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Where the input text (or ids) comes from.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Input {
    /// The prompt text.
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// A file holding the prompt text (`-` reads standard input).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
}

impl Input {
    fn text(&self) -> Res<String> {
        match (&self.prompt, &self.file) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(f)) => Ok(args::read_text("-f", f)?),
            (None, None) => Err("give -p TEXT or -f FILE".into()),
        }
    }
}

/// K/V cache element type on the command line; f16 is the default of every subcommand.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum KvArg {
    /// Half precision (the default everywhere).
    #[default]
    F16,
    /// Single precision (llama.cpp's exact path, which the golden files were made with).
    F32,
    /// GGML Q8_0 blocks: 0.53x the bytes of f16.
    #[value(name = "q8_0")]
    Q8_0,
    /// GGML Q4_0 blocks: 0.28x the bytes of f16 (Q4_0 keys add their exact pairs: 0.30x).
    #[value(name = "q4_0")]
    Q4_0,
}

/// The help text of every `--kv-type` flag.
pub const KV_HELP: &str = "K/V cache element type, keys and values (f16 is the default in every \
                           subcommand; q8_0 and q4_0 quantize each cached row in blocks of 32)";

impl From<KvArg> for KvType {
    fn from(k: KvArg) -> KvType {
        match k {
            KvArg::F16 => KvType::F16,
            KvArg::F32 => KvType::F32,
            KvArg::Q8_0 => KvType::Q8_0,
            KvArg::Q4_0 => KvType::Q4_0,
        }
    }
}

/// The K/V cache type flags of every subcommand that makes a context.
#[derive(Args, Clone, Copy, Debug)]
pub struct KvArgs {
    #[arg(long, value_enum, default_value = "f16", help = KV_HELP, allow_hyphen_values = true)]
    kv_type: KvArg,
    /// Element type of the keys alone, overriding --kv-type (llama.cpp's --cache-type-k).
    #[arg(
        long,
        value_enum,
        value_name = "TYPE",
        visible_alias = "cache-type-k",
        allow_hyphen_values = true
    )]
    kv_type_k: Option<KvArg>,
    /// Element type of the values alone, overriding --kv-type (llama.cpp's --cache-type-v).
    #[arg(
        long,
        value_enum,
        value_name = "TYPE",
        visible_alias = "cache-type-v",
        allow_hyphen_values = true
    )]
    kv_type_v: Option<KvArg>,
}

impl KvArgs {
    /// `--kv-type`.
    pub fn kv_type(self) -> KvType {
        self.kv_type.into()
    }

    /// `--kv-type-k`, if given.
    pub fn k(self) -> Option<KvType> {
        self.kv_type_k.map(Into::into)
    }

    /// `--kv-type-v`, if given.
    pub fn v(self) -> Option<KvType> {
        self.kv_type_v.map(Into::into)
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
    #[arg(long, action = clap::ArgAction::Set, allow_hyphen_values = true)]
    add_bos: Option<bool>,
    /// Parse special-token text such as `<|im_start|>` into its id.
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true, allow_hyphen_values = true)]
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

/// The sampling flags of `generate` and `chat`.
#[derive(Args, Debug)]
pub struct SamplingArgs {
    /// Temperature, finite and >= 0; 0 is greedy.
    #[arg(long = "temp", value_name = "T", default_value_t = 0.8,
          value_parser = args::temperature, allow_hyphen_values = true)]
    pub temp: f32,
    /// Top-k (0 = off).
    #[arg(long, value_name = "K", default_value_t = 40, value_parser = args::count,
          allow_hyphen_values = true)]
    pub top_k: usize,
    /// Top-p in [0, 1] (1 = off).
    #[arg(long, value_name = "P", default_value_t = 0.95, value_parser = args::probability,
          allow_hyphen_values = true)]
    pub top_p: f32,
    /// Min-p in [0, 1] (0 = off).
    #[arg(long, value_name = "P", default_value_t = 0.05, value_parser = args::probability,
          allow_hyphen_values = true)]
    pub min_p: f32,
    /// Repetition penalty, finite and > 0 (1 = off).
    #[arg(long, value_name = "R", default_value_t = 1.0, value_parser = args::penalty,
          allow_hyphen_values = true)]
    pub repeat_penalty: f32,
    /// Recent tokens the repetition penalty looks at: -1 = the window, 0 = off, up to 65536.
    #[arg(long, value_name = "N", default_value = "64", value_parser = args::repeat_last_n,
          allow_hyphen_values = true)]
    pub repeat_last_n: args::LastN,
    /// Random seed: the same seed gives the same text; -1 = a random seed (printed on stderr).
    #[arg(short = 's', long, value_name = "S", default_value = "24301",
          value_parser = args::seed, allow_hyphen_values = true)]
    pub seed: args::Seed,
}

impl SamplingArgs {
    /// The sampler's parameters for a context whose window is `n_window` tokens, and the seed
    /// (a random one, printed on stderr, for `--seed -1`).
    pub fn params(&self, n_window: usize) -> SamplerParams {
        let seed = self.seed.0.unwrap_or_else(|| {
            let s = args::random_seed();
            eprintln!("eddy: seed {s}");
            s
        });
        SamplerParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            penalty_last_n: self.repeat_last_n.0.unwrap_or(n_window),
            seed,
            ..Default::default()
        }
    }
}

/// The constrained-output flags of `generate` and `chat` (at most one of them).
#[derive(Args, Debug)]
#[group(required = false, multiple = false)]
pub struct ConstraintArgs {
    /// Constrain the output to one JSON value valid under the JSON schema in FILE (`-` reads
    /// standard input).
    #[arg(long, value_name = "FILE", visible_alias = "json-schema-file")]
    pub json_schema: Option<PathBuf>,
    /// Constrain the output to the grammar in FILE (llguidance's Lark-like syntax:
    /// `start: ...`, `/regex/` terminals, `%json {schema}`).
    #[arg(long, value_name = "FILE", visible_alias = "grammar-file")]
    pub grammar: Option<PathBuf>,
    /// Constrain the whole output to match the regular expression RE.
    #[arg(long, value_name = "RE", allow_hyphen_values = true)]
    pub regex: Option<String>,
}

impl ConstraintArgs {
    /// Whether one of the flags is given.
    pub fn is_given(&self) -> bool {
        self.json_schema.is_some() || self.grammar.is_some() || self.regex.is_some()
    }

    /// The compiled constraint, if a flag asks for one; a bad schema, grammar or regex is an
    /// error here, before anything is decoded.
    pub fn compile(&self, model: &Model) -> Res<Option<Constraint>> {
        let (kind, text) = match (&self.json_schema, &self.grammar, &self.regex) {
            (Some(f), _, _) => (
                ConstraintKind::JsonSchema,
                args::read_text("--json-schema", f)?,
            ),
            (None, Some(f), _) => (ConstraintKind::Lark, args::read_text("--grammar", f)?),
            (None, None, Some(re)) => (ConstraintKind::Regex, re.clone()),
            (None, None, None) => return Ok(None),
        };
        let vocab = model.constraint_vocab()?;
        let flag = match kind {
            ConstraintKind::JsonSchema => "--json-schema",
            ConstraintKind::Lark => "--grammar",
            ConstraintKind::Regex => "--regex",
        };
        let c = vocab
            .compile(kind, &text)
            .map_err(|e| format!("{flag}: {e}"))?;
        Ok(Some(c))
    }
}

/// `eddy generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Path to the .gguf model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    #[command(flatten)]
    input: Input,
    /// Tokens to generate; -1 = until an end-of-generation token (streaming past the window).
    /// Generation also stops at end-of-generation tokens.
    #[arg(short = 'n', long = "n-predict", value_name = "N", default_value = "128",
          value_parser = args::n_predict, allow_hyphen_values = true)]
    n_predict: args::NPredict,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    constraint: ConstraintArgs,
    /// Threads of the context's pool (the calling thread included), 1..=256.
    #[arg(short = 't', long, value_name = "N", default_value_t = 1,
          value_parser = args::threads, allow_hyphen_values = true)]
    threads: usize,
    #[command(flatten)]
    kv: KvArgs,
    /// Attention-sink slots of the KV arena, 0..=1024.
    #[arg(long, value_name = "S", default_value_t = 4, value_parser = args::sinks,
          allow_hyphen_values = true)]
    sinks: usize,
    /// Recent tokens the arena keeps besides the sinks, 1 up to the model's trained context;
    /// generation streams past it for ever (default: room for prompt + n-predict, up to the
    /// trained context or 4096). `-c/--ctx-size` as in llama.cpp.
    #[arg(short = 'c', long, visible_alias = "ctx-size", value_name = "W",
          value_parser = args::window, allow_hyphen_values = true)]
    window: Option<usize>,
    /// Keep generating past end-of-generation tokens (for long streaming runs).
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub fn generate(a: GenerateArgs) -> Res<()> {
    args::warn_threads(a.threads, false);
    let model = load(&a.model)?;
    let tok = model.tokenizer();
    let n_ctx_train = model.hparams().n_ctx_train;
    if let Some(w) = a.window {
        args::within_context("-c/--window", w, 1, n_ctx_train)?;
    }
    let prompt = tokenize_prompt(&model, &a.input.text()?, None, true);
    if prompt.is_empty() {
        return Err("the prompt is empty after tokenization".into());
    }
    let constraint = a.constraint.compile(&model)?;
    if constraint.is_some() && a.ignore_eos {
        return Err(
            "--ignore-eos cannot be combined with a constraint: a constrained output ends where the constraint is complete"
                .into(),
        );
    }
    // The window: as asked, else room for the whole text up to the model's default. It bounds
    // the arena; `-n` never does (it only counts tokens).
    let default_cap = n_ctx_train.clamp(1, 4096);
    let window = match a.window {
        Some(w) => w,
        None => match a.n_predict.0 {
            Some(n) => (prompt.len() as u64)
                .saturating_add(n)
                .min(default_cap as u64) as usize,
            None => default_cap,
        },
    };
    let params = ContextParams {
        n_sink: a.sinks,
        n_window: window
            .saturating_sub(if a.window.is_some() { 0 } else { a.sinks })
            .max(1),
        n_batch: prompt.len().min(512),
        kv_type: a.kv.kv_type(),
        kv_type_k: a.kv.k(),
        kv_type_v: a.kv.v(),
        n_threads: a.threads,
        ..Default::default()
    };
    let mut ctx = Context::new(&model, params)?;
    let sampler_params = a.sampling.params(ctx.params().n_window);
    let seed = sampler_params.seed;
    let mut sampler = Sampler::new(model.hparams().n_vocab, sampler_params);
    let constrained = constraint.is_some();
    sampler.set_constraint(constraint);
    let mut out = std::io::stdout().lock();
    let t0 = Instant::now();
    prefill(&mut ctx, &prompt)?;
    for &t in &prompt {
        sampler.accept_prompt(t);
    }
    let t_prompt = t0.elapsed().as_secs_f64();

    let mut decoder = StreamDecoder::new(tok, false);
    // Only `--json` keeps the ids (it prints them); a text stream keeps nothing per token, so
    // `-n -1` runs in constant memory.
    let mut generated = Vec::new();
    let mut n_generated = 0u64;
    let mut text = String::new();
    let t1 = Instant::now();
    // Generation speed per block of 100 tokens (`--json`): constant in streaming mode.
    let mut block_rates = Vec::new();
    let mut block_start = Instant::now();
    let mut io_err = None;
    let mut stopped_by = None;
    let limit = a.n_predict.0;
    while limit.is_none_or(|n| n_generated < n) {
        let next = sampler.try_sample(ctx.logits())?;
        sampler.accept(next);
        n_generated += 1;
        if a.json {
            generated.push(next);
            if n_generated.is_multiple_of(100) {
                block_rates.push(100.0 / block_start.elapsed().as_secs_f64());
                block_start = Instant::now();
            }
        }
        if tok.is_eog(next) && !a.ignore_eos {
            stopped_by = Some(next);
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
        if limit.is_some_and(|n| n_generated == n) {
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
    // A constrained output cut short by -n is incomplete: say so rather than leave a reader
    // to find out when it fails to parse.
    let incomplete = constrained && stopped_by.is_none();
    if a.json {
        let mut doc = json!({
            "prompt_ids": prompt,
            "generated_ids": generated,
            "text": text,
            "prompt_tokens_per_s": prompt.len() as f64 / t_prompt,
            "gen_tokens_per_s": n_generated as f64 / t_gen,
            "gen_tokens_per_s_per_100": block_rates,
            "n_sink": ctx.params().n_sink,
            "n_window": ctx.params().n_window,
            "threads": a.threads,
            "seed": seed,
        });
        if constrained {
            doc["constraint_complete"] = json!(!incomplete);
        }
        writeln!(out, "{doc}")?;
    } else {
        writeln!(out)?;
        eprintln!(
            "eddy: prompt {} tokens in {:.2}s ({:.1} tok/s); generated {} tokens in {:.2}s ({:.1} tok/s)",
            prompt.len(),
            t_prompt,
            prompt.len() as f64 / t_prompt,
            n_generated,
            t_gen,
            n_generated as f64 / t_gen
        );
    }
    if incomplete {
        eprintln!(
            "eddy: stopped after {n_generated} tokens (-n) before the output was complete under the constraint"
        );
    }
    if let Some(id) = stopped_by
        && n_generated == 1
        && !constrained
    {
        eprintln!("{}", ended_at_once_note(&model, id));
    }
    Ok(())
}

/// Decodes the prompt; a long one (over 512 tokens) shows its progress on a terminal, in
/// pieces that are whole micro-batches, so the result is the same as in one call.
pub(crate) fn prefill(ctx: &mut Context<'static, &Model>, prompt: &[u32]) -> Res<()> {
    let n_batch = ctx.params().n_batch;
    let mut progress = Progress::new("prefill", prompt.len());
    let show = prompt.len() > 512;
    let piece = if show {
        let ub = ctx.params().n_ubatch.max(1);
        (ub * (128 / ub).max(1)).min(n_batch)
    } else {
        n_batch
    };
    let mut done = 0;
    for chunk in prompt.chunks(piece) {
        ctx.decode(chunk)?;
        done += chunk.len();
        if show {
            progress.update(done, String::new);
        }
    }
    progress.finish();
    Ok(())
}

/// Why generation ended before its first visible token, and what to try instead: instruct
/// models end their turn at once when a plain question is not in their chat format.
fn ended_at_once_note(model: &Model, id: u32) -> String {
    let tok = model.tokenizer();
    let name = String::from_utf8_lossy(tok.token_to_piece(id, true)).into_owned();
    let template = model
        .gguf()
        .get_str("tokenizer.chat_template")
        .unwrap_or("");
    let example = if template.contains("<|im_start|>") {
        r"e.g. -p $'<|im_start|>user\nYOUR QUESTION<|im_end|>\n<|im_start|>assistant\n'"
    } else if template.contains("<start_of_turn>") || model.arch_name() == "gemma3" {
        r"e.g. -p $'<start_of_turn>user\nYOUR QUESTION<end_of_turn>\n<start_of_turn>model\n'"
    } else {
        "in the model's chat format (`eddy inspect` shows tokenizer.chat_template)"
    };
    format!(
        "eddy: note: generation stopped at once: the model's first token was end-of-turn \
         {name:?} (id {id}); an instruct model answers a chat-formatted prompt, {example}, \
         or pass --ignore-eos"
    )
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
    /// A file with the text to evaluate (`-` reads standard input).
    #[arg(short = 'f', long = "file", group = "src")]
    file: Option<PathBuf>,
    /// A file with a JSON array of token ids to evaluate (`-` reads standard input).
    #[arg(long = "ids", group = "src")]
    ids: Option<PathBuf>,
    /// How many of the highest logits to print per position (0 or more).
    #[arg(long, value_name = "K", default_value_t = 20, value_parser = args::count,
          allow_hyphen_values = true)]
    top: usize,
    #[command(flatten)]
    kv: KvArgs,
}

pub fn logits(a: LogitsArgs) -> Res<()> {
    let model = load(&a.model)?;
    let ids: Vec<u32> = match (&a.prompt, &a.file, &a.ids) {
        (Some(p), _, _) => tokenize_prompt(&model, p, None, true),
        (_, Some(f), _) => tokenize_prompt(&model, &args::read_text("-f", f)?, None, true),
        (_, _, Some(f)) => serde_json::from_str(&args::read_text("--ids", f)?)
            .map_err(|e| format!("{}: expected a JSON array of token ids: {e}", f.display()))?,
        _ => return Err("give -p TEXT, -f FILE or --ids FILE".into()),
    };
    if ids.is_empty() {
        return Err("no tokens to evaluate".into());
    }
    // One pass holds every token: no more than the model was trained on.
    let n_ctx_train = model.hparams().n_ctx_train.max(1);
    if ids.len() > n_ctx_train {
        let flag = match (&a.prompt, &a.file) {
            (Some(_), _) => "-p",
            (_, Some(_)) => "-f",
            _ => "--ids",
        };
        return Err(format!(
            "{flag}: {} tokens to evaluate; allowed 1..={n_ctx_train} (the model's trained context)",
            ids.len()
        )
        .into());
    }
    let n_batch = ids.len().min(512);
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_sink: 0,
            n_window: ids.len(),
            n_batch,
            kv_type: a.kv.kv_type(),
            kv_type_k: a.kv.k(),
            kv_type_v: a.kv.v(),
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
