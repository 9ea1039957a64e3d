//! The vocabulary: token texts in one arena, a text → id table, scores and attributes.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// A token id, as used by the model's embedding table.
pub type TokenId = u32;

/// What kind of token an id is (a bit set, as llama.cpp's `llama_token_attr`).
///
/// Built from `tokenizer.ggml.token_type` (normal 1, unknown 2, control 3, user-defined 4,
/// unused 5, byte 6; anything else is "undefined") and adjusted like llama.cpp does: tokens
/// that look like end-of-turn or fill-in-the-middle markers become control tokens, and control
/// tokens whose text contains `unused` are also marked unused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TokenAttr(pub u16);

impl TokenAttr {
    /// No known type (`token_type` 0 or out of range).
    pub const UNDEFINED: TokenAttr = TokenAttr(0);
    /// The unknown token (`token_type` 2).
    pub const UNKNOWN: TokenAttr = TokenAttr(1 << 0);
    /// A reserved, unused slot (`token_type` 5, or a control token named `…unused…`).
    pub const UNUSED: TokenAttr = TokenAttr(1 << 1);
    /// An ordinary piece of text (`token_type` 1).
    pub const NORMAL: TokenAttr = TokenAttr(1 << 2);
    /// A control token such as BOS, EOS or a chat-turn marker (`token_type` 3).
    pub const CONTROL: TokenAttr = TokenAttr(1 << 3);
    /// A user-defined token (`token_type` 4): always matched as a whole in input text.
    pub const USER_DEFINED: TokenAttr = TokenAttr(1 << 4);
    /// A byte-fallback token `<0xXX>` (`token_type` 6).
    pub const BYTE: TokenAttr = TokenAttr(1 << 5);

    /// The attribute for a `tokenizer.ggml.token_type` value.
    pub fn from_token_type(t: i32) -> TokenAttr {
        match t {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        }
    }

