//! `eddy bench`: prompt processing (pp) and generation (tg) speed, as llama-bench reports them.
//!
//! A prompt of `-p` tokens is decoded as one batch (pp), then `-n` tokens are generated one at a
//! time with greedy sampling (tg); each is timed around decode (and sampling for tg), best of
//! `-r` repetitions after one warm-up.
//!
//! Then the roofline: generating a token reads every weight matrix once (and one embedding
//! row), so the machine's memory-read bandwidth divided by those bytes is the most tg can be. A
//! probe measures the bandwidth: a buffer as large as one token's weights (at least 64 MiB), on
//! huge pages where the system gives them (as the weight copies are), read over and over by 1
//! thread, by every core and by the run's thread count, after every
//! repetition for as long as that repetition's tg took (at most a second); the best of these
//! windows is the bandwidth. Measured like tg (as long, as often, at the same times, the best
//! kept), so that a neighbour's burst on a shared machine meets both alike. The report gives
//! the limit at the run's thread count and the fraction of it reached. Peak RSS is read after
//! the warm-up, before the probe's buffer exists.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use eddy::model::HugePageBuffer;
use eddy::{Context, ContextParams, Model, Sampler, SamplerParams};
use serde_json::json;

use crate::args;
use crate::run::KvArgs;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `eddy bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Path to the .gguf model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Threads of the context's pool (the calling thread included), 1..=256.
    #[arg(short = 't', long, value_name = "N", default_value_t = 1,
          value_parser = args::threads, allow_hyphen_values = true)]
    threads: usize,
    /// Prompt tokens (pp), 1..=65536; pp + tg at most the model's trained context.
    #[arg(short = 'p', long, value_name = "N", default_value_t = 128,
          value_parser = args::int_in(1, 65536), allow_hyphen_values = true)]
    prompt: usize,
    /// Generated tokens (tg), 1..=1048576.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 64,
          value_parser = args::int_in(1, 1 << 20), allow_hyphen_values = true)]
    n_gen: usize,
    /// Tokens per micro-batch of the prompt (llama-bench's `-ub`), 1..=65536; default the
    /// prompt up to 512. The runtime's own default (`ContextParams`, `eddy.h`) is 128.
    #[arg(long = "ubatch-size", visible_alias = "ub", value_name = "N",
          value_parser = args::int_in(1, 65536), allow_hyphen_values = true)]
    ubatch: Option<usize>,
    /// Repetitions (best is reported), 1..=1000.
    #[arg(short = 'r', long, value_name = "N", default_value_t = 3,
          value_parser = args::int_in(1, 1000), allow_hyphen_values = true)]
    reps: usize,
    #[command(flatten)]
    kv: KvArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Streaming mode: instead of pp/tg, measure tg after the stream has already seen each of
    /// these token counts (comma-separated, e.g. 100,2000; each 0..=100000000), through a
    /// sinks + window arena. Depths are measured interleaved within every repetition, so drift
    /// of the machine hits all of them alike.
    #[arg(long, value_name = "DEPTHS", value_delimiter = ',',
          value_parser = args::int_in(0, 100_000_000), allow_hyphen_values = true)]
    stream: Vec<usize>,
    /// Attention sinks in streaming mode, 0..=1024.
    #[arg(long, value_name = "S", default_value_t = 4, value_parser = args::sinks,
          allow_hyphen_values = true)]
    sinks: usize,
    /// Window in streaming mode, 1 up to the model's trained context.
    #[arg(long, value_name = "W", default_value_t = 64, value_parser = args::window,
          allow_hyphen_values = true)]
    window: usize,
}

/// Bytes of weights one generated token reads: every matrix of every block, the output head and
/// one row of the embedding (norms and biases are a few KB and left out).
fn bytes_per_token(model: &Model) -> u64 {
    let w = model.weights();
    let size = |t: &eddy::model::TensorRef| (t.rows * t.row_bytes()) as u64;
    let layers: u64 = w
        .layers
        .iter()
        .map(|l| {
            [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .into_iter()
                .map(size)
                .sum::<u64>()
        })
        .sum();
    layers + size(&w.output) + w.token_embd.row_bytes() as u64
}

/// The memory-read probe: a buffer of a token's bytes (at least 64 MiB) and the best rate seen
/// so far with 1 thread, with every core and with the run's thread count.
struct Probe {
    /// Huge pages where the system gives them, as the model's weight copies have
    /// ([`HugePageBuffer`]): the limit is then what the machine's best streaming read allows,
    /// which on 4 KiB pages the copies exceed.
    buf: HugePageBuffer,
    threads: usize,
    cores: usize,
    /// Best GB/s: 1 thread, every core, `threads`.
    best: [f64; 3],
}

impl Probe {
    fn new(threads: usize, bytes: u64) -> Res<Probe> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // As many bytes as a token reads (at least 64 MiB), so that the probe streams what
        // decoding streams: a server's last-level cache (260 MiB on the Xeon VMs of 2026-12-06)
        // holds a fixed 128 MiB probe but not a 390 MB model, and would make the limit of a
        // large model too high and that of a small one (which the cache holds too) too low.
        // Written first so that every page is backed.
        let len = usize::try_from(bytes.max(64 << 20) / 4 * 4)?;
        let mut buf = HugePageBuffer::new(len).ok_or("cannot map the bandwidth probe's buffer")?;
        let values: &mut [f32] = bytemuck::try_cast_slice_mut(buf.as_mut_slice())
            .map_err(|e| format!("the bandwidth probe's buffer: {e}"))?;
        for (i, v) in values.iter_mut().enumerate() {
            *v = (i % 1024) as f32 * 1e-3;
        }
        Ok(Probe {
            buf,
            threads,
            cores,
            best: [0.0; 3],
        })
    }

    /// The buffer as the f32 values it was filled with.
    fn values(&self) -> &[f32] {
        // `new` viewed the same bytes as f32 (aligned, whole values).
        bytemuck::cast_slice(self.buf.as_slice())
    }

    /// GB/s of passes over the buffer with `threads` threads, for at least `window` seconds (at
    /// least one pass). Each thread reads its share through the dispatched f32 dot product of
    /// the share with itself (the widest loads the CPU has, as the kernels use them). On the
    /// AVX-512 VM of 2026-12-06 one pass (then on 4 KiB pages) read 12.2 GB/s from one core
    /// where plain 8-byte sums read 11 and a hand-written AVX-512 C loop 15.4: the limit it
    /// gives is a floor of the true one rather than a ceiling.
    fn read(&self, threads: usize, window: f64) -> f64 {
        let dot = eddy_quant::f32ops::ops().dot;
        let values = self.values();
        let t = Instant::now();
        let mut passes = 0u32;
        while passes == 0 || t.elapsed().as_secs_f64() < window {
            std::thread::scope(|s| {
                for part in values.chunks(values.len().div_ceil(threads)) {
                    s.spawn(move || std::hint::black_box(dot(part, part)));
                }
            });
            passes += 1;
        }
        let bytes = std::mem::size_of_val(values) as f64 * f64::from(passes);
        bytes / t.elapsed().as_secs_f64() / 1e9
    }

    /// One window of `window` seconds for each configuration (the run's thread count only when
    /// it is neither 1 nor every core), keeping the best rates.
    fn run(&mut self, window: f64) {
        let window = window.min(1.0);
        self.best[0] = self.best[0].max(self.read(1, window));
        if self.cores > 1 {
            self.best[1] = self.best[1].max(self.read(self.cores, window));
        }
        if self.threads != 1 && self.threads != self.cores {
            self.best[2] = self.best[2].max(self.read(self.threads, window));
        }
    }

    /// `(GB/s with 1 thread, with every core, at the run's thread count, cores)`.
    fn bandwidths(&self) -> (f64, f64, f64, usize) {
        let one = self.best[0];
        let all = if self.cores > 1 { self.best[1] } else { one };
        let at = match self.threads {
            1 => one,
            t if t == self.cores => all,
            _ => self.best[2],
        };
        (one, all, at, self.cores)
    }
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

pub fn run(a: BenchArgs) -> Res<()> {
    args::warn_threads(a.threads, false);
    let model = Model::load(&a.model)?;
    let n_ctx_train = model.hparams().n_ctx_train;
    if !a.stream.is_empty() {
        args::within_context("--window", a.window, 1, n_ctx_train)?;
        return stream(&a, &model);
    }
    if a.prompt + a.n_gen > n_ctx_train.max(1) {
        return Err(format!(
            "-p {} + -n {}: allowed up to {} tokens together (the model's trained context)",
            a.prompt,
            a.n_gen,
            n_ctx_train.max(1)
        )
        .into());
    }
    let n_vocab = model.hparams().n_vocab;
    // A fixed, ordinary-looking prompt: token ids spread over the vocabulary.
    let prompt: Vec<u32> = (0..a.prompt)
        .map(|i| ((i * 7919 + 17) % n_vocab.min(30000)) as u32)
        .collect();
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_window: a.prompt + a.n_gen,
            n_batch: a.prompt,
            n_ubatch: n_ubatch(&a),
            kv_type: a.kv.kv_type(),
            kv_type_k: a.kv.k(),
            kv_type_v: a.kv.v(),
            n_threads: a.threads,
            ..Default::default()
        },
    )?;
    let mut sampler = Sampler::new(n_vocab, SamplerParams::default());
    let bytes = bytes_per_token(&model);
    let (mut best_pp, mut best_tg) = (f64::MAX, f64::MAX);
    let (mut peak_rss, mut probe) = (None, None);
    for rep in 0..=a.reps {
        ctx.reset();
        let t = Instant::now();
        ctx.decode(&prompt)?;
        let pp = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..a.n_gen {
            let next = sampler.sample(ctx.logits());
            ctx.decode(&[next])?;
        }
        let tg = t.elapsed().as_secs_f64();
        if rep > 0 {
            // Repetition 0 is the warm-up.
            best_pp = best_pp.min(pp);
            best_tg = best_tg.min(tg);
        } else {
            // Everything the run allocates exists by now; the probe's buffer does not yet.
            peak_rss = peak_rss_bytes();
        }
        if probe.is_none() {
            probe = Some(Probe::new(a.threads, bytes)?);
        }
        if let Some(p) = &mut probe {
            p.run(tg);
        }
    }
    let pp_rate = a.prompt as f64 / best_pp;
    let tg_rate = a.n_gen as f64 / best_tg;
    let (bw_one, bw_all, bw, cores) = probe.map_or((0.0, 0.0, 0.0, 1), |p| p.bandwidths());
    let limit = bw * 1e9 / bytes as f64;
    let name = a
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if a.json {
        println!(
            "{}",
            json!({
                "model": name,
                "threads": a.threads,
                "pp_tokens": a.prompt,
                "n_ubatch": n_ubatch(&a),
                "tg_tokens": a.n_gen,
                "reps": a.reps,
                "pp_tokens_per_s": pp_rate,
                "tg_tokens_per_s": tg_rate,
                "peak_rss_bytes": peak_rss,
                "repacked_bytes": model.repacked_bytes(),
                "bandwidth_gb_s": bw,
                "bandwidth_1_thread_gb_s": bw_one,
                "bandwidth_all_cores_gb_s": bw_all,
                "cores": cores,
                "bytes_per_token": bytes,
                "tg_limit_tokens_per_s": limit,
                "tg_fraction_of_limit": tg_rate / limit,
            })
        );
    } else {
        println!("| model | threads | test | t/s |");
        println!("|---|---|---|---|");
        println!("| {name} | {} | pp{} | {pp_rate:.1} |", a.threads, a.prompt);
        println!("| {name} | {} | tg{} | {tg_rate:.1} |", a.threads, a.n_gen);
        println!();
        println!(
            "roofline: read bandwidth {bw_one:.1} GB/s (1 thread), {bw_all:.1} GB/s ({cores} \
             cores), {bw:.1} GB/s at {} threads; a token reads {:.1} MB of weights, so tg can \
             reach at most {limit:.1} tok/s here; this run: {tg_rate:.1} ({:.0} %)",
            a.threads,
            bytes as f64 / 1e6,
            100.0 * tg_rate / limit
        );
        if model.repacked_bytes() > 0 {
            println!(
                "weights: {:.1} MB repacked at load (row-interleaved; their mapped pages \
                 released)",
                model.repacked_bytes() as f64 / 1e6
            );
        }
    }
    Ok(())
}

