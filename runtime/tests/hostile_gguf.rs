//! Hand-made hostile GGUF files: each must give its specific typed error, never a panic, and
//! parsing must allocate no more than the file's own size can justify.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use eddy::GgmlType;
use eddy::gguf::writer::{GgufWriter, OwnedValue, put_str};
use eddy::gguf::{Gguf, GgufError, MAX_ARRAY_DEPTH, ValueType};

// ---- per-thread allocation accounting (tests run on several threads) ----

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // try_with: thread-local storage may already be gone while a thread exits.
    let _ = LIVE.try_with(|live| {
        let now = (live.get() as isize + delta).max(0) as usize;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards every call to the system allocator unchanged and only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Parses `bytes` (a copy, so the file itself is not counted) and checks that the parse
/// allocated at most 64 KiB plus 16 bytes per file byte at its peak.
fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
    let copy = bytes.to_vec();
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let result = Gguf::from_vec(copy);
    let peak = PEAK.with(Cell::get) - base;
    let bound = 64 * 1024 + 16 * bytes.len();
    assert!(
        peak <= bound,
        "parse of {} bytes allocated {peak} bytes at peak (bound {bound})",
        bytes.len()
    );
    result
}

fn err(bytes: &[u8]) -> GgufError {
    match parse(bytes) {
        Ok(g) => panic!("hostile file accepted: {g:?}"),
        Err(e) => {
            // Every error renders to a message.
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

// ---- builders ----

fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b
}

fn kv(b: &mut Vec<u8>, key: &str, value: &OwnedValue) {
    put_str(b, key);
    b.extend((value.value_type() as u32).to_le_bytes());
    value.encode(b);
}

struct RawTensor<'a> {
    name: &'a str,
    dims: &'a [u64],
    type_id: u32,
    offset: u64,
}

/// A file with the given tensor infos (no metadata) followed by `data_len` zero bytes of data.
fn tensors_file(tensors: &[RawTensor<'_>], data_len: usize) -> Vec<u8> {
    let mut b = header(3, tensors.len() as u64, 0);
    for t in tensors {
        put_str(&mut b, t.name);
        b.extend((t.dims.len() as u32).to_le_bytes());
        for d in t.dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(t.type_id.to_le_bytes());
        b.extend(t.offset.to_le_bytes());
    }
    b.resize(b.len().next_multiple_of(32) + data_len, 0);
    b
}

fn one_tensor(dims: &[u64], type_id: u32, offset: u64, data_len: usize) -> Vec<u8> {
    tensors_file(
        &[RawTensor {
            name: "w",
            dims,
            type_id,
            offset,
        }],
        data_len,
    )
}

/// A small valid file with metadata of several types and two tensors.
fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", OwnedValue::String("llama".into()));
    w.kv("llama.block_count", OwnedValue::U32(2));
    w.kv("t.bool", OwnedValue::Bool(true));
    w.kv("t.f64", OwnedValue::F64(0.5));
    w.kv(
        "tokenizer.ggml.tokens",
        OwnedValue::strings(["a", "bc", "▁d"]),
    );
    w.kv(
        "t.nested",
        OwnedValue::Array {
            elem: ValueType::Array,
            items: vec![OwnedValue::Array {
                elem: ValueType::I16,
                items: vec![OwnedValue::I16(-1), OwnedValue::I16(2)],
            }],
        },
    );
    w.tensor_f32("norm", &[4], &[1.0, 2.0, 3.0, 4.0]);
    w.tensor("q", GgmlType::Q8_0, &[32, 2], vec![1u8; 68]);
    w.to_bytes()
}

// ---- the cases ----

#[test]
fn valid_file_parses() {
    let g = parse(&valid_file()).unwrap();
    assert_eq!(g.tensor_count(), 2);
    assert_eq!(g.metadata_len(), 6);
}

#[test]
fn empty_file_is_truncated() {
    assert!(matches!(
        err(b""),
        GgufError::Truncated { what: "magic", .. }
    ));
    assert!(matches!(
        err(b"GGU"),
        GgufError::Truncated { what: "magic", .. }
    ));
}

#[test]
fn bad_magic() {
    let mut b = valid_file();
    b[..4].copy_from_slice(b"GGML");
    assert!(matches!(err(&b), GgufError::BadMagic { found } if found == b"GGML"));
    assert!(matches!(err(b"PK"), GgufError::BadMagic { .. }));
}

#[test]
fn version_1_and_99_are_unsupported() {
    for v in [0u32, 1, 4, 99, u32::MAX] {
        let b = header(v, 0, 0);
        assert!(
            matches!(err(&b), GgufError::UnsupportedVersion { version } if version == v),
            "version {v}"
        );
    }
}

#[test]
fn big_endian_version_is_named() {
    let b = header(3u32.swap_bytes(), 0, 0);
    assert!(matches!(err(&b), GgufError::BigEndian { version: 3 }));
}

#[test]
fn huge_metadata_count() {
    for n in [u64::MAX, 1 << 40, 1000] {
        assert!(
            matches!(err(&header(3, 0, n)), GgufError::TooManyMetadata { count, .. } if count == n)
        );
    }
}

#[test]
fn huge_tensor_count() {
    for n in [u64::MAX, 1 << 33, 1] {
        assert!(
            matches!(err(&header(3, n, 0)), GgufError::TooManyTensors { count, .. } if count == n)
        );
    }
}

#[test]
fn key_length_of_2_pow_63() {
    let mut b = header(3, 0, 1);
    b.extend((1u64 << 63).to_le_bytes());
    b.extend(b"general.x");
    b.resize(b.len() + 64, 0);
    assert!(matches!(
        err(&b),
        GgufError::StringTooLong { len, offset: 24, .. } if len == 1 << 63
    ));
}

#[test]
fn string_value_length_of_2_pow_63() {
    let mut b = header(3, 0, 1);
    put_str(&mut b, "general.name");
    b.extend((ValueType::String as u32).to_le_bytes());
    b.extend((1u64 << 63).to_le_bytes());
    b.extend(b"abc");
    assert!(matches!(
        err(&b),
        GgufError::StringTooLong { len, context, .. } if len == 1 << 63 && context == "general.name"
    ));
}

#[test]
fn non_utf8_key_and_array_element() {
    let mut b = header(3, 0, 1);
    b.extend(3u64.to_le_bytes());
    b.extend([b'a', 0xff, b'b']);
    b.extend((ValueType::U8 as u32).to_le_bytes());
    b.push(0);
    assert!(matches!(err(&b), GgufError::InvalidUtf8 { offset: 32, .. }));

    let mut b = header(3, 0, 1);
    put_str(&mut b, "tokenizer.ggml.tokens");
    b.extend((ValueType::Array as u32).to_le_bytes());
    b.extend((ValueType::String as u32).to_le_bytes());
    b.extend(2u64.to_le_bytes());
    put_str(&mut b, "ok");
    b.extend(2u64.to_le_bytes());
    b.extend([0xc3, 0x28]); // invalid two-byte sequence
    assert!(matches!(
        err(&b),
        GgufError::InvalidUtf8 { context, .. } if context == "tokenizer.ggml.tokens[1]"
    ));
}

#[test]
fn unknown_value_type() {
    for (id, nested) in [(13u32, false), (u32::MAX, false), (99, true)] {
        let mut b = header(3, 0, 1);
        put_str(&mut b, "k");
        if nested {
            b.extend((ValueType::Array as u32).to_le_bytes());
        }
        b.extend(id.to_le_bytes());
        b.resize(b.len() + 16, 0);
        assert!(
            matches!(err(&b), GgufError::UnknownValueType { type_id, key, .. } if type_id == id && key == "k")
        );
    }
}

#[test]
fn arrays_nested_1000_deep() {
    let mut b = header(3, 0, 1);
    put_str(&mut b, "deep");
    b.extend((ValueType::Array as u32).to_le_bytes());
    for _ in 0..1000 {
        b.extend((ValueType::Array as u32).to_le_bytes());
        b.extend(1u64.to_le_bytes());
    }
    b.extend((ValueType::U8 as u32).to_le_bytes());
    b.extend(0u64.to_le_bytes());
    assert!(matches!(
        err(&b),
        GgufError::NestingTooDeep { max, key, .. } if max == MAX_ARRAY_DEPTH && key == "deep"
    ));
}

#[test]
fn array_length_past_the_file() {
    for (elem, len) in [
        (ValueType::U32, 1u64 << 62),
        (ValueType::U8, u64::MAX),
        (ValueType::String, 1 << 40),
        (ValueType::Array, 1 << 40),
        (ValueType::U64, 3),
    ] {
        let mut b = header(3, 0, 1);
        put_str(&mut b, "arr");
        b.extend((ValueType::Array as u32).to_le_bytes());
        b.extend((elem as u32).to_le_bytes());
        b.extend(len.to_le_bytes());
        b.resize(b.len() + 20, 0);
        assert!(
            matches!(err(&b), GgufError::ArrayTooLong { len: l, .. } if l == len),
            "{elem:?} × {len}"
        );
    }
}

#[test]
fn bool_other_than_0_or_1() {
    let mut b = header(3, 0, 1);
    put_str(&mut b, "flag");
    b.extend((ValueType::Bool as u32).to_le_bytes());
    b.push(2);
    assert!(matches!(err(&b), GgufError::InvalidBool { value: 2, .. }));
}

#[test]
fn duplicate_key() {
    let mut b = header(3, 0, 2);
    kv(&mut b, "general.name", &OwnedValue::String("a".into()));
    kv(&mut b, "general.name", &OwnedValue::String("b".into()));
    assert!(matches!(err(&b), GgufError::DuplicateKey { key, .. } if key == "general.name"));
}

#[test]
fn alignment_of_wrong_type_or_not_a_power_of_two() {
    let mut b = header(3, 0, 1);
    kv(&mut b, "general.alignment", &OwnedValue::U64(32));
    assert!(matches!(
        err(&b),
        GgufError::WrongType {
            expected: "u32",
            found: "u64",
            ..
        }
    ));
    for a in [0u32, 48, 3] {
        let mut b = header(3, 0, 1);
        kv(&mut b, "general.alignment", &OwnedValue::U32(a));
        assert!(matches!(err(&b), GgufError::BadAlignment { value } if value == u64::from(a)));
    }
}

#[test]
fn too_many_dimensions() {
    let b = one_tensor(&[1, 1, 1, 1, 1], 0, 0, 4);
    assert!(matches!(err(&b), GgufError::TooManyDims { n_dims: 5, .. }));
    let mut b = one_tensor(&[1], 0, 0, 4);
    // Patch n_dims (after header 24 + name 8+1) to u32::MAX.
    b[33..37].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        err(&b),
        GgufError::TooManyDims {
            n_dims: u32::MAX,
            ..
        }
    ));
}

