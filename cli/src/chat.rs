//! `eddy chat`: a conversation with an instruct model in its own chat format.
//!
//! Each turn renders the whole conversation with the model's template and prefills only the
//! text after what the context has already consumed: the history stays in the KV arena and is
//! never re-processed. Past the window the stream goes on (sinks + window); with
//! `--keep-system` (the default) the sink slots hold the whole rendered system prompt, so the
//! instructions never leave the arena. If a template rewrites earlier text, the rendering no
//! longer extends what the context holds; the session then starts the context afresh from the
//! full rendering (said on stderr) rather than continue on a wrong history.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::Args;
use eddy::chat::{BuiltinFormat, ChatTemplate, Conversation};
use eddy::tokenizer::StreamDecoder;
use eddy::{Context, ContextParams, Model, Sampler};
use serde_json::json;

use crate::args;
use crate::run::{ConstraintArgs, KvArgs, SamplingArgs, prefill};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `eddy chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// Path to the .gguf model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// System prompt (default: none, or whatever the template puts there).
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Most tokens per reply; -1 = until the end of the turn.
    #[arg(short = 'n', long = "n-predict", value_name = "N", default_value = "512",
          value_parser = args::n_predict, allow_hyphen_values = true)]
    n_predict: args::NPredict,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    constraint: ConstraintArgs,
    /// Threads of the context's pool (the calling thread included), 1..=256.
    #[arg(short = 't', long, value_name = "N", default_value_t = 1,
          value_parser = args::threads, allow_hyphen_values = true)]
    threads: usize,
    #[command(flatten)]
    kv: KvArgs,
    /// Attention-sink slots, 0..=1024 (with --keep-system, at least the system prompt's
    /// tokens).
    #[arg(long, value_name = "S", default_value_t = 4, value_parser = args::sinks,
          allow_hyphen_values = true)]
    sinks: usize,
    /// Recent tokens the arena keeps besides the sinks (default: the trained context, at most
    /// 4096, minus the sinks). The conversation streams past it for ever.
    #[arg(short = 'c', long, visible_alias = "ctx-size", value_name = "W",
          value_parser = args::window, allow_hyphen_values = true)]
    window: Option<usize>,
    /// Size the sink slots to hold the whole rendered system prompt, so that it never leaves
    /// the arena (llama.cpp's n_keep, done with sinks).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true, value_name = "BOOL",
          allow_hyphen_values = true)]
    keep_system: bool,
    /// One JSON object per turn (reply, reply_ids, prompt_tokens, generated_tokens,
    /// context_tokens, tokens_per_s, n_sink, system_tokens, tool_calls).
    #[arg(long)]
    json: bool,
    /// Print the rendered prompt of a conversation file ({"messages": […], "tools": […],
    /// "add_generation_prompt": true}) and exit.
    #[arg(long, value_name = "FILE")]
    render: Option<PathBuf>,
    /// A Jinja chat template file to use instead of the model's (or `gemma` / `chatml`).
    #[arg(long, value_name = "FILE")]
    chat_template: Option<PathBuf>,
    /// A JSON array of tool schemas passed to the template as `tools`. Tool calls in replies
    /// (`{"name": …, "arguments": …}`, bare or in `<tool_call>` tags) are constrained to these
    /// tools and their parameter schemas, unless --constrain-tools false or another constraint
    /// flag is given.
    #[arg(long, value_name = "FILE")]
    tools: Option<PathBuf>,
    /// With --tools: constrain tool calls to the tools' schemas.
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true, value_name = "BOOL",
          allow_hyphen_values = true)]
    constrain_tools: bool,
}

fn template(model: &Model, file: Option<&Path>) -> Res<ChatTemplate> {
    let Some(file) = file else {
        return Ok(ChatTemplate::from_model(model)?);
    };
    if let Some(f) = file.to_str().and_then(BuiltinFormat::from_name) {
        return Ok(ChatTemplate::builtin(model, f));
    }
    let src = std::fs::read_to_string(file)
        .map_err(|e| format!("--chat-template {}: {e}", file.display()))?;
    Ok(ChatTemplate::from_source(model, &src)?)
}

pub fn run(a: ChatArgs) -> Res<()> {
    let model = Model::load(&a.model)?;
    let tmpl = template(&model, a.chat_template.as_deref())?;
    if let Some(file) = &a.render {
        let text = args::read_text("--render", file)?;
        let mut conv = eddy::chat::Conversation::from_json(&text)?;
        if let Some(t) = &a.tools {
            conv.set_tools_json(&args::read_text("--tools", t)?)?;
        }
        print!("{}", tmpl.render(&conv)?);
        std::io::stdout().flush()?;
        return Ok(());
    }
    args::warn_threads(a.threads, false);
    let mut conv = Conversation::new();
    if let Some(t) = &a.tools {
        conv.set_tools_json(&args::read_text("--tools", t)?)?;
    }
    if let Some(s) = &a.system {
        conv.push("system", s);
    }
    let n_ctx_train = model.hparams().n_ctx_train;
    let system_tokens = system_prefix_tokens(&model, &tmpl, &conv)?;
    let n_sink = if a.keep_system {
        a.sinks.max(system_tokens)
    } else {
        a.sinks
    };
    let n_window = match a.window {
        Some(w) => {
            args::within_context("-c/--window", w, 1, n_ctx_train)?;
            w
        }
        None => n_ctx_train.clamp(1, 4096).saturating_sub(n_sink).max(64),
    };
    let params = ContextParams {
        n_sink,
        n_window,
        kv_type: a.kv.kv_type(),
        kv_type_k: a.kv.k(),
        kv_type_v: a.kv.v(),
        n_threads: a.threads,
        ..Default::default()
    };
    // With --tools and no explicit constraint, tool calls are constrained to the tools'
    // names and parameter schemas (free text stays free).
    let constraint = match (&a.tools, a.constraint.is_given()) {
        (Some(t), false) if a.constrain_tools => {
            let grammar = eddy::constraint::tool_call_grammar(&args::read_text("--tools", t)?)?;
            let vocab = model.constraint_vocab()?;
            Some(vocab.compile(eddy::constraint::ConstraintKind::Lark, &grammar)?)
        }
        _ => a.constraint.compile(&model)?,
    };
    let ctx = Context::new(&model, params)?;
    let mut sampler = Sampler::new(model.hparams().n_vocab, a.sampling.params(n_window));
    sampler.set_constraint(constraint);
    let mut s = Session {
        model: &model,
        tmpl,
        conv,
        ctx,
        sampler,
        fed: String::new(),
        n_predict: a.n_predict.0,
        last_rate: 0.0,
        interrupt: Arc::new(AtomicBool::new(false)),
    };
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal() && !a.json;
    if interactive {
        // Ctrl-C ends the reply being generated; at the prompt it is ignored (Ctrl-D ends).
        let flag = Arc::clone(&s.interrupt);
        if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
            eprintln!("eddy chat: Ctrl-C will end the program ({e})");
        }
        eprintln!(
            "eddy chat: {} sinks + {}-token window (system prompt: {system_tokens} tokens); /help for commands, Ctrl-D to end",
            n_sink, n_window
        );
    }
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        if interactive {
            eprint!("> ");
        }
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let input = line.trim_end_matches(['\n', '\r']);
        if input.trim().is_empty() {
            continue;
        }
        // `/command` lines (terminal or pipe); `//text` is a user turn that starts with `/`.
        let input = match input.strip_prefix('/') {
            Some(rest) if rest.starts_with('/') => rest,
            Some(cmd) => {
                match s.command(cmd) {
                    Ok(msg) => eprintln!("{msg}"),
                    Err(e) if interactive => eprintln!("eddy: {e}"),
                    Err(e) => return Err(e),
                }
                continue;
            }
            None => input,
        };
        let stats = s.turn(input, |piece| {
            if !a.json {
                let _ = out.write_all(piece.as_bytes());
                let _ = out.flush();
            }
        })?;
        if a.json {
            let mut doc = json!({
                "reply": stats.reply,
                "reply_ids": stats.reply_ids,
                "prompt_tokens": stats.prompt_tokens,
                "generated_tokens": stats.generated_tokens,
                "context_tokens": s.ctx.n_seen(),
                "tokens_per_s": stats.tokens_per_s,
                "n_sink": s.ctx.params().n_sink,
                "system_tokens": system_tokens,
            });
            if stats.restarted {
                doc["restarted"] = json!(true);
            }
            let calls = tool_calls(&stats.reply);
            if !calls.is_empty() {
                doc["tool_calls"] = json!(calls);
            }
            writeln!(out, "{doc}")?;
        } else {
            writeln!(out)?;
        }
        out.flush()?;
    }
    Ok(())
}

