#!/usr/bin/env python3
"""The reference side of the pipeline benchmark: the official HiDream-I1 pipeline (imported from
a checkout) on a snapshot folder, CPU, float32, timed per denoising step and end to end (prompt
encoding + denoising + decoding; loading excluded), one JSON line per run.

    python tools/bench/bench_pipeline.py --hidream-i1 /path/to/HiDream-I1 --model DIR \
        --llama tests/fixtures/llama-3.1-tiny --preset fast --base-resolution 512 --threads 2 --runs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PRESETS = {"full": ("unipc", 50, 5.0, 3.0), "dev": ("flash", 28, 0.0, 6.0), "fast": ("flash", 16, 0.0, 3.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidream-i1", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--llama", type=Path, required=True)
    ap.add_argument("--preset", choices=PRESETS, required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--base-resolution", type=int, default=1024)
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--prompt", default="a red circle to the left of a blue square, on white")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.hidream_i1))
    from hi_diffusers import HiDreamImagePipeline, HiDreamImageTransformer2DModel
    from hi_diffusers.schedulers.flash_flow_match import FlashFlowMatchEulerDiscreteScheduler
    from hi_diffusers.schedulers.fm_solvers_unipc import FlowUniPCMultistepScheduler
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    kind, steps, guidance, shift = PRESETS[args.preset]
    steps = args.steps or steps
    cls = FlowUniPCMultistepScheduler if kind == "unipc" else FlashFlowMatchEulerDiscreteScheduler
    scheduler = cls(num_train_timesteps=1000, shift=shift, use_dynamic_shifting=False)
    tokenizer_4 = PreTrainedTokenizerFast.from_pretrained(args.llama)
    text_encoder_4 = LlamaForCausalLM.from_pretrained(args.llama, output_hidden_states=True,
                                                      output_attentions=True, torch_dtype=torch.float32)
    transformer = HiDreamImageTransformer2DModel.from_pretrained(args.model, subfolder="transformer",
                                                                 torch_dtype=torch.float32)
    pipe = HiDreamImagePipeline.from_pretrained(args.model, scheduler=scheduler, tokenizer_4=tokenizer_4,
                                                text_encoder_4=text_encoder_4, torch_dtype=torch.float32)
    pipe.transformer = transformer
    pipe.default_sample_size = args.base_resolution // pipe.vae_scale_factor
    width = args.width or args.base_resolution
    height = args.height or args.base_resolution

    for run in range(args.runs):
        stamps = []
        start = time.perf_counter()

        def on_step(pipeline, i, t, kwargs):
            stamps.append(time.perf_counter())
            return {}

        with torch.no_grad():
            pipe(args.prompt, height=height, width=width, guidance_scale=guidance, num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(run), callback_on_step_end=on_step)
        total = time.perf_counter() - start
        step_times = [b - a for a, b in zip(stamps, stamps[1:])]
        print(json.dumps({
            "impl": "reference", "model": str(args.model), "preset": args.preset, "steps": steps,
            "threads": args.threads, "run": run, "total_s": round(total, 4),
            "median_step_s": round(statistics.median(step_times), 4) if step_times else math.nan,
        }), flush=True)


if __name__ == "__main__":
    main()
