//! The recipe: which type each tensor of a model gets for a [`FileType`].
//!
//! This is llama.cpp's choice without an importance matrix (`src/llama-quant.cpp` of the
//! llama.cpp vendored in `llama-cpp-sys-2` 0.1.161, the one `tools/llama-bench` builds), written
//! again for the file types Eddy offers. In short:
//!
//! - Only tensors whose name ends in `weight`, that have at least two dimensions (trailing 1s
//!   do not count) and that are not norms, positional embeddings, routers and a list of small
//!   special tensors ([`may_quantize`]) change type; everything else is copied as it is.
//! - F32, F16 and BF16 files are "all tensors that may change get this type", nothing more.
//! - The quantized types start from the file type's base type ([`FileType::base_type`]) and
//!   then, unless `--pure`, the mixture rules of [`Recipe::mixture`] apply: the output tensor
//!   (and the token embedding when the model ties the two) gets Q6_K, attention V and FFN down
//!   get more bits in some layers for the `_M`/`_L` mixes, and so on.
//! - A row length that is not a multiple of the chosen type's block falls back to a type with
//!   32-weight blocks, and to F16 if that does not fit either ([`fallback`]).
//!
//! The layer counters of the mixture rules count tensors in the order llama.cpp visits them:
//! by layer number (tensors outside `blk.N.` first), then by name ([`visit_order`]).

use crate::GgmlType;
use crate::gguf::Gguf;

use super::{FileType, QuantizeError, QuantizeParams};

/// What one tensor is, for the rules: llama.cpp's broad categories, found from the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    TokenEmbedding,
    AttentionQ,
    AttentionK,
    /// Attention V, fused QKV and MLA's KV-b projection: the tensors that get more bits.
    AttentionVLike,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

impl Category {
    pub(crate) fn of(name: &str) -> Category {
        if name == "output.weight" {
            Category::Output
        } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            Category::TokenEmbedding
        } else if ["attn_qkv.weight", "attn_kv_b.weight", "attn_v.weight"]
            .iter()
            .any(|s| name.contains(s))
        {
            Category::AttentionVLike
        } else if name.contains("attn_k.weight") {
            Category::AttentionK
        } else if name.contains("attn_q.weight") {
            Category::AttentionQ
        } else if name.contains("attn_output.weight") {
            Category::AttentionOutput
        } else if name.contains("ffn_up") {
            Category::FfnUp
        } else if name.contains("ffn_gate") {
            Category::FfnGate
        } else if name.contains("ffn_down") {
            Category::FfnDown
        } else {
            Category::Other
        }
    }
}

/// Parts of tensor names that are never quantized (norms, routers, small special tensors of
/// other architectures), as llama.cpp lists them.
const KEEP_IF_CONTAINS: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// Further parts kept as they are in `glm5-next` models.
const KEEP_IF_CONTAINS_GLM5_NEXT: &[&str] = &[
    "hc_",
    "indexer.attn_q_b",
    "indexer.attn_k",
    "indexer.proj",
    "indexer_compressor_gate",
    "indexer_compressor_ape",
    "ssm_f_a.weight",
    "ssm_f_b.weight",
    "ssm_g_a.weight",
    "ssm_g_b.weight",
    "ssm_beta.weight",
    "attn_kv_a_mqa.weight",
    "attn_k_b.weight",
    "attn_v_b.weight",
];

/// GGML's dimension count: trailing dimensions of 1 do not count (at least 1).
pub(crate) fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// Whether a tensor may change type at all.
pub(crate) fn may_quantize(arch: &str, name: &str, dims: &[u64]) -> bool {
    n_dims(dims) >= 2
        && name.ends_with("weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !KEEP_IF_CONTAINS.iter().any(|s| name.contains(s))
        && !(arch == "glm5-next" && KEEP_IF_CONTAINS_GLM5_NEXT.iter().any(|s| name.contains(s)))
}

/// The layer number of a `blk.N.` name the way C's `sscanf(name, "blk.%d.", &n)` reads it
/// (leading spaces and a sign allowed), or `None`.
pub(crate) fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?.trim_start();
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let len = digits.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let v: i64 = digits[..len]
        .parse()
        .unwrap_or(i64::MAX)
        .min(i64::from(i32::MAX));
    Some(if neg { -v } else { v })
}

/// The order llama.cpp visits (and writes) tensors in: by layer number, tensors without one
/// first, then by name (byte order). Returns indices into `names`.
pub(crate) fn visit_order(names: &[&str]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| (layer_of(names[i]).unwrap_or(-1), names[i].as_bytes());
        key(a).cmp(&key(b))
    });
    order
}

