//! Quantizing a GGUF model into another type, byte for byte as llama.cpp's quantizer does.
//!
//! [`quantize_file`] reads a model, decides each tensor's type with llama.cpp's recipe (see
//! [`recipe`](self#the-recipe)), converts the tensors that change type (dequantize to f32, then
//! ggml's reference quantizers as GCC builds them for a CPU with FMA,
//! [`eddy_quant::quantize_fused`], which is how llama.cpp's x86-64 and AArch64 builds round)
//! and writes a new GGUF file laid out as
//! llama.cpp's `llama_model_quantize` lays it out: the input's metadata in its order, then
//! `general.quantization_version` and `general.file_type`; tensors sorted by layer and name;
//! data aligned to 32 bytes. For the same input and options the output is the same bytes as
//! llama.cpp's (`runtime/tests/quantize_models.rs` checks this on real models).
//!
//! # The recipe
//! Without an importance matrix, as llama.cpp chooses: see the `recipe` module's notes (1-D
//! tensors and norms keep their type; `_M` mixes give attention V and FFN down more bits in
//! some layers; the output tensor, and a tied token embedding, gets Q6_K; rows that are not a
//! whole number of 256-weight blocks fall back to a 32-weight type). [`plan`] returns the
//! choice for every tensor without writing anything.
//!
//! # Memory and files
//! One tensor at a time, in slabs of whole rows that fit [`QuantizeParams::max_buffer_bytes`]
//! (source bytes, their f32 values and the converted bytes): the input is read with ordinary
//! reads, not through the map, so that the process holds only the slab, not the model. Rows are
//! converted on [`QuantizeParams::n_threads`] threads; the result does not depend on the count.
//! The output is written to a temporary file in the output's directory and renamed when
//! complete; an existing output is refused unless [`QuantizeParams::overwrite`] is set, and the
//! input itself always is. Every refusal is a [`QuantizeError`] naming the tensor, key or path.
//!
//! Not done: importance matrices (and so the IQ1/IQ2/IQ3 types, which need one), split files,
//! `--tensor-type`, `--override-kv`, `--prune-layers`, `--keep-split`.

mod recipe;
mod write;

use std::path::{Path, PathBuf};

use crate::GgmlType;
use crate::gguf::{Gguf, GgufError};

pub use write::quantize_file;

/// A whole file's quantization type, as llama.cpp's `llama-quantize` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
#[non_exhaustive]
pub enum FileType {
    /// Every tensor that may change type becomes F32.
    F32,
    /// … F16.
    F16,
    /// … BF16.
    BF16,
    /// Q4_0, with Q6_K for the output tensor (Q8_0 when its rows do not fit Q6_K).
    Q4_0,
    /// Q4_1, the output as for Q4_0.
    Q4_1,
    /// Q5_0, the output as for Q4_0.
    Q5_0,
    /// Q5_1, the output as for Q4_0.
    Q5_1,
    /// Q8_0 everywhere, the output included.
    Q8_0,
    /// Q2_K with Q3_K/Q4_K for attention V, Q3_K for FFN down and attention output.
    Q2_K,
    /// Q3_K.
    Q3_K_S,
    /// Q3_K with Q4_K/Q5_K for attention V, output and FFN down.
    Q3_K_M,
    /// Q3_K with Q5_K for attention V, output and FFN down.
    Q3_K_L,
    /// Q4_K with Q5_K for the first attention V and FFN down layers.
    Q4_K_S,
    /// Q4_K with Q6_K for half of attention V and FFN down.
    Q4_K_M,
    /// Q5_K.
    Q5_K_S,
    /// Q5_K with Q6_K for half of attention V and FFN down.
    Q5_K_M,
    /// Q6_K.
    Q6_K,
    /// IQ4_NL, with Q5_K for the first FFN down layers (and attention V with grouped queries).
    IQ4_NL,
    /// IQ4_XS, as IQ4_NL.
    IQ4_XS,
}

