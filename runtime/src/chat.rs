//! Chat prompts: a conversation (OpenAI-style messages, optional tools) rendered into the text
//! a model was trained on.
//!
//! A model's own template (`tokenizer.chat_template`, Jinja) is rendered with `minijinja` the
//! way Hugging Face transformers renders it: `trim_blocks` and `lstrip_blocks`, loop controls,
//! Python's string methods (`minijinja-contrib`'s pycompat), `tojson` as Python's
//! `json.dumps(x, ensure_ascii=False)`, `raise_exception`, `strftime_now`, and `bos_token` /
//! `eos_token` from the vocabulary. A file without a template gets a built-in format chosen
//! from its architecture and vocabulary (Gemma's turns, ChatML), as llama.cpp does.
//!
//! Templates are untrusted input: a render runs on a fuel budget (instructions), a recursion
//! limit and a bound on the output, and every failure is a [`ChatError`], never a panic.

use std::fmt::Write as _;
use std::io;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, ErrorKind, Value};

use crate::model::Model;

mod guard;

/// Instructions one render may execute: about a second of work (20 M took 1.9 s here). A
/// 1000-message conversation through Qwen2.5's tool-calling template takes far fewer (see the
/// `long_conversations_stay_within_fuel` test).
pub const TEMPLATE_FUEL: u64 = 10_000_000;
/// Deepest macro / include recursion a template may reach.
pub const TEMPLATE_RECURSION_LIMIT: usize = 100;
/// Largest rendered prompt, in bytes.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// Why a conversation could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The file has no `tokenizer.chat_template` and no built-in format fits its vocabulary.
    #[error(
        "the model has no chat template (tokenizer.chat_template) and no built-in format fits its vocabulary; give one explicitly"
    )]
    NoTemplate,
    /// The template does not parse, fails while rendering, calls `raise_exception`, runs out of
    /// fuel or produces too much text.
    #[error("chat template: {0}")]
    Template(String),
    /// The conversation is not a list of messages with string roles.
    #[error("conversation: {0}")]
    Conversation(String),
}

impl From<minijinja::Error> for ChatError {
    fn from(e: minijinja::Error) -> Self {
        let mut msg = e.to_string();
        if e.kind() == ErrorKind::OutOfFuel {
            msg = format!("ran out of fuel ({TEMPLATE_FUEL} instructions): {msg}");
        }
        ChatError::Template(msg)
    }
}

/// The formats llama.cpp builds in, used when a file carries no template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinFormat {
    /// `<start_of_turn>user … <end_of_turn>`, assistant turns as `model`; a system message is
    /// folded into the first user turn (Gemma has no system role).
    Gemma,
    /// `<|im_start|>role … <|im_end|>` (Qwen, SmolLM, many others).
    ChatMl,
}

impl BuiltinFormat {
    /// The format's name, as `--chat-template` accepts it.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinFormat::Gemma => "gemma",
            BuiltinFormat::ChatMl => "chatml",
        }
    }

    /// The format called `name` (`gemma`, `chatml`).
    pub fn from_name(name: &str) -> Option<BuiltinFormat> {
        match name {
            "gemma" => Some(BuiltinFormat::Gemma),
            "chatml" => Some(BuiltinFormat::ChatMl),
            _ => None,
        }
    }
}

/// A conversation to render: messages (each an object with at least a string `role`; `content`,
/// `tool_calls` and anything else are passed to the template as they are), optional tools, and
/// whether to open the assistant's turn at the end.
#[derive(Clone, Debug, Default)]
pub struct Conversation {
    messages: Vec<Value>,
    tools: Option<Value>,
    /// Open the assistant's turn after the last message (default true).
    pub add_generation_prompt: bool,
}

impl Conversation {
    /// An empty conversation that ends with the assistant's turn opened.
    pub fn new() -> Conversation {
        Conversation {
            messages: Vec::new(),
            tools: None,
            add_generation_prompt: true,
        }
    }

