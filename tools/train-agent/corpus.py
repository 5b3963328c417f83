"""The training corpus: seeded conversations in the training phrasing, rendered with Llama-3.1's
chat template (the protocol's system text and tools, a random date), and their token ids with a
mask that keeps the loss on the assistant's tokens only."""

from __future__ import annotations

import datetime
import json
import random
import re
from pathlib import Path

import conversations as C
import phrasing as P

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Llama-3.1-8B-Instruct's chat template, as the chat fixtures hold it (tools/fixtures/make_chat_fixtures.py).
TEMPLATE_CONFIG = ROOT / "tests/fixtures/chat/model/tokenizer_config.json"
ASSISTANT = re.compile(r"<\|start_header_id\|>assistant<\|end_header_id\|>\n\n(.*?<\|eot_id\|>)", re.S)


def chat_template() -> str:
    return json.loads(TEMPLATE_CONFIG.read_text())["chat_template"]


HELDOUT_FILES = ("heldout.jsonl", "heldout-fresh.jsonl", "heldout-third.jsonl",
                 "heldout-fourth.jsonl")


def heldout_messages() -> set[str]:
    """The messages of the held-out sets (the later ones were made after some runs: their
    corpora are checked against them by test_phrasing.py)."""
    out: set[str] = set()
    for name in HELDOUT_FILES:
        path = HERE / name
        if path.is_file():
            out |= {json.loads(line)["message"] for line in path.read_text().splitlines()
                    if line.strip()}
    return out


def random_date(rng: random.Random) -> str:
    day = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(7 * 365))
    return day.strftime("%d %b %Y")


def conversation(rng: random.Random, banned: set[str], said: list[str],
                 augment: float = 0.0, pseudo_share: float = P.PSEUDO_SHARE,
                 edit_share: float = 0.0) -> list[dict] | None:
    """One to four exchanges; None when a user message is a held-out one (never trained on).
    The user's requests are appended to `said`; `augment` is the share phrased with
    phrasing.AUGMENT, `pseudo_share` the share of those with made-up words, `edit_share` the
    share of requests made edits once there is a picture."""
    conv = C.Conversation(rng, P.TRAIN, augment=augment, pseudo_share=pseudo_share,
                          edit_share=edit_share)
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        text, _ = conv.turn()
        if text in banned:
            return None
        said.append(text)
    return conv.messages


def render(tok, messages: list[dict], date: str, add_generation_prompt: bool = False) -> str:
    return tok.apply_chat_template(C.with_system(messages), tools=C.PROTOCOL["tools"], tokenize=False,
                                   add_generation_prompt=add_generation_prompt, date_string=date)


def rendered_corpus(tok, n: int, seed: int, n_dates: int, said: list[str] | None = None,
                    augment: float = 0.0, pseudo_share: float = P.PSEUDO_SHARE,
                    edit_share: float = 0.0) -> tuple[list[tuple[str, str]], int]:
    """n (date, rendered conversation) pairs, the dates drawn from a pool of n_dates, and how
    many sampled conversations were dropped as held-out. With tok None nothing is rendered
    (the requests alone, collected in `said`, for checks)."""
    rng = random.Random(seed)
    dates = sorted({random_date(rng) for _ in range(n_dates)})
    banned = heldout_messages()
    said = [] if said is None else said
    texts, dropped = [], 0
    while len(texts) < n:
        messages = conversation(rng, banned, said, augment, pseudo_share, edit_share)
        if messages is None:
            dropped += 1
            continue
        date = rng.choice(dates)
        texts.append((date, render(tok, messages, date) if tok is not None else ""))
    return texts, dropped


def shared_prefix(tok, date: str) -> str:
    """What every conversation of `date` starts with: the system turn and the tools block that
    opens the first user message (the template puts them there), up to the user's words."""
    probe = "\u2603"
    text = render(tok, [{"role": "user", "content": probe}], date)
    return text[:text.index(probe)]


def encode_with_mask(tok, text: str) -> tuple[list[int], list[int]]:
    """Token ids and 1 where a token is the assistant's (its reply and the closing <|eot_id|>)."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = [m.span(1) for m in ASSISTANT.finditer(text)]
    mask = []
    for start, end in enc["offset_mapping"]:
        mask.append(int(any(a <= start < b for a, b in spans)))
    return enc["input_ids"], mask
