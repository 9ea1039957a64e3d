//! Chat templates against the reference renderings of `testdata/golden/chat_templates.jsonl`
//! (Hugging Face transformers for SmolLM2 and Qwen2.5 with each model's own
//! `tokenizer.chat_template`; llama.cpp's built-in `gemma` format for Gemma 3, whose file has
//! no template): every rendering must be equal byte for byte. Then hostile templates: each
//! must end in a typed error, never a panic or a hang.

mod common;

use eddy::Model;
use eddy::chat::{BuiltinFormat, ChatError, ChatTemplate, Conversation};
use serde_json::Value;

fn model_file(name: &str) -> &'static str {
    match name {
        "smollm2" => common::SMOLLM2,
        "gemma3" => common::GEMMA3,
        "qwen2" => common::QWEN2,
        other => panic!("unknown model {other} in chat_templates.jsonl"),
    }
}

fn load(name: &str) -> Option<Model> {
    let path = common::model(model_file(name))?;
    Some(Model::load(path).expect("model loads"))
}

#[test]
fn every_golden_rendering_is_equal() {
    let text = std::fs::read_to_string(common::golden("chat_templates.jsonl"))
        .expect("testdata/golden/chat_templates.jsonl");
    let mut checked = 0;
    let mut models: Vec<(String, Model, ChatTemplate)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["model"].as_str().unwrap().to_string();
        if !models.iter().any(|(n, _, _)| *n == name) {
            let Some(model) = load(&name) else { return };
            let tmpl = ChatTemplate::from_model(&model).expect("template");
            models.push((name.clone(), model, tmpl));
        }
        let (_, _, tmpl) = models.iter().find(|(n, _, _)| *n == name).unwrap();
        // The case line is itself a conversation file (messages, tools, add_generation_prompt).
        let conv = Conversation::from_json(line).expect("conversation");
        let got = tmpl.render(&conv).expect("render");
        let want = case["rendered"].as_str().unwrap();
        assert_eq!(
            got,
            want,
            "{name} / {}: rendering differs",
            case["name"].as_str().unwrap()
        );
        checked += 1;
    }
    eprintln!("chat_templates: {checked} renderings equal");
    assert_eq!(checked, 11);
}

#[test]
fn formats_are_chosen_from_the_file() {
    let Some(gemma) = load("gemma3") else { return };
    let t = ChatTemplate::from_model(&gemma).unwrap();
    assert_eq!(t.builtin_format(), Some(BuiltinFormat::Gemma));
    assert_eq!(t.end_of_turn_markers(), ["<end_of_turn>"]);
    let Some(qwen) = load("qwen2") else { return };
    let t = ChatTemplate::from_model(&qwen).unwrap();
    assert_eq!(t.builtin_format(), None, "Qwen2.5 has its own template");
    assert_eq!(t.end_of_turn_markers(), ["<|im_end|>"]);
}

#[test]
fn hostile_templates_are_errors() {
    let Some(model) = load("smollm2") else { return };
    let mut conv = Conversation::new();
    conv.push("user", "hi");
    let render = |src: &str| ChatTemplate::from_source(&model, src).and_then(|t| t.render(&conv));
    let cases: &[(&str, &str)] = &[
        ("{% for m in messages %}", "syntax"),
        ("{{ raise_exception('no system role') }}", "no system role"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "fuel",
        ),
        (
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "recursion",
        ),
        ("{{ 'x' * 100000000 }}", "exceeds"),
        (
            "{% set s = namespace(t='y' * 100000) %}{% for i in range(1000) %}{{ s.t }}{% endfor %}",
            "exceeds",
        ),
        ("{{ messages[0].content.nosuchmethod() }}", "nosuchmethod"),
        ("{{ messages | tojson(indent='x', bogus=1) }}", "bogus"),
        (&"{{ (".repeat(500), "syntax"),
        // A namespace holding itself: printing it would recurse until the stack overflows.
        (
            "{% set ns = namespace(x=0) %}{% set ns.x = ns %}{{ ns }}",
            "cannot hold another namespace",
        ),
        // A list nested 100 000 deep: dropping it would overflow the stack.
        (
            "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}ok",
            "nested deeper than 64",
        ),
        // A large value stored over and over: the checks are bounded too.
        (
            "{% set big = range(10000)|list %}{% set ns = namespace() %}\
             {% for i in range(10000) %}{% set ns.x = [big] %}{% endfor %}",
            "more than 4000000 items",
        ),
        (
            "{% for m in messages %}{{ loop.changed(m) }}{% endfor %}",
            "changed",
        ),
    ];
    for (src, what) in cases {
        let start = std::time::Instant::now();
        match render(src) {
            Err(ChatError::Template(msg)) => {
                let lower = msg.to_lowercase();
                assert!(
                    lower.contains(what),
                    "{src:.40}: message {msg:?} should mention {what}"
                );
                eprintln!(
                    "{what:>12}: {:.3} s: {msg:.120}",
                    start.elapsed().as_secs_f64()
                );
            }
            other => panic!("{src:.60}: expected a template error, got {other:?}"),
        }
    }
}

