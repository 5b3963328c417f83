#!/usr/bin/env bash
# Build the CUDA binary of HiDream Studio on a machine WITHOUT a GPU, for a GPU machine
# with NVIDIA driver 580 (CUDA 13.0), an H200 (sm_90), no Rust and no network.
#
#   tools/cuda/build.sh                 toolkit + stub + `cargo build --features cuda` + strip + zstd + smoke test
#   tools/cuda/build.sh --toolkit-only  only install the toolkit and stub, then print the env lines
#
# Everything it writes lives in the repository but untracked: .cuda/toolkit (the CUDA toolkit from
# PyPI wheels), .cuda/dist (the result) and target/cuda (cargo's build folder, kept apart from the
# CPU build in target/ so neither invalidates the other). Rerunning skips what is already there.
# Why the pins, the links and the stub: README.md, "Building for NVIDIA GPUs".
set -euo pipefail

# ---- Pinned versions (one place) -------------------------------------------------------------
# The CUDA 13 wheels WITHOUT a -cu12/-cu13 suffix. All from CUDA 13.0 Update 2: the GPU machine's
# driver 580 supports CUDA 13.0 and refuses PTX emitted by a newer toolkit ("unsupported PTX
# version"), so nvcc/nvvm must stay on 13.0.x. nvcc alone is not enough: cicc is in nvidia-nvvm and
# the crt headers in nvidia-cuda-crt.
TOOLKIT_PINS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.1.0.3
  nvidia-curand==10.4.0.35
)
# The H200 is sm_90: candle-kernels' PTX and its statically built MoE kernels target it. There is no
# nvidia-smi here to detect it.
COMPUTE_CAP=90
# The wheels ship versioned libraries only; the linker wants these unversioned.
UNVERSIONED_LIBS=(cublas cublasLt cudart nvrtc curand)
# CUDA_ERROR_STUB_LIBRARY: what every function of the toolkit's own stubs/libcuda.so returns.
STUB_ERROR=34

# ---- Paths -------------------------------------------------------------------------------------
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# Physical paths: a git worktree may symlink .cuda and target to the main checkout's to share the
# 1.2 GB toolkit and the dependencies already built; cargo only reuses them when CUDA_ROOT (which
# build scripts watch) and the target folder are spelled the same.
mkdir -p "$ROOT/.cuda" "$ROOT/target"
CUDA_DIR="$(cd -P "$ROOT/.cuda" && pwd)"
TOOLKIT="$CUDA_DIR/toolkit"
CUDA_ROOT="$TOOLKIT/nvidia/cu13"          # where the wheels put bin/, include/, lib/, nvvm/
STUB_DIR="$CUDA_ROOT/lib/stubs"           # cudarc's build script adds $CUDA_ROOT/lib/stubs to the link search
DIST="$CUDA_DIR/dist"
BIN_NAME=hidream-studio
export CARGO_TARGET_DIR="$(cd -P "$ROOT/target" && pwd)/cuda"

TOOLKIT_ONLY=0
case "${1:-}" in
  "") ;;
  --toolkit-only) TOOLKIT_ONLY=1 ;;
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown argument: $1 (use --toolkit-only or nothing)" >&2; exit 2 ;;
esac

