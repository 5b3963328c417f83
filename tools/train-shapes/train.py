#!/usr/bin/env python3
"""Trains the bundled "Shapes" models: HiDream-I1/E1 architectures at toy scale on the Shapes
world (`shapes_world.py`), saved in the exact on-disk layout of the real snapshots.

Stages (each resumable: it continues from `<run>/<stage>/checkpoint.pt` when one is there):

    python tools/train-shapes/train.py encoders --run runs/shapes
    python tools/train-shapes/train.py vae      --run runs/shapes --steps 1500
    python tools/train-shapes/train.py full     --run runs/shapes --steps 1600
    python tools/train-shapes/train.py dev      --run runs/shapes --steps 400
    python tools/train-shapes/train.py export   --run runs/shapes --out assets/models
    python tools/train-shapes/train.py selfcheck

Every batch is a pure function of (seed, stage, step), so a run resumed from a checkpoint is
bit-identical to one that never stopped (`selfcheck` proves it, and that the loss falls).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "fixtures"))

import shapes_world as world  # noqa: E402

SIZE = 64
# Captions are at most ~20 tokens; text tokens dominate the transformer's cost at this width.
MAX_SEQUENCE_LENGTH = 24
# Full's guidance at sampling time (ShapesEval: colour is best near 2 at this scale), and the
# guided prediction Dev is distilled from.
GUIDANCE = 2.0
# Flow shift used for Full's sampling and for its training noise levels.
SHIFT = 3.0
CAPTION_DROPOUT = 0.1
# Where the models train (`--device`); batches are always made on the CPU, by `WORKERS`
# processes when that is more than zero (a GPU outruns one process rendering scenes).
DEV = torch.device("cpu")
WORKERS = 0
# On a GPU each batch's captions are encoded together, without a cache (one caption at a time
# is too slow to feed it). Still a pure function of the step; an embedding then differs from
# the one-caption encoding in the last bits (measured <= 7e-7).
BATCHED_TEXT = False

VAE = dict(in_channels=3, out_channels=3, latent_channels=16,
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           block_out_channels=[8, 16, 32, 64], layers_per_block=1, norm_num_groups=4,
           act_fn="silu", sample_size=SIZE, scaling_factor=1.0, shift_factor=0.0,
           use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True,
           force_upcast=True)
DIT = dict(patch_size=2, in_channels=16, out_channels=16, num_layers=2, num_single_layers=3,
           attention_head_dim=32, num_attention_heads=3, num_routed_experts=4,
           num_activated_experts=2, axes_dims_rope=[16, 8, 8], max_resolution=[16, 16],
           llama_layers=[0, 1, 2, 3, 3])


def log(stage: str, msg: str) -> None:
    print(f"[{stage}] {msg}", flush=True)


def corpus() -> list[str]:
    rng = np.random.default_rng(7)
    lines = [world.sample_scene(rng, SIZE).caption for _ in range(6000)]
    from prompts import corpus as general  # words of ordinary prompts, for coverage
    return lines + general()


# ---------------------------------------------------------------------------------------------
# Frozen text encoders (randomly initialised, as the issue allows) and their tokenizers
# ---------------------------------------------------------------------------------------------


def stage_encoders(run: Path) -> None:
    """Tokenizers trained on a Shapes-heavy corpus, tiny random CLIP-L/CLIP-G/T5/Llama in the
    real folders' layout. Never trained: the transformer learns to read them."""
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
        if BATCHED_TEXT:
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
    return (torch.stack([t for t, _, _ in items]).to(DEV),
            torch.stack([l for _, l, _ in items], dim=1).to(DEV),
            torch.stack([p for _, _, p in items]).to(DEV))


