//! Constrained decoding: output that must match a JSON schema, a Lark grammar or a regular
//! expression, through [`llguidance`].
//!
//! Three pieces:
//! - [`ConstraintVocab`]: the tokenizer as llguidance sees it (every token's bytes in a trie,
//!   the end-of-generation tokens, a tokenize callback) and a grammar compiler. Built once per
//!   model ([`crate::Model::constraint_vocab`]) and shared by every sampler of that model.
//! - [`Constraint`]: one compiled grammar and the parse state of one stream of output. Bad
//!   schemas, grammars and regexes are refused here, before any decoding.
//! - [`crate::Sampler::set_constraint`]: the sampler asks the constraint which tokens may come
//!   next, draws only among them, and advances it with each accepted token. The
//!   end-of-generation tokens are allowed exactly when the grammar accepts the output so far;
//!   once nothing more can follow, they are the only tokens allowed, so generation ends
//!   cleanly.
//!
//! Cost: computing a mask allocates (llguidance returns a fresh bit set, a few dozen KB for
//! a 150k-262k-token vocabulary, and its parser grows its tables as it goes); the
//! unconstrained path is untouched and still allocates nothing. [`CONSTRAINT_LIMITS`] bounds
//! the parser's work and memory per grammar and per token.

use std::sync::Arc;

use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::toktrie::{self, InferenceCapabilities, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use crate::tokenizer::{TokenAttr, Tokenizer};

/// What kind of text a constraint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConstraintKind {
    /// A JSON schema (draft 2020-12 subset, as llguidance supports it); the output is one
    /// JSON value valid under it.
    JsonSchema,
    /// A grammar in llguidance's Lark-like syntax (`start: ...`; `%json { ... }` embeds a
    /// schema).
    Lark,
    /// A regular expression (Rust `regex` syntax) that the whole output must match.
    Regex,
}

impl ConstraintKind {
    /// The kind's name as the CLI and the C ABI spell it: `json-schema`, `lark`, `regex`.
    pub fn name(self) -> &'static str {
        match self {
            ConstraintKind::JsonSchema => "json-schema",
            ConstraintKind::Lark => "lark",
            ConstraintKind::Regex => "regex",
        }
    }
}

/// A constraint that cannot be compiled or followed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The schema, grammar or regex is invalid (or too large for [`CONSTRAINT_LIMITS`]).
    #[error("invalid {kind}: {message}", kind = .kind.name())]
    Invalid {
        /// What was given.
        kind: ConstraintKind,
        /// llguidance's explanation.
        message: String,
    },
    /// The parser failed while generating: a token the grammar does not allow was accepted,
    /// or a step exceeded its limits.
    #[error("constraint: {0}")]
    Parse(String),
}

/// Limits on the parser, tighter than llguidance's server defaults: an embedded device
/// should not spend hundreds of MB on lexer states (llguidance: about 1-2 KB each) or
/// seconds on one token.
pub const CONSTRAINT_LIMITS: ParserLimits = ParserLimits {
    max_items_in_row: 2000,
    initial_lexer_fuel: 1_000_000,
    step_lexer_fuel: 200_000,
    step_max_items: 50_000,
    max_lexer_states: 50_000,
    max_grammar_size: 500_000,
    precompute_large_lexemes: true,
    // Errors name the problem, not the whole parser state and grammar.
    verbose_errors: false,
};

/// The tokenizer as llguidance sees it, and a grammar compiler for it. One per model; cheap
/// to share (`Arc`).
pub struct ConstraintVocab {
    factory: ParserFactory,
}

impl std::fmt::Debug for ConstraintVocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trie = self.factory.tok_env().tok_trie();
        f.debug_struct("ConstraintVocab")
            .field("n_tokens", &trie.vocab_size())
            .field("eog", &trie.eos_tokens())
            .finish()
    }
}

/// The tokenize callback llguidance calls for forced text, over Eddy's own tokenizer.
struct TokenizerGlue {
    tokenizer: Arc<Tokenizer>,
    trie: TokTrie,
    /// Whether `tokenize_bytes` gives the model's own tokenization of any text fragment. An
    /// SPM tokenizer that puts a space in front of every text does not.
    canonical: bool,
}

