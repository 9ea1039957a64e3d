//! Turning logits into the next token: greedy, or penalties → top-k → top-p → min-p →
//! temperature → a seeded draw (llama.cpp's default order).
//!
//! A [`Sampler`] owns every buffer it needs, sized from the vocabulary when it is created;
//! [`Sampler::sample`] and [`Sampler::accept`] allocate nothing.
//!
//! With a [`Constraint`] attached ([`Sampler::set_constraint`]) the draw is restricted to the
//! tokens the grammar allows, after the penalties and before top-k (llama.cpp applies its
//! grammar at the same place), and each accepted token advances the grammar. That path
//! allocates: llguidance computes a fresh token mask per step.

#[cfg(feature = "constraint")]
use crate::constraint::{Constraint, ConstraintError, Mask};

/// Without the `constraint` feature there are no masks.
#[cfg(not(feature = "constraint"))]
enum Mask {}

#[cfg(not(feature = "constraint"))]
impl Mask {
    fn allows(&self, _: u32) -> bool {
        match *self {}
    }

    fn for_each(&self, _: impl FnMut(u32)) {
        match *self {}
    }
}

/// Sampling parameters. `Default` gives llama.cpp's defaults except `temperature`, which
/// defaults to 0 (greedy) so that output is reproducible unless asked otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// 0 (or less) means greedy: always the highest logit.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens by this (1 = off).
    pub repeat_penalty: f32,
    /// Subtract `count * frequency_penalty` from recent tokens' logits (0 = off).
    pub frequency_penalty: f32,
    /// Subtract `presence_penalty` from every recent token's logit (0 = off).
    pub presence_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: usize,
    /// Seed of the random draw: the same seed gives the same text.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0x5eed,
        }
    }
}

/// A sampler for one stream of tokens.
#[derive(Debug)]
pub struct Sampler {
    params: SamplerParams,
    /// (id, logit/probability) candidates, one per vocabulary entry.
    cand: Vec<(u32, f32)>,
    /// Ring of the last `penalty_last_n` accepted tokens.
    recent: Vec<u32>,
    recent_next: usize,
    recent_len: usize,
    /// How often each token occurs in `recent`.
    counts: Vec<u32>,
    rng: SplitMix64,
    /// Restricts the draw to what a grammar allows.
    #[cfg(feature = "constraint")]
    constraint: Option<Constraint>,
    /// The constraint's first failure, returned by the next [`Sampler::try_sample`].
    #[cfg(feature = "constraint")]
    constraint_error: Option<ConstraintError>,
}

impl Sampler {
    /// A sampler for a vocabulary of `n_vocab` tokens.
    pub fn new(n_vocab: usize, params: SamplerParams) -> Sampler {
        Sampler {
            cand: Vec::with_capacity(n_vocab),
            recent: vec![0; params.penalty_last_n],
            recent_next: 0,
            recent_len: 0,
            counts: vec![0; n_vocab],
            rng: SplitMix64(params.seed),
            params,
            #[cfg(feature = "constraint")]
            constraint: None,
            #[cfg(feature = "constraint")]
            constraint_error: None,
        }
    }

    /// Attaches a constraint (or removes it with `None`): from now on only tokens it allows
    /// are drawn, and [`Sampler::accept`] advances it. Prompt tokens must then be recorded with
    /// [`Sampler::accept_prompt`], which leaves the constraint alone.
    #[cfg(feature = "constraint")]
    pub fn set_constraint(&mut self, constraint: Option<Constraint>) {
        self.constraint = constraint;
        self.constraint_error = None;
    }

    /// Takes an attached constraint back to its start (for the next output, such as the next
    /// reply of a chat), leaving the penalties and the random state as they are.
    #[cfg(feature = "constraint")]
    pub fn restart_constraint(&mut self) {
        if let Some(c) = &mut self.constraint {
            c.reset();
        }
        self.constraint_error = None;
    }

    /// The attached constraint.
    #[cfg(feature = "constraint")]
    pub fn constraint(&self) -> Option<&Constraint> {
        self.constraint.as_ref()
    }