/// Architectures and layer counts that llama.cpp calls "70B", for which attention V gets
/// Q5_K instead of Q3_K/Q4_K.
fn is_70b(arch: &str, n_layer: u32, n_head: u32, n_head_kv: u32) -> bool {
    match arch {
        "llama" => n_layer == 80 && n_head != n_head_kv,
        "qwen2" | "deci" | "olmo" => n_layer == 80,
        "jais2" => n_layer == 68,
        _ => false,
    }
}

/// The hyperparameters the rules look at, read from the file's metadata.
#[derive(Clone, Debug)]
pub(crate) struct ModelFacts {
    pub arch: String,
    pub n_layer: u32,
    /// Query heads per key/value head in layer 0 (0 when the file says 0 K/V heads).
    pub n_gqa: u32,
    pub n_expert: u32,
    pub is_70b: bool,
}

impl ModelFacts {
    pub(crate) fn read(gguf: &Gguf) -> Result<ModelFacts, QuantizeError> {
        let arch = gguf
            .architecture()
            .ok_or_else(|| QuantizeError::metadata("general.architecture", "absent"))?
            .to_owned();
        let key = |k: &str| format!("{arch}.{k}");
        // A per-layer array or one number; the rules use layer 0's.
        let first = |k: &str| -> Result<Option<u64>, QuantizeError> {
            let Some(v) = gguf.get(&key(k)) else {
                return Ok(None);
            };
            let n = match v.as_array() {
                Some(a) => a.get(0).and_then(|e| e.as_u64()),
                None => v.as_u64(),
            };
            n.map(Some)
                .ok_or_else(|| QuantizeError::metadata(&key(k), "not an unsigned integer"))
        };
        let small = |k: &str, v: u64| {
            u32::try_from(v).map_err(|_| QuantizeError::metadata(&key(k), "too large"))
        };
        let n_layer = first("block_count")?
            .ok_or_else(|| QuantizeError::metadata(&key("block_count"), "absent"))?;
        let n_layer = small("block_count", n_layer)?;
        let n_head = small(
            "attention.head_count",
            first("attention.head_count")?.unwrap_or(0),
        )?;
        let n_head_kv = match first("attention.head_count_kv")? {
            Some(v) => small("attention.head_count_kv", v)?,
            None => n_head,
        };
        let n_expert = small("expert_count", first("expert_count")?.unwrap_or(0))?;
        Ok(ModelFacts {
            is_70b: is_70b(&arch, n_layer, n_head, n_head_kv),
            n_gqa: n_head.checked_div(n_head_kv).unwrap_or(0),
            n_layer,
            n_expert,
            arch,
        })
    }
}

/// `i_layer` of `n_layers` is one of the layers that get more bits in the `_M` mixes: the
/// first and last eighth, and every third layer between.
fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// The type a tensor falls back to when its rows are not a whole number of `target`'s blocks:
/// a type with 32-weight blocks, else F16. `None` when llama.cpp defines no fallback.
pub(crate) fn fallback(target: GgmlType, ncols: u64) -> Option<GgmlType> {
    let fits = |t: GgmlType| ncols.is_multiple_of(u64::from(t.block_size()));
    if fits(target) {
        return Some(target);
    }
    use GgmlType::*;
    let smaller = match target {
        IQ1_S | IQ1_M | IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ4_XS => IQ4_NL,
        Q2_0 | Q2_K | Q3_K | TQ1_0 | TQ2_0 => Q4_0,
        Q4_K => Q5_0,
        Q5_K => Q5_1,
        Q6_K => Q8_0,
        t if t.block_size() <= 32 => t,
        _ => return None,
    };
    Some(if fits(smaller) { smaller } else { F16 })
}

/// One pass of the recipe over a model: the counters the mixture rules keep.
#[derive(Debug)]
pub(crate) struct Recipe<'p> {
    params: &'p QuantizeParams,
    facts: ModelFacts,
    /// Attention-V-like tensors in the file, and how many the rules have seen so far.
    n_attention_v: i64,
    i_attention_v: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    /// No `output.weight`: the token embedding is also the output projection.
    tied_embeddings: bool,
    /// Tensors that fell back to another type because of their row length.
    pub n_fallback: usize,
}

impl<'p> Recipe<'p> {
    /// A recipe for a model whose tensors are called `names` (every tensor of the file).
    pub(crate) fn new(params: &'p QuantizeParams, facts: ModelFacts, names: &[&str]) -> Self {
        Recipe {
            params,
            facts,
            n_attention_v: names
                .iter()
                .filter(|n| Category::of(n) == Category::AttentionVLike)
                .count() as i64,
            i_attention_v: 0,
            i_ffn_down: 0,
            i_ffn_gate: 0,
            i_ffn_up: 0,
            tied_embeddings: !names.contains(&"output.weight"),
            n_fallback: 0,
        }
    }

