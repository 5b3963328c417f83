"""The bundle: an experiment folder as REPA-E's readers expect it, with the VAE and its
latent statistics and the class names beside it:

    OUT/args.json                        the experiment's args (REPA-E keys, arch, vae_arch,
                                         pixel_branch for stage 2)
    OUT/checkpoints/NNNNNNN.pt           {model, ema, opt, args (Namespace), steps}
    OUT/shapes-vae.pt                    plain state dict, REPA-E AutoencoderKL names
    OUT/shapes-vae-latents-stats.pt      {latents_scale = 1/std, latents_bias = mean}, [1, C, 1, 1]
    OUT/classes.json                     class names by label, null label, sampling defaults

To fit the size budget: `model` holds the EMA weights too (new tensor objects over the same
storages, so torch.save writes each storage once), `opt` keeps its param_groups but no state
(Adam's moments would double the file), and the VAE file holds the decoder and
post_quant_conv only unless --vae-encoder is given. Weights are stored in f16 (`STORED`), which
halves the bundle (the repository's size budget holds it and the agent model beside the
CUDA binary the GPU machine receives); the latent BatchNorm's statistics, the position table
and the latent statistics file stay f32. Every reader computes in f32 as before: PyTorch's
`load_state_dict` and the studio's loader both widen the f16 values exactly, and `verify`
compares the bundle with the run's weights rounded the same way."""

from __future__ import annotations

import argparse
import json
import shutil
from collections import OrderedDict
from pathlib import Path

import runtime  # noqa: I001
import class_world as cw
import torch
from loop import latest_checkpoint, load_state
from runtime import log
from vae import VAE_NAME

# What the window uses unless the user changes it: REPA-E's SDE sampler, 50 steps, and the
# guidance Shapes Hi-DiT was scored with (README).
DEFAULTS = dict(mode="ode", num_steps=50, cfg_scale=1.5, guidance_low=0.0, guidance_high=1.0)
STORED = torch.float16


def stored(name: str, t: torch.Tensor) -> torch.Tensor:
    """What the bundle keeps of tensor `name`: f16 for weights, f32 for statistics."""
    keep = name.startswith("bn.") or name == "pos_embed" or not t.is_floating_point()
    return t if keep else t.to(STORED)


def rounded(state: dict) -> OrderedDict:
    """`state` with the bundle's rounding, in f32 (what a reader of the bundle computes with)."""
    return OrderedDict((k, stored(k, v).to(v.dtype)) for k, v in state.items())


def export(run: Path, exp_name: str, out: Path, with_encoder: bool = False,
           weights: str = "ema") -> None:
    """`weights="model"` ships the raw weights under both names instead of the EMA (for runs
    too short for their EMA to have caught up; README)."""
    exp = run / exp_name
    args = json.loads((exp / "args.json").read_text())
    ckpt = latest_checkpoint(exp)
    state = load_state(ckpt)
    ema = OrderedDict((k, stored(k, v)) for k, v in state[weights].items())
    out.mkdir(parents=True, exist_ok=True)
    if (out / "checkpoints").exists():
        shutil.rmtree(out / "checkpoints")
    (out / "checkpoints").mkdir()
    bundle = {
        "model": OrderedDict((k, v.detach()) for k, v in ema.items()),
        "ema": ema,
        "opt": {"state": {}, "param_groups": state["opt"]["param_groups"]},
        "args": argparse.Namespace(**args),
        "steps": state["steps"],
    }
    torch.save(bundle, out / "checkpoints" / ckpt.name)
    # The studio reads the class names from args.json (`class_names`); classes.json keeps the
    # world's description beside them.
    args["class_names"] = cw.classes_json()["classes"]
    (out / "args.json").write_text(json.dumps(args, indent=4) + "\n")
    vae = torch.load(run / "vae" / f"{VAE_NAME}.pt", map_location="cpu")
    if not with_encoder:
        vae = OrderedDict((k, v) for k, v in vae.items() if k.startswith(("decoder.", "post_quant_conv.")))
    vae = OrderedDict((k, stored(k, v)) for k, v in vae.items())
    torch.save(vae, out / f"{VAE_NAME}.pt")
    shutil.copyfile(run / "vae" / f"{VAE_NAME}-latents-stats.pt", out / f"{VAE_NAME}-latents-stats.pt")
    classes = {**cw.classes_json(), "defaults": DEFAULTS}
    (out / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
    verify(run, exp_name, out, weights)
    files = [p for p in out.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    for p in sorted(files):
        log("export", f"{p.relative_to(out)}  {p.stat().st_size:,} bytes")
    log("export", f"{len(files)} files, {total:,} bytes ({total / 2**20:.2f} MiB)")


@torch.no_grad()
def verify(run: Path, exp_name: str, out: Path, weights: str) -> None:
    """Reads the bundle back as a stranger would (no run folder) and samples one image per
    class; they must equal the run's own samples, with its weights rounded as the bundle
    stores them, bit for bit."""
    import sampling
    from evaluate import load_experiment
    from hidit_model import build_from_args
    from vae import build_vae, load_stats, load_vae
    args = json.loads((out / "args.json").read_text())
    state = load_state(latest_checkpoint(out))
    shared = all(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
                 for a, b in zip(state["model"].values(), state["ema"].values()))
    model = build_from_args(args)
    model.load_state_dict(state["ema"])
    model.eval()
    vae = build_vae(args["vae_arch"])
    missing, unexpected = vae.load_state_dict(torch.load(out / f"{VAE_NAME}.pt"), strict=False)
    assert not unexpected and all(k.startswith(("encoder.", "quant_conv.")) for k in missing)
    stats = torch.load(out / f"{VAE_NAME}-latents-stats.pt")
    labels = torch.arange(cw.NUM_CLASSES)
    ours, _ = sampling.hybrid(model, vae, stats, labels, 0) if args.get("pixel_branch") else \
        (sampling.decode(vae, sampling.latent(model, labels, 0), stats), None)
    ref_model = load_experiment(run / exp_name, weights)[0]
    ref_model.load_state_dict(rounded(ref_model.state_dict()))
    ref_vae, ref_stats = load_vae(run), load_stats(run)
    ref_vae.load_state_dict(rounded(ref_vae.state_dict()))
    theirs, _ = sampling.hybrid(ref_model, ref_vae, ref_stats, labels, 0) if args.get("pixel_branch") \
        else (sampling.decode(ref_vae, sampling.latent(ref_model, labels, 0), ref_stats), None)
    assert torch.equal(ours, theirs), "the bundle samples differently from its run"
    log("export", f"bundle read back: model/ema storages shared {shared}, VAE without "
                  f"{len(missing)} encoder tensors, samples equal to the run's")