#[test]
fn dimensions_whose_product_overflows() {
    for dims in [
        &[1u64 << 32, 1 << 32][..],
        &[u64::MAX],
        &[1 << 63],
        &[1 << 62, 2],
        &[1 << 31, 1 << 31, 1 << 2],
    ] {
        let b = one_tensor(dims, 0, 0, 64);
        assert!(
            matches!(err(&b), GgufError::DimsOverflow { .. }),
            "{dims:?}"
        );
    }
    // Elements fit in i64 but bytes do not: 2^62 f64 values.
    let b = one_tensor(&[1 << 62], GgmlType::F64.id(), 0, 64);
    assert!(matches!(err(&b), GgufError::DimsOverflow { .. }));
}

#[test]
fn unknown_and_removed_tensor_types() {
    let b = one_tensor(&[32], 99, 0, 64);
    assert!(matches!(
        err(&b),
        GgufError::UnknownTensorType { type_id: 99, .. }
    ));
    let b = one_tensor(&[32], 31, 0, 64);
    let e = err(&b);
    assert!(matches!(
        e,
        GgufError::UnknownTensorType { type_id: 31, .. }
    ));
    assert!(e.to_string().contains("Q4_0_4_4"), "{e}");
}

#[test]
fn row_not_a_multiple_of_the_block_size() {
    let b = one_tensor(&[33, 2], GgmlType::Q4_0.id(), 0, 256);
    assert!(matches!(
        err(&b),
        GgufError::PartialBlock {
            ne0: 33,
            block_size: 32,
            ty: GgmlType::Q4_0,
            ..
        }
    ));
    let b = one_tensor(&[100], GgmlType::Q4_K.id(), 0, 256);
    assert!(matches!(
        err(&b),
        GgufError::PartialBlock {
            block_size: 256,
            ..
        }
    ));
}

