"""The f16 autoencoder: REPA-E's `AutoencoderKL` (models/autoencoder.py @3ad8046) at our size,
its training stage, and the latent statistics file (`*-latents-stats.pt`, as
`save_vae_weights.py` writes: latents_scale = 1/std and latents_bias = mean, [1, C, 1, 1])."""

from __future__ import annotations

import json
from pathlib import Path

import runtime  # noqa: I001
import class_world as cw
import shapes_read
import torch
import torch.nn as nn
from runtime import log, step_rng

# 64 px -> 4 x 4 x 8, the f16 layout (five levels, attention at the lowest resolution, as
# f16d32's at 16 px of 256) with 32 channels throughout (GroupNorm(32) is the floor) and one
# res block per level: ~180k encoder and ~280k decoder parameters.
VAE_ARCH = dict(embed_dim=8, ch=32, ch_mult=[1, 1, 1, 1, 1], num_res_blocks=1,
                attn_resolutions=[4], resolution=cw.SIZE, use_variational=True,
                downsample_factor=16)
VAE_NAME = "shapes-vae"


def build_vae(arch: dict = VAE_ARCH) -> nn.Module:
    """REPA-E's AutoencoderKL whose __init__ fixes ch 128, two res blocks and attention at 16
    px of 256: the same four modules are built here with our numbers, so every tensor name
    is the class's own and its encode/decode run unchanged."""
    ae = runtime.repae("models/autoencoder")
    assert 2 ** (len(arch["ch_mult"]) - 1) == arch["downsample_factor"]

    class ShapesAutoencoderKL(ae.AutoencoderKL):
        def __init__(self):
            nn.Module.__init__(self)
            kw = dict(ch=arch["ch"], ch_mult=arch["ch_mult"], num_res_blocks=arch["num_res_blocks"],
                      attn_resolutions=tuple(arch["attn_resolutions"]),
                      resolution=arch["resolution"], z_channels=arch["embed_dim"])
            self.encoder = ae.Encoder(**kw)
            self.decoder = ae.Decoder(**kw)
            self.use_variational = arch["use_variational"]
            mult = 2 if self.use_variational else 1
            self.quant_conv = nn.Conv2d(2 * arch["embed_dim"], mult * arch["embed_dim"], 1)
            self.post_quant_conv = nn.Conv2d(arch["embed_dim"], arch["embed_dim"], 1)

    return ShapesAutoencoderKL()


def foreground_weight(images: torch.Tensor) -> torch.Tensor:
    """x10 on object pixels, else the white background dominates and hues wash out."""
    return torch.where((images > 0.99).all(dim=1, keepdim=True), 1.0, 10.0)


def edge_l1(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical pixel differences of the reconstruction and the
    render. The weighted L1 alone settles on blurred blobs for a long time (run r1: every
    shape a rounded blob after 1100 steps); outlines are where the shapes differ, and this
    term is non-zero only there."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(recon) - dx(images)).abs().mean() + (dy(recon) - dy(images)).abs().mean()


def stage_vae(run: Path, steps: int, seed: int, batch: int = 16, lr: float = 2e-3,
              kl_weight: float = 1e-6, edge_weight: float = 10.0, eval_images: int = 512) -> dict:
    """Weighted L1 (REPA-E's VAE loss is L1 + LPIPS + GAN + KL; no LPIPS network or GAN at
    this scale), edge_weight x the L1 of pixel differences (`edge_l1`), plus kl_weight x the KL
    summed over the latent."""
    from loop import train
    torch.manual_seed(seed)
    vae = build_vae()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)

    def loss_fn(step):
        _, x, _ = cw.step_batch(seed, "vae", step, batch)
        posterior, _, recon = vae(x)
        rec = (foreground_weight(x) * (recon - x).abs()).mean()
        edge = edge_l1(recon, x)
        kl = posterior.kl().mean()
        return rec + edge_weight * edge + kl_weight * kl, {"l1": rec.item(), "edge": edge.item(),
                                                           "kl": kl.item()}

    def lr_at(step):
        return lr * min(1.0, (step + 1) / 50) * (0.2 if step >= 0.8 * steps else 1.0)

    args = {"stage": "vae", "seed": seed, "batch_size": batch, "learning_rate": lr,
            "kl_weight": kl_weight, "edge_weight": edge_weight, "vae_arch": VAE_ARCH}
    record = train("vae", run / "vae", vae, opt, steps, loss_fn, args=args, lr_at=lr_at)
    torch.save(vae.state_dict(), run / "vae" / f"{VAE_NAME}.pt")
    return {**record, **finish_vae(run, vae, seed, eval_images)}


@torch.no_grad()
def finish_vae(run: Path, vae, seed: int, n: int = 512) -> dict:
    """Latent statistics over posterior samples of held-out scenes (what the SiT is trained
    on), PSNR, and how often ShapesEval reads the class back from reconstructions (a
    ceiling for the latent model)."""
    vae.eval()
    labels, pixels, _ = cw.batch(step_rng(seed + 1, "vae-eval", 0), n)
    x = cw.to_tensor(pixels)
    torch.manual_seed(seed + 1)
    posterior = vae.encode(x)
    z = posterior.sample()
    mean, std = z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3))
    stats = {"latents_scale": (1.0 / std).view(1, -1, 1, 1), "latents_bias": mean.view(1, -1, 1, 1)}
    torch.save(stats, run / "vae" / f"{VAE_NAME}-latents-stats.pt")
    recon = vae.decode(posterior.mode()).sample.clamp(-1, 1)
    psnr = (10 * torch.log10(4.0 / ((recon - x) ** 2).mean(dim=(1, 2, 3)))).mean().item()
    read = [shapes_read.check(img, *cw.CLASSES[k])["class"] for img, k in zip(to_uint8(recon), labels)]
    out = {"psnr_db": psnr, "recon_class_accuracy": sum(read) / n,
           "latent_std": std.tolist(), "latent_mean": mean.tolist(),
           "posterior_std_mean": posterior.std.mean().item()}
    (run / "vae" / "eval.json").write_text(json.dumps(out, indent=1) + "\n")
    log("vae", f"held-out PSNR {psnr:.2f} dB, class read back from reconstructions "
               f"{out['recon_class_accuracy']:.3f}")
    return out


def to_uint8(images: torch.Tensor):
    """[-1, 1] [B, 3, H, W] -> uint8 [B, H, W, 3] as REPA-E's generate.py: clamp, truncate."""
    return torch.clamp(255.0 * (images + 1) / 2.0, 0, 255).permute(0, 2, 3, 1).to(torch.uint8).numpy()


def load_vae(run: Path) -> nn.Module:
    vae = build_vae()
    vae.load_state_dict(torch.load(run / "vae" / f"{VAE_NAME}.pt", map_location="cpu"))
    return vae.eval().requires_grad_(False)


def load_stats(run: Path) -> dict:
    return torch.load(run / "vae" / f"{VAE_NAME}-latents-stats.pt", map_location="cpu")
