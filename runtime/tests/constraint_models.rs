//! Constrained decoding on the real models: a JSON schema on Qwen2.5 at temperature 0.9 over
//! many seeds, a Lark date grammar and a regex on SmolLM2, end-of-generation exactly when the
//! grammar accepts, and bad schemas, grammars and regexes refused with a reason.
#![cfg(feature = "constraint")]

mod common;

use eddy::chat::{ChatTemplate, Conversation};
use eddy::constraint::{ConstraintError, ConstraintKind};
use eddy::{Context, ContextParams, Model, Sampler, SamplerParams};
use serde_json::Value as Json;

/// What one constrained generation gave.
struct Output {
    text: String,
    /// Whether it ended with an end-of-generation token (rather than at `max_tokens`).
    ended: bool,
}

fn generate(
    model: &Model,
    prompt: &[u32],
    kind: ConstraintKind,
    text: &str,
    params: SamplerParams,
    max_tokens: usize,
) -> Output {
    let vocab = model.constraint_vocab().unwrap();
    let mut sampler = Sampler::new(model.hparams().n_vocab, params);
    sampler.set_constraint(Some(vocab.compile(kind, text).unwrap()));
    let mut ctx = Context::new(
        model,
        ContextParams {
            n_window: 512,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    ctx.decode(prompt).unwrap();
    let tok = model.tokenizer();
    let mut out = Vec::new();
    for _ in 0..max_tokens {
        let next = sampler.try_sample(ctx.logits()).unwrap();
        if tok.is_eog(next) {
            assert!(
                sampler.constraint_finished() || {
                    // An end-of-generation token is drawn only where the grammar accepts.
                    let mut c = sampler.constraint().unwrap().clone();
                    c.is_accepting()
                },
                "end of generation before the grammar accepts: {:?}",
                tok.decode(&out)
            );
            return Output {
                text: tok.decode(&out),
                ended: true,
            };
        }
        sampler.accept(next);
        out.push(next);
        ctx.decode(&[next]).unwrap();
    }
    Output {
        text: tok.decode(&out),
        ended: false,
    }
}

fn chat_prompt(model: &Model, user: &str) -> Vec<u32> {
    let template = ChatTemplate::from_model(model).unwrap();
    let mut conv = Conversation::new();
    conv.push("user", user);
    let text = template.render(&conv).unwrap();
    model.tokenizer().encode(&text, true, true)
}

const PERSON_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 24},
    "age": {"type": "integer", "minimum": 18, "maximum": 99},
    "role": {"enum": ["engineer", "designer", "manager"]},
    "skills": {
      "type": "array",
      "items": {"type": "string", "maxLength": 16},
      "minItems": 1,
      "maxItems": 3
    },
    "remote": {"type": "boolean"}
  },
  "required": ["name", "age", "role", "skills", "remote"],
  "additionalProperties": false
}"#;

/// Checks `v` against [`PERSON_SCHEMA`] by hand (each rule the schema states); `Err` names
/// the first violation.
fn check_person(v: &Json) -> Result<(), String> {
    let o = v.as_object().ok_or("not an object")?;
    for key in o.keys() {
        if !["name", "age", "role", "skills", "remote"].contains(&key.as_str()) {
            return Err(format!("additional property {key:?}"));
        }
    }
    let name = o.get("name").and_then(Json::as_str).ok_or("name")?;
    let chars = name.chars().count();
    if !(1..=24).contains(&chars) {
        return Err(format!("name of {chars} characters"));
    }
    let age = o.get("age").and_then(Json::as_i64).ok_or("age")?;
    if !(18..=99).contains(&age) {
        return Err(format!("age {age}"));
    }
    let role = o.get("role").and_then(Json::as_str).ok_or("role")?;
    if !["engineer", "designer", "manager"].contains(&role) {
        return Err(format!("role {role:?}"));
    }
    let skills = o.get("skills").and_then(Json::as_array).ok_or("skills")?;
    if !(1..=3).contains(&skills.len()) {
        return Err(format!("{} skills", skills.len()));
    }
    for s in skills {
        let s = s.as_str().ok_or("a skill is not a string")?;
        if s.chars().count() > 16 {
            return Err(format!("skill {s:?} is longer than 16"));
        }
    }
    o.get("remote").and_then(Json::as_bool).ok_or("remote")?;
    Ok(())
}

