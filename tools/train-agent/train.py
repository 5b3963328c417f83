#!/usr/bin/env python3
"""Trains the bundled Shapes agent: a byte-level BPE tokenizer on the training corpus, then a
tiny Llama-3.1-shaped model (llama3 RoPE, grouped-query attention) with the loss on assistant
tokens only, on CPU with one thread, seeded. Writes a Hugging Face folder to --out.

Usage (from the repository root):
    nice /tmp/fixtures-venv/bin/python tools/train-agent/train.py --out /work/agent-runs/run1 \
        --steps 2400 [--measure 20]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "fixtures"))
import determinism  # noqa: E402,F401  (one thread, before torch and tokenizers)
import torch  # noqa: E402

import corpus  # noqa: E402
from tokenizer_training import LLAMA3_SPLIT  # noqa: E402

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"]

MODEL = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-5, max_position_embeddings=131072,
             tie_word_embeddings=True,
             rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192})


def train_tokenizer(texts: list[str], vocab_size: int, out: Path):
    """Byte-level BPE with Llama 3's split pattern; the specials follow the learned tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    # the specials are cut out before training so their pieces do not become merges
    plain = [t for text in texts for t in _split_specials(text)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(plain, trainer)
    tok.add_special_tokens(SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                   eos_token="<|eot_id|>", model_max_length=131072,
                                   clean_up_tokenization_spaces=True)
    fast.chat_template = corpus.chat_template()
    fast.save_pretrained(out)
    return fast


def _split_specials(text: str) -> list[str]:
    import re

    return [p for p in re.split("|".join(re.escape(s) for s in SPECIALS), text) if p]


def encode_corpus(tok, texts: list[tuple[str, str]]) -> dict[str, tuple[list[int], list]]:
    """Per date: the shared prefix's ids, and each conversation's remaining ids with its
    assistant mask. The split is checked to tokenize exactly as the whole text does."""
    groups: dict[str, tuple[list[int], list]] = {}
    for k, (date, text) in enumerate(texts):
        if date not in groups:
            prefix = corpus.shared_prefix(tok, date)
            groups[date] = (tok(prefix, add_special_tokens=False).input_ids, [])
        prefix_ids, rows = groups[date]
        ids, mask = corpus.encode_with_mask(tok, text)
        n = len(prefix_ids)
        assert ids[:n] == prefix_ids and not any(mask[:n]), f"conversation {k}: prefix differs"
        rows.append((ids[n:], mask[n:]))
    return groups


def batches(groups: dict, batch: int, pad: int, rng: random.Random):
    """Batches of conversations sharing one date, hence one prefix, and of similar lengths
    (a window of the date's conversations sorted by length), so little is padding."""
    dates = sorted(groups)
    for date in dates:
        groups[date][1].sort(key=lambda row: len(row[0]))
    while True:
        prefix, rows = groups[rng.choice(dates)]
        start = rng.randrange(max(1, len(rows) - batch + 1))
        picked = rows[start:start + batch]
        width = max(len(ids) for ids, _ in picked)
        ids = torch.full((len(picked), width), pad, dtype=torch.long)
        labels = torch.full((len(picked), width), -100, dtype=torch.long)
        attn = torch.zeros((len(picked), len(prefix) + width), dtype=torch.long)
        attn[:, :len(prefix)] = 1
        for r, (x, m) in enumerate(picked):
            x_t = torch.tensor(x)
            ids[r, :len(x)] = x_t
            attn[r, len(prefix):len(prefix) + len(x)] = 1
            labels[r, :len(x)] = torch.where(torch.tensor(m) == 1, x_t, -100)
        yield torch.tensor([prefix]), ids, attn, labels


# Words the assistant copies from the conversation into a call (what to draw, where, which
# picture): weighted up by --content-weight, since they are a few tokens among many that only
# repeat the call's JSON and are learnt first.
CONTENT_WORDS = {"red", "green", "blue", "yellow", "purple", "orange", "circle", "square",
                 "triangle", "star", "ring", "left", "right", "top", "bottom", "centre",
                 "above", "below", "white", "black", "make", "remove", "add", "move",
                 "generate_image", "edit_image", "#", "1", "2", "3", "4", "5", "6"}
CONTENT_IDS: torch.Tensor | None = None
CONTENT_WEIGHT = 1.0


def content_ids(tok) -> torch.Tensor:
    """A vocabulary-long mask of the tokens that spell one of CONTENT_WORDS."""
    mask = torch.zeros(len(tok), dtype=torch.bool)
    for i in range(len(tok)):
        word = tok.decode([i]).strip().strip('"#').lower()
        mask[i] = word in CONTENT_WORDS or tok.decode([i]).strip() in CONTENT_WORDS
    return mask


def loss_on(model, prefix, ids, attn, labels):
    """The shared prefix runs once (batch 1) and its keys/values are repeated for the batch:
    the tools block is most of every sequence, so this saves most of the compute."""
    cache = model(input_ids=prefix, use_cache=True).past_key_values
    cache.batch_repeat_interleave(ids.shape[0])
    if CONTENT_IDS is None or CONTENT_WEIGHT == 1.0:
        return model(input_ids=ids, attention_mask=attn, past_key_values=cache, labels=labels,
                     use_cache=False).loss
    logits = model(input_ids=ids, attention_mask=attn, past_key_values=cache,
                   use_cache=False).logits[:, :-1].float()
    target = labels[:, 1:]
    valid = target != -100
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0),
                                           reduction="none")
    weight = torch.where(CONTENT_IDS[target.clamp(min=0)], CONTENT_WEIGHT, 1.0) * valid
    return (ce * weight).sum() / weight.sum()


