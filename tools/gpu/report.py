#!/usr/bin/env python3
"""Markdown tables for tools/gpu/check.sh from the JSON lines of its steps (standard library only).

    report.py dit DIFFUSERS.jsonl OURS.jsonl   transformer forward, diffusers vs ours
    report.py memory PIPELINE.jsonl             peak GPU memory per stage (bench pipeline)
    report.py pipeline PIPELINE.jsonl           end to end timings (bench pipeline)
    report.py tiers TIERS.jsonl                 memory tiers: formats x streaming (bench pipeline)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def lines(path: str) -> list[dict]:
    """Every JSON object in a file; anything else (log lines, a cut-off last line) is skipped."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def gb(value) -> str:
    return "–" if value is None else f"{value / 1e9:.1f} GB"


def sec(ms) -> str:
    return "–" if ms is None else f"{ms / 1e3:.3f} s"


def dit(diffusers_path: str, ours_path: str) -> None:
    theirs = {r["batch"]: r for r in lines(diffusers_path) if r.get("event") == "forward"}
    built = next((r for r in lines(diffusers_path) if r.get("event") == "built"), {})
    saved = next((r for r in lines(diffusers_path) if r.get("event") == "saved"), None)
    ours = {r["batch"]: r for r in lines(ours_path) if r.get("bench") == "dit"}
    print("Seconds per forward (median of 3 after 1 warm-up; in brackets the minimum), bf16, 4096 image")
    print("tokens (1024²) + 128 T5 + 128 Llama tokens. Both include the 49 caption projections.")
    print()
    print("| batch | what it is | ours | diffusers | ours ÷ diffusers | ours peak GPU memory | diffusers peak (torch allocated) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for batch in sorted(set(theirs) | set(ours) | {1, 2}):
        o, t = ours.get(batch), theirs.get(batch)
        what = {1: "Dev / Fast step", 2: "Full step (CFG)"}.get(batch, "")
        ratio = f"{o['median_ms'] / t['median_ms']:.2f}" if o and t else "–"
        print(
            f"| {batch} | {what} | {fmt_time(o)} | {fmt_time(t)} | {ratio} | "
            f"{gb(o.get('gpu_peak_bytes') if o else None)} | "
            f"{gb(t.get('torch_peak_allocated_bytes') if t else None)} |"
        )
    print()
    facts = []
    if built:
        facts.append(f"diffusers {built.get('diffusers')} on torch {built.get('torch')}, "
                     f"{built.get('parameters', 0) / 1e9:.3f} B parameters built on {built.get('device_name')} in "
                     f"{built.get('seconds', 0):.1f} s")
    if saved:
        facts.append(f"saved as {saved.get('shards')} shards ({saved.get('bytes', 0) / 1e9:.1f} GB) in "
                     f"{saved.get('seconds', 0):.1f} s")
    first = next(iter(ours.values()), None)
    if first:
        facts.append(f"ours loaded in {first.get('load_ms', 0) / 1e3:.1f} s "
                     f"({gb(first.get('gpu_after_load_bytes'))} on the GPU after loading)")
    if facts:
        print("; ".join(facts) + ".")


def fmt_time(r) -> str:
    if not r:
        return "–"
    return f"{r['median_ms'] / 1e3:.3f} s ({r['min_ms'] / 1e3:.3f})"


def memory(path: str) -> None:
    runs = [r for r in lines(path) if r.get("bench") == "pipeline"]
    print("Ours, bf16, all six models at full size with random weights; the text encoders are freed")
    print("after encoding (the CUDA default). Device-wide use (total − free, so the CUDA context and")
    print("cuBLAS workspaces are in it), with candle's pool at its high-water mark, as")
    print("`generate --json` reports it: see src/device_memory.rs for what is and is not seen.")
    print()
    print("| preset | before the run (all models resident) | encoding | denoising | decoding 1024² | decoded |")
    print("|---|---:|---:|---:|---:|---|")
    for r in runs:
        m = r.get("gpu_memory") or {}
        batch = 2 if r.get("guidance", 0) > 1 else 1
        print(f"| {r['preset']} (batch {batch}) | {gb(r.get('gpu_loaded_bytes'))} | "
              f"{gb(m.get('encode_peak_bytes'))} | {gb(m.get('denoise_peak_bytes'))} | "
              f"{gb(m.get('decode_peak_bytes'))} | {m.get('decode', '–')} |")
    if not runs:
        print("| – | – | – | – | – | – |")


def pipeline(path: str) -> None:
    runs = [r for r in lines(path) if r.get("bench") == "pipeline"]
    print("Ours, bf16, random full-size weights: encoding + denoising + decoding, as `generate --json`")
    print("times them (building the random weights is excluded, as loading is). Steps end with a")
    print("device synchronisation, so their times are the GPU's.")
    print()
    print("| preset | steps | encode | per step (median) | per step (min–max) | decode | total |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        steps = [s for s in r.get("step_ms", []) if s and s > 0]
        spread = f"{min(steps) / 1e3:.3f}–{max(steps) / 1e3:.3f} s" if steps else "–"
        print(f"| {r['preset']} | {r['steps']} | {sec(r.get('encode_ms'))} | "
              f"{sec(r.get('median_step_ms'))} | {spread} | {sec(r.get('decode_ms'))} | "
              f"{sec(r.get('total_ms'))} |")
    if not runs:
        print("| – | – | – | – | – | – | – |")
    for r in runs:
        steps = [s for s in r.get("step_ms", []) if s and s > 0]
        if steps:
            print(f"\n{r['preset']}: mean step {statistics.mean(steps) / 1e3:.3f} s over {len(steps)} model steps; "
                  f"random weights built in {sec(r.get('build_transformer_vae_ms'))} (transformer, VAE) "
                  f"+ {sec(r.get('build_encoders_ms'))} (encoders).")


TIERS_INTRO = """\
Ours, bf16 compute, the real transformer with random weights in each format (quantised ones as
random blocks of the community recipe's types, dequantised at each use), Dev at 1024² for a few
steps. Streaming keeps the first blocks on the GPU and copies the others in from host memory for
every step. Peak = device-wide use while denoising (the random encoders are freed after
encoding). Goals (issue 18): Q8_0 ≤ 1.3× bf16's step time, Q4_K_M's peak ≤ 14 GB.
"""


def tiers(path: str) -> None:
    runs = [r for r in lines(path) if r.get("bench") == "pipeline"]
    print(TIERS_INTRO)
    print("| transformer | blocks streamed | per step (median) | × bf16 resident | denoising peak |")
    print("|---|---:|---:|---:|---:|")
    base = next((r.get("median_step_ms") for r in runs
                 if r.get("transformer_type") == "bf16" and not r.get("streamed_blocks")), None)
    for r in runs:
        step = r.get("median_step_ms")
        ratio = f"{step / base:.2f}×" if step and base else "–"
        m = r.get("gpu_memory") or {}
        print(f"| {r.get('transformer_type', '–')} | {r.get('streamed_blocks', 0)} | {sec(step)} | "
              f"{ratio} | {gb(m.get('denoise_peak_bytes'))} |")
    if not runs:
        print("| – | – | – | – | – |")


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, files = sys.argv[1], sys.argv[2:]
    if kind == "dit" and len(files) == 2:
        dit(*files)
    elif kind == "memory" and len(files) == 1:
        memory(*files)
    elif kind == "pipeline" and len(files) == 1:
        pipeline(*files)
    elif kind == "tiers" and len(files) == 1:
        tiers(*files)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