/// Tokens of the rendered system prompt: what a conversation's rendering holds before the
/// first user message's text (the template's default system prompt included), up to the end
/// of the system turn when the format has one.
fn system_prefix_tokens(model: &Model, tmpl: &ChatTemplate, conv: &Conversation) -> Res<usize> {
    const SENTINEL: &str = "\u{1}eddy-user\u{1}";
    let mut probe = conv.clone();
    probe.push("user", SENTINEL);
    probe.add_generation_prompt = false;
    let text = tmpl.render(&probe)?;
    let Some(at) = text.find(SENTINEL) else {
        return Ok(0);
    };
    let mut prefix = &text[..at];
    // Cut the user turn's header when a system turn ends before it.
    if let Some(end) = tmpl
        .end_of_turn_markers()
        .iter()
        .filter_map(|m| prefix.rfind(m.as_str()).map(|i| i + m.len()))
        .max()
    {
        let nl = usize::from(prefix[end..].starts_with('\n'));
        prefix = &prefix[..end + nl];
    }
    let tok = model.tokenizer();
    Ok(tok.encode(prefix, tok.add_bos(), true).len())
}

struct Session<'m> {
    model: &'m Model,
    tmpl: ChatTemplate,
    conv: Conversation,
    ctx: Context<'static, &'m Model>,
    sampler: Sampler,
    /// The text the context has consumed, in order.
    fed: String,
    n_predict: Option<u64>,
    last_rate: f64,
    /// Set by Ctrl-C on a terminal: the reply being generated ends there.
    interrupt: Arc<AtomicBool>,
}