#[test]
fn tensor_data_past_the_end() {
    // 16 f32 need 64 bytes; only 32 are there.
    let b = one_tensor(&[16], 0, 0, 32);
    assert!(matches!(
        err(&b),
        GgufError::TensorOutOfBounds { size: 64, .. }
    ));
    // Offset far past the end.
    let b = one_tensor(&[1], 0, 1 << 40, 32);
    assert!(matches!(err(&b), GgufError::TensorOutOfBounds { .. }));
    // Offset + size overflows u64.
    let b = one_tensor(&[64], 0, u64::MAX - 31, 32);
    assert!(matches!(err(&b), GgufError::TensorOutOfBounds { .. }));
}

#[test]
fn misaligned_tensor_offset() {
    let b = one_tensor(&[1], 0, 4, 64);
    assert!(matches!(
        err(&b),
        GgufError::MisalignedTensor {
            offset: 4,
            alignment: 32,
            ..
        }
    ));
}

#[test]
fn duplicate_tensor_names() {
    let t = |offset| RawTensor {
        name: "blk.0.attn_q.weight",
        dims: &[8],
        type_id: 0,
        offset,
    };
    let b = tensors_file(&[t(0), t(32)], 64);
    assert!(
        matches!(err(&b), GgufError::DuplicateTensor { tensor } if tensor == "blk.0.attn_q.weight")
    );
}

