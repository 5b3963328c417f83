#!/usr/bin/env python3
"""Copies a training run (train.py --out) into the bundle folder assets/models/shapes-agent:
config.json, the weights as one llama.cpp GGUF (shapes-agent-Q8_0.gguf: Q8_0 as
convert_hf_to_gguf.py --outtype q8_0 writes it, with the tokenizer and chat template in its
metadata, so llama.cpp runs the file as it is; tools/fixtures/llama_gguf.py), tokenizer.json,
tokenizer_config.json with Llama-3.1's chat template, generation_config.json (greedy; stops at
<|eot_id|> and <|eom_id|>) and studio.json with the training record and the evaluation's
numbers. Q8_0 takes 1.06 bytes a weight against float16's 2, which the tracked-size budget
needs; evaluate the exported folder (evaluate.py reads the GGUF back) before quoting numbers.

Usage: python tools/train-agent/export.py --run /work/agent-runs/run1 \
           [--eval /work/agent-runs/run1/eval.json] [--out assets/models/shapes-agent]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WEIGHTS = "shapes-agent-Q8_0.gguf"


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def training_record(run: Path) -> dict:
    """The run's training.json; a run continued from another (--init) lists both as parts. A
    run continued from a bundle (--init assets/models/shapes-agent) takes the parts its
    studio.json records (read before this export replaces it)."""
    parts = []
    while run is not None:
        if not (run / "training.json").is_file() and (run / "studio.json").is_file():
            earlier = json.loads((run / "studio.json").read_text())["training"]
            parts[:0] = earlier.get("parts", [earlier])
            break
        part = json.loads((run / "training.json").read_text())
        threads = part.get("threads", 1)
        part["ran_on"] = f"2-core shared CPU, {threads} thread{'s' if threads > 1 else ''}, nice"
        parts.insert(0, part)
        run = Path(part["init"]) if part.get("init") else None
    if len(parts) == 1:
        return parts[0]
    return {"steps": sum(p["steps"] for p in parts), "seconds": sum(p["seconds"] for p in parts),
            "final_loss": parts[-1]["final_loss"], "parts": parts}


def main() -> None:
    import corpus
    sys.path.insert(0, str(ROOT / "tools/fixtures"))
    from llama_gguf import write_llama_gguf

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--eval", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "assets/models/shapes-agent")
    args = ap.parse_args()
    out = args.out
    if out.resolve() == args.run.resolve():
        # the export replaces the folder's weights before it has read the run's
        ap.error(f"--run and --out are the same folder ({out}): export from a copy of it")
    out.mkdir(parents=True, exist_ok=True)
    training = training_record(args.run)  # before the bundle's studio.json is replaced
    for old in ("model.safetensors", WEIGHTS):
        (out / old).unlink(missing_ok=True)
    shutil.copyfile(args.run / "tokenizer.json", out / "tokenizer.json")
    config = json.loads((args.run / "config.json").read_text())
    assert config["dtype"] == "float16", config["dtype"]
    write_json(out / "config.json", config)
    vocab = json.loads((args.run / "tokenizer.json").read_text())["added_tokens"]
    ids = {t["content"]: t["id"] for t in vocab}
    write_json(out / "tokenizer_config.json", {
        "backend": "tokenizers", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": True, "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": corpus.chat_template()})
    # the GGUF's tokenizer metadata comes from the folder's tokenizer files, written above
    write_llama_gguf(out, out / WEIGHTS, "shapes-agent", weights=args.run / "model.safetensors")
    write_json(out / "generation_config.json", {
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": [ids["<|eot_id|>"], ids["<|eom_id|>"]],
        "do_sample": False, "max_new_tokens": 96})
    studio = {"name": "Shapes Agent",
              "about": "A tiny Llama-3.1-shaped chat model trained from scratch on synthetic "
                       "Shapes-world conversations in the protocol of src/agent/protocol.json "
                       "(tools/train-agent). Trained in float32, shipped as Q8_0 (GGUF).",
              "examples": ["draw a red circle on the left", "now make it blue",
                           "a blue star above an orange ring, on black", "what can you draw?"],
              "training": training}
    if args.eval:
        report = json.loads(args.eval.read_text())
        studio["scores"] = {"heldout": report["heldout"], "training_sample": report["training_sample"]}
    write_json(out / "studio.json", studio)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"{out}: {size} bytes")


if __name__ == "__main__":
    main()
