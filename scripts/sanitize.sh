#!/usr/bin/env bash
# Eddy under the sanitizers and Miri, where they reach.
#
#   scripts/sanitize.sh [asan-quant|asan-c|miri|miri-full]...   (default: asan-quant asan-c miri-full)
#
# asan-quant  eddy-quant's tests (and the runtime's unit tests: the thread pool's unsafe) with
#             the Rust code built under AddressSanitizer (nightly, -Zsanitizer=address
#             -Zbuild-std), once on the best x86 tier of this CPU and once with
#             EDDY_QUANT_TIER=avx2, so every SIMD kernel this machine can run (AVX2, AVX-512
#             VNNI: dot products, matrix and panel kernels) executes instrumented.
#             parity_all also runs the scalar tier.
# asan-c      the C and C++ examples built with -fsanitize=address,undefined against libeddy.a
#             and run on SmolLM2: the C side of every call (buffers, sizes, callbacks) checked.
#             zero_alloc.c and static_arena.c are left out: they wrap malloc at link time,
#             which AddressSanitizer replaces.
# miri        Miri (nightly) over eddy-quant's unit tests and the runtime's GGUF reader: its unit
#             tests and the 26 hostile-file tests of runtime/tests/hostile_gguf.rs. Miri runs
#             the scalar tier (it cannot execute the AVX-512 intrinsics); the long loops of the
#             unit tests are shortened under cfg(miri). CI runs this one.
# miri-full   miri, then every format's scalar quantize, dequantize and vec_dot
#             (quant/tests/parity_all.rs on one-block rows under cfg(miri)): 8 minutes more.
#             quant/tests/golden_vectors.rs took 2 min 17 s per format here (each test parses
#             the 0.5 MB JSON file under Miri), so it is left to the normal test run.
#
# Installs what it needs (nightly with rust-src and miri, via rustup; clang is not needed) and
# fetches SmolLM2 for asan-c. Exits non-zero on the first finding. Works from any directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -gt 0 ] || set -- asan-quant asan-c miri-full
start=$(date +%s)
step() { printf '\n=== sanitize [%4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

host=$(rustc -vV | sed -n 's/^host: //p')
need_nightly() {
  rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
  for c in "$@"; do
    rustup component list --toolchain nightly --installed | grep -q "^$c" ||
      rustup component add --toolchain nightly "$c"
  done
}

asan_quant() {
  need_nightly rust-src
  # The sanitizer, and the debug assertions and overflow checks that the test profile leaves
  # out of eddy-quant (workspace Cargo.toml): its kernels run here with both, and its unit test
  # checked_runs_have_their_checks fails if they are off (EDDY_REQUIRE_CHECKS). A separate
  # target directory keeps the normal builds.
  local checks="-Cdebug-assertions=on -Coverflow-checks=on"
  local env=(RUSTFLAGS="-Zsanitizer=address $checks" RUSTDOCFLAGS="-Zsanitizer=address $checks"
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" EDDY_REQUIRE_CHECKS=1)
  local cargo=(cargo +nightly test -Zbuild-std --target "$host" --target-dir target/asan)
  step "asan-quant: the best tier of this CPU ($(grep -q -m1 avx512_vnni /proc/cpuinfo && echo avx512 || echo avx2))"
  env "${env[@]}" "${cargo[@]}" -p eddy-quant
  env "${env[@]}" "${cargo[@]}" -p eddy --lib
  step "asan-quant: EDDY_QUANT_TIER=avx2"
  env "${env[@]}" EDDY_QUANT_TIER=avx2 EDDY_REQUIRE_TIER=avx2 "${cargo[@]}" -p eddy-quant
}

asan_c() {
  scripts/fetch-models.sh smollm2
  # The same packages as CI's C-examples step builds: cargo unifies dependency features per
  # invocation, and `-p eddy-ffi` alone rebuilt the whole release library there (130 s).
  cargo build --release -p eddy-ffi -p eddy-cli
  local out model=models/SmolLM2-135M-Instruct.Q4_1.gguf
  out=$(mktemp -d)
  local san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
  local libs="target/release/libeddy.a -lm -lpthread -ldl"
  step "asan-c: build the examples with $san"
  for ex in version generate abi_errors chat; do
    # shellcheck disable=SC2086
    cc -std=c99 -Wall -Wextra -Werror -Iinclude $san "examples/c/$ex.c" $libs -o "$out/$ex"
  done
  # shellcheck disable=SC2086
  c++ -std=c++17 -Wall -Wextra -Werror -Iinclude $san examples/cpp/stream.cpp $libs -o "$out/stream"
  step "asan-c: run them on $model"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  "$out/version"
  "$out/abi_errors" "$model"
  "$out/generate" "$model" "The capital of France is" 32 >/dev/null
  "$out/stream" "$model" 16 >/dev/null
  printf 'What is the capital of France?\nName three colours.\nWhat did I ask first?\n' |
    "$out/chat" "$model" 64 >/dev/null
  rm -rf "$out"
  echo "asan-c: no finding"
}

miri() {
  need_nightly miri rust-src
  export MIRIFLAGS="-Zmiri-disable-isolation"
  step "miri: eddy-quant's unit tests (scalar tier)"
  cargo +nightly miri test -p eddy-quant --lib
  step "miri: the GGUF reader (unit tests and runtime/tests/hostile_gguf.rs)"
  cargo +nightly miri test -p eddy --lib gguf::
  cargo +nightly miri test -p eddy --test hostile_gguf
}

miri_full() {
  miri
  step "miri: every format's scalar quantize, dequantize and vec_dot (parity_all, one-block rows)"
  cargo +nightly miri test -p eddy-quant --test parity_all
}

for what in "$@"; do
  case "$what" in
    asan-quant) asan_quant ;;
    asan-c) asan_c ;;
    miri) miri ;;
    miri-full) miri_full ;;
    *) echo "sanitize: unknown step '$what' (asan-quant|asan-c|miri|miri-full)" >&2; exit 2 ;;
  esac
done
step "done"