/// The prompt's micro-batch: `--ubatch-size`, or the prompt up to 512 (llama.cpp's default),
/// never more than the prompt.
fn n_ubatch(a: &BenchArgs) -> usize {
    a.ubatch.unwrap_or(512).min(a.prompt)
}

/// tg at several stream depths through a sinks + window arena (the cost per token must not grow
/// with the length of the stream).
fn stream(a: &BenchArgs, model: &Model) -> Res<()> {
    if a.window == 0 {
        return Err("--window must be at least 1".into());
    }
    let n_vocab = model.hparams().n_vocab;
    let params = ContextParams {
        n_sink: a.sinks,
        n_window: a.window,
        n_batch: 256,
        kv_type: a.kv.kv_type(),
        kv_type_k: a.kv.k(),
        kv_type_v: a.kv.v(),
        n_threads: a.threads,
        ..Default::default()
    };
    let mut ctx = Context::new(model, params)?;
    let mut sampler = Sampler::new(n_vocab, SamplerParams::default());
    let filler: Vec<u32> = (0..256)
        .map(|i| ((i * 7919 + 17) % n_vocab.min(30000)) as u32)
        .collect();
    // times[d][rep]: seconds for n_gen tokens after depth d.
    let mut times = vec![Vec::with_capacity(a.reps); a.stream.len()];
    for rep in 0..=a.reps {
        for (d, &depth) in a.stream.iter().enumerate() {
            ctx.reset();
            let mut fed = 0;
            while fed < depth {
                let n = (depth - fed).min(filler.len());
                ctx.decode(&filler[..n])?;
                fed += n;
            }
            let t = Instant::now();
            for _ in 0..a.n_gen {
                let next = sampler.sample(ctx.logits());
                ctx.decode(&[next])?;
            }
            if rep > 0 {
                times[d].push(t.elapsed().as_secs_f64());
            }
        }
    }
    let rate = |secs: f64| a.n_gen as f64 / secs;
    let stats: Vec<(f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            (rate(t[0]), rate(t[t.len() / 2]))
        })
        .collect();
    let first = stats[0];
    if a.json {
        let rows: Vec<_> = a
            .stream
            .iter()
            .zip(&stats)
            .map(|(depth, (best, median))| {
                json!({"depth": depth, "best_tokens_per_s": best, "median_tokens_per_s": median,
                       "best_vs_first": best / first.0, "median_vs_first": median / first.1})
            })
            .collect();
        println!(
            "{}",
            json!({"threads": a.threads, "sinks": a.sinks, "window": a.window,
                   "tg_tokens": a.n_gen, "reps": a.reps, "depths": rows})
        );
    } else {
        println!(
            "| depth | tg{} best t/s | median t/s | best vs first | median vs first |",
            a.n_gen
        );
        println!("|---|---|---|---|---|");
        for (depth, (best, median)) in a.stream.iter().zip(&stats) {
            println!(
                "| {depth} | {best:.1} | {median:.1} | {:+.1} % | {:+.1} % |",
                100.0 * (best / first.0 - 1.0),
                100.0 * (median / first.1 - 1.0)
            );
        }
    }
    Ok(())
}
