//! The KV arena's geometry: attention-sink slots plus a circular window (StreamingLLM, Xiao et
//! al. 2023), and what each token sees.
//!
//! Slots `0..n_sink` hold the first `n_sink` tokens of the stream for ever. The other slots
//! form a ring: token `t >= n_sink` lives in slot `n_sink + (t - n_sink) % n_ring`, overwriting
//! the oldest. The ring holds `n_window` tokens plus `n_ubatch - 1` slack slots, so that while a
//! micro-batch writes its keys before attending, the earliest token of the batch still finds the
//! whole window it would have seen alone: batched prefill equals token-by-token decoding.
//!
//! **Positions are cache positions.** Token `t` attends to the sinks at positions
//! `0..n_sink` and to the `w` most recent window tokens at the consecutive positions
//! `n_sink..n_sink + w`, itself last (`w <= n_window`). RoPE makes a score depend only on the
//! distance between query and key positions, so:
//! - keys are rotated once, at their absolute text position, when they enter the arena;
//! - the query is rotated at its absolute position `t` for the window keys: window distances
//!   in the cache equal text distances, so nothing changes there as the ring turns;
//! - for the sink keys (stored at absolute positions `0..n_sink`, which are also their cache
//!   positions) the query is rotated once more, by `q_pos - t` where `q_pos = n_sink + w - 1` is
//!   its cache position.
//!
//! The extra cost is one rotation of each query head per token (O(head_dim)); nothing is
//! re-rotated as the stream grows, and the prompt is never re-processed. Rotation angles are
//! computed in f64 from the position, so positions in the millions stay exact.

/// Geometry of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaLayout {
    /// Sink slots.
    pub n_sink: usize,
    /// Window tokens a query sees (besides the sinks).
    pub n_window: usize,
    /// Ring slots: `n_window` plus the micro-batch slack.
    pub n_ring: usize,
}

/// What token `t` sees on a layer without its own sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Sink tokens visible: `0..n_sink_visible`.
    pub n_sink_visible: usize,
    /// First visible window token (absolute index); the window runs to `t` inclusive.
    pub window_first: u64,
    /// The query's cache position (`t` itself until the window is full).
    pub query_pos: u64,
}

impl ArenaLayout {
    /// The layout for `n_sink` sinks, a window of `n_window` and micro-batches of `n_ubatch`.
    pub fn new(n_sink: usize, n_window: usize, n_ubatch: usize) -> ArenaLayout {
        ArenaLayout {
            n_sink,
            n_window,
            n_ring: n_window + n_ubatch.saturating_sub(1),
        }
    }

    /// Slots per layer.
    pub fn n_slots(&self) -> usize {
        self.n_sink + self.n_ring
    }

    /// The slot of token `t`.
    pub fn slot_of(&self, t: u64) -> usize {
        if t < self.n_sink as u64 {
            t as usize
        } else {
            self.n_sink + ((t - self.n_sink as u64) % self.n_ring as u64) as usize
        }
    }

    /// What token `t` sees.
    pub fn view(&self, t: u64) -> View {
        let sinks = self.n_sink as u64;
        if t < sinks {
            // Still filling the sinks: everything so far, at its own position.
            return View {
                n_sink_visible: t as usize + 1,
                window_first: t + 1,
                query_pos: t,
            };
        }
        let window_first = (t + 1).saturating_sub(self.n_window as u64).max(sinks);
        let w = t + 1 - window_first;
        View {
            n_sink_visible: self.n_sink,
            window_first,
            query_pos: sinks + w - 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_then_ring() {
        let a = ArenaLayout::new(4, 6, 3);
        assert_eq!((a.n_ring, a.n_slots()), (8, 12));
        let slots: Vec<usize> = (0..16).map(|t| a.slot_of(t)).collect();
        assert_eq!(slots, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 4, 5, 6, 7]);
    }

    #[test]
    fn views_follow_the_paper() {
        let a = ArenaLayout::new(4, 6, 1);
        // Before the window fills, positions are text positions.
        assert_eq!(
            a.view(2),
            View {
                n_sink_visible: 3,
                window_first: 3,
                query_pos: 2
            }
        );
        assert_eq!(
            a.view(9),
            View {
                n_sink_visible: 4,
                window_first: 4,
                query_pos: 9
            }
        );
        // From then on: 4 sinks + the 6 most recent, the query at cache position 9.
        assert_eq!(
            a.view(10),
            View {
                n_sink_visible: 4,
                window_first: 5,
                query_pos: 9
            }
        );
        assert_eq!(
            a.view(1_000_000),
            View {
                n_sink_visible: 4,
                window_first: 999_995,
                query_pos: 9
            }
        );
        // No sinks: a pure sliding window.
        let w = ArenaLayout::new(0, 6, 1);
        assert_eq!(
            w.view(100),
            View {
                n_sink_visible: 0,
                window_first: 95,
                query_pos: 5
            }
        );
    }

    #[test]
    fn every_visible_token_is_still_in_its_slot_within_a_micro_batch() {
        // A micro-batch writes tokens b..b+n before attending; token b+i must still find every
        // token it sees in the slot that token was written to.
        for (sinks, window, ubatch) in [(4, 6, 3), (0, 5, 4), (2, 1, 5), (4, 16, 16)] {
            let a = ArenaLayout::new(sinks, window, ubatch);
            for b in 0..60u64 {
                for n in 1..=ubatch as u64 {
                    let mut owner = vec![None; a.n_slots()];
                    for t in 0..b + n {
                        owner[a.slot_of(t)] = Some(t);
                    }
                    for t in b..b + n {
                        let v = a.view(t);
                        let seen = (0..v.n_sink_visible as u64).chain(v.window_first..=t);
                        for j in seen {
                            assert_eq!(
                                owner[a.slot_of(j)],
                                Some(j),
                                "{sinks}/{window}/{ubatch}: t={t} j={j}"
                            );
                        }
                    }
                }
            }
        }
    }
}
