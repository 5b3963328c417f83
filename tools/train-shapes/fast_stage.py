"""Fast: distribution matching distillation from Dev, with a regression term and a latent
critic."""

from __future__ import annotations

from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import torch
import torch.nn.functional as F
from recipe import SHIFT, SIZE
from step_batches import batches, fetch_scenes, randn, torch_gen
from text_encoders import stack_cond
from training_loop import train_loop
from transformer_training import (AuxLoss, load_transformer, patchify_target, predict, sample_sigmas,
                                  unpatchify)
from vae_stage import load_vae, to_latents


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
                          load_transformer(run / "dev" / "model", train=True), LatentCritic().to(runtime.DEV))
    trainer.critic(torch.zeros(1, 16, SIZE // 8, SIZE // 8, device=runtime.DEV))  # materialise the lazy layer
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
        sigma = fast_sigmas[torch.randint(0, 16, (batch,), generator=gen)].to(runtime.DEV)
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
