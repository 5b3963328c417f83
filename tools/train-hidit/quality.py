"""Picture quality beyond class accuracy, for the stage-1 vs stage-2 comparison: how close the
fine detail is to real renders (a high-frequency spectrum distance) and how close the whole set
is (a Frechet distance on fixed features). Both compare a sample set with renders of the same
classes, `REFERENCE_MULTIPLE` times as many per class as the set has, from a fixed seed (the
larger reference halves the distance's floor from the finite sample: renders scored against
renders from another seed, `baselines.py`).

Fine detail: the radially averaged power spectrum of the grey images (mean over the set), and
the mean absolute difference of its log (in dB) from the renders' over the upper half of the
frequencies (radius N/4 to N/2 cycles per image, up to Nyquist), and the mean signed
difference (the excess). Blur lowers that band (negative excess), grain and speckle raise it
(positive): 0 dB means the same amount of fine detail as the renders.

Frechet distance: as FID's formula (means and covariances of features, ||m1 - m2||^2 +
tr(S1 + S2 - 2 (S1 S2)^1/2)), with features that depend on nothing trained here, so numbers
stay comparable across runs: a convolutional net with weights drawn from torch's generator
seeded 0 (default PyTorch initialisation; four 4 x 4 stride-2 convolutions 3 -> 16 -> 16 ->
16 -> 8 with ReLU, then mean and max over positions: 16 features, scaled by the renders'
mean feature standard deviation). Few features because the distance's bias from a finite
set grows with their number squared over the set's size: with 64 features, 256 renders scored
against other renders came out further than blurred ones. Random-weight networks
are a known stand-in for a trained feature extractor where none is available; the values are
not comparable with Inception FIDs, only between sample sets scored with this very net.
"""

from __future__ import annotations

import runtime  # noqa: I001
import class_world as cw
import numpy as np
import torch
import torch.nn as nn
from runtime import step_rng

FEATURE_SEED = 0
REFERENCE_MULTIPLE = 8


def real_renders(per_class: int, seed: int) -> np.ndarray:
    """uint8 [16 * per_class, H, W, 3], class-major (the order `evaluate` samples in)."""
    rng = step_rng(seed + 7, "quality-renders", 0)
    scenes = [cw.sample_scene(rng, k) for k in range(cw.NUM_CLASSES) for _ in range(per_class)]
    return np.stack([cw.world.render(s, cw.SIZE) for s in scenes])


def radial_power_db(images: np.ndarray) -> np.ndarray:
    """Mean radially averaged power spectrum of the grey images, in dB, one value per integer
    radius 0 .. N/2."""
    grey = images.astype(np.float64).mean(-1) / 255.0
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(grey)) ** 2).mean(0)
    n = grey.shape[-1]
    f = np.fft.fftfreq(n) * n
    radius = np.rint(np.hypot(f[:, None], f[None, :])).astype(int)
    bins = np.bincount(radius.ravel(), weights=power.ravel())[: n // 2 + 1]
    counts = np.bincount(radius.ravel())[: n // 2 + 1]
    return 10 * np.log10(bins / counts + 1e-12)


def high_frequency_difference_db(images: np.ndarray, renders: np.ndarray) -> np.ndarray:
    """The set's log power minus the renders' (dB), per radius over the upper half of the
    frequencies: negative where detail is missing (blur), positive where there is too much
    (grain, speckle)."""
    n = images.shape[1]
    band = slice(n // 4, n // 2 + 1)
    return radial_power_db(images)[band] - radial_power_db(renders)[band]


def feature_net() -> nn.Module:
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(FEATURE_SEED)
    layers, channels = [], [3, 16, 16, 16, 8]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
    net = nn.Sequential(*layers).eval().requires_grad_(False)
    torch.random.set_rng_state(gen_state)
    return net


@torch.no_grad()
def features(images: np.ndarray) -> np.ndarray:
    maps = feature_net()(cw.to_tensor(images)).flatten(2)
    return torch.cat([maps.mean(-1), maps.amax(-1)], dim=1).double().numpy()


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(images: np.ndarray, renders: np.ndarray) -> float:
    a, b = features(images), features(renders)
    # In units of the renders' mean feature variance, so the scale means something. (Per
    # feature would divide by almost nothing where a feature barely varies on renders.)
    spread = np.sqrt(b.var(0).mean())
    a, b = a / spread, b / spread
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = _sqrt_psd(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def quality(images: np.ndarray, per_class: int, seed: int) -> dict:
    renders = real_renders(per_class * REFERENCE_MULTIPLE, seed)
    difference = high_frequency_difference_db(images, renders)
    return {"hf_spectrum_distance_db": float(np.abs(difference).mean()),
            "hf_spectrum_excess_db": float(difference.mean()),
            "frechet_random_features": frechet_distance(images, renders)}
