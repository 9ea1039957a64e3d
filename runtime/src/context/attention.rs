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
//! slots go through the kernels of `eddy_quant::f32ops` that read the cache as it is stored:
//! Q8_0/Q4_0 blocks on every tier ([`scores_quant`], [`values_quant`]), f16 where the tier has
//! fused kernels ([`scores_fused`], [`values_fused`]), else row by row ([`scores_rows`],
//! [`values_rows`]).

use super::buffers::Shape;
use crate::arena::ArenaLayout;
use crate::kv::{KeyPairs, MAX_PAIRS, PAIR_BYTES, Rows};
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
    /// Per key channel `[n_head_kv][head_dim]`: what a Q4_0 key cache divided the keys by
    /// (`model::key_smoothing`), and so what the queries are multiplied by; `None` for other
    /// key types.
    pub k_smooth: Option<&'a [f32]>,
    /// For a key cache that keeps the key bias apart (`KvStore::write_angles`): the layer's key
    /// bias `[n_head_kv][head_dim]` and the angles table `[2 * half_rot][n_slots]`. Each score
    /// then adds `q·R(pos)·b` over the rotated channels.
    pub key_bias: Option<(&'a [f32], &'a [f32])>,
    /// The exact pairs of the layer's key rows (Q4_0 keys; `KvStore::key_pairs`): each score
    /// adds them against the smoothed, unrotated query.
    pub key_pairs: Option<(KeyPairs, &'a [u8])>,
}

/// Elements of scratch one worker needs: the scores of a KV group's query heads, their copies
/// rotated for the sinks, the angles of that rotation, and a run of rows widened to f32.
pub(super) fn scratch_len(sh: &Shape) -> usize {
    let len = sh.group * sh.n_slots
        + 2 * sh.group * sh.head_dim
        + 2 * sh.half_rot
        + KV_RUN * sh.head_dim.max(sh.head_dim_v)
        + coef_len(sh)
        + plain_len(sh);
    // Whole cache lines, so that workers' shares never share one.
    len.next_multiple_of(16)
}

/// Elements of the key-bias coefficients of a group's queries and of their sink copies.
fn coef_len(sh: &Shape) -> usize {
    if sh.key_bias_apart {
        2 * sh.group * 2 * sh.half_rot
    } else {
        0
    }
}

/// Elements of the smoothed, unrotated queries of a group and of their sink copies, which the
/// key rows' exact pairs are scored against.
fn plain_len(sh: &Shape) -> usize {
    if sh.key_pairs.n > 0 {
        2 * sh.group * sh.head_dim
    } else {
        0
    }
}

/// A worker's scratch, split.
struct Scratch<'s> {
    /// `[group][n_slots]`.
    scores: &'s mut [f32],
    /// `[group][head_dim]`.
    q_sink: &'s mut [f32],
    /// The queries rotated for a quantized key cache, `[group][head_dim]`.
    q_rot: &'s mut [f32],
    cos: &'s mut [f32],
    sin: &'s mut [f32],
    rows: &'s mut [f32],
    /// `[group][2 * half_rot]` key-bias coefficients of the queries ([`bias_coefs`]), then the
    /// same for their sink copies; empty without a key bias kept apart.
    coef: &'s mut [f32],
    /// `[group][head_dim]` smoothed queries before their rotation into the key blocks' basis,
    /// then the same for their sink copies; empty without exact key pairs.
    q_plain: &'s mut [f32],
}