class StepData(torch.utils.data.Dataset):
    """Item i is step start + i's batch: `fetch(step, text)`, a pure function of the step, so
    prefetching processes give exactly what the training process would make itself. Each
    process builds its own frozen text encoders, on the CPU."""

    def __init__(self, run: Path, start: int, steps: int, fetch):
        self.run, self.start, self.steps, self.fetch = run, start, steps, fetch
        self.text = None

    def __len__(self) -> int:
        return self.steps - self.start

    def __getitem__(self, i: int):
        return self.fetch(self.start + i, self)

    def table(self, captions: list[str]) -> dict:
        if self.text is None:  # built on first use: the VAE stage needs no text
            self.text = TextEncoder(self.run)
        return self.text.table(captions)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


def batches(run: Path, fetch):
    """start -> an iterator over the batches of steps start, start + 1, ..."""
    def from_step(start: int, steps: int):
        data = StepData(run, start, steps, fetch)
        if WORKERS == 0:
            return (data[i] for i in range(len(data)))
        return iter(torch.utils.data.DataLoader(data, batch_size=None, num_workers=WORKERS,
                                                prefetch_factor=8, worker_init_fn=_one_thread))
    return from_step


def fetch_scenes(seed: int, stage: str, batch: int, extra: tuple[str, ...] = ("",)):
    def fetch(step: int, text):
        scenes, images = scene_batch(seed, stage, step, batch)
        captions = [sc.caption for sc in scenes]
        return {"captions": captions, "images": images, "emb": text.table(captions + list(extra))}
    return fetch


def randn(shape, gen: torch.Generator) -> torch.Tensor:
    """Noise drawn on the CPU (the same numbers whatever the device), then moved."""
    return torch.randn(shape, generator=gen).to(DEV)


# ---------------------------------------------------------------------------------------------
# Data: a pure function of (seed, stage, step)
# ---------------------------------------------------------------------------------------------


def batch_rng(seed: int, stage: str, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, stage)), step])


def torch_gen(seed: int, stage: str, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(batch_rng(seed, stage + "/torch", step).integers(2**62)))


def scene_batch(seed: int, stage: str, step: int, batch: int):
    rng = batch_rng(seed, stage, step)
    scenes = [world.sample_scene(rng, SIZE) for _ in range(batch)]
    pixels = np.stack([world.render(s, SIZE) for s in scenes])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return scenes, images


def foreground_weight(images: torch.Tensor) -> torch.Tensor:
    """x10 on object pixels: white or black backgrounds otherwise dominate the loss and wash the
    hues out."""
    bg_white = (images > 0.99).all(dim=1, keepdim=True)
    bg_black = (images < -0.99).all(dim=1, keepdim=True)
    return torch.where(bg_white | bg_black, 1.0, 10.0)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def save_checkpoint(path: Path, step: int, model, opt, extra: dict | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "model": model.state_dict(), "opt": opt.state_dict(),
                "extra": extra or {}}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, opt) -> tuple[int, dict]:
    if not path.exists():
        return 0, {}
    state = torch.load(path, weights_only=False, map_location=DEV)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    return state["step"], state["extra"]


# A run stops here (checkpoint written), as an interruption would, to be resumed afterwards:
# the selfcheck's test of resuming, and `--stop-after`.
STOP_AFTER: int | None = None


