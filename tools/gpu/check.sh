#!/usr/bin/env bash
# The one prepared device check (tools/gpu/README.md). On the GPU machine it:
#   1. runs every reference fixture on CUDA in f32 (TF32 off) and in bf16 (`hidream-studio parity`);
#   2. times one forward of the full-size HiDream-I1 transformer (real config, random bf16
#      weights made on the GPU), 1024², 128 + 128 tokens, batch 1 and 2, for diffusers'
#      HiDreamImageTransformer2DModel and for ours on the same weights (saved by the Python side
#      in the official sharded layout and loaded by `bench dit`);
#   3. runs the whole pipeline at 1024², Dev 28 steps and Full 50 steps, with random full-size
#      weights (`bench pipeline`): per-step, decode, total, and our peak GPU memory while
#      encoding, denoising (encoders freed) and decoding;
# and writes everything as one markdown report: $OUT/gpu-report.md when $OUT is set, else --out.
# Every section has a time budget; the whole stays under CHECK_BUDGET_S (default 450 s, for the
# device's 8-minute slot).
#
# With --tiers it runs only the memory tiers instead (issue 18): `bench pipeline` at 1024²,
# Dev, TIER_STEPS (default 4) steps, for a bf16, a Q8_0 and a Q4_K_M transformer (random
# weights), each with every block resident and with only TIER_RESIDENT (default 24) of the 48
# blocks resident and the rest streamed from host memory.
#
# With --dry-run (no GPU) it runs only the fixture parity on the CPU — f32, and bf16 unless
# --no-bf16 — with the release or debug build (or $HIDREAM_BIN), and marks the GPU sections
# skipped. Exit status 1 when any parity check fails (or cannot run), else 0.
#
#   tools/gpu/check.sh [--dry-run] [--no-bf16] [--tiers] [--out REPORT.md]
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 2

dry_run=0 bf16=1 tiers=0 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --no-bf16) bf16=0 ;;
    --tiers) tiers=1 ;;
    --out) out=${2:?--out needs a file name}; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && report="$OUT/gpu-report.md"
else
  report=${out:-gpu-report.md}
fi
# The device slot is 8 minutes; a CPU dry run is only bounded so that it cannot hang.
if [ "$dry_run" -eq 1 ]; then budget=${CHECK_BUDGET_S:-1200}; else budget=${CHECK_BUDGET_S:-450}; fi
started=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/hidream-gpu-check.XXXXXX")
save_dir=""
cleanup() { [ -n "$save_dir" ] && rm -rf "$save_dir"; rm -rf "$work"; }
trap cleanup EXIT

# ---------------------------------------------------------------------------------- helpers
body="$work/body.md"    # the sections, in order
timing="$work/timing.md" # one row per section
: >"$body"
: >"$timing"
parity_failed=0

log() { echo "[check.sh $(($(date +%s) - started)) s] $*" >&2; }
section() { printf '\n## %s\n\n' "$1" >>"$body"; }
para() { printf '%s\n' "$@" >>"$body"; }
left() { echo $((budget - ($(date +%s) - started))); }

# run NAME WANT_S CMD... : runs CMD with stdout to $work/NAME.out, stderr to $work/NAME.err,
# limited to WANT_S seconds or what is left of the budget. Sets $status to ok, failed (exit
# code), timeout or skipped (no time left).
run() {
  local name=$1 want=$2
  shift 2
  local limit t0 rc
  limit=$(left)
  [ "$want" -lt "$limit" ] && limit=$want
  if [ "$limit" -lt 10 ]; then
    status="skipped (time budget spent)"
    printf '| %s | %s | – | %s |\n' "$name" "$want" "$status" >>"$timing"
    : >"$work/$name.out"
    : >"$work/$name.err"
    return 1
  fi
  log "$name (up to $limit s)"
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timed out after $limit s" ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '| %s | %s | %s | %s |\n' "$name" "$limit" "$(($(date +%s) - t0))" "$status" >>"$timing"
  [ "$rc" -eq 0 ]
}