def check_prefix_loss(model, prefix, ids, attn, labels) -> None:
    """The split forward equals the plain one on whole sequences (right padding only)."""
    full = torch.cat([prefix.expand(ids.shape[0], -1), ids], 1)
    full_labels = torch.cat([torch.full_like(prefix.expand(ids.shape[0], -1), -100), labels], 1)
    with torch.no_grad():
        a = model(input_ids=full, attention_mask=attn, labels=full_labels).loss.item()
        b = loss_on(model, prefix, ids, attn, labels).item()
    assert abs(a - b) < 1e-4 * abs(a), (a, b)
    print(f"prefix split checked: {a:.6f} == {b:.6f}", flush=True)


def grown(model, layers: int, model_class):
    """`model` deepened to `layers` decoder layers without changing what it computes: the new
    layers are spread between the old ones (4 -> 6: old, old, new, old, old, new) and start
    with their attention output and MLP down projections at zero, so each adds nothing to the
    residual stream until training moves it (the zero-initialised residual branch of
    progressive-stacking and "Net2DeeperNet" growth). Their other weights are the fresh model's
    random initialisation, so the gradients reaching the zeroed projections are not zero."""
    old = model.config.num_hidden_layers
    if layers <= old:
        raise SystemExit(f"--grow-layers {layers}: the model already has {old} layers")
    cfg = model.config.to_dict()
    cfg["num_hidden_layers"] = layers
    cfg.pop("layer_types", None)
    bigger = model_class(type(model.config).from_dict(cfg))
    # which new layer each old one becomes: the new ones go after every (old/extra)-th old one
    extra = layers - old
    slots, k = [], 0
    for i in range(old):
        slots.append(k)
        k += 1
        if (i + 1) * extra // old > i * extra // old:
            k += 1
    new_slots = sorted(set(range(layers)) - set(slots))
    state = model.state_dict()
    target = bigger.state_dict()
    for name, tensor in state.items():
        if name.startswith("model.layers."):
            i, rest = name[len("model.layers."):].split(".", 1)
            name = f"model.layers.{slots[int(i)]}.{rest}"
        target[name].copy_(tensor)
    for j in new_slots:
        target[f"model.layers.{j}.self_attn.o_proj.weight"].zero_()
        target[f"model.layers.{j}.mlp.down_proj.weight"].zero_()
    bigger.load_state_dict(target)
    with torch.no_grad():
        probe = torch.arange(min(64, model.config.vocab_size))[None]
        before, after = model(input_ids=probe).logits, bigger(input_ids=probe).logits
    assert torch.allclose(before, after, atol=1e-5), "growth changed the model's output"
    print(f"grown: {old} -> {layers} layers (old layers at {slots}, new at {new_slots}); "
          f"same logits on a probe", flush=True)
    return bigger


def save_checkpoint(model, tok, folder: Path, step: int, record: dict) -> None:
    """A float16 copy of the model so far, with the tokenizer (training goes on in float32),
    and its training record (`record` with the steps so far) so a run can go on from it."""
    import copy

    snapshot = copy.deepcopy(model).to(torch.float16)
    snapshot.generation_config.do_sample = False
    snapshot.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({**record, "steps": step}, indent=2) + "\n")