def train_loop(stage: str, out: Path, model, opt, steps: int, loss_fn, data, every: int = 100,
               lr_at=None) -> list[float]:
    """`data(start, steps)` iterates over the batches; `loss_fn(step, batch)` gives the loss."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    start, extra = load_checkpoint(ckpt, model, opt)
    record = extra.get("record", {"seconds": 0.0, "losses": []})
    if start:
        log(stage, f"resuming at step {start}")
    t0 = time.time()
    window = []
    items = data(start, steps)
    for step in range(start, steps):
        if lr_at is not None:
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
        loss = loss_fn(step, next(items))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == steps:
            elapsed = record["seconds"] + time.time() - t0
            mean = float(np.mean(window))
            record["losses"].append([step + 1, mean])
            log(stage, f"step {step + 1}/{steps}  loss {mean:.5f}  "
                       f"{(step + 1 - start) / (time.time() - t0):.2f} steps/s  {elapsed:.0f} s")
            window = []
            save_checkpoint(ckpt, step + 1, model, opt,
                            {"record": dict(record, seconds=elapsed)})
            record["seconds"], t0, start = elapsed, time.time(), step + 1
            if STOP_AFTER is not None and step + 1 >= STOP_AFTER:
                break
    return [l for _, l in record["losses"]]


# ---------------------------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------------------------


def new_vae():
    from diffusers import AutoencoderKL
    torch.manual_seed(5)
    return AutoencoderKL(**VAE)


def stage_vae(run: Path, steps: int, seed: int, batch: int = 16) -> list[float]:
    vae = new_vae().to(DEV)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)

    def fetch(step, _text):
        return scene_batch(seed, "vae", step, batch)[1]

    def loss_fn(step, images):
        images = images.to(DEV)
        posterior = vae.encode(images).latent_dist
        z = posterior.mean + posterior.std * randn(posterior.mean.shape, torch_gen(seed, "vae", step))
        recon = vae.decode(z).sample
        rec = (foreground_weight(images) * (recon - images) ** 2).mean()
        kl = posterior.kl().mean() / images[0].numel()
        return rec + 1e-4 * kl

    def lr_at(step):
        return 2e-3 * min(1.0, (step + 1) / 50) * (0.1 if step > 0.8 * steps else 1.0)

    losses = train_loop("vae", run / "vae", vae, opt, steps, loss_fn, batches(run, fetch), lr_at=lr_at)
    finish_vae(run, vae, seed)
    return losses


@torch.no_grad()
def finish_vae(run: Path, vae, seed: int) -> None:
    """Sets shift and scaling factors from the latents of held-out scenes (the FLUX VAE's
    factors are the same statistic over photographs), reports PSNR, and saves the diffusers
    folder."""
    vae.eval()
    _, images = scene_batch(seed + 1, "vae-eval", 0, 256)
    images = images.to(DEV)
    z = vae.encode(images).latent_dist.mean
    shift, scale = z.mean().item(), 1.0 / z.std().item()
    vae.register_to_config(shift_factor=round(shift, 4), scaling_factor=round(scale, 4))
    recon = vae.decode(z).sample.clamp(-1, 1)
    mse = ((recon - images) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(4.0 / mse)).mean().item()
    vae.save_pretrained(run / "vae" / "model")
    (run / "vae" / "eval.json").write_text(json.dumps({"psnr_db": psnr, "shift": shift, "scale": scale}) + "\n")
    log("vae", f"held-out PSNR {psnr:.2f} dB, shift {shift:.4f}, scale {scale:.4f}")


def load_vae(run: Path):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(run / "vae" / "model").to(DEV)
    vae.eval().requires_grad_(False)
    return vae


@torch.no_grad()
def to_latents(vae, images: torch.Tensor) -> torch.Tensor:
    z = vae.encode(images.to(DEV)).latent_dist.mean
    return (z - vae.config.shift_factor) * vae.config.scaling_factor


# ---------------------------------------------------------------------------------------------
# The transformer
# ---------------------------------------------------------------------------------------------


def new_transformer():
    from diffusers import HiDreamImageTransformer2DModel
    import tiny_models as tm
    torch.manual_seed(6)
    return HiDreamImageTransformer2DModel(
        caption_channels=[tm.T5["d_model"], tm.LLAMA["hidden_size"]],
        text_emb_dim=tm.CLIP_L["projection_dim"] + tm.CLIP_G["projection_dim"], **DIT)


class AuxLoss:
    """diffusers computes each MoE gate's load-balancing loss in training mode but never adds
    it to the graph (its AddAuxiliaryLoss line is commented out); this collects it."""

    def __init__(self, model):
        from diffusers.models.transformers.transformer_hidream_image import MoEGate
        self.losses: list[torch.Tensor] = []
        for m in model.modules():
            if isinstance(m, MoEGate):
                m.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        if output[2] is not None:
            self.losses.append(output[2])

    def take(self) -> torch.Tensor:
        total = sum(self.losses) if self.losses else torch.zeros(())
        self.losses = []
        return total


def patchify_target(x: torch.Tensor, p: int = 2) -> torch.Tensor:
    """[B, C, H, W] in the layout diffusers' transformer returns in training mode:
    [B, C, (H/p)(W/p), p*p]."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, (h // p) * (w // p), p * p)