#[test]
fn overlapping_tensors() {
    let b = tensors_file(
        &[
            RawTensor {
                name: "a",
                dims: &[16],
                type_id: 0,
                offset: 0,
            },
            RawTensor {
                name: "b",
                dims: &[8],
                type_id: 0,
                offset: 32,
            },
        ],
        128,
    );
    assert!(
        matches!(err(&b), GgufError::TensorsOverlap { first, second } if first == "a" && second == "b")
    );
}

#[test]
fn truncated_at_every_offset() {
    let full = valid_file();
    assert!(parse(&full).is_ok());
    // The last tensor's data ends before the final padding; cutting the padding is fine.
    let g = parse(&full).unwrap();
    let needed = g
        .tensors()
        .map(|t| t.file_offset as usize + t.data.len())
        .max()
        .unwrap();
    for cut in 0..needed {
        let e = err(&full[..cut]);
        assert!(
            matches!(
                e,
                GgufError::Truncated { .. }
                    | GgufError::StringTooLong { .. }
                    | GgufError::ArrayTooLong { .. }
                    | GgufError::TooManyMetadata { .. }
                    | GgufError::TooManyTensors { .. }
                    | GgufError::TensorOutOfBounds { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
}

/// Random byte flips, insertions and truncations of a valid file: each must parse or fail
/// cleanly (never panic), within the allocation bound.
#[test]
fn random_mutations_never_panic() {
    let full = valid_file();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    // Miri (scripts/sanitize.sh) interprets every step: fewer mutations there.
    let n = if cfg!(miri) { 200 } else { 20_000 };
    for _ in 0..n {
        let mut b = full.clone();
        for _ in 0..(1 + next() % 4) {
            if b.is_empty() {
                break;
            }
            let i = (next() as usize) % b.len();
            match next() % 4 {
                0 => b[i] = next() as u8,
                1 => b[i] ^= 1 << (next() % 8),
                2 => b[i] = [0x00, 0xff, 0x7f, 0x80][(next() % 4) as usize],
                _ => b.truncate(i),
            }
        }
        if let Ok(g) = parse(&b) {
            accepted += 1;
            // Whatever was accepted is fully readable.
            for (_, v) in g.metadata() {
                if let Some(a) = v.as_array() {
                    assert_eq!(a.iter().count(), a.len());
                }
            }
            for t in g.tensors() {
                assert_eq!(Some(t.data.len() as u64), t.ty.bytes_for(t.n_elements));
            }
        }
    }
    eprintln!("random mutations: {accepted} of {n} accepted");
    // Some mutations hit tensor data or padding and stay valid; most must be refused.
    assert!(accepted < n);
}