    /// Whether the attached constraint is complete: the output so far matches it and nothing
    /// more can follow. False without a constraint.
    #[cfg(feature = "constraint")]
    pub fn constraint_finished(&self) -> bool {
        self.constraint
            .as_ref()
            .is_some_and(Constraint::is_finished)
    }

    /// Bytes a sampler for `n_vocab` tokens allocates.
    pub fn memory_required(n_vocab: usize, params: &SamplerParams) -> usize {
        n_vocab * (std::mem::size_of::<(u32, f32)>() + 4) + params.penalty_last_n * 4
    }

    /// The parameters.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Forgets the recent tokens and re-seeds the random draw.
    /// Also takes an attached constraint back to its start.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.recent_len = 0;
        self.recent_next = 0;
        self.rng = SplitMix64(self.params.seed);
        #[cfg(feature = "constraint")]
        {
            if let Some(c) = &mut self.constraint {
                c.reset();
            }
            self.constraint_error = None;
        }
    }

    /// Records a generated token as part of the stream: for the penalties, and to advance an
    /// attached constraint. If the constraint does not allow the token, the next
    /// [`Sampler::try_sample`] reports it.
    pub fn accept(&mut self, token: u32) {
        #[cfg(feature = "constraint")]
        if let Some(c) = &mut self.constraint
            && self.constraint_error.is_none()
            && let Err(e) = c.advance(token)
        {
            self.constraint_error = Some(e);
        }
        self.accept_prompt(token);
    }

    /// Records a token for the penalties only (prompt tokens that should be penalised); an
    /// attached constraint is not advanced. Without a constraint it is [`Sampler::accept`].
    pub fn accept_prompt(&mut self, token: u32) {
        let cap = self.recent.len();
        if cap == 0 || token as usize >= self.counts.len() {
            return;
        }
        if self.recent_len == cap {
            let old = self.recent[self.recent_next] as usize;
            self.counts[old] -= 1;
        } else {
            self.recent_len += 1;
        }
        self.recent[self.recent_next] = token;
        self.counts[token as usize] += 1;
        self.recent_next = (self.recent_next + 1) % cap;
    }

    /// Picks the next token from `logits` (one per vocabulary entry). Does not accept it.
    ///
    /// With a constraint attached, a constraint failure (see [`Sampler::try_sample`]) gives
    /// token 0 here; use `try_sample` to see it.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        #[cfg(feature = "constraint")]
        if self.constraint.is_some() {
            return self.try_sample(logits).unwrap_or(0);
        }
        self.draw(logits, None)
    }

    /// [`Sampler::sample`], with a constraint's failure as an error: the grammar rejected an
    /// accepted token, a step exceeded its limits, or no allowed token has a logit.
    #[cfg(feature = "constraint")]
    pub fn try_sample(&mut self, logits: &[f32]) -> Result<u32, ConstraintError> {
        if let Some(e) = &self.constraint_error {
            return Err(e.clone());
        }
        let Some(c) = &mut self.constraint else {
            return Ok(self.draw(logits, None));
        };
        let mask = c
            .allowed()
            .inspect_err(|e| self.constraint_error = Some(e.clone()))?;
        let n = logits.len().min(self.counts.len());
        if mask.first().is_none_or(|t| t as usize >= n) {
            return Err(ConstraintError::Parse(format!(
                "the constraint allows no token among the {n} logits"
            )));
        }
        Ok(self.draw(logits, Some(&mask)))
    }

    /// The draw itself; `mask`, when given, allows at least one token below `logits.len()`.
    fn draw(&mut self, logits: &[f32], mask: Option<&Mask>) -> u32 {
        let p = &self.params;
        let n = logits.len().min(self.counts.len());
        let penalised =
            p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0;
        if p.temperature <= 0.0 && !penalised {
            return match mask {
                None => argmax(&logits[..n]),
                Some(m) => masked_argmax(&logits[..n], m),
            };
        }
        self.cand.clear();
        self.cand
            .extend(logits[..n].iter().enumerate().map(|(i, &l)| (i as u32, l)));
        if penalised && self.recent_len > 0 {
            // Each distinct recent token once: the first visit applies the penalty and zeroes
            // the token's count, so later visits skip it; the counts are rebuilt afterwards.
            for k in 0..self.recent_len {
                let id = self.recent[k] as usize;
                let c = std::mem::take(&mut self.counts[id]);
                if c == 0 {
                    continue;
                }
                let l = &mut self.cand[id].1;
                if *l > 0.0 {
                    *l /= p.repeat_penalty;
                } else {
                    *l *= p.repeat_penalty;
                }
                *l -= c as f32 * p.frequency_penalty + p.presence_penalty;
            }
            for k in 0..self.recent_len {
                self.counts[self.recent[k] as usize] += 1;
            }
        }
        if let Some(m) = mask {
            self.cand.retain(|c| m.allows(c.0));
        }
        if p.temperature <= 0.0 {
            return self
                .cand
                .iter()
                .fold((0u32, f32::NEG_INFINITY), |best, &(i, l)| {
                    if l > best.1 { (i, l) } else { best }
                })
                .0;
        }
        // Highest logits first; only the first k need ordering.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        // A constraint may have left fewer than n candidates.
        let n = self.cand.len();
        let k = if p.top_k == 0 { n } else { p.top_k.min(n) };
        if k < n {
            self.cand.select_nth_unstable_by(k - 1, by_logit);
            self.cand.truncate(k);
        }
        self.cand.sort_unstable_by(by_logit);

        // Probabilities at temperature 1 for top-p / min-p (as llama.cpp's chain computes them
        // before the temperature step).
        softmax_pairs(&mut self.cand, 1.0);
        if p.top_p < 1.0 {
            let mut cum = 0.0f32;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                cum += c.1;
                if cum >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            let floor = self.cand[0].1 * p.min_p;
            let keep = self.cand.iter().take_while(|c| c.1 >= floor).count();
            self.cand.truncate(keep.max(1));
        }
        // Temperature on the surviving probabilities: p^(1/T), renormalised.
        let inv_t = 1.0 / p.temperature;
        for c in self.cand.iter_mut() {
            c.1 = c.1.max(f32::MIN_POSITIVE).ln() * inv_t;
        }
        softmax_pairs(&mut self.cand, 1.0);
        let r = self.rng.next_f32();
        let mut cum = 0.0f32;
        for c in &self.cand {
            cum += c.1;
            if r < cum {
                return c.0;
            }
        }
        self.cand.last().map_or(0, |c| c.0)
    }
}

