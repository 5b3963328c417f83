#!/usr/bin/env python3
"""The reference side of `hidream-studio bench encoder`: one prompt through each transformers
text encoder built from the same config.json with random weights, called as the HiDream
pipelines call them (CLIP with output_hidden_states; T5 and Llama with the attention mask, Llama
returning every hidden state), same token ids: 20 prompt tokens padded to 128.

    python tools/bench/bench_encoders.py --threads 2 --config tools/bench/encoders/clip-l.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def tokens(start, end, pad):
    ids = ([start] if start is not None else []) + list(range(400, 420)) + [end]
    real = len(ids)
    return ids + [pad] * (128 - real), [1] * real + [0] * (128 - real)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, action="append", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()

    import torch
    from transformers import (CLIPTextConfig, CLIPTextModelWithProjection, LlamaConfig, LlamaForCausalLM,
                              T5Config, T5EncoderModel)

    torch.set_num_threads(args.threads)
    print("config                                    tokens  threads  median ms  min ms")
    for path in args.config:
        cfg = json.loads(path.read_text())
        arch = cfg["architectures"][0]
        torch.manual_seed(0)
        with torch.device("cpu"):
            if arch == "CLIPTextModelWithProjection":
                model = CLIPTextModelWithProjection(CLIPTextConfig(**cfg))
                ids, _ = tokens(cfg["eos_token_id"] - 1, cfg["eos_token_id"], cfg["eos_token_id"])
                call = lambda: model(torch.tensor([ids]), output_hidden_states=True)
            elif arch == "T5EncoderModel":
                model = T5EncoderModel(T5Config(**cfg))
                ids, mask = tokens(None, 1, 0)
                call = lambda: model(torch.tensor([ids]), attention_mask=torch.tensor([mask]))
            elif arch == "LlamaForCausalLM":
                model = LlamaForCausalLM(LlamaConfig(**cfg))
                ids, mask = tokens(cfg["bos_token_id"], cfg["eos_token_id"], cfg["eos_token_id"])
                ids[21] = 420
                call = lambda: model(torch.tensor([ids]), attention_mask=torch.tensor([mask]),
                                     output_hidden_states=True, output_attentions=True)
            else:
                raise SystemExit(f"{path}: unsupported architecture {arch}")
        model.eval()
        with torch.no_grad():
            for _ in range(args.warmup):
                call()
            times = []
            for _ in range(args.iters):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1e3)
        name = "/".join(path.parts[-3:])
        print(f"{name:<42}{128:>6}  {args.threads:>7}  {statistics.median(times):>9.1f}  {min(times):>6.1f}", flush=True)
        del model


if __name__ == "__main__":
    main()
