//! Pre-tokenizers of byte-level BPE: split text into words before merging.
//!
//! Hugging Face tokenizers describe these splits with regular expressions that need look-ahead
//! (`\s+(?!\S)`) and Unicode classes. llama.cpp runs most of them through hand-written scanners
//! (its `unicode_regex_split_custom_*`), whose behaviour is the reference here; we implement the
//! same state machines on code points:
//!
//! * `PreTokenizer::Gpt2`: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! * `PreTokenizer::Smollm`: first every `\p{N}` code point on its own, then GPT-2's split inside
//!   each piece (llama.cpp applies the expressions one after another; a later one never joins
//!   pieces an earlier one separated, so digits stay single).
//! * `PreTokenizer::Llama3`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//!   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
//! * `PreTokenizer::Qwen2`: the same with `\p{N}` (single digits) instead of `\p{N}{1,3}`.
//!   (llama.cpp evaluates this one with `std::regex` over a text whose non-ASCII code points are
//!   collapsed to one byte per class; on valid UTF-8 that is the Llama 3 scanner with digit
//!   groups of one.)

use std::ops::Range;

use super::unicode::Flags;

/// Which word-splitting rules a byte-level BPE tokenizer uses (from `tokenizer.ggml.pre`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's expression (`gpt-2`, `phi-2`, `mpt`, `olmo`).
    Gpt2,
    /// Single digits, then GPT-2's expression (`smollm`, `starcoder`, `refact`, `codeshell`,
    /// `command-r`).
    Smollm,
    /// Llama 3's expression: case-insensitive contractions, digit groups of up to three,
    /// newlines kept with the whitespace before them (`llama3`, `llama-bpe`, `llama-v3`,
    /// `falcon3`, `pixtral`, `dbrx`, `smaug-bpe`).
    Llama3,
    /// Qwen 2's expression: like Llama 3 but single digits (`qwen2`, `deepseek-r1-qwen`,
    /// `stablelm2`, `megrez`).
    Qwen2,
}

/// The text as code points with their classes; scanners work on index ranges of it.
pub(crate) struct CodePoints {
    chars: Vec<char>,
    flags: Vec<Flags>,
    /// Byte offset of each code point in the source text, plus the text length at the end.
    byte_at: Vec<usize>,
}

impl CodePoints {
    pub(crate) fn new(text: &str) -> CodePoints {
        let n = text.len();
        let mut cp = CodePoints {
            chars: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            byte_at: Vec::with_capacity(n + 1),
        };
        for (i, c) in text.char_indices() {
            cp.chars.push(c);
            cp.flags.push(Flags::of(c));
            cp.byte_at.push(i);
        }
        cp.byte_at.push(n);
        cp
    }

    fn len(&self) -> usize {
        self.chars.len()
    }
}

/// One scan over the code points `ini..end` (a piece left by an earlier expression). Positions
/// outside the piece read as "no character" with no class, as in llama.cpp.
struct Scan<'a> {
    cp: &'a CodePoints,
    ini: usize,
    end: usize,
    /// End of the last word emitted (start of the next).
    prev_end: usize,
    out: &'a mut Vec<Range<usize>>,
}

