//! Finding special tokens (control, user-defined, unknown) written out in input text.
//!
//! llama.cpp takes the special tokens longest first and, for each, cuts every occurrence out of
//! the text fragments that are still plain text (left to right, non-overlapping). We compute the
//! same result without one pass over the text per special token: a trie finds every occurrence
//! of every special token in one scan, then the occurrences are granted in llama.cpp's order.

use std::collections::BTreeMap;
use std::ops::Range;

use super::vocab::{TokenAttr, TokenId, Vocab};

/// A piece of input: plain text (a byte range) or a special token found in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Text(Range<usize>),
    Token(TokenId),
}

const NO: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    byte: u8,
    first_child: u32,
    sibling: u32,
    /// Index into `SpecialTokens::order` of the token ending here, or NO.
    value: u32,
}

/// The special tokens of a vocabulary, ordered and indexed for matching.
pub(crate) struct SpecialTokens {
    /// Special token ids in matching priority: longer text first, then lower id.
    order: Vec<TokenId>,
    /// Whether `order[i]` is user-defined (matched even when special parsing is off).
    user_defined: Vec<bool>,
    /// Length in bytes of `order[i]`'s text.
    lens: Vec<u32>,
    /// Trie over the texts; node 0 is the root. `root[b]` is the root's child for byte `b`.
    nodes: Vec<Node>,
    root: Box<[u32; 256]>,
}

impl SpecialTokens {
    /// Collects the tokens whose attributes include control, user-defined or unknown.
    pub(crate) fn build(vocab: &Vocab) -> SpecialTokens {
        let special = TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN;
        let mut order: Vec<TokenId> = (0..vocab.len() as u32)
            .filter(|&id| vocab.attr(id).intersects(special))
            .collect();
        // llama.cpp sorts by length only (with an unstable sort); among equal lengths we take
        // the lower id first. This matters only for overlapping special tokens of equal length.
        order.sort_by_key(|&id| (std::cmp::Reverse(vocab.text(id).len()), id));
        let mut s = SpecialTokens {
            user_defined: order
                .iter()
                .map(|&id| vocab.attr(id).intersects(TokenAttr::USER_DEFINED))
                .collect(),
            lens: order
                .iter()
                .map(|&id| vocab.text(id).len() as u32)
                .collect(),
            order,
            nodes: vec![Node {
                byte: 0,
                first_child: NO,
                sibling: NO,
                value: NO,
            }],
            root: Box::new([NO; 256]),
        };
        for i in 0..s.order.len() {
            let text = vocab.text(s.order[i]).as_bytes();
            s.insert(text, i as u32);
        }
        s
    }

    fn child(&self, node: u32, b: u8) -> u32 {
        if node == 0 {
            return self.root[b as usize];
        }
        let mut c = self.nodes[node as usize].first_child;
        while c != NO && self.nodes[c as usize].byte != b {
            c = self.nodes[c as usize].sibling;
        }
        c
    }

    fn insert(&mut self, text: &[u8], value: u32) {
        let mut node = 0u32;
        for &b in text {
            let c = self.child(node, b);
            node = if c != NO {
                c
            } else {
                let new = self.nodes.len() as u32;
                let parent = node as usize;
                self.nodes.push(Node {
                    byte: b,
                    first_child: NO,
                    sibling: if node == 0 {
                        NO
                    } else {
                        self.nodes[parent].first_child
                    },
                    value: NO,
                });
                if node == 0 {
                    self.root[b as usize] = new;
                } else {
                    self.nodes[parent].first_child = new;
                }
                new
            };
        }
        if node != 0 && self.nodes[node as usize].value == NO {
            self.nodes[node as usize].value = value;
        }
    }

