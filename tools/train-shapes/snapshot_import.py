"""`import`: a run folder rebuilt from the shipped snapshots, so a later stage can warm-restart
from the bundled models when the run folder that made them is gone: the encoders and
tokenizers, the VAE with its measured shift and scale, and each I1 transformer dequantised
from its Q8_0 GGUF to f32 (`<stage>/model`, the layout `load_transformer` reads)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import numpy as np
import torch
from runtime import log
from snapshot_export import ENCODER_FOLDERS


def import_snapshots(run: Path, assets: Path, stages: list[str]) -> None:
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import save_file

    first = assets / f"shapes-i1-{stages[0]}"
    enc = run / "encoders"
    for name in ENCODER_FOLDERS:
        shutil.copytree(first / name, enc / name, dirs_exist_ok=True)
    shutil.copytree(assets / "shapes-llama", enc / "llama", dirs_exist_ok=True)
    (enc / "done").write_text("ok\n")
    shutil.copytree(first / "vae", run / "vae" / "model", dirs_exist_ok=True)
    manifest = json.loads((first / "studio.json").read_text())
    (run / "vae" / "eval.json").write_text(json.dumps(manifest["training"]["vae"]) + "\n")
    for stage in stages:
        src = assets / f"shapes-i1-{stage}" / "transformer"
        ggufs = sorted(src.glob("*.gguf"))
        if len(ggufs) != 1:
            raise SystemExit(f"{src}: expected one .gguf transformer, found {len(ggufs)}")
        out = run / stage / "model"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "config.json", out / "config.json")
        tensors = {}
        for t in GGUFReader(ggufs[0]).tensors:
            # GGUF lists dimensions innermost first.
            shape = [int(d) for d in reversed(t.shape.tolist())]
            values = np.array(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
            tensors[t.name] = torch.from_numpy(values)
        save_file(tensors, out / "diffusion_pytorch_model.safetensors")
        log("import", f"{ggufs[0]} -> {out} ({len(tensors)} tensors, f32)")
