#!/usr/bin/env bash
# Every test of the workspace on a fresh clone, with nothing done before.
#
# Fetches the real models first (scripts/fetch-models.sh: idempotent, a second run downloads
# nothing), then runs `cargo test --workspace` with EDDY_REQUIRE_MODELS=1, so that a test whose
# model is missing fails instead of being reported as passed. Arguments are passed to cargo
# test, e.g. `scripts/test.sh -p eddy-cli --test run` or `scripts/test.sh -- --nocapture`.
#
# Environment: EDDY_MODELS_DIR (where the models are; default models/), EDDY_GOLDEN_DIR (the
# reference outputs of llama.cpp; default testdata/golden, see testdata/README.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/fetch-models.sh
export EDDY_REQUIRE_MODELS=1
# Every reader of the reference files takes the in-repository copy unless told otherwise.
export EDDY_GOLDEN_DIR="${EDDY_GOLDEN_DIR:-$root/testdata/golden}"
exec cargo test --workspace "$@"
