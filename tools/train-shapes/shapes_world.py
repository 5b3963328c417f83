"""The Shapes world, for training: scenes of 1-3 coloured shapes with templated captions, and
edit triplets. The product's definition is `src/shapes/` (Rust), which ShapesEval renders and
checks against; this module must draw exactly the same pixels for the same scene, which
`tests/integration/shapes_world.rs` checks on scenes rendered here (`python shapes_world.py
--golden tests/fixtures/shapes`).

Geometry is plain float64 arithmetic on literal constants (no sin/cos at draw time), so both
implementations round identically.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 60, 190),
    "orange": (245, 110, 10),
}
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
SHAPES = ["circle", "square", "triangle", "star", "ring"]
# Where a lone object sits, as fractions of the image side, and how its caption names it.
PLACES = {
    "left": ((0.25, 0.5), "on the left"),
    "right": ((0.75, 0.5), "on the right"),
    "top": ((0.5, 0.25), "at the top"),
    "bottom": ((0.5, 0.75), "at the bottom"),
    "centre": ((0.5, 0.5), "in the centre"),
}
# Two objects: the first one's place, the second one's place.
RELATIONS = {
    "to the left of": ((0.27, 0.5), (0.73, 0.5)),
    "to the right of": ((0.73, 0.5), (0.27, 0.5)),
    "above": ((0.5, 0.27), (0.5, 0.73)),
    "below": ((0.5, 0.73), (0.5, 0.27)),
}
ROW = [(0.2, 0.5), (0.5, 0.5), (0.8, 0.5)]
RADIUS = {1: 0.16, 2: 0.14, 3: 0.11}

TRIANGLE = [(0.0, -1.0), (0.8660254037844386, 0.5), (-0.8660254037844386, 0.5)]
# Five points (outer radius 1) alternating with inner corners at radius 0.45, first point up.
STAR = [
    (0.0, -1.0),
    (0.26450336353161937, -0.3640576474687263),
    (0.9510565162951535, -0.30901699437494745),
    (0.42797276071036225, 0.1390576474687264),
    (0.5877852522924732, 0.8090169943749473),
    (0.0, 0.45),
    (-0.5877852522924730, 0.8090169943749475),
    (-0.42797276071036236, 0.13905764746872630),
    (-0.9510565162951536, -0.30901699437494723),
    (-0.26450336353161943, -0.36405764746872626),
]
SQUARE_HALF = 0.85
RING_INNER = 0.55


@dataclass
class Obj:
    shape: str
    colour: str
    cx: float
    cy: float
    r: float


@dataclass
class Scene:
    background: str
    objects: list[Obj] = field(default_factory=list)
    caption: str = ""

    def to_json(self) -> dict:
        return {"background": self.background, "caption": self.caption,
                "objects": [o.__dict__ for o in self.objects]}


def inside(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "ring":
        d2 = dx * dx + dy * dy
        inner = RING_INNER * r
        return (d2 <= r * r) & (d2 > inner * inner)
    if shape == "square":
        h = SQUARE_HALF * r
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape in ("triangle", "star"):
        verts = [(x * r, y * r) for x, y in (TRIANGLE if shape == "triangle" else STAR)]
        odd = np.zeros(dx.shape, dtype=bool)
        n = len(verts)
        for i in range(n):
            xi, yi = verts[i]
            xj, yj = verts[(i + 1) % n]
            if yi == yj:
                continue
            crosses = (yi > dy) != (yj > dy)
            x_at = (xj - xi) * (dy - yi) / (yj - yi) + xi
            odd ^= crosses & (dx < x_at)
        return odd
    raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, size: int) -> np.ndarray:
    """The scene as uint8 RGB, height x width x 3; pixel (x, y) is sampled at its centre."""
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = BACKGROUNDS[scene.background]
    centres = np.arange(size, dtype=np.float64) + 0.5
    py, px = np.meshgrid(centres, centres, indexing="ij")
    for o in scene.objects:
        mask = inside(o.shape, px - o.cx, py - o.cy, o.r)
        img[mask] = COLOURS[o.colour]
    return img


def a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def place(frac: tuple[float, float], size: int, rng: np.random.Generator, jitter: int) -> tuple[float, float]:
    jx, jy = rng.integers(-jitter, jitter + 1, size=2)
    return float(round(frac[0] * size) + jx), float(round(frac[1] * size) + jy)


def sample_scene(rng: np.random.Generator, size: int, counts=(0.45, 0.45, 0.10)) -> Scene:
    n = int(rng.choice([1, 2, 3], p=list(counts)))
    bg = str(rng.choice(list(BACKGROUNDS)))
    colours = [str(c) for c in rng.choice(list(COLOURS), size=n, replace=False)]
    shapes = [str(s) for s in rng.choice(SHAPES, size=n, replace=True)]
    base_r = RADIUS[n] * size
    jitter = max(1, size // 32)

    def radius() -> float:
        return float(round(base_r) + rng.integers(-1, 2) * max(1, size // 64))

    if n == 1:
        key = str(rng.choice(list(PLACES)))
        frac, words = PLACES[key]
        cx, cy = place(frac, size, rng, jitter)
        objs = [Obj(shapes[0], colours[0], cx, cy, radius())]
        caption = f"{a(colours[0])} {shapes[0]} {words}, on {bg}"
    elif n == 2:
        rel = str(rng.choice(list(RELATIONS)))
        fa, fb = RELATIONS[rel]
        objs = []
        for frac, c, s in zip((fa, fb), colours, shapes):
            cx, cy = place(frac, size, rng, jitter)
            objs.append(Obj(s, c, cx, cy, radius()))
        caption = f"{a(colours[0])} {shapes[0]} {rel} {a(colours[1])} {shapes[1]}, on {bg}"
    else:
        objs = []
        for frac, c, s in zip(ROW, colours, shapes):
            cx, cy = place(frac, size, rng, jitter)
            objs.append(Obj(s, c, cx, cy, radius()))
        caption = (f"{a(colours[0])} {shapes[0]}, {a(colours[1])} {shapes[1]} and "
                   f"{a(colours[2])} {shapes[2]} in a row, on {bg}")
    return Scene(bg, objs, caption)


def golden_scenes(size: int) -> list[Scene]:
    """Fixed scenes covering every shape, colour and background, with off-grid radii."""
    scenes = []
    for i, shape in enumerate(SHAPES):
        colour = list(COLOURS)[i % len(COLOURS)]
        other = list(COLOURS)[(i + 3) % len(COLOURS)]
        bg = "white" if i % 2 == 0 else "black"
        scenes.append(Scene(bg, [
            Obj(shape, colour, 0.27 * size, 0.5 * size, 0.14 * size + 0.3),
            Obj(SHAPES[(i + 2) % len(SHAPES)], other, 0.73 * size + 0.5, 0.5 * size - 1.0, 0.14 * size),
        ], f"golden {i}"))
    return scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=Path, required=True, help="folder for the golden renders")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    args.golden.mkdir(parents=True, exist_ok=True)
    scenes = golden_scenes(args.size)
    for i, scene in enumerate(scenes):
        (args.golden / f"golden-{i}.rgb").write_bytes(render(scene, args.size).tobytes())
    (args.golden / "golden.json").write_text(json.dumps(
        {"size": args.size, "scenes": [s.to_json() for s in scenes]}, indent=1) + "\n")


if __name__ == "__main__":
    main()


EDIT_KINDS = ["recolour", "remove", "add", "move", "background"]


def move_words(place: str) -> str:
    """`move ... to the left`: the place's words with "to the" in front, as the Rust twin."""
    return "to the " + PLACES[place][1].split(" ", 2)[2]