/// (type, llama.cpp's name, `general.file_type` value, base tensor type).
const FILE_TYPES: &[(FileType, &str, u32, GgmlType)] = &[
    (FileType::Q4_0, "Q4_0", 2, GgmlType::Q4_0),
    (FileType::Q4_1, "Q4_1", 3, GgmlType::Q4_1),
    (FileType::Q5_0, "Q5_0", 8, GgmlType::Q5_0),
    (FileType::Q5_1, "Q5_1", 9, GgmlType::Q5_1),
    (FileType::Q8_0, "Q8_0", 7, GgmlType::Q8_0),
    (FileType::Q2_K, "Q2_K", 10, GgmlType::Q2_K),
    (FileType::Q3_K_S, "Q3_K_S", 11, GgmlType::Q3_K),
    (FileType::Q3_K_M, "Q3_K_M", 12, GgmlType::Q3_K),
    (FileType::Q3_K_L, "Q3_K_L", 13, GgmlType::Q3_K),
    (FileType::Q4_K_S, "Q4_K_S", 14, GgmlType::Q4_K),
    (FileType::Q4_K_M, "Q4_K_M", 15, GgmlType::Q4_K),
    (FileType::Q5_K_S, "Q5_K_S", 16, GgmlType::Q5_K),
    (FileType::Q5_K_M, "Q5_K_M", 17, GgmlType::Q5_K),
    (FileType::Q6_K, "Q6_K", 18, GgmlType::Q6_K),
    (FileType::IQ4_NL, "IQ4_NL", 25, GgmlType::IQ4_NL),
    (FileType::IQ4_XS, "IQ4_XS", 30, GgmlType::IQ4_XS),
    (FileType::F16, "F16", 1, GgmlType::F16),
    (FileType::BF16, "BF16", 32, GgmlType::BF16),
    (FileType::F32, "F32", 0, GgmlType::F32),
];

/// Other names llama.cpp's tool accepts: the bare k-quant names mean the `_M` mix.
const ALIASES: &[(&str, FileType)] = &[
    ("Q3_K", FileType::Q3_K_M),
    ("Q4_K", FileType::Q4_K_M),
    ("Q5_K", FileType::Q5_K_M),
];

impl FileType {
    /// Every file type, in the order llama.cpp's tool lists them.
    pub fn all() -> impl Iterator<Item = FileType> {
        FILE_TYPES.iter().map(|r| r.0)
    }

    /// The type named `name` (case-insensitive, e.g. `q4_k_m`), aliases included.
    pub fn from_name(name: &str) -> Option<FileType> {
        FILE_TYPES
            .iter()
            .map(|r| (r.1, r.0))
            .chain(ALIASES.iter().copied())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
    }

    fn row(self) -> &'static (FileType, &'static str, u32, GgmlType) {
        // Every variant has a row (checked by a unit test); the fallback keeps this total.
        FILE_TYPES
            .iter()
            .find(|r| r.0 == self)
            .unwrap_or(&FILE_TYPES[0])
    }

    /// llama.cpp's name (`Q4_K_M`).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The value written as `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn id(self) -> u32 {
        self.row().2
    }

    /// The tensor type the mixture starts from.
    pub fn base_type(self) -> GgmlType {
        self.row().3
    }
}

impl std::fmt::Display for FileType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether Eddy can write tensors of type `ty` (it has ggml's reference quantizer for it).
/// The activation-only formats Q8_1 and Q8_K are not tensor types llama.cpp writes.
pub fn can_write(ty: GgmlType) -> bool {
    !matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K) && eddy_quant::type_traits(ty).is_some()
}

/// The tensor type named `name` (ggml's names, case-insensitive: `q8_0`, `q6_K`, `f16`), if
/// Eddy can write it.
pub fn tensor_type_from_name(name: &str) -> Option<GgmlType> {
    GgmlType::all().find(|t| t.name().eq_ignore_ascii_case(name) && can_write(*t))
}

/// How to quantize; [`QuantizeParams::new`] gives llama.cpp's defaults.
#[derive(Clone, Debug)]
pub struct QuantizeParams {
    /// The file type (the recipe).
    pub file_type: FileType,
    /// Convert tensors that are already quantized (dequantize, then quantize). Without it such
    /// an input is refused, as llama.cpp refuses it.
    pub allow_requantize: bool,
    /// No mixture: every tensor that may change type gets the base type (still with the
    /// fallback for rows that do not fit its blocks).
    pub pure: bool,
    /// Type of `output.weight` (and of a tied token embedding, unless `pure`).
    pub output_tensor_type: Option<GgmlType>,
    /// Type of `token_embd.weight`.
    pub token_embedding_type: Option<GgmlType>,
    /// Threads converting rows (0 is taken as 1).
    pub n_threads: usize,
    /// Replace an existing output file.
    pub overwrite: bool,
    /// The most bytes one slab of rows may take (source, f32 and converted bytes together);
    /// a single row larger than this is still converted whole.
    pub max_buffer_bytes: usize,
}

