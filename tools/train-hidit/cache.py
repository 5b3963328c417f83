"""The data set the SiT stages train on, cached as REPA-E caches ImageNet (`cache_latents.py`
@3ad8046 keeps each image's posterior as [mean | std] channels, and the training step samples
z = mean + std * noise): per scene its label, pixels, posterior moments, the frozen encoder's
REPA tokens, and the VAE's reconstruction (stage 2 feeds some of those to the pixel stream;
see stage2.py)."""

from __future__ import annotations

import math
from pathlib import Path

import runtime  # noqa: I001
import class_world as cw
import numpy as np
import torch
from repa_encoder import load_encoder
from runtime import log, step_rng
from vae import load_vae, to_uint8

CHUNK = 256


@torch.no_grad()
def build(run: Path, n: int, seed: int) -> None:
    vae, enc = load_vae(run), load_encoder(run)
    parts: dict[str, list] = {k: [] for k in ("labels", "images", "moments", "repa", "recon")}
    chunks = math.ceil(n / CHUNK)
    for c in range(chunks):
        labels, pixels, _ = cw.batch(step_rng(seed, "cache", c), CHUNK)
        x = cw.to_tensor(pixels)
        posterior = vae.encode(x)
        parts["labels"].append(torch.from_numpy(labels))
        parts["images"].append(torch.from_numpy(pixels))
        parts["moments"].append(torch.cat([posterior.mean, posterior.std], dim=1))  # [B, 2C, h, w]
        parts["repa"].append(enc.tokens(x))                                           # [B, T, Z]
        parts["recon"].append(torch.from_numpy(to_uint8(vae.decode(posterior.mode()).sample)))
        if (c + 1) % 10 == 0 or c + 1 == chunks:
            log("cache", f"{(c + 1) * CHUNK}/{chunks * CHUNK} scenes")
    data = {k: torch.cat(v)[:n] for k, v in parts.items()}
    tmp = run / "cache.tmp"
    torch.save(data, tmp)
    tmp.replace(run / "cache.pt")


class Data:
    """Batches drawn from the cache with replacement, a pure function of the step's rng."""

    def __init__(self, run: Path):
        self.d = torch.load(run / "cache.pt", map_location="cpu")
        self.n = len(self.d["labels"])

    def batch(self, rng: np.random.Generator, size: int) -> dict:
        idx = torch.from_numpy(rng.integers(0, self.n, size=size))
        out = {k: v[idx] for k, v in self.d.items()}
        for k in ("images", "recon"):
            out[k] = out[k].permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [B, 3, H, W] in [-1, 1]
        return out
