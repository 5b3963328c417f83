"""Dev: guidance distillation from Full, or a warm restart on the data itself."""

from __future__ import annotations

from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import torch
import torch.nn.functional as F
from recipe import GUIDANCE
from step_batches import batches, fetch_scenes, foreground_weight, randn, torch_gen
from text_encoders import stack_cond
from training_loop import lr_schedule, train_loop
from transformer_training import AuxLoss, load_transformer, patchify_target, predict, sample_sigmas
from vae_stage import load_vae, to_latents

TARGETS = ("teacher", "data", "guided-data")


def stage_dev(run: Path, steps: int, seed: int, batch: int = 32, init: Path | None = None,
              target: str = "teacher", object_weight: float = 0.0, shift: float = 6.0,
              lr: float = 2e-4) -> list[float]:
    """Guidance distillation (HiDream-I1-Dev's recipe at toy scale): the student, started from
    Full, learns to give in one pass what Full gives with classifier-free guidance.

    `init` starts the student from other weights (a warm restart: new optimizer and schedule).
    `target="data"` trains on the scenes' own flow (x0 - noise) with every caption kept: once
    the student draws shapes better than its teacher (the shipped Dev's single-shape score was
    above Full's), Full's guided prediction holds it back, and the data does not.
    `target="guided-data"` adds Full's guidance direction to that flow,
    x0 - noise + (GUIDANCE - 1) * (cond - uncond): in expectation Full's guided prediction
    with the data in place of Full's conditional one, so sampling without guidance keeps the
    colour guidance gave. `object_weight` adds loss weight on the latent pixels under an
    object: a shape's outline is a few latent pixels of a mostly empty picture, and it is what
    ShapesEval reads."""
    if target not in TARGETS:
        raise ValueError(f"dev target {target!r}: expected one of {', '.join(TARGETS)}")
    vae = load_vae(run)
    teacher = None
    if target != "data":
        teacher = load_transformer(run / "full" / "model", train=False).requires_grad_(False)
    student = load_transformer(init or run / "full" / "model", train=True)
    aux = AuxLoss(student)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "dev", step)
        x0 = to_latents(vae, item["images"])
        noise = randn(x0.shape, gen)
        # Logit-normal noise levels moved by `shift` (by default 6, the shift Dev samples with).
        sigma = sample_sigmas(gen, batch, shift=shift)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        cond = stack_cond(item["emb"], item["captions"])
        if teacher is None:
            want = patchify_target(x0 - noise)
        else:
            uncond = stack_cond(item["emb"], [""] * batch)
            with torch.no_grad():
                c_out = predict(teacher, x_t, sigma, cond)
                u_out = predict(teacher, x_t, sigma, uncond)
            # The teacher runs in inference mode ([B, C, H, W]); the student's training-mode
            # output is patchified. Both are raw outputs, whose training target is x0 - noise.
            if target == "teacher":
                want = patchify_target(u_out + GUIDANCE * (c_out - u_out))
            else:
                want = patchify_target(x0 - noise + (GUIDANCE - 1) * (c_out - u_out))
        aux.losses = []
        out = predict(student, x_t, sigma, cond)
        if not object_weight:
            return F.mse_loss(out, want) + aux.take()
        objects = (foreground_weight(item["images"]) > 1).float().to(runtime.DEV)
        weight = patchify_target((1.0 + object_weight * F.max_pool2d(objects, 8)).expand(-1, 1, -1, -1))
        return (weight * (out - want) ** 2).mean() / weight.mean() + aux.take()

    return train_loop("dev", run / "dev", student, opt, steps, loss_fn,
                      batches(run, fetch_scenes(seed, "dev", batch)), lr_at=lr_schedule(lr, steps, 20))
