"""The self-check: the loss falls, and a resumed run is bit-exact, for the VAE and the
transformer stage."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import numpy as np
import torch
from full_stage import stage_full
from step_batches import batches, foreground_weight, scene_batch
from text_encoders import stage_encoders
from training_loop import train_loop
from vae_stage import finish_vae, new_vae


def selfcheck() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        losses = stage_vae_small(a, steps=40)
        first, last = np.mean(losses[:2]), np.mean(losses[-2:])
        assert last < first, f"VAE loss did not fall: {first:.4f} -> {last:.4f}"
        runtime.STOP_AFTER = 20
        stage_vae_small(b, steps=40)
        runtime.STOP_AFTER = None
        stage_vae_small(b, steps=40)  # resumes from step 20
        sa = torch.load(a / "vae" / "checkpoint.pt", weights_only=False)["model"]
        sb = torch.load(b / "vae" / "checkpoint.pt", weights_only=False)["model"]
        diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
        assert not diff, f"resumed run differs in {len(diff)} tensors, first {diff[0]}"
        print(f"selfcheck: VAE loss {first:.4f} -> {last:.4f} over 40 steps; resumed run bit-exact "
              f"({len(sa)} tensors)")
        # The transformer stage: tokenizers, frozen encoders and an untrained VAE are enough to
        # check that its loss falls and that resuming (MoE routing included) is exact.
        stage_encoders(a)
        finish_vae(a, new_vae(), seed=0)
        shutil.copytree(a / "encoders", b / "encoders")
        shutil.copytree(a / "vae" / "model", b / "vae" / "model")
        losses = stage_full(a, steps=30, seed=0, batch=4, every=5)
        runtime.STOP_AFTER = 15
        stage_full(b, steps=30, seed=0, batch=4, every=5)
        runtime.STOP_AFTER = None
        stage_full(b, steps=30, seed=0, batch=4, every=5)
        sa = torch.load(a / "full" / "checkpoint.pt", weights_only=False)["model"]
        sb = torch.load(b / "full" / "checkpoint.pt", weights_only=False)["model"]
        diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
        assert losses[-1] < losses[0], f"transformer loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}"
        assert not diff, f"resumed transformer run differs in {len(diff)} tensors, first {diff[0]}"
        print(f"selfcheck: transformer loss {losses[0]:.4f} -> {losses[-1]:.4f} over 30 steps; "
              f"resumed run bit-exact ({len(sa)} tensors)")


def stage_vae_small(run: Path, steps: int) -> list[float]:
    vae = new_vae()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)

    def fetch(step, _text):
        return scene_batch(0, "vae", step, 4)[1]

    def loss_fn(_step, images):
        recon = vae(images, sample_posterior=False).sample
        return (foreground_weight(images) * (recon - images) ** 2).mean()

    return train_loop("vae-selfcheck", run / "vae", vae, opt, steps, loss_fn, batches(run, fetch), every=5)
