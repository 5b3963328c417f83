"""ShapesEval's reading of a picture, ported from `src/shapes/detect.rs` so Python can score
samples before the Rust `hidit` command exists: each pixel takes the nearest palette colour
(ties to the earlier of white, the six object colours in `Colour::ALL` order, black), objects
are 8-connected one-colour regions of at least 1/200 of the picture, and a region's outline
tells its shape (ring: centre not its own; star: solidity < 0.75; square, circle, triangle by
how much of the bounding box it fills). A class is read back when the largest object has
the class's colour and shape (ShapesEval's "single colour" and "single shape" together)."""

from __future__ import annotations

import math

import numpy as np
import shapes_world as world

PALETTE_NAMES = ["white", *world.COLOURS.keys(), "black"]
PALETTE = np.array([world.BACKGROUNDS["white"], *world.COLOURS.values(),
                    world.BACKGROUNDS["black"]], dtype=np.int32)


def palette_classes(img: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> palette index [H, W]; argmin keeps the first of equal distances."""
    d = ((img.astype(np.int32)[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def _flood(classes: np.ndarray, seen: np.ndarray, start: int) -> list[int]:
    h, w = classes.shape
    flat, cls = classes.reshape(-1), classes.reshape(-1)[start]
    region, stack = [], [start]
    seen[start] = True
    while stack:
        i = stack.pop()
        region.append(i)
        x, y = i % w, i // w
        for ny in (y - 1, y, y + 1):
            for nx in (x - 1, x, x + 1):
                if 0 <= nx < w and 0 <= ny < h:
                    j = ny * w + nx
                    if not seen[j] and flat[j] == cls:
                        seen[j] = True
                        stack.append(j)
    return region


def _hull_area(xs: np.ndarray, ys: np.ndarray) -> float:
    """Convex hull of the pixel squares' corners (monotone chain, shoelace); each row's end
    pixels carry all the corners that can be on the hull."""
    pts = set()
    for y in np.unique(ys):
        row = xs[ys == y]
        for x in (int(row.min()), int(row.max()) + 1):
            pts.update({(x, int(y)), (x, int(y) + 1)})
    pts = sorted(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    hull = []
    for ordered in (pts, pts[::-1]):
        start = len(hull)
        for p in ordered:
            while len(hull) >= start + 2 and cross(hull[-2], hull[-1], p) <= 0:
                hull.pop()
            hull.append(p)
        hull.pop()
    twice = sum(hull[i][0] * hull[(i + 1) % len(hull)][1] - hull[(i + 1) % len(hull)][0] * hull[i][1]
                for i in range(len(hull)))
    return max(abs(twice) / 2.0, 1.0)


def _describe(region: list[int], w: int) -> dict:
    idx = np.array(region)
    xs, ys = idx % w, idx // w
    n = len(region)
    cx, cy = float((xs + 0.5).sum() / n), float((ys + 0.5).sum() / n)
    fill = n / float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    member = set(region)
    ix, iy = math.floor(cx), math.floor(cy)
    hits = total = 0
    for y in (iy - 1, iy, iy + 1):
        for x in (ix - 1, ix, ix + 1):
            if x >= 0 and y >= 0:
                total += 1
                hits += (y * w + x) in member
    solidity = n / _hull_area(xs, ys)
    if hits * 3 < total:
        shape = "ring"
    elif solidity < 0.75:
        shape = "star"
    elif fill > 0.89:
        shape = "square"
    elif fill > 0.64:
        shape = "circle"
    else:
        shape = "triangle"
    return {"shape": shape, "area": n, "cx": cx, "cy": cy}


def read(img: np.ndarray) -> list[dict]:
    """The one-colour objects of a uint8 [H, W, 3] picture, largest first (ties in scan
    order, as Rust's stable sort)."""
    classes = palette_classes(img)
    h, w = classes.shape
    flat = classes.reshape(-1)
    min_area = math.ceil(w * h / 200.0)
    seen = np.zeros(w * h, dtype=bool)
    objects = []
    for start in np.flatnonzero((flat >= 1) & (flat <= 6)):
        if seen[start]:
            continue
        region = _flood(classes, seen, int(start))
        if len(region) >= min_area:
            objects.append({"colour": PALETTE_NAMES[flat[start]], **_describe(region, w)})
    objects.sort(key=lambda o: -o["area"])
    return objects


def check(img: np.ndarray, shape: str, colour: str) -> dict:
    objects = read(img)
    main = objects[0] if objects else None
    colour_ok = main is not None and main["colour"] == colour
    shape_ok = main is not None and main["shape"] == shape
    return {"colour": colour_ok, "shape": shape_ok, "class": colour_ok and shape_ok,
            "count": len(objects) == 1}
