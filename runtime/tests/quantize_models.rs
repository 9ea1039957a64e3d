//! `eddy::quantize` on the real models against llama.cpp's quantizer: every tensor (name, type,
//! shape, offset, size, SHA-256 of its bytes), every metadata key (type, SHA-256 of its encoded
//! value) and the layout must equal the manifest of llama.cpp's output for the same input and
//! type, committed under `testdata/quantize/` (made by `scripts/quantize-hashes.sh` with
//! `tools/llama-bench`'s `llama-quantize`; the format is described in `scripts/gguf_hashes.py`).
//! Equal manifests mean byte-identical files up to the zero padding.
//!
//! Run in CI: SmolLM2 (Q4_1) and Qwen2.5 (Q4_K_M) to all six types, the twelve
//! conversions, and SmolLM2 to Q2_K and Q3_K_S/M/L (the Q3_K quantizer): about 70 s on two idle
//! cores, Qwen2.5 to IQ4_NL the longest.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use eddy::gguf::Gguf;
use eddy::quantize::{FileType, QuantizeError, QuantizeParams, quantize_file};
use eddy::{Context, ContextParams, KvType, Model};

const SMOL_STEM: &str = "SmolLM2-135M-Instruct.Q4_1";
const QWEN_STEM: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eddy-quantize-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn reference(stem: &str, ty: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/quantize"))
        .join(format!("{stem}.{ty}.tsv"))
}

/// Quantizes `model_file` to `ty` as `llama-quantize --allow-requantize` does, compares the
/// output's manifest with llama.cpp's and returns the output's path (the caller removes it).
fn quantize_and_compare(model_file: &str, stem: &str, ty: &str) -> Option<PathBuf> {
    let input = common::model(model_file)?;
    let dir = scratch_dir(&format!("{stem}-{ty}"));
    let output = dir.join(format!("{stem}.{ty}.gguf"));
    let mut params = QuantizeParams::new(FileType::from_name(ty).unwrap());
    params.allow_requantize = true;
    params.n_threads = 2;
    params.overwrite = true;
    quantize_file(&input, &output, &params, &mut |_| {}).unwrap();
    let got = manifest(&output);
    let want = std::fs::read_to_string(reference(stem, ty)).unwrap();
    let (got_lines, want_lines): (Vec<&str>, Vec<&str>) =
        (got.lines().collect(), want.lines().collect());
    let differing: Vec<String> = got_lines
        .iter()
        .zip(&want_lines)
        .filter(|(g, w)| g != w)
        .take(5)
        .map(|(g, w)| format!("  eddy:      {g}\n  llama.cpp: {w}"))
        .collect();
    assert!(
        differing.is_empty() && got_lines.len() == want_lines.len(),
        "{stem} -> {ty}: {} lines vs {}; first differences:\n{}",
        got_lines.len(),
        want_lines.len(),
        differing.join("\n")
    );
    Some(output)
}

/// The manifest `scripts/gguf_hashes.py` prints, computed with Eddy's reader.
fn manifest(path: &Path) -> String {
    let g = Gguf::open(path).unwrap();
    let mut s = String::new();
    writeln!(
        s,
        "gguf\t{}\t{}\t{}\t{}\t{}\t{}",
        g.version(),
        g.tensor_count(),
        g.metadata_len(),
        g.alignment(),
        g.data_offset(),
        g.file_len()
    )
    .unwrap();
    for (key, ty, raw) in g.metadata_raw() {
        writeln!(s, "kv\t{key}\t{}\t{}", ty.name(), sha256_hex(raw)).unwrap();
    }
    for t in g.tensors() {
        let dims: Vec<String> = t.dims.iter().map(u64::to_string).collect();
        writeln!(
            s,
            "tensor\t{}\t{}\t{}\t{}\t{}\t{}",
            t.name,
            t.ty.name(),
            dims.join(","),
            t.offset,
            t.data.len(),
            sha256_hex(t.data)
        )
        .unwrap();
    }
    s
}

