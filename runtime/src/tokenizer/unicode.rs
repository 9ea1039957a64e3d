//! Character classes as the BPE pre-tokenizers see them.
//!
//! The regular expressions of Hugging Face tokenizers speak of `\p{L}` (letters), `\p{N}`
//! (numbers) and `\s` (whitespace). Rust's `char::is_alphabetic` / `is_numeric` answer different
//! questions (the Alphabetic property includes marks and letter-like numbers), so we carry a
//! generated table of general categories ([`super::unicode_tables`], Unicode 15.1 like
//! llama.cpp's `unicode-data.cpp`). `\s` is the White_Space property, which is exactly
//! `char::is_whitespace`.

use super::unicode_tables::{ASCII, RANGES};

/// The classes of one code point (a bit set; 0 means "outside the text").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Flags(pub(crate) u16);

impl Flags {
    /// `\p{N}`: Nd, Nl, No.
    pub(crate) const NUMBER: u16 = 1;
    /// `\p{L}`: Lu, Ll, Lt, Lm, Lo.
    pub(crate) const LETTER: u16 = 2;
    /// `\p{Z}`: Zs, Zl, Zp.
    #[allow(dead_code)] // names a bit of the generated table
    pub(crate) const SEPARATOR: u16 = 4;
    /// `\p{M}`: Mn, Mc, Me.
    #[allow(dead_code)] // names a bit of the generated table
    pub(crate) const MARK: u16 = 8;
    /// `\p{P}`: punctuation.
    #[allow(dead_code)] // names a bit of the generated table
    pub(crate) const PUNCTUATION: u16 = 16;
    /// `\p{S}`: symbols.
    #[allow(dead_code)] // names a bit of the generated table
    pub(crate) const SYMBOL: u16 = 32;
    /// Cc, Cf, Cs, Co.
    #[allow(dead_code)] // names a bit of the generated table
    pub(crate) const OTHER: u16 = 64;
    /// Unassigned (Cn).
    #[allow(dead_code)] // names a bit of the generated table
    pub(crate) const UNDEFINED: u16 = 128;
    /// `\s`: the White_Space property.
    pub(crate) const WHITESPACE: u16 = 256;

    /// The classes of `c`.
    #[inline]
    pub(crate) fn of(c: char) -> Flags {
        let cp = c as u32;
        let class = if cp < 128 {
            ASCII[cp as usize]
        } else {
            let i = RANGES.partition_point(|&(first, _)| first <= cp);
            // RANGES[0].0 == 0, so i >= 1.
            RANGES[i - 1].1
        };
        let ws = if c.is_whitespace() {
            Self::WHITESPACE
        } else {
            0
        };
        Flags(u16::from(class) | ws)
    }

    /// No class at all: the position is outside the text being scanned.
    #[inline]
    pub(crate) fn is_none(self) -> bool {
        self.0 == 0
    }
    #[inline]
    pub(crate) fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    #[inline]
    pub(crate) fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    #[inline]
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_starts_at_zero() {
        assert_eq!(RANGES[0].0, 0);
        assert!(
            RANGES
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1)
        );
        assert_eq!(super::super::unicode_tables::UNICODE_VERSION, "15.1.0");
    }

    #[test]
    fn ascii_fast_path_agrees_with_ranges() {
        for cp in 0u32..128 {
            let i = RANGES.partition_point(|&(first, _)| first <= cp);
            assert_eq!(ASCII[cp as usize], RANGES[i - 1].1, "U+{cp:04X}");
        }
    }

    #[test]
    fn classes_of_sample_code_points() {
        let l = |c| Flags::of(c).is_letter();
        let n = |c| Flags::of(c).is_number();
        assert!(l('a') && l('Z') && l('é') && l('ß') && l('你') && l('ك') && l('ǅ'));
        assert!(n('7') && n('²') && n('½') && n('Ⅻ') && n('٣'));
        // Combining marks are neither letters nor numbers (unlike `char::is_alphabetic`).
        let acute = '\u{301}';
        assert!(!l(acute) && !n(acute) && Flags::of(acute).0 & Flags::MARK != 0);
        assert!('\u{345}'.is_alphabetic() && !l('\u{345}'));
        // Roman numeral: alphabetic for Rust, a number for \p{N}.
        assert!('Ⅻ'.is_alphabetic() && !l('Ⅻ'));
        assert!(Flags::of('\u{a0}').is_whitespace() && Flags::of('\u{3000}').is_whitespace());
        assert!(!Flags::of('\u{200b}').is_whitespace()); // zero width space is Cf
        assert!(Flags::of('😀').0 & Flags::SYMBOL != 0);
        assert_eq!(Flags::of('\u{378}').0, Flags::UNDEFINED); // unassigned
        assert_eq!(Flags::of('\u{e000}').0, Flags::OTHER); // private use
    }
}