/// Qwen2.5 at temperature 0.9 (top-k 40, top-p 0.95, min-p 0.05), twelve seeds: every output
/// is complete, parses, and satisfies the schema. Left free, the same prompt and seeds give
/// prose around the JSON (checked below for the first seed), so the constraint is what makes
/// the output parse.
#[test]
fn qwen_json_schema_output_is_valid_for_every_seed() {
    let Some(path) = common::model(common::QWEN2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let prompt = chat_prompt(
        &model,
        "Describe a fictional employee of a small software company as JSON.",
    );
    for seed in 0..12u64 {
        let params = SamplerParams {
            temperature: 0.9,
            seed,
            ..Default::default()
        };
        let out = generate(
            &model,
            &prompt,
            ConstraintKind::JsonSchema,
            PERSON_SCHEMA,
            params,
            200,
        );
        assert!(
            out.ended,
            "seed {seed}: not finished in 200 tokens: {:?}",
            out.text
        );
        let v: Json = serde_json::from_str(&out.text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {:?}", out.text));
        if let Err(why) = check_person(&v) {
            panic!("seed {seed}: {why}: {}", out.text);
        }
        eprintln!("seed {seed}: {}", out.text);
    }
    // The same prompt without the constraint, seed 0.
    let mut sampler = Sampler::new(
        model.hparams().n_vocab,
        SamplerParams {
            temperature: 0.9,
            seed: 0,
            ..Default::default()
        },
    );
    let mut ctx = Context::new(&model, ContextParams::default()).unwrap();
    ctx.decode(&prompt).unwrap();
    let mut free = Vec::new();
    for _ in 0..200 {
        let next = sampler.sample(ctx.logits());
        if model.tokenizer().is_eog(next) {
            break;
        }
        free.push(next);
        ctx.decode(&[next]).unwrap();
    }
    let free = model.tokenizer().decode(&free);
    eprintln!("unconstrained, seed 0: {free}");
    let valid = serde_json::from_str::<Json>(&free).is_ok_and(|v| check_person(&v).is_ok());
    assert!(
        !valid,
        "left free, the model already gave valid output: {free}"
    );
}

/// SmolLM2 under a Lark date grammar: the whole output is one date of the grammar.
#[test]
fn smollm2_lark_date_grammar_constrains_exactly() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let grammar = r#"
start: year "-" month "-" day
year: /(19|20)[0-9][0-9]/
month: /0[1-9]|1[0-2]/
day: /0[1-9]|[12][0-9]|3[01]/
"#;
    let prompt = model
        .tokenizer()
        .encode("The first person walked on the Moon on ", true, false);
    for (seed, temperature) in [(0, 0.0), (1, 0.9), (2, 0.9), (3, 1.5), (4, 1.5)] {
        let params = SamplerParams {
            temperature,
            seed,
            ..Default::default()
        };
        let out = generate(&model, &prompt, ConstraintKind::Lark, grammar, params, 40);
        assert!(out.ended, "seed {seed}: not finished: {:?}", out.text);
        let parts: Vec<&str> = out.text.split('-').collect();
        let ok = parts.len() == 3
            && parts[0].len() == 4
            && (parts[0].starts_with("19") || parts[0].starts_with("20"))
            && parts[0].bytes().all(|b| b.is_ascii_digit())
            && parts[1].len() == 2
            && (1..=12).contains(&parts[1].parse::<u32>().unwrap_or(0))
            && parts[2].len() == 2
            && (1..=31).contains(&parts[2].parse::<u32>().unwrap_or(0));
        assert!(
            ok,
            "seed {seed}, T={temperature}: {:?} is not a date",
            out.text
        );
        eprintln!("seed {seed}, T={temperature}: {}", out.text);
    }
}

/// SmolLM2 under a regex: a time of day in `HH:MM` form followed by ` am` or ` pm`.
#[test]
fn smollm2_regex_constrains_exactly() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let regex = r"(0[1-9]|1[0-2]):[0-5][0-9] (am|pm)";
    let prompt = model
        .tokenizer()
        .encode("The train to London leaves at ", true, false);
    for (seed, temperature) in [(0, 0.0), (1, 0.9), (2, 0.9), (3, 1.5)] {
        let params = SamplerParams {
            temperature,
            seed,
            ..Default::default()
        };
        let out = generate(&model, &prompt, ConstraintKind::Regex, regex, params, 40);
        assert!(out.ended, "seed {seed}: not finished: {:?}", out.text);
        let b = out.text.as_bytes();
        let hour: u32 = out.text.get(..2).and_then(|h| h.parse().ok()).unwrap_or(0);
        let ok = b.len() == 8
            && (1..=12).contains(&hour)
            && b[2] == b':'
            && (b'0'..=b'5').contains(&b[3])
            && b[4].is_ascii_digit()
            && (&b[5..] == b" am" || &b[5..] == b" pm");
        assert!(
            ok,
            "seed {seed}, T={temperature}: {:?} does not match",
            out.text
        );
    }
}

