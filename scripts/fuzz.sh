#!/usr/bin/env bash
# Run Eddy's fuzz targets (fuzz/, cargo-fuzz + libFuzzer) for a bounded time each.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 60 (CI calls `scripts/fuzz.sh 30`)
#   TARGET              gguf_model, tokenizer, state_load, chat_template, constraint (default: all five)
#
# Works from any directory and on a fresh clone: installs the nightly toolchain and cargo-fuzz
# if they are missing (both idempotent), fetches the models, builds the targets, regenerates
# the seed corpora (fuzz/corpus/<target>/seed-*; inputs the fuzzer found earlier are kept and
# reused), then runs each target with -max_total_time. Prints, per target, the runs, runs/s
# and peak RSS; exits non-zero if any target crashed, leaked past the RSS limit or timed out
# (the input is in fuzz/artifacts/<target>/, see fuzz/README.md to reproduce it).
#
# Environment: EDDY_FUZZ_SANITIZER (address, the default, or none: more runs/s for long
# campaigns; switching rebuilds everything); EDDY_FUZZ_MODEL / EDDY_FUZZ_GEMMA / EDDY_FUZZ_QWEN (model paths, see
# fuzz/README.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf_model tokenizer state_load chat_template constraint)
sanitizer=${EDDY_FUZZ_SANITIZER:-address}
CARGO_FUZZ_VERSION=0.13.2

log() { printf 'fuzz: %s\n' "$*" >&2; }

case $secs in
  '' | *[!0-9]*) log "SECONDS_PER_TARGET must be a whole number, got '$secs'"; exit 2 ;;
esac

# Longest input per target: a GGUF seed is a whole tiny model (the largest is 55 KB) or the
# first 64 KiB of a real file; tokenizer and state inputs are texts and states of a few KB.
max_len_of() {
  case $1 in
    gguf_model) echo 65536 ;;
    tokenizer | state_load) echo 4096 ;;
    chat_template | constraint) echo 8192 ;;
    *) log "unknown target '$1' (gguf_model, tokenizer, state_load, chat_template, constraint)"; exit 2 ;;
  esac
}
for t in "${targets[@]}"; do max_len_of "$t" > /dev/null; done

start=$(date +%s)

# ---- tools ----
if ! rustup run nightly rustc --version > /dev/null 2>&1; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2> /dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# ---- models, build, seeds ----
for m in smollm2 gemma3 qwen2 texts; do scripts/fetch-models.sh "$m"; done

log "building the targets (sanitizer: $sanitizer)"
build_start=$(date +%s)
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
if [ "$sanitizer" = none ]; then
  # Without a sanitizer runtime nothing defines the coverage hooks in make-seeds (which does
  # not link libFuzzer): build the targets by name, and make-seeds without instrumentation.
  for t in "${targets[@]}"; do cargo +nightly fuzz build --sanitizer none "$t"; done
  cargo +nightly build --release --manifest-path fuzz/Cargo.toml --bin make-seeds \
    --target-dir fuzz/target/plain
  make_seeds=fuzz/target/plain/release/make-seeds
else
  # cargo fuzz builds for the host triple; make-seeds is built with the targets.
  cargo +nightly fuzz build --sanitizer "$sanitizer"
  make_seeds=fuzz/target/$host/release/make-seeds
fi
log "built in $(($(date +%s) - build_start)) s"
"$make_seeds" "$root/fuzz/corpus"

# ---- runs ----
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
for t in "${targets[@]}"; do
  log "running $t for $secs s"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  status=0
  cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" -timeout=30 \
    -print_final_stats=1 > "$logs/$t.log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$logs/$t.log")
  if [ "$status" -eq 0 ]; then
    printf 'fuzz: %-10s ok: %s runs in %s s (%s runs/s), peak RSS %s MB\n' \
      "$t" "${runs:-?}" "$secs" "${rate:-?}" "${rss:-?}"
  else
    failed+=("$t")
    printf 'fuzz: %-10s FAILED (exit %s) after %s runs; end of its log:\n' "$t" "$status" "${runs:-?}"
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)|Uses: ' "$logs/$t.log" | tail -n 60 | sed 's/^/    /'
    for a in $(grep -o "fuzz/artifacts/$t/[a-z-]*-[0-9a-f]*" "$logs/$t.log" | sort -u); do
      printf 'fuzz: reproduce with: cargo +nightly fuzz run %s %s\n' "$t" "$a"
    done
  fi
done

log "total $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  log "failed: ${failed[*]}"
  exit 1
fi
