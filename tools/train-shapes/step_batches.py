"""The training data, a pure function of (seed, stage, step): scene and edit batches, their
noise generators, and the iterator that makes them in this process or in workers ahead of it."""

from __future__ import annotations

from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import numpy as np
import torch
import shapes_world as world
from recipe import SIZE
from text_encoders import TextEncoder


class StepData(torch.utils.data.Dataset):
    """Item i is step start + i's batch: `fetch(step, text)`, a pure function of the step, so
    prefetching processes give exactly what the training process would make itself. Each
    process builds its own frozen text encoders, on the CPU."""

    def __init__(self, run: Path, start: int, steps: int, fetch):
        self.run, self.start, self.steps, self.fetch = run, start, steps, fetch
        self.text = None

    def __len__(self) -> int:
        return self.steps - self.start

    def __getitem__(self, i: int):
        return self.fetch(self.start + i, self)

    def table(self, captions: list[str]) -> dict:
        if self.text is None:  # built on first use: the VAE stage needs no text
            self.text = TextEncoder(self.run)
        return self.text.table(captions)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


def batches(run: Path, fetch):
    """start -> an iterator over the batches of steps start, start + 1, ..."""
    def from_step(start: int, steps: int):
        data = StepData(run, start, steps, fetch)
        if runtime.WORKERS == 0:
            return (data[i] for i in range(len(data)))
        return iter(torch.utils.data.DataLoader(data, batch_size=None, num_workers=runtime.WORKERS,
                                                prefetch_factor=8, worker_init_fn=_one_thread))
    return from_step


def fetch_scenes(seed: int, stage: str, batch: int, extra: tuple[str, ...] = ("",)):
    def fetch(step: int, text):
        scenes, images = scene_batch(seed, stage, step, batch)
        captions = [sc.caption for sc in scenes]
        return {"captions": captions, "images": images, "emb": text.table(captions + list(extra))}
    return fetch


def randn(shape, gen: torch.Generator) -> torch.Tensor:
    """Noise drawn on the CPU (the same numbers whatever the device), then moved."""
    return torch.randn(shape, generator=gen).to(runtime.DEV)


def batch_rng(seed: int, stage: str, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, stage)), step])


def torch_gen(seed: int, stage: str, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(batch_rng(seed, stage + "/torch", step).integers(2**62)))


def scene_batch(seed: int, stage: str, step: int, batch: int):
    rng = batch_rng(seed, stage, step)
    scenes = [world.sample_scene(rng, SIZE) for _ in range(batch)]
    pixels = np.stack([world.render(s, SIZE) for s in scenes])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return scenes, images


def foreground_weight(images: torch.Tensor) -> torch.Tensor:
    """x10 on object pixels: white or black backgrounds otherwise dominate the loss and wash the
    hues out."""
    bg_white = (images > 0.99).all(dim=1, keepdim=True)
    bg_black = (images < -0.99).all(dim=1, keepdim=True)
    return torch.where(bg_white | bg_black, 1.0, 10.0)


def edit_batch(seed: int, step: int, batch: int, kind_weights: list[float] | None = None):
    rng = batch_rng(seed, "editor", step)
    triplets = [world.sample_edit(rng, SIZE, kind_weights) for _ in range(batch)]
    src = np.stack([world.render(s, SIZE) for s, _, _, _ in triplets])
    tgt = np.stack([world.render(t, SIZE) for _, _, t, _ in triplets])
    to_t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # noqa: E731
    changed = torch.from_numpy((src != tgt).any(axis=-1)).float()[:, None]
    return triplets, to_t(src), to_t(tgt), changed
