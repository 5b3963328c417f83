#!/usr/bin/env bash
# Interleaves `hidream-studio bench dit` and the reference (tools/bench/bench_dit.py) ROUNDS times
# on the same configs, so both see the same machine conditions, and prints every row. This VM's
# timings drift by ±15 % over minutes; compare the minimum over rounds.
#
#   tools/bench/compare_dit.sh /path/to/HiDream-I1 /path/to/python ROUNDS CONFIG...
set -euo pipefail
hidream=$1 python=$2 rounds=$3
shift 3
configs=()
for c in "$@"; do configs+=(--config "$c"); done
threads=${RAYON_NUM_THREADS:-$(nproc)}
for ((r = 1; r <= rounds; r++)); do
  echo "# round $r: ours"
  RAYON_NUM_THREADS=$threads ./target/release/hidream-studio bench dit "${configs[@]}" --iters 3 | tail -n +2
  echo "# round $r: reference"
  "$python" tools/bench/bench_dit.py --hidream-i1 "$hidream" --threads "$threads" --iters 3 "${configs[@]}" 2>/dev/null | grep -v '^config'
done
