//! Streaming text out token by token without ever splitting a UTF-8 character.
//!
//! A token's piece may end in the middle of a character (byte-level BPE and byte-fallback
//! tokens split emoji and CJK characters across tokens). [`Utf8Stream`] holds back the at most
//! three bytes of an incomplete character until the next piece completes it; bytes that can
//! never form a character come out as U+FFFD. Nothing allocates.

use super::Tokenizer;
use super::vocab::TokenId;

const REPLACEMENT: &str = "\u{fffd}";

/// Expected length of the UTF-8 sequence that starts with `b` (0 for a byte that cannot start
/// one).
fn sequence_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

/// Turns a stream of byte pieces into whole UTF-8 text (a fixed 4-byte buffer, no allocation).
#[derive(Clone, Debug, Default)]
pub struct Utf8Stream {
    pending: [u8; 4],
    len: usize,
}

impl Utf8Stream {
    /// An empty stream.
    pub fn new() -> Utf8Stream {
        Utf8Stream::default()
    }

    /// The bytes held back (an incomplete character, at most 3 bytes).
    pub fn pending(&self) -> &[u8] {
        &self.pending[..self.len]
    }

    /// Feeds `bytes`; calls `emit` with each run of complete text (never empty, always whole
    /// characters). Invalid bytes become U+FFFD; an incomplete character at the end is kept for
    /// the next call.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&str)) {
        // First settle the held-back bytes, reading as much of `bytes` as that needs.
        while self.len > 0 {
            let take = bytes.len().min(4);
            let mut buf = [0u8; 8];
            buf[..self.len].copy_from_slice(&self.pending[..self.len]);
            buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            let t = &buf[..self.len + take];
            let used = match std::str::from_utf8(t) {
                Err(e) if e.valid_up_to() == 0 => match e.error_len() {
                    None => {
                        // Still a prefix of one character (so at most 3 bytes): keep waiting.
                        self.pending[..t.len()].copy_from_slice(t);
                        self.len = t.len();
                        return;
                    }
                    Some(n) => {
                        emit(REPLACEMENT);
                        n
                    }
                },
                // The first character is complete.
                _ => {
                    let n = sequence_len(t[0]);
                    if let Ok(c) = std::str::from_utf8(&t[..n]) {
                        emit(c);
                    }
                    n
                }
            };
            if used >= self.len {
                bytes = &bytes[used - self.len..];
                self.len = 0;
            } else {
                self.pending.copy_within(used..self.len, 0);
                self.len -= used;
            }
        }
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    if !s.is_empty() {
                        emit(s);
                    }
                    return;
                }
                Err(e) => {
                    let (good, rest) = bytes.split_at(e.valid_up_to());
                    if let Ok(s) = std::str::from_utf8(good)
                        && !s.is_empty()
                    {
                        emit(s);
                    }
                    match e.error_len() {
                        Some(n) => {
                            emit(REPLACEMENT);
                            bytes = &rest[n..];
                        }
                        None => {
                            // A character cut short by the end of this piece (1 to 3 bytes).
                            self.pending[..rest.len()].copy_from_slice(rest);
                            self.len = rest.len();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: a held-back incomplete character comes out as U+FFFD.
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if self.len > 0 {
            self.len = 0;
            emit(REPLACEMENT);
        }
    }
}

/// Decodes tokens one at a time into whole UTF-8 text, for streaming output.
///
/// Each token is rendered with [`Tokenizer::token_to_piece`] (control and unknown tokens only
/// when `special` is set), then passed through a [`Utf8Stream`]. Like llama.cpp's streaming
/// examples, pieces are concatenated as they are; [`StreamDecoder::strip_first_space`] applies
/// llama.cpp's detokenizer rule of dropping one leading space of the first token of a sequence
/// for tokenizers that add a space prefix.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    utf8: Utf8Stream,
    special: bool,
    strip_space: bool,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder that renders control tokens when `special` is true.
    pub fn new(tokenizer: &'t Tokenizer, special: bool) -> StreamDecoder<'t> {
        StreamDecoder {
            tokenizer,
            utf8: Utf8Stream::new(),
            special,
            strip_space: false,
        }
    }

    /// Drop one leading space from the first token pushed, if the tokenizer adds a space
    /// prefix when it tokenizes (as [`Tokenizer::detokenize`] does for a whole sequence).
    pub fn strip_first_space(mut self) -> StreamDecoder<'t> {
        self.strip_space = self.tokenizer.add_space_prefix();
        self
    }

    /// Feeds one token; `emit` receives the text that became complete (possibly none).
    pub fn push(&mut self, id: TokenId, emit: impl FnMut(&str)) {
        let mut piece = self.tokenizer.token_to_piece(id, self.special);
        if std::mem::take(&mut self.strip_space)
            && let Some(rest) = piece.strip_prefix(b" ")
        {
            piece = rest;
        }
        self.utf8.push(piece, emit);
    }

    /// Ends the stream (an incomplete character at the very end comes out as U+FFFD).
    pub fn finish(&mut self, emit: impl FnMut(&str)) {
        self.utf8.finish(emit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pieces: &[&[u8]]) -> String {
        let mut s = Utf8Stream::new();
        let mut out = String::new();
        for p in pieces {
            s.push(p, |t| {
                assert!(!t.is_empty());
                out.push_str(t)
            });
        }
        s.finish(|t| out.push_str(t));
        out
    }

    #[test]
    fn splits_inside_characters_are_held_back() {
        let text = "a😀b你c";
        let b = text.as_bytes();
        // Every way of cutting the bytes in two or three pieces gives the text back.
        for i in 0..=b.len() {
            for j in i..=b.len() {
                assert_eq!(feed(&[&b[..i], &b[i..j], &b[j..]]), text);
            }
        }
        // One byte at a time.
        let singles: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(feed(&singles), text);
    }

    #[test]
    fn pending_is_at_most_three_bytes() {
        let mut s = Utf8Stream::new();
        let mut out = String::new();
        s.push(&"😀".as_bytes()[..3], |t| out.push_str(t));
        assert_eq!(s.pending().len(), 3);
        assert!(out.is_empty());
        s.push(&"😀".as_bytes()[3..], |t| out.push_str(t));
        assert_eq!(out, "😀");
        assert!(s.pending().is_empty());
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_as_in_lossy_decoding() {
        assert_eq!(feed(&[b"a\xffb"]), "a\u{fffd}b");
        assert_eq!(feed(&[b"x\xe4", b"y"]), "x\u{fffd}y");
        assert_eq!(feed(&[b"ok\xf0\x9f"]), "ok\u{fffd}");
        // Every split of these gives what a lossy decoding of the whole gives.
        let cases: [&[u8]; 6] = [
            b"\xe4\xbdz",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"a\xf0\x9f\x98",
            b"\xf0\x9f\x98\x80\x80\xe4",
            b"\xf4\x90\x80\x80 \xe0\x80",
        ];
        for b in cases {
            let want = String::from_utf8_lossy(b);
            for i in 0..=b.len() {
                for j in i..=b.len() {
                    assert_eq!(feed(&[&b[..i], &b[i..j], &b[j..]]), want, "{b:?} {i} {j}");
                }
            }
        }
    }
}