impl TokenizerEnv for TokenizerGlue {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<toktrie::TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) if self.canonical => self.tokenizer.encode(text, false, false),
            _ => self.trie.greedy_tokenize(s),
        }
    }

    fn tokenize_is_canonical(&self) -> bool {
        self.canonical
    }
}

impl ConstraintVocab {
    /// Builds the token trie of `tokenizer` (every token's bytes; control tokens are marked
    /// special so that grammar text never produces them; unused slots match nothing) with the
    /// tokenizer's end-of-generation tokens as llguidance's EOS set.
    pub fn new(tokenizer: Arc<Tokenizer>) -> Result<ConstraintVocab, ConstraintError> {
        let n = tokenizer.n_tokens();
        let eog = tokenizer.eog_tokens();
        let Some(&first_eog) = eog.first() else {
            return Err(ConstraintError::Parse(
                "the model has no end-of-generation token, so a constrained output could never end"
                    .into(),
            ));
        };
        let mut words = Vec::with_capacity(n);
        for id in 0..n as u32 {
            let attr = tokenizer.token_attr(id);
            let word = if attr.intersects(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
                // llguidance's convention for special tokens: a 0xFF byte, then the name.
                let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                w.extend_from_slice(tokenizer.token_to_piece(id, true));
                w
            } else {
                tokenizer.token_to_piece(id, false).to_vec()
            };
            words.push(word);
        }
        let mut info = TokRxInfo::new(n as u32, first_eog);
        info.tok_bos = tokenizer.special_ids().bos;
        let trie = TokTrie::from(&info, &words).with_eos_tokens(eog);
        let canonical = !tokenizer.add_space_prefix();
        let env: TokEnv = Arc::new(TokenizerGlue {
            tokenizer,
            trie,
            canonical,
        });
        let mut factory = ParserFactory::new(
            &env,
            InferenceCapabilities::default(),
            &llguidance::earley::SlicedBiasComputer::general_slices(),
        )
        .map_err(|e| ConstraintError::Parse(e.to_string()))?;
        factory.quiet();
        *factory.limits_mut() = CONSTRAINT_LIMITS;
        Ok(ConstraintVocab { factory })
    }

    /// Tokens in the vocabulary.
    pub fn n_tokens(&self) -> usize {
        self.factory.tok_env().tok_trie().vocab_size()
    }

    /// Compiles `text` as a constraint of `kind`. Errors say what is wrong with the text.
    pub fn compile(&self, kind: ConstraintKind, text: &str) -> Result<Constraint, ConstraintError> {
        let invalid = |message: String| ConstraintError::Invalid { kind, message };
        let grammar = match kind {
            ConstraintKind::JsonSchema => {
                let schema: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
                TopLevelGrammar::from_json_schema(schema)
            }
            ConstraintKind::Lark => TopLevelGrammar::from_lark(text.to_owned()),
            ConstraintKind::Regex => TopLevelGrammar::from_regex(text),
        };
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| invalid(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(invalid(e));
        }
        Ok(Constraint {
            kind,
            text: text.to_owned(),
            initial: matcher.clone(),
            matcher,
            n_tokens: self.n_tokens(),
        })
    }
}

/// A compiled constraint and the parse state of one output stream.
pub struct Constraint {
    kind: ConstraintKind,
    text: String,
    /// The state before any token, for [`Constraint::reset`].
    initial: Matcher,
    matcher: Matcher,
    n_tokens: usize,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("kind", &self.kind)
            .field("text_len", &self.text.len())
            .field("stopped", &self.matcher.is_stopped())
            .finish()
    }
}

impl Clone for Constraint {
    fn clone(&self) -> Self {
        Constraint {
            kind: self.kind,
            text: self.text.clone(),
            initial: self.initial.clone(),
            matcher: self.matcher.deep_clone(),
            n_tokens: self.n_tokens,
        }
    }
}

impl Constraint {
    /// What kind of text it was compiled from.
    pub fn kind(&self) -> ConstraintKind {
        self.kind
    }

