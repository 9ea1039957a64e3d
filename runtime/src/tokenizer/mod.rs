//! Tokenizers built from GGUF metadata, matching llama.cpp's `llama_tokenize` and
//! `llama_token_to_piece`.
//!
//! Two models, chosen by `tokenizer.ggml.model`:
//! * `gpt2`: byte-level BPE. Text is split into words by a pre-tokenizer chosen by
//!   `tokenizer.ggml.pre` ([`PreTokenizer`]), each byte is shown as a printable character
//!   (GPT-2's byte ↔ unicode table), and adjacent symbols are merged lowest rank first
//!   (`tokenizer.ggml.merges`).
//! * `llama`: SentencePiece-style BPE over characters with `tokenizer.ggml.scores` (highest score
//!   first), spaces written as `▁`, byte-fallback tokens `<0xXX>` for characters without a token,
//!   and an optional space in front (`tokenizer.ggml.add_space_prefix`). Gemma 3 uses it.
//!
//! Before either runs, special tokens written out in the text are cut out as whole tokens:
//! user-defined tokens always, control and unknown tokens only when asked (`parse_special`).
//!
//! Loading validates the metadata as untrusted input: a missing or mistyped key, arrays shorter
//! than the vocabulary, duplicate tokens, merges that name unknown tokens, and unknown models or
//! pre-tokenizers are [`TokenizerError`]s, never panics. Loading allocates (the vocabulary, a
//! lookup table, the merge ranks and every token's rendered piece); [`Tokenizer::tokenize`]
//! allocates working buffers; [`Tokenizer::token_to_piece`] and [`StreamDecoder`] allocate
//! nothing.
#![forbid(unsafe_code)]

mod bpe;
mod pretok;
mod special;
mod spm;
mod stream;
mod unicode;
mod unicode_tables;
mod vocab;

use std::ops::Range;

use crate::gguf::{Gguf, Value, ValueType};

pub use pretok::PreTokenizer;
pub use stream::{StreamDecoder, Utf8Stream};
pub use vocab::{TokenAttr, TokenId};

use bpe::{BpeSession, MergeError, Merges};
use special::{Fragment, SpecialTokens};
use spm::SpmSession;
use vocab::{Vocab, VocabBuildError};

/// The Unicode version of the character classes the pre-tokenizers use (llama.cpp's).
pub const UNICODE_VERSION: &str = unicode_tables::UNICODE_VERSION;

/// Why a tokenizer could not be built from a file's metadata.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required key is absent.
    #[error("tokenizer metadata: missing key {0}")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong type.
    #[error("tokenizer metadata: {key} should be {expected}, found {found}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold.
        expected: &'static str,
        /// What it holds.
        found: String,
    },
    /// `tokenizer.ggml.model` names a model we do not implement.
    #[error("unknown tokenizer model '{0}' (supported: gpt2, llama)")]
    UnknownModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer we do not implement (or is missing).
    #[error("unknown or unsupported pre-tokenizer '{0}' for a gpt2 tokenizer")]
    UnknownPreTokenizer(String),
    /// The vocabulary is empty.
    #[error("tokenizer metadata: tokenizer.ggml.tokens is empty")]
    EmptyVocabulary,
    /// The vocabulary is too large for 32-bit token ids and offsets.
    #[error("tokenizer metadata: vocabulary too large")]
    VocabularyTooLarge,
    /// An array that has one entry per token is shorter than the vocabulary.
    #[error("tokenizer metadata: {key} has {len} entries for {n_tokens} tokens")]
    LengthMismatch {
        /// The key of the short array.
        key: &'static str,
        /// Its length.
        len: usize,
        /// Number of tokens.
        n_tokens: usize,
    },
    /// Two tokens have the same text.
    #[error("tokenizer metadata: duplicate token {text:?} (ids {first} and {second})")]
    DuplicateToken {
        /// The text.
        text: String,
        /// The first id with it.
        first: u32,
        /// The second id with it.
        second: u32,
    },
    /// An entry of `tokenizer.ggml.merges` is unusable.
    #[error("tokenizer metadata: tokenizer.ggml.merges[{index}] = {merge:?}: {reason}")]
    BadMerge {
        /// Its index (rank).
        index: usize,
        /// The entry.
        merge: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The model adds a special token whose id is not set.
    #[error("tokenizer metadata: {flag} is true but {id_key} is not set")]
    MissingSpecialToken {
        /// `tokenizer.ggml.add_bos_token` or `…add_eos_token`.
        flag: &'static str,
        /// The key of the missing id.
        id_key: &'static str,
    },
}

