#!/usr/bin/env python3
"""Trains the bundled "Shapes" models: HiDream-I1/E1 architectures at toy scale on the Shapes
world (`shapes_world.py`), saved in the exact on-disk layout of the real snapshots.

Stages (each resumable: it continues from `<run>/<stage>/checkpoint.pt` when one is there):

    python tools/train-shapes/train.py encoders --run runs/shapes
    python tools/train-shapes/train.py vae      --run runs/shapes --steps 1500
    python tools/train-shapes/train.py full     --run runs/shapes --steps 1600
    python tools/train-shapes/train.py dev      --run runs/shapes --steps 400
    python tools/train-shapes/train.py export   --run runs/shapes --out assets/models
    python tools/train-shapes/train.py import   --run runs/again --stages full,dev   # from the bundle
    python tools/train-shapes/train.py selfcheck

Every batch is a pure function of (seed, stage, step), so a run resumed from a checkpoint is
bit-identical to one that never stopped (`selfcheck` proves it, and that the loss falls).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch, and the import paths)
import torch
import shapes_world as world
from dev_stage import stage_dev
from editor_stage import stage_editor
from fast_stage import stage_fast
from full_stage import stage_full
from selfcheck import selfcheck
from snapshot_export import export
from snapshot_import import import_snapshots
from text_encoders import stage_encoders
from transformer_training import finish_transformer
from vae_stage import stage_vae


def parse_kinds(text: str) -> list[float]:
    """`recolour=4,remove=3` -> weights in world.EDIT_KINDS' order (unnamed kinds weigh 1)."""
    weights = dict.fromkeys(world.EDIT_KINDS, 1.0)
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in weights:
            raise argparse.ArgumentTypeError(
                f"unknown edit kind {name.strip()!r}; the kinds are {', '.join(world.EDIT_KINDS)}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: the weight must be a number") from None
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise argparse.ArgumentTypeError("kind weights must be >= 0 and not all 0")
    return [weights[k] for k in world.EDIT_KINDS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["encoders", "vae", "full", "dev", "fast", "editor", "export",
                                          "import", "selfcheck"])
    parser.add_argument("--run", type=Path, default=Path("runs/shapes"))
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("assets/models"))
    parser.add_argument("--stages", default="full,dev,fast",
                        help="export, import: which transformers")
    parser.add_argument("--assets", type=Path, default=Path("assets/models"),
                        help="import: the folder of shipped snapshots to rebuild the run folder from")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes making batches ahead (0: the training process itself)")
    parser.add_argument("--batch", type=int, default=0, help="batch size (0: the stage's default)")
    parser.add_argument("--scores", type=Path, help="export: a folder of ShapesEval JSON lines")
    parser.add_argument("--init", type=Path,
                        help="editor, dev: start from these weights (a model folder), not Full's")
    parser.add_argument("--dev-target", choices=["teacher", "data", "guided-data"], default="teacher",
                        help="dev: learn Full's guided prediction (teacher), the scenes' flow (data), "
                             "or the scenes' flow plus Full's guidance direction (guided-data)")
    parser.add_argument("--batched-text", action="store_true",
                        help="encode each batch's captions together, as on a GPU (40x faster on the "
                             "CPU; embeddings differ from one-at-a-time encoding in the last bits)")
    parser.add_argument("--shift", type=float, default=6.0,
                        help="dev: the flow shift of the training noise levels")
    parser.add_argument("--lr", type=float, default=2e-4, help="dev: peak learning rate")
    parser.add_argument("--plain-every", type=int, default=4,
                        help="editor: every Nth batch is plain text-to-image")
    parser.add_argument("--stop-after", type=int,
                        help="stop at the first checkpoint (every 100 steps) at or after this step, to "
                             "resume later with other flags")
    parser.add_argument("--object-weight", type=float, default=0.0,
                        help="editor, dev: extra loss weight on object pixels (the editor's: of source or "
                             "target)")
    parser.add_argument("--kinds", type=parse_kinds,
                        help="editor: relative weights of the edit kinds, e.g. recolour=4,remove=3 "
                             "(unnamed kinds weigh 1; default: all equal)")
    args = parser.parse_args()
    runtime.DEV, runtime.WORKERS = torch.device(args.device), args.workers
    runtime.STOP_AFTER = args.stop_after
    runtime.BATCHED_TEXT = runtime.DEV.type == "cuda" or args.batched_text
    torch.set_num_threads(args.threads)
    if runtime.DEV.type == "cuda":
        # Deterministic where CUDA has deterministic kernels; a run on one GPU model with one
        # PyTorch repeats itself, but not the CPU's numbers.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(True)
    batch = {"batch": args.batch} if args.batch else {}
    if args.stage == "encoders":
        stage_encoders(args.run)
    elif args.stage == "vae":
        stage_vae(args.run, args.steps or 1500, args.seed, **batch)
    elif args.stage == "full":
        stage_full(args.run, args.steps or 1600, args.seed, **batch)
        finish_transformer(args.run, "full")
    elif args.stage == "dev":
        stage_dev(args.run, args.steps or 400, args.seed, init=args.init, target=args.dev_target,
                  object_weight=args.object_weight, shift=args.shift, lr=args.lr, **batch)
        finish_transformer(args.run, "dev")
    elif args.stage == "fast":
        stage_fast(args.run, args.steps or 150, args.seed, **batch)
        finish_transformer(args.run, "fast")
    elif args.stage == "editor":
        stage_editor(args.run, args.steps or 800, args.seed, init=args.init,
                     plain_every=args.plain_every, kind_weights=args.kinds,
                     object_weight=args.object_weight, **batch)
        finish_transformer(args.run, "editor")
    elif args.stage == "export":
        export(args.run, args.out, args.stages.split(","), args.scores)
    elif args.stage == "import":
        import_snapshots(args.run, args.assets, args.stages.split(","))
    else:
        selfcheck()


if __name__ == "__main__":
    main()
