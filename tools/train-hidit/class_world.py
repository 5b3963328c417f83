"""The class-conditional Shapes world of Shapes Hi-DiT: one object on white, class = shape x
colour ("red circle"), with position and size jitter. Drawn by `shapes_world.render`, the twin
of `src/shapes/world.rs`, so ShapesEval reads these pictures as it reads its own renders.

The shapes and colours are those ShapesEval's detector (`src/shapes/detect.rs`) tells apart
with the widest margins at 64 px: the ring is left out (its hole is 6 px across at this size,
a blurry sample closes it into a circle) and so are orange and purple (nearest palette
neighbours of red/yellow and blue)."""

from __future__ import annotations

import runtime  # noqa: I001  (one thread, import paths)
import numpy as np
import torch
import shapes_world as world
from runtime import seed_torch, step_rng

SIZE = 64
SHAPES = ["circle", "square", "triangle", "star"]
COLOURS = ["red", "green", "blue", "yellow"]
BACKGROUND = "white"
# Class k is SHAPES[k // 4] in COLOURS[k % 4].
CLASSES = [(s, c) for s in SHAPES for c in COLOURS]
NUM_CLASSES = len(CLASSES)
# Radius (px, the world's circumradius) and centre offset from the middle (px), inclusive.
# Large objects: at radius 9-13 (run r1) the four outlines differ by so few pixels that a
# CPU-trained f16 VAE drew them all as one blob; at 14-20 a star's spikes and a square's
# corners span several pixels each. 32 + 8 + 20 keeps every object inside the 64 px frame.
RADII = (14, 20)
OFFSET = 8


def class_name(k: int) -> str:
    shape, colour = CLASSES[k]
    return f"{colour} {shape}"


def sample_scene(rng: np.random.Generator, label: int) -> world.Scene:
    shape, colour = CLASSES[label]
    r = float(rng.integers(RADII[0], RADII[1] + 1))
    cx, cy = (float(SIZE // 2 + d) for d in rng.integers(-OFFSET, OFFSET + 1, size=2))
    return world.Scene(BACKGROUND, [world.Obj(shape, colour, cx, cy, r)], class_name(label))


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> f32 [B, 3, H, W] in [-1, 1] (REPA-E's x / 127.5 - 1)."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n scenes with uniform labels: (labels [n], uint8 pixels [n, H, W, 3], geometry [n, 3] =
    (cx, cy, r) / SIZE)."""
    labels = rng.integers(0, NUM_CLASSES, size=n)
    scenes = [sample_scene(rng, int(k)) for k in labels]
    pixels = np.stack([world.render(s, SIZE) for s in scenes])
    geometry = np.array([[o.cx, o.cy, o.r] for s in scenes for o in s.objects]) / SIZE
    return labels, pixels, geometry.astype(np.float32)


def step_batch(seed: int, stage: str, step: int, n: int):
    """A training step's scenes as (labels [n], images f32 [n, 3, H, W] in [-1, 1], geometry),
    with torch's generator seeded for the step."""
    labels, pixels, geometry = batch(step_rng(seed, stage, step), n)
    seed_torch(seed, stage, step)
    return labels, to_tensor(pixels), geometry


def classes_json() -> dict:
    """What `classes.json` in a model folder says: the class names in label order, the null
    label classifier-free guidance uses, and how the pictures were made."""
    return {
        "classes": [class_name(k) for k in range(NUM_CLASSES)],
        "null_class": NUM_CLASSES,
        "resolution": SIZE,
        "background": BACKGROUND,
        "shapes": SHAPES,
        "colours": COLOURS,
        "radius_px": list(RADII),
        "centre_offset_px": OFFSET,
    }