/// Index of the largest value (the first one on ties), 0 for an empty slice. NaNs never win,
/// except a NaN first value, which nothing compares greater than (so 0, as a running
/// comparison from the first value gives).
///
/// Two passes: the maximum in 16 independent lanes, then its first index. A single running
/// comparison is a chain of dependent selects, about 30 µs over a 49k-token vocabulary, 0.5 %
/// of a SmolLM2 token; the lanes vectorise.
pub fn argmax(x: &[f32]) -> u32 {
    const LANES: usize = 16;
    match x.first() {
        None => return 0,
        Some(v) if v.is_nan() => return 0,
        Some(_) => {}
    }
    let (chunks, rest) = x.as_chunks::<LANES>();
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = lanes
        .iter()
        .chain(rest)
        .fold(x[0], |m, &v| if v > m { v } else { m });
    // `max` is an element (x[0] is not NaN), so the search finds it.
    x.iter().position(|&v| v == max).unwrap_or(0) as u32
}

/// Index of the largest value among the tokens `mask` allows (the first one on ties).
fn masked_argmax(x: &[f32], mask: &Mask) -> u32 {
    let mut best: Option<(u32, f32)> = None;
    mask.for_each(|t| {
        if let Some(&v) = x.get(t as usize)
            && best.is_none_or(|b| v > b.1)
        {
            best = Some((t, v));
        }
    });
    best.map_or(0, |b| b.0)
}