impl Scan<'_> {
    #[inline]
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.ini <= pos && pos < self.end).then(|| self.cp.chars[pos])
    }
    #[inline]
    fn flags(&self, pos: usize) -> Flags {
        if self.ini <= pos && pos < self.end {
            self.cp.flags[pos]
        } else {
            Flags::default()
        }
    }
    /// Ends the current word at `end` (nothing if empty).
    #[inline]
    fn emit(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push(self.prev_end..end);
        }
        self.prev_end = end;
    }
    /// Length of a contraction `'s 't 're 've 'm 'll 'd` at `pos` (ASCII letters compared
    /// case-insensitively when `any_case`), or 0.
    fn contraction(&self, pos: usize, any_case: bool) -> usize {
        if self.cpt(pos) != Some('\'') || pos + 1 >= self.end {
            return 0;
        }
        let fold = |c: Option<char>| match c {
            Some(c) if any_case => c.to_ascii_lowercase(),
            Some(c) => c,
            None => '\0',
        };
        let a = fold(self.cpt(pos + 1));
        if matches!(a, 's' | 't' | 'm' | 'd') {
            return 2;
        }
        if pos + 2 < self.end {
            let b = fold(self.cpt(pos + 2));
            if matches!((a, b), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                return 3;
            }
        }
        0
    }
    /// Number of whitespace code points starting at `pos`.
    fn whitespace_run(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.flags(pos + n).is_whitespace() {
            n += 1;
        }
        n
    }
    /// `[^\s\p{L}\p{N}]` for a position inside the piece.
    #[inline]
    fn is_other(&self, pos: usize) -> bool {
        let f = self.flags(pos);
        !(f.is_whitespace() || f.is_letter() || f.is_number() || f.is_none())
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    fn gpt2(&mut self) {
        let mut pos = self.ini;
        while pos < self.end {
            let n = self.contraction(pos, false);
            if n > 0 {
                pos += n;
                self.emit(pos);
                continue;
            }
            let space = self.cpt(pos) == Some(' ');
            // The class that decides the branch: the next code point after an optional space.
            let f = if space {
                self.flags(pos + 1)
            } else {
                self.flags(pos)
            };
            if f.is_letter() || f.is_number() {
                let letter = f.is_letter();
                pos += usize::from(space);
                while {
                    let g = self.flags(pos);
                    if letter { g.is_letter() } else { g.is_number() }
                } {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            if !(f.is_whitespace() || f.is_none()) {
                pos += usize::from(space);
                while self.is_other(pos) {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            let ws = self.whitespace_run(pos);
            if ws > 1 && self.cpt(pos + ws).is_some() {
                // \s+(?!\S): leave the last space to start the next word.
                pos += ws - 1;
            } else if ws > 0 {
                pos += ws;
            } else {
                pos += 1;
            }
            self.emit(pos);
        }
    }

    /// Llama 3 (`max_digits` 3) and Qwen 2 (`max_digits` 1).
    fn llama3(&mut self, max_digits: usize) {
        let mut pos = self.ini;
        while pos < self.end {
            let n = self.contraction(pos, true);
            if n > 0 {
                pos += n;
                self.emit(pos);
                continue;
            }
            let c = self.cpt(pos);
            let f = self.flags(pos);
            let newline = matches!(c, Some('\r' | '\n'));
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(newline || f.is_number()) && (f.is_letter() || self.flags(pos + 1).is_letter()) {
                pos += 1;
                while self.flags(pos).is_letter() {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            // \p{N}{1,max_digits}
            if f.is_number() {
                let mut group = pos;
                while self.flags(pos).is_number() {
                    pos += 1;
                    if pos - group >= max_digits {
                        self.emit(pos);
                        group = pos;
                    }
                }
                self.emit(pos);
                continue;
            }
            // ' '?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the current code point's class for
            // "inside the piece", not the next one's; a lone space at the end comes out the same)
            let space = c == Some(' ');
            let g = if space { self.flags(pos + 1) } else { f };
            if !(g.is_whitespace() || g.is_letter() || g.is_number() || f.is_none()) {
                pos += usize::from(space);
                while self.is_other(pos) {
                    pos += 1;
                }
                while matches!(self.cpt(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            // \s*[\r\n]+ | \s+(?!\S) | \s+
            let mut ws = 0;
            let mut after_newline = None;
            while self.flags(pos + ws).is_whitespace() {
                if matches!(self.cpt(pos + ws), Some('\r' | '\n')) {
                    after_newline = Some(pos + ws + 1);
                }
                ws += 1;
            }
            if let Some(e) = after_newline {
                pos = e;
            } else if ws > 1 && self.cpt(pos + ws).is_some() {
                pos += ws - 1;
            } else if ws > 0 {
                pos += ws;
            } else {
                pos += 1;
            }
            self.emit(pos);
        }
    }
}

/// Every `\p{N}` code point of `ini..end` as a piece of its own, and the runs between them.
fn isolate_numbers(cp: &CodePoints, ini: usize, end: usize, out: &mut Vec<Range<usize>>) {
    let mut start = ini;
    for i in ini..end {
        if cp.flags[i].is_number() {
            if i > start {
                out.push(start..i);
            }
            out.push(i..i + 1);
            start = i + 1;
        }
    }
    if end > start {
        out.push(start..end);
    }
}

impl PreTokenizer {
    /// Splits `text` into words, appended to `words` as byte ranges of `text`.
    pub(crate) fn split(self, text: &str, words: &mut Vec<Range<usize>>) {
        if text.is_empty() {
            return;
        }
        let cp = CodePoints::new(text);
        let mut pieces = Vec::new();
        match self {
            PreTokenizer::Smollm => {
                let mut digits = Vec::new();
                isolate_numbers(&cp, 0, cp.len(), &mut digits);
                for r in digits {
                    run(&cp, r, &mut pieces, |s| s.gpt2());
                }
            }
            PreTokenizer::Gpt2 => run(&cp, 0..cp.len(), &mut pieces, |s| s.gpt2()),
            PreTokenizer::Llama3 => run(&cp, 0..cp.len(), &mut pieces, |s| s.llama3(3)),
            PreTokenizer::Qwen2 => run(&cp, 0..cp.len(), &mut pieces, |s| s.llama3(1)),
        }
        words.extend(
            pieces
                .into_iter()
                .map(|r| cp.byte_at[r.start]..cp.byte_at[r.end]),
        );
    }
}

fn run(cp: &CodePoints, r: Range<usize>, out: &mut Vec<Range<usize>>, f: impl FnOnce(&mut Scan)) {
    let mut s = Scan {
        cp,
        ini: r.start,
        end: r.end,
        prev_end: r.start,
        out,
    };
    f(&mut s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(p: PreTokenizer, text: &str) -> Vec<&str> {
        let mut w = Vec::new();
        p.split(text, &mut w);
        // Words cover the text exactly, in order.
        let mut at = 0;
        for r in &w {
            assert_eq!(r.start, at, "gap or overlap in {text:?}: {w:?}");
            assert!(r.end > r.start);
            at = r.end;
        }
        assert_eq!(at, text.len());
        w.into_iter().map(|r| &text[r]).collect()
    }

    use PreTokenizer::*;

    #[test]
    fn gpt2_words_spaces_and_contractions() {
        assert_eq!(
            split(Gpt2, "Hello world, it's 2024!"),
            ["Hello", " world", ",", " it", "'s", " 2024", "!"]
        );
        // Upper-case contractions are not contractions for GPT-2.
        assert_eq!(split(Gpt2, "IT'S"), ["IT", "'", "S"]);
        assert_eq!(
            split(Gpt2, "we'll they're I've I'm he'd don't"),
            [
                "we", "'ll", " they", "'re", " I", "'ve", " I", "'m", " he", "'d", " don", "'t"
            ]
        );
        // A quote at the end, or before something that is no contraction.
        assert_eq!(
            split(Gpt2, "rock'n'roll'"),
            ["rock", "'", "n", "'", "roll", "'"]
        );
        assert_eq!(split(Llama3, "rock'n'roll'"), ["rock", "'n", "'roll", "'"]);
    }

    #[test]
    fn gpt2_whitespace_runs() {
        // \s+(?!\S): the last space of a run joins the next word.
        assert_eq!(split(Gpt2, "a   b"), ["a", "  ", " b"]);
        assert_eq!(split(Gpt2, "  two"), [" ", " two"]);
        // Trailing whitespace stays together.
        assert_eq!(split(Gpt2, "end   "), ["end", "   "]);
        assert_eq!(split(Gpt2, "x\n\ny"), ["x", "\n", "\n", "y"]);
        assert_eq!(split(Gpt2, "\t\tz"), ["\t", "\t", "z"]);
        // Only a plain space is optional before a word; a tab stands alone.
        assert_eq!(split(Gpt2, "a\tb"), ["a", "\t", "b"]);
        // Non-breaking and other Unicode spaces are whitespace.
        assert_eq!(split(Gpt2, "a\u{a0}b"), ["a", "\u{a0}", "b"]);
        assert_eq!(split(Gpt2, "a\u{2009} b"), ["a", "\u{2009}", " b"]);
    }

    #[test]
    fn gpt2_numbers_punctuation_unicode() {
        assert_eq!(split(Gpt2, "x 12345"), ["x", " 12345"]);
        assert_eq!(split(Gpt2, "a !!! ?"), ["a", " !!!", " ?"]);
        assert_eq!(split(Gpt2, "(n):"), ["(", "n", "):"]);
        // Combining marks are not letters: they split a word (as llama.cpp does).
        assert_eq!(split(Gpt2, "cafe\u{301}s"), ["cafe", "\u{301}", "s"]);
        assert_eq!(split(Gpt2, "naïve"), ["naïve"]);
        assert_eq!(split(Gpt2, "你好，世界"), ["你好", "，", "世界"]);
        assert_eq!(
            split(Gpt2, "emoji: 😀🚀 done"),
            ["emoji", ":", " 😀🚀", " done"]
        );
        assert_eq!(split(Gpt2, "Ⅻ½²"), ["Ⅻ½²"]); // all \p{N}
    }

    #[test]
    fn smollm_digits_alone() {
        assert_eq!(
            split(Smollm, "1234567 and 3.14"),
            [
                "1", "2", "3", "4", "5", "6", "7", " and", " ", "3", ".", "1", "4"
            ]
        );
        // The space before a digit is left alone, not joined to the digit.
        assert_eq!(split(Smollm, "n 42"), ["n", " ", "4", "2"]);
        assert_eq!(split(Smollm, "v2x"), ["v", "2", "x"]);
        // A number piece splits whitespace runs too: "  " before a digit stays whole.
        assert_eq!(split(Smollm, "a  1"), ["a", "  ", "1"]);
        assert_eq!(split(Smollm, "x٣y"), ["x", "٣", "y"]);
    }

    #[test]
    fn llama3_contractions_any_case() {
        assert_eq!(split(Llama3, "IT'S"), ["IT", "'S"]);
        assert_eq!(split(Llama3, "WE'LL"), ["WE", "'LL"]);
        assert_eq!(split(Llama3, "you'Re"), ["you", "'Re"]);
        assert_eq!(split(Llama3, "don't"), ["don", "'t"]);
    }

    #[test]
    fn llama3_digits_in_threes() {
        assert_eq!(split(Llama3, "1234567"), ["123", "456", "7"]);
        assert_eq!(split(Llama3, "x 12"), ["x", " ", "12"]);
        assert_eq!(split(Qwen2, "1234"), ["1", "2", "3", "4"]);
    }

    #[test]
    fn llama3_prefix_and_newlines() {
        // Any one non-letter, non-digit, non-newline code point may lead a word.
        assert_eq!(split(Llama3, "(hello) $x"), ["(hello", ")", " $", "x"]);
        assert_eq!(split(Llama3, "a\tb"), ["a", "\tb"]);
        // Punctuation takes the newlines after it.
        assert_eq!(split(Llama3, "end.\n\nNext"), ["end", ".\n\n", "Next"]);
        // Whitespace up to the last newline of a run is one word.
        assert_eq!(split(Llama3, "a \n \n  b"), ["a", " \n \n", " ", " b"]);
        assert_eq!(split(Llama3, "a\r\nb"), ["a", "\r\n", "b"]);
        assert_eq!(split(Llama3, "a   b"), ["a", "  ", " b"]);
        assert_eq!(split(Llama3, "tail  "), ["tail", "  "]);
        // Upper case letters are letters; CJK and emoji.
        assert_eq!(split(Llama3, "ÀB 你好😀"), ["ÀB", " 你好", "😀"]);
        // A combining mark after a letter: not a letter, so it leads the next word.
        assert_eq!(split(Llama3, "e\u{301}te"), ["e", "\u{301}te"]);
    }

    #[test]
    fn empty_and_single() {
        for p in [Gpt2, Smollm, Llama3, Qwen2] {
            assert!(split(p, "").is_empty());
            assert_eq!(split(p, " "), [" "]);
            assert_eq!(split(p, "\n"), ["\n"]);
            assert_eq!(split(p, "a"), ["a"]);
        }
    }
}
