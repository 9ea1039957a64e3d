//! SentencePiece-style BPE as llama.cpp runs it: start from single characters and repeatedly
//! join the adjacent pair whose joined text is the token with the highest score.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::{TokenId, Vocab};

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    /// Byte offset of the symbol's text in the escaped input.
    start: u32,
    /// Length in bytes; 0 once merged into its left neighbour.
    len: u32,
    prev: u32,
    next: u32,
    /// The token whose text this symbol is (NONE for a character that is no token).
    id: u32,
}

/// A candidate pair: higher score first, then the leftmost.
#[derive(Clone, Copy)]
struct Pair {
    score: f32,
    left: u32,
    right: u32,
    /// Bytes of the joined text (stale pairs no longer add up to it).
    size: u32,
    id: TokenId,
}

impl PartialEq for Pair {
    fn eq(&self, o: &Pair) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Pair) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pair {
    fn cmp(&self, o: &Pair) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

/// Reusable buffers of the SPM merge.
#[derive(Default)]
pub(crate) struct SpmSession {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Pair>,
}

impl SpmSession {
    fn push_pair(&mut self, vocab: &Vocab, text: &str, left: u32, right: u32) {
        if left == NONE || right == NONE {
            return;
        }
        let (l, r) = (self.symbols[left as usize], self.symbols[right as usize]);
        let (a, b) = (l.start as usize, (r.start + r.len) as usize);
        let Some(joined) = text.as_bytes().get(a..b) else {
            return;
        };
        if let Some(id) = vocab.id_of(joined) {
            self.heap.push(Pair {
                score: vocab.scores.get(id as usize).copied().unwrap_or(0.0),
                left,
                right,
                size: l.len + r.len,
                id,
            });
        }
    }

    /// Tokenizes `text` (spaces already written as `▁`) and appends the ids to `out`.
    /// `byte_fallback[b]` is the token for a byte that no character token covers.
    pub(crate) fn tokenize(
        &mut self,
        vocab: &Vocab,
        byte_fallback: &[Option<TokenId>; 256],
        text: &str,
        out: &mut Vec<TokenId>,
    ) {
        self.symbols.clear();
        self.heap.clear();
        if text.is_empty() {
            return;
        }
        let mut n = 0u32;
        for (i, c) in text.char_indices() {
            let len = c.len_utf8();
            let at_end = i + len == text.len();
            self.symbols.push(Symbol {
                start: i as u32,
                len: len as u32,
                prev: if n == 0 { NONE } else { n - 1 },
                next: if at_end { NONE } else { n + 1 },
                id: vocab.id_of(&text.as_bytes()[i..i + len]).unwrap_or(NONE),
            });
            n += 1;
        }
        for i in 1..n {
            self.push_pair(vocab, text, i - 1, i);
        }
        while let Some(p) = self.heap.pop() {
            let (l, r) = (
                self.symbols[p.left as usize],
                self.symbols[p.right as usize],
            );
            // One side merged elsewhere since the pair was queued.
            if l.len == 0 || r.len == 0 || l.len + r.len != p.size {
                continue;
            }
            let s = &mut self.symbols[p.left as usize];
            s.len += r.len;
            s.next = r.next;
            s.id = p.id;
            self.symbols[p.right as usize].len = 0;
            if r.next != NONE {
                self.symbols[r.next as usize].prev = p.left;
            }
            self.push_pair(vocab, text, l.prev, p.left);
            self.push_pair(vocab, text, p.left, r.next);
        }
        let mut i = 0;
        while i != NONE {
            let s = self.symbols[i as usize];
            if s.id != NONE {
                out.push(s.id);
            } else {
                // A character with no token of its own: its UTF-8 bytes as byte tokens.
                let bytes = &text.as_bytes()[s.start as usize..(s.start + s.len) as usize];
                out.extend(bytes.iter().filter_map(|&b| byte_fallback[b as usize]));
            }
            i = s.next;
        }
    }
}