    /// A conversation file: `{"messages": [...], "tools": [...], "add_generation_prompt": bool}`
    /// (`tools` and `add_generation_prompt` optional, the latter true by default), or just the
    /// array of messages. Object keys keep their order (a template's `tojson` shows it).
    pub fn from_json(text: &str) -> Result<Conversation, ChatError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| ChatError::Conversation(e.to_string()))?;
        let mut conv = Conversation::new();
        let messages = match v.kind() {
            ValueKind::Seq => v,
            ValueKind::Map => {
                if let Some(tools) = field(&v, "tools").filter(|t| !t.is_none()) {
                    if tools.kind() != ValueKind::Seq {
                        return Err(ChatError::Conversation("\"tools\" must be an array".into()));
                    }
                    conv.tools = Some(tools);
                }
                if let Some(add) = field(&v, "add_generation_prompt") {
                    if add.kind() != ValueKind::Bool {
                        return Err(ChatError::Conversation(
                            "\"add_generation_prompt\" must be true or false".into(),
                        ));
                    }
                    conv.add_generation_prompt = add.is_true();
                }
                field(&v, "messages")
                    .ok_or_else(|| ChatError::Conversation("no \"messages\" array".into()))?
            }
            _ => {
                return Err(ChatError::Conversation(
                    "expected an object with \"messages\" or an array of messages".into(),
                ));
            }
        };
        if messages.kind() != ValueKind::Seq {
            return Err(ChatError::Conversation(
                "\"messages\" must be an array".into(),
            ));
        }
        for m in messages.try_iter().map_err(ChatError::from)? {
            conv.push_value(m)?;
        }
        Ok(conv)
    }

    /// Appends a message with a role and a text content.
    pub fn push(&mut self, role: &str, content: &str) {
        self.messages.push(Value::from_iter([
            ("role", Value::from(role)),
            ("content", Value::from(content)),
        ]));
    }

    fn push_value(&mut self, m: Value) -> Result<(), ChatError> {
        let i = self.messages.len();
        if m.kind() != ValueKind::Map {
            return Err(ChatError::Conversation(format!(
                "message {i} is not an object"
            )));
        }
        match field(&m, "role") {
            Some(r) if r.as_str().is_some() => {}
            _ => {
                return Err(ChatError::Conversation(format!(
                    "message {i} has no string \"role\""
                )));
            }
        }
        self.messages.push(m);
        Ok(())
    }

    /// Sets the tools (a JSON array of tool schemas), passed to the template as `tools`.
    pub fn set_tools_json(&mut self, text: &str) -> Result<(), ChatError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| ChatError::Conversation(e.to_string()))?;
        if v.kind() != ValueKind::Seq {
            return Err(ChatError::Conversation("tools must be a JSON array".into()));
        }
        self.tools = Some(v);
        Ok(())
    }

    /// The conversation as a conversation file (`from_json` reads it back).
    pub fn to_json(&self) -> String {
        let doc = Value::from_iter([
            ("messages", Value::from(self.messages.clone())),
            ("tools", self.tools.clone().unwrap_or(Value::from(()))),
            (
                "add_generation_prompt",
                Value::from(self.add_generation_prompt),
            ),
        ]);
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into())
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True without messages.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Removes every message (the tools stay).
    pub fn clear(&mut self) {
        self.messages.clear();
    }

    /// Role and text content of message `i` (content that is not a string reads as "").
    pub fn message(&self, i: usize) -> Option<(String, String)> {
        let m = self.messages.get(i)?;
        Some((
            field_string(m, "role").unwrap_or_default(),
            field_string(m, "content").unwrap_or_default(),
        ))
    }
}

fn field(v: &Value, key: &str) -> Option<Value> {
    v.get_attr(key).ok().filter(|x| !x.is_undefined())
}

fn field_string(v: &Value, key: &str) -> Option<String> {
    field(v, key).and_then(|x| x.as_str().map(str::to_string))
}

/// A compiled chat template, ready to render conversations for one model.
#[derive(Debug)]
pub struct ChatTemplate {
    kind: Kind,
    bos: String,
    eos: String,
    end_of_turn: Vec<String>,
}

