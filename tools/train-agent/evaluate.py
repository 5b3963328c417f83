#!/usr/bin/env python3
"""Greedy decoding of the agent on the held-out requests (and on a fresh sample of the training
distribution): the first assistant turn read as a tool call or chat, scored for the action
(generate / edit / chat) and for the exact prompt or instruction (and picture) it writes.

With --fixtures it also writes tests/fixtures/agent/cases.json: three held-out requests with
their messages, the rendered text, its token ids and the greedy reply's ids, for the Rust test
(tests/integration/shapes_agent.rs).

Usage (from the repository root):
    nice /tmp/fixtures-venv/bin/python tools/train-agent/evaluate.py --model assets/models/shapes-agent \
        [--report /work/agent-runs/run1/eval.json] [--fixtures tests/fixtures/agent]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "fixtures"))
import determinism  # noqa: E402,F401
import torch  # noqa: E402

import conversations as C  # noqa: E402
import heldout as H  # noqa: E402
import phrasing as P  # noqa: E402

DATE = "05 Dec 2026"  # not one of training's dates on purpose: any date must do
MAX_NEW_TOKENS = 80


def read_reply(text: str) -> dict:
    """The action a reply takes, as the Rust parser reads it: a JSON call or chat."""
    body = text.replace("<|eot_id|>", "").replace("<|eom_id|>", "").replace("<|python_tag|>", "").strip()
    try:
        call = json.loads(body)
    except json.JSONDecodeError:
        return {"action": "chat", "text": body}
    if not isinstance(call, dict) or "name" not in call:
        return {"action": "chat", "text": body}
    args = call.get("parameters", call.get("arguments", {}))
    if call["name"] == "generate_image":
        return {"action": "generate", "prompt": args.get("prompt")}
    if call["name"] == "edit_image":
        return {"action": "edit", "image": args.get("image"), "instruction": args.get("instruction")}
    return {"action": "chat", "text": body}


def exact(expect: dict, got: dict) -> bool:
    if expect["action"] != got["action"]:
        return False
    if expect["action"] == "generate":
        return got["prompt"] == expect["prompt"]
    if expect["action"] == "edit":
        return got["image"] == expect["image"] and got["instruction"] == expect["instruction"]
    return True


class Agent:
    def __init__(self, folder: Path):
        from transformers import AutoTokenizer, LlamaForCausalLM

        self.tok = AutoTokenizer.from_pretrained(folder)
        ggufs = sorted(folder.glob("*.gguf"))
        if (folder / "model.safetensors").is_file() or not ggufs:
            self.model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        else:
            # the bundle's Q8_0 file, dequantised as ComfyUI-GGUF reads it, under config.json
            # (whose llama3 RoPE scaling transformers' own GGUF loader would drop)
            from llama_gguf import read_llama_gguf
            from transformers import LlamaConfig

            config = LlamaConfig.from_pretrained(folder)
            self.model = LlamaForCausalLM(config).float().eval()
            state = read_llama_gguf(ggufs[0], config.to_dict())
            if config.tie_word_embeddings:
                state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
            self.model.load_state_dict(state, strict=True)
        self.eos = [self.tok.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|eom_id|>")]

    def render(self, messages: list[dict]) -> str:
        return self.tok.apply_chat_template(messages, tools=C.PROTOCOL["tools"], tokenize=False,
                                            add_generation_prompt=True, date_string=DATE)

    def reply(self, messages: list[dict]) -> tuple[str, list[int], list[int], float]:
        """The rendered prompt, its ids, the greedy reply's ids and the smallest gap between
        the top two logits met on the way."""
        text = self.render(messages)
        ids = self.tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=MAX_NEW_TOKENS, eos_token_id=self.eos,
                                      pad_token_id=self.eos[0], temperature=None, top_p=None,
                                      top_k=None, output_logits=True, return_dict_in_generate=True)
        new = out.sequences[0, ids.shape[1]:].tolist()
        gap = min(float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.logits)
        return text, ids[0].tolist(), new, gap


def score(agent: Agent, cases: list[tuple[str, list[dict], dict]]) -> tuple[dict, list[dict]]:
    rows = []
    for case_id, messages, expect in cases:
        _, _, new, _ = agent.reply(messages)
        got = read_reply(agent.tok.decode(new, skip_special_tokens=False))
        rows.append({"id": case_id, "expect": expect, "got": got,
                     "action_ok": got["action"] == expect["action"], "exact": exact(expect, got)})
    summary = {"n": len(rows), "action_accuracy": round(sum(r["action_ok"] for r in rows) / len(rows), 4),
               "exact_match": round(sum(r["exact"] for r in rows) / len(rows), 4)}
    for kind in ("generate", "edit", "chat"):
        sub = [r for r in rows if r["expect"]["action"] == kind]
        if sub:
            summary[kind] = {"n": len(sub),
                             "action_accuracy": round(sum(r["action_ok"] for r in sub) / len(sub), 4),
                             "exact_match": round(sum(r["exact"] for r in sub) / len(sub), 4)}
    return summary, rows


def training_sample(n: int, seed: int) -> list[tuple[str, list[dict], dict]]:
    """Requests drawn fresh from the training distribution (another seed), after 0-3 earlier
    exchanges: the conversation up to the request and its expected first action."""
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        conv = C.Conversation(rng, P.TRAIN)
        for _ in range(rng.randrange(4)):
            conv.turn()
        before = len(conv.messages)
        _, expect = conv.turn()
        cases.append((f"t{len(cases):03d}", C.with_system(conv.messages[:before + 1]), expect))
    return cases


def fixture_lines(agent: Agent, lines: list[dict], rows: list[dict]) -> list[dict]:
    """Three requests the model answers exactly: a generate in a fresh chat, an edit of an
    earlier picture (a history with a call and a tool message) and an edit of an attachment;
    of the first few candidates, the one whose greedy choices are clearest (the largest
    smallest top-2 logit gap), so float noise cannot flip a token on the Rust side."""
    ok = {r["id"] for r in rows if r["exact"]}
    wanted = [lambda x: x["expect"]["action"] == "generate" and not x["images"],
              lambda x: x["expect"]["action"] == "edit" and x["images"] and "attached" not in x,
              lambda x: x["expect"]["action"] == "edit" and "attached" in x]
    picked = []
    for want in wanted:
        candidates = [x for x in lines if x["id"] in ok and want(x)][:6]
        picked.append(max(candidates, key=lambda x: agent.reply(H.messages(x))[3]))
    return picked


def write_fixtures(agent: Agent, lines: list[dict], out: Path) -> None:
    cases = []
    for line in lines:
        messages = H.messages(line)
        text, ids, new, gap = agent.reply(messages)
        cases.append({"id": line["id"], "date_string": DATE, "messages": messages,
                      "rendered": text, "prompt_ids": ids, "max_new_tokens": MAX_NEW_TOKENS,
                      "new_ids": new, "min_top2_gap": gap,
                      "new_text": agent.tok.decode(new, skip_special_tokens=False),
                      "expect": line["expect"]})
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases.json").write_text(json.dumps({
        "about": "tools/train-agent/evaluate.py --fixtures: held-out requests rendered with the "
                 "bundled agent's chat template (protocol system text and tools), their token ids "
                 "and transformers' greedy reply (float32).",
        "max_new_tokens": MAX_NEW_TOKENS, "cases": cases}, ensure_ascii=False, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--report", type=Path)
    ap.add_argument("--heldout", type=Path, default=HERE / "heldout.jsonl",
                    help="the held-out requests (heldout.py's output)")
    ap.add_argument("--fixtures", type=Path)
    ap.add_argument("--train-sample", type=int, default=150)
    ap.add_argument("--limit", type=int, default=0, help="only the first N held-out lines (a dry run)")
    args = ap.parse_args()
    agent = Agent(args.model)
    lines = [json.loads(x) for x in args.heldout.read_text().splitlines() if x.strip()]
    lines = lines[:args.limit or len(lines)]
    held, held_rows = score(agent, [(x["id"], H.messages(x), x["expect"]) for x in lines])
    print("held-out:", json.dumps(held), flush=True)
    train, train_rows = score(agent, training_sample(args.train_sample, seed=777))
    print("training distribution:", json.dumps(train), flush=True)
    for r in held_rows:
        if not r["exact"]:
            print("  miss", r["id"], json.dumps(r["expect"]), "->", json.dumps(r["got"]))
    if args.report:
        args.report.write_text(json.dumps({"heldout": held, "training_sample": train,
                                           "heldout_rows": held_rows}, indent=1) + "\n")
    if args.fixtures:
        write_fixtures(agent, fixture_lines(agent, lines, held_rows), args.fixtures)


if __name__ == "__main__":
    main()