/// The end-of-generation tokens are allowed exactly when the grammar accepts the output so
/// far, and once nothing can follow they are all that is allowed.
#[test]
fn end_of_generation_is_allowed_exactly_when_the_grammar_accepts() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let tok = model.tokenizer();
    let eog = tok.eog_tokens().to_vec();
    assert!(!eog.is_empty());
    let vocab = model.constraint_vocab().unwrap();
    let mut c = vocab.compile(ConstraintKind::Regex, "[0-9]{2,3}").unwrap();
    // SmolLM2 has one token per digit.
    let digit = |d: &str| tok.token_id(d).unwrap();
    for (consumed, accepting) in [(0, false), (1, false), (2, true), (3, true)] {
        let mask = c.allowed().unwrap();
        for &e in &eog {
            assert_eq!(mask.allows(e), accepting, "after {consumed} digits");
        }
        assert_eq!(
            mask.allows(digit("7")),
            consumed < 3,
            "after {consumed} digits"
        );
        assert!(!mask.allows(tok.token_id("a").unwrap()));
        if consumed == 3 {
            assert!(c.is_finished());
            assert_eq!(
                mask.count(),
                eog.len(),
                "only end of generation after 3 digits"
            );
        } else {
            c.advance(digit("7")).unwrap();
        }
    }
    // A token the grammar does not allow is an error, not a silent acceptance.
    let mut c = vocab.compile(ConstraintKind::Regex, "[0-9]{2,3}").unwrap();
    assert!(matches!(
        c.advance(tok.token_id("a").unwrap()),
        Err(ConstraintError::Parse(_))
    ));
    // A sampler that accepted such a token reports it at the next draw.
    let mut s = Sampler::new(model.hparams().n_vocab, SamplerParams::default());
    s.set_constraint(Some(
        vocab.compile(ConstraintKind::Regex, "[0-9]+").unwrap(),
    ));
    s.accept(tok.token_id("a").unwrap());
    let logits = vec![0.0f32; model.hparams().n_vocab];
    assert!(s.try_sample(&logits).is_err());
    // reset() forgets it and starts the grammar over.
    s.reset();
    let t = s.try_sample(&logits).unwrap();
    assert!(tok.decode(&[t]).bytes().all(|b| b.is_ascii_digit()));
}

/// Bad inputs are refused when compiled, with llguidance's reason, never a panic.
#[test]
fn bad_schemas_grammars_and_regexes_are_refused_with_a_reason() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let vocab = model.constraint_vocab().unwrap();
    let cases = [
        (ConstraintKind::JsonSchema, "{\"type\": ", "not JSON"),
        (
            ConstraintKind::JsonSchema,
            r#"{"type": "integer", "minimum": 5, "maximum": 2}"#,
            "",
        ),
        (ConstraintKind::JsonSchema, r#"{"type": "wrong"}"#, ""),
        (ConstraintKind::JsonSchema, r##"{"$ref": "#/nowhere"}"##, ""),
        (ConstraintKind::Lark, "start: foo", "foo"),
        (ConstraintKind::Lark, "start: ( \"a\"", ""),
        (ConstraintKind::Lark, "", ""),
        (ConstraintKind::Regex, "(ab", ""),
        (ConstraintKind::Regex, "[z-a]", ""),
    ];
    for (kind, text, needle) in cases {
        match vocab.compile(kind, text) {
            Ok(_) => panic!("{kind:?} {text:?} was accepted"),
            Err(e @ ConstraintError::Invalid { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with("invalid "), "{msg}");
                assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
                assert!(msg.len() < 2000, "an unreadably long message: {msg}");
                eprintln!("{kind:?} {text:?}: {msg}");
            }
            Err(e) => panic!("{kind:?} {text:?}: wrong error kind {e:?}"),
        }
    }
}

const TOOLS: &str = r#"[
  {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
      "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "description": "Add two integers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
      "required": ["a", "b"], "additionalProperties": false}}}
]"#;

