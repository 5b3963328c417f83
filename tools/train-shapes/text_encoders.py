"""The frozen text encoders (randomly initialised, as the issue allows) and their tokenizers:
the `encoders` stage builds them, `TextEncoder` turns captions into the transformer's inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import numpy as np
import torch
import shapes_world as world
from recipe import MAX_SEQUENCE_LENGTH, SIZE
from runtime import log


def corpus() -> list[str]:
    rng = np.random.default_rng(7)
    lines = [world.sample_scene(rng, SIZE).caption for _ in range(6000)]
    from prompts import corpus as general  # words of ordinary prompts, for coverage
    return lines + general()


def stage_encoders(run: Path) -> None:
    """Tokenizers trained on a Shapes-heavy corpus, tiny random CLIP-L/CLIP-G/T5/Llama in the
    real folders' layout. Never trained: the transformer learns to read them."""
    # Imported here: see new_transformer (transformer_training.py) on their side effect.
    import tiny_models as tm
    import tokenizer_training as tt
    from transformers import (CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer,
                              LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, T5Config,
                              T5EncoderModel, T5Tokenizer)

    out = run / "encoders"
    if (out / "done").exists():
        log("encoders", f"already built in {out}")
        return
    shutil.rmtree(out, ignore_errors=True)
    lines = corpus()
    vocab, merges = tt.train_clip_bpe(lines, num_merges=400)
    tt.save_clip_tokenizer(vocab, merges, out / "tokenizer", pad_token="<|endoftext|>")
    tt.save_clip_tokenizer(vocab, merges, out / "tokenizer_2", pad_token="!")
    tt.train_t5_spm(lines, out / "tokenizer_3")
    tt.train_llama_tokenizer(lines, out / "llama")

    tok = CLIPTokenizer.from_pretrained(out / "tokenizer")
    for name, cfg, seed in (("text_encoder", tm.CLIP_L, 1), ("text_encoder_2", tm.CLIP_G, 2)):
        model = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=1, **cfg))
        tm.randomise(model, seed)
        model.save_pretrained(out / name)
    t5_tok = T5Tokenizer.from_pretrained(out / "tokenizer_3")
    t5 = T5EncoderModel(T5Config(vocab_size=(len(t5_tok) + 127) // 128 * 128, **tm.T5))
    tm.randomise(t5, 3)
    t5.save_pretrained(out / "text_encoder_3")
    ltok = PreTrainedTokenizerFast.from_pretrained(out / "llama")
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(ltok), bos_token_id=ltok.bos_token_id,
        eos_token_id=ltok.convert_tokens_to_ids("<|eot_id|>"), **tm.LLAMA))
    tm.randomise(llama, 4)
    llama.to(torch.bfloat16).save_pretrained(out / "llama")
    (out / "done").write_text("ok\n")
    log("encoders", f"built in {out}")


class TextEncoder:
    """The pipeline's prompt encoding (diffusers' HiDreamImagePipeline helpers), memoised per
    caption: the encoders are frozen, so a caption always gives the same embedding."""

    def __init__(self, run: Path):
        from diffusers import HiDreamImagePipeline
        from transformers import (CLIPTextModelWithProjection, CLIPTokenizer, LlamaForCausalLM,
                                  PreTrainedTokenizerFast, T5EncoderModel, T5Tokenizer)

        enc = run / "encoders"
        self.pipe = HiDreamImagePipeline(
            scheduler=None, vae=None, transformer=None,
            text_encoder=CLIPTextModelWithProjection.from_pretrained(enc / "text_encoder"),
            tokenizer=CLIPTokenizer.from_pretrained(enc / "tokenizer"),
            text_encoder_2=CLIPTextModelWithProjection.from_pretrained(enc / "text_encoder_2"),
            tokenizer_2=CLIPTokenizer.from_pretrained(enc / "tokenizer_2"),
            text_encoder_3=T5EncoderModel.from_pretrained(enc / "text_encoder_3"),
            tokenizer_3=T5Tokenizer.from_pretrained(enc / "tokenizer_3"),
            text_encoder_4=LlamaForCausalLM.from_pretrained(enc / "llama", torch_dtype=torch.float32),
            tokenizer_4=PreTrainedTokenizerFast.from_pretrained(enc / "llama"),
        )
        self.pipe.tokenizer_4.pad_token = self.pipe.tokenizer_4.eos_token
        self.cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def _encode(self, captions: list[str]):
        p, L, dev = self.pipe, MAX_SEQUENCE_LENGTH, torch.device("cpu")
        pooled = torch.cat([
            p._get_clip_prompt_embeds(p.tokenizer, p.text_encoder, captions, L, dev, torch.float32),
            p._get_clip_prompt_embeds(p.tokenizer_2, p.text_encoder_2, captions, L, dev, torch.float32),
        ], dim=-1)
        t5 = p._get_t5_prompt_embeds(captions, L, dev, torch.float32)
        llama = p._get_llama3_prompt_embeds(captions, L, dev, torch.float32)
        return t5, llama, pooled

    def table(self, captions: list[str]) -> dict:
        if runtime.BATCHED_TEXT:
            unique = sorted(set(captions))
            t5, llama, pooled = self._encode(unique)
            return {c: (t5[i], llama[:, i], pooled[i]) for i, c in enumerate(unique)}
        # One caption at a time: a batched matmul's rounding can depend on the batch, and an
        # embedding must not depend on which captions it was first met with (resuming a run
        # starts with an empty cache).
        for c in sorted({c for c in captions if c not in self.cache}):
            t5, llama, pooled = self._encode([c])
            self.cache[c] = (t5[0], llama[:, 0], pooled[0])
        return {c: self.cache[c] for c in captions}

    def __call__(self, captions: list[str]):
        return stack_cond(self.table(captions), captions)


def stack_cond(table: dict, captions: list[str]):
    """The transformer's (T5, Llama, pooled) inputs for `captions`, from per-caption embeddings,
    on the training device."""
    items = [table[c] for c in captions]
    return (torch.stack([t for t, _, _ in items]).to(runtime.DEV),
            torch.stack([l for _, l, _ in items], dim=1).to(runtime.DEV),
            torch.stack([p for _, _, p in items]).to(runtime.DEV))