#[derive(Debug)]
enum Kind {
    Jinja(Box<Environment<'static>>),
    Builtin(BuiltinFormat),
}

const TEMPLATE_NAME: &str = "chat_template";

impl ChatTemplate {
    /// The model's own template, else the built-in format its architecture and vocabulary
    /// call for.
    pub fn from_model(model: &Model) -> Result<ChatTemplate, ChatError> {
        if let Some(src) = model.gguf().get_str("tokenizer.chat_template") {
            return ChatTemplate::from_source(model, src);
        }
        let tok = model.tokenizer();
        let format = if tok.token_id("<start_of_turn>").is_some() {
            BuiltinFormat::Gemma
        } else if tok.token_id("<|im_start|>").is_some() {
            BuiltinFormat::ChatMl
        } else {
            return Err(ChatError::NoTemplate);
        };
        Ok(ChatTemplate::builtin(model, format))
    }

    /// A built-in format for `model`.
    pub fn builtin(model: &Model, format: BuiltinFormat) -> ChatTemplate {
        let (bos, eos) = special_texts(model);
        let end_of_turn = match format {
            BuiltinFormat::Gemma => vec!["<end_of_turn>".to_string()],
            BuiltinFormat::ChatMl => vec!["<|im_end|>".to_string()],
        };
        ChatTemplate {
            kind: Kind::Builtin(format),
            bos,
            eos,
            end_of_turn,
        }
    }

    /// A Jinja template given as text (e.g. `--chat-template FILE`), compiled now: a syntax
    /// error is reported here, not at the first render.
    pub fn from_source(model: &Model, source: &str) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(TEMPLATE_RECURSION_LIMIT);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter(guard::NAMESPACE_VALUE_FILTER, guard::namespace_value);
        // Compiled as given first: the guard's rewrite could turn a syntax error into valid
        // text (`{% set ns.x = %}` would become `= () | filter`). Then as guarded (see
        // `guard`), which is what renders.
        env.add_template_owned(TEMPLATE_NAME, source.to_string())?;
        env.add_template_owned(TEMPLATE_NAME, guard::guard(source)?)?;
        let (bos, eos) = special_texts(model);
        // The end-of-turn markers the vocabulary has and the template writes.
        let end_of_turn = [
            "<|im_end|>",
            "<end_of_turn>",
            "<|eot_id|>",
            "<|end|>",
            "</s>",
        ]
        .iter()
        .filter(|m| source.contains(*m) && model.tokenizer().token_id(m).is_some())
        .map(|m| m.to_string())
        .collect();
        Ok(ChatTemplate {
            kind: Kind::Jinja(Box::new(env)),
            bos,
            eos,
            end_of_turn,
        })
    }

    /// The built-in format in use, if any.
    pub fn builtin_format(&self) -> Option<BuiltinFormat> {
        match self.kind {
            Kind::Builtin(f) => Some(f),
            Kind::Jinja(_) => None,
        }
    }

    /// Texts that end an assistant turn in this format (besides the model's end-of-generation
    /// tokens); a chat stops generating at them and never prints them.
    pub fn end_of_turn_markers(&self) -> &[String] {
        &self.end_of_turn
    }

    /// Renders `conv` into prompt text. The text carries no BOS unless the template writes
    /// one; tokenize it with special-token parsing on.
    pub fn render(&self, conv: &Conversation) -> Result<String, ChatError> {
        match &self.kind {
            Kind::Builtin(f) => render_builtin(*f, conv),
            Kind::Jinja(env) => {
                let tmpl = env.get_template(TEMPLATE_NAME)?;
                let ctx = minijinja::context! {
                    messages => Value::from(conv.messages.clone()),
                    tools => conv.tools.clone().unwrap_or(Value::from(())),
                    add_generation_prompt => conv.add_generation_prompt,
                    bos_token => self.bos.as_str(),
                    eos_token => self.eos.as_str(),
                };
                let mut out = Bounded(Vec::new());
                tmpl.render_captured_to(ctx, &mut out).map_err(|e| {
                    if out.0.len() >= MAX_RENDERED_BYTES {
                        ChatError::Template(format!(
                            "the rendered prompt exceeds {MAX_RENDERED_BYTES} bytes"
                        ))
                    } else {
                        ChatError::from(e)
                    }
                })?;
                String::from_utf8(out.0)
                    .map_err(|_| ChatError::Template("rendered text is not UTF-8".into()))
            }
        }
    }
}

/// The BOS and EOS token texts, as transformers passes them to templates.
fn special_texts(model: &Model) -> (String, String) {
    let tok = model.tokenizer();
    let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
    (text(tok.special_ids().bos), text(tok.special_ids().eos))
}