/// Which tokenizer model a [`Tokenizer`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-level BPE (`tokenizer.ggml.model = gpt2`) with its pre-tokenizer.
    Bpe(PreTokenizer),
    /// SentencePiece-style BPE with scores (`tokenizer.ggml.model = llama`).
    Spm,
}

/// Ids of the tokens with a special role (`None` where the model has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<TokenId>,
    /// End of sequence.
    pub eos: Option<TokenId>,
    /// End of turn (from `tokenizer.ggml.eot_token_id`, or found by its text).
    pub eot: Option<TokenId>,
    /// End of message (`<|eom_id|>`).
    pub eom: Option<TokenId>,
    /// Unknown.
    pub unk: Option<TokenId>,
    /// Separator.
    pub sep: Option<TokenId>,
    /// Padding.
    pub pad: Option<TokenId>,
    /// Mask.
    pub mask: Option<TokenId>,
    /// Fill-in-the-middle: prefix.
    pub fim_pre: Option<TokenId>,
    /// Fill-in-the-middle: suffix.
    pub fim_suf: Option<TokenId>,
    /// Fill-in-the-middle: middle.
    pub fim_mid: Option<TokenId>,
    /// Fill-in-the-middle: padding (ends generation).
    pub fim_pad: Option<TokenId>,
    /// Fill-in-the-middle: repository name (ends generation).
    pub fim_rep: Option<TokenId>,
    /// Fill-in-the-middle: file separator (ends generation).
    pub fim_sep: Option<TokenId>,
}

/// A tokenizer loaded from GGUF metadata. See the [module documentation](self).
pub struct Tokenizer {
    kind: TokenizerKind,
    vocab: Vocab,
    /// BPE only.
    merges: Option<Merges>,
    special: SpecialTokens,
    ids: SpecialIds,
    /// Tokens that end generation (EOS, EOT, EOM and end-of-turn-looking control tokens).
    eog: Vec<TokenId>,
    /// SPM: token for each byte (`<0xXX>`, else the one-byte text, else UNK).
    byte_fallback: [Option<TokenId>; 256],
    /// Every token's piece as rendered with special tokens shown, back to back.
    pieces: Vec<u8>,
    piece_ends: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// BPE: a word that is a token as a whole skips merging (Llama 3 pre-tokenizers).
    ignore_merges: bool,
    /// BPE: llama.cpp's clean-up of spaces before punctuation in `detokenize`.
    clean_spaces: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("n_tokens", &self.vocab.len())
            .field("special_tokens", &self.special.len())
            .field("ids", &self.ids)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish()
    }
}

/// Settings implied by a `tokenizer.ggml.pre` name (llama.cpp's table, for the splits we have).
struct PreConfig {
    pre: PreTokenizer,
    ignore_merges: bool,
    add_bos: bool,
    clean_spaces: bool,
}

fn pre_config(name: &str) -> Option<PreConfig> {
    use PreTokenizer::*;
    let c = |pre, ignore_merges, add_bos, clean_spaces| {
        Some(PreConfig {
            pre,
            ignore_merges,
            add_bos,
            clean_spaces,
        })
    };
    match name {
        // llama.cpp spells it "gpt-2"; "gpt2" is accepted as the same.
        "gpt-2" | "gpt2" | "phi-2" | "mpt" | "olmo" => c(Gpt2, false, false, true),
        "smollm" | "command-r" => c(Smollm, false, false, false),
        "starcoder" | "refact" | "codeshell" => c(Smollm, false, false, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => c(Llama3, true, true, true),
        "dbrx" | "smaug-bpe" => c(Llama3, false, false, true),
        "qwen2" | "deepseek-r1-qwen" => c(Qwen2, false, false, false),
        "stablelm2" | "megrez" => c(Qwen2, false, false, true),
        _ => None,
    }
}

/// Texts that llama.cpp recognises as end-of-turn / end-of-generation / fill-in-the-middle
/// markers and forces to be control tokens.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];
/// Fill-in-the-middle markers by role: prefix, suffix, middle, pad, repository, file separator.
const FIM_TEXTS: [&[&str]; 6] = [
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<PRE>",
        "▁<PRE>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<SUF>",
        "▁<SUF>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<MID>",
        "▁<MID>",
    ],
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"],
    &[
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
    ],
    &["<|file_sep|>"],
];

