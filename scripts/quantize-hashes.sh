#!/usr/bin/env bash
# Regenerate testdata/quantize/: the per-tensor manifests of llama.cpp's quantizer's outputs that
# runtime/tests/quantize_models.rs compares `eddy quantize` with.
#
# Usage: scripts/quantize-hashes.sh
# Environment: THREADS (llama-quantize threads, default 1), EDDY_MODELS_DIR (default models/).
#
# How: scripts/requantize.sh writes models/requant/<stem>.<TYPE>.gguf with tools/llama-bench's
# llama-quantize (llama_model_quantize of the llama.cpp vendored in llama-cpp-sys-2 =0.1.161,
# --allow-requantize, no importance matrix) for SmolLM2 (Q4_1) and Qwen2.5 (Q4_K_M) and the six
# types below; then scripts/gguf_hashes.py (standard-library Python, its own GGUF parser) prints
# each file's manifest: layout, every metadata key with a SHA-256 of its encoded value, every
# tensor's name, type, shape, offset, size and SHA-256. The GGUF files themselves are not
# committed (0.1-0.7 GB each). Note: llama.cpp's bytes depend on how its ggml was compiled (GCC
# with FMA fuses multiply-adds; see eddy_quant::quantize_fused); these come from the x86-64
# AVX2/AVX-512 GCC build that tools/llama-bench makes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models="${EDDY_MODELS_DIR:-$root/models}"
types="Q4_0 Q8_0 Q4_K_M Q5_K_M Q6_K IQ4_NL"
# SmolLM2 only (fast in CI): the Q3_K quantizer, through the Q2_K mix (its ffn_down tensors are
# Q3_K; every other matrix falls back to Q4_0, 576 not being a multiple of 256) and the Q3_K mixes.
smol_types="Q2_K Q3_K_S Q3_K_M Q3_K_L"
smol="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
TYPES="$types" "$root/scripts/requantize.sh"
TYPES="$smol_types" "$root/scripts/requantize.sh" "$smol"
mkdir -p "$root/testdata/quantize"
for stem in SmolLM2-135M-Instruct.Q4_1 qwen2.5-coder-0.5b-instruct-q4_k_m; do
  stem_types=$types
  [ "$stem" = SmolLM2-135M-Instruct.Q4_1 ] && stem_types="$types $smol_types"
  for type in $stem_types; do
    out="$root/testdata/quantize/$stem.$type.tsv"
    python3 "$root/scripts/gguf_hashes.py" "$models/requant/$stem.$type.gguf" > "$out"
    printf '%6d lines  %s\n' "$(wc -l < "$out")" "${out#"$root"/}"
  done
done