struct TurnStats {
    reply: String,
    reply_ids: Vec<u32>,
    prompt_tokens: usize,
    generated_tokens: u64,
    tokens_per_s: f64,
    restarted: bool,
}

impl Session<'_> {
    /// One user turn: prefill what is new, then generate the reply, passing its text to `emit`
    /// as it is produced.
    fn turn(&mut self, user: &str, mut emit: impl FnMut(&str)) -> Res<TurnStats> {
        let tok = self.model.tokenizer();
        self.conv.push("user", user);
        self.conv.add_generation_prompt = true;
        let full = self.tmpl.render(&self.conv)?;
        let mut restarted = false;
        let delta = if let Some(rest) = full.strip_prefix(self.fed.as_str()) {
            rest.to_string()
        } else {
            eprintln!(
                "eddy chat: the template rewrote earlier text; starting the context afresh from the whole conversation"
            );
            self.ctx.reset();
            self.sampler.reset();
            self.fed.clear();
            restarted = true;
            full.clone()
        };
        let add_bos = self.fed.is_empty() && tok.add_bos();
        let ids = tok.encode(&delta, add_bos, true);
        prefill(&mut self.ctx, &ids)?;
        for &t in &ids {
            self.sampler.accept_prompt(t);
        }
        // Each reply is one output of the constraint, from its start.
        self.sampler.restart_constraint();
        self.fed.push_str(&delta);

        let markers = self.tmpl.end_of_turn_markers();
        let mut decoder = StreamDecoder::new(tok, false);
        let mut reply = String::new();
        let mut reply_ids = Vec::new();
        let mut n = 0u64;
        let t0 = Instant::now();
        self.interrupt.store(false, Ordering::Relaxed);
        // `n` counts the reply's tokens (each one decoded into the context); the token that
        // ends the turn is neither decoded nor counted.
        while self.n_predict.is_none_or(|max| n < max) {
            if self.interrupt.swap(false, Ordering::Relaxed) {
                emit(" [stopped]");
                break;
            }
            let next = self.sampler.try_sample(self.ctx.logits())?;
            let is_marker = tok
                .token_text(next)
                .is_some_and(|t| markers.iter().any(|m| m == t));
            if tok.is_eog(next) || is_marker {
                break;
            }
            self.sampler.accept(next);
            n += 1;
            reply_ids.push(next);
            decoder.push(next, |s| {
                reply.push_str(s);
                emit(s);
            });
            self.ctx.decode(&[next])?;
        }
        decoder.finish(|s| {
            reply.push_str(s);
            emit(s);
        });
        let dt = t0.elapsed().as_secs_f64();
        self.last_rate = n as f64 / dt.max(1e-9);
        self.fed.push_str(&reply);
        self.conv.push("assistant", &reply);
        Ok(TurnStats {
            reply,
            reply_ids,
            prompt_tokens: ids.len(),
            generated_tokens: n,
            tokens_per_s: self.last_rate,
            restarted,
        })
    }

    /// A `/command` typed at the terminal.
    fn command(&mut self, cmd: &str) -> Res<String> {
        let (name, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
        let arg = arg.trim();
        match name {
            "help" => Ok(
                "/reset  forget the conversation (the system prompt stays)\n\
                 /save FILE  save the context and the transcript\n\
                 /load FILE  restore a saved session\n\
                 /stats  tokens in the context, speed\n\
                 Ctrl-D ends the session."
                    .into(),
            ),
            "reset" => {
                let system: Vec<(String, String)> = (0..self.conv.len())
                    .filter_map(|i| self.conv.message(i))
                    .filter(|(r, _)| r == "system")
                    .collect();
                self.conv.clear();
                for (r, c) in &system {
                    self.conv.push(r, c);
                }
                self.ctx.reset();
                self.sampler.reset();
                self.fed.clear();
                Ok("conversation reset".into())
            }
            "stats" => {
                let p = self.ctx.params();
                Ok(format!(
                    "{} tokens seen, {} sinks + {}-token window, {} messages, last reply {:.1} tok/s",
                    self.ctx.n_seen(),
                    p.n_sink,
                    p.n_window,
                    self.conv.len(),
                    self.last_rate
                ))
            }
            "save" if !arg.is_empty() => {
                let bytes = self.save()?;
                std::fs::write(arg, &bytes).map_err(|e| format!("{arg}: {e}"))?;
                Ok(format!("saved {} bytes to {arg}", bytes.len()))
            }
            "load" if !arg.is_empty() => {
                let bytes = std::fs::read(arg).map_err(|e| format!("{arg}: {e}"))?;
                self.load(&bytes).map_err(|e| format!("{arg}: {e}"))?;
                Ok(format!(
                    "loaded {arg}: {} messages, {} tokens seen",
                    self.conv.len(),
                    self.ctx.n_seen()
                ))
            }
            "save" | "load" => Err(format!("/{name} needs a file name").into()),
            _ => Err(format!("unknown command /{name} (/help lists them)").into()),
        }
    }

    /// A saved session: magic, version, the transcript (conversation + the text the context
    /// consumed) as JSON, then the context's state (checked by `load_state`).
    fn save(&self) -> Res<Vec<u8>> {
        let transcript = json!({
            "conversation": serde_json::from_str::<serde_json::Value>(&self.conv.to_json())?,
            "fed": self.fed,
        })
        .to_string();
        let mut out = Vec::new();
        out.extend_from_slice(SESSION_MAGIC);
        out.extend_from_slice(&(transcript.len() as u64).to_le_bytes());
        out.extend_from_slice(transcript.as_bytes());
        let mut state = vec![0u8; self.ctx.state_size()];
        let n = self.ctx.save_state(&mut state)?;
        out.extend_from_slice(&state[..n]);
        Ok(out)
    }

    fn load(&mut self, bytes: &[u8]) -> Res<()> {
        let rest = bytes
            .strip_prefix(SESSION_MAGIC)
            .ok_or("not an eddy chat session file")?;
        let (len, rest) = rest.split_at_checked(8).ok_or("truncated session file")?;
        let len = u64::from_le_bytes(len.try_into()?);
        let len = usize::try_from(len).ok().filter(|&l| l <= rest.len());
        let (transcript, state) = rest.split_at(len.ok_or("truncated session file")?);
        let doc: serde_json::Value =
            serde_json::from_slice(transcript).map_err(|e| format!("damaged transcript: {e}"))?;
        let conv = Conversation::from_json(&doc["conversation"].to_string())?;
        let fed = doc["fed"].as_str().ok_or("damaged transcript: no text")?;
        // The state is checked (length, checksum, model, arena geometry) before anything changes.
        self.ctx.load_state(state)?;
        self.conv = conv;
        self.fed = fed.to_string();
        self.sampler.reset();
        Ok(())
    }
}