fn type_name(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => format!("array of {}", a.elem_type()),
        other => other.value_type().to_string(),
    }
}

fn get_bool(g: &Gguf, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match g.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(v) => Err(TokenizerError::WrongType {
            key,
            expected: "bool",
            found: type_name(&v),
        }),
    }
}

fn get_string<'a>(g: &'a Gguf, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
    match g.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(TokenizerError::WrongType {
            key,
            expected: "string",
            found: type_name(&v),
        }),
    }
}

/// Per-token numbers (`f32` or `i32` elements), at least `n` of them.
fn get_numbers(
    g: &Gguf,
    key: &'static str,
    n: usize,
    allow_f32: bool,
) -> Result<Option<Vec<f32>>, TokenizerError> {
    let Some(v) = g.get(key) else {
        return Ok(None);
    };
    let expected = if allow_f32 {
        "array of f32 or i32"
    } else {
        "array of i32"
    };
    let wrong = |v: &Value<'_>| TokenizerError::WrongType {
        key,
        expected,
        found: type_name(v),
    };
    let a = v.as_array().ok_or_else(|| wrong(&v))?;
    let float = match a.elem_type() {
        ValueType::F32 if allow_f32 => true,
        ValueType::I32 => false,
        _ => return Err(wrong(&v)),
    };
    if a.len() < n {
        return Err(TokenizerError::LengthMismatch {
            key,
            len: a.len(),
            n_tokens: n,
        });
    }
    let raw = a.raw_bytes();
    let out = raw
        .chunks_exact(4)
        .take(n)
        .map(|c| {
            let b = [c[0], c[1], c[2], c[3]];
            if float {
                f32::from_le_bytes(b)
            } else {
                i32::from_le_bytes(b) as f32
            }
        })
        .collect::<Vec<f32>>();
    if out.len() < n {
        return Err(TokenizerError::LengthMismatch {
            key,
            len: out.len(),
            n_tokens: n,
        });
    }
    Ok(Some(out))
}

/// Marks a marker token as control, as llama.cpp does whatever its type says.
fn force_control(vocab: &mut Vocab, id: TokenId) {
    let a = &mut vocab.attrs[id as usize];
    if !a.intersects(TokenAttr::CONTROL) {
        log::warn!("tokenizer: token {id} looks like a control token; treated as one");
        *a = *a | TokenAttr::CONTROL;
    }
}

/// A string array: its length and its elements.
fn get_strings<'a>(
    g: &'a Gguf,
    key: &'static str,
) -> Result<Option<(usize, impl Iterator<Item = &'a str> + 'a)>, TokenizerError> {
    let Some(v) = g.get(key) else {
        return Ok(None);
    };
    let wrong = || TokenizerError::WrongType {
        key,
        expected: "array of string",
        found: type_name(&v),
    };
    let a = v.as_array().ok_or_else(wrong)?;
    if a.elem_type() != ValueType::String {
        return Err(wrong());
    }
    Ok(Some((a.len(), a.iter().filter_map(|v| v.as_str()))))
}

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const KEY_ADD_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";