def sample_sigmas(gen: torch.Generator, n: int, shift: float = SHIFT) -> torch.Tensor:
    """Logit-normal noise levels moved by the sampler's flow shift, so training sees the noise
    levels sampling spends its steps on."""
    u = torch.sigmoid(torch.randn(n, generator=gen))
    return (shift * u / (1 + (shift - 1) * u)).to(DEV)


def predict(model, x_t, sigma, cond):
    """The transformer's raw output, in the pipeline's convention: the pipeline negates it to
    get the flow velocity noise - x0, and feeds timesteps sigma * 1000."""
    t5, llama, pooled = cond
    return model(x_t, timesteps=sigma * 1000, encoder_hidden_states_t5=t5,
                 encoder_hidden_states_llama3=llama, pooled_embeds=pooled, return_dict=False)[0]


def lr_schedule(peak: float, steps: int, warmup: int = 100):
    def lr_at(step):
        if step < warmup:
            return peak * (step + 1) / warmup
        return peak * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))
    return lr_at


def stage_full(run: Path, steps: int, seed: int, batch: int = 32, every: int = 100) -> list[float]:
    vae = load_vae(run)
    model = new_transformer().to(DEV)
    model.train()
    aux = AuxLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "full", step)
        drop = torch.rand(batch, generator=gen) < CAPTION_DROPOUT
        captions = ["" if d else c for c, d in zip(item["captions"], drop.tolist())]
        x0 = to_latents(vae, item["images"])
        noise = randn(x0.shape, gen)
        sigma = sample_sigmas(gen, batch)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        out = predict(model, x_t, sigma, stack_cond(item["emb"], captions))
        return F.mse_loss(out, patchify_target(x0 - noise)) + aux.take()

    return train_loop("full", run / "full", model, opt, steps, loss_fn,
                      batches(run, fetch_scenes(seed, "full", batch)), every=every,
                      lr_at=lr_schedule(5e-4, steps, warmup=min(100, steps)))


def load_transformer(path: Path, train: bool):
    from diffusers import HiDreamImageTransformer2DModel
    model = HiDreamImageTransformer2DModel.from_pretrained(path).to(DEV)
    model.train(train)
    return model


def stage_dev(run: Path, steps: int, seed: int, batch: int = 32) -> list[float]:
    """Guidance distillation (HiDream-I1-Dev's recipe at toy scale): the student, started from
    Full, learns to give in one pass what Full gives with classifier-free guidance."""
    vae = load_vae(run)
    teacher = load_transformer(run / "full" / "model", train=False).requires_grad_(False)
    student = load_transformer(run / "full" / "model", train=True)
    aux = AuxLoss(student)
    opt = torch.optim.AdamW(student.parameters(), lr=2e-4, weight_decay=0.0)

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "dev", step)
        x0 = to_latents(vae, item["images"])
        noise = randn(x0.shape, gen)
        # Dev samples with shift 6: train where it spends its steps.
        sigma = sample_sigmas(gen, batch, shift=6.0)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        cond = stack_cond(item["emb"], item["captions"])
        uncond = stack_cond(item["emb"], [""] * batch)
        with torch.no_grad():
            c_out = predict(teacher, x_t, sigma, cond)
            u_out = predict(teacher, x_t, sigma, uncond)
            # The teacher runs in inference mode ([B, C, H, W]); the student's training-mode
            # output is patchified.
            target = patchify_target(u_out + GUIDANCE * (c_out - u_out))
        aux.losses = []
        out = predict(student, x_t, sigma, cond)
        return F.mse_loss(out, target) + aux.take()

    return train_loop("dev", run / "dev", student, opt, steps, loss_fn,
                      batches(run, fetch_scenes(seed, "dev", batch)), lr_at=lr_schedule(2e-4, steps, 20))


