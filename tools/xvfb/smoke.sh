#!/usr/bin/env bash
# Starts the real studio binary under Xvfb with the fixture models, types a prompt into the
# window, presses Ctrl+Enter and waits until the result is in the history. Leaves a screenshot.
#
#   xvfb-run -a -s "-screen 0 1280x800x24" tools/xvfb/smoke.sh [BINARY] [SCREENSHOT]
#
# Needs xdotool and imagemagick (`apt-get install xdotool imagemagick`) besides the packages
# .ci/run installs. Exits non-zero when no result appears within two minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-target/debug/hidream-studio}
screenshot=${2:-studio-smoke.png}
work=$(mktemp -d)
trap 'kill "$app" 2>/dev/null || true; rm -rf "$work"' EXIT

mkdir -p "$work/config"
cat > "$work/config/config.json" <<JSON
{
  "models": {
    "i1_full": "$PWD/tests/fixtures/full-square/model",
    "llama": "$PWD/tests/fixtures/llama-3.1-tiny"
  },
  "device": "cpu",
  "base_resolution": 64
}
JSON

"$binary" --data-dir "$work/data" --config-dir "$work/config" &
app=$!
window=""
for _ in $(seq 60); do
  window=$(xdotool search --name "HiDream Studio" 2>/dev/null | head -n1 || true)
  [ -n "$window" ] && break
  sleep 0.5
done
[ -n "$window" ] || { echo "the window did not open" >&2; exit 1; }
sleep 2

# The prompt box is at the top of the right-hand panel in a 1280×800 window.
# Without a window manager nothing gives the window the keyboard focus.
xdotool windowfocus --sync "$window"
xdotool mousemove --window "$window" 1100 75 click 1
prompt="a red circle to the left of a blue square"
xdotool type --delay 20 "$prompt"
xdotool key ctrl+Return

for _ in $(seq 120); do
  if compgen -G "$work/data/images/*.png" > /dev/null; then
    sleep 1
    import -window root "$screenshot"
    # The PNG carries its settings as text: the whole prompt must have reached the job.
    if ! grep -aq "$prompt" "$work"/data/images/*.png; then
      echo "the result does not carry the typed prompt; screenshot: $screenshot" >&2
      exit 1
    fi
    echo "generated $(ls "$work"/data/images/*.png) from the window; screenshot: $screenshot"
    exit 0
  fi
  sleep 1
done
import -window root "$screenshot"
echo "no result after two minutes; screenshot: $screenshot" >&2
exit 1
