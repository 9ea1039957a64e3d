//! `eddy inspect MODEL [--json]` (or `-m MODEL`, as the other subcommands take it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use eddy::gguf::{ArrayView, Gguf, Value, file_type_name};
use serde_json::{Map, Value as Json, json};

/// Arrays longer than this are summarised (type, length, first elements).
const ARRAY_PREVIEW: usize = 8;

/// `eddy inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelPath,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// The file, given either way.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct ModelPath {
    /// Path to the .gguf file.
    #[arg(value_name = "MODEL")]
    path: Option<PathBuf>,
    /// Path to the .gguf file (as the other subcommands take it).
    #[arg(short = 'm', long = "model", value_name = "MODEL")]
    model: Option<PathBuf>,
}

pub fn run(a: InspectArgs) -> Result<(), Box<dyn std::error::Error>> {
    let path = a
        .model
        .path
        .as_deref()
        .or(a.model.model.as_deref())
        .ok_or("give the model: eddy inspect MODEL or eddy inspect -m MODEL")?;
    let as_json = a.json;
    let g = Gguf::open(path)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let doc = to_json(path, &g);
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        out.write_all(to_text(path, &g).as_bytes())?;
    }
    Ok(())
}

struct Summary<'a> {
    architecture: Option<&'a str>,
    name: Option<&'a str>,
    file_type: Option<u64>,
    tokenizer: Option<&'a str>,
    tokenizer_pre: Option<&'a str>,
    vocab_size: Option<usize>,
    context_length: Option<u64>,
    /// Tensor count per type name.
    types: BTreeMap<&'static str, usize>,
    tensor_bytes: u64,
}

fn summary(g: &Gguf) -> Summary<'_> {
    let architecture = g.architecture();
    let mut types = BTreeMap::new();
    let mut tensor_bytes = 0u64;
    for t in g.tensors() {
        *types.entry(t.ty.name()).or_insert(0) += 1;
        tensor_bytes += t.data.len() as u64;
    }
    Summary {
        architecture,
        name: g.get_str("general.name"),
        file_type: g.get_u64("general.file_type"),
        tokenizer: g.get_str("tokenizer.ggml.model"),
        tokenizer_pre: g.get_str("tokenizer.ggml.pre"),
        vocab_size: g
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(|a| a.len()),
        context_length: architecture.and_then(|a| g.get_u64(&format!("{a}.context_length"))),
        types,
        tensor_bytes,
    }
}

fn file_type_label(ftype: Option<u64>) -> String {
    match ftype {
        Some(f) => format!("{f} ({})", file_type_name(f).unwrap_or("unknown")),
        None => "-".into(),
    }
}

fn to_text(path: &Path, g: &Gguf) -> String {
    let s = summary(g);
    let mut o = String::new();
    let or = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let _ = writeln!(o, "file:           {}", path.display());
    let _ = writeln!(
        o,
        "format:         GGUF v{}, {} bytes, alignment {}, data at offset {}",
        g.version(),
        g.file_len(),
        g.alignment(),
        g.data_offset()
    );
    let _ = writeln!(o, "architecture:   {}", or(s.architecture));
    let _ = writeln!(o, "name:           {}", or(s.name));
    let params = g.parameter_count();
    let _ = writeln!(o, "parameters:     {params} ({:.2} M)", params as f64 / 1e6);
    let _ = writeln!(o, "file type:      {}", file_type_label(s.file_type));
    let _ = writeln!(
        o,
        "tokenizer:      {} (pre-tokenizer {}), {} tokens",
        or(s.tokenizer),
        or(s.tokenizer_pre),
        s.vocab_size.map_or("-".into(), |n| n.to_string())
    );
    let _ = writeln!(
        o,
        "context length: {}",
        s.context_length.map_or("-".into(), |n| n.to_string())
    );
    let types: Vec<String> = s.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
    let _ = writeln!(
        o,
        "tensors:        {} ({}), {} bytes of data",
        g.tensor_count(),
        types.join(", "),
        s.tensor_bytes
    );

    let _ = writeln!(o, "\nmetadata ({} keys):", g.metadata_len());
    let width = g.metadata().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in g.metadata() {
        let _ = writeln!(
            o,
            "  {key:width$}  {:6}  {}",
            value.value_type().name(),
            value_text(&value)
        );
    }

    let _ = writeln!(o, "\ntensors ({}):", g.tensor_count());
    let width = g.tensors().map(|t| t.name.len()).max().unwrap_or(0);
    let _ = writeln!(
        o,
        "  {:width$}  {:7}  {:>20}  {:>12}  {:>12}",
        "name", "type", "shape", "bytes", "offset"
    );
    for t in g.tensors() {
        let shape: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
        let _ = writeln!(
            o,
            "  {:width$}  {:7}  {:>20}  {:>12}  {:>12}",
            t.name,
            t.ty.name(),
            format!("[{}]", shape.join(", ")),
            t.data.len(),
            t.file_offset
        );
    }
    o
}

