#!/usr/bin/env bash
# The StreamingLLM table on SmolLM2: perplexity of one long Shakespeare text streamed through
# the KV arena with a window of 252 and 0, 1, 2, 4, 8 sinks, against the sliding window with
# re-computation at window 256 (stride 64). Prints one JSON line per run and a Markdown table.
#
# Usage: scripts/streaming-table.sh [MAX_TOKENS]   (default 50000; takes ~30-40 min on 2 cores)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
max=${1:-50000}
scripts/fetch-models.sh smollm2 >&2
scripts/fetch-models.sh texts >&2
cargo build --release -q -p eddy-cli
eddy=target/release/eddy
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
text=$(mktemp --suffix=.txt)
out=$(mktemp -d)
# Macbeth, Othello, King Lear, Julius Caesar: well over 50 000 tokens together.
cat models/texts/macbeth_gut.txt models/texts/othello_gut.txt models/texts/lear_gut.txt \
  models/texts/julius_caesar_gut.txt > "$text"

run() { # name args…
  local name=$1; shift
  # f32 K/V, as the README's table was measured (perplexity's default became f16).
  "$eddy" perplexity -m "$model" -f "$text" --max-tokens "$max" --kv-type f32 "$@" 2>/dev/null | tail -n 1 > "$out/$name.json"
  printf '%s %s\n' "$name" "$(cat "$out/$name.json")" >&2
}
# Two single-threaded streams at a time (2 cores), then the baseline on both cores.
run sinks0 --stream --sinks 0 --window 252 & run sinks1 --stream --sinks 1 --window 252; wait
run sinks2 --stream --sinks 2 --window 252 & run sinks4 --stream --sinks 4 --window 252; wait
run sinks8 --stream --sinks 8 --window 252
run recompute --recompute --window 256 --stride 64 -t 2

python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
rows = [("sinks0", "stream, 0 sinks + 252"), ("sinks1", "stream, 1 sink + 252"),
        ("sinks2", "stream, 2 sinks + 252"), ("sinks4", "stream, 4 sinks + 252"),
        ("sinks8", "stream, 8 sinks + 252"), ("recompute", "re-computation, window 256, stride 64")]
base = json.load(open(os.path.join(d, "recompute.json")))["ppl"]
print("| run | PPL | vs re-computation | tokens scored | evaluated tok/s |")
print("|---|---|---|---|---|")
for key, label in rows:
    j = json.load(open(os.path.join(d, key + ".json")))
    print(f"| {label} | {j['ppl']:.3f} | {100 * (j['ppl'] / base - 1):+.1f} % | {j['tokens_scored']} | {j['tokens_per_s']:.0f} |")
PY
rm -rf "$text" "$out"