const SESSION_MAGIC: &[u8; 12] = b"EDDYCHAT\x01\0\0\0";

/// The JSON objects of Qwen-style `<tool_call>{…}</tool_call>` markup in a reply, or the
/// reply itself when the whole of it is one `{"name": …, "arguments": …}` object, bare or in a
/// fenced ```` ```json ```` block (the forms small models often use without the tags).
fn tool_calls(reply: &str) -> Vec<serde_json::Value> {
    let whole = reply.trim();
    let whole = whole
        .strip_prefix("```json")
        .and_then(|w| w.strip_suffix("```"))
        .unwrap_or(whole);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(whole.trim())
        && v.get("name").is_some_and(serde_json::Value::is_string)
        && v.get("arguments").is_some()
    {
        return vec![v];
    }
    let mut calls = Vec::new();
    let mut rest = reply;
    while let Some(start) = rest.find("<tool_call>") {
        let after = &rest[start + "<tool_call>".len()..];
        let Some(end) = after.find("</tool_call>") else {
            break;
        };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(after[..end].trim()) {
            calls.push(v);
        }
        rest = &after[end + "</tool_call>".len()..];
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::tool_calls;

    #[test]
    fn tool_call_markup_is_parsed() {
        let reply = "Let me add.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>\
                     <tool_call>not json</tool_call><tool_call>{\"name\": \"x\"}</tool_call><tool_call>{";
        let calls = tool_calls(reply);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["name"], "add");
        assert_eq!(calls[0]["arguments"]["a"], 1);
        assert_eq!(calls[1]["name"], "x");
        assert!(tool_calls("no calls").is_empty());
        let bare = tool_calls(" {\"name\": \"add\", \"arguments\": {\"a\": 2}}\n");
        assert_eq!(bare.len(), 1);
        assert_eq!(bare[0]["arguments"]["a"], 2);
        assert!(tool_calls("{\"a\": 1}").is_empty());
        let fenced = tool_calls("```json\n{\"name\": \"f\", \"arguments\": {}}\n```");
        assert_eq!(fenced[0]["name"], "f");
    }
}