/// Replaces the logits of sorted candidates by their softmax probabilities.
fn softmax_pairs(c: &mut [(u32, f32)], temp: f32) {
    let max = c.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for x in c.iter_mut() {
        x.1 = ((x.1 - max) / temp).exp();
        sum += f64::from(x.1);
    }
    let inv = (1.0 / sum) as f32;
    for x in c.iter_mut() {
        x.1 *= inv;
    }
}

/// SplitMix64: small, fast, good enough for sampling, and fully determined by its seed.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37) % 100) as f32 / 10.0).collect()
    }

    #[test]
    fn greedy_is_argmax() {
        let l = logits();
        let mut s = Sampler::new(100, SamplerParams::default());
        assert_eq!(s.sample(&l), argmax(&l));
        assert_eq!(l[argmax(&l) as usize], 9.9);
    }

    /// The running comparison `argmax` replaced: the first index whose value is greater than
    /// every earlier one's maximum.
    fn argmax_running(x: &[f32]) -> u32 {
        let mut best = 0usize;
        for (i, &v) in x.iter().enumerate() {
            if v > x[best] {
                best = i;
            }
        }
        best as u32
    }

    #[test]
    fn argmax_is_the_running_comparison() {
        // Lengths around the 16 lanes, values with ties, NaNs, infinities and signed zeros.
        let specials = [
            f32::NAN,
            f32::NEG_INFINITY,
            f32::INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
        ];
        let mut rng = SplitMix64(7);
        let mut next = || rng.next_u64();
        for len in (0..70).chain([1000, 49152]) {
            for trial in 0..40 {
                let x: Vec<f32> = (0..len)
                    .map(|_| {
                        let r = next();
                        match (trial % 4, r % 8) {
                            // Few distinct values: many ties.
                            (0, _) => (r % 3) as f32,
                            (1, k) if k < 3 => specials[(r >> 8) as usize % specials.len()],
                            (3, _) => f32::NAN,
                            _ => (r >> 40) as f32 / 1e6 - 8.0,
                        }
                    })
                    .collect();
                assert_eq!(argmax(&x), argmax_running(&x), "len {len}, trial {trial}");
            }
        }
        assert_eq!(argmax(&[f32::NAN, 1.0, 2.0]), 0);
        assert_eq!(argmax(&[1.0, f32::NAN, 2.0, 2.0]), 2);
        assert_eq!(argmax(&[-0.0, 0.0]), 0);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let l: Vec<f32> = (0..100).map(|i| (i % 7) as f32 * 0.1).collect();
        let params = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let run = |seed| {
            let mut s = Sampler::new(
                100,
                SamplerParams {
                    seed,
                    ..params.clone()
                },
            );
            (0..50).map(|_| s.sample(&l)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn top_k_1_is_greedy_and_min_p_filters() {
        let l = logits();
        let mut s = Sampler::new(
            100,
            SamplerParams {
                temperature: 5.0,
                top_k: 1,
                ..Default::default()
            },
        );
        for _ in 0..20 {
            assert_eq!(s.sample(&l), argmax(&l));
        }
        // min_p = 1: only tokens as likely as the best survive.
        let mut s = Sampler::new(
            100,
            SamplerParams {
                temperature: 5.0,
                top_k: 0,
                min_p: 1.0,
                ..Default::default()
            },
        );
        for _ in 0..20 {
            assert_eq!(s.sample(&l), argmax(&l));
        }
    }

    #[test]
    fn repeat_penalty_moves_greedy_off_a_recent_token() {
        let mut l = vec![0.0f32; 10];
        l[3] = 2.0;
        l[5] = 1.5;
        let mut s = Sampler::new(
            10,
            SamplerParams {
                repeat_penalty: 2.0,
                ..Default::default()
            },
        );
        assert_eq!(s.sample(&l), 3);
        s.accept(3);
        assert_eq!(s.sample(&l), 5);
        // The ring forgets: after penalty_last_n other tokens, 3 wins again.
        for _ in 0..64 {
            s.accept(7);
        }
        assert_eq!(s.sample(&l), 3);
        // Counts survive a sample call intact.
        s.accept(3);
        s.accept(3);
        assert_eq!(s.counts[3], 2);
        let _ = s.sample(&l);
        assert_eq!(s.counts[3], 2);
    }
}
