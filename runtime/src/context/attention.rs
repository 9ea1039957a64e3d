//! Attention of a micro-batch over the KV arena.
//!
//! A query at absolute position `pos` sees a [`Span`] of cached tokens: the sink slots (the
//! stream's first tokens, kept for ever) and the recent window, or on a layer with its own
//! sliding window (Gemma 3's local layers) only the keys within that text distance. Keys were
//! rotated once, when they entered the arena, to their cache position; when the window has
//! moved past the sinks the query is rotated back by the distance for the sink keys, so that
//! every score is taken at the distance the model saw in the cache (StreamingLLM).
//!
//! The work is one item per (token, KV head): each cached key and value row is read once for
//! all query heads of the group (grouped-query attention). Items are claimed by the pool's
//! threads in chunks, each item computed the same way whoever takes it. Runs of consecutive
//! slots go through the fused f16 kernels of `eddy_quant::f32ops` where the tier has them
//! ([`scores_fused`], [`values_fused`]), else row by row ([`scores_rows`], [`values_rows`]).

use super::buffers::Shape;
use crate::arena::ArenaLayout;
use crate::kv::Rows;
use crate::ops;
use crate::threads::{self, ThreadPool};

use eddy_quant::f32ops::F32Ops;

/// Cached rows of one head widened to f32 per call on the row-by-row path.
const KV_RUN: usize = 32;
/// Items per thread the work is cut into (claiming balances the threads).
const CHUNKS_PER_THREAD: usize = 8;
/// Fewest multiply-adds worth a parallel region.
const PARALLEL_MIN_WORK: usize = 1 << 14;

/// One layer's attention of a micro-batch: what every item reads.
pub(super) struct Job<'a> {
    pub shape: &'a Shape,
    pub layout: ArenaLayout,
    /// Absolute position of the micro-batch's first token.
    pub n_seen: u64,
    /// The layer's cached keys and values.
    pub keys: Rows<'a>,
    pub values: Rows<'a>,
    /// Queries of the micro-batch, `[n][n_head * head_dim]`, rotated to their positions.
    pub q: &'a [f32],
    /// The layer's sliding window, if it attends locally only.
    pub sliding_window: Option<usize>,
    /// RoPE of the layer (for the queries' extra rotation towards the sinks).
    pub rope_base: f32,
    pub rope_freq_scale: f32,
    pub rope_factors: Option<&'a [f32]>,
    pub rope_adjacent: bool,
    pub attn_scale: f32,
}

/// Elements of scratch one worker needs: the scores of a KV group's query heads, their copies
/// rotated for the sinks, the angles of that rotation, and a run of rows widened to f32.
pub(super) fn scratch_len(sh: &Shape) -> usize {
    let len = sh.group * sh.n_slots
        + 2 * sh.group * sh.head_dim
        + 2 * q8_words(sh)
        + 2 * sh.half_rot
        + KV_RUN * sh.head_dim.max(sh.head_dim_v);
    // Whole cache lines, so that workers' shares never share one.
    len.next_multiple_of(16)
}

/// Scratch words (f32) of the group's queries quantized to Q8_0 for a quantized key cache
/// (34 bytes per 32 values; `head_dim` is whole blocks when the keys are quantized).
fn q8_words(sh: &Shape) -> usize {
    (sh.group * sh.head_dim.div_ceil(32) * 34).div_ceil(4)
}

/// A worker's scratch, split.
struct Scratch<'s> {
    /// `[group][n_slots]`.
    scores: &'s mut [f32],
    /// `[group][head_dim]`.
    q_sink: &'s mut [f32],
    /// The queries rotated for a quantized key cache, `[group][head_dim]`.
    q_rot: &'s mut [f32],
    /// The rotated queries (`q8`) and sink queries (`q8_sink`) as Q8_0 blocks, `[group][row]`.
    q8: &'s mut [u8],
    q8_sink: &'s mut [u8],
    cos: &'s mut [f32],
    sin: &'s mut [f32],
    rows: &'s mut [f32],
}

