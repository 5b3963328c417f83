"""Stage 1: the latent-only SiT, trained as REPA-E's `train_ldm_only.py` trains it: REPA-E's
own forward (BatchNorm-normalised latents sampled from the cached posterior, t ~ U(0, 1),
x_t = (1 - t) x + t eps, v-target eps - x, label dropout 0.1) and its loss, denoising + 0.5 x
REPA against the frozen encoder's tokens; AdamW, gradient clip 1, EMA of every parameter and
float buffer."""

from __future__ import annotations

import copy
from pathlib import Path

import runtime  # noqa: I001
import torch
from cache import Data
from hidit_model import build_sit
from loop import constant, train, update_ema
from experiment import EMA_DECAY, PROJ_COEFF, experiment_args
from runtime import seed_torch, step_rng
from vae import load_stats


def new_model(run: Path):
    torch.manual_seed(0)
    model = build_sit()
    stats = load_stats(run)
    model.init_bn(latents_scale=stats["latents_scale"].squeeze(),
                  latents_bias=stats["latents_bias"].squeeze())
    return model


def stage1(run: Path, seed: int, steps: int = 6000, batch: int = 128, lr: float = 5e-4) -> dict:
    model = new_model(run)
    ema = copy.deepcopy(model)
    update_ema(ema, model, 0.0)
    model.train()
    model.bn.eval()  # REPA-E keeps the latent statistics fixed
    ema.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
    data = Data(run)
    loss_kwargs = dict(weighting="uniform", path_type="linear", prediction="v", align_only=False)

    def loss_fn(step):
        b = data.batch(step_rng(seed, "stage1", step), batch)
        seed_torch(seed, "stage1", step)
        mean, std = b["moments"].chunk(2, dim=1)
        z = mean + std * torch.randn_like(mean)  # REPA-E's sample_posterior(moments, 1, 0)
        out = model(x=z, y=b["labels"], zs=[b["repa"]], loss_kwargs=loss_kwargs)
        denoise, proj = out["denoising_loss"].mean(), out["proj_loss"].mean()
        return denoise + PROJ_COEFF * proj, {"denoise": denoise.item(), "proj": proj.item()}

    args = experiment_args("stage1", seed, batch, lr, steps)
    return train("stage1", run / "stage1", model, opt, steps, loss_fn, args=args, ema=ema,
                 ema_decay=EMA_DECAY, every=100, lr_at=constant(lr, warmup=100))