impl Tokenizer {
    /// Builds the tokenizer described by `g`'s `tokenizer.ggml.*` metadata.
    ///
    /// Follows llama.cpp's loader: defaults per model (SPM: BOS 1, EOS 2, UNK 0, add BOS, add a
    /// space prefix; BPE: BOS = EOS = 11, no BOS unless the pre-tokenizer implies it), then the
    /// file's keys. A special-token id out of range is ignored with a warning (the default is
    /// kept, or none if the default is out of range too).
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, TokenizerError> {
        let model = get_string(g, KEY_MODEL)?.ok_or(TokenizerError::MissingKey(KEY_MODEL))?;
        let pre_name = get_string(g, KEY_PRE)?;
        let (kind, pre) = match model {
            "gpt2" => {
                let name = pre_name.unwrap_or("");
                let cfg = pre_config(name)
                    .ok_or_else(|| TokenizerError::UnknownPreTokenizer(name.to_owned()))?;
                (TokenizerKind::Bpe(cfg.pre), Some(cfg))
            }
            "llama" => (TokenizerKind::Spm, None),
            other => return Err(TokenizerError::UnknownModel(other.to_owned())),
        };

        let (n, texts) =
            get_strings(g, KEY_TOKENS)?.ok_or(TokenizerError::MissingKey(KEY_TOKENS))?;
        if n == 0 {
            return Err(TokenizerError::EmptyVocabulary);
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabularyTooLarge);
        }
        let mut vocab = Vocab::build(texts, n).map_err(|e| match e {
            VocabBuildError::Duplicate {
                text,
                first,
                second,
            } => TokenizerError::DuplicateToken {
                text,
                first,
                second,
            },
            VocabBuildError::TooLarge => TokenizerError::VocabularyTooLarge,
        })?;
        if vocab.len() != n {
            // The string iterator ended early: the array is shorter than it claims.
            return Err(TokenizerError::LengthMismatch {
                key: KEY_TOKENS,
                len: vocab.len(),
                n_tokens: n,
            });
        }
        if let Some(scores) = get_numbers(g, KEY_SCORES, n, true)? {
            vocab.scores = scores;
        }
        if let Some(types) = get_numbers(g, KEY_TYPES, n, false)? {
            vocab.attrs = types
                .iter()
                .map(|&t| TokenAttr::from_token_type(t as i32))
                .collect();
        }

        let merges = match kind {
            TokenizerKind::Bpe(_) => {
                let (_, list) =
                    get_strings(g, KEY_MERGES)?.ok_or(TokenizerError::MissingKey(KEY_MERGES))?;
                let m = Merges::build(&vocab, list).map_err(|(index, merge, e)| {
                    TokenizerError::BadMerge {
                        index,
                        merge,
                        reason: match e {
                            MergeError::NoSeparator => "no space between the two halves".into(),
                            MergeError::NotAToken(t) => format!("{t:?} is not a token"),
                        },
                    }
                })?;
                Some(m)
            }
            TokenizerKind::Spm => None,
        };

        // Defaults, then the file's settings.
        let spm = kind == TokenizerKind::Spm;
        let mut add_bos = pre.as_ref().map_or(spm, |p| p.add_bos);
        let mut add_eos = false;
        let mut add_space_prefix = spm;
        let clean_spaces = pre.as_ref().is_some_and(|p| p.clean_spaces);
        let ignore_merges = pre.as_ref().is_some_and(|p| p.ignore_merges);
        if let Some(b) = get_bool(g, KEY_ADD_PREFIX)? {
            add_space_prefix = b;
        }
        if let Some(b) = get_bool(g, KEY_ADD_BOS)? {
            add_bos = b;
        }
        if let Some(b) = get_bool(g, KEY_ADD_EOS)? {
            add_eos = b;
        }