    /// True when any bit of `other` is set in `self`.
    pub fn intersects(self, other: TokenAttr) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for TokenAttr {
    type Output = TokenAttr;
    fn bitor(self, rhs: TokenAttr) -> TokenAttr {
        TokenAttr(self.0 | rhs.0)
    }
}

impl fmt::Debug for TokenAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(TokenAttr, &str); 6] = [
            (TokenAttr::UNKNOWN, "UNKNOWN"),
            (TokenAttr::UNUSED, "UNUSED"),
            (TokenAttr::NORMAL, "NORMAL"),
            (TokenAttr::CONTROL, "CONTROL"),
            (TokenAttr::USER_DEFINED, "USER_DEFINED"),
            (TokenAttr::BYTE, "BYTE"),
        ];
        if self.0 == 0 {
            return f.write_str("UNDEFINED");
        }
        let mut first = true;
        for (bit, name) in NAMES {
            if self.intersects(bit) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A small, fast, non-cryptographic hasher (the multiply-rotate scheme of rustc's FxHash).
/// Keys are token texts and id pairs from the model file; the worst case of a crafted file is
/// slow loading, never a wrong answer.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `BuildHasher` for [`FxHasher`].
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(b);
    // Mix the high bits down: the table indexes with the low bits.
    let x = h.finish();
    x ^ (x >> 29) ^ (x >> 47)
}

/// Token texts and their ids.
pub(crate) struct Vocab {
    /// All token texts, back to back.
    arena: String,
    /// `ends[i]` is the end of token `i` in `arena`; token `i` starts at `ends[i - 1]` (or 0).
    ends: Vec<u32>,
    /// Open-addressing table of `id + 1` (0 = empty slot), indexed by the hash of the text.
    slots: Vec<u32>,
    /// `slots.len() - 1` (a power of two minus one).
    mask: usize,
    pub(crate) scores: Vec<f32>,
    pub(crate) attrs: Vec<TokenAttr>,
    /// Length in bytes of the longest token text.
    pub(crate) max_len: usize,
}

/// Why a list of token texts cannot form a vocabulary.
pub(crate) enum VocabBuildError {
    /// The same text appears twice.
    Duplicate {
        text: String,
        first: u32,
        second: u32,
    },
    /// More text than the arena's 32-bit offsets can address.
    TooLarge,
}

impl Vocab {
    /// Builds the vocabulary from texts in id order. Empty texts are renamed `[EMPTY_<id>]` as
    /// llama.cpp does, so that every token has a distinct, non-empty text.
    pub(crate) fn build<'a>(
        texts: impl Iterator<Item = &'a str>,
        n: usize,
    ) -> Result<Vocab, VocabBuildError> {
        let mut arena = String::new();
        let mut ends = Vec::with_capacity(n);
        let mut max_len = 0;
        for (i, t) in texts.enumerate() {
            if t.is_empty() {
                log::warn!("tokenizer: empty token at index {i}");
                arena.push_str(&format!("[EMPTY_{i}]"));
            } else {
                arena.push_str(t);
            }
            let end = u32::try_from(arena.len()).map_err(|_| VocabBuildError::TooLarge)?;
            let start = ends.last().copied().unwrap_or(0);
            max_len = max_len.max((end - start) as usize);
            ends.push(end);
        }
        let n = ends.len();
        let cap = (n.max(1) * 2).next_power_of_two();
        let mut v = Vocab {
            arena,
            ends,
            slots: vec![0; cap],
            mask: cap - 1,
            scores: vec![0.0; n],
            attrs: vec![TokenAttr::NORMAL; n],
            max_len,
        };
        for id in 0..n as u32 {
            let text = v.text(id).as_bytes();
            let mut i = hash_bytes(text) as usize & v.mask;
            loop {
                match v.slots[i] {
                    0 => {
                        v.slots[i] = id + 1;
                        break;
                    }
                    other if v.text(other - 1).as_bytes() == text => {
                        return Err(VocabBuildError::Duplicate {
                            text: v.text(id).to_owned(),
                            first: other - 1,
                            second: id,
                        });
                    }
                    _ => i = (i + 1) & v.mask,
                }
            }
        }
        Ok(v)
    }

    /// Number of tokens.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of `id` (`""` for an id out of range).
    #[inline]
    pub(crate) fn text(&self, id: TokenId) -> &str {
        let i = id as usize;
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.arena.get(start as usize..end as usize).unwrap_or("")
    }

    /// The id whose text is exactly `text` (any byte string; no allocation).
    #[inline]
    pub(crate) fn id_of(&self, text: &[u8]) -> Option<TokenId> {
        let mut i = hash_bytes(text) as usize & self.mask;
        loop {
            match self.slots[i] {
                0 => return None,
                s if self.text(s - 1).as_bytes() == text => return Some(s - 1),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    /// Attributes of `id` (undefined when out of range).
    #[inline]
    pub(crate) fn attr(&self, id: TokenId) -> TokenAttr {
        self.attrs
            .get(id as usize)
            .copied()
            .unwrap_or(TokenAttr::UNDEFINED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_every_token_and_nothing_else() {
        let texts: Vec<String> = (0..5000).map(|i| format!("t{i}")).collect();
        let v = match Vocab::build(texts.iter().map(|s| s.as_str()), texts.len()) {
            Ok(v) => v,
            Err(_) => panic!("build failed"),
        };
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(v.id_of(t.as_bytes()), Some(i as u32));
            assert_eq!(v.text(i as u32), t);
        }
        assert_eq!(v.id_of(b"t5000"), None);
        assert_eq!(v.id_of(b""), None);
        assert_eq!(v.text(99999), "");
        assert_eq!(v.max_len, 5);
    }

    #[test]
    fn duplicates_are_refused_and_empty_texts_renamed() {
        let r = Vocab::build(["a", "b", "a"].into_iter(), 3);
        assert!(matches!(
            r,
            Err(VocabBuildError::Duplicate {
                first: 0,
                second: 2,
                ..
            })
        ));
        let Ok(v) = Vocab::build(["a", "", "c"].into_iter(), 3) else {
            panic!("build failed")
        };
        assert_eq!(v.text(1), "[EMPTY_1]");
        assert_eq!(v.id_of(b"[EMPTY_1]"), Some(1));
    }
}