# The last lines of a step's stderr, fenced, for the report.
tail_err() {
  [ -s "$work/$1.err" ] && para '' '```' "$(tail -n "${2:-15}" "$work/$1.err")" '```'
  return 0
}

# ------------------------------------------------------------------------------- the binary
bin=${HIDREAM_BIN:-}
python=${PYTHON:-python3}
# zstd's command, else Python's zstd module (standard from 3.14, or the zstandard package).
unzstd_to() { # SRC DST
  if command -v zstd >/dev/null; then
    zstd -q -d "$1" -o "$2"
  else
    "$python" - "$1" "$2" <<'EOF'
import sys
try:
    from compression import zstd
    data = zstd.decompress(open(sys.argv[1], "rb").read())
except ImportError:
    import zstandard
    data = zstandard.ZstdDecompressor().stream_reader(open(sys.argv[1], "rb")).read()
open(sys.argv[2], "wb").write(data)
EOF
  fi
}
if [ -z "$bin" ] && [ "$dry_run" -eq 0 ] && [ -f .cuda/dist/hidream-studio.zst ]; then
  bin="$work/hidream-studio"
  if unzstd_to .cuda/dist/hidream-studio.zst "$bin"; then
    chmod +x "$bin"
  else
    echo "check.sh: cannot decompress .cuda/dist/hidream-studio.zst (no zstd command, no Python zstd module)" >&2
    bin=""
  fi
fi
if [ -z "$bin" ] && [ "$dry_run" -eq 0 ] && [ -x .cuda/dist/hidream-studio ]; then
  bin=.cuda/dist/hidream-studio
fi
if [ -z "$bin" ] && [ "$dry_run" -eq 1 ]; then
  for candidate in target/release/hidream-studio target/debug/hidream-studio; do
    [ -x "$candidate" ] && bin=$candidate && break
  done
fi
if [ -z "$bin" ]; then
  if [ "$dry_run" -eq 1 ]; then
    log "no built binary: cargo build --release"
    cargo build --release --quiet && bin=target/release/hidream-studio
  else
    echo "check.sh: no CUDA binary: build it with tools/cuda/build.sh (.cuda/dist/hidream-studio.zst) and carry .cuda/dist" >&2
  fi
fi

if [ "$dry_run" -eq 0 ]; then
  # The CUDA 13 user-space libraries come with the machine's PyTorch (its nvidia-* packages).
  libdirs=$("$python" - <<'EOF' 2>/dev/null
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()])
try:
    import nvidia
    roots.update(os.path.dirname(p) for p in nvidia.__path__)
except ImportError:
    pass
try:
    import torch
    roots.add(os.path.dirname(os.path.dirname(torch.__file__)))
except ImportError:
    pass
want = ["libcublas.so.13", "libcublasLt.so.13", "libcudart.so.13", "libcurand.so.10", "libnvrtc.so.13"]
dirs = []
for root in sorted(roots):
    for name in want:
        for hit in glob.glob(os.path.join(root, "**", name), recursive=True):
            d = os.path.dirname(hit)
            if d not in dirs:
                dirs.append(d)
