#!/usr/bin/env python3
"""The reference side of `hidream-studio bench sit`: one forward (`SiT.inference`, what the
samplers call) of REPA-E's own SiT, imported from a checkout given with --repa-e (models/sit.py
at 3ad8046 needs timm 1.0.11), with random weights on a 16×16×32 latent as REPA-E's f16d32 runs.

    python tools/bench/bench_sit.py --repa-e /path/to/REPA-E --threads 2 --model SiT-XL/1 --batch 1 --batch 2

Prints one JSON line per batch size: median and best milliseconds over --iters timed forwards
after --warmup ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repa-e", type=Path, required=True)
    ap.add_argument("--model", default="SiT-XL/1")
    ap.add_argument("--batch", type=int, action="append")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.repa_e))
    from models.sit import SiT_models

    torch.manual_seed(0)
    # REPA-E's train_ldm_only.py flags for the f16d32 latent (reference: its argparse defaults).
    model = SiT_models[args.model](
        input_size=16, in_channels=32, num_classes=1000, class_dropout_prob=0.1,
        z_dims=[768], encoder_depth=8, bn_momentum=0.1, qk_norm=False, fused_attn=True,
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":  # the fixed sincos table stays as REPA-E makes it
                p.normal_(0.0, 0.02)
    for batch in args.batch or [1]:
        x = torch.randn(batch, 32, 16, 16)
        t = torch.full((batch,), 0.5)
        y = torch.randint(0, 1000, (batch,))
        times = []
        with torch.no_grad():
            for i in range(args.warmup + args.iters):
                start = time.perf_counter()
                model.inference(x, t, y)
                if i >= args.warmup:
                    times.append((time.perf_counter() - start) * 1e3)
        print(json.dumps({"bench": "sit", "side": "REPA-E (PyTorch)", "model": args.model, "batch": batch,
                          "threads": args.threads, "torch": torch.__version__,
                          "median_ms": statistics.median(times), "min_ms": min(times)}))


if __name__ == "__main__":
    main()