macro_rules! same_as_llama_cpp {
    ($($(#[$attr:meta])* $name:ident: $model:expr, $stem:expr, $ty:expr;)*) => {$(
        $(#[$attr])*
        #[test]
        fn $name() {
            if let Some(out) = quantize_and_compare($model, $stem, $ty) {
                let _ = std::fs::remove_dir_all(out.parent().unwrap());
            }
        }
    )*};
}

same_as_llama_cpp! {
    smollm2_to_q4_0_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q4_0";
    smollm2_to_q8_0_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q8_0";
    smollm2_to_q5_k_m_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q5_K_M";
    smollm2_to_q6_k_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q6_K";
    smollm2_to_iq4_nl_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "IQ4_NL";
    // Q3_K: the Q2_K mix stores SmolLM2's ffn_down as Q3_K (the rest falls back to Q4_0).
    smollm2_to_q2_k_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q2_K";
    smollm2_to_q3_k_s_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q3_K_S";
    smollm2_to_q3_k_m_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q3_K_M";
    smollm2_to_q3_k_l_same_as_llama_cpp: common::SMOLLM2, SMOL_STEM, "Q3_K_L";
    qwen2_to_q4_0_same_as_llama_cpp: common::QWEN2, QWEN_STEM, "Q4_0";
    qwen2_to_q8_0_same_as_llama_cpp: common::QWEN2, QWEN_STEM, "Q8_0";
    qwen2_to_q4_k_m_same_as_llama_cpp: common::QWEN2, QWEN_STEM, "Q4_K_M";
    qwen2_to_q6_k_same_as_llama_cpp: common::QWEN2, QWEN_STEM, "Q6_K";
    qwen2_to_q5_k_m_same_as_llama_cpp: common::QWEN2, QWEN_STEM, "Q5_K_M";
    qwen2_to_iq4_nl_same_as_llama_cpp: common::QWEN2, QWEN_STEM, "IQ4_NL";
}

/// SmolLM2 to Q4_K_M is the same as llama.cpp's, and the file loads and generates: it still
/// says Paris.
#[test]
fn a_quantized_model_loads_and_generates() {
    let Some(out) = quantize_and_compare(common::SMOLLM2, SMOL_STEM, "Q4_K_M") else {
        return;
    };
    let model = Model::load(&out).unwrap();
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_window: 64,
            kv_type: KvType::F32,
            ..Default::default()
        },
    )
    .unwrap();
    let prompt = model
        .tokenizer()
        .encode("The capital of France is", true, true);
    ctx.decode(&prompt).unwrap();
    let mut ids = Vec::new();
    for _ in 0..8 {
        let logits = ctx.logits();
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap() as u32;
        ids.push(next);
        ctx.decode(&[next]).unwrap();
    }
    let text = model.tokenizer().decode(&ids);
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
    assert!(text.contains("Paris"), "{text:?}");
}

/// The input is never overwritten, an existing output needs `overwrite`, a quantized input
/// needs `allow_requantize`, and a file that is not GGUF is the reader's typed error. No
/// temporary file is left behind by any of them.
#[test]
fn refusals_are_typed_errors_and_leave_no_files() {
    let Some(input) = common::model(common::SMOLLM2) else {
        return;
    };
    let dir = scratch_dir("refusals");
    let params = QuantizeParams::new(FileType::Q8_0);
    let run = |i: &Path, o: &Path, p: &QuantizeParams| quantize_file(i, o, p, &mut |_| {});

    let mut force = params.clone();
    force.overwrite = true;
    force.allow_requantize = true;
    assert!(matches!(
        run(&input, &input, &force),
        Err(QuantizeError::OutputIsInput(_))
    ));

    let existing = dir.join("exists.gguf");
    std::fs::write(&existing, b"keep me").unwrap();
    assert!(matches!(
        run(&input, &existing, &params),
        Err(QuantizeError::OutputExists(_))
    ));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let out = dir.join("out.gguf");
    match run(&input, &out, &params) {
        Err(QuantizeError::RequantizeNotAllowed { from, .. }) => {
            assert_eq!(from, eddy::GgmlType::Q4_1)
        }
        other => panic!("{other:?}"),
    }

    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"GGUF\x03\0\0\0truncated").unwrap();
    assert!(matches!(
        run(&junk, &out, &force),
        Err(QuantizeError::Gguf(_))
    ));

    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["exists.gguf", "junk.gguf"]);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), enough to compare with Python's hashlib without a dependency.

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn sha256_block(h: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for (i, c) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = hh
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        hh = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (x, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
        *x = x.wrapping_add(v);
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut chunks = data.chunks_exact(64);
    for block in &mut chunks {
        sha256_block(&mut h, block);
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 56 { 64 } else { 128 };
    tail[len - 8..len].copy_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in tail[..len].chunks_exact(64) {
        sha256_block(&mut h, block);
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_matches_the_standard_vectors() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(&[b'a'; 1_000]),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
}
