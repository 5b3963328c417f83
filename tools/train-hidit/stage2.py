"""Stage 2: the pixel branch (reference design, section 4.3), fine-tuned from the stage-1 EMA
with every weight trainable.

Per sample one t, half the batch t ~ U(0, 1) and half t ~ U(0, tau) so the gated branch sees
enough samples; independent noises for the two streams:
    z_t = (1 - t) z + t eps_z       (z: a posterior sample, BatchNorm-normalised)
    p_t = (1 - t) s + t eps_p       (s: the clean image x, or for a share `recon_frac` of the
                                     samples its VAE reconstruction; the target stays x)
    L = mean (v_z - (eps_z - z))^2 + lambda_pix * g * mean (x_hat - x)^2 / max(t, t_min)^2
        + 0.5 * REPA,                g = 1[t < tau]
The reconstructions are section 4.3's mitigation of the hand-off's train/test gap: at
sampling the pixel stream starts from a VAE decode, blurrier than any real render."""

from __future__ import annotations

import copy
from pathlib import Path

import runtime  # noqa: I001
import torch
from cache import Data
from hidit_model import PIXEL_BRANCH, build_hidit, repa_loss
from loop import constant, latest_checkpoint, load_state, train, update_ema
from experiment import EMA_DECAY, PROJ_COEFF, experiment_args
from runtime import log, seed_torch, step_rng

PIX_LOSS = dict(pix_loss_weight=1.0, pix_min_t=0.05, pix_recon_frac=0.5, pix_low_t_share=0.5)
# The new, zero-initialised pixel-branch weights learn at lr x this, the trained backbone at
# lr. Run r1 used 1 (the branch barely learnt to use the noisy pixels) and tried 10 for 800
# steps (faster, but it disturbed the backbone); r2 uses 3.
PIX_LR_SCALE = 3.0


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=list(range(1, x.dim())))


def stage2(run: Path, seed: int, steps: int = 3000, batch: int = 128, lr: float = 2e-4,
           name: str = "stage2", pix_lr_scale: float = PIX_LR_SCALE) -> dict:
    torch.manual_seed(1)
    model = build_hidit()
    start = latest_checkpoint(run / "stage1")
    missing, unexpected = model.load_state_dict(load_state(start)["ema"], strict=False)
    assert not unexpected and all(k.startswith(("pix_embedder.", "pix_head.")) for k in missing)
    log("stage2", f"from the EMA of {start}; new: {len(missing)} pixel-branch tensors")
    ema = copy.deepcopy(model)
    update_ema(ema, model, 0.0)
    model.train()
    model.bn.eval()
    ema.eval()
    pixel = [p for k, p in model.named_parameters() if k.startswith(("pix_embedder.", "pix_head."))]
    rest = [p for k, p in model.named_parameters() if not k.startswith(("pix_embedder.", "pix_head."))]
    opt = torch.optim.AdamW([{"params": rest}, {"params": pixel, "lr_scale": pix_lr_scale}], lr=lr,
                            betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
    data = Data(run)
    tau = PIXEL_BRANCH["tau"]
    p = PIX_LOSS

    def loss_fn(step):
        b = data.batch(step_rng(seed, "stage2", step), batch)
        gen = seed_torch(seed, "stage2", step)
        mean, std = b["moments"].chunk(2, dim=1)
        z = model.bn(mean + std * torch.randn(mean.shape, generator=gen))
        x = b["images"]
        low = int(batch * p["pix_low_t_share"])
        u = torch.rand(batch, generator=gen)
        t = torch.cat([u[: batch - low], tau * u[batch - low:]])
        eps_z = torch.randn(z.shape, generator=gen)
        eps_p = torch.randn(x.shape, generator=gen)
        drop = torch.rand(batch, generator=gen) < model.y_embedder.dropout_prob
        y = torch.where(drop, model.num_classes, b["labels"])
        use_recon = (torch.rand(batch, generator=gen) < p["pix_recon_frac"])[:, None, None, None]
        src = torch.where(use_recon, b["recon"], x)
        tt = t[:, None, None, None]
        z_t, p_t = (1 - tt) * z + tt * eps_z, (1 - tt) * src + tt * eps_p
        v_z, x_hat, zs_tilde = model.hybrid(z_t, p_t, t, y)
        denoise = mean_flat((v_z - (eps_z - z)) ** 2).mean()
        gate = (t < tau).float()
        pix = (gate * mean_flat((x_hat - x) ** 2) / t.clamp(min=p["pix_min_t"]) ** 2).mean()
        proj = repa_loss([b["repa"]], zs_tilde)
        loss = denoise + p["pix_loss_weight"] * pix + PROJ_COEFF * proj
        return loss, {"denoise": denoise.item(), "pix": pix.item(), "proj": proj.item()}

    args = experiment_args(name, seed, batch, lr, steps, pixel_branch=PIXEL_BRANCH,
                           init_from=f"stage1/checkpoints/{start.name} (ema)",
                           pix_lr_scale=pix_lr_scale, **PIX_LOSS)
    return train("stage2", run / name, model, opt, steps, loss_fn, args=args, ema=ema,
                 ema_decay=EMA_DECAY, every=100, lr_at=constant(lr))
