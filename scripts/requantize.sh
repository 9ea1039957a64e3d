#!/usr/bin/env bash
# Requantize GGUF models with llama.cpp's own quantizer, so that speed tables can be measured on
# the quantization types llama.cpp produces (Q4_0, Q8_0, Q4_K_M, Q5_K_M, Q6_K) of the models we
# have, with llama.cpp's exact tensor-type choices.
#
# Usage: scripts/requantize.sh [MODEL...]
#   MODEL  default models/SmolLM2-135M-Instruct.Q4_1.gguf and
#          models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (fetched by scripts/fetch-models.sh
#          smollm2 / qwen2 if missing)
# Environment: TYPES (default "Q4_0 Q8_0 Q4_K_M Q5_K_M Q6_K"; any TYPE of llama-quantize --help),
#   THREADS (default 1: quantizer threads; the machine is shared).
# Output: models/requant/<stem>.<TYPE>.gguf, <stem> being MODEL's file name without .gguf (it
#   keeps the source's own type: the sources are already quantized, so every tensor is
#   dequantized and quantized again, --allow-requantize). An output that exists and is newer
#   than its input is kept. Prints the size of each output.
#
# The quantizer is tools/llama-bench's llama-quantize: llama_model_quantize of the llama.cpp
# vendored in llama-cpp-sys-2 =0.1.161, the same llama.cpp as scripts/bench-vs-llama.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models="${EDDY_MODELS_DIR:-$root/models}"
out_dir="$models/requant"
types=${TYPES:-Q4_0 Q8_0 Q4_K_M Q5_K_M Q6_K}
threads=${THREADS:-1}

log() { printf 'requantize: %s\n' "$*" >&2; }

# Default models and the fetch-models.sh target of each.
declare -A fetch_target=(
  ["$models/SmolLM2-135M-Instruct.Q4_1.gguf"]=smollm2
  ["$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]=qwen2
)
[ $# -gt 0 ] || set -- "$models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  "$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

for model in "$@"; do
  [ -f "$model" ] && continue
  if [ -n "${fetch_target[$model]:-}" ]; then
    log "fetching $model"
    "$root/scripts/fetch-models.sh" "${fetch_target[$model]}"
  else
    log "no such model: $model"
    exit 1
  fi
done

# Built from its own directory so that tools/llama-bench/.cargo/config.toml applies (target
# features -> ggml AVX2/AVX-512 options, AMX off); a RUSTFLAGS from the caller would replace it.
log "building llama-quantize (tools/llama-bench; the first build of llama.cpp takes several minutes)"
(cd "$root/tools/llama-bench" &&
  env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS nice cargo build --release --bin llama-quantize) >&2
quantize="$root/tools/llama-bench/target/release/llama-quantize"

mkdir -p "$out_dir"
outputs=()
for model in "$@"; do
  stem=$(basename "$model" .gguf)
  for type in $types; do
    type=${type^^} # llama-quantize takes any case; the file name always has llama.cpp's
    out="$out_dir/$stem.$type.gguf"
    if [ "$out" -nt "$model" ]; then
      log "$(basename "$out") is newer than its input, kept"
    else
      log "$(basename "$model") -> $type"
      nice "$quantize" "$model" "$out" "$type" --allow-requantize -t "$threads"
    fi
    outputs+=("$out")
  done
done

for out in "${outputs[@]}"; do
  printf '%8.1f MiB  %s\n' "$(stat -c %s "$out" | awk '{ print $1 / 1048576 }')" "${out#"$root"/}"
done
