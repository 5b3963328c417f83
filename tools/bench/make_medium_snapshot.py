#!/usr/bin/env python3
"""Builds the "medium" benchmark snapshot: a HiDream-I1 pipeline in the real on-disk layout with
the medium transformer of tools/bench/medium-transformer.json (width 512, 4 dual + 8 single
blocks, 1024 image tokens at a 512-pixel base resolution), a FLUX-layout VAE at half the real
width, and the tiny text encoders of the fixtures (so caption widths follow them). Weights are
seeded random; only timings are meaningful.

    python tools/bench/make_medium_snapshot.py --fixtures tests/fixtures --out /tmp/medium
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_models import randomise, shard_size  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from diffusers import AutoencoderKL, HiDreamImageTransformer2DModel

    torch.set_num_threads(1)
    source = args.fixtures / "full-square" / "model"
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)

    cfg = json.loads((Path(__file__).parent / "medium-transformer.json").read_text())
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    t5 = json.loads((source / "text_encoder_3" / "config.json").read_text())["d_model"]
    llama_dir = args.fixtures / "llama-3.1-tiny"
    llama = json.loads((llama_dir / "config.json").read_text())
    clip_l = json.loads((source / "text_encoder" / "config.json").read_text())["projection_dim"]
    clip_g = json.loads((source / "text_encoder_2" / "config.json").read_text())["projection_dim"]
    layers = llama["num_hidden_layers"]
    cfg.update(
        caption_channels=[t5, llama["hidden_size"]],
        text_emb_dim=clip_l + clip_g,
        llama_layers=[min(i, layers - 1) for i in range(cfg["num_layers"] + cfg["num_single_layers"])],
    )
    transformer = HiDreamImageTransformer2DModel(**cfg)
    randomise(transformer, 7)
    shutil.rmtree(out / "transformer")
    transformer.save_pretrained(out / "transformer", max_shard_size=shard_size(transformer, 3))

    vae_cfg = json.loads((source / "vae" / "config.json").read_text())
    vae_cfg = {k: v for k, v in vae_cfg.items() if not k.startswith("_")}
    vae_cfg.update(block_out_channels=[64, 128, 256, 256], norm_num_groups=32, sample_size=512)
    vae = AutoencoderKL(**vae_cfg)
    randomise(vae, 8)
    shutil.rmtree(out / "vae")
    vae.save_pretrained(out / "vae")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