impl<'s> Scratch<'s> {
    fn split(sh: &Shape, buf: &'s mut [f32]) -> Scratch<'s> {
        let (scores, rest) = buf.split_at_mut(sh.group * sh.n_slots);
        let (q_sink, rest) = rest.split_at_mut(sh.group * sh.head_dim);
        let (q_rot, rest) = rest.split_at_mut(sh.group * sh.head_dim);
        let (q8, rest) = rest.split_at_mut(q8_words(sh));
        let (q8_sink, rest) = rest.split_at_mut(q8_words(sh));
        let (cos, rest) = rest.split_at_mut(sh.half_rot);
        let (sin, rest) = rest.split_at_mut(sh.half_rot);
        let rows = &mut rest[..KV_RUN * sh.head_dim.max(sh.head_dim_v)];
        Scratch {
            scores,
            q_sink,
            q_rot,
            q8: bytemuck::cast_slice_mut(q8),
            q8_sink: bytemuck::cast_slice_mut(q8_sink),
            cos,
            sin,
            rows,
        }
    }
}

/// The cached tokens a query at `pos` attends to: `n_sinks` sink slots from `sink_start`,
/// then every position from `first` to `pos` in the ring.
#[derive(Clone, Copy, Debug)]
struct Span {
    n_sinks: usize,
    sink_start: usize,
    first: u64,
    /// Whether the sink keys sit at cache positions other than the query's: the query is then
    /// rotated back for them.
    shift: bool,
    /// Position the query has in the cache (for the shift).
    query_pos: u64,
    /// Number of keys.
    len: usize,
}

impl Span {
    fn of(layout: &ArenaLayout, pos: u64, sliding_window: Option<usize>) -> Span {
        let view = layout.view(pos);
        let (n_sinks, first, shift) = match sliding_window {
            None => (
                view.n_sink_visible,
                view.window_first,
                view.query_pos != pos,
            ),
            Some(sw) => {
                // Only keys within `sw` tokens of text; all at their true distances.
                let oldest = (pos + 1).saturating_sub(sw as u64);
                let sinks = (oldest..view.n_sink_visible as u64).count();
                (
                    sinks.min(view.n_sink_visible),
                    view.window_first.max(oldest),
                    false,
                )
            }
        };
        Span {
            n_sinks,
            // Sinks visible on a sliding-window layer are the last `n_sinks` of them.
            sink_start: view.n_sink_visible - n_sinks,
            first,
            shift: shift && n_sinks > 0,
            query_pos: view.query_pos,
            len: n_sinks + (pos + 1 - first) as usize,
        }
    }

    /// The arena slot of the span's `i`-th key.
    fn slot(&self, layout: &ArenaLayout, i: usize) -> usize {
        if i < self.n_sinks {
            self.sink_start + i
        } else {
            layout.slot_of(self.first + (i - self.n_sinks) as u64)
        }
    }

