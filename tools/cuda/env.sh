# Source this (`source tools/cuda/env.sh`) to build with the CUDA toolkit that tools/cuda/build.sh
# installs in .cuda/toolkit. It exports CUDA_ROOT, PATH, LD_LIBRARY_PATH and CUDA_COMPUTE_CAP.
# For the build machine (no GPU) only: on the GPU machine use its own driver and libraries.

_hs_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Physical path, as tools/cuda/build.sh spells it (build scripts watch CUDA_ROOT).
_hs_cuda="$(cd -P "$_hs_root/.cuda" 2>/dev/null && pwd)/toolkit/nvidia/cu13"
if [[ ! -x "$_hs_cuda/bin/nvcc" ]]; then
  echo "tools/cuda/env.sh: no toolkit in $_hs_cuda; run tools/cuda/build.sh --toolkit-only first" >&2
  unset _hs_root _hs_cuda
  return 1 2>/dev/null || exit 1
fi

# cudarc's build script searches $CUDA_ROOT/{lib,lib/stubs} for the libraries it links, and finds
# the CUDA version from `nvcc --version` (nvcc from PATH).
export CUDA_ROOT="$_hs_cuda"
case ":$PATH:" in *":$CUDA_ROOT/bin:"*) ;; *) export PATH="$CUDA_ROOT/bin:$PATH" ;; esac

# The toolkit's libraries (cublas, cudart, curand, nvrtc) so the CUDA binary starts here. The stub
# libcuda.so.1 only where no real driver is installed: it would shadow the real one.
_hs_ld="$CUDA_ROOT/lib"
if ! { PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; }; then
  _hs_ld="$_hs_ld:$CUDA_ROOT/lib/stubs"
fi
case ":${LD_LIBRARY_PATH:-}:" in
  *":$_hs_ld:"*) ;;
  *) export LD_LIBRARY_PATH="$_hs_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac

# The H200 is sm_90; there is no nvidia-smi on the build machine to detect it. Override if needed.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
unset _hs_root _hs_cuda _hs_ld