log() { printf '\n==> %s\n' "$*"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# ---- 1. The CUDA toolkit from PyPI -------------------------------------------------------------
# Installed with --no-deps so that only the pinned versions land (nvidia-cuda-nvcc's own unpinned
# requirements would otherwise pull the newest nvvm/crt/runtime). A stamp file records the pins;
# the install goes to a temporary folder first so an interrupted run never looks complete.
install_toolkit() {
  local want have=""
  want="$(printf '%s\n' "${TOOLKIT_PINS[@]}")"
  [[ -f "$TOOLKIT/.pins" ]] && have="$(cat "$TOOLKIT/.pins")"
  if [[ "$want" == "$have" && -x "$CUDA_ROOT/bin/nvcc" ]]; then
    log "CUDA toolkit already in $TOOLKIT (pins match), skipping"
    return
  fi
  log "Installing the CUDA toolkit wheels into $TOOLKIT"
  mkdir -p "$CUDA_DIR"
  local tmp="$CUDA_DIR/toolkit.partial"
  rm -rf "$tmp"
  python3 -m pip install --disable-pip-version-check --root-user-action=ignore --no-input --quiet \
    --no-deps --only-binary=:all: --target "$tmp" "${TOOLKIT_PINS[@]}"
  rm -rf "$TOOLKIT"
  mv "$tmp" "$TOOLKIT"
  printf '%s\n' "$want" > "$TOOLKIT/.pins"
}

# Make sure the executables are executable (nvcc calls cicc, ptxas, fatbinary, cudafe++ …).
fix_modes() {
  find "$CUDA_ROOT/bin" "$CUDA_ROOT/nvvm/bin" -maxdepth 1 -type f ! -name '*.h' -exec chmod +x {} +
}

# lib<name>.so -> lib<name>.so.<major>, e.g. libcublas.so -> libcublas.so.13.
link_unversioned() {
  local name target
  for name in "${UNVERSIONED_LIBS[@]}"; do
    # The soname file: lib<name>.so.<digits>, not .alt or builtins variants.
    target="$(cd "$CUDA_ROOT/lib" && ls "lib$name.so."* 2>/dev/null | grep -E "^lib$name\.so\.[0-9]+$" | sort -V | tail -n1 || true)"
    [[ -n "$target" ]] || { echo "no lib$name.so.N in $CUDA_ROOT/lib" >&2; exit 1; }
    ln -sfn "$target" "$CUDA_ROOT/lib/lib$name.so"
  done
}

# ---- 2. A stub libcuda.so ---------------------------------------------------------------------
# No wheel ships libcuda (it is the driver). candle enables cudarc's "dynamic-linking", so the link
# step needs -lcuda. The stub defines every cu* function cudarc's driver bindings name, each
# returning CUDA_ERROR_STUB_LIBRARY, with soname libcuda.so.1 so that the binary asks for the real
# driver's libcuda.so.1 on the GPU machine. The symbol list comes from the cudarc source that
# Cargo.lock pins, at build time, not from a hand-written list. libcuda.so.1 next to it lets the
# binary start here (for CPU work and the smoke test); never put this folder on LD_LIBRARY_PATH on
# a machine with a real driver.
make_stub() {
  local cudarc_version cudarc_dir sys c_new
  cudarc_version="$(awk '/^name = "cudarc"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
  [[ -n "$cudarc_version" ]] || { echo "cudarc not found in Cargo.lock" >&2; exit 1; }
  # Make sure the crate sources are unpacked in ~/.cargo/registry/src.
  cargo fetch --locked --quiet
  cudarc_dir="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_version" 2>/dev/null | head -n1)"
  sys="$cudarc_dir/src/driver/sys/mod.rs"
  [[ -f "$sys" ]] || { echo "cudarc $cudarc_version driver bindings not found ($sys)" >&2; exit 1; }

  # The bindings declare each function in an `extern "C" { fn cuXxx(...) -> CUresult; }` block.
  mkdir -p "$STUB_DIR"
  c_new="$STUB_DIR/libcuda_stub.c.new"
  {
    echo "/* Generated by tools/cuda/build.sh from cudarc $cudarc_version src/driver/sys/mod.rs. */"
    echo "/* Every function returns CUDA_ERROR_STUB_LIBRARY ($STUB_ERROR). */"
    grep -oE '^[[:space:]]+fn cu[A-Za-z0-9_]+\(' "$sys" | sed -E 's/^[[:space:]]+fn //; s/\($//' | sort -u |
      while read -r sym; do echo "int $sym(void) { return $STUB_ERROR; }"; done
  } > "$c_new"
  local count
  count="$(grep -c '^int cu' "$c_new")"
  (( count > 400 )) || { echo "only $count cu* symbols found in $sys: the bindings' layout changed?" >&2; exit 1; }

  if [[ -f "$STUB_DIR/libcuda.so" ]] && cmp -s "$c_new" "$STUB_DIR/libcuda_stub.c"; then
    rm -f "$c_new"
    log "Stub libcuda.so already built ($count symbols from cudarc $cudarc_version), skipping"
  else
    mv "$c_new" "$STUB_DIR/libcuda_stub.c"
    log "Building the stub libcuda.so ($count cu* symbols from cudarc $cudarc_version)"
    cc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$STUB_DIR/libcuda.so" "$STUB_DIR/libcuda_stub.c"
  fi
  ln -sfn libcuda.so "$STUB_DIR/libcuda.so.1"
}