/// Default slab budget: 64 MiB.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 64 << 20;

impl QuantizeParams {
    /// llama.cpp's defaults for `file_type`: the mixture, no requantizing, one thread.
    pub fn new(file_type: FileType) -> QuantizeParams {
        QuantizeParams {
            file_type,
            allow_requantize: false,
            pure: false,
            output_tensor_type: None,
            token_embedding_type: None,
            n_threads: 1,
            overwrite: false,
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
        }
    }
}

/// Why a quantization was refused or failed. No output file is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantizeError {
    /// The input is not a valid GGUF file.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// Reading the input or writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The output exists and overwriting was not asked for.
    #[error("{0} exists (pass --force to replace it)")]
    OutputExists(PathBuf),
    /// The output is the input file.
    #[error("{0} is the input file; the input is never overwritten")]
    OutputIsInput(PathBuf),
    /// A metadata value the recipe needs is absent or unusable.
    #[error("metadata: {key}: {problem}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A tensor cannot be converted as asked.
    #[error("tensor '{name}': {problem}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The tensor is quantized already and requantizing was not allowed.
    #[error(
        "tensor '{tensor}' is {from} already; converting it to {to} needs --allow-requantize \
         (dequantize, then quantize: quality lower than quantizing the original weights)"
    )]
    RequantizeNotAllowed {
        /// The tensor.
        tensor: String,
        /// Its type in the input.
        from: GgmlType,
        /// The type the recipe chose.
        to: GgmlType,
    },
    /// The recipe has no smaller block type for a tensor whose rows do not fit the chosen type.
    #[error(
        "tensor '{tensor}': rows of {ncols} weights are not whole {ty} blocks and {ty} has no fallback type"
    )]
    NoFallback {
        /// The tensor.
        tensor: String,
        /// The chosen type.
        ty: GgmlType,
        /// Its row length.
        ncols: u64,
    },
    /// The tensor holds NaN or infinite values, which no quantizer can represent.
    #[error("tensor '{0}' holds a NaN or infinite value")]
    NonFinite(String),
}

impl QuantizeError {
    pub(crate) fn metadata(key: &str, problem: &str) -> QuantizeError {
        QuantizeError::Metadata {
            key: key.to_owned(),
            problem: problem.to_owned(),
        }
    }

    fn tensor(name: &str, problem: String) -> QuantizeError {
        QuantizeError::Tensor {
            name: name.to_owned(),
            problem,
        }
    }
}

/// One tensor of the output.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    /// Name (as in the input).
    pub name: String,
    /// Dimensions, innermost first, as in the input.
    pub dims: Vec<u64>,
    /// Type in the input.
    pub from: GgmlType,
    /// Type in the output; equal to `from` when the bytes are copied unchanged.
    pub to: GgmlType,
}

impl TensorPlan {
    /// Whether the tensor is converted (otherwise its bytes are copied).
    pub fn converts(&self) -> bool {
        self.from != self.to
    }
}

/// Every tensor of the output in write order, with its type.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Tensors in the order they are written (llama.cpp's: by layer, then name).
    pub tensors: Vec<TensorPlan>,
    /// How many fell back to another type because their rows do not fit the chosen one.
    pub n_fallback: usize,
}

/// The recipe's choice for every tensor of `gguf`, checked: each converted tensor can be
/// dequantized and written, its rows fit the new type, and requantizing is allowed if needed.
pub fn plan(gguf: &Gguf, params: &QuantizeParams) -> Result<Plan, QuantizeError> {
    for t in [params.output_tensor_type, params.token_embedding_type]
        .into_iter()
        .flatten()
    {
        if !can_write(t) {
            return Err(QuantizeError::tensor(
                "output.weight/token_embd.weight",
                format!("Eddy cannot write type {t}"),
            ));
        }
    }
    if let Some(n) = gguf.get_u64("split.count")
        && n > 1
    {
        return Err(QuantizeError::metadata(
            "split.count",
            "split models are not supported; merge the parts first (llama-gguf-split --merge)",
        ));
    }
    let facts = recipe::ModelFacts::read(gguf)?;
    let tensors: Vec<_> = gguf.tensors().collect();
    let names: Vec<&str> = tensors.iter().map(|t| t.name).collect();
    let mut recipe = recipe::Recipe::new(params, facts, &names);
    let mut out = Vec::with_capacity(tensors.len());
    for i in recipe::visit_order(&names) {
        let t = &tensors[i];
        let to = recipe.choose(t.name, t.dims, t.ty)?;
        let p = TensorPlan {
            name: t.name.to_owned(),
            dims: t.dims.to_vec(),
            from: t.ty,
            to,
        };
        if p.converts() {
            check_conversion(&p, params)?;
        }
        out.push(p);
    }
    Ok(Plan {
        tensors: out,
        n_fallback: recipe.n_fallback,
    })
}

