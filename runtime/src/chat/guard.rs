//! Keeping a hostile template from building values that crash or leak.
//!
//! minijinja frees values by reference counting, and prints, compares and drops them by
//! recursion. A template can only mutate two kinds of value, and both can make trouble:
//!
//! - **Namespaces** (`{% set ns.x = … %}`). `{% set ns.x = ns %}` makes a cycle: printing `ns`
//!   overflows the stack and aborts the process, and the namespace is never freed. A loop of
//!   `{% set ns.l = [ns.l] %}` nests a list 100 000 deep, and dropping it overflows the stack.
//! - **Loops** remember the arguments of `loop.changed(…)`, so `loop.changed(loop)` is a cycle
//!   that leaks.
//!
//! [`guard`] therefore rewrites a template before it is compiled. Every assignment to a
//! namespace attribute passes its value through the [`NAMESPACE_VALUE_FILTER`] filter
//! ([`namespace_value`]), which refuses namespaces, loops, nesting deeper than [`MAX_DEPTH`]
//! and more than [`MAX_VISITS`] visited items per render. Calls of a `changed` method are
//! refused outright: no chat template in use calls `loop.changed`.
//!
//! The rewrite works on minijinja's own tokens, so strings, comments and raw blocks are never
//! mistaken for statements.

use std::sync::{Arc, Mutex, OnceLock};

use minijinja::machinery::{Token, WhitespaceConfig, tokenize};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, State, Value};

use super::ChatError;

/// The filter every namespace assignment's value passes through.
pub(super) const NAMESPACE_VALUE_FILTER: &str = "_eddy_namespace_value";

/// Deepest nesting a value stored in a namespace may have (as `tojson` allows).
pub const MAX_DEPTH: usize = 64;

/// Items [`namespace_value`] may visit in one render, summed over its calls: about a tenth of
/// a second of checking.
pub const MAX_VISITS: u64 = 4_000_000;

/// The name of the render's visit counter among minijinja's per-render temporaries.
const VISITS_TEMP: &str = "_eddy_namespace_visits";

/// `source` with every namespace assignment's value passed through
/// [`NAMESPACE_VALUE_FILTER`], or an error if it calls a `changed` method.
///
/// Call it on a template that compiled: tokens that do not lex are left to the compiler's own
/// error.
pub(super) fn guard(source: &str) -> Result<String, ChatError> {
    let ws = WhitespaceConfig {
        keep_trailing_newline: false,
        lstrip_blocks: true,
        trim_blocks: true,
    };
    // A unit struct unless minijinja's `custom_syntax` is on; `default()` works either way.
    #[allow(clippy::default_constructed_unit_structs)]
    let syntax = SyntaxConfig::default();
    let tokens: Vec<_> = tokenize(source, false, syntax, ws)
        .collect::<Result<_, _>>()
        .map_err(ChatError::from)?;
    let tok = |i: usize| tokens.get(i).map(|(t, _)| t);

    let wrap_end = format!(") | {NAMESPACE_VALUE_FILTER} ");
    let filter = format!(" | {NAMESPACE_VALUE_FILTER} ");
    let mut edits: Vec<(usize, &str)> = Vec::new();
    for i in 0..tokens.len() {
        if matches!(tok(i), Some(Token::Dot))
            && matches!(tok(i + 1), Some(Token::Ident("changed")))
            && matches!(tok(i + 2), Some(Token::ParenOpen))
        {
            let line = tokens[i].1.start_line;
            return Err(ChatError::Template(format!(
                "line {line}: `.changed(…)` is not supported (`loop.changed` can keep values \
                 alive after the render)"
            )));
        }
        if !(matches!(tok(i), Some(Token::BlockStart))
            && matches!(tok(i + 1), Some(Token::Ident("set"))))
        {
            continue;
        }
        let Some(end) = (i + 2..tokens.len()).find(|&j| matches!(tok(j), Some(Token::BlockEnd)))
        else {
            break;
        };
        let statement = &tokens[i + 2..end];
        // The target ends at `=` (`{% set t = value %}`) or at the block's filters / end
        // (`{% set t | f %}…{% endset %}`); a dot in it is a namespace attribute.
        let target_len = statement
            .iter()
            .position(|(t, _)| matches!(t, Token::Assign | Token::Pipe))
            .unwrap_or(statement.len());
        if !statement[..target_len]
            .iter()
            .any(|(t, _)| matches!(t, Token::Dot))
        {
            continue;
        }
        let block_end = tokens[end].1.start_offset as usize;
        match statement.get(target_len) {
            Some((Token::Assign, span)) => {
                edits.push((span.end_offset as usize, " ("));
                edits.push((block_end, &wrap_end));
            }
            _ => edits.push((block_end, &filter)),
        }
    }

    let mut out = String::with_capacity(source.len() + edits.len() * 32);
    let mut at = 0;
    for (offset, text) in edits {
        out.push_str(&source[at..offset]);
        out.push_str(text);
        at = offset;
    }
    out.push_str(&source[at..]);
    Ok(out)
}

