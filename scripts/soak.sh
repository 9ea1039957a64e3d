#!/usr/bin/env bash
# Soak: stream a million tokens through a small sink + window arena and record the resident set
# and the speed at intervals (runtime/examples/soak.rs). Fails if the resident set grows.
#
#   scripts/soak.sh [MODEL] [-- soak flags]      e.g. scripts/soak.sh -- --tokens 200000 -t 2
#
# Defaults: SmolLM2 (the default model), 1 000 000 tokens of the Shakespeare texts in batches of
# 32 through 4 sinks + a 252-token window (the StreamingLLM setting), one thread, a line every
# 50 000 tokens. `--mode generate` samples every token instead (the decode path, ~10x slower).
# The table goes to stdout and to target/soak-<time>.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ $# -gt 0 ] && [ "$1" != "--" ]; then model=$1; shift; fi
[ "${1:-}" = "--" ] && shift
scripts/fetch-models.sh smollm2 texts
cargo build --release -p eddy --example soak
mkdir -p target
log=target/soak-$(date -u +%Y%m%dT%H%M%SZ).log
target/release/examples/soak "$model" "$@" | tee "$log"
echo "log: $log"
