"""Export in the real snapshots' layout: each stage's model with the shared components and its
`studio.json` manifest (defaults, training record, the commands that made it, scores)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import runtime  # noqa: F401,I001  (the environment before numpy and torch)
import torch
from recipe import GUIDANCE, MAX_SEQUENCE_LENGTH, SHIFT, SIZE
from runtime import log
from transformer_training import load_transformer


# The commands that made the shipped models, in order, and where they ran; recorded in each
# manifest. `gpu.sh` chose the GPU step counts from measured speed (README.md).
H100 = "one NVIDIA H100 (lent), PyTorch 2.11.0+cu130, diffusers 0.42.1, transformers 5.23.0"
CPU = "2-core CPU, PyTorch 2.15.0, diffusers 0.42.1, transformers 5.23.0"
COMMON = [("encoders --run RUN", CPU),
          ("vae --run RUN --steps 2500 --device cuda --threads 2 --batch 64 --workers 12", H100)]
# The snapshot folders every I1 model shares, as the run folder's encoders/ holds them.
ENCODER_FOLDERS = ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3")
DEV_RESTART = ("--batch 32 --init SHIPPED/dev/model --dev-target guided-data --object-weight 3 --shift 2 "
               "--batched-text")
SHIPPED_COMMANDS = {
    "full": COMMON + [
        ("full --run RUN --steps 2600 --device cuda --threads 2 --batch 128 --workers 14", H100)],
    "dev": COMMON + [
        ("full --run RUN --steps 2600 --device cuda --threads 2 --batch 128 --workers 14", H100),
        ("dev --run RUN --steps 500 --device cuda --threads 2 --batch 128 --workers 7", H100),
        # A CPU warm restart from the shipped bundle (RUN was not kept): SHIPPED is `import`'s
        # folder, RUN4 links its encoders, vae and full.
        ("import --run SHIPPED --stages full,dev", CPU),
        (f"dev --run RUN4 --steps 5000 {DEV_RESTART} --stop-after 2000", CPU),
        (f"dev --run RUN4 --steps 8500 {DEV_RESTART} --stop-after 7500", CPU)],
    "fast": COMMON + [
        ("full --run RUN --steps 2600 --device cuda --threads 2 --batch 128 --workers 14", H100),
        ("dev --run RUN --steps 500 --device cuda --threads 2 --batch 128 --workers 7", H100),
        ("fast --run RUN --steps 400 --batch 16 --workers 1", CPU)],
    "editor": COMMON + [
        ("full --run RUN --steps 2600 --device cuda --threads 2 --batch 128 --workers 14", H100),
        ("editor --run RUN --steps 3600 --device cuda --threads 2 --batch 64 --workers 7", H100),
        # A warm restart in a second run folder holding RUN's encoders, vae and full.
        ("editor --run RUN2 --steps 4500 --batch 12 --init RUN/editor/model --plain-every 8", CPU),
        # A second warm restart in RUN3 (RUN's encoders, vae and full again), weighted to the
        # kinds still failing, then rebalanced from step 5200 when moves and adds had slipped.
        ("editor --run RUN3 --steps 14000 --batch 12 --init RUN2/editor/model --plain-every 8 "
         "--kinds recolour=5,remove=3,add=1,move=1,background=1 --object-weight 2 --seed 1 "
         "--stop-after 5200", CPU),
        ("editor --run RUN3 --steps 13000 --batch 12 --init RUN2/editor/model --plain-every 8 "
         "--kinds recolour=4,remove=2,add=2,move=2,background=1 --object-weight 2 --seed 1", CPU)],
}


def export(run: Path, out: Path, stages: list[str], scores: Path | None = None) -> None:
    """Writes each stage's model in the snapshot layout with its manifest; `scores` is a folder
    of ShapesEval JSON lines (`hidream-studio eval --preset P`, `eval --edits`) named
    `<stage>.json`, copied into the manifests."""
    from diffusers import FlowMatchLCMScheduler, UniPCMultistepScheduler

    enc = run / "encoders"
    llama_out = out / "shapes-llama"
    shutil.rmtree(llama_out, ignore_errors=True)
    shutil.copytree(enc / "llama", llama_out)
    defaults = {
        "full": dict(steps=50, guidance=GUIDANCE, shift=SHIFT, scheduler="flow_unipc"),
        "dev": dict(steps=28, guidance=0.0, shift=6.0, scheduler="flash"),
        "fast": dict(steps=16, guidance=0.0, shift=3.0, scheduler="flash"),
        # No refine stage: "remove the red circle" is no description to draw from. Guidance
        # 2, not E1.1's 3: chosen on ShapesEval's edits (README, "The bundled Shapes models").
        "editor": dict(steps=28, guidance=2.0, shift=3.0, scheduler="flow_unipc",
                       image_guidance=1.5, refine_strength=0.0),
    }
    for stage in stages:
        dst = out / ("shapes-e1.1" if stage == "editor" else f"shapes-i1-{stage}")
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        d = defaults[stage]
        if d["scheduler"] == "flow_unipc":
            sched = UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction",
                                            flow_shift=d["shift"], solver_order=2)
        else:
            sched = FlowMatchLCMScheduler(shift=d["shift"])
        sched.save_pretrained(dst / "scheduler")
        for name in ENCODER_FOLDERS:
            shutil.copytree(enc / name, dst / name)
        shutil.copytree(run / "vae" / "model", dst / "vae")
        model = load_transformer(run / stage / "model", train=False)
        model.to(torch.bfloat16).save_pretrained(dst / "transformer")
        index = {
            "_class_name": "HiDreamImagePipeline", "_diffusers_version": "0.42.1",
            "scheduler": ["diffusers", type(sched).__name__],
            "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_3": ["transformers", "T5EncoderModel"],
            "text_encoder_4": ["transformers", "LlamaForCausalLM"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "tokenizer_3": ["transformers", "T5Tokenizer"],
            "tokenizer_4": ["transformers", "PreTrainedTokenizerFast"],
            "transformer": ["diffusers", "HiDreamImageTransformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }
        (dst / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        record = json.loads((run / stage / "record.json").read_text())
        manifest = {
            "name": "Shapes E1.1" if stage == "editor" else f"Shapes I1-{stage.capitalize()}",
            "base_resolution": SIZE,
            "max_sequence_length": MAX_SEQUENCE_LENGTH,
            "llama": "../shapes-llama",
            # The transformer ships as a Q8_0 GGUF (README: the quantise step after export).
            "dequantize_at_load": True,
            "defaults": {k: v for k, v in d.items() if k != "scheduler"},
            "training": dict(record, seed=0,
                             commands=[{"command": f"python tools/train-shapes/train.py {c}", "ran_on": where}
                                       for c, where in SHIPPED_COMMANDS.get(stage, [(f"{stage} --run RUN", CPU)])],
                             vae=json.loads((run / "vae" / "eval.json").read_text())),
        }
        if scores is not None and (scores / f"{stage}.json").exists():
            manifest["scores"] = json.loads((scores / f"{stage}.json").read_text())
        (dst / "studio.json").write_text(json.dumps(manifest, indent=2) + "\n")
        log("export", f"wrote {dst}")