def sample_edit(rng: np.random.Generator, size: int,
                kind_weights: list[float] | None = None) -> tuple[Scene, str, Scene, str]:
    """(source, instruction, target, kind) in the templates of `src/shapes/edits.rs`; kinds are
    equally likely unless `kind_weights` (in EDIT_KINDS' order) says otherwise."""
    if kind_weights is None:  # the draw the first shipped runs were made with
        kind = str(rng.choice(EDIT_KINDS))
    else:
        p = np.asarray(kind_weights, dtype=float)
        kind = str(rng.choice(EDIT_KINDS, p=p / p.sum()))
    bg = str(rng.choice(list(BACKGROUNDS)))
    colours = [str(c) for c in rng.choice(list(COLOURS), size=3, replace=False)]
    shapes = [str(s) for s in rng.choice(SHAPES, size=2, replace=True)]
    jitter = max(1, size // 32)

    def obj(shape, colour, frac, n):
        cx, cy = place(frac, size, rng, jitter)
        return Obj(shape, colour, cx, cy, float(round(RADIUS[n] * size)))

    if kind in ("recolour", "remove", "background"):
        fa, fb = RELATIONS[str(rng.choice(list(RELATIONS)))]
        objs = [obj(shapes[0], colours[0], fa, 2), obj(shapes[1], colours[1], fb, 2)]
        source = Scene(bg, objs)
        if kind == "recolour":
            changed = [Obj(**{**objs[0].__dict__, "colour": colours[2]}), objs[1]]
            return source, f"make the {colours[0]} {shapes[0]} {colours[2]}", Scene(bg, changed), kind
        if kind == "remove":
            return source, f"remove the {colours[0]} {shapes[0]}", Scene(bg, [objs[1]]), kind
        to = "black" if bg == "white" else "white"
        return source, f"make the background {to}", Scene(to, objs), kind
    here, there = [str(p) for p in rng.choice(list(PLACES), size=2, replace=False)]
    lone = obj(shapes[0], colours[0], PLACES[here][0], 1)
    source = Scene(bg, [lone])
    if kind == "add":
        added = obj(shapes[1], colours[1], PLACES[there][0], 1)
        text = f"add {a(colours[1])} {shapes[1]} {PLACES[there][1]}"
        return source, text, Scene(bg, [lone, added]), kind
    moved = obj(shapes[0], colours[0], PLACES[there][0], 1)
    return source, f"move the {colours[0]} {shapes[0]} {move_words(there)}", Scene(bg, [moved]), kind
