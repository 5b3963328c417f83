"""Dev: guidance distillation from Full."""

from __future__ import annotations

from pathlib import Path

import runtime  # noqa: F401,I001  (the environment before numpy and torch)
import torch
import torch.nn.functional as F
from recipe import GUIDANCE
from step_batches import batches, fetch_scenes, randn, torch_gen
from text_encoders import stack_cond
from training_loop import lr_schedule, train_loop
from transformer_training import AuxLoss, load_transformer, patchify_target, predict, sample_sigmas
from vae_stage import load_vae, to_latents


def stage_dev(run: Path, steps: int, seed: int, batch: int = 32) -> list[float]:
    """Guidance distillation (HiDream-I1-Dev's recipe at toy scale): the student, started from
    Full, learns to give in one pass what Full gives with classifier-free guidance."""
    vae = load_vae(run)
    teacher = load_transformer(run / "full" / "model", train=False).requires_grad_(False)
    student = load_transformer(run / "full" / "model", train=True)
    aux = AuxLoss(student)
    opt = torch.optim.AdamW(student.parameters(), lr=2e-4, weight_decay=0.0)

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "dev", step)
        x0 = to_latents(vae, item["images"])
        noise = randn(x0.shape, gen)
        # Dev samples with shift 6: train where it spends its steps.
        sigma = sample_sigmas(gen, batch, shift=6.0)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        cond = stack_cond(item["emb"], item["captions"])
        uncond = stack_cond(item["emb"], [""] * batch)
        with torch.no_grad():
            c_out = predict(teacher, x_t, sigma, cond)
            u_out = predict(teacher, x_t, sigma, uncond)
            # The teacher runs in inference mode ([B, C, H, W]); the student's training-mode
            # output is patchified.
            target = patchify_target(u_out + GUIDANCE * (c_out - u_out))
        aux.losses = []
        out = predict(student, x_t, sigma, cond)
        return F.mse_loss(out, target) + aux.take()

    return train_loop("dev", run / "dev", student, opt, steps, loss_fn,
                      batches(run, fetch_scenes(seed, "dev", batch)), lr_at=lr_schedule(2e-4, steps, 20))