    /// The type of one tensor; call it for every tensor in [`visit_order`].
    pub(crate) fn choose(
        &mut self,
        name: &str,
        dims: &[u64],
        current: GgmlType,
    ) -> Result<GgmlType, QuantizeError> {
        if !may_quantize(&self.facts.arch, name, dims) {
            return Ok(current);
        }
        let category = Category::of(name);
        let p = self.params;
        if category == Category::TokenEmbedding
            && let Some(t) = p.token_embedding_type
        {
            return Ok(t);
        }
        if category == Category::Output
            && let Some(t) = p.output_tensor_type
        {
            return Ok(t);
        }
        let base = p.file_type.base_type();
        if !base.is_quantized() {
            return Ok(base);
        }
        let mut ty = base;
        if !p.pure {
            ty = self.mixture(ty, name, dims, category)?;
        }
        let ncols = dims.first().copied().unwrap_or(1);
        let chosen = fallback(ty, ncols).ok_or_else(|| QuantizeError::NoFallback {
            tensor: name.to_owned(),
            ty,
            ncols,
        })?;
        if chosen != ty {
            self.n_fallback += 1;
        }
        Ok(chosen)
    }

    /// The layer index and count the FFN rules use: the visiting counter, or for mixtures of
    /// experts the `blk.N.` of the name.
    fn layer_info(&self, counter: i64, name: &str) -> Result<(i64, i64), QuantizeError> {
        let n_layer = i64::from(self.facts.n_layer);
        if self.facts.n_expert <= 1 {
            return Ok((counter, n_layer));
        }
        match layer_of(name) {
            Some(i) if (0..n_layer).contains(&i) => Ok((i, n_layer)),
            _ => Err(QuantizeError::Tensor {
                name: name.to_owned(),
                problem: format!("no layer number in 0..{n_layer} in the name (blk.N.)"),
            }),
        }
    }

