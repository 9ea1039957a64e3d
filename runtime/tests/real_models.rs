//! The GGUF reader on the real models, checked against a manifest written by ggml's own Python
//! reader (`scripts/gguf_manifest.py`, gguf 0.19.0).

mod common;

use std::collections::BTreeMap;

use eddy::gguf::{Gguf, ValueType};
use serde_json::Value as Json;

fn manifest(name: &str) -> Json {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/manifest_").to_owned() + name + ".json";
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The Python reader's name for our value types.
fn py_type(t: ValueType) -> &'static str {
    match t {
        ValueType::U8 => "uint8",
        ValueType::I8 => "int8",
        ValueType::U16 => "uint16",
        ValueType::I16 => "int16",
        ValueType::U32 => "uint32",
        ValueType::I32 => "int32",
        ValueType::F32 => "float32",
        ValueType::Bool => "bool",
        ValueType::String => "string",
        ValueType::Array => "array",
        ValueType::U64 => "uint64",
        ValueType::I64 => "int64",
        ValueType::F64 => "float64",
    }
}

fn check_against_manifest(g: &Gguf, m: &Json) {
    assert_eq!(g.alignment(), m["alignment"].as_u64().unwrap());
    assert_eq!(g.data_offset(), m["data_offset"].as_u64().unwrap());

    let keys: Vec<(&str, &str)> = g
        .metadata()
        .map(|(k, v)| (k, py_type(v.value_type())))
        .collect();
    let want: Vec<(&str, &str)> = m["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, want);

    let tensors: Vec<_> = g.tensors().collect();
    let want = m["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), want.len());
    for (t, w) in tensors.iter().zip(want) {
        assert_eq!(t.name, w["name"].as_str().unwrap());
        assert_eq!(t.ty.name(), w["type"].as_str().unwrap(), "{}", t.name);
        let shape: Vec<u64> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims, &shape[..], "{}", t.name);
        assert_eq!(
            t.n_elements,
            w["n_elements"].as_u64().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(
            t.data.len() as u64,
            w["n_bytes"].as_u64().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(
            t.file_offset,
            w["file_offset"].as_u64().unwrap(),
            "{}",
            t.name
        );
    }
}

fn type_counts(g: &Gguf) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for t in g.tensors() {
        *counts.entry(t.ty.name()).or_insert(0) += 1;
    }
    counts
}

fn data_fits(g: &Gguf) {
    let total: u64 = g.tensors().map(|t| t.data.len() as u64).sum();
    assert!(g.data_offset() + total <= g.file_len());
    let end = g
        .tensors()
        .map(|t| t.file_offset + t.data.len() as u64)
        .max()
        .unwrap();
    assert!(end <= g.file_len());
}

#[test]
fn smollm2_matches_the_reference_reader() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.architecture(), Some("llama"));
    assert_eq!(g.tensor_count(), 272);
    assert_eq!(
        type_counts(&g),
        BTreeMap::from([("F32", 61), ("Q4_1", 210), ("Q8_0", 1)])
    );
    assert_eq!(g.get_u64("llama.block_count"), Some(30));
    assert_eq!(g.get_str("tokenizer.ggml.pre"), Some("smollm"));
    let tokens = g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(tokens.get(0).unwrap().as_str(), Some("<|endoftext|>"));
    assert_eq!(tokens.strings().unwrap().count(), 49152);
    data_fits(&g);
    check_against_manifest(&g, &manifest("smollm2"));
}

#[test]
fn gemma3_matches_the_reference_reader() {
    let Some(path) = common::model(common::GEMMA3) else {
        return;
    };
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.architecture(), Some("gemma3"));
    assert_eq!(g.tensor_count(), 236);
    assert_eq!(
        type_counts(&g),
        BTreeMap::from([
            ("F32", 109),
            ("Q5_0", 81),
            ("Q4_K", 27),
            ("Q8_0", 10),
            ("Q6_K", 9)
        ])
    );
    assert_eq!(g.get_str("tokenizer.ggml.model"), Some("llama"));
    data_fits(&g);
    check_against_manifest(&g, &manifest("gemma3"));
}
