"""Shapes Hi-DiT trainer: `python train.py STAGE --run DIR [...]`. Stages in order: encoder
(the frozen REPA target), vae, cache, stage1, stage2; then eval, export. README has the exact
commands. Every stage resumes from its newest checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import runtime  # noqa: I001  (one thread, deterministic kernels, before torch is used)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=["encoder", "vae", "cache", "stage1", "stage2", "eval",
                                     "baselines", "export", "selfcheck"])
    p.add_argument("--run", type=Path, help="folder of this run's stages (not committed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--stop-after", type=int, help="stop after this step, as an interruption")
    p.add_argument("--images", type=int, default=20480, help="cache: scenes in the data set")
    p.add_argument("--exp", default="stage2", help="eval/export: the experiment folder in --run")
    p.add_argument("--name", default="stage2", help="stage2: its experiment folder in --run")
    p.add_argument("--pix-lr-scale", type=float, help="stage2: the pixel branch's lr multiple")
    p.add_argument("--per-class", type=int, default=16, help="eval: samples per class")
    p.add_argument("--mode", choices=["sde", "ode"], default="sde")
    p.add_argument("--num-steps", type=int, default=50)
    p.add_argument("--cfg-scale", type=float, default=1.0)
    p.add_argument("--guidance-low", type=float, default=0.0)
    p.add_argument("--guidance-high", type=float, default=1.0)
    p.add_argument("--tau", type=float, help="eval: the hand-off time (default: the model's)")
    p.add_argument("--weights", choices=["ema", "model"], default="ema",
                   help="eval, export: the checkpoint's EMA (REPA-E samples with it) or raw weights")
    p.add_argument("--out", type=Path, help="export: the bundle folder")
    p.add_argument("--vae-encoder", action="store_true", help="export: keep the VAE encoder")
    args = p.parse_args()
    runtime.STOP_AFTER = args.stop_after
    opt = {k: v for k, v in (("steps", args.steps), ("batch", args.batch), ("lr", args.lr)) if v is not None}
    if args.stage == "selfcheck":
        import selfcheck
        selfcheck.main()
        return
    if args.run is None:
        p.error("--run is required")
    args.run.mkdir(parents=True, exist_ok=True)
    if args.stage == "encoder":
        import repa_encoder
        repa_encoder.stage_encoder(args.run, opt.pop("steps", 2000), args.seed, **opt)
    elif args.stage == "vae":
        import vae
        vae.stage_vae(args.run, opt.pop("steps", 1200), args.seed, **opt)
    elif args.stage == "cache":
        import cache
        cache.build(args.run, args.images, args.seed)
    elif args.stage == "stage1":
        import stage1
        stage1.stage1(args.run, args.seed, **opt)
    elif args.stage == "stage2":
        import stage2
        if args.pix_lr_scale is not None:
            opt["pix_lr_scale"] = args.pix_lr_scale
        stage2.stage2(args.run, args.seed, name=args.name, **opt)
    elif args.stage == "eval":
        import evaluate
        evaluate.evaluate(args.run / args.exp, args.run, args.per_class, args.seed, weights=args.weights,
                                   mode=args.mode, num_steps=args.num_steps,
                                   cfg_scale=args.cfg_scale, guidance_low=args.guidance_low,
                                   guidance_high=args.guidance_high, tau=args.tau)
    elif args.stage == "baselines":
        import baselines
        baselines.baselines(args.run, args.per_class, args.seed)
    elif args.stage == "export":
        import export
        if args.out is None:
            p.error("export needs --out")
        export.export(args.run, args.exp, args.out, args.vae_encoder, args.weights)


if __name__ == "__main__":
    main()