/// Qwen2.5 offered two tools: at temperature 0.9, over eight seeds, every reply that is a
/// call (bare, fenced or tagged) names a real tool with arguments valid under its schema.
#[test]
fn qwen_tool_calls_follow_the_tools_schemas() {
    let Some(path) = common::model(common::QWEN2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let grammar = eddy::constraint::tool_call_grammar(TOOLS).unwrap();
    let template = ChatTemplate::from_model(&model).unwrap();
    let mut conv = Conversation::new();
    conv.set_tools_json(TOOLS).unwrap();
    conv.push("user", "What is 17 plus 25? Use a tool.");
    let prompt = model
        .tokenizer()
        .encode(&template.render(&conv).unwrap(), true, true);
    let mut calls = 0;
    for seed in 0..8u64 {
        let params = SamplerParams {
            temperature: 0.9,
            seed,
            ..Default::default()
        };
        let out = generate(&model, &prompt, ConstraintKind::Lark, &grammar, params, 120);
        assert!(out.ended, "seed {seed}: {:?}", out.text);
        let body = out.text.trim();
        let unwrap = |open: &str, close: &str| {
            body.strip_prefix(open)
                .and_then(|b| b.trim_end().strip_suffix(close))
        };
        let body = unwrap("<tool_call>", "</tool_call>")
            .or_else(|| unwrap("```json", "```"))
            .unwrap_or(body)
            .trim();
        if !body.starts_with('{') {
            eprintln!("seed {seed}: free text: {}", out.text);
            continue;
        }
        let v: Json =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("seed {seed}: {e}: {body}"));
        let args = v["arguments"].as_object().unwrap();
        match v["name"].as_str().unwrap() {
            "add" => {
                assert_eq!(args.len(), 2, "{v}");
                assert!(args["a"].is_i64() && args["b"].is_i64(), "{v}");
            }
            "get_weather" => {
                assert!(args["city"].is_string(), "{v}");
                assert!(
                    ["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()),
                    "{v}"
                );
            }
            other => panic!("seed {seed}: a call to {other:?}"),
        }
        calls += 1;
        eprintln!("seed {seed}: {body}");
    }
    // Asked to use a tool, the model calls one in every reply we have seen; allow some free text.
    assert!(calls >= 6, "only {calls} of 8 replies called a tool");
}

/// The tools grammar leaves free text free, ends it with end-of-generation, and makes a reply
/// that opens a JSON object a call to a listed tool.
#[test]
fn the_tools_grammar_keeps_free_text_and_constrains_calls() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let tok = model.tokenizer();
    let vocab = model.constraint_vocab().unwrap();
    let grammar = eddy::constraint::tool_call_grammar(TOOLS).unwrap();
    let eog = tok.eog_tokens()[0];

    let mut c = vocab.compile(ConstraintKind::Lark, &grammar).unwrap();
    for t in tok.encode("Sure, it is sunny today.", false, false) {
        assert!(c.allowed().unwrap().allows(t));
        c.advance(t).unwrap();
    }
    assert!(c.allowed().unwrap().allows(eog), "free text can end");

    let mut c = vocab.compile(ConstraintKind::Lark, &grammar).unwrap();
    let call = tok.encode(
        "{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}",
        false,
        false,
    );
    for &t in &call {
        assert!(c.allowed().unwrap().allows(t), "{:?}", tok.decode(&[t]));
        c.advance(t).unwrap();
    }
    assert!(c.allowed().unwrap().allows(eog));

    // After "{": only a key of the call object; a tool that does not exist is refused.
    let refused = |text: &str| {
        let mut c = vocab.compile(ConstraintKind::Lark, &grammar).unwrap();
        for t in tok.encode(text, false, false) {
            if !c.allowed().unwrap().allows(t) {
                return true;
            }
            c.advance(t).unwrap();
        }
        false
    };
    assert!(refused("{\"foo\": 1}"));
    assert!(refused("{\"name\": \"joke\""));
    assert!(refused(
        "{\"name\": \"add\", \"arguments\": {\"a\": \"one\""
    ));
    assert!(refused("Text first <tool_call>{\"name\": \"nope\""));
    assert!(!refused(
        "Text first <tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"
    ));
}

#[test]
fn bad_tool_lists_are_refused() {
    use eddy::constraint::tool_call_grammar;
    for (tools, needle) in [
        ("{", "not JSON"),
        ("{}", "not a JSON array"),
        ("[]", "empty"),
        (
            r#"[{"type": "function", "function": {"parameters": {}}}]"#,
            "tool 0 has no",
        ),
    ] {
        let e = tool_call_grammar(tools).unwrap_err().to_string();
        assert!(e.contains(needle), "{tools}: {e}");
    }
}