/// A writer that refuses to grow past [`MAX_RENDERED_BYTES`].
struct Bounded(Vec<u8>);

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            self.0.resize(MAX_RENDERED_BYTES, 0);
            return Err(io::Error::other("rendered prompt too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn render_builtin(format: BuiltinFormat, conv: &Conversation) -> Result<String, ChatError> {
    let mut out = String::new();
    match format {
        BuiltinFormat::Gemma => {
            // As llama.cpp's built-in `gemma`: system text is held back and put in front of
            // the next non-model turn; contents are trimmed.
            let mut system = String::new();
            for i in 0..conv.len() {
                let (role, content) = conv.message(i).unwrap_or_default();
                if role == "system" {
                    system.push_str(content.trim());
                    continue;
                }
                let role = if role == "assistant" { "model" } else { &role };
                out.push_str("<start_of_turn>");
                out.push_str(role);
                out.push('\n');
                if !system.is_empty() && role != "model" {
                    out.push_str(&system);
                    out.push_str("\n\n");
                    system.clear();
                }
                out.push_str(content.trim());
                out.push_str("<end_of_turn>\n");
            }
            if conv.add_generation_prompt {
                out.push_str("<start_of_turn>model\n");
            }
        }
        BuiltinFormat::ChatMl => {
            for i in 0..conv.len() {
                let (role, content) = conv.message(i).unwrap_or_default();
                let _ = write!(out, "<|im_start|>{role}\n{content}<|im_end|>\n");
            }
            if conv.add_generation_prompt {
                out.push_str("<|im_start|>assistant\n");
            }
        }
    }
    if out.len() > MAX_RENDERED_BYTES {
        return Err(ChatError::Template(format!(
            "the rendered prompt exceeds {MAX_RENDERED_BYTES} bytes"
        )));
    }
    Ok(out)
}

// ---- functions and filters templates expect ----

fn raise_exception(msg: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {msg}"),
    ))
}

/// `strftime_now(format)`: the current UTC time through a C-style format (%Y %m %d %H %M %S
/// %y %b %B %a %A %j %p %I %e %%), as Llama 3's templates use for "Today Date".
fn strftime_now(format: String) -> Result<Value, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)))
}

