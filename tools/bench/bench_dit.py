#!/usr/bin/env python3
"""The reference side of `hidream-studio bench dit`: one forward of the official HiDream-I1
transformer (imported from a checkout given with --hidream-i1) on the same configs and inputs.

Each --config is a transformer folder (weights loaded) or a config.json (random weights). The
input is one square latent of max_resolution, 128 T5 and 128 Llama tokens, t = 500, B = 1.

    python tools/bench/bench_dit.py --hidream-i1 /path/to/HiDream-I1 --threads 2 \
        --config tests/fixtures/full-square/model/transformer --config tools/bench/medium-transformer.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidream-i1", type=Path, required=True)
    ap.add_argument("--config", type=Path, action="append", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.hidream_i1))
    from hi_diffusers import HiDreamImageTransformer2DModel

    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    print("config                          image tokens  dtype  threads  median ms  min ms")
    for path in args.config:
        if path.is_dir():
            model = HiDreamImageTransformer2DModel.from_pretrained(path, torch_dtype=dtype)
        else:
            cfg = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
            torch.manual_seed(0)
            model = HiDreamImageTransformer2DModel(**cfg).to(dtype)
        model.eval()
        c = model.config
        side = c.max_resolution[0]
        gen = torch.Generator().manual_seed(0)
        latents = torch.randn(1, c.in_channels, side, side, generator=gen).to(dtype)
        t5 = torch.randn(1, 128, c.caption_channels[0], generator=gen).to(dtype)
        llama = torch.randn(max(c.llama_layers) + 1, 1, 128, c.caption_channels[1], generator=gen).to(dtype)
        pooled = torch.randn(1, c.text_emb_dim, generator=gen).to(dtype)
        t = torch.tensor([500.0])

        def forward():
            with torch.no_grad():
                model(hidden_states=latents, timesteps=t, encoder_hidden_states=[t5, llama],
                      pooled_embeds=pooled, return_dict=False)

        for _ in range(args.warmup):
            forward()
        times = []
        for _ in range(max(args.iters, 1)):
            start = time.perf_counter()
            forward()
            times.append((time.perf_counter() - start) * 1e3)
        name = "/".join(path.parts[-3:])
        tokens = (side // c.patch_size) ** 2
        print(f"{name:<32}{tokens:>12}  {args.dtype:<5}  {args.threads:>7}  {statistics.median(times):>9.1f}  {min(times):>6.1f}",
              flush=True)


if __name__ == "__main__":
    main()
