"""The frozen encoder of the REPA alignment loss. REPA-E aligns block 8 of SiT-XL/1 with
DINOv2-B patch tokens (16 x 16 x 768 at 256 px); nothing pretrained can be downloaded here,
so ours is a small CNN trained first, on clean renders of the world, to name the class
(cross-entropy over shape x colour) and to place the object (centre and radius, regressed).
Its last feature map is 4 x 4, one token per latent cell (as DINOv2's 16 x 16 is for the
f16 latent), 64 channels. The VAE encoder's features were the other candidate and were not
chosen: they are the very latents being denoised, so aligning with them adds no information
from outside, which is what REPA's target is for."""

from __future__ import annotations

from pathlib import Path

import runtime  # noqa: I001
import class_world as cw
import torch
import torch.nn as nn
import torch.nn.functional as F
from runtime import log, step_rng

Z_DIM = 64


class ShapesEncoder(nn.Module):
    def __init__(self, z_dim: int = Z_DIM):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.SiLU(),      # [B, 32, 32, 32]
            nn.Conv2d(32, 64, 4, 2, 1), nn.SiLU(),     # [B, 64, 16, 16]
            nn.Conv2d(64, 64, 4, 2, 1), nn.SiLU(),     # [B, 64, 8, 8]
            nn.Conv2d(64, 64, 4, 2, 1), nn.SiLU(),     # [B, 64, 4, 4]
            nn.Conv2d(64, z_dim, 1),                   # [B, Z, 4, 4]
        )
        self.classify = nn.Linear(z_dim, cw.NUM_CLASSES)
        self.place = nn.Linear(z_dim, 3)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], [B, 3, 64, 64] -> REPA targets [B, 16, Z] (row-major cells, the
        order of SiT's tokens)."""
        return self.body(x).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor):
        # Max over cells: a corner or spike detector firing in one cell decides the shape. The
        # mean (run r1) washed that out and left circle/square and triangle/star confused
        # (held-out accuracy 0.60, cross-entropy stuck at ln 2).
        pooled = self.tokens(x).amax(1)
        return self.classify(pooled), self.place(pooled)


def stage_encoder(run: Path, steps: int, seed: int, batch: int = 64, lr: float = 1e-3) -> dict:
    from loop import cosine, train
    torch.manual_seed(seed)
    enc = ShapesEncoder()
    opt = torch.optim.Adam(enc.parameters(), lr=lr)

    def loss_fn(step):
        labels, images, geometry = cw.step_batch(seed, "encoder", step, batch)
        logits, place = enc(images)
        ce = F.cross_entropy(logits, torch.from_numpy(labels))
        geo = 10.0 * F.mse_loss(place, torch.from_numpy(geometry))
        return ce + geo, {"ce": ce.item(), "place": geo.item()}

    args = {"stage": "encoder", "seed": seed, "batch_size": batch, "learning_rate": lr, "z_dim": Z_DIM}
    record = train("encoder", run / "encoder", enc, opt, steps, loss_fn, args=args,
                   lr_at=cosine(lr, steps, warmup=50))
    acc = evaluate(enc, seed)
    torch.save(enc.state_dict(), run / "encoder" / "encoder.pt")
    log("encoder", f"held-out class accuracy {acc:.4f}")
    return {**record, "heldout_accuracy": acc}


@torch.no_grad()
def evaluate(enc: ShapesEncoder, seed: int, n: int = 1024) -> float:
    labels, pixels, _ = cw.batch(step_rng(seed + 1, "encoder-eval", 0), n)
    logits, _ = enc.eval()(cw.to_tensor(pixels))
    return (logits.argmax(-1).numpy() == labels).mean().item()


def load_encoder(run: Path) -> ShapesEncoder:
    enc = ShapesEncoder()
    enc.load_state_dict(torch.load(run / "encoder" / "encoder.pt", map_location="cpu"))
    return enc.eval().requires_grad_(False)
