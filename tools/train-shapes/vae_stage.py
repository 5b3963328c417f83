"""The VAE: its training stage, the factors measured on held-out scenes, and its use by the
transformer stages (loading it, encoding images to latents)."""

from __future__ import annotations

import json
from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import torch
from recipe import VAE
from runtime import log
from step_batches import batches, foreground_weight, randn, scene_batch, torch_gen
from training_loop import train_loop


def new_vae():
    from diffusers import AutoencoderKL
    torch.manual_seed(5)
    return AutoencoderKL(**VAE)


def stage_vae(run: Path, steps: int, seed: int, batch: int = 16) -> list[float]:
    vae = new_vae().to(runtime.DEV)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)

    def fetch(step, _text):
        return scene_batch(seed, "vae", step, batch)[1]

    def loss_fn(step, images):
        images = images.to(runtime.DEV)
        posterior = vae.encode(images).latent_dist
        z = posterior.mean + posterior.std * randn(posterior.mean.shape, torch_gen(seed, "vae", step))
        recon = vae.decode(z).sample
        rec = (foreground_weight(images) * (recon - images) ** 2).mean()
        kl = posterior.kl().mean() / images[0].numel()
        return rec + 1e-4 * kl

    def lr_at(step):
        return 2e-3 * min(1.0, (step + 1) / 50) * (0.1 if step > 0.8 * steps else 1.0)

    losses = train_loop("vae", run / "vae", vae, opt, steps, loss_fn, batches(run, fetch), lr_at=lr_at)
    finish_vae(run, vae, seed)
    return losses


@torch.no_grad()
def finish_vae(run: Path, vae, seed: int) -> None:
    """Sets shift and scaling factors from the latents of held-out scenes (the FLUX VAE's
    factors are the same statistic over photographs), reports PSNR, and saves the diffusers
    folder."""
    vae.eval()
    _, images = scene_batch(seed + 1, "vae-eval", 0, 256)
    images = images.to(runtime.DEV)
    z = vae.encode(images).latent_dist.mean
    shift, scale = z.mean().item(), 1.0 / z.std().item()
    vae.register_to_config(shift_factor=round(shift, 4), scaling_factor=round(scale, 4))
    recon = vae.decode(z).sample.clamp(-1, 1)
    mse = ((recon - images) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(4.0 / mse)).mean().item()
    vae.save_pretrained(run / "vae" / "model")
    (run / "vae" / "eval.json").write_text(json.dumps({"psnr_db": psnr, "shift": shift, "scale": scale}) + "\n")
    log("vae", f"held-out PSNR {psnr:.2f} dB, shift {shift:.4f}, scale {scale:.4f}")


def load_vae(run: Path):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(run / "vae" / "model").to(runtime.DEV)
    vae.eval().requires_grad_(False)
    return vae


@torch.no_grad()
def to_latents(vae, images: torch.Tensor) -> torch.Tensor:
    z = vae.encode(images.to(runtime.DEV)).latent_dist.mean
    return (z - vae.config.shift_factor) * vae.config.scaling_factor
