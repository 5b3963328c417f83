"""Class accuracy of an experiment's EMA weights: `per_class` samples of every class from one
seed (so stage 1 and stage 2 start from the same noise), each read back by the Python port
of ShapesEval's detector; plus how far pixels sit from the world's palette (0 on renders:
blur and smudges raise it) and `quality`'s fine-detail and Frechet distances to renders. Writes eval-*.json and a grid PNG (a row per class) beside the
checkpoints."""

from __future__ import annotations

import json
import time
from pathlib import Path

import runtime  # noqa: I001
import class_world as cw
import numpy as np
import quality
import sampling
import shapes_read
import torch
from hidit_model import build_from_args
from loop import latest_checkpoint, load_state
from PIL import Image
from runtime import log
from vae import load_stats, load_vae, to_uint8


def load_experiment(exp: Path, weights: str = "ema"):
    """The newest checkpoint's `ema` (what REPA-E samples with) or `model` (the raw weights)."""
    args = json.loads((exp / "args.json").read_text())
    model = build_from_args(args)
    ckpt = latest_checkpoint(exp)
    model.load_state_dict(load_state(ckpt)[weights])
    return model.eval(), args, ckpt


def score(images: np.ndarray, labels: np.ndarray) -> dict:
    checks = [shapes_read.check(img, *cw.CLASSES[k]) for img, k in zip(images, labels)]
    out = {k: float(np.mean([c[k] for c in checks])) for k in ("class", "colour", "shape", "count")}
    per = [float(np.mean([c["class"] for c, k in zip(checks, labels) if k == j]))
           for j in range(cw.NUM_CLASSES)]
    dist = np.sqrt(((images[:, :, :, None, :].astype(np.int32) - shapes_read.PALETTE) ** 2).sum(-1)).min(-1)
    return {**out, "by_class": {cw.class_name(j): a for j, a in enumerate(per)},
            "palette_distance": float(dist.mean())}


def grid(images: np.ndarray, per_class: int, path: Path, cols: int = 8) -> None:
    cols = min(cols, per_class)
    rows = [np.concatenate(list(images[k * per_class: k * per_class + cols]), axis=1)
            for k in range(cw.NUM_CLASSES)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


@torch.no_grad()
def evaluate(exp: Path, run: Path, per_class: int, seed: int, weights: str = "ema", **settings) -> dict:
    model, args, ckpt = load_experiment(exp, weights)
    vae, stats = load_vae(run), load_stats(run)
    labels = torch.arange(cw.NUM_CLASSES).repeat_interleave(per_class)
    tau = settings.pop("tau", None)
    t0 = time.time()
    result = {"checkpoint": str(ckpt), "weights": weights, "seed": seed,
              "samples_per_class": per_class, **settings}
    if args.get("pixel_branch"):
        image, z = sampling.hybrid(model, vae, stats, labels, seed, tau=tau, **settings)
        result["tau"] = model.tau if tau is None else tau
        decoded = to_uint8(sampling.decode(vae, z, stats))
        result["latent_decode"] = {**score(decoded, labels.numpy()),
                                   **quality.quality(decoded, per_class, seed)}
    else:
        z = sampling.latent(model, labels, seed, **settings)
        image = sampling.decode(vae, z, stats)
    images = to_uint8(image.float())
    result.update(score(images, labels.numpy()))
    result.update(quality.quality(images, per_class, seed))
    result["seconds"] = round(time.time() - t0, 1)
    name = "eval-{mode}{num_steps}-cfg{cfg_scale}".format(**settings)
    name += (f"-tau{tau}" if tau is not None else "") + ("-raw" if weights == "model" else "")
    grid(images, per_class, exp / f"{name}.png")
    (exp / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    log("eval", f"{exp.name} {name}: class {result['class']:.3f} (colour {result['colour']:.3f}, "
                f"shape {result['shape']:.3f}, one object {result['count']:.3f}), palette "
                f"distance {result['palette_distance']:.2f}, high-frequency distance "
                f"{result['hf_spectrum_distance_db']:.2f} dB (excess {result['hf_spectrum_excess_db']:+.2f}), Frechet (random features) "
                f"{result['frechet_random_features']:.3f}")
    return result
