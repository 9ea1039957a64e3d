//! Round trips of every metadata type and tensor layout through the test writer.

use super::writer::{GgufWriter, OwnedValue};
use super::*;

fn every_scalar() -> Vec<(&'static str, OwnedValue)> {
    vec![
        ("t.u8", OwnedValue::U8(250)),
        ("t.i8", OwnedValue::I8(-100)),
        ("t.u16", OwnedValue::U16(65000)),
        ("t.i16", OwnedValue::I16(-32000)),
        ("t.u32", OwnedValue::U32(4_000_000_000)),
        ("t.i32", OwnedValue::I32(-2_000_000_000)),
        ("t.f32", OwnedValue::F32(-1.5e-7)),
        ("t.bool.true", OwnedValue::Bool(true)),
        ("t.bool.false", OwnedValue::Bool(false)),
        ("t.string", OwnedValue::String("héllo ▁wörld 🦀".into())),
        ("t.empty_string", OwnedValue::String(String::new())),
        ("t.u64", OwnedValue::U64(u64::MAX)),
        ("t.i64", OwnedValue::I64(i64::MIN)),
        ("t.f64", OwnedValue::F64(std::f64::consts::PI)),
    ]
}

/// Compares a parsed value with what was written, recursively.
fn assert_same(key: &str, got: Value<'_>, want: &OwnedValue) {
    assert_eq!(got.value_type(), want.value_type(), "{key}");
    match (got, want) {
        (Value::U8(a), OwnedValue::U8(b)) => assert_eq!(a, *b),
        (Value::I8(a), OwnedValue::I8(b)) => assert_eq!(a, *b),
        (Value::U16(a), OwnedValue::U16(b)) => assert_eq!(a, *b),
        (Value::I16(a), OwnedValue::I16(b)) => assert_eq!(a, *b),
        (Value::U32(a), OwnedValue::U32(b)) => assert_eq!(a, *b),
        (Value::I32(a), OwnedValue::I32(b)) => assert_eq!(a, *b),
        (Value::F32(a), OwnedValue::F32(b)) => assert_eq!(a.to_bits(), b.to_bits()),
        (Value::Bool(a), OwnedValue::Bool(b)) => assert_eq!(a, *b),
        (Value::String(a), OwnedValue::String(b)) => assert_eq!(a, b),
        (Value::U64(a), OwnedValue::U64(b)) => assert_eq!(a, *b),
        (Value::I64(a), OwnedValue::I64(b)) => assert_eq!(a, *b),
        (Value::F64(a), OwnedValue::F64(b)) => assert_eq!(a.to_bits(), b.to_bits()),
        (Value::Array(a), OwnedValue::Array { elem, items }) => {
            assert_eq!(a.elem_type(), *elem, "{key}");
            assert_eq!(a.len(), items.len(), "{key}");
            assert_eq!(a.iter().count(), items.len(), "{key}");
            for (i, (g, w)) in a.iter().zip(items).enumerate() {
                assert_same(&format!("{key}[{i}]"), g, w);
                assert_same(&format!("{key}.get({i})"), a.get(i).unwrap(), w);
            }
            assert!(a.get(items.len()).is_none());
        }
        (g, w) => panic!("{key}: {g:?} vs {w:?}"),
    }
}

#[test]
fn every_scalar_type_round_trips() {
    for version in [2, 3] {
        let mut w = GgufWriter::new();
        w.version = version;
        for (k, v) in every_scalar() {
            w.kv(k, v);
        }
        let g = Gguf::from_vec(w.to_bytes()).unwrap();
        assert_eq!(g.version(), version);
        assert_eq!(g.metadata_len(), every_scalar().len());
        for ((key, value), (want_key, want)) in g.metadata().zip(every_scalar()) {
            assert_eq!(key, want_key);
            assert_same(key, value, &want);
            assert_same(key, g.get(key).unwrap(), &want);
        }
        assert!(g.get("missing").is_none());
    }
}

