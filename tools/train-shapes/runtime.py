"""How this process trains: the environment set before torch is imported, the import paths
(this folder and tools/fixtures), the device, the batch-making processes, the stop step, and
the log line. Every module here imports it first; `train.py` sets its values from the
command line, and the others read them as `runtime.DEV` etc. when they run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "fixtures"))

# Where the models train (`--device`); batches are always made on the CPU, by `WORKERS`
# processes when that is more than zero (a GPU outruns one process rendering scenes).
DEV = torch.device("cpu")
WORKERS = 0
# On a GPU each batch's captions are encoded together, without a cache (one caption at a time
# is too slow to feed it). Still a pure function of the step; an embedding then differs from
# the one-caption encoding in the last bits (measured <= 7e-7).
BATCHED_TEXT = False
# A run stops here (checkpoint written), as an interruption would, to be resumed afterwards:
# the selfcheck's test of resuming, and `--stop-after`.
STOP_AFTER: int | None = None


def log(stage: str, msg: str) -> None:
    print(f"[{stage}] {msg}", flush=True)