class LatentCritic(torch.nn.Module):
    """The adversarial term's discriminator: a small conv net on 16-channel latents."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(64, 64, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Flatten(), torch.nn.LazyLinear(1))

    def forward(self, x):
        return self.net(x)


class FastTrainer(torch.nn.Module):
    """Everything the Fast stage updates, so one optimizer and one checkpoint hold it."""

    def __init__(self, generator, fake, critic):
        super().__init__()
        self.generator, self.fake, self.critic = generator, fake, critic


# Weight of the Fast stage's regression term against the distribution-matching one.
REGRESSION = 1.0


def stage_fast(run: Path, steps: int, seed: int, batch: int = 16) -> list[float]:
    """HiDream-I1-Fast's recipe at toy scale: distribution matching distillation (DMD) from the
    guidance-distilled Dev model, plus an adversarial term. The generator is trained at the
    noise levels of Fast's own 16-step Flash schedule (shift 3); the "fake" score model follows
    the generator's outputs with the flow-matching loss; the critic tells real latents from
    the generator's."""
    vae = load_vae(run)
    real = load_transformer(run / "dev" / "model", train=False).requires_grad_(False)
    trainer = FastTrainer(load_transformer(run / "dev" / "model", train=True),
                          load_transformer(run / "dev" / "model", train=True), LatentCritic().to(DEV))
    trainer.critic(torch.zeros(1, 16, SIZE // 8, SIZE // 8, device=DEV))  # materialise the lazy layer
    aux = AuxLoss(trainer.generator)
    opt = torch.optim.AdamW([
        {"params": trainer.generator.parameters(), "lr": 5e-5},
        {"params": trainer.fake.parameters(), "lr": 2e-4},
        {"params": trainer.critic.parameters(), "lr": 2e-4},
    ], weight_decay=0.0)
    # Fast's sampling noise levels: 16 Flash steps, shift 3.
    u = torch.linspace(1.0, 1.0 / 16, 16)
    fast_sigmas = SHIFT * u / (1 + (SHIFT - 1) * u)

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "fast", step)
        x0 = to_latents(vae, item["images"])
        cond = stack_cond(item["emb"], item["captions"])
        sigma = fast_sigmas[torch.randint(0, 16, (batch,), generator=gen)].to(DEV)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * randn(x0.shape, gen)
        # The generator's clean estimate (the Flash scheduler's x0 = x_t + sigma * output).
        out = unpatchify(predict(trainer.generator, x_t, sigma, cond))
        x0_gen = x_t + s * out
        gen_aux = aux.take()
        # DMD's regression term, at toy scale: the teacher's clean estimate from the same noisy
        # input (the paper regresses onto teacher samples from the same noise). Without it the
        # mode-seeking terms drift colours and break shapes (measured: single colour 1.0 -> 0.78).
        with torch.no_grad():
            x0_teacher = x_t + s * predict(real, x_t, sigma, cond)
        regression = F.mse_loss(x0_gen, x0_teacher)
        # DMD: re-noise the estimate and compare the real and fake models' estimates there.
        tau = sample_sigmas(gen, batch).clamp(0.02, 0.98)
        tt = tau.view(-1, 1, 1, 1)
        y = (1 - tt) * x0_gen.detach() + tt * randn(x0.shape, gen)
        with torch.no_grad():
            # Models in inference mode return [B, C, H, W] already.
            x0_real = y + tt * predict(real, y, tau, cond)
            trainer.fake.eval()
            x0_fake = y + tt * predict(trainer.fake, y, tau, cond)
            trainer.fake.train()
            weight = (x0_gen - x0_real).abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-4)
            grad = (x0_fake - x0_real) / weight
        dmd = 0.5 * F.mse_loss(x0_gen, (x0_gen - grad).detach())
        adv = F.softplus(-trainer.critic(x0_gen)).mean()
        # The fake model learns the generator's distribution; the critic, real from generated.
        noise = randn(x0.shape, gen)
        tau2 = sample_sigmas(gen, batch).view(-1, 1, 1, 1)
        y2 = (1 - tau2) * x0_gen.detach() + tau2 * noise
        fake_loss = F.mse_loss(predict(trainer.fake, y2, tau2.flatten(), cond),
                               patchify_target(x0_gen.detach() - noise))
        critic_loss = (F.softplus(-trainer.critic(x0)).mean()
                       + F.softplus(trainer.critic(x0_gen.detach())).mean())
        return REGRESSION * regression + dmd + 0.05 * adv + gen_aux + fake_loss + critic_loss

    return train_loop("fast", run / "fast", trainer, opt, steps, loss_fn,
                      batches(run, fetch_scenes(seed, "fast", batch)), every=25)


