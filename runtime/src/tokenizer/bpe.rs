//! Byte-level BPE (GPT-2 style): bytes shown as printable characters, merged by rank.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::vocab::{FxBuild, TokenId, Vocab};

/// Whether GPT-2 lets byte `b` stand for itself: `!`..`~`, `¡`..`¬`, `®`..`ÿ`.
const fn printable(b: usize) -> bool {
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
}

/// Code point of each byte's stand-in character.
const BYTE_CHAR: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut next = 0x100;
    let mut b = 0;
    while b < 256 {
        if printable(b) {
            t[b] = b as u32;
        } else {
            t[b] = next;
            next += 1;
        }
        b += 1;
    }
    t
};

/// The bytes that are not printable, in order: U+0100 + n stands for `SHIFTED[n]`.
const SHIFTED: [u8; 68] = {
    let mut t = [0u8; 68];
    let mut n = 0;
    let mut b = 0;
    while b < 256 {
        if !printable(b) {
            t[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    t
};

/// GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves; the
/// other 68 bytes, in order, become U+0100, U+0101, …
pub(crate) fn byte_to_char(b: u8) -> char {
    char::from_u32(BYTE_CHAR[b as usize]).unwrap_or('\u{fffd}')
}

/// The byte a GPT-2 stand-in character represents, if it is one.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 256 && printable(cp as usize) {
        return Some(cp as u8);
    }
    SHIFTED.get(cp.checked_sub(0x100)? as usize).copied()
}

/// Merge ranks keyed by the pair of token ids they join.
pub(crate) struct Merges {
    /// `(left << 32 | right)` → `(rank, merged id)`.
    map: HashMap<u64, (u32, TokenId), FxBuild>,
    /// Token of each byte's stand-in character, if the vocabulary has it.
    pub(crate) byte_token: [Option<TokenId>; 256],
}

/// Why one entry of `tokenizer.ggml.merges` is unusable.
pub(crate) enum MergeError {
    /// No space separates the two halves.
    NoSeparator,
    /// A half, or the joined text, is not a token.
    NotAToken(String),
}

impl Merges {
    /// Reads `"left right"` strings in rank order. Each half and the joined text must be tokens
    /// (as the Hugging Face loader requires); a pair listed twice keeps its first rank.
    pub(crate) fn build<'a>(
        vocab: &Vocab,
        merges: impl Iterator<Item = &'a str>,
    ) -> Result<Merges, (usize, String, MergeError)> {
        let mut map: HashMap<u64, (u32, TokenId), FxBuild> = HashMap::default();
        let mut joined = String::new();
        for (rank, m) in merges.enumerate() {
            let fail = |e| (rank, m.to_owned(), e);
            // The first space after the first character separates the halves.
            let first_len = m.chars().next().map_or(0, char::len_utf8);
            let Some(sp) = m.get(first_len..).and_then(|r| r.find(' ')) else {
                return Err(fail(MergeError::NoSeparator));
            };
            let (left, right) = (&m[..first_len + sp], &m[first_len + sp + 1..]);
            let id = |t: &str| {
                vocab
                    .id_of(t.as_bytes())
                    .ok_or_else(|| fail(MergeError::NotAToken(t.to_owned())))
            };
            let (l, r) = (id(left)?, id(right)?);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let merged = id(&joined)?;
            map.entry(u64::from(l) << 32 | u64::from(r))
                .or_insert((rank as u32, merged));
        }
        let mut byte_token = [None; 256];
        let mut buf = [0u8; 4];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            *slot = vocab.id_of(byte_to_char(b as u8).encode_utf8(&mut buf).as_bytes());
        }
        Ok(Merges { map, byte_token })
    }

    #[inline]
    fn get(&self, l: TokenId, r: TokenId) -> Option<(u32, TokenId)> {
        self.map.get(&(u64::from(l) << 32 | u64::from(r))).copied()
    }
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    /// Current token, or NONE for a byte whose stand-in is not in the vocabulary.
    id: u32,
    prev: u32,
    next: u32,
    alive: bool,
}

/// A pair that may merge: `(rank, left index, right index, left id, right id)`; ordered by rank,
/// then position, as llama.cpp's queue.
type Candidate = (u32, u32, u32, u32, u32);

/// Reusable buffers for merging one word after another.
#[derive(Default)]
pub(crate) struct BpeSession {
    symbols: Vec<Symbol>,
    /// `(rank, left index, right index, left id, right id)`, smallest rank (then leftmost) first.
    heap: BinaryHeap<Reverse<Candidate>>,
    encoded: String,
}

impl BpeSession {
    fn push_pair(&mut self, merges: &Merges, left: u32, right: u32) {
        if left == NONE || right == NONE {
            return;
        }
        let (l, r) = (self.symbols[left as usize], self.symbols[right as usize]);
        if l.id == NONE || r.id == NONE {
            return;
        }
        if let Some((rank, _)) = merges.get(l.id, r.id) {
            self.heap.push(Reverse((rank, left, right, l.id, r.id)));
        }
    }

    /// Tokenizes one pre-tokenized word (raw bytes) and appends its ids to `out`.
    pub(crate) fn word(
        &mut self,
        vocab: &Vocab,
        merges: &Merges,
        ignore_merges: bool,
        word: &[u8],
        out: &mut Vec<TokenId>,
    ) {
        if word.is_empty() {
            return;
        }
        if ignore_merges {
            // Llama 3 style: a word that is a token as a whole is taken as is.
            self.encoded.clear();
            self.encoded.extend(word.iter().map(|&b| byte_to_char(b)));
            if let Some(id) = vocab.id_of(self.encoded.as_bytes()) {
                out.push(id);
                return;
            }
        }
        self.symbols.clear();
        self.heap.clear();
        let n = word.len() as u32;
        self.symbols.extend(word.iter().enumerate().map(|(i, &b)| {
            let i = i as u32;
            Symbol {
                id: merges.byte_token[b as usize].unwrap_or(NONE),
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
                alive: true,
            }
        }));
        for i in 1..n {
            self.push_pair(merges, i - 1, i);
        }
        while let Some(Reverse((_, left, right, lid, rid))) = self.heap.pop() {
            let (l, r) = (self.symbols[left as usize], self.symbols[right as usize]);
            // Skip pairs that went stale when a neighbour merged first.
            if !l.alive || !r.alive || l.id != lid || r.id != rid || l.next != right {
                continue;
            }
            let Some((_, merged)) = merges.get(lid, rid) else {
                continue;
            };
            let s = &mut self.symbols[left as usize];
            s.id = merged;
            s.next = r.next;
            self.symbols[right as usize].alive = false;
            if r.next != NONE {
                self.symbols[r.next as usize].prev = left;
            }
            self.push_pair(merges, l.prev, left);
            self.push_pair(merges, left, r.next);
        }
        // Symbols without a token are single bytes whose stand-in is missing from the
        // vocabulary; llama.cpp then looks their bytes up one by one, which cannot succeed for
        // a multi-byte stand-in, so they produce nothing.
        let mut i = 0;
        while i != NONE {
            let s = self.symbols[i as usize];
            if s.id != NONE {
                out.push(s.id);
            } else {
                log::debug!("tokenizer: byte has no token; dropped");
            }
            i = s.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c));
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(char_to_byte('Ā'), Some(0));
        assert_eq!(char_to_byte('€'), None);
    }
}
