"""The E1.1-style editor: the noisy target beside the clean source on one canvas, fine-tuned
from Full."""

from __future__ import annotations

from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import torch
import torch.nn.functional as F
from step_batches import batches, edit_batch, fetch_scenes, foreground_weight, randn, torch_gen
from text_encoders import stack_cond
from training_loop import lr_schedule, train_loop
from transformer_training import AuxLoss, load_transformer, patchify_target, predict, sample_sigmas
from vae_stage import load_vae, to_latents

E11_NEGATIVE = "low quality, blurry, distorted"


def stage_editor(run: Path, steps: int, seed: int, batch: int = 12, init: Path | None = None,
                 plain_every: int = 4, kind_weights: list[float] | None = None,
                 object_weight: float = 0.0) -> list[float]:
    """An E1.1-style editor fine-tuned from the Full toy: the noisy target and the clean source
    side by side on one canvas (target left), the loss on the target half only, weighted up
    where the edit changes pixels (the paper's spatially weighted loss). Text and source are
    dropped at random for the editing stage's three-way guidance; every `plain_every`th batch is
    plain text-to-image so the model can still denoise alone (the pipeline's refine stage).
    `object_weight` adds weight where either picture has an object: an unchanged object is a
    small share of the unchanged pixels, yet the one a recolour most often spoils."""
    vae = load_vae(run)
    # `init`: a warm restart from an earlier editor (new optimizer and schedule).
    model = load_transformer(init or run / "full" / "model", train=True)
    # The E1.1 pipeline pads the canvas to twice the I1 model's max_seq; train with the same
    # padding, which takes part in attention.
    model.max_seq = 2 * model.max_seq
    aux = AuxLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)

    plain = fetch_scenes(seed, "editor-t2i", batch)

    def fetch(step, text):
        if step % plain_every == plain_every - 1:
            return plain(step, text)
        triplets, src, tgt, changed = edit_batch(seed, step, batch, kind_weights)
        instructions = [t[1] for t in triplets]
        return {"instructions": instructions, "src": src, "tgt": tgt, "changed": changed,
                "emb": text.table(instructions + [E11_NEGATIVE, ""])}

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "editor", step)
        if step % plain_every == plain_every - 1:
            x0 = to_latents(vae, item["images"])
            noise = randn(x0.shape, gen)
            sigma = sample_sigmas(gen, batch)
            s = sigma.view(-1, 1, 1, 1)
            out = predict(model, (1 - s) * x0 + s * noise, sigma, stack_cond(item["emb"], item["captions"]))
            return F.mse_loss(out, patchify_target(x0 - noise)) + aux.take()
        x_src, x0 = to_latents(vae, item["src"]), to_latents(vae, item["tgt"])
        changed = item["changed"].to(runtime.DEV)
        noise = randn(x0.shape, gen)
        sigma = sample_sigmas(gen, batch)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        roll = torch.rand(batch, generator=gen)
        captions = [E11_NEGATIVE if r < 0.1 else ("" if r < 0.15 else t)
                    for r, t in zip(roll.tolist(), item["instructions"])]
        keep_src = (torch.rand(batch, generator=gen) >= 0.1).float().view(-1, 1, 1, 1).to(runtime.DEV)
        canvas = torch.cat([x_t, x_src * keep_src], dim=-1)
        out = predict(model, canvas, sigma, stack_cond(item["emb"], captions))
        # Training-mode output: [B, C, max_seq, 4] in canvas row-major token order.
        h, w = x0.shape[-2] // 2, x0.shape[-1] // 2
        tokens = out[:, :, : h * 2 * w].reshape(out.shape[0], out.shape[1], h, 2 * w, 4)[:, :, :, :w]
        pred = tokens.reshape(out.shape[0], out.shape[1], h * w, 4)
        weight = 1.0 + 4.0 * F.max_pool2d(changed, 8)  # per latent pixel, then per patch
        if object_weight:
            objects = ((foreground_weight(item["src"]) > 1) | (foreground_weight(item["tgt"]) > 1)).float()
            weight = weight + object_weight * F.max_pool2d(objects.to(runtime.DEV), 8)
        weight = patchify_target(weight.expand(-1, 1, -1, -1))
        err = (pred - patchify_target(x0 - noise)) ** 2
        return (weight * err).mean() / weight.mean() + aux.take()

    return train_loop("editor", run / "editor", model, opt, steps, loss_fn, batches(run, fetch),
                      lr_at=lr_schedule(3e-4, steps, 50))