def unpatchify(out: torch.Tensor, p: int = 2) -> torch.Tensor:
    """The training-mode output [B, C, S, p*p] back to [B, C, H, W] (square latents)."""
    b, c, s, _ = out.shape
    side = int(round(s ** 0.5))
    return out.reshape(b, c, side, side, p, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, side * p, side * p)


E11_NEGATIVE = "low quality, blurry, distorted"


def edit_batch(seed: int, step: int, batch: int, kind_weights: list[float] | None = None):
    rng = batch_rng(seed, "editor", step)
    triplets = [world.sample_edit(rng, SIZE, kind_weights) for _ in range(batch)]
    src = np.stack([world.render(s, SIZE) for s, _, _, _ in triplets])
    tgt = np.stack([world.render(t, SIZE) for _, _, t, _ in triplets])
    to_t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # noqa: E731
    changed = torch.from_numpy((src != tgt).any(axis=-1)).float()[:, None]
    return triplets, to_t(src), to_t(tgt), changed


def stage_editor(run: Path, steps: int, seed: int, batch: int = 12, init: Path | None = None,
                 plain_every: int = 4, kind_weights: list[float] | None = None,
                 object_weight: float = 0.0) -> list[float]:
    """An E1.1-style editor fine-tuned from the Full toy: the noisy target and the clean source
    side by side on one canvas (target left), the loss on the target half only, weighted up
    where the edit changes pixels (the paper's spatially weighted loss). Text and source are
    dropped at random for the editing stage's three-way guidance; every `plain_every`th batch is
    plain text-to-image so the model can still denoise alone (the pipeline's refine stage).
    `object_weight` adds weight where either picture has an object: an unchanged object is a
    small share of the unchanged pixels, yet the one a recolour most often spoils."""
    vae = load_vae(run)
    # `init`: a warm restart from an earlier editor (new optimizer and schedule).
    model = load_transformer(init or run / "full" / "model", train=True)
    # The E1.1 pipeline pads the canvas to twice the I1 model's max_seq; train with the same
    # padding, which takes part in attention.
    model.max_seq = 2 * model.max_seq
    aux = AuxLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)

    plain = fetch_scenes(seed, "editor-t2i", batch)

    def fetch(step, text):
        if step % plain_every == plain_every - 1:
            return plain(step, text)
        triplets, src, tgt, changed = edit_batch(seed, step, batch, kind_weights)
        instructions = [t[1] for t in triplets]
        return {"instructions": instructions, "src": src, "tgt": tgt, "changed": changed,
                "emb": text.table(instructions + [E11_NEGATIVE, ""])}

    def loss_fn(step, item):
        aux.losses = []
        gen = torch_gen(seed, "editor", step)
        if step % plain_every == plain_every - 1:
            x0 = to_latents(vae, item["images"])
            noise = randn(x0.shape, gen)
            sigma = sample_sigmas(gen, batch)
            s = sigma.view(-1, 1, 1, 1)
            out = predict(model, (1 - s) * x0 + s * noise, sigma, stack_cond(item["emb"], item["captions"]))
            return F.mse_loss(out, patchify_target(x0 - noise)) + aux.take()
        x_src, x0 = to_latents(vae, item["src"]), to_latents(vae, item["tgt"])
        changed = item["changed"].to(DEV)
        noise = randn(x0.shape, gen)
        sigma = sample_sigmas(gen, batch)
        s = sigma.view(-1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        roll = torch.rand(batch, generator=gen)
        captions = [E11_NEGATIVE if r < 0.1 else ("" if r < 0.15 else t)
                    for r, t in zip(roll.tolist(), item["instructions"])]
        keep_src = (torch.rand(batch, generator=gen) >= 0.1).float().view(-1, 1, 1, 1).to(DEV)
        canvas = torch.cat([x_t, x_src * keep_src], dim=-1)
        out = predict(model, canvas, sigma, stack_cond(item["emb"], captions))
        # Training-mode output: [B, C, max_seq, 4] in canvas row-major token order.
        h, w = x0.shape[-2] // 2, x0.shape[-1] // 2
        tokens = out[:, :, : h * 2 * w].reshape(out.shape[0], out.shape[1], h, 2 * w, 4)[:, :, :, :w]
        pred = tokens.reshape(out.shape[0], out.shape[1], h * w, 4)
        weight = 1.0 + 4.0 * F.max_pool2d(changed, 8)  # per latent pixel, then per patch
        if object_weight:
            objects = ((foreground_weight(item["src"]) > 1) | (foreground_weight(item["tgt"]) > 1)).float()
            weight = weight + object_weight * F.max_pool2d(objects.to(DEV), 8)
        weight = patchify_target(weight.expand(-1, 1, -1, -1))
        err = (pred - patchify_target(x0 - noise)) ** 2
        return (weight * err).mean() / weight.mean() + aux.take()

    return train_loop("editor", run / "editor", model, opt, steps, loss_fn, batches(run, fetch),
                      lr_at=lr_schedule(3e-4, steps, 50))


def finish_transformer(run: Path, stage: str) -> None:
    model = new_transformer() if stage == "full" else load_transformer(run / "full" / "model", False)
    state = torch.load(run / stage / "checkpoint.pt", weights_only=False, map_location="cpu")
    weights = state["model"]
    if stage == "fast":  # the generator's part of the FastTrainer
        weights = {k[len("generator."):]: v for k, v in weights.items() if k.startswith("generator.")}
    model.load_state_dict(weights)
    model.save_pretrained(run / stage / "model")
    record = state["extra"].get("record", {})
    (run / stage / "record.json").write_text(json.dumps({
        "steps": state["step"], "seconds": record.get("seconds"),
        "final_loss": record.get("losses", [[0, None]])[-1][1]}) + "\n")
    log(stage, f"saved {run / stage / 'model'}")


# ---------------------------------------------------------------------------------------------
# Export in the real snapshots' layout
# ---------------------------------------------------------------------------------------------


# The commands that made the shipped models, in order, and where they ran; recorded in each
# manifest. `gpu.sh` chose the GPU step counts from measured speed (README.md).
H100 = "one NVIDIA H100 (lent), PyTorch 2.11.0+cu130, diffusers 0.42.1, transformers 5.23.0"
CPU = "2-core CPU, PyTorch 2.15.0, diffusers 0.42.1, transformers 5.23.0"
COMMON = [("encoders --run RUN", CPU),
          ("vae --run RUN --steps 2500 --device cuda --threads 2 --batch 64 --workers 12", H100)]
SHIPPED_COMMANDS = {
    "full": COMMON + [
        ("full --run RUN --steps 2600 --device cuda --threads 2 --batch 128 --workers 14", H100)],
    "dev": COMMON + [
        ("full --run RUN --steps 2600 --device cuda --threads 2 --batch 128 --workers 14", H100),
        ("dev --run RUN --steps 500 --device cuda --threads 2 --batch 128 --workers 7", H100)],
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
        # No refine stage: "remove the red circle" is no description to draw from.
        "editor": dict(steps=28, guidance=3.0, shift=3.0, scheduler="flow_unipc",
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
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3"):
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


# ---------------------------------------------------------------------------------------------
# Self-check: the loss falls, and resuming is bit-exact
# ---------------------------------------------------------------------------------------------


def selfcheck() -> None:
    global STOP_AFTER
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        losses = stage_vae_small(a, steps=40)
        first, last = np.mean(losses[:2]), np.mean(losses[-2:])
        assert last < first, f"VAE loss did not fall: {first:.4f} -> {last:.4f}"
        STOP_AFTER = 20
        stage_vae_small(b, steps=40)
        STOP_AFTER = None
        stage_vae_small(b, steps=40)  # resumes from step 20
        sa = torch.load(a / "vae" / "checkpoint.pt", weights_only=False)["model"]
        sb = torch.load(b / "vae" / "checkpoint.pt", weights_only=False)["model"]
        diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
        assert not diff, f"resumed run differs in {len(diff)} tensors, first {diff[0]}"
        print(f"selfcheck: VAE loss {first:.4f} -> {last:.4f} over 40 steps; resumed run bit-exact "
              f"({len(sa)} tensors)")
        # The transformer stage: tokenizers, frozen encoders and an untrained VAE are enough to
        # check that its loss falls and that resuming (MoE routing included) is exact.
        stage_encoders(a)
        finish_vae(a, new_vae(), seed=0)
        shutil.copytree(a / "encoders", b / "encoders")
        shutil.copytree(a / "vae" / "model", b / "vae" / "model")
        losses = stage_full(a, steps=30, seed=0, batch=4, every=5)
        STOP_AFTER = 15
        stage_full(b, steps=30, seed=0, batch=4, every=5)
        STOP_AFTER = None
        stage_full(b, steps=30, seed=0, batch=4, every=5)
        sa = torch.load(a / "full" / "checkpoint.pt", weights_only=False)["model"]
        sb = torch.load(b / "full" / "checkpoint.pt", weights_only=False)["model"]
        diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
        assert losses[-1] < losses[0], f"transformer loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}"
        assert not diff, f"resumed transformer run differs in {len(diff)} tensors, first {diff[0]}"
        print(f"selfcheck: transformer loss {losses[0]:.4f} -> {losses[-1]:.4f} over 30 steps; "
              f"resumed run bit-exact ({len(sa)} tensors)")


def stage_vae_small(run: Path, steps: int) -> list[float]:
    vae = new_vae()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)

    def fetch(step, _text):
        return scene_batch(0, "vae", step, 4)[1]

    def loss_fn(_step, images):
        recon = vae(images, sample_posterior=False).sample
        return (foreground_weight(images) * (recon - images) ** 2).mean()

    return train_loop("vae-selfcheck", run / "vae", vae, opt, steps, loss_fn, batches(run, fetch), every=5)


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
                                          "selfcheck"])
    parser.add_argument("--run", type=Path, default=Path("runs/shapes"))
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("assets/models"))
    parser.add_argument("--stages", default="full,dev,fast")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes making batches ahead (0: the training process itself)")
    parser.add_argument("--batch", type=int, default=0, help="batch size (0: the stage's default)")
    parser.add_argument("--scores", type=Path, help="export: a folder of ShapesEval JSON lines")
    parser.add_argument("--init", type=Path, help="editor: start from this editor's weights, not Full's")
    parser.add_argument("--plain-every", type=int, default=4,
                        help="editor: every Nth batch is plain text-to-image")
    parser.add_argument("--stop-after", type=int,
                        help="stop at the first checkpoint (every 100 steps) at or after this step, to "
                             "resume later with other flags")
    parser.add_argument("--object-weight", type=float, default=0.0,
                        help="editor: extra loss weight on object pixels of source or target")
    parser.add_argument("--kinds", type=parse_kinds,
                        help="editor: relative weights of the edit kinds, e.g. recolour=4,remove=3 "
                             "(unnamed kinds weigh 1; default: all equal)")
    args = parser.parse_args()
    global DEV, WORKERS, BATCHED_TEXT, STOP_AFTER
    DEV, WORKERS = torch.device(args.device), args.workers
    STOP_AFTER = args.stop_after
    BATCHED_TEXT = DEV.type == "cuda"
    torch.set_num_threads(args.threads)
    if DEV.type == "cuda":
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
        stage_dev(args.run, args.steps or 400, args.seed, **batch)
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
    else:
        selfcheck()


if __name__ == "__main__":
    main()