    /// The run of consecutive slots starting at key `i`: its first slot and length (at most
    /// `KV_RUN`, broken where the ring wraps and at the sinks/window boundary, where the query
    /// differs).
    fn run(&self, layout: &ArenaLayout, i: usize) -> (usize, usize) {
        let s0 = self.slot(layout, i);
        let mut len = 1;
        while i + len < self.len
            && len < KV_RUN
            && self.slot(layout, i + len) == s0 + len
            && (i + len < self.n_sinks) == (i < self.n_sinks)
        {
            len += 1;
        }
        (s0, len)
    }
}

/// Attention of the `n` tokens of the micro-batch, written to `out` (`[n][n_head *
/// head_dim_v]`), with `scratch` holding [`scratch_len`] elements per thread of `pool`.
pub(super) fn attend(
    job: &Job<'_>,
    n: usize,
    out: &mut [f32],
    scratch: &mut [f32],
    pool: &ThreadPool,
) {
    let sh = job.shape;
    let n_items = n * sh.n_head_kv;
    let nt = pool.n_threads();
    let per_chunk = n_items.div_ceil(CHUNKS_PER_THREAD * nt).max(1);
    let item_out = sh.group * sh.head_dim_v;
    let fops = eddy_quant::f32ops::ops();
    // Worth a region only when the spans are long or the batch is large.
    let longest = job.layout.n_sink + job.layout.n_window;
    let work = n * sh.group * sh.n_head_kv * longest.min(job.n_seen as usize + n) * sh.head_dim;
    let parallel = (nt > 1 && work >= PARALLEL_MIN_WORK).then_some(pool);
    threads::run_parts(
        parallel,
        &mut out[..n_items * item_out],
        per_chunk * item_out,
        scratch,
        scratch_len(sh),
        &|chunk, outs, buf| {
            let mut s = Scratch::split(sh, buf);
            let mut angles_for = None;
            for (j, out) in outs.chunks_exact_mut(item_out).enumerate() {
                let item = chunk * per_chunk + j;
                let (t, kvh) = (item / sh.n_head_kv, item % sh.n_head_kv);
                attend_item(job, fops, t, kvh, out, &mut s, &mut angles_for);
            }
        },
    );
}

/// One item: the query heads of KV group `kvh` of token `t` attend over their span; `out` is
/// their `[group][head_dim_v]` output. `angles_for` remembers which token's sink rotation is in
/// the scratch.
fn attend_item(
    job: &Job<'_>,
    fops: &F32Ops,
    t: usize,
    kvh: usize,
    out: &mut [f32],
    s: &mut Scratch<'_>,
    angles_for: &mut Option<usize>,
) {
    let sh = job.shape;
    let (hd, group) = (sh.head_dim, sh.group);
    let pos = job.n_seen + t as u64;
    let span = Span::of(&job.layout, pos, job.sliding_window);
    let mut q = &job.q[t * sh.q_width + kvh * group * hd..][..group * hd];
    // The format of a quantized key cache, whose keys are stored rotated (`crate::kv`).
    let key_blocks = job.keys.blocks(0, 0).map(|(_, t)| t);
    if span.shift {
        if *angles_for != Some(t) {
            ops::rope_angles(
                s.cos,
                s.sin,
                span.query_pos as f64 - pos as f64,
                job.rope_base,
                job.rope_freq_scale,
                job.rope_factors,
            );
            *angles_for = Some(t);
        }
        s.q_sink[..group * hd].copy_from_slice(q);
        for h in s.q_sink[..group * hd].chunks_exact_mut(hd) {
            ops::rope_apply(h, s.cos, s.sin, job.rope_adjacent);
            if key_blocks.is_some() {
                ops::hadamard_chunks(h);
            }
        }
    }
    if let Some(t) = key_blocks {
        // A quantized key cache holds rotated keys (`crate::kv`): rotated queries are scored
        // against them, quantized to the format's partner (Q8_0) as llama.cpp does, so that
        // the format's integer dot product reads the keys as they are.
        s.q_rot[..group * hd].copy_from_slice(q);
        for h in s.q_rot[..group * hd].chunks_exact_mut(hd) {
            ops::hadamard_chunks(h);
        }
        q = &s.q_rot[..group * hd];
        quantize_queries(t, q, hd, s.q8);
        if span.shift {
            quantize_queries(t, &s.q_sink[..group * hd], hd, s.q8_sink);
        }
    }
    let mut i = 0;
    while i < span.len {
        let (s0, len) = span.run(&job.layout, i);
        // A run lies on one side of the sinks/window boundary: one query block.
        let q_run = if span.shift && i < span.n_sinks {
            &s.q_sink[..group * hd]
        } else {
            q
        };
        let at = (kvh * sh.n_slots + s0) * hd;
        if key_blocks.is_some() {
            let q8 = if span.shift && i < span.n_sinks {
                &*s.q8_sink
            } else {
                &*s.q8
            };
            scores_quant(job, q8, at, len, i, s.scores);
        } else if !scores_fused(job, fops, q_run, at, len, i, s.scores) {
            scores_rows(job, fops, q_run, at, len, i, s.scores, s.rows);
        }
        i += len;
    }
    for h in 0..group {
        // The dispatched softmax: a vectorised exp (relative error 1e-7), sums in f64, as
        // ggml's own `soft_max` (its SIMD `expf`, `ggml_float` sums).
        (fops.softmax_in_place)(&mut s.scores[h * sh.n_slots..h * sh.n_slots + span.len]);
    }
    out.fill(0.0);
    let mut i = 0;
    while i < span.len {
        let (s0, len) = span.run(&job.layout, i);
        let at = (kvh * sh.n_slots + s0) * sh.head_dim_v;
        if !values_fused(job, fops, at, len, i, s.scores, out)
            && !values_quant(job, at, len, i, s.scores, out)
        {
            values_rows(job, fops, at, len, i, s.scores, s.rows, out);
        }
        i += len;
    }
    if job.values.blocks(0, 0).is_some() {
        // A quantized value cache holds rotated values: rotate the sum back (`H·H = I`).
        for h in out.chunks_exact_mut(sh.head_dim_v) {
            ops::hadamard_chunks(h);
        }
    }
}

/// Scores of the group's queries `q` against `len` f16 keys from element `at`, into columns
/// `i..` of `scores` (`[group][n_slots]`), through the fused kernel; false when there is none
/// (an f32 cache, or a tier without it).
fn scores_fused(
    job: &Job<'_>,
    fops: &F32Ops,
    q: &[f32],
    at: usize,
    len: usize,
    i: usize,
    scores: &mut [f32],
) -> bool {
    let sh = job.shape;
    let (Some(f), Some(k)) = (fops.attn_scores_f16, job.keys.halves(at, len * sh.head_dim)) else {
        return false;
    };
    f(q, k, sh.head_dim, &mut scores[i..], sh.n_slots);
    for h in 0..sh.group {
        for v in &mut scores[h * sh.n_slots + i..][..len] {
            *v *= job.attn_scale;
        }
    }
    true
}

/// Quantizes the group's queries `q` (`[group][hd]`) to the `vec_dot` partner of the key format
/// `t`, into `out` (`[group][row]`).
fn quantize_queries(t: &eddy_quant::TypeTraits, q: &[f32], hd: usize, out: &mut [u8]) {
    let Some(p) = eddy_quant::type_traits(t.vec_dot_type) else {
        return;
    };
    let rb = eddy_quant::row_bytes(t.vec_dot_type, hd).unwrap_or(0);
    for (qh, o) in q.chunks_exact(hd).zip(out.chunks_exact_mut(rb)) {
        (p.from_float)(qh, o);
    }
}

/// Scores of the group's quantized queries `q8` against `len` quantized keys from value `at`,
/// into columns `i..` of `scores`: the key format's dispatched integer dot product (AVX2,
/// AVX-512, NEON, dotprod, each tested against its scalar reference in `eddy_quant`), row by
/// row.
fn scores_quant(job: &Job<'_>, q8: &[u8], at: usize, len: usize, i: usize, scores: &mut [f32]) {
    let sh = job.shape;
    let hd = sh.head_dim;
    let Some((keys, t)) = job.keys.blocks(at, len * hd) else {
        return;
    };
    let rb = keys.len() / len.max(1);
    let qrb = eddy_quant::row_bytes(t.vec_dot_type, hd).unwrap_or(0);
    if let Some(multi) = t.vec_dot_multi {
        // All keys of the run against up to `MULTI_HEADS` query heads in one call (the same
        // bits as `vec_dot`), through a stack tile `[key][head]`.
        let mut tile = [0f32; KV_RUN * MULTI_HEADS];
        for h0 in (0..sh.group).step_by(MULTI_HEADS) {
            let k = (sh.group - h0).min(MULTI_HEADS);
            let tile = &mut tile[..len * k];
            multi(hd, keys, len, &q8[h0 * qrb..], qrb, tile);
            for (r, row) in tile.chunks_exact(k).enumerate() {
                for (h, &v) in row.iter().enumerate() {
                    scores[(h0 + h) * sh.n_slots + i + r] = v * job.attn_scale;
                }
            }
        }
        return;
    }
    for (r, krow) in keys.chunks_exact(rb).enumerate() {
        for (h, qh) in q8.chunks_exact(qrb).take(sh.group).enumerate() {
            scores[h * sh.n_slots + i + r] = (t.vec_dot)(hd, krow, qh) * job.attn_scale;
        }
    }
}

/// Query heads per multi-column `vec_dot` call of [`scores_quant`].
const MULTI_HEADS: usize = 16;

/// [`scores_fused`] row by row: each key widened to f32 once for all query heads.
#[allow(clippy::too_many_arguments)]
fn scores_rows(
    job: &Job<'_>,
    fops: &F32Ops,
    q: &[f32],
    at: usize,
    len: usize,
    i: usize,
    scores: &mut [f32],
    rows: &mut [f32],
) {
    let sh = job.shape;
    let hd = sh.head_dim;
    let k = job.keys.row_f32(at, &mut rows[..len * hd], fops);
    for (r, krow) in k.chunks_exact(hd).enumerate() {
        for (h, qh) in q.chunks_exact(hd).enumerate() {
            scores[h * sh.n_slots + i + r] = (fops.dot)(qh, krow) * job.attn_scale;
        }
    }
}

/// `out[h] += Σ_r scores[h][i + r] · value_r` over `len` f16 value rows from element `at`,
/// through the fused kernel; false when there is none.
fn values_fused(
    job: &Job<'_>,
    fops: &F32Ops,
    at: usize,
    len: usize,
    i: usize,
    scores: &[f32],
    out: &mut [f32],
) -> bool {
    let sh = job.shape;
    let hdv = sh.head_dim_v;
    let (Some(f), Some(v)) = (fops.attn_values_f16, job.values.halves(at, len * hdv)) else {
        return false;
    };
    f(&scores[i..], sh.n_slots, v, hdv, out);
    true
}

/// `out[h] += Σ_r scores[h][i + r] · value_r` over `len` quantized value rows from value `at`,
/// each block expanded once (`d·q`, exact in f32) into a 32-value stack buffer and added to
/// every query head of the group: one pass, no call per row; false for f16 and f32 caches.
fn values_quant(
    job: &Job<'_>,
    at: usize,
    len: usize,
    i: usize,
    scores: &[f32],
    out: &mut [f32],
) -> bool {
    let sh = job.shape;
    let hdv = sh.head_dim_v;
    let Some((bytes, t)) = job.values.blocks(at, len * hdv) else {
        return false;
    };
    let q4 = match t.ty {
        eddy_quant::GgmlType::Q4_0 => true,
        eddy_quant::GgmlType::Q8_0 => false,
        _ => return false,
    };
    let bb = if q4 { 18 } else { 34 };
    let mut v = [0f32; 32];
    for (r, row) in bytes.chunks_exact(hdv / 32 * bb).enumerate() {
        for (b, blk) in row.chunks_exact(bb).enumerate() {
            let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
            if q4 {
                // Low nibbles are values 0..16, high nibbles 16..32, both offset by 8.
                for (k, &q) in blk[2..18].iter().enumerate() {
                    v[k] = d * (i32::from(q & 15) - 8) as f32;
                    v[k + 16] = d * (i32::from(q >> 4) - 8) as f32;
                }
            } else {
                for (x, &q) in v.iter_mut().zip(&blk[2..34]) {
                    *x = d * f32::from(q as i8);
                }
            }
            for (h, oh) in out.chunks_exact_mut(hdv).enumerate() {
                let p = scores[h * sh.n_slots + i + r];
                for (o, &x) in oh[32 * b..32 * b + 32].iter_mut().zip(&v) {
                    *o += p * x;
                }
            }
        }
    }
    true
}

/// [`values_fused`] row by row.
#[allow(clippy::too_many_arguments)]
fn values_rows(
    job: &Job<'_>,
    fops: &F32Ops,
    at: usize,
    len: usize,
    i: usize,
    scores: &[f32],
    rows: &mut [f32],
    out: &mut [f32],
) {
    let sh = job.shape;
    let hdv = sh.head_dim_v;
    let v = job.values.row_f32(at, &mut rows[..len * hdv], fops);
    for (r, vrow) in v.chunks_exact(hdv).enumerate() {
        for (h, oh) in out.chunks_exact_mut(hdv).enumerate() {
            (fops.axpy)(scores[h * sh.n_slots + i + r], vrow, oh);
        }
    }
}