fn value_text(v: &Value<'_>) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => {
            let head: Vec<String> = a
                .iter()
                .take(ARRAY_PREVIEW)
                .map(|e| value_text(&e))
                .collect();
            let more = if a.len() > ARRAY_PREVIEW { ", …" } else { "" };
            format!(
                "[{}; {}] [{}{more}]",
                a.elem_type(),
                a.len(),
                head.join(", ")
            )
        }
        other => scalar_json(other).to_string(),
    }
}

fn scalar_json(v: &Value<'_>) -> Json {
    match *v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        // Through the shortest decimal form, so that 1e-5f32 prints as 1e-5 and not as the
        // f64 widening 9.999999747378752e-6.
        Value::F32(x) => x
            .to_string()
            .parse::<f64>()
            .map_or(Json::Null, |f| json!(f)),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Array(a) => array_json(&a),
    }
}

/// `{"type": "array", "element_type", "len", "values": [first elements…], "truncated"}`.
fn array_json(a: &ArrayView<'_>) -> Json {
    let values: Vec<Json> = a
        .iter()
        .take(ARRAY_PREVIEW)
        .map(|e| scalar_json(&e))
        .collect();
    json!({
        "type": "array",
        "element_type": a.elem_type().name(),
        "len": a.len(),
        "values": values,
        "truncated": a.len() > ARRAY_PREVIEW,
    })
}

fn to_json(path: &Path, g: &Gguf) -> Json {
    let s = summary(g);
    let mut metadata = Map::new();
    let mut metadata_types = Map::new();
    for (key, value) in g.metadata() {
        metadata.insert(key.to_owned(), scalar_json(&value));
        metadata_types.insert(key.to_owned(), json!(value.value_type().name()));
    }
    let tensors: Vec<Json> = g
        .tensors()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.name(),
                "shape": t.dims,
                "n_elements": t.n_elements,
                "bytes": t.data.len(),
                "offset": t.offset,
                "file_offset": t.file_offset,
            })
        })
        .collect();
    json!({
        "file": path.display().to_string(),
        "file_size": g.file_len(),
        "version": g.version(),
        "alignment": g.alignment(),
        "data_offset": g.data_offset(),
        "architecture": s.architecture,
        "name": s.name,
        "parameter_count": g.parameter_count(),
        "file_type": s.file_type,
        "file_type_name": s.file_type.and_then(file_type_name),
        "tokenizer_model": s.tokenizer,
        "tokenizer_pre": s.tokenizer_pre,
        "vocab_size": s.vocab_size,
        "context_length": s.context_length,
        "tensor_count": g.tensor_count(),
        "tensor_bytes": s.tensor_bytes,
        "tensor_types": s.types,
        "metadata": metadata,
        "metadata_types": metadata_types,
        "tensors": tensors,
    })
}