#[test]
fn arrays_of_every_type_round_trip() {
    let mut w = GgufWriter::new();
    let mut expected = Vec::new();
    for (k, v) in every_scalar() {
        // Three copies of each scalar as an array, plus an empty one.
        let arr = OwnedValue::Array {
            elem: v.value_type(),
            items: vec![v.clone(), v.clone(), v],
        };
        let empty = OwnedValue::Array {
            elem: arr.value_type(),
            items: vec![],
        };
        expected.push((format!("{k}.arr"), arr));
        expected.push((format!("{k}.empty"), empty));
    }
    // Nested: an array of arrays of strings with different lengths, and 8 levels deep.
    expected.push((
        "t.nested".into(),
        OwnedValue::Array {
            elem: ValueType::Array,
            items: vec![
                OwnedValue::strings(["a", "bb"]),
                OwnedValue::strings(Vec::<String>::new()),
                OwnedValue::strings(["ccc"]),
            ],
        },
    ));
    let mut deep = OwnedValue::strings(["leaf"]);
    for _ in 1..MAX_ARRAY_DEPTH {
        deep = OwnedValue::Array {
            elem: ValueType::Array,
            items: vec![deep],
        };
    }
    expected.push(("t.deep".into(), deep));
    for (k, v) in &expected {
        w.kv(k, v.clone());
    }
    let g = Gguf::from_vec(w.to_bytes()).unwrap();
    for (k, want) in &expected {
        assert_same(k, g.get(k).unwrap(), want);
    }
    let strings: Vec<&str> = g
        .get("t.string.arr")
        .unwrap()
        .as_array()
        .unwrap()
        .strings()
        .unwrap()
        .collect();
    assert_eq!(strings, ["héllo ▁wörld 🦀"; 3]);
}

#[test]
fn tensors_round_trip_with_alignment() {
    for alignment in [1u64, 8, 32, 64, 4096] {
        let mut w = GgufWriter::new();
        w.alignment = alignment;
        w.kv("general.architecture", OwnedValue::String("test".into()));
        w.tensor_f32("a", &[3], &[1.0, 2.0, 3.0]);
        w.tensor("q", GgmlType::Q4_0, &[64, 2], vec![7u8; 4 * 18]);
        w.tensor("k", GgmlType::Q4_K, &[256], vec![9u8; 144]);
        w.tensor("empty", GgmlType::F16, &[0, 5], vec![]);
        w.tensor("scalar", GgmlType::I32, &[], 42i32.to_le_bytes().to_vec());
        let g = Gguf::from_vec(w.to_bytes()).unwrap();
        assert_eq!(g.alignment(), alignment);
        assert_eq!(g.data_offset() % alignment, 0);
        assert_eq!(g.architecture(), Some("test"));
        assert_eq!(g.tensor_count(), 5);
        let a = g.tensor("a").unwrap();
        assert_eq!(
            (a.ty, a.dims, a.n_elements),
            (GgmlType::F32, &[3u64][..], 3)
        );
        assert_eq!(a.data.len(), 12);
        assert_eq!(&a.data[4..8], &2.0f32.to_le_bytes());
        let q = g.tensor("q").unwrap();
        assert_eq!((q.n_elements, q.data.len()), (128, 72));
        assert!(q.data.iter().all(|&b| b == 7));
        assert_eq!(q.file_offset, g.data_offset() + q.offset);
        assert_eq!(g.tensor("k").unwrap().data.len(), 144);
        assert_eq!(g.tensor("empty").unwrap().n_elements, 0);
        let s = g.tensor("scalar").unwrap();
        assert_eq!(
            (s.dims.len(), s.n_elements, s.data),
            (0, 1, &42i32.to_le_bytes()[..])
        );
        let names: Vec<&str> = g.tensors().map(|t| t.name).collect();
        assert_eq!(names, ["a", "q", "k", "empty", "scalar"]);
    }
}

#[test]
fn empty_file_with_no_entries_parses() {
    let g = Gguf::from_vec(GgufWriter::new().to_bytes()).unwrap();
    assert_eq!((g.metadata_len(), g.tensor_count()), (0, 0));
    assert_eq!(g.alignment(), DEFAULT_ALIGNMENT);
}
