#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md, ours and the reference interleaved, and prints the raw
# rows. Needs a release build, the fixtures venv (tools/fixtures/requirements.txt) and a
# checkout of HiDream-ai/HiDream-I1.
#
#   tools/bench/run_all.sh /path/to/HiDream-I1 /path/to/venv/bin/python [ROUNDS]
set -euo pipefail
hidream=$1 python=$2 rounds=${3:-3}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-$(nproc)}
threads=$RAYON_NUM_THREADS
bin=./target/release/hidream-studio
medium=${MEDIUM_SNAPSHOT:-/tmp/hidream-medium/model}
llama=tests/fixtures/llama-3.1-tiny

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $threads"
[ -d "$medium" ] || "$python" tools/bench/make_medium_snapshot.py --fixtures tests/fixtures --out "$medium"

echo "## transformer, one forward"
tools/bench/compare_dit.sh "$hidream" "$python" "$rounds" \
  tests/fixtures/full-square/model/transformer tests/fixtures/fast-long-prompt/model/transformer \
  tools/bench/medium-transformer.json

echo "## text encoders, one prompt"
for r in $(seq "$rounds"); do
  for c in clip-l clip-g t5-xxl-4-layers llama-3.1-8b-4-layers; do
    echo "# round $r ours";      $bin bench encoder --config tools/bench/encoders/$c.json --iters 3 | tail -1
    echo "# round $r reference"; "$python" tools/bench/bench_encoders.py --threads "$threads" --iters 3 \
                                   --config tools/bench/encoders/$c.json 2>/dev/null | tail -1
  done
done

echo "## pipelines, end to end (loading excluded) and per step"
ours() { # case preset steps base width height model
  $bin generate --model "$7" --llama $llama --prompt "a red circle to the left of a blue square, on white" \
    --preset "$2" --steps "$3" --base-resolution "$4" --width "$5" --height "$6" --seed 0 \
    --out /tmp/bench.png --json |
    "$python" -c "import json,sys,statistics as s; d=json.load(sys.stdin); t=d['timings']; st=[x for x in t['step_ms'] if x>0]; print(json.dumps({'impl':'ours','case':'$1','preset':'$2','steps':$3,'total_s':round((t['total_ms']-t['load_ms'])/1e3,4),'median_step_s':round(s.median(st)/1e3,4)}))"
}
theirs() {
  "$python" tools/bench/bench_pipeline.py --hidream-i1 "$hidream" --model "$7" --llama $llama --preset "$2" \
    --steps "$3" --base-resolution "$4" --width "$5" --height "$6" --threads "$threads" --runs 2 2>/dev/null |
    tail -1 | sed "s/\"impl\": \"reference\"/\"impl\": \"reference\", \"case\": \"$1\"/"
}
for r in $(seq "$rounds"); do
  for spec in "full-square full 50 64 64 64" "full-portrait full 20 64 48 80" "dev-landscape dev 28 64 80 48" \
              "fast-long-prompt fast 16 64 64 64" "dev-mixed-dtypes dev 6 64 64 64"; do
    set -- $spec
    ours "$@" tests/fixtures/$1/model
    theirs "$@" tests/fixtures/$1/model
  done
  ours medium fast 16 512 512 512 "$medium"
  theirs medium fast 16 512 512 512 "$medium"
done