        let in_range = |id: u32| (id as usize) < n;
        let default = |id: u32| Some(id).filter(|&i| in_range(i));
        let mut ids = if spm {
            SpecialIds {
                bos: default(1),
                eos: default(2),
                unk: default(0),
                ..SpecialIds::default()
            }
        } else {
            SpecialIds {
                bos: default(11),
                eos: default(11),
                ..SpecialIds::default()
            }
        };
        {
            let fields: [(&'static str, &mut Option<TokenId>); 14] = [
                (KEY_BOS, &mut ids.bos),
                (KEY_EOS, &mut ids.eos),
                ("tokenizer.ggml.eot_token_id", &mut ids.eot),
                ("tokenizer.ggml.eom_token_id", &mut ids.eom),
                ("tokenizer.ggml.unknown_token_id", &mut ids.unk),
                ("tokenizer.ggml.seperator_token_id", &mut ids.sep),
                ("tokenizer.ggml.padding_token_id", &mut ids.pad),
                ("tokenizer.ggml.mask_token_id", &mut ids.mask),
                ("tokenizer.ggml.fim_pre_token_id", &mut ids.fim_pre),
                ("tokenizer.ggml.fim_suf_token_id", &mut ids.fim_suf),
                ("tokenizer.ggml.fim_mid_token_id", &mut ids.fim_mid),
                ("tokenizer.ggml.fim_pad_token_id", &mut ids.fim_pad),
                ("tokenizer.ggml.fim_rep_token_id", &mut ids.fim_rep),
                ("tokenizer.ggml.fim_sep_token_id", &mut ids.fim_sep),
            ];
            for (key, slot) in fields {
                let Some(v) = g.get(key) else { continue };
                match v.as_u64().and_then(|x| u32::try_from(x).ok()) {
                    Some(id) if in_range(id) => *slot = Some(id),
                    Some(_) | None if v.as_u64().is_some() || v.as_i64().is_some() => {
                        log::warn!("tokenizer: {key} = {v:?} is out of range; ignored");
                    }
                    _ => {
                        return Err(TokenizerError::WrongType {
                            key,
                            expected: "integer",
                            found: type_name(&v),
                        });
                    }
                }
            }
        }
        if add_bos && ids.bos.is_none() {
            return Err(TokenizerError::MissingSpecialToken {
                flag: KEY_ADD_BOS,
                id_key: KEY_BOS,
            });
        }
        if add_eos && ids.eos.is_none() {
            return Err(TokenizerError::MissingSpecialToken {
                flag: KEY_ADD_EOS,
                id_key: KEY_EOS,
            });
        }

        // Marker tokens found by their text (where the file names none) become control tokens
        // whatever their type says, as in llama.cpp.
        let lookup = |v: &Vocab, t: &str| v.id_of(t.as_bytes());
        let fim_slots = [
            &mut ids.fim_pre,
            &mut ids.fim_suf,
            &mut ids.fim_mid,
            &mut ids.fim_pad,
            &mut ids.fim_rep,
            &mut ids.fim_sep,
        ];
        let text_slots = std::iter::once((&mut ids.eot, EOT_TEXTS))
            .chain(std::iter::once((&mut ids.eom, &["<|eom_id|>"][..])))
            .chain(fim_slots.into_iter().zip(FIM_TEXTS));
        for (slot, texts) in text_slots {
            if slot.is_none()
                && let Some(id) = texts.iter().find_map(|t| lookup(&vocab, t))
            {
                *slot = Some(id);
                force_control(&mut vocab, id);
            }
        }
        // Tokens that end generation.
        let mut eog: Vec<TokenId> = EOG_TEXTS.iter().filter_map(|t| lookup(&vocab, t)).collect();
        for &id in &eog {
            force_control(&mut vocab, id);
        }
        eog.extend(
            [
                ids.eos,
                ids.eot,
                ids.eom,
                ids.fim_pad,
                ids.fim_rep,
                ids.fim_sep,
            ]
            .into_iter()
            .flatten(),
        );
        eog.sort_unstable();
        eog.dedup();
        // Control tokens named "...unused..." are also unused.
        for id in 0..n as u32 {
            let a = vocab.attrs[id as usize];
            if a.intersects(TokenAttr::CONTROL) && vocab.text(id).contains("unused") {
                vocab.attrs[id as usize] = a | TokenAttr::UNUSED;
            }
        }

        let special = SpecialTokens::build(&vocab);

        let mut byte_fallback = [None; 256];
        if spm {
            for (b, slot) in byte_fallback.iter_mut().enumerate() {
                let hex = format!("<0x{b:02X}>");
                *slot = lookup(&vocab, &hex)
                    .or_else(|| vocab.id_of(&[b as u8]))
                    .or(ids.unk);
            }
        }

        let mut t = Tokenizer {
            kind,
            vocab,
            merges,
            special,
            ids,
            eog,
            byte_fallback,
            pieces: Vec::new(),
            piece_ends: Vec::with_capacity(n),
            add_bos,
            add_eos,
            add_space_prefix,
            ignore_merges,
            clean_spaces,
        };
        t.render_pieces();
        Ok(t)
    }

