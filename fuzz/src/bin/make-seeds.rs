//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` (or the directory
//! given as the only argument). Seeds are generated, never committed.
//!
//! - `gguf_model`: each tiny synthetic model (checked to load and decode first), the headers of
//!   the real models with their arrays cut to 32 items and no tensor data, and their first
//!   64 KiB as they are;
//! - `tokenizer`: text samples (ASCII, Unicode, chat markup, code, a Shakespeare excerpt,
//!   invalid UTF-8) for each model and a few flag combinations, and id sequences;
//! - `state_load`: real saved states of the tiny model after 0 to 13 tokens, for each geometry,
//!   through both APIs;
//! - `constraint`: JSON schemas, Lark grammars, regexes and tool lists, valid and broken.
//!
//! Needs the real models (`scripts/fetch-models.sh smollm2 gemma3 qwen2`).

use std::fs;
use std::path::{Path, PathBuf};

use eddy::gguf::Gguf;
use eddy::{Context, Model};
use eddy_fuzz::{
    REAL_MODELS, TINY, build, exercise_model, fix_state_checksum, header_skeleton, repo_root,
    state_model_bytes, state_params,
};

/// Most bytes of a real file's head kept as a seed (the gguf_model target's -max_len).
const HEAD_BYTES: usize = 64 << 10;

const TEXTS: &[(&str, &str)] = &[
    ("empty", ""),
    ("hello", "Hello, world!"),
    (
        "spaces",
        "  leading and   inner spaces\t\ttabs\n\nnewlines \r\n",
    ),
    (
        "chatml",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        "gemma_turn",
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    ),
    (
        "specials",
        "<s></s><unk><|endoftext|><|im_end|><pad><bos><eos><|fim_prefix|><|fim_suffix|><|fim_middle|>",
    ),
    (
        "unicode",
        "naïve café — 日本語のテキスト, 한국어, Ελληνικά, עברית, العربية, 😀👍🏽👨‍👩‍👧 \u{200d}\u{feff}",
    ),
    (
        "numbers",
        "3.14159 1,000,000 0x7fff 1e-9 2025-01-31 12:34:56",
    ),
    (
        "code",
        "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{v:?}\");\n}\n",
    ),
    (
        "contractions",
        "I'm sure they've said it's John's, isn't it? We'll see, you'd know. ' quote ' .",
    ),
    (
        "repeat",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ),
    (
        "controls",
        "\u{0}\u{1}\u{7f}\u{80}\u{85}\u{a0}\u{2028}\u{fffd}",
    ),
];

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("fuzz/corpus"));
    let n = gguf_seeds(&out.join("gguf_model"));
    eprintln!("make-seeds: {n} gguf_model seeds");
    let n = tokenizer_seeds(&out.join("tokenizer"));
    eprintln!("make-seeds: {n} tokenizer seeds");
    let n = state_seeds(&out.join("state_load"));
    eprintln!("make-seeds: {n} state_load seeds");
    let n = chat_template_seeds(&out.join("chat_template"));
    eprintln!("make-seeds: {n} chat_template seeds");
    let n = constraint_seeds(&out.join("constraint"));
    eprintln!("make-seeds: {n} constraint seeds");
}