fn check_conversion(p: &TensorPlan, params: &QuantizeParams) -> Result<(), QuantizeError> {
    if p.from.is_quantized() && !params.allow_requantize {
        return Err(QuantizeError::RequantizeNotAllowed {
            tensor: p.name.clone(),
            from: p.from,
            to: p.to,
        });
    }
    if eddy_quant::type_traits(p.from).is_none() {
        return Err(QuantizeError::tensor(
            &p.name,
            format!("Eddy cannot read type {} to convert it to {}", p.from, p.to),
        ));
    }
    if !can_write(p.to) {
        return Err(QuantizeError::tensor(
            &p.name,
            format!("Eddy cannot write type {}", p.to),
        ));
    }
    let ncols = p.dims.first().copied().unwrap_or(1);
    if !ncols.is_multiple_of(u64::from(p.to.block_size())) {
        return Err(QuantizeError::tensor(
            &p.name,
            format!(
                "rows of {ncols} weights are not whole blocks of {} ({} weights)",
                p.to,
                p.to.block_size()
            ),
        ));
    }
    Ok(())
}

/// Progress of a running [`quantize_file`], reported after each slab.
#[derive(Clone, Copy, Debug)]
pub struct QuantizeProgress<'a> {
    /// Index of the tensor being written (0-based) and the number of tensors.
    pub tensor: usize,
    /// Number of tensors.
    pub n_tensors: usize,
    /// Its name.
    pub name: &'a str,
    /// Input tensor bytes done so far, of `bytes_total`.
    pub bytes_done: u64,
    /// Input tensor bytes in all.
    pub bytes_total: u64,
}

/// What [`quantize_file`] did.
#[derive(Clone, Debug)]
pub struct QuantizeSummary {
    /// Tensors written.
    pub n_tensors: usize,
    /// Tensors converted to another type (the others were copied).
    pub n_converted: usize,
    /// Tensors that fell back to another type because of their row length.
    pub n_fallback: usize,
    /// Size of the input file.
    pub input_bytes: u64,
    /// Size of the output file.
    pub output_bytes: u64,
}

