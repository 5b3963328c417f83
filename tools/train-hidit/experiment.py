"""The experiment's args.json: REPA-E's `train_ldm_only.py` arguments (@3ad8046, every key
its argparse defines, so REPA-E's own readers find them) with our values, plus `arch` and
`vae_arch` (the Rust side builds a model of our size from them) and, for stage 2,
`pixel_branch`. A folder without `pixel_branch` is latent-only."""

from __future__ import annotations

import class_world as cw
from hidit_model import ARCH, CFG_PROB, ENCODER_DEPTH
from repa_encoder import Z_DIM
from vae import VAE_ARCH, VAE_NAME

PROJ_COEFF = 0.5  # REPA-E's default --proj-coeff
# Our short runs move the EMA faster than REPA-E's 0.9999 (time constant 10k steps): 0.995
# averages over the last ~200 steps. Run r1 used 0.999, and its stage-2 EMA still held 8 % of
# the zero-initialised pixel head after 2500 steps.
EMA_DECAY = 0.995


def experiment_args(exp_name: str, seed: int, batch: int, lr: float, steps: int, **extra) -> dict:
    args = {
        "output_dir": "exps", "exp_name": exp_name, "logging_dir": "logs", "report_to": "none",
        "sampling_steps": 10000, "resume_step": 0, "continue_train_exp_dir": None,
        "wandb_history_path": None,
        # Not one of REPA-E's SiT_models names: `arch` below says what it is.
        "model": "SiT-Shapes/1", "num_classes": cw.NUM_CLASSES, "encoder_depth": ENCODER_DEPTH,
        "qk_norm": False, "fused_attn": True, "compile": False,
        "data_dir": "cache.pt", "resolution": cw.SIZE, "batch_size": batch,
        "allow_tf32": False, "mixed_precision": "no",
        "epochs": 1, "max_train_steps": steps, "checkpointing_steps": 200,
        "gradient_accumulation_steps": 1, "learning_rate": lr, "adam_beta1": 0.9,
        "adam_beta2": 0.999, "adam_weight_decay": 0.0, "adam_epsilon": 1e-8, "max_grad_norm": 1.0,
        "seed": seed, "num_workers": 0,
        "path_type": "linear", "prediction": "v", "cfg_prob": CFG_PROB,
        # REPA-E's "<type>-<architecture>-<config>" naming: our frozen CNN, 64-dim tokens.
        "enc_type": f"shapes-cnn-{Z_DIM}", "proj_coeff": PROJ_COEFF, "weighting": "uniform",
        # Not f16d32 or f8d4: `vae_arch` says what it is.
        "vae": f"f{VAE_ARCH['downsample_factor']}d{VAE_ARCH['embed_dim']}",
        "vae_latents_name": VAE_NAME, "vae_ckpt": f"{VAE_NAME}.pt",
        "arch": ARCH, "vae_arch": VAE_ARCH, "ema_decay": EMA_DECAY,
    }
    args.update(extra)
    return args