    /// Renders every token's piece once (as llama.cpp's piece cache, with special tokens shown).
    fn render_pieces(&mut self) {
        let mut pieces = Vec::new();
        let mut ends = Vec::with_capacity(self.vocab.len());
        for id in 0..self.vocab.len() as u32 {
            let text = self.vocab.text(id);
            let attr = self.vocab.attr(id);
            if attr.intersects(TokenAttr::UNKNOWN | TokenAttr::CONTROL | TokenAttr::USER_DEFINED) {
                pieces.extend_from_slice(text.as_bytes());
            } else if attr.intersects(TokenAttr::NORMAL) {
                match self.kind {
                    TokenizerKind::Spm => {
                        for c in text.chars() {
                            let c = if c == '▁' { ' ' } else { c };
                            let mut buf = [0u8; 4];
                            pieces.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                    TokenizerKind::Bpe(_) => {
                        for c in text.chars() {
                            match bpe::char_to_byte(c) {
                                Some(b) => pieces.push(b),
                                None => {
                                    // Not a byte stand-in: llama.cpp writes a marker.
                                    pieces.extend_from_slice(b"[UNK_BYTE_0x");
                                    let mut buf = [0u8; 4];
                                    for b in c.encode_utf8(&mut buf).bytes() {
                                        pieces.extend_from_slice(format!("{b:02x}").as_bytes());
                                    }
                                    pieces.extend_from_slice(text.as_bytes());
                                    pieces.push(b']');
                                }
                            }
                        }
                    }
                }
            } else if attr.intersects(TokenAttr::BYTE) {
                // `<0xXX>`
                if let Some(b) = text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    pieces.push(b);
                }
            }
            // Unused and undefined tokens render as nothing.
            ends.push(pieces.len() as u32);
        }
        self.pieces = pieces;
        self.piece_ends = ends;
    }

    /// Which model this is.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// Number of tokens in the vocabulary.
    pub fn n_tokens(&self) -> usize {
        self.vocab.len()
    }

    /// Length in bytes of the longest token text.
    pub fn max_token_len(&self) -> usize {
        self.vocab.max_len
    }

    /// The token's text as stored in the file (`None` for an id out of range).
    pub fn token_text(&self, id: TokenId) -> Option<&str> {
        ((id as usize) < self.vocab.len()).then(|| self.vocab.text(id))
    }

    /// The id of the token whose stored text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        self.vocab.id_of(text.as_bytes())
    }

    /// The token's attributes ([`TokenAttr::UNDEFINED`] for an id out of range).
    pub fn token_attr(&self, id: TokenId) -> TokenAttr {
        self.vocab.attr(id)
    }

