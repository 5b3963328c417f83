#!/usr/bin/env python3
"""Writes heldout.jsonl: requests in the held-out phrasing (phrasing.HELDOUT: its own sentence
frames and filler words, none shared with training), each with the pictures made before it,
an optional attached picture and the expected first action.

An attached picture is named after the earlier ones: with one earlier picture, an attachment
is `#2`, and a request about "it" then means the attachment (h021 is such a line).

Usage: python tools/train-agent/heldout.py [--n 160] [--seed 2020]
           [--phrasing first|fresh|third|fourth]
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
from pathlib import Path

import conversations as C
import phrasing as P

HERE = Path(__file__).resolve().parent

# Each held-out phrasing: its module, its Frames and the id prefix of its requests (the sets
# are heldout.jsonl, heldout-fresh.jsonl, heldout-third.jsonl and heldout-fourth.jsonl).
PHRASINGS = {
    "first": ("phrasing", "HELDOUT", "h"),
    "fresh": ("phrasing_fresh", "FRESH", "f"),
    "third": ("phrasing_third", "THIRD", "t"),
    "fourth": ("phrasing_fourth", "FOURTH", "q"),
}


def request(rng: random.Random, kind: str, i: int, frames: P.Frames = P.HELDOUT,
            prefix: str = "h") -> dict:
    conv = C.Conversation(rng, frames)
    images = [C.random_spec(rng) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    if kind in ("edit", "describe") and not images and rng.random() < 0.6:
        images = [C.random_spec(rng)]
    conv.images = [(f"#{k + 1}", s) for k, s in enumerate(images)]
    attached = None
    asked = 1  # pictures the request asks for
    if kind == "generate":
        if rng.random() < 0.15:
            asked = 2
            text, jobs = conv.generate_request()
            g, (job,) = text, jobs
            if rng.random() < 0.5:
                e, _, _ = conv.edit_phrase(job[1])
                text = rng.choice(frames.plan).format(g=g, e=e)
            else:
                h, _ = conv.generate_request()
                text = rng.choice(frames.plan_two).format(g=g, h=h)
        else:
            text, jobs = conv.generate_request()
        expect = {"action": "generate", "prompt": jobs[0][1].caption(), "jobs": asked}
    elif kind == "edit":
        if not conv.images or rng.random() < 0.25:
            spec = C.random_spec(rng)
            name = conv.next_name()
            attached = spec.caption()
            text, jobs = conv.edit_request(name, spec, explicit=rng.random() < 0.2)
        elif rng.random() < 0.3:
            name, spec = rng.choice(conv.images)
            text, jobs = conv.edit_request(name, spec, explicit=True)
        else:
            name, spec = conv.images[-1]
            text, jobs = conv.edit_request(name, spec, explicit=False)
        _, image, instruction, _ = jobs[0]
        expect = {"action": "edit", "image": image, "instruction": instruction, "jobs": asked}
    else:
        if not conv.images and rng.random() < 0.3:  # an edit with no picture anywhere
            text, _, _ = conv.edit_phrase(C.random_spec(rng))
        else:
            text, _ = conv.chat_request()
        expect = {"action": "chat"}
    text = conv.noise(text)
    line = {"id": f"{prefix}{i:03d}", "images": [{"name": n, "prompt": s.caption()} for n, s in conv.images],
            "message": text, "expect": expect}
    if attached is not None:
        line["attached"] = attached
    return line


def user_message(line: dict) -> str:
    """The request as the user message: with the attachment line when a picture is attached."""
    if "attached" in line:
        name = f"#{len(line['images']) + 1}"
        return f"[image {name} attached: {line['attached']}]\n{line['message']}"
    return line["message"]


def messages(line: dict) -> list[dict]:
    """The conversation the model answers: system, the pictures so far, the request."""
    return C.with_system(C.history_messages(line["images"]) +
                         [{"role": "user", "content": user_message(line)}])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--out", type=Path, default=HERE / "heldout.jsonl")
    ap.add_argument("--phrasing", choices=tuple(PHRASINGS), default="first",
                    help=", ".join(f"{key}: {module}.{frames}"
                                   for key, (module, frames, _) in PHRASINGS.items()))
    args = ap.parse_args()
    module, name, prefix = PHRASINGS[args.phrasing]
    frames = getattr(importlib.import_module(module), name)
    rng = random.Random(args.seed)
    n_gen, n_edit = round(0.45 * args.n), round(0.40 * args.n)
    kinds = ["generate"] * n_gen + ["edit"] * n_edit + ["chat"] * (args.n - n_gen - n_edit)
    rng.shuffle(kinds)
    lines, seen = [], set()
    for kind in kinds:
        while True:  # no message twice
            line = request(rng, kind, len(lines), frames, prefix)
            if line["message"] not in seen:
                break
        seen.add(line["message"])
        lines.append(line)
    with args.out.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    counts = {k: sum(1 for x in lines if x["expect"]["action"] == k) for k in ("generate", "edit", "chat")}
    print(f"{len(lines)} held-out requests: {counts}")


if __name__ == "__main__":
    main()