    /// Number of special tokens.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Splits `text` into plain-text fragments and special tokens, as llama.cpp's
    /// `tokenizer_st_partition`: with `parse_special` every special token is recognised,
    /// otherwise only user-defined ones.
    pub(crate) fn partition(&self, text: &str, parse_special: bool, out: &mut Vec<Fragment>) {
        out.clear();
        if text.is_empty() {
            return;
        }
        let bytes = text.as_bytes();
        // Every occurrence of every eligible special token: (priority, start).
        let mut found: Vec<(u32, usize)> = Vec::new();
        for start in 0..bytes.len() {
            let mut node = 0u32;
            for &b in &bytes[start..] {
                node = self.child(node, b);
                if node == NO {
                    break;
                }
                let v = self.nodes[node as usize].value;
                if v != NO && (parse_special || self.user_defined[v as usize]) {
                    found.push((v, start));
                }
            }
        }
        if found.is_empty() {
            out.push(Fragment::Text(0..bytes.len()));
            return;
        }
        found.sort_unstable();
        // Granted occurrences: start → (end, token).
        let mut taken: BTreeMap<usize, (usize, TokenId)> = BTreeMap::new();
        let mut i = 0;
        while i < found.len() {
            let prio = found[i].0;
            let len = self.lens[prio as usize] as usize;
            // Searching resumes after each match, so a token's occurrences never overlap.
            let mut resume = 0;
            while i < found.len() && found[i].0 == prio {
                let start = found[i].1;
                i += 1;
                let end = start + len;
                if start < resume {
                    continue;
                }
                // It must lie within text that is still plain.
                let blocked = taken
                    .range(..end)
                    .next_back()
                    .is_some_and(|(_, &(e, _))| e > start);
                if blocked {
                    continue;
                }
                taken.insert(start, (end, self.order[prio as usize]));
                resume = end;
            }
        }
        let mut at = 0;
        for (&start, &(end, id)) in &taken {
            if start > at {
                out.push(Fragment::Text(at..start));
            }
            out.push(Fragment::Token(id));
            at = end;
        }
        if at < bytes.len() {
            out.push(Fragment::Text(at..bytes.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(texts: &[(&str, TokenAttr)]) -> Vocab {
        let Ok(mut v) = Vocab::build(texts.iter().map(|t| t.0), texts.len()) else {
            panic!("vocab")
        };
        for (i, t) in texts.iter().enumerate() {
            v.attrs[i] = t.1;
        }
        v
    }

    fn show(text: &str, f: &[Fragment]) -> Vec<String> {
        f.iter()
            .map(|f| match f {
                Fragment::Text(r) => text[r.clone()].to_owned(),
                Fragment::Token(id) => format!("#{id}"),
            })
            .collect()
    }

    #[test]
    fn longest_first_and_user_defined_always() {
        let c = TokenAttr::CONTROL;
        let u = TokenAttr::USER_DEFINED;
        let n = TokenAttr::NORMAL;
        let v = vocab(&[("<a>", c), ("<a><b>", c), ("<b>", u), ("x", n), ("\t", u)]);
        let s = SpecialTokens::build(&v);
        assert_eq!(s.len(), 4);
        let mut f = Vec::new();
        let t = "x<a><b>y<b><a>\tz";
        s.partition(t, true, &mut f);
        assert_eq!(show(t, &f), ["x", "#1", "y", "#2", "#0", "#4", "z"]);
        s.partition(t, false, &mut f);
        assert_eq!(show(t, &f), ["x<a>", "#2", "y", "#2", "<a>", "#4", "z"]);
        s.partition("", true, &mut f);
        assert!(f.is_empty());
        s.partition("plain", true, &mut f);
        assert_eq!(show("plain", &f), ["plain"]);
    }

    #[test]
    fn overlapping_occurrences_left_to_right() {
        let c = TokenAttr::CONTROL;
        let v = vocab(&[("aa", c), ("ab", c)]);
        let s = SpecialTokens::build(&v);
        let mut f = Vec::new();
        // "aa" goes first (equal length, lower id): "aaa" → "aa" + "a"; then "ab" can only be
        // found in plain text.
        s.partition("aaab", true, &mut f);
        assert_eq!(show("aaab", &f), ["#0", "#1"]);
        // "ab" first: it takes "aab"[1..3], and "aa" would overlap it.
        let v = vocab(&[("ab", c), ("aa", c)]);
        let s = SpecialTokens::build(&v);
        s.partition("aab", true, &mut f);
        assert_eq!(show("aab", &f), ["a", "#0"]);
    }
}