/// The filter: `value` unchanged if it holds no namespace and no loop, nests at most
/// [`MAX_DEPTH`] deep, and the render's checks stay within [`MAX_VISITS`] items.
pub(super) fn namespace_value(state: &State, value: Value) -> Result<Value, minijinja::Error> {
    let used = state
        .get_temp(VISITS_TEMP)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0);
    let mut left = MAX_VISITS.saturating_sub(used);
    let result = check(&value, 0, &mut left);
    state.set_temp(VISITS_TEMP, Value::from(MAX_VISITS - left));
    result.map(|()| value)
}

fn check(value: &Value, depth: usize, left: &mut u64) -> Result<(), minijinja::Error> {
    let refuse = |why: String| {
        Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("namespace assignment: {why}"),
        ))
    };
    if depth > MAX_DEPTH {
        return refuse(format!("the value is nested deeper than {MAX_DEPTH}"));
    }
    if *left == 0 {
        return refuse(format!(
            "the render's assignments checked more than {MAX_VISITS} items"
        ));
    }
    *left -= 1;
    let Some(obj) = value.as_object() else {
        return Ok(());
    };
    let (namespace, loop_) = mutable_types();
    if obj.type_name() == namespace {
        return refuse("a namespace cannot hold another namespace".into());
    }
    if obj.type_name() == loop_ {
        return refuse("a namespace cannot hold a loop".into());
    }
    match value.kind() {
        ValueKind::Map => {
            for (_, v) in obj.try_iter_pairs().into_iter().flatten() {
                check(&v, depth + 1, left)?;
            }
        }
        ValueKind::Seq | ValueKind::Iterable => {
            for v in obj.try_iter().into_iter().flatten() {
                check(&v, depth + 1, left)?;
            }
        }
        // Macros and other plain objects are opaque: minijinja frees the values macros
        // capture at the end of each render.
        _ => {}
    }
    Ok(())
}

/// The Rust type names of minijinja's namespace and loop objects, asked of minijinja itself
/// (its types are private): a namespace made by its `namespace()`, a loop seen by a template.
fn mutable_types() -> (&'static str, &'static str) {
    static TYPES: OnceLock<(&'static str, &'static str)> = OnceLock::new();
    *TYPES.get_or_init(|| {
        let type_of = |v: &Value| v.as_object().map_or("", |o| o.type_name());
        let namespace = minijinja::functions::namespace(None)
            .map(|v| type_of(&v))
            .unwrap_or("");
        let mut env = Environment::new();
        let seen = Arc::new(Mutex::new(""));
        let seen_by_template = Arc::clone(&seen);
        env.add_function("seen", move |v: Value| {
            if let Ok(mut s) = seen_by_template.lock() {
                *s = type_of(&v);
            }
        });
        let _ = env.render_str("{% for x in [1] %}{{ seen(loop) }}{% endfor %}", ());
        let loop_ = seen.lock().map_or("", |s| *s);
        (namespace, loop_)
    })
}
