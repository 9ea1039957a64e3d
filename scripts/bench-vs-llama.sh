#!/usr/bin/env bash
# Eddy vs llama.cpp, side by side in one run on this machine: pp (prompt tokens/s) and tg
# (generated tokens/s), with ratios eddy/llama.
#
# Usage: scripts/bench-vs-llama.sh [MODEL] [REPS]
#   MODEL  default models/SmolLM2-135M-Instruct.Q4_1.gguf (fetched by scripts/fetch-models.sh
#          smollm2 if missing)
#   REPS   repetitions inside each bench run (-r, best of REPS after one warm-up), default 3
# Environment: ROUNDS (default 3) rounds of "eddy, then llama.cpp" per thread count, interleaved
#   so that drift of the shared machine hits both alike; the best of each engine is kept.
#   THREADS (default "1 2"), PP (default 128), NG (default 64).
#
# llama.cpp is the one vendored in llama-cpp-sys-2 =0.1.161 (the version the golden numbers in
# shared/golden/speed.json were measured with), driven by tools/llama-bench with the same method
# and synthetic prompt as `eddy bench`. Absolute speeds move with the machine's load; compare the
# ratios of one run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
default_model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
model=${1:-$default_model}
reps=${2:-3}
rounds=${ROUNDS:-3}
threads_list=${THREADS:-1 2}
pp=${PP:-128}
ng=${NG:-64}

log() { printf 'bench-vs-llama: %s\n' "$*" >&2; }

if [ ! -f "$model" ]; then
  if [ "$model" = "$default_model" ]; then
    log "fetching $model"
    "$root/scripts/fetch-models.sh" smollm2
  else
    log "no such model: $model"
    exit 1
  fi
fi

log "building eddy"
(cd "$root" && nice cargo build --release -p eddy-cli) >&2
# Built from its own directory so that tools/llama-bench/.cargo/config.toml applies (target
# features -> ggml AVX2/AVX-512 options, AMX off); a RUSTFLAGS from the caller would replace it.
log "building llama.cpp (tools/llama-bench; the first build takes several minutes)"
(cd "$root/tools/llama-bench" &&
  env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS nice cargo build --release --bin llama-bench) >&2

eddy="$root/target/release/eddy"
llama="$root/tools/llama-bench/target/release/llama-bench"

results=$(mktemp)
trap 'rm -f "$results"' EXIT

for t in $threads_list; do
  for round in $(seq 1 "$rounds"); do
    log "threads $t, round $round/$rounds: eddy"
    line=$("$eddy" bench -m "$model" -t "$t" -p "$pp" -n "$ng" -r "$reps" --json)
    echo "$line" >&2
    printf 'eddy\t%s\n' "$line" >> "$results"
    log "threads $t, round $round/$rounds: llama.cpp"
    line=$("$llama" -m "$model" -t "$t" -p "$pp" -n "$ng" -r "$reps" --json)
    echo "$line" >&2
    printf 'llama\t%s\n' "$line" >> "$results"
  done
done

echo "## eddy vs llama.cpp: $(basename "$model"), pp$pp / tg$ng, best of $rounds rounds x (-r $reps)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- uptime: $(uptime)"
echo "- eddy: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
echo
python3 - "$results" <<'EOF'
import json, sys
best = {}  # (engine, threads) -> [pp, tg]
info = ""
for raw in open(sys.argv[1]):
    engine, line = raw.rstrip("\n").split("\t", 1)
    r = json.loads(line)
    if engine == "llama":
        info = f"{r.get('version', '?')}; ggml CPU: {r.get('ggml_cpu', '?')}"
    b = best.setdefault((engine, r["threads"]), [0.0, 0.0])
    b[0] = max(b[0], r["pp_tokens_per_s"])
    b[1] = max(b[1], r["tg_tokens_per_s"])
print(f"- llama.cpp: {info}")
print()
print("| threads | eddy pp | llama pp | ratio | eddy tg | llama tg | ratio |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for t in sorted({t for _, t in best}):
    e, l = best[("eddy", t)], best[("llama", t)]
    print(f"| {t} | {e[0]:.1f} | {l[0]:.1f} | {e[0] / l[0]:.2f} | {e[1]:.1f} | {l[1]:.1f} | {e[1] / l[1]:.2f} |")
EOF
