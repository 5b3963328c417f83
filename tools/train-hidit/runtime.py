"""How every process here runs: one thread and deterministic kernels (set before torch is
imported), the import path of `shapes_world.py`, the REPA-E sources whose classes are used
as they are, per-step random generators, and the log line. Every module imports it first."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
torch.use_deterministic_algorithms(True)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# For shapes_world (the Rust world's twin) alone; after ours, as both folders have a runtime.py.
sys.path.append(str(HERE.parent / "train-shapes"))

# End2End-Diffusion/REPA-E at commit 3ad80468e78ec4fc93e6e70aa08e7b3b8303a171: the files we
# import, by their git blob ids, so a different version is refused rather than trained with.
REPAE_COMMIT = "3ad80468e78ec4fc93e6e70aa08e7b3b8303a171"
REPAE_BLOBS = {
    "models/sit.py": "50a4ae2db6a5b8e746b8b19088679a3c21190755",
    "models/autoencoder.py": "2ceb100842e4310aaac44ad3070ae53233b7d311",
    "samplers.py": "348ec7fca788caa7063c0803188c8fc353cac1a9",
}
REPAE_DIR = Path(os.environ.get("HIDIT_REPAE", "/tmp/REPA-E"))

# A run stops after this step (checkpoint written), as an interruption would: `--stop-after`.
STOP_AFTER: int | None = None


def log(stage: str, msg: str) -> None:
    print(f"[{stage}] {msg}", flush=True)


def _git_blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


_LOADED: dict[str, object] = {}


def repae(module: str):
    """REPA-E's `models/sit.py` ("models/sit"), `models/autoencoder.py` or `samplers.py`,
    imported from HIDIT_REPAE after checking it is the pinned version."""
    if module in _LOADED:
        return _LOADED[module]
    rel = module + ".py"
    path = REPAE_DIR / rel
    if not path.exists():
        sys.exit(f"REPA-E source {path} is missing: extract End2End-Diffusion/REPA-E at "
                 f"{REPAE_COMMIT[:7]} there (README, 'Setup') or point HIDIT_REPAE at a copy")
    if _git_blob(path) != REPAE_BLOBS[rel]:
        sys.exit(f"{path} is not the file of REPA-E {REPAE_COMMIT[:7]} (git blob "
                 f"{REPAE_BLOBS[rel]}): extract that commit, the classes are used as they are")
    spec = importlib.util.spec_from_file_location("repae_" + module.replace("/", "_"), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _LOADED[module] = mod
    return mod


def step_rng(seed: int, stage: str, step: int) -> np.random.Generator:
    """The numpy generator of one step of one stage: batches are a pure function of these."""
    return np.random.default_rng([seed, sum(map(ord, stage)) * 7919 + len(stage), step])


def seed_torch(seed: int, stage: str, step: int) -> torch.Generator:
    """Seeds torch's global generator for one step (REPA-E's forward draws its times, noises
    and label drops from it) and returns a generator of its own from the same seed."""
    s = int(step_rng(seed, stage + "/torch", step).integers(2**62))
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s + 1)
