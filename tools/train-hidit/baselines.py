"""The reference rows of the stage-1 vs stage-2 table: renders of the world (scored as the
samples are, against renders from another seed: the floor of every distance at this sample
count) and the VAE's reconstructions of renders (the ceiling of a latent-only model). Writes
RUN/baselines.json."""

from __future__ import annotations

import json
from pathlib import Path

import runtime  # noqa: I001
import class_world as cw
import numpy as np
import quality
import torch
from evaluate import score
from runtime import log
from vae import load_vae, to_uint8


@torch.no_grad()
def baselines(run: Path, per_class: int, seed: int) -> dict:
    labels = np.repeat(np.arange(cw.NUM_CLASSES), per_class)
    renders = quality.real_renders(per_class, seed + 100)
    vae = load_vae(run)
    recon = to_uint8(vae.decode(vae.encode(cw.to_tensor(renders)).mode()).sample)
    out = {}
    for name, images in (("renders", renders), ("vae_reconstructions", recon)):
        out[name] = {**score(images, labels), **quality.quality(images, per_class, seed)}
        log("baselines", f"{name}: class {out[name]['class']:.3f}, palette distance "
                         f"{out[name]['palette_distance']:.2f}, high-frequency distance "
                         f"{out[name]['hf_spectrum_distance_db']:.2f} dB (excess "
                         f"{out[name]['hf_spectrum_excess_db']:+.2f}), Frechet "
                         f"{out[name]['frechet_random_features']:.3f}")
    (run / "baselines.json").write_text(json.dumps(out, indent=1) + "\n")
    return out
