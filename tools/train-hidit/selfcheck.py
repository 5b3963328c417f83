"""`train.py selfcheck` (a few minutes on one thread): in a scratch run with tiny stages,
  * the detector port reads every class back from renders at the extremes of the jitter;
  * stage 1 and stage 2 stopped half-way and resumed equal uninterrupted runs bit for bit;
  * stage 2 starts at the stage-1 function: the latent velocity of the freshly built Hi-DiT
    equals SiT's exactly, gated or not, and x_hat is zero;
  * `sampling.hybrid` with tau = 0 reproduces REPA-E's SDE and ODE samplers bit for bit,
    with guidance inside an interval."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import runtime  # noqa: I001
import cache
import class_world as cw
import sampling
import shapes_read
import stage1
import stage2
import torch
from hidit_model import build_hidit
from loop import latest_checkpoint, load_state
from repa_encoder import stage_encoder
from runtime import log
from vae import load_stats, load_vae, stage_vae


def check_detector() -> None:
    for k, (shape, colour) in enumerate(cw.CLASSES):
        for r in cw.RADII:
            for dx, dy in ((-1, -1), (1, 1), (0, 0), (-1, 1)):
                obj = cw.world.Obj(shape, colour, 32.0 + dx * cw.OFFSET, 32.0 + dy * cw.OFFSET, float(r))
                img = cw.world.render(cw.world.Scene(cw.BACKGROUND, [obj]), cw.SIZE)
                c = shapes_read.check(img, shape, colour)
                assert c["class"] and c["count"], (cw.class_name(k), r, dx, dy, shapes_read.read(img))
    log("selfcheck", f"detector reads all {cw.NUM_CLASSES} classes back at the jitter's extremes")


def check_resume(run: Path, name: str, fn, steps: int) -> None:
    whole, part = run / f"{name}-whole", run / f"{name}-part"
    for d in (whole, part):
        for link in ("vae", "encoder", "cache.pt", "stage1"):
            if (run / link).exists():
                (d / link).parent.mkdir(parents=True, exist_ok=True)
                (d / link).symlink_to(run / link)
    fn(whole, 0, steps=steps, batch=8)
    runtime.STOP_AFTER = steps // 2
    fn(part, 0, steps=steps, batch=8)
    runtime.STOP_AFTER = None
    fn(part, 0, steps=steps, batch=8)
    a = load_state(latest_checkpoint(whole / name))
    b = load_state(latest_checkpoint(part / name))
    for key in ("model", "ema"):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), f"{name}: {key}.{k} differs after resuming"
    log("selfcheck", f"{name}: resumed at {steps // 2} of {steps}, every tensor equals the "
                     f"uninterrupted run's ({len(a['model'])} tensors)")


@torch.no_grad()
def check_start_and_samplers(run: Path) -> None:
    sit = load_state(latest_checkpoint(run / "stage1"))["ema"]
    model = build_hidit()
    model.load_state_dict(sit, strict=False)
    model.eval()
    ref = stage1.new_model(run)
    ref.load_state_dict(sit)
    ref.eval()
    gen = torch.Generator().manual_seed(3)
    z, p = torch.randn(6, 8, 4, 4, generator=gen), torch.randn(6, 3, 64, 64, generator=gen)
    t, y = torch.tensor([0.9, 0.5, 0.31, 0.29, 0.1, 0.04]), torch.tensor([0, 3, 7, 16, 15, 2])
    v, x_hat = model.inference_hybrid(z, p, t, y)
    assert torch.equal(v, ref.inference(z, t, y)) and not x_hat.any()
    log("selfcheck", "fresh Hi-DiT = stage-1 SiT exactly (gated and not), x_hat = 0")
    samplers = runtime.repae("samplers")
    vae, stats = load_vae(run), load_stats(run)
    labels = torch.tensor([0, 5, 10, 15])
    for mode, run_ref in (("sde", samplers.euler_maruyama_sampler), ("ode", samplers.euler_sampler)):
        for cfg, low, high in ((1.0, 0.0, 1.0), (2.5, 0.2, 0.7)):
            kw = dict(num_steps=12, cfg_scale=cfg, guidance_low=low, guidance_high=high)
            _, ours = sampling.hybrid(model, vae, stats, labels, 7, mode=mode, tau=0.0, **kw)
            z0 = sampling.initial_latents(model, len(labels), 7)
            theirs = run_ref(sampling.NullLabel(model), z0, labels, heun=False, path_type="linear", **kw)
            assert torch.equal(ours, theirs), f"{mode} cfg {cfg}: {(ours - theirs).abs().max()}"
    log("selfcheck", "hybrid sampler at tau = 0 = REPA-E's SDE and ODE samplers, bit for bit")


def main() -> None:
    check_detector()
    run = Path(tempfile.mkdtemp(prefix="hidit-selfcheck-"))
    try:
        stage_encoder(run, 20, 0, batch=16)
        stage_vae(run, 10, 0, batch=4, eval_images=32)
        cache.build(run, 256, 0)
        check_resume(run, "stage1", stage1.stage1, 12)
        (run / "stage1").symlink_to(run / "stage1-whole" / "stage1")
        check_resume(run, "stage2", stage2.stage2, 12)
        check_start_and_samplers(run)
    finally:
        shutil.rmtree(run)
    log("selfcheck", "passed")


if __name__ == "__main__":
    main()
