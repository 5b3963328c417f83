"""Full: flow matching on Shapes scenes with captions dropped for classifier-free guidance."""

from __future__ import annotations

from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import torch
import torch.nn.functional as F
from recipe import CAPTION_DROPOUT
from step_batches import batches, fetch_scenes, randn, torch_gen
from text_encoders import stack_cond
from training_loop import lr_schedule, train_loop
from transformer_training import AuxLoss, new_transformer, patchify_target, predict, sample_sigmas
from vae_stage import load_vae, to_latents


def stage_full(run: Path, steps: int, seed: int, batch: int = 32, every: int = 100) -> list[float]:
    vae = load_vae(run)
    model = new_transformer().to(runtime.DEV)
    model.train()
    aux = AuxLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "full", step)
        drop = torch.rand(batch, generator=gen) < CAPTION_DROPOUT
        captions = ["" if d else c for c, d in zip(item["captions"], drop.tolist())]
        x0 = to_latents(vae, item["images"])
        noise = randn(x0.shape, gen)
        sigma = sample_sigmas(gen, batch)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        out = predict(model, x_t, sigma, stack_cond(item["emb"], captions))
        return F.mse_loss(out, patchify_target(x0 - noise)) + aux.take()

    return train_loop("full", run / "full", model, opt, steps, loss_fn,
                      batches(run, fetch_scenes(seed, "full", batch)), every=every,
                      lr_at=lr_schedule(5e-4, steps, warmup=min(100, steps)))