def record(args, conversations: int, vocab: int, dropped: int, n_params: int, seconds: float,
           loss: float, planned_steps: int | None = None) -> dict:
    """training.json: what ran, for export.py's record and test_phrasing.py's re-sampling."""
    out = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
           "conversations": conversations, "dates": args.dates, "vocab": vocab,
           "dropped_as_heldout": dropped, "parameters": n_params,
           "seconds": round(seconds), "final_loss": round(loss, 4),
           "init": str(args.init) if args.init else None, "augment": args.augment,
           "pseudo_share": args.pseudo_share, "edit_share": args.edit_share,
           "content_weight": args.content_weight, "threads": args.threads,
           "grow_layers": args.grow_layers or None,
           "command": " ".join(["python", "tools/train-agent/train.py"] + sys.argv[1:])}
    if planned_steps is not None:
        out["stopped_at"] = f"checkpoint of a run planned for {planned_steps} steps"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--conversations", type=int, default=30000)
    ap.add_argument("--vocab", type=int, default=1536)
    ap.add_argument("--dates", type=int, default=300)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--measure", type=int, default=0, help="time this many steps and stop")
    ap.add_argument("--content-weight", type=float, default=1.0,
                    help="loss weight of the copied words (CONTENT_WORDS) in assistant turns")
    ap.add_argument("--augment", type=float, default=0.0,
                    help="share of requests phrased with phrasing.AUGMENT (wider verbs, made-up words)")
    ap.add_argument("--pseudo-share", type=float, default=0.3,
                    help="share of the AUGMENT frames with made-up words in the verb's place")
    ap.add_argument("--edit-share", type=float, default=0.0,
                    help="share of requests made edits once a picture exists (naming practice)")
    ap.add_argument("--save-every", type=int, default=0,
                    help="also write the model (float16) to --out every this many steps")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is reproducible bit for bit; more is faster)")
    ap.add_argument("--init", type=Path, help="continue from this run's model and tokenizer")
    ap.add_argument("--grow-layers", type=int, default=0,
                    help="with --init: deepen the model to this many layers (see grown())")
    args = ap.parse_args()
    if args.grow_layers and not args.init:
        ap.error("--grow-layers needs --init (it deepens a trained model)")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    renderer = AutoTokenizer.from_pretrained(corpus.TEMPLATE_CONFIG.parent)
    texts, dropped = corpus.rendered_corpus(renderer, args.conversations, args.seed, args.dates,
                                            augment=args.augment, pseudo_share=args.pseudo_share,
                                            edit_share=args.edit_share)
    if args.init:
        tok = AutoTokenizer.from_pretrained(args.init)
        tok.save_pretrained(args.out)
    else:
        tok = train_tokenizer([t for _, t in texts[:6000]], args.vocab, args.out)
    groups = encode_corpus(tok, texts)
    rows = [r for _, rs in groups.values() for r in rs]
    lengths = sorted(len(ids) for ids, _ in rows)
    prefix_len = max(len(p) for p, _ in groups.values())
    supervised = sum(sum(m) for _, m in rows)
    print(f"corpus: {len(texts)} conversations ({dropped} dropped as held-out), {len(groups)} "
          f"dates, prefix {prefix_len} tokens, rest median {lengths[len(lengths) // 2]} max "
          f"{lengths[-1]}, supervised {supervised}, vocab {len(tok)}, {time.time() - t0:.0f}s",
          flush=True)

    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    eom = tok.convert_tokens_to_ids("<|eom_id|>")
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=[eot, eom],
                      pad_token_id=None, **MODEL)
    if args.init:
        model = LlamaForCausalLM.from_pretrained(args.init, dtype=torch.float32)
        assert model.config.vocab_size == cfg.vocab_size
        if args.grow_layers:
            model = grown(model, args.grow_layers, LlamaForCausalLM)
    else:
        model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, args.steps // 30)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    stream = batches(groups, args.batch, eot, random.Random(args.seed))
    check_prefix_loss(model, *next(stream))
    global CONTENT_IDS, CONTENT_WEIGHT
    CONTENT_IDS, CONTENT_WEIGHT = content_ids(tok), args.content_weight
    print(f"content tokens: {int(CONTENT_IDS.sum())}, weight {CONTENT_WEIGHT}", flush=True)
    model.train()
    start, losses = time.time(), []
    steps = args.measure or args.steps
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = loss_on(model, *next(stream))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if args.save_every and step and step % args.save_every == 0:
            save_checkpoint(model, tok, args.out / "checkpoint", step, record(
                args, len(texts), len(tok), dropped, n_params, time.time() - start,
                sum(losses[-50:]) / len(losses[-50:]), planned_steps=args.steps))
        if step % 50 == 0 or step == steps - 1:
            recent = sum(losses[-50:]) / len(losses[-50:])
            print(f"step {step} loss {recent:.4f} lr {lr_at(step):.2e} "
                  f"{(time.time() - start) / (step + 1):.2f}s/step", flush=True)
    seconds = time.time() - start
    if args.measure:
        print(f"measured {seconds / steps:.2f} s/step at batch {args.batch}")
        return
    model.eval()
    model.generation_config.do_sample = False
    model.to(torch.float16).save_pretrained(args.out)
    final = sum(losses[-50:]) / len(losses[-50:])
    (args.out / "training.json").write_text(json.dumps(record(
        args, len(texts), len(tok), dropped, n_params, seconds, final), indent=2) + "\n")
    print(f"done: {args.steps} steps in {seconds:.0f}s, final loss {final:.4f}")


if __name__ == "__main__":
    main()