install_toolkit
fix_modes
link_unversioned
make_stub

# The build environment, the same as tools/cuda/env.sh (cudarc detects the CUDA version by running
# `nvcc --version`; candle-kernels' nvcc needs CUDA_COMPUTE_CAP since there is no nvidia-smi).
# shellcheck source=tools/cuda/env.sh
source "$ROOT/tools/cuda/env.sh"
log "nvcc: $(nvcc --version | tail -n 2 | head -n 1)"

if (( TOOLKIT_ONLY )); then
  log "Toolkit ready. Environment (or: source tools/cuda/env.sh):"
  echo "export CUDA_ROOT=$CUDA_ROOT"
  echo "export PATH=$CUDA_ROOT/bin:\$PATH"
  echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  echo "export CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
  exit 0
fi

# ---- 3. cargo build ----------------------------------------------------------------------------
log "cargo build --release --locked --features cuda (CARGO_TARGET_DIR=target/cuda)"
start=$SECONDS
cargo build --release --locked --features cuda
echo "cargo build took $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
BIN="$CARGO_TARGET_DIR/release/$BIN_NAME"

# ---- 4. Strip a copy and compress it -----------------------------------------------------------
# The GPU machine receives the binary through a 64 MiB transfer: strip (line tables make it
# ~300 MB) and zstd -19 it. Skipped when the .zst is newer than the binary.
if ! command -v zstd >/dev/null; then
  log "Installing zstd"
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y zstd; else sudo apt-get install -y zstd; fi
fi
mkdir -p "$DIST"
if [[ -f "$DIST/$BIN_NAME.zst" && "$DIST/$BIN_NAME.zst" -nt "$BIN" ]]; then
  log "$DIST/$BIN_NAME.zst is newer than the binary, skipping strip + compress"
else
  log "Stripping and compressing"
  strip --strip-all -o "$DIST/$BIN_NAME" "$BIN"
  zstd -19 -T0 -q -f "$DIST/$BIN_NAME" -o "$DIST/$BIN_NAME.zst"
fi
unstripped=$(stat -c %s "$BIN")
stripped=$(stat -c %s "$DIST/$BIN_NAME")
compressed=$(stat -c %s "$DIST/$BIN_NAME.zst")
echo "unstripped: $unstripped bytes ($(mib "$unstripped"))"
echo "stripped:   $stripped bytes ($(mib "$stripped"))"
echo "compressed: $compressed bytes ($(mib "$compressed"))  -> $DIST/$BIN_NAME.zst"

# ---- 5. Smoke test ----------------------------------------------------------------------------
# Decompress the artefact exactly as the GPU machine will, and start it here with the stub driver.
log "Smoke test: the decompressed binary runs --help"
smoke="$(mktemp -d)"
trap 'rm -rf "$smoke"' EXIT
zstd -d -q "$DIST/$BIN_NAME.zst" -o "$smoke/$BIN_NAME"
chmod +x "$smoke/$BIN_NAME"
"$smoke/$BIN_NAME" --help | head -n 5
log "Libraries it asks for at load time (DT_NEEDED)"
readelf -d "$smoke/$BIN_NAME" | awk '/NEEDED/ { gsub(/[\[\]]/, "", $NF); print "  " $NF }'
log "ldd (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
ldd "$smoke/$BIN_NAME"
if ldd "$smoke/$BIN_NAME" | grep -q 'not found'; then
  echo "some libraries were not found" >&2
  exit 1
fi
log "Done: $DIST/$BIN_NAME.zst"
