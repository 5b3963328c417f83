#!/usr/bin/env python3
"""The diffusers side of the GPU transformer benchmark (tools/gpu/check.sh).

Builds diffusers' `HiDreamImageTransformer2DModel` from a config.json with seeded random
weights drawn directly on the device (the same distributions as `hidream-studio`'s random
weights: N(0, 1/fan_in) matrices, N(1, 0.1²) norm weights, N(0, 0.1²) other vectors), times one
forward per --batch (input: square latents of the config's max_resolution, 128 T5 and 128 Llama
tokens, t = 500, as `hidream-studio bench dit`), and with --save writes the same weights as a
sharded safetensors transformer folder in the official layout (config.json,
diffusion_pytorch_model-0000N-of-0000M.safetensors, the index), so that `bench dit --config DIR`
times ours on exactly these weights.

Prints one JSON object per line: {"event": "built"}, one {"event": "forward"} per batch,
{"event": "saved"}. Exit status 0 when everything asked for was done.

Tested with diffusers 0.42.1 and torch 2.15.0 (see tools/gpu/README.md).

    python3 tools/gpu/diffusers_dit.py --config tools/gpu/hidream-i1-transformer.json \
        --batch 1 --batch 2 --save /dev/shm/hidream-transformer
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

TEXT_TOKENS = 128


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True, help="a transformer config.json")
    ap.add_argument("--batch", type=int, action="append", help="images per forward (repeat); default 1")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--save", type=Path, help="write the weights here as a diffusers transformer folder")
    ap.add_argument("--max-shard-size", default="5GB", help="as the official checkpoint (7 shards of ≤ 5 GB)")
    args = ap.parse_args()

    import torch
    import diffusers
    from diffusers import HiDreamImageTransformer2DModel

    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    # TF32 would change what an f32 run measures; bf16 products are unaffected.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    cfg = {k: v for k, v in json.loads(args.config.read_text()).items() if not k.startswith("_")}
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    # Build straight in the target dtype on the device: a float32 build of the 17 B model would
    # need 68 GB first. The default dtype only matters while the modules are created.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = HiDreamImageTransformer2DModel(**cfg)
    finally:
        torch.set_default_dtype(previous)
    randomise(model, torch)
    model.eval().requires_grad_(False)
    sync(torch, device)
    params = sum(p.numel() for p in model.parameters())
    emit(event="built", seconds=time.perf_counter() - start, parameters=params,
         torch=torch.__version__, diffusers=diffusers.__version__, device=str(device),
         device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
         dtype=args.dtype)

    forward_params = inspect.signature(model.forward).parameters
    for batch in args.batch or [1]:
        time_forward(model, torch, device, dtype, batch, args, forward_params)

    if args.save:
        start = time.perf_counter()
        if args.save.exists():
            shutil.rmtree(args.save)
        # save_pretrained writes the official layout: config.json, numbered shards of at most
        # max_shard_size, and diffusion_pytorch_model.safetensors.index.json.
        model.save_pretrained(args.save, safe_serialization=True, max_shard_size=args.max_shard_size)
        size = sum(f.stat().st_size for f in args.save.iterdir() if f.is_file())
        emit(event="saved", path=str(args.save), seconds=time.perf_counter() - start, bytes=size,
             shards=len(list(args.save.glob("*.safetensors"))))
    return 0


def randomise(model, torch) -> None:
    """The distributions of src/weights/random.rs, drawn on the model's device."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.normal_(1.0 if "norm" in name else 0.0, 0.1)
            else:
                fan_in = max(p.numel() // p.shape[0], 1)
                p.normal_(0.0, fan_in ** -0.5)


def sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(model, torch, device, dtype, batch, args, forward_params) -> None:
    c = model.config
    side = c.max_resolution[0]
    gen = torch.Generator(device=device).manual_seed(args.seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).to(dtype)

    latents = randn(batch, c.in_channels, side, side)
    t5 = randn(batch, TEXT_TOKENS, c.caption_channels[0])
    llama = randn(max(c.llama_layers) + 1, batch, TEXT_TOKENS, c.caption_channels[1])
    pooled = randn(batch, c.text_emb_dim)
    t = torch.full((batch,), 500.0, device=device)
    # diffusers 0.42 takes the T5 and Llama states as two arguments; earlier releases (and the
    # official repository) as one two-element list.
    if "encoder_hidden_states_t5" in forward_params:
        text = {"encoder_hidden_states_t5": t5, "encoder_hidden_states_llama3": llama}
    else:
        text = {"encoder_hidden_states": [t5, llama]}

    def forward():
        with torch.inference_mode():
            model(hidden_states=latents, timesteps=t, pooled_embeds=pooled, return_dict=False, **text)
        sync(torch, device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        forward()
    times = []
    for _ in range(max(args.iters, 1)):
        start = time.perf_counter()
        forward()
        times.append((time.perf_counter() - start) * 1e3)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    emit(event="forward", batch=batch, image_tokens=(side // c.patch_size) ** 2, text_tokens=TEXT_TOKENS,
         median_ms=statistics.median(times), min_ms=min(times), iters=len(times),
         torch_peak_allocated_bytes=peak)


if __name__ == "__main__":
    sys.exit(main())