print(":".join(dirs))
EOF
)
  export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # diffusers and its pure-Python dependencies travel as wheels in .whl/ (README.md); installed
  # beside, not into, the machine's Python, so its torch and numpy stay as they are.
  if ! "$python" -c 'import diffusers' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    log "installing the carried wheels"
    "$python" -m pip install --quiet --no-index --no-deps --target "$work/py" .whl/*.whl >&2 &&
      export PYTHONPATH="$work/py${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi

# -------------------------------------------------------------------------------- the header
{
  echo "# HiDream Studio GPU check"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| mode | $([ "$dry_run" -eq 1 ] && echo 'dry run (CPU, fixtures only)' || echo 'GPU') |"
  echo "| commit | $(git rev-parse --short HEAD 2>/dev/null || echo unknown) |"
  echo "| binary | ${bin:-none} ($([ -n "$bin" ] && "$bin" --version 2>/dev/null | head -1)) |"
  echo "| host | $(uname -sr), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) |"
  if [ "$dry_run" -eq 0 ]; then
    echo "| GPU | $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1) |"
    echo "| CUDA (driver) | $(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1) |"
    echo "| Python | $("$python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)' 2>/dev/null) $("$python" -c 'import diffusers; print("diffusers", diffusers.__version__)' 2>/dev/null || echo 'diffusers missing') |"
    echo "| libraries | LD_LIBRARY_PATH=${libdirs:-(none found)} |"
    [ -n "$bin" ] && ldd "$bin" 2>/dev/null | grep -q 'not found' &&
      echo "| missing | $(ldd "$bin" | grep 'not found' | awk '{print $1}' | tr '\n' ' ') |"
  fi
} >"$work/header.md"

# ------------------------------------------------------------------------------------ parity
device=cuda
[ "$dry_run" -eq 1 ] && device=cpu
parity() { # dtype budget
  section "Fixture parity, $device, $1"
  if [ -z "$bin" ]; then
    para "Not run: no binary."
    parity_failed=1
    return
  fi
  if run "parity-$1" "$2" "$bin" parity tests/fixtures --device "$device" --dtype "$1" --markdown; then
    cat "$work/parity-$1.out" >>"$body"
  elif [ "$dry_run" -eq 1 ] && [ "$1" != f32 ] && grep -q 'unsupported dtype' "$work/parity-$1.out" &&
    ! grep '^| ' "$work/parity-$1.out" | tail -n +3 | grep -qv 'unsupported dtype'; then
    # Every case stopped at an op this CPU build has no kernel for: not measurable here.
    reason=$(grep -o 'ERROR: [^|]*' "$work/parity-$1.out" | head -1 | sed 's/ *$//')
    para "skipped: not supported on the CPU ($reason)."
    sed -i '$ s/| failed (exit [0-9]*) |$/| not supported on the CPU |/' "$timing"
  else
    parity_failed=1
    cat "$work/parity-$1.out" >>"$body"
    para '' "**$status.**"
    tail_err "parity-$1"
  fi
}
# ------------------------------------------------------------------------------ memory tiers
tiers() {
  section "Memory tiers: bf16, Q8_0 and Q4_K_M, streaming off and on"
  if [ -z "$bin" ]; then
    para "Not run: no binary."
    return
  fi
  local steps=${TIER_STEPS:-4} resident=${TIER_RESIDENT:-24} size=(--size 1024 --device cuda --dtype bf16)
  # A dry run checks the commands on the tiny fixture configs (4 blocks, 1 kept resident).
  [ "$dry_run" -eq 1 ] && size=(--size 64 --snapshot-configs --device cpu --dtype f16) && resident=1
  : >"$work/tiers.out"
  for type in bf16 q8_0 q4_k_m; do
    for streaming in off on; do
      local args=(bench pipeline --preset dev --steps "$steps" "${size[@]}" --transformer-type "$type" --json)
      [ "$streaming" = on ] && args+=(--resident-blocks "$resident")
      run "tiers-$type-$streaming" 120 "$bin" "${args[@]}"
      cat "$work/tiers-$type-$streaming.out" >>"$work/tiers.out"
      [ "$status" != ok ] && para "\`$type\`, streaming $streaming: $status" && tail_err "tiers-$type-$streaming" 5
    done
  done
  "$python" tools/gpu/report.py tiers "$work/tiers.out" >>"$body"
}

if [ "$tiers" -eq 1 ]; then
  tiers
else
para '' "Each fixture (tests/fixtures/CASE) runs through the library's pipeline with the reference's" \
  "noise; the error is ‖ours − ref‖₂ / ‖ref‖₂ of the final latents, the parity tests' metric." \
  "The reference is the official float32 pipeline. The f32 bound is the tests' 1e-4 (TF32 is" \
  "switched off). The bf16 bound, 0.25, is explained in src/cli/parity.rs: bf16 rounds at" \
  "2⁻⁹ relative, one reference forward in bf16 already drifts by the \"reference's own bf16" \
  "drift\" column, and guidance multiplies that by up to 5."
# A few seconds each on the GPU; minutes with a CPU debug build.
parity_budget=45
[ "$dry_run" -eq 1 ] && parity_budget=500
parity f32 "$parity_budget"
if [ "$bf16" -eq 1 ]; then
  parity bf16 "$parity_budget"
fi

# ------------------------------------------------------------------------- GPU-only sections
if [ "$dry_run" -eq 1 ]; then
  for title in "Transformer forward, full size, 1024², diffusers vs ours" \
    "Peak GPU memory" "End to end, 1024², Dev 28 steps and Full 50 steps"; do
    section "$title"
    para "skipped (dry run)"
  done
else
  section "Transformer forward, full size, 1024², diffusers vs ours"
  config=tools/gpu/hidream-i1-transformer.json
  # The 34 GB of weights go to RAM (/dev/shm) when it has room, else to the disk.
  for dir in /dev/shm "$work"; do
    avail=$(df -B1 --output=avail "$dir" 2>/dev/null | tail -1)
    if [ "${avail:-0}" -gt 40000000000 ]; then
      save_dir="$dir/hidream-check-transformer.$$"
      break
    fi
  done
  save_args=()
  [ -n "$save_dir" ] && save_args=(--save "$save_dir")
  run diffusers-dit 120 "$python" tools/gpu/diffusers_dit.py --config "$config" --batch 1 --batch 2 \
    --iters 3 "${save_args[@]}"
  diffusers_status=$status
  if [ -n "$save_dir" ] && grep -q '"event": "saved"' "$work/diffusers-dit.out"; then
    weights="the same weights: diffusers' saved in the official sharded layout ($save_dir) and loaded by ours"
    ours_config=$save_dir
  else
    weights="independent weights of the same distributions (the diffusers run could not save its weights: $diffusers_status); ours drawn on the GPU from seed 0"
    ours_config=$config
  fi
  run ours-dit 90 "$bin" bench dit --config "$ours_config" --device cuda --dtype bf16 --batch 1,2 \
    --iters 3 --json
  ours_status=$status
  [ -n "$save_dir" ] && rm -rf "$save_dir"
  "$python" tools/gpu/report.py dit "$work/diffusers-dit.out" "$work/ours-dit.out" >>"$body"
  para '' "Weights: $weights. diffusers: \`$diffusers_status\`; ours: \`$ours_status\`."
  [ "$diffusers_status" != ok ] && tail_err diffusers-dit
  [ "$ours_status" != ok ] && tail_err ours-dit

  if "$bin" bench pipeline --help >/dev/null 2>&1; then
    run pipeline-dev 60 "$bin" bench pipeline --preset dev --size 1024 --device cuda --dtype bf16 --json
    dev_status=$status
    run pipeline-full 110 "$bin" bench pipeline --preset full --size 1024 --device cuda --dtype bf16 --json
    full_status=$status
    cat "$work/pipeline-dev.out" "$work/pipeline-full.out" >"$work/pipeline.out"
    section "Peak GPU memory"
    "$python" tools/gpu/report.py memory "$work/pipeline.out" >>"$body"
    section "End to end, 1024², Dev 28 steps and Full 50 steps"
    "$python" tools/gpu/report.py pipeline "$work/pipeline.out" >>"$body"
    para '' "Dev: \`$dev_status\`; Full: \`$full_status\`."
    [ "$dev_status" != ok ] && tail_err pipeline-dev
    [ "$full_status" != ok ] && tail_err pipeline-full
  else
    section "Peak GPU memory"
    para "Not run: this binary has no \`bench pipeline\`."
    section "End to end, 1024², Dev 28 steps and Full 50 steps"
    para "Not run: this binary has no \`bench pipeline\`."
  fi
fi

fi

# ------------------------------------------------------------------------------- the report
{
  cat "$work/header.md"
  cat "$body"
  printf '\n## Time\n\n| section | budget s | used s | status |\n|---|---:|---:|---|\n'
  cat "$timing"
  printf '\nTotal: %s s of %s s.\n' "$(($(date +%s) - started))" "$budget"
} >"$report"
cat "$report"
log "report: $report"
exit "$parity_failed"
