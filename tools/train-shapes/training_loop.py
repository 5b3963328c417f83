"""The loop every stage trains with: checkpoints written every `every` steps and resumed from,
the learning-rate schedule applied, losses logged and recorded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import numpy as np
import torch
from runtime import log


def save_checkpoint(path: Path, step: int, model, opt, extra: dict | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "model": model.state_dict(), "opt": opt.state_dict(),
                "extra": extra or {}}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, opt) -> tuple[int, dict]:
    if not path.exists():
        return 0, {}
    state = torch.load(path, weights_only=False, map_location=runtime.DEV)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    return state["step"], state["extra"]


def train_loop(stage: str, out: Path, model, opt, steps: int, loss_fn, data, every: int = 100,
               lr_at=None) -> list[float]:
    """`data(start, steps)` iterates over the batches; `loss_fn(step, batch)` gives the loss."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    start, extra = load_checkpoint(ckpt, model, opt)
    record = extra.get("record", {"seconds": 0.0, "losses": []})
    if start:
        log(stage, f"resuming at step {start}")
    t0 = time.time()
    window = []
    items = data(start, steps)
    for step in range(start, steps):
        if lr_at is not None:
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
        loss = loss_fn(step, next(items))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == steps:
            elapsed = record["seconds"] + time.time() - t0
            mean = float(np.mean(window))
            record["losses"].append([step + 1, mean])
            log(stage, f"step {step + 1}/{steps}  loss {mean:.5f}  "
                       f"{(step + 1 - start) / (time.time() - t0):.2f} steps/s  {elapsed:.0f} s")
            window = []
            save_checkpoint(ckpt, step + 1, model, opt,
                            {"record": dict(record, seconds=elapsed)})
            record["seconds"], t0, start = elapsed, time.time(), step + 1
            if runtime.STOP_AFTER is not None and step + 1 >= runtime.STOP_AFTER:
                break
    return [l for _, l in record["losses"]]


def lr_schedule(peak: float, steps: int, warmup: int = 100):
    def lr_at(step):
        if step < warmup:
            return peak * (step + 1) / warmup
        return peak * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))
    return lr_at