/// Formats `secs` since the Unix epoch (UTC) with the subset of strftime above.
pub(crate) fn strftime(format: &str, secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (h, mi, s) = (tod / 3600, tod / 60 % 60, tod % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[(m - 1) as usize] + d + i64::from(leap && m > 2);
    let wday = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('m') => write!(out, "{m:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('e') => write!(out, "{d:2}"),
            Some('j') => write!(out, "{yday:03}"),
            Some('H') => write!(out, "{h:02}"),
            Some('I') => write!(out, "{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
            Some('p') => write!(out, "{}", if h < 12 { "AM" } else { "PM" }),
            Some('M') => write!(out, "{mi:02}"),
            Some('S') => write!(out, "{s:02}"),
            Some('b') => write!(out, "{}", &month[..3]),
            Some('B') => write!(out, "{month}"),
            Some('a') => write!(out, "{}", &wday[..3]),
            Some('A') => write!(out, "{wday}"),
            Some('%') => write!(out, "%"),
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`. Non-ASCII text stays as it is; `", "` and
/// `": "` separate items unless `indent` is given (then `","`) or `separators` overrides.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_str(), i64::try_from(v.clone())) {
            (Some(s), _) => Some(s.to_string()),
            (None, Ok(n)) => Some(" ".repeat(n.clamp(0, 64) as usize)),
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer or a string",
                ));
            }
        },
    };
    let (item, key) = match separators {
        Some(v) if !v.is_none() => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] if a.as_str().is_some() && b.as_str().is_some() => (
                    a.as_str().unwrap_or(",").to_string(),
                    b.as_str().unwrap_or(":").to_string(),
                ),
                _ => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ));
                }
            }
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let mut w = JsonWriter {
        out: String::new(),
        indent,
        item,
        key,
        sort_keys: sort_keys.unwrap_or(false),
    };
    w.value(&value, 0)?;
    Ok(Value::from(w.out))
}

struct JsonWriter {
    out: String,
    indent: Option<String>,
    item: String,
    key: String,
    sort_keys: bool,
}

impl JsonWriter {
    fn newline(&mut self, depth: usize) {
        if let Some(ind) = &self.indent {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str(ind);
            }
        }
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), minijinja::Error> {
        if depth > 64 {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "tojson: nesting deeper than 64",
            ));
        }
        if self.out.len() > MAX_RENDERED_BYTES {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "tojson: output too large",
            ));
        }
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => self.out.push_str("null"),
            ValueKind::Bool => self
                .out
                .push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number if v.is_integer() => {
                let _ = write!(self.out, "{v}");
            }
            ValueKind::Number => {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                python_float(&mut self.out, f);
            }
            ValueKind::String => self.string(v.as_str().unwrap_or("")),
            ValueKind::Bytes => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: bytes are not JSON serializable",
                ));
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        let sep = self.item.clone();
                        self.out.push_str(&sep);
                    }
                    self.newline(depth + 1);
                    self.value(x, depth + 1)?;
                }
                if !items.is_empty() {
                    self.newline(depth);
                }
                self.out.push(']');
            }
            ValueKind::Map => {
                let mut keys: Vec<Value> = v.try_iter()?.collect();
                if self.sort_keys {
                    keys.sort_by_key(key_text);
                }
                self.out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        let sep = self.item.clone();
                        self.out.push_str(&sep);
                    }
                    self.newline(depth + 1);
                    self.string(&key_text(k));
                    let sep = self.key.clone();
                    self.out.push_str(&sep);
                    self.value(&v.get_item(k)?, depth + 1)?;
                }
                if !keys.is_empty() {
                    self.newline(depth);
                }
                self.out.push('}');
            }
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: a {} is not JSON serializable", v.kind()),
                ));
            }
        }
        Ok(())
    }

    /// A JSON string as Python writes it with `ensure_ascii=False`.
    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// A map key as Python's json writes it: strings as they are, numbers and constants as text.
fn key_text(k: &Value) -> String {
    match k.kind() {
        ValueKind::String => k.as_str().unwrap_or("").to_string(),
        ValueKind::Bool => (if k.is_true() { "true" } else { "false" }).to_string(),
        ValueKind::None | ValueKind::Undefined => "null".to_string(),
        _ => k.to_string(),
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, fixed notation for exponents
/// from -4 to 15, scientific (`1e+16`, `1.5e-07`) otherwise, `.0` on integral values.
fn python_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e3".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> String {
        let v: Value = serde_json::from_str(text).unwrap();
        let kwargs = Kwargs::from_iter(std::iter::empty::<(&str, Value)>());
        tojson(v, kwargs).unwrap().as_str().unwrap().to_string()
    }

    #[test]
    fn tojson_is_pythons_json_dumps() {
        assert_eq!(
            json(r#"{"name":"add","arguments":{"a":17,"b":[1,2.5,null,true,1.0]}}"#),
            r#"{"name": "add", "arguments": {"a": 17, "b": [1, 2.5, null, true, 1.0]}}"#
        );
        assert_eq!(json(r#""é\n\"\u0001""#), r#""é\n\"\u0001""#);
        assert_eq!(json("[]"), "[]");
        assert_eq!(json("{}"), "{}");
    }

    #[test]
    fn floats_print_like_python_repr() {
        let p = |f: f64| {
            let mut s = String::new();
            python_float(&mut s, f);
            s
        };
        assert_eq!(p(1.0), "1.0");
        assert_eq!(p(2.5), "2.5");
        assert_eq!(p(0.1), "0.1");
        assert_eq!(p(1e16), "1e+16");
        assert_eq!(p(123456789012345.0), "123456789012345.0");
        assert_eq!(p(1.5e-7), "1.5e-07");
        assert_eq!(p(0.0001), "0.0001");
        assert_eq!(p(-3.25), "-3.25");
    }

    #[test]
    fn strftime_formats_dates() {
        // 2026-12-06 04:41:04 UTC was a Sunday.
        let t = 1_796_532_064;
        assert_eq!(strftime("%d %b %Y", t), "06 Dec 2026");
        assert_eq!(strftime("%A %H:%M:%S %j %%", t), "Sunday 04:41:04 340 %");
        assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }
}