    /// The text it was compiled from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The tokens that may come next: a bit set over the vocabulary (bit `id % 32` of word
    /// `id / 32`). Once the grammar can take nothing more, only the end-of-generation tokens.
    pub fn allowed(&mut self) -> Result<Mask, ConstraintError> {
        let vob = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| ConstraintError::Parse(e.to_string()))?;
        if vob.is_zero() {
            return Err(ConstraintError::Parse(
                "no token of the vocabulary can continue the output".into(),
            ));
        }
        Ok(Mask { vob })
    }

    /// Advances the parse state by `token`; an error if the grammar does not allow it.
    pub fn advance(&mut self, token: u32) -> Result<(), ConstraintError> {
        if token as usize >= self.n_tokens {
            return Err(ConstraintError::Parse(format!(
                "token id {token} is outside the vocabulary of {} tokens",
                self.n_tokens
            )));
        }
        self.matcher
            .consume_token(token)
            .map_err(|e| ConstraintError::Parse(e.to_string()))
    }

    /// Whether the output so far is complete under the grammar (an end-of-generation token
    /// would be allowed now).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Whether nothing but an end-of-generation token can follow.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Back to the state before any token.
    pub fn reset(&mut self) {
        self.matcher = self.initial.clone();
    }
}

/// The set of tokens a [`Constraint`] allows next.
#[derive(Debug)]
pub struct Mask {
    vob: toktrie::SimpleVob,
}

impl Mask {
    /// Whether `token` may come next (false outside the vocabulary).
    #[inline]
    pub fn allows(&self, token: u32) -> bool {
        (token as usize) < self.vob.len() && self.vob.is_allowed(token)
    }

    /// The lowest allowed token id (`None` if none is).
    pub fn first(&self) -> Option<u32> {
        self.vob.first_bit_set().map(|i| i as u32)
    }

    /// How many tokens are allowed.
    pub fn count(&self) -> usize {
        self.vob.num_set()
    }

    /// Calls `f` with each allowed token id, in increasing order.
    pub fn for_each(&self, mut f: impl FnMut(u32)) {
        self.vob.iter_set_entries(|i| f(i as u32));
    }
}

/// The Lark grammar of a chat reply when tools are offered: free text, or tool calls whose
/// `name` is one of the tools and whose `arguments` are valid under that tool's parameter
/// schema. A call is a JSON object `{"name": …, "arguments": {…}}`: wrapped in
/// `<tool_call>…</tool_call>` (the Hermes / Qwen 2.5 format; any number, with free text
/// around them), or as the whole reply, bare or in a fenced ```` ```json ```` block (small
/// models often drop the tags). A reply that opens with `{` or ```` ```json ````, and text
/// after `<tool_call>`, must be a call.
///
/// `tools_json` is the JSON array the chat template gets as `tools`: OpenAI-style
/// `{"type": "function", "function": {"name", "parameters"}}` entries, or bare
/// `{"name", "parameters"}` ones. A tool without `parameters` takes any object.
pub fn tool_call_grammar(tools_json: &str) -> Result<String, ConstraintError> {
    let invalid = |message: String| ConstraintError::Invalid {
        kind: ConstraintKind::JsonSchema,
        message: format!("tools: {message}"),
    };
    let tools: serde_json::Value =
        serde_json::from_str(tools_json).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("not a JSON array".into()))?;
    let mut calls = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let f = tool.get("function").unwrap_or(tool);
        let name = f
            .get("name")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| invalid(format!("tool {i} has no \"name\" string")))?;
        let params = f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object"}));
        calls.push(serde_json::json!({
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": params},
            "required": ["name", "arguments"],
            "additionalProperties": false,
        }));
    }
    if calls.is_empty() {
        return Err(invalid("the array is empty".into()));
    }
    let call = serde_json::json!({ "oneOf": calls });
    // Free text is one lexeme that cannot contain `<tool_call>` or open with `{` or a
    // fenced JSON block; a lazy head ends at the first `<tool_call>` (llguidance's pattern
    // for tool calls in plain text), after which the call is forced.
    Ok(format!(
        r#"start: tagged_call* tail | call | fenced_call
tail: TEXT
tagged_call: tagged_hd WS? call WS? "</tool_call>"
tagged_hd[lazy]: TEXT "<tool_call>"
fenced_call: "```json" WS? call WS? "```"
call: %json {call}
TEXT: /(?s:.*)/ & ~/(?s:.*<tool_call>.*)/ & ~/(?s:[ \t\n]*(\{{|```json).*)/
WS: /[ \t\n]+/
"#
    ))
}