/// JSON schemas, Lark grammars, regexes and tool lists (the kinds of the README and the tests,
/// and broken ones), each for both vocabularies.
fn constraint_seeds(dir: &Path) -> usize {
    let texts: [(u8, &str); 14] = [
        (0, r#"{"type": "object", "properties": {"name": {"type": "string", "maxLength": 24}, "age": {"type": "integer", "minimum": 18, "maximum": 99}, "role": {"enum": ["engineer", "designer"]}, "skills": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3}, "remote": {"type": "boolean"}}, "required": ["name", "age"], "additionalProperties": false}"#),
        (0, r##"{"$defs": {"n": {"type": "number"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}"##),
        (0, r#"{"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "null"}]}"#),
        (0, r#"{"type": "integer", "minimum": 5, "maximum": 2}"#),
        (0, r#"{"type": "#),
        (1, "start: year \"-\" month \"-\" day\nyear: /(19|20)[0-9][0-9]/\nmonth: /0[1-9]|1[0-2]/\nday: /0[1-9]|[12][0-9]|3[01]/\n"),
        (1, "start: \"Yes\" | \"No\"\n"),
        (1, "start: item+\nitem: %json {\"type\": \"integer\"} \",\"\n"),
        (1, "start: TEXT\nTEXT: /(?s:.*)/ & ~/(?s:.*ab.*)/\n"),
        (1, "start: undefined_rule\n"),
        (2, "(0[1-9]|1[0-2]):[0-5][0-9] (am|pm)"),
        (2, "[0-9]{2,3}"),
        (2, "(ab"),
        (3, r#"[{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]"#),
    ];
    let mut n = 0;
    for (i, (kind, text)) in texts.iter().enumerate() {
        for model in 0..2u8 {
            let mut bytes = vec![kind | model << 2];
            bytes.extend_from_slice(text.as_bytes());
            write(dir, &format!("k{kind}-{i}-m{model}"), &bytes);
            n += 1;
        }
    }
    n
}

/// The real models' templates (`tokenizer.chat_template`, where the file has one) and
/// hand-written ones, each followed by a NUL and a conversation of the golden file.
fn chat_template_seeds(dir: &Path) -> usize {
    let golden = fs::read_to_string(repo_root().join("testdata/golden/chat_templates.jsonl"))
        .expect("testdata/golden/chat_templates.jsonl");
    let conversations: Vec<&str> = golden.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut templates: Vec<String> = REAL_MODELS
        .iter()
        .filter_map(|m| {
            let g = Gguf::open(m.path()).ok()?;
            g.get_str("tokenizer.chat_template").map(str::to_string)
        })
        .collect();
    templates.extend(
        [
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}{% endfor %}",
            "{{ bos_token }}{% for m in messages %}{{ m | tojson(indent=2) }}{% endfor %}",
            "{% if tools %}{{ tools | tojson }}{% endif %}{{ messages[-1].content.split(' ') }}",
            "{% set ns = namespace(x=0) %}{% for m in messages %}{% set ns.x = ns.x + 1 %}{% if loop.last %}{{ ns.x }}{% break %}{% endif %}{% endfor %}",
            "{{ raise_exception('roles must alternate') }}",
            "{{ strftime_now('%d %b %Y') }}",
        ]
        .map(str::to_string),
    );
    let mut n = 0;
    for (i, t) in templates.iter().enumerate() {
        for (j, c) in conversations.iter().enumerate().step_by(3) {
            let mut bytes = t.as_bytes().to_vec();
            bytes.push(0);
            bytes.extend_from_slice(c.as_bytes());
            write(dir, &format!("t{i}-c{j}"), &bytes);
            n += 1;
        }
    }
    n
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(format!("seed-{name}"));
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn gguf_seeds(dir: &Path) -> usize {
    let mut n = 0;
    for spec in TINY {
        let bytes = build(spec);
        assert!(
            bytes.len() <= HEAD_BYTES,
            "{} is {} bytes",
            spec.name,
            bytes.len()
        );
        let model = Model::from_vec(bytes.clone())
            .unwrap_or_else(|e| panic!("tiny model {} does not load: {e}", spec.name));
        exercise_model(&model);
        write(dir, &format!("tiny-{}.gguf", spec.name), &bytes);
        n += 1;
    }
    for m in REAL_MODELS {
        let path = m.path();
        let g = Gguf::open(&path).unwrap_or_else(|e| {
            panic!(
                "{} ({e}); run scripts/fetch-models.sh {}",
                path.display(),
                m.name
            )
        });
        let skeleton = header_skeleton(&g, 32);
        assert!(
            Gguf::from_vec(skeleton.clone()).is_err(),
            "a header without data parsed"
        );
        write(dir, &format!("header-{}.gguf", m.name), &skeleton);
        let head = &g.bytes()[..HEAD_BYTES.min(g.bytes().len())];
        write(dir, &format!("head64k-{}.gguf", m.name), head);
        n += 2;
    }
    n
}

fn tokenizer_seeds(dir: &Path) -> usize {
    let mut texts: Vec<(String, Vec<u8>)> = TEXTS
        .iter()
        .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
        .collect();
    texts.push((
        "invalid_utf8".into(),
        b"ok \xff\xfe \xc3( \xe2\x82 \xf0\x9f\x98".to_vec(),
    ));
    // 2 KiB from inside the play (past the Gutenberg preamble), if the texts were fetched.
    if let Ok(s) = fs::read_to_string(repo_root().join("models/texts/hamlet_gut.txt")) {
        let at = |n: usize| {
            s.char_indices()
                .map(|(i, _)| i)
                .find(|&i| i >= n)
                .unwrap_or(s.len())
        };
        texts.push((
            "hamlet".into(),
            s.as_bytes()[at(20_000)..at(22_048)].to_vec(),
        ));
    }
    let mut n = 0;
    for (mi, m) in REAL_MODELS.iter().enumerate() {
        let model = m.load();
        for (name, text) in &texts {
            // Plain text; with special tokens parsed and added, a tight buffer and all flags.
            for (tag, flags, cap) in [("plain", 0u8, 255u8), ("special", 4 | 8 | 16 | 32, 3)] {
                let mut seed = vec![mi as u8 | flags, cap];
                seed.extend_from_slice(text);
                write(dir, &format!("{}-{name}-{tag}", m.name), &seed);
                n += 1;
            }
            // The text's ids, as the id half of the input reads them.
            if let Ok(s) = std::str::from_utf8(text) {
                let ids = model.tokenizer().encode(s, true, true);
                let mut seed = vec![mi as u8 | 32, 64];
                seed.extend(ids.iter().flat_map(|id| id.to_le_bytes()));
                write(dir, &format!("{}-{name}-ids", m.name), &seed);
                n += 1;
            }
        }
    }
    n
}

fn state_seeds(dir: &Path) -> usize {
    let model = Model::from_vec(state_model_bytes()).expect("the state model loads");
    let mut n = 0;
    for selector in 0..3u8 {
        for n_tokens in [0usize, 1, 2, 5, 8, 13] {
            let mut ctx = Context::new(&model, state_params(selector)).expect("context");
            let n_vocab = model.hparams().n_vocab as u32;
            let ids: Vec<u32> = (0..n_tokens as u32)
                .map(|i| (i * 7 + 3) % n_vocab)
                .collect();
            for batch in ids.chunks(3) {
                ctx.decode(batch).expect("decode");
            }
            let mut state = vec![0u8; ctx.state_size()];
            ctx.save_state(&mut state).expect("save");
            let mut fixed = state.clone();
            fix_state_checksum(&mut fixed);
            assert_eq!(
                fixed, state,
                "fix_state_checksum disagrees with the runtime's checksum"
            );
            // Bit 3: the C ABI; bit 2: the target rewrites the checksum after mutating.
            for (api, flag) in [
                ("rust", 0u8),
                ("c", 8),
                ("rust-fixsum", 4),
                ("c-fixsum", 12),
            ] {
                let mut seed = vec![selector | flag];
                seed.extend_from_slice(&state);
                write(dir, &format!("geom{selector}-{n_tokens}tok-{api}"), &seed);
                n += 1;
            }
        }
    }
    n
}