/// Refuses an output that is the input, or that exists without `overwrite`.
fn check_paths(input: &Path, output: &Path, overwrite: bool) -> Result<(), QuantizeError> {
    if !output.exists() {
        return Ok(());
    }
    let canon = |p: &Path| {
        std::fs::canonicalize(p).map_err(|source| QuantizeError::Io {
            path: p.to_owned(),
            source,
        })
    };
    if canon(input)? == canon(output)? {
        return Err(QuantizeError::OutputIsInput(output.to_owned()));
    }
    if !overwrite {
        return Err(QuantizeError::OutputExists(output.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_type_has_one_row_and_names_round_trip() {
        for (t, name, _, _) in FILE_TYPES {
            assert_eq!(FileType::from_name(name), Some(*t));
            assert_eq!(FileType::from_name(&name.to_lowercase()), Some(*t));
            assert_eq!(t.name(), *name);
            assert_eq!(FILE_TYPES.iter().filter(|r| r.0 == *t).count(), 1);
            // general.file_type names agree with the reader's table.
            assert_eq!(
                crate::gguf::file_type_name(u64::from(t.id())).map(|n| n.ends_with(name)),
                Some(true),
                "{name}"
            );
            assert!(can_write(t.base_type()), "{name}");
        }
        assert_eq!(FileType::from_name("q4_k"), Some(FileType::Q4_K_M));
        assert_eq!(FileType::from_name("Q4_2"), None);
        assert_eq!(FileType::all().count(), 19);
    }

    /// A small llama-like model: 8 layers, 4 query heads per K/V head, tied embeddings.
    fn synthetic() -> Gguf {
        use crate::gguf::writer::{GgufWriter, OwnedValue};
        let mut w = GgufWriter::new();
        w.kv("general.architecture", OwnedValue::String("llama".into()))
            .kv("llama.block_count", OwnedValue::U32(8))
            .kv("llama.attention.head_count", OwnedValue::U32(8))
            .kv("llama.attention.head_count_kv", OwnedValue::U32(2));
        let zeros = |n: usize| vec![0f32; n];
        w.tensor_f32("token_embd.weight", &[256, 16], &zeros(256 * 16));
        for i in 0..8 {
            w.tensor_f32(&format!("blk.{i}.attn_norm.weight"), &[256], &zeros(256));
            w.tensor_f32(
                &format!("blk.{i}.attn_v.weight"),
                &[256, 64],
                &zeros(256 * 64),
            );
            w.tensor_f32(
                &format!("blk.{i}.ffn_down.weight"),
                &[512, 256],
                &zeros(512 * 256),
            );
            w.tensor_f32(
                &format!("blk.{i}.attn_q.weight"),
                &[96, 96],
                &zeros(96 * 96),
            );
        }
        Gguf::from_vec(w.to_bytes()).unwrap()
    }

    fn types_of(plan: &Plan, part: &str) -> Vec<GgmlType> {
        plan.tensors
            .iter()
            .filter(|t| t.name.contains(part))
            .map(|t| t.to)
            .collect()
    }

    #[test]
    fn q4_k_m_gives_more_bits_to_a_tied_embedding_and_some_layers() {
        use GgmlType::*;
        let plan = plan(&synthetic(), &QuantizeParams::new(FileType::Q4_K_M)).unwrap();
        assert_eq!(types_of(&plan, "token_embd"), [Q6_K]);
        // Layers 0, 3, 6 and 7 of 8 (first and last eighth, every third between).
        let mixed = [Q6_K, Q4_K, Q4_K, Q6_K, Q4_K, Q4_K, Q6_K, Q6_K];
        assert_eq!(types_of(&plan, "attn_v"), mixed);
        assert_eq!(types_of(&plan, "ffn_down"), mixed);
        // Rows of 96 are not whole 256-blocks: Q4_K falls back to Q5_0.
        assert_eq!(types_of(&plan, "attn_q"), [Q5_0; 8]);
        assert_eq!(types_of(&plan, "norm"), [F32; 8]);
        assert_eq!(plan.n_fallback, 8);
    }

    #[test]
    fn iq4_nl_and_pure_and_overrides() {
        use GgmlType::*;
        let g = synthetic();
        let plan_of = |p: &QuantizeParams| plan(&g, p).unwrap();
        let mut p = QuantizeParams::new(FileType::IQ4_NL);
        let iq = plan_of(&p);
        // 4 query heads per K/V head: attention V gets Q5_K; FFN down in the first eighth.
        assert_eq!(types_of(&iq, "attn_v"), [Q5_K; 8]);
        assert_eq!(types_of(&iq, "ffn_down")[..2], [Q5_K, IQ4_NL]);
        p.pure = true;
        let pure = plan_of(&p);
        assert_eq!(types_of(&pure, "attn_v"), [IQ4_NL; 8]);
        assert_eq!(types_of(&pure, "token_embd"), [IQ4_NL]);
        p.pure = false;
        p.token_embedding_type = Some(Q8_0);
        assert_eq!(types_of(&plan_of(&p), "token_embd"), [Q8_0]);
        let f16 = plan_of(&QuantizeParams::new(FileType::F16));
        assert_eq!(types_of(&f16, "attn_q"), [F16; 8]);
        assert_eq!(types_of(&f16, "norm"), [F32; 8]);
    }

    #[test]
    fn tensor_type_names_are_ggml_names_of_writable_types() {
        assert_eq!(tensor_type_from_name("q6_k"), Some(GgmlType::Q6_K));
        assert_eq!(tensor_type_from_name("F16"), Some(GgmlType::F16));
        assert_eq!(tensor_type_from_name("q8_k"), None);
        assert_eq!(tensor_type_from_name("iq2_xxs"), None);
    }
}