#[test]
fn python_string_methods_and_loop_controls_work() {
    let Some(model) = load("smollm2") else { return };
    let mut conv = Conversation::new();
    conv.push("system", "  Be brief.  ");
    conv.push("user", "a,b,c");
    let src = "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}\
               {{ m.content.split(',') | join('|') }}{% if m.content.startswith('a') %}!{% endif %}\
               {% endfor %}[{{ messages[0].content.strip() }}]{{ bos_token }}{{ eos_token }}";
    let out = ChatTemplate::from_source(&model, src)
        .unwrap()
        .render(&conv)
        .unwrap();
    assert_eq!(out, "a|b|c![Be brief.]<|im_start|><|im_end|>");
}

/// Every form of namespace assignment still works once guarded (see `chat/guard.rs`).
#[test]
fn namespace_assignments_work() {
    let Some(model) = load("smollm2") else { return };
    let mut conv = Conversation::new();
    conv.push("user", "a");
    conv.push("assistant", "b");
    let src = "{% set ns = namespace(n=0, seen=[], t='') %}\
               {% for m in messages %}{% set ns.n = ns.n + 1 -%}\
               {%- set ns.seen = ns.seen + [m.content] %}{% endfor %}\
               {% set ns.a, ns.b = 'x', ns.n * 10 %}\
               {% set ns.t %}[{{ ns.a }}]{% endset %}\
               {% set ns.u | upper %}{{ ns.seen | join(',') }}{% endset %}\
               {{ ns.n }} {{ ns.seen }} {{ ns.b }} {{ ns.t }} {{ ns.u }} \
               {{ '{% set ns.n = ns %}' }}{# {% set ns.n = ns %} #}";
    let out = ChatTemplate::from_source(&model, src)
        .unwrap()
        .render(&conv)
        .unwrap();
    assert_eq!(out, "2 [\"a\", \"b\"] 20 [x] A,B {% set ns.n = ns %}");
}

#[test]
fn bad_conversations_are_errors() {
    for bad in [
        "",
        "42",
        "{\"messages\": 3}",
        "[{\"content\": \"no role\"}]",
        "{\"messages\": [], \"tools\": {}}",
        "{\"messages\": [], \"add_generation_prompt\": \"yes\"}",
    ] {
        match Conversation::from_json(bad) {
            Err(ChatError::Conversation(_)) => {}
            other => panic!("{bad:?}: expected a conversation error, got {other:?}"),
        }
    }
}

#[test]
fn long_conversations_stay_within_fuel() {
    let Some(model) = load("qwen2") else { return };
    let tmpl = ChatTemplate::from_model(&model).unwrap();
    let mut conv = Conversation::new();
    conv.set_tools_json(
        r#"[{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]"#,
    )
    .unwrap();
    for i in 0..500 {
        conv.push("user", &format!("question {i}"));
        conv.push("assistant", &format!("answer {i}"));
    }
    let start = std::time::Instant::now();
    let text = tmpl
        .render(&conv)
        .expect("1000 messages render within the fuel");
    eprintln!(
        "1000 messages: {} bytes in {:.3} s",
        text.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(text.contains("answer 499<|im_end|>"));
}