impl<'s> Scratch<'s> {
    fn split(sh: &Shape, buf: &'s mut [f32]) -> Scratch<'s> {
        let (scores, rest) = buf.split_at_mut(sh.group * sh.n_slots);
        let (q_sink, rest) = rest.split_at_mut(sh.group * sh.head_dim);
        let (q_rot, rest) = rest.split_at_mut(sh.group * sh.head_dim);
        let (cos, rest) = rest.split_at_mut(sh.half_rot);
        let (sin, rest) = rest.split_at_mut(sh.half_rot);
        let (rows, rest) = rest.split_at_mut(KV_RUN * sh.head_dim.max(sh.head_dim_v));
        let (coef, rest) = rest.split_at_mut(coef_len(sh));
        let q_plain = &mut rest[..plain_len(sh)];
        Scratch {
            scores,
            q_sink,
            q_rot,
            cos,
            sin,
            rows,
            coef,
            q_plain,
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
    /// differs). Sink slots are consecutive; window slots are consecutive up to the ring's end.
    fn run(&self, layout: &ArenaLayout, i: usize) -> (usize, usize) {
        let s0 = self.slot(layout, i);
        let len = if i < self.n_sinks {
            self.n_sinks - i
        } else {
            (layout.n_sink + layout.n_ring - s0).min(self.len - i)
        };
        (s0, len.min(KV_RUN))
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
    // Whether the keys are a quantized cache's, stored rotated (`crate::kv`).
    let rotated_keys = job.keys.blocks(0, 0).is_some();
    let nc = 2 * sh.half_rot;
    if let Some((bias, _)) = job.key_bias {
        let b = &bias[kvh * hd..][..hd];
        for (qh, c) in q.chunks_exact(hd).zip(s.coef.chunks_exact_mut(nc)) {
            bias_coefs(qh, b, job.rope_adjacent, job.attn_scale, c);
        }
    }
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
        for (g, h) in s.q_sink[..group * hd].chunks_exact_mut(hd).enumerate() {
            ops::rope_apply(h, s.cos, s.sin, job.rope_adjacent);
            if let Some((bias, _)) = job.key_bias {
                let c = &mut s.coef[(group + g) * nc..][..nc];
                bias_coefs(
                    h,
                    &bias[kvh * hd..][..hd],
                    job.rope_adjacent,
                    job.attn_scale,
                    c,
                );
            }
            if rotated_keys {
                smooth(h, job.k_smooth, kvh);
                if job.key_pairs.is_some() {
                    s.q_plain[(group + g) * hd..][..hd].copy_from_slice(h);
                }
                ops::hadamard_chunks(h);
            }
        }
    }
    if rotated_keys {
        // A quantized key cache holds rotated keys (`crate::kv`): the queries are rotated the
        // same way (`H·q · H·k = q·k`) and scored, in f32, against the keys' exact values.
        s.q_rot[..group * hd].copy_from_slice(q);
        for (g, h) in s.q_rot[..group * hd].chunks_exact_mut(hd).enumerate() {
            smooth(h, job.k_smooth, kvh);
            if job.key_pairs.is_some() {
                s.q_plain[g * hd..][..hd].copy_from_slice(h);
            }
            ops::hadamard_chunks(h);
        }
        q = &s.q_rot[..group * hd];
    }
    let mut i = 0;
    while i < span.len {
        let (s0, len) = span.run(&job.layout, i);
        // A run lies on one side of the sinks/window boundary: one query block.
        let sink_run = span.shift && i < span.n_sinks;
        let q_run = if sink_run { &s.q_sink[..group * hd] } else { q };
        let at = (kvh * sh.n_slots + s0) * hd;
        if !scores_quant(job, fops, q_run, at, len, i, s.scores)
            && !scores_fused(job, fops, q_run, at, len, i, s.scores)
        {
            scores_rows(job, fops, q_run, at, len, i, s.scores, s.rows);
        }
        if let Some(pairs) = job.key_pairs {
            let q_plain = &s.q_plain[if sink_run { group * hd } else { 0 }..][..group * hd];
            add_pair_scores(job, pairs, q_plain, kvh * sh.n_slots + s0, len, i, s.scores);
        }
        if let Some((_, angles)) = job.key_bias {
            // Each key's bias term `q·R(pos)·b` from its slot's angles (the same bits on every
            // tier and in runs of any length: a batch keeps token-by-token decoding's logits).
            let coef = &s.coef[if sink_run { group * nc } else { 0 }..][..group * nc];
            let (angles, scores) = (&angles[s0..], &mut s.scores[i..]);
            (fops.attn_table_scores)(coef, nc, angles, scores, sh.n_slots, len);
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
            && !values_quant(job, fops, at, len, i, s.scores, out)
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

/// The coefficients that turn a slot's angles into the score's key-bias term: for RoPE pair
/// `j` with channels `(a, b)`, rotating the bias gives `(b_a·cos − b_b·sin, b_a·sin +
/// b_b·cos)`, so `q·R·b = Σ_j cos_j·(q_a·b_a + q_b·b_b) + sin_j·(q_b·b_a − q_a·b_b)`; `out` is
/// `[the cos coefficients, then the sin ones]` (the order of the angles table's rows), each
/// times the attention scale `scale` as the scores are.
fn bias_coefs(q: &[f32], bias: &[f32], adjacent: bool, scale: f32, out: &mut [f32]) {
    let half = out.len() / 2;
    let (cos_c, sin_c) = out.split_at_mut(half);
    for j in 0..half {
        let (a, b) = if adjacent {
            (2 * j, 2 * j + 1)
        } else {
            (j, j + half)
        };
        cos_c[j] = (q[a] * bias[a] + q[b] * bias[b]) * scale;
        sin_c[j] = (q[b] * bias[a] - q[a] * bias[b]) * scale;
    }
}

/// Adds to columns `i..i + len` of each head's scores the exact pairs of key rows `row0..row0 +
/// len` (`crate::kv::KeyPairs`): `Σ_pairs q_a·k_a + q_b·k_b` with the group's smoothed,
/// unrotated queries `q`, times the attention scale. Plain loops, the same on every tier.
fn add_pair_scores(
    job: &Job<'_>,
    (kp, bytes): (KeyPairs, &[u8]),
    q: &[f32],
    row0: usize,
    len: usize,
    i: usize,
    scores: &mut [f32],
) {
    let (hd, n_slots) = (job.shape.head_dim, job.shape.n_slots);
    let rb = kp.n * PAIR_BYTES;
    let mut pairs = [((0, 0), (0.0, 0.0)); MAX_PAIRS];
    for (r, row) in bytes[row0 * rb..][..len * rb].chunks_exact(rb).enumerate() {
        // Decoded once per key for every head of the group.
        for (p, got) in pairs.iter_mut().zip(kp.read(row, hd)) {
            *p = got;
        }
        for (h, qh) in q.chunks_exact(hd).enumerate() {
            let mut sum = 0f32;
            for &((a, b), (ka, kb)) in &pairs[..kp.n] {
                sum += qh[a] * ka + qh[b] * kb;
            }
            scores[h * n_slots + i + r] += sum * job.attn_scale;
        }
    }
}

/// Multiplies a query head of KV group `kvh` by the scales its keys were divided by
/// (`model::key_smoothing`), if they were.
fn smooth(q: &mut [f32], scales: Option<&[f32]>, kvh: usize) {
    if let Some(s) = scales {
        let hd = q.len();
        q.iter_mut()
            .zip(&s[kvh * hd..][..hd])
            .for_each(|(x, s)| *x *= s);
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
    scale_run(job, scores, i, len);
    true
}

/// Multiplies columns `i..i + len` of every head's scores by the layer's attention scale.
fn scale_run(job: &Job<'_>, scores: &mut [f32], i: usize, len: usize) {
    let n_slots = job.shape.n_slots;
    for h in 0..job.shape.group {
        for v in &mut scores[h * n_slots + i..][..len] {
            *v *= job.attn_scale;
        }
    }
}

/// Scores of the group's queries `q` against `len` quantized keys from value `at`, into columns
/// `i..` of `scores`, through the tier's kernel that reads the blocks directly (each key
/// expanded once, exactly, for all heads); false for f16 and f32 caches.
fn scores_quant(
    job: &Job<'_>,
    fops: &F32Ops,
    q: &[f32],
    at: usize,
    len: usize,
    i: usize,
    scores: &mut [f32],
) -> bool {
    let sh = job.shape;
    let Some((keys, t)) = job.keys.blocks(at, len * sh.head_dim) else {
        return false;
    };
    let kernel = match t.ty {
        eddy_quant::GgmlType::Q8_0 => fops.attn_scores_q8_0,
        eddy_quant::GgmlType::Q4_0 => fops.attn_scores_q4_0,
        _ => return false,
    };
    kernel(q, keys, sh.head_dim, &mut scores[i..], sh.n_slots);
    scale_run(job, scores, i, len);
    true
}

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
/// through the tier's kernel that reads the blocks directly (each block expanded once for all
/// heads, bit-identical on every tier to `eddy_quant::f32ops::attn_values_q8_0_ref`); false
/// for f16 and f32 caches.
#[allow(clippy::too_many_arguments)]
fn values_quant(
    job: &Job<'_>,
    fops: &F32Ops,
    at: usize,
    len: usize,
    i: usize,
    scores: &[f32],
    out: &mut [f32],
) -> bool {
    let sh = job.shape;
    let Some((bytes, t)) = job.values.blocks(at, len * sh.head_dim_v) else {
        return false;
    };
    let kernel = match t.ty {
        eddy_quant::GgmlType::Q8_0 => fops.attn_values_q8_0,
        eddy_quant::GgmlType::Q4_0 => fops.attn_values_q4_0,
        _ => return false,
    };
    kernel(&scores[i..], sh.n_slots, bytes, sh.head_dim_v, out);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Span::run`] against its definition, slot by slot: the longest run of consecutive slots
    /// on one side of the sinks/window boundary, at most `KV_RUN`, for layouts with and without
    /// sinks, every position of two turns of the ring, global and sliding-window layers.
    #[test]
    fn runs_are_the_longest_consecutive_slots() {
        for (sinks, window, slack) in [(4, 6, 3), (0, 40, 5), (4, 70, 31), (1, 1, 1)] {
            let layout = ArenaLayout::new(sinks, window, slack);
            for sw in [None, Some(3), Some(50)] {
                for pos in 0..2 * (sinks + layout.n_ring) as u64 + 7 {
                    let span = Span::of(&layout, pos, sw);
                    let mut i = 0;
                    while i < span.len {
                        let (s0, len) = span.run(&layout, i);
                        assert_eq!(s0, span.slot(&layout, i));
                        let mut want = 1;
                        while i + want < span.len
                            && want < KV_RUN
                            && span.slot(&layout, i + want) == s0 + want
                            && (i + want < span.n_sinks) == (i < span.n_sinks)
                        {
                            want += 1;
                        }
                        assert_eq!(len, want, "{layout:?} {sw:?} pos {pos} key {i}");
                        i += len;
                    }
                }
            }
        }
    }
}
