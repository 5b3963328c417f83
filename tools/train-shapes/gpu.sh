#!/usr/bin/env bash
# Trains the Shapes models on one lent GPU in two sittings of under ten minutes each (the
# device tool's limit per command). Step counts are set from a measured speed so that each
# stage fills its time budget; the resolved `train.py` command lines are printed (and were
# recorded in the shipped manifests), so a run can be repeated without this script.
#
#   RUN=.train/run tools/train-shapes/gpu.sh a   # VAE, then Full
#   RUN=.train/run tools/train-shapes/gpu.sh b   # Dev then Fast, beside the E1.1 editor
#   RUN=.train/run2 INIT=.train/run/editor/model tools/train-shapes/gpu.sh c   # more editor
#
# Sitting c takes EDITOR_ARGS (e.g. "--batch 256 --kinds recolour=4,remove=3 --seed 1") after
# its own flags, so later ones win.
#
# RUN must hold `encoders/` (from `train.py encoders`); sitting b also needs sitting a's
# `vae/model` and `full/model`.
set -euo pipefail

RUN=${RUN:?set RUN to the run folder}
PY=${PY:-python3}
T="$(dirname "$0")/train.py"
GPU=(--device "${DEVICE:-cuda}" --threads 2)

# Seconds per stage. Sitting a: VAE and Full; sitting b: Dev + Fast, and the editor beside
# them.
VAE_S=${VAE_S:-120}
FULL_S=${FULL_S:-330}
DEV_S=${DEV_S:-170}
FAST_S=${FAST_S:-250}
EDITOR_S=${EDITOR_S:-450}

# The steady speed of `stage` in steps/s: a short run in a scratch folder that shares the
# inputs, read off the last progress line (measured since the previous one).
speed() {
    local stage=$1 steps=$2
    shift 2
    local dir
    dir=$(mktemp -d)
    ln -s "$(realpath "$RUN")/encoders" "$dir/encoders"
    for input in vae full dev; do
        if [ -d "$RUN/$input/model" ]; then
            mkdir -p "$dir/$input"
            ln -s "$(realpath "$RUN")/$input/model" "$dir/$input/model"
        fi
    done
    [ "$stage" = vae ] && rm -rf "$dir/vae"
    "$PY" "$T" "$stage" --run "$dir" --steps "$steps" "${GPU[@]}" "$@" 2>&1 |
        grep "step $steps/$steps" | sed 's/.*  \([0-9.]*\) steps\/s.*/\1/'
}

# `train.py stage --steps N ...` with N = speed x seconds, in whole hundreds.
train_for() {
    local stage=$1 seconds=$2 probe=$3
    shift 3
    local sps steps
    sps=$(speed "$stage" "$probe" "$@")
    steps=$("$PY" -c "print(max(100, int($sps * $seconds / 100) * 100))")
    echo "== $stage: $sps steps/s measured, $steps steps"
    echo "   python tools/train-shapes/train.py $stage --run RUN --steps $steps ${GPU[*]} $*"
    "$PY" "$T" "$stage" --run "$RUN" --steps "$steps" "${GPU[@]}" "$@"
}

case ${1:-} in
    a)
        train_for vae "$VAE_S" 200 --batch 64 --workers 12
        train_for full "$FULL_S" 200 --batch 128 --workers 14
        ;;
    b)
        train_for editor "$EDITOR_S" 200 --batch 64 --workers 7 > "$RUN/editor.log" 2>&1 &
        editor=$!
        train_for dev "$DEV_S" 200 --batch 128 --workers 7
        train_for fast "$FAST_S" 100 --batch 64 --workers 7
        wait $editor
        cat "$RUN/editor.log"
        ;;
    c)
        # A warm restart of sitting b's editor (new optimizer and schedule), with one plain
        # batch in eight: the Shapes editor is used without the refine stage. RUN is a fresh
        # folder holding (links to) the first run's encoders, vae and full.
        # shellcheck disable=SC2086  # EDITOR_ARGS is a list of flags
        train_for editor "$EDITOR_S" 200 --batch 64 --workers 14 --init "$INIT" --plain-every 8 \
            ${EDITOR_ARGS:-}
        ;;
    *)
        echo "usage: RUN=... $0 a|b|c" >&2
        exit 2
        ;;
esac