    /// The mixture rules of the quantized file types (llama.cpp's `llama_tensor_get_type_impl`
    /// for the types Eddy offers).
    fn mixture(
        &mut self,
        mut ty: GgmlType,
        name: &str,
        dims: &[u64],
        category: Category,
    ) -> Result<GgmlType, QuantizeError> {
        use FileType as F;
        use GgmlType::*;
        let ft = self.params.file_type;
        let f = &self.facts;
        let falcon = f.arch == "falcon";
        match category {
            Category::Output | Category::TokenEmbedding
                if category == Category::Output || self.tied_embeddings =>
            {
                if let Some(t) = self.params.output_tensor_type {
                    ty = t;
                } else {
                    let nx = dims.first().copied().unwrap_or(1);
                    if falcon || !nx.is_multiple_of(u64::from(ty.block_size())) {
                        ty = Q8_0;
                    } else if ty != Q8_0 {
                        ty = Q6_K;
                    }
                }
            }
            // An untied token embedding keeps the base type for every file type Eddy offers
            // (and --token-embedding-type was handled before the mixture). (Output is always
            // taken by the arm above.)
            Category::TokenEmbedding | Category::Output => {}
            Category::AttentionVLike => {
                let (i, n) = (self.i_attention_v, self.n_attention_v);
                match ft {
                    F::Q2_K => ty = if f.n_gqa >= 4 { Q4_K } else { Q3_K },
                    F::Q3_K_M => ty = if i < 2 { Q5_K } else { Q4_K },
                    F::Q3_K_L => ty = Q5_K,
                    F::IQ4_NL | F::IQ4_XS if f.n_gqa >= 4 => ty = Q5_K,
                    F::Q4_K_M | F::Q5_K_M if use_more_bits(i, n) => ty = Q6_K,
                    F::Q4_K_S if i < 4 => ty = Q5_K,
                    _ => {}
                }
                if f.is_70b && matches!(ty, Q3_K | Q4_K) {
                    ty = Q5_K;
                }
                if f.n_expert == 8 {
                    ty = Q8_0;
                }
                self.i_attention_v += 1;
            }
            Category::AttentionK => {
                if f.n_expert == 8 {
                    ty = Q8_0;
                }
            }
            Category::FfnDown => {
                let (i, n) = self.layer_info(self.i_ffn_down, name)?;
                match ft {
                    F::Q2_K => ty = Q3_K,
                    F::Q3_K_M => {
                        ty = if i < n / 16 {
                            Q5_K
                        } else if !falcon || use_more_bits(i, n) {
                            Q4_K
                        } else {
                            Q3_K
                        }
                    }
                    F::Q3_K_L => ty = if falcon { Q4_K } else { Q5_K },
                    F::Q4_K_M if falcon => {
                        ty = if i < n / 16 {
                            Q6_K
                        } else if use_more_bits(i, n) {
                            Q5_K
                        } else {
                            Q4_K
                        }
                    }
                    F::Q4_K_M if use_more_bits(i, n) => ty = Q6_K,
                    F::Q4_K_M => {}
                    F::IQ4_NL | F::IQ4_XS if i < n / 8 => ty = Q5_K,
                    F::Q5_K_M if use_more_bits(i, n) => ty = Q6_K,
                    F::Q4_K_S if !falcon && i < n / 8 => ty = Q5_K,
                    _ => {}
                }
                self.i_ffn_down += 1;
            }
            Category::AttentionOutput => {
                if !falcon {
                    if f.n_expert == 8 {
                        if matches!(
                            ft,
                            F::Q2_K
                                | F::Q3_K_S
                                | F::Q3_K_M
                                | F::IQ4_NL
                                | F::Q4_K_S
                                | F::Q4_K_M
                                | F::IQ4_XS
                        ) {
                            ty = Q5_K;
                        }
                    } else {
                        match ft {
                            F::Q2_K => ty = Q3_K,
                            F::Q3_K_M => ty = Q4_K,
                            F::Q3_K_L => ty = Q5_K,
                            _ => {}
                        }
                    }
                } else if ft == F::Q3_K_L {
                    ty = Q4_K;
                }
            }
            // No rule of the offered file types changes FFN gate/up, but llama.cpp still checks
            // their layer numbers (an error for experts without one) and counts them.
            Category::FfnGate => {
                self.layer_info(self.i_ffn_gate, name)?;
                self.i_ffn_gate += 1;
            }
            Category::FfnUp => {
                self.layer_info(self.i_ffn_up, name)?;
                self.i_ffn_up += 1;
            }
            Category::AttentionQ | Category::Other => {}
        }
        Ok(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_numbers_read_like_sscanf() {
        assert_eq!(layer_of("blk.12.attn_v.weight"), Some(12));
        assert_eq!(layer_of("blk.3"), Some(3));
        assert_eq!(layer_of("blk.-1.x"), Some(-1));
        assert_eq!(layer_of("blk.x.attn"), None);
        assert_eq!(layer_of("token_embd.weight"), None);
    }

    #[test]
    fn visit_order_is_by_layer_then_name() {
        let names = [
            "blk.10.attn_v.weight",
            "blk.2.ffn_down.weight",
            "token_embd.weight",
            "blk.2.attn_k.weight",
            "output_norm.weight",
        ];
        let order: Vec<&str> = visit_order(&names).iter().map(|&i| names[i]).collect();
        assert_eq!(
            order,
            [
                "output_norm.weight",
                "token_embd.weight",
                "blk.2.attn_k.weight",
                "blk.2.ffn_down.weight",
                "blk.10.attn_v.weight",
            ]
        );
    }

    #[test]
    fn fallbacks_follow_the_block_sizes() {
        use GgmlType::*;
        assert_eq!(fallback(Q4_K, 512), Some(Q4_K));
        assert_eq!(fallback(Q4_K, 576), Some(Q5_0));
        assert_eq!(fallback(Q5_K, 896), Some(Q5_1));
        assert_eq!(fallback(Q6_K, 896), Some(Q8_0));
        assert_eq!(fallback(Q3_K, 96), Some(Q4_0));
        assert_eq!(fallback(IQ4_XS, 96), Some(IQ4_NL));
        assert_eq!(fallback(Q6_K, 100), Some(F16));
        assert_eq!(fallback(Q8_0, 100), Some(F16));
        assert_eq!(fallback(Q1_0, 100), None);
    }

    #[test]
    fn more_bits_in_the_first_and_last_eighth_and_every_third_between() {
        let picked: Vec<i64> = (0..24).filter(|&i| use_more_bits(i, 24)).collect();
        assert_eq!(picked, [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]);
    }

    #[test]
    fn one_dimensional_and_norm_tensors_keep_their_type() {
        assert!(!may_quantize("llama", "blk.0.attn_norm.weight", &[576]));
        assert!(!may_quantize("llama", "blk.0.ffn_norm.weight", &[576, 2]));
        assert!(!may_quantize("llama", "blk.0.attn_q.weight", &[576, 1]));
        assert!(!may_quantize("llama", "blk.0.attn_q.bias", &[576, 576]));
        assert!(may_quantize("llama", "blk.0.attn_q.weight", &[576, 576]));
        assert!(may_quantize("llama", "hc_x.weight", &[64, 64]));
        assert!(!may_quantize("glm5-next", "hc_x.weight", &[64, 64]));
    }
}
