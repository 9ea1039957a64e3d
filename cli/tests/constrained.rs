//! `--json-schema`, `--grammar` and `--regex` on `eddy generate` and `eddy chat`: the output
//! follows the constraint, bad inputs are refused before decoding with the flag named, and an
//! output cut short by `-n` is reported as incomplete.

mod common;

use std::process::Output;

use common::smollm2;
use serde_json::Value as Json;

fn eddy(args: &[&str], stdin: &str) -> Output {
    common::eddy_with_stdin(args, stdin)
}

fn ok_json(out: &Output) -> Json {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A file in this process's scratch directory, removed (and the directory, once empty) when
/// dropped.
struct TempFile(std::path::PathBuf);

impl std::ops::Deref for TempFile {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            // Fails while another test's file is still there; that test removes it.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn temp_file(name: &str, text: &str) -> TempFile {
    let dir = std::env::temp_dir().join(format!("eddy-constrained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    TempFile(path)
}

#[test]
fn generate_follows_a_regex_and_a_grammar() {
    let Some(m) = smollm2() else { return };
    let j = ok_json(&eddy(
        &[
            "generate",
            "-m",
            &m,
            "-p",
            "The train leaves at ",
            "--regex",
            "(0[1-9]|1[0-2]):[0-5][0-9] (am|pm)",
            "--temp",
            "1.2",
            "-n",
            "30",
            "--json",
        ],
        "",
    ));
    let text = j["text"].as_str().unwrap();
    assert_eq!(text.len(), 8, "{text:?}");
    assert!(text.ends_with(" am") || text.ends_with(" pm"), "{text:?}");
    assert_eq!(j["constraint_complete"], true);

    let grammar = temp_file(
        "yesno.lark",
        "start: answer \".\"\nanswer: \"Yes\" | \"No\"\n",
    );
    let j = ok_json(&eddy(
        &[
            "generate",
            "-m",
            &m,
            "-p",
            "Is the sky blue? Answer:",
            "--grammar",
            grammar.to_str().unwrap(),
            "--json",
        ],
        "",
    ));
    let text = j["text"].as_str().unwrap();
    assert!(text == "Yes." || text == "No.", "{text:?}");
}

#[test]
fn generate_reads_a_json_schema_from_stdin() {
    let Some(m) = smollm2() else { return };
    let schema = r#"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}},
                    "required": ["n"], "additionalProperties": false}"#;
    let j = ok_json(&eddy(
        &[
            "generate",
            "-m",
            &m,
            "-p",
            "A JSON object with a number:",
            "--json-schema",
            "-",
            "--temp",
            "0.9",
            "-n",
            "40",
            "--json",
        ],
        schema,
    ));
    let v: Json = serde_json::from_str(j["text"].as_str().unwrap()).unwrap();
    let n = v["n"].as_i64().unwrap();
    assert!((1..=9).contains(&n), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
}

#[test]
fn bad_constraints_are_refused_before_decoding() {
    let Some(m) = smollm2() else { return };
    let bad_schema = temp_file("bad.json", r#"{"type": "nope"}"#);
    let not_json = temp_file("not.json", "{\"type\": ");
    let bad_lark = temp_file("bad.lark", "start: undefined_rule\n");
    let cases: [(&[&str], &str); 5] = [
        (&["--regex", "(ab"], "--regex: invalid regex"),
        (
            &["--json-schema", bad_schema.to_str().unwrap()],
            "--json-schema: invalid json-schema",
        ),
        (&["--json-schema", not_json.to_str().unwrap()], "not JSON"),
        (
            &["--grammar", bad_lark.to_str().unwrap()],
            "--grammar: invalid lark",
        ),
        (&["--grammar", "/nonexistent/g.lark"], "--grammar"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["generate", "-m", &m, "-p", "x"];
        args.extend_from_slice(flags);
        let out = eddy(&args, "");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {err}");
        assert!(err.contains(needle), "{flags:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "{flags:?}: decoded something");
    }
    // Two constraints at once, and a constraint with --ignore-eos.
    let out = eddy(
        &[
            "generate",
            "-m",
            &m,
            "-p",
            "x",
            "--regex",
            "a",
            "--grammar",
            "f",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = eddy(
        &[
            "generate",
            "-m",
            &m,
            "-p",
            "x",
            "--regex",
            "a",
            "--ignore-eos",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ignore-eos"));
}

#[test]
fn an_output_cut_short_is_reported_incomplete() {
    let Some(m) = smollm2() else { return };
    let out = eddy(
        &[
            "generate",
            "-m",
            &m,
            "-p",
            "The year is ",
            "--regex",
            "[0-9]{4}",
            "-n",
            "2",
            "--json",
        ],
        "",
    );
    let j = ok_json(&out);
    assert_eq!(j["constraint_complete"], false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("before the output was complete"));
}

/// In chat, each reply is constrained from the constraint's start.
#[test]
fn chat_constrains_every_reply() {
    let Some(m) = smollm2() else { return };
    let out = eddy(
        &[
            "chat",
            "-m",
            &m,
            "--regex",
            "(Yes|No), [a-z ]{1,30}\\.",
            "--temp",
            "0.9",
            "--json",
        ],
        "Is water wet?\nIs fire cold?\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let turns: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(turns.len(), 2);
    for t in &turns {
        let reply = t["reply"].as_str().unwrap();
        let rest = reply
            .strip_prefix("Yes, ")
            .or_else(|| reply.strip_prefix("No, "))
            .unwrap_or_else(|| panic!("{reply:?}"));
        let body = rest
            .strip_suffix('.')
            .unwrap_or_else(|| panic!("{reply:?}"));
        assert!(
            (1..=30).contains(&body.len())
                && body.bytes().all(|b| b == b' ' || b.is_ascii_lowercase()),
            "{reply:?}"
        );
    }
}

/// `eddy chat --tools` on Qwen2.5: replies that call a tool name a listed tool with arguments
/// valid under its schema, and the JSON output lists them under tool_calls.
#[test]
fn chat_with_tools_constrains_the_calls() {
    let Some(m) = common::model(common::QWEN2) else {
        return;
    };
    let tools = temp_file(
        "tools.json",
        r#"[{"type": "function", "function": {"name": "add", "description": "Add two integers",
             "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                            "required": ["a", "b"], "additionalProperties": false}}}]"#,
    );
    let out = eddy(
        &[
            "chat",
            "-m",
            &m,
            "--tools",
            tools.to_str().unwrap(),
            "--temp",
            "0.9",
            "--json",
            "-t",
            "2",
        ],
        "What is 17 plus 25?\nAnd 100 plus 1?\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let turns: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(turns.len(), 2);
    for t in &turns {
        let calls = t["tool_calls"]
            .as_array()
            .unwrap_or_else(|| panic!("no call: {t}"));
        for c in calls {
            assert_eq!(c["name"], "add", "{t}");
            let args = c["arguments"].as_object().unwrap();
            assert!(
                args.len() == 2 && args["a"].is_i64() && args["b"].is_i64(),
                "{t}"
            );
        }
    }
    // --constrain-tools false leaves the reply free.
    let out = eddy(
        &[
            "chat",
            "-m",
            &m,
            "--tools",
            tools.to_str().unwrap(),
            "--constrain-tools",
            "false",
            "--json",
        ],
        "Hi\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