    /// The token's score (`tokenizer.ggml.scores`; 0 without scores or out of range).
    pub fn token_score(&self, id: TokenId) -> f32 {
        self.vocab.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Ids of BOS, EOS, EOT, UNK, … .
    pub fn special_ids(&self) -> &SpecialIds {
        &self.ids
    }

    /// Whether generation should stop at `id`: EOS, EOT, EOM, the fill-in-the-middle pad,
    /// repository and file-separator tokens, and tokens whose text marks an end of turn.
    pub fn is_eog(&self, id: TokenId) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// Every token that ends generation (see [`Tokenizer::is_eog`]), in increasing order.
    pub fn eog_tokens(&self) -> &[TokenId] {
        &self.eog
    }

    /// Whether [`Tokenizer::tokenize`] adds BOS when asked to add special tokens.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether [`Tokenizer::tokenize`] adds EOS when asked to add special tokens.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether SPM text gets a space in front (and `detokenize` drops it again).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Tokenizes `text`, appending the ids to `out` (as llama.cpp's `llama_tokenize`).
    ///
    /// `add_special` adds BOS (and EOS) where the model asks for them; `parse_special` turns
    /// control-token texts in `text` (e.g. `<|im_start|>`) into those tokens. User-defined
    /// tokens are always recognised. Allocates working buffers.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool, out: &mut Vec<u32>) {
        let mut frags = Vec::new();
        self.special.partition(text, parse_special, &mut frags);
        if add_special && self.add_bos {
            out.extend(self.ids.bos);
        }
        match self.kind {
            TokenizerKind::Spm => {
                let mut session = SpmSession::default();
                let mut buf = String::new();
                // A space goes in front of text that starts the input or follows a special token.
                let mut after_special = true;
                for f in &frags {
                    match f {
                        Fragment::Text(r) => {
                            buf.clear();
                            if self.add_space_prefix && after_special {
                                buf.push('▁');
                            }
                            for c in text[r.clone()].chars() {
                                buf.push(if c == ' ' { '▁' } else { c });
                            }
                            session.tokenize(&self.vocab, &self.byte_fallback, &buf, out);
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(*id);
                            after_special = true;
                        }
                    }
                }
            }
            TokenizerKind::Bpe(pre) => {
                let Some(merges) = &self.merges else {
                    return;
                };
                let mut session = BpeSession::default();
                let mut words: Vec<Range<usize>> = Vec::new();
                for f in &frags {
                    match f {
                        Fragment::Text(r) => {
                            let piece = &text[r.clone()];
                            words.clear();
                            pre.split(piece, &mut words);
                            for w in &words {
                                session.word(
                                    &self.vocab,
                                    merges,
                                    self.ignore_merges,
                                    &piece.as_bytes()[w.clone()],
                                    out,
                                );
                            }
                        }
                        Fragment::Token(id) => out.push(*id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.ids.eos);
        }
    }

    /// [`Tokenizer::tokenize`] into a new vector.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<TokenId> {
        let mut out = Vec::new();
        self.tokenize(text, add_special, parse_special, &mut out);
        out
    }

    /// The bytes a token stands for (as llama.cpp's `llama_token_to_piece` without `lstrip`).
    ///
    /// Normal tokens give their text (BPE: the bytes behind GPT-2's stand-in characters; SPM:
    /// `▁` as a space), byte tokens their byte, user-defined tokens their text. Control and
    /// unknown tokens give their text only when `special` is true, else nothing; unused and
    /// out-of-range ids give nothing. A piece may end inside a UTF-8 character (see
    /// [`Utf8Stream`]). Never allocates.
    pub fn token_to_piece(&self, id: TokenId, special: bool) -> &[u8] {
        let i = id as usize;
        if i >= self.piece_ends.len() {
            return &[];
        }
        if !special
            && self
                .vocab
                .attr(id)
                .intersects(TokenAttr::UNKNOWN | TokenAttr::CONTROL)
        {
            return &[];
        }
        let start = if i == 0 { 0 } else { self.piece_ends[i - 1] };
        self.pieces
            .get(start as usize..self.piece_ends[i] as usize)
            .unwrap_or(&[])
    }

    /// The bytes of a sequence of tokens, as llama.cpp's `llama_detokenize`.
    ///
    /// `remove_special` drops a leading BOS and a trailing EOS where the model adds them;
    /// `unparse_special` renders control tokens as their text. When the tokenizer adds a space
    /// prefix, one leading space of the first token is dropped — unless a BOS was dropped
    /// before it (llama.cpp's rule). BPE tokenizers whose pre-tokenizer asks for it get
    /// llama.cpp's clean-up of spaces before `? ! . ,` and some contractions.
    pub fn detokenize(
        &self,
        ids: &[TokenId],
        remove_special: bool,
        unparse_special: bool,
    ) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos && !ids.is_empty() && Some(ids[0]) == self.ids.bos {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special
            && self.add_eos
            && ids.last().copied() == self.ids.eos
            && self.ids.eos.is_some()
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for &id in ids {
            let mut piece = self.token_to_piece(id, unparse_special);
            if std::mem::take(&mut remove_space)
                && let Some(rest) = piece.strip_prefix(b" ")
            {
                piece = rest;
            }
            out.extend_from_slice(piece);
        }
        if self.clean_spaces {
            clean_up_spaces(&mut out);
        }
        out
    }

    /// Text of a sequence for display: [`Tokenizer::detokenize`] without special tokens,
    /// invalid UTF-8 replaced by U+FFFD.
    pub fn decode(&self, ids: &[TokenId]) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, false, false)).into_owned()
    }
}

/// llama.cpp's three in-place passes over detokenized BPE text: drop the space in ` ?`, ` !`,
/// ` .`, ` ,`; drop both spaces around a lone ` ' `; drop the space before `'s`, `'m`, `'re`,
/// `'ve` (not `'t`, `'d`, `'ll`).
fn clean_up_spaces(text: &mut Vec<u8>) {
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);

    let n = text.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = text[i];
        if x == b'\'' && i + 1 < n && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0; // the space after is skipped (and reads as no space from now on)
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    text.truncate(total);

    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = text[i + 1];
            let drop = matches!(x1, b's' | b'm')
                || (i + 2 < n && matches!((x1, text[i + 2]), (b'r', b'e') | (b'v', b'e')));
            if drop {
                total -= 1;
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_up_spaces_like_llama_cpp() {
        let f = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            clean_up_spaces(&mut v);
            String::from_utf8(v).unwrap_or_default()
        };
        assert_eq!(f("Hello , world !"), "Hello, world!");
        assert_eq!(f("a ' b"), "a'b");
        assert_eq!(f("it 's we 're I 'm you 've"), "it's we're I'm you've");
        assert_eq!(f("don 't we 'll"), "don 't we 'll");
        assert_eq!(f("a ' ' b"), "a'' b");
        assert_eq!(f(""), "");
        assert_eq!(f(" ."), ".");
    }
}
