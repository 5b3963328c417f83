"""The resumable training loop every stage uses. Checkpoints are REPA-E's
(`train_ldm_only.py` @3ad8046): `checkpoints/NNNNNNN.pt` = {model, ema, opt, args, steps}, with
`args` an argparse Namespace; only the newest is kept. Each step's randomness is a pure
function of (seed, stage, step) (`runtime.seed_torch`), so a resumed run equals an
uninterrupted one bit for bit. `log.json` beside them records losses and wall time."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import runtime  # noqa: I001
import numpy as np
import torch
from runtime import log


@torch.no_grad()
def update_ema(ema, model, decay: float) -> None:
    """As REPA-E's `update_ema`: every parameter (the frozen pos_embed too) and every float
    buffer moves towards the model's; other buffers are copied."""
    params = dict(model.named_parameters())
    for name, p in ema.named_parameters():
        p.mul_(decay).add_(params[name].data, alpha=1 - decay)
    buffers = dict(model.named_buffers())
    for name, b in ema.named_buffers():
        if b.dtype in (torch.float32, torch.float64):
            b.mul_(decay).add_(buffers[name], alpha=1 - decay)
        else:
            b.copy_(buffers[name])


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted((folder / "checkpoints").glob("[0-9]" * 7 + ".pt"))
    return found[-1] if found else None


def load_state(path: Path) -> dict:
    # weights_only=False: the checkpoint holds an argparse Namespace, as REPA-E's do.
    return torch.load(path, map_location="cpu", weights_only=False)


def train(stage: str, folder: Path, model, opt, steps: int, loss_fn, *, args: dict,
          ema=None, ema_decay: float = 0.999, every: int = 100, lr_at=None) -> dict:
    """`loss_fn(step)` -> (loss, {name: float}) for that step's batch. Writes `args.json`
    (the experiment's REPA-E keys) and resumes from the newest checkpoint. Returns the record."""
    ckpts = folder / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    (folder / "args.json").write_text(json.dumps(args, indent=4) + "\n")
    record_path = folder / "log.json"
    start, record = 0, {"seconds": 0.0, "log": []}
    last = latest_checkpoint(folder)
    if last is not None:
        state = load_state(last)
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start = state["steps"]
        if record_path.exists():
            record = json.loads(record_path.read_text())
            record["log"] = [r for r in record["log"] if r["step"] <= start]
        log(stage, f"resuming at step {start} from {last}")
    t0, window = time.time(), []
    for step in range(start, steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step) * group.get("lr_scale", 1.0)
        loss, parts = loss_fn(step)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if ema is not None:
            update_ema(ema, model, ema_decay)
        window.append({"loss": loss.item(), "grad_norm": grad_norm.item(), **parts})
        if (step + 1) % every == 0 or step + 1 in (steps, runtime.STOP_AFTER):
            elapsed = record["seconds"] + time.time() - t0
            means = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            record["log"].append({"step": step + 1, "seconds": round(elapsed, 1), **means})
            shown = "  ".join(f"{k} {v:.4f}" for k, v in means.items())
            log(stage, f"step {step + 1}/{steps}  {shown}  {elapsed:.0f} s")
            save(folder, step + 1, model, ema, opt, args)
            record["seconds"] = elapsed
            tmp = record_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=1) + "\n")
            os.replace(tmp, record_path)
            t0, window = time.time(), []
            if runtime.STOP_AFTER is not None and step + 1 >= runtime.STOP_AFTER:
                break
    return record


def save(folder: Path, step: int, model, ema, opt, args: dict) -> Path:
    path = folder / "checkpoints" / f"{step:07d}.pt"
    state = {"model": model.state_dict(), "ema": (ema or model).state_dict(),
             "opt": opt.state_dict(), "args": argparse.Namespace(**args), "steps": step}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    for old in (folder / "checkpoints").glob("[0-9]" * 7 + ".pt"):
        if old != path:
            old.unlink()
    return path


def cosine(peak: float, steps: int, warmup: int = 0):
    """Linear warm-up, then cosine decay to zero at `steps` (a resumed run with a larger
    `steps` is a warm restart)."""
    def lr_at(step: int) -> float:
        if step < warmup:
            return peak * (step + 1) / warmup
        return peak * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))
    return lr_at


def constant(peak: float, warmup: int = 0):
    return lambda step: peak * min(1.0, (step + 1) / warmup) if warmup else peak
