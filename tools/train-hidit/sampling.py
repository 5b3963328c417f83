"""Sampling. Stage 1 (latent-only) runs REPA-E's own samplers (samplers.py @3ad8046) through a
shim for the null label. Stage 2 runs `hybrid`, REPA-E's grid and update formulas with our
hand-off to the pixel stream (reference design, section 4.3):

  * t_cur >= tau: latent-only steps, the same operations in the same order as REPA-E's
    (so with tau = 0 the result is REPA-E's sampler's, bit for bit: selfcheck).
  * at the first t_cur < tau, before that step's model call: z0_hat = z_prev - t_prev v_prev
    (v_prev: the previous step's guided velocity), x_tilde = clamp(VAE.decode(z0_hat / scale
    + bias), -1, 1), p = (1 - t_cur) x_tilde + t_cur eps.
  * t_cur < tau: one gated call gives v_z and x_hat, v_p = (p - x_hat) / t_cur; guidance and
    the update (SDE: drift v - t score, noise sqrt(2 t |dt|); last step from 0.04 to 0 without
    noise; ODE: Euler) apply to both streams alike. The image is p at t = 0.

Random draws (torch's global generator, seeded once): the initial latents [N, C, h, w] (f32);
then per step: the latent step noise (SDE, not on the last step; randn_like of the f64
state, as REPA-E), at the hand-off step the pixel start noise [N, 3, H, W] (f64), then the
pixel step noise (SDE, gated steps but the last)."""

from __future__ import annotations

import runtime  # noqa: I001
import torch

NULL = 1000  # REPA-E's samplers hard-code ImageNet's null label


class NullLabel:
    """The model as REPA-E's samplers call it, label 1000 mapped to this model's null class."""

    def __init__(self, model):
        self.model = model

    def label(self, y: torch.Tensor) -> torch.Tensor:
        return torch.where(y == NULL, self.model.num_classes, y)

    def inference(self, x, t, y):
        return self.model.inference(x, t, self.label(y))

    def inference_hybrid(self, z, p, t, y, tau):
        return self.model.inference_hybrid(z, p, t, self.label(y), tau)


def initial_latents(model, n: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    size = model.x_embedder.img_size[0]
    return torch.randn(n, model.in_channels, size, size)


def latent(model, labels, seed: int, mode="sde", num_steps=50, cfg_scale=1.0,
           guidance_low=0.0, guidance_high=1.0) -> torch.Tensor:
    """REPA-E's sampler: the final normalised latents, f32 [N, C, h, w]."""
    samplers = runtime.repae("samplers")
    run = samplers.euler_maruyama_sampler if mode == "sde" else samplers.euler_sampler
    z = initial_latents(model, len(labels), seed)
    return run(NullLabel(model), z, labels, num_steps=num_steps, heun=False, cfg_scale=cfg_scale,
               guidance_low=guidance_low, guidance_high=guidance_high, path_type="linear").float()


def decode(vae, z: torch.Tensor, stats: dict) -> torch.Tensor:
    """Normalised latents -> image in about [-1, 1], as REPA-E's generate.py."""
    return vae.decode(z.float() / stats["latents_scale"] + stats["latents_bias"]).sample


@torch.no_grad()
def hybrid(model, vae, stats, labels, seed: int, mode="sde", num_steps=50, cfg_scale=1.0,
           guidance_low=0.0, guidance_high=1.0, tau: float | None = None):
    """(image f64 [N, 3, H, W] from the pixel stream, or the VAE decode of the final latents
    when no step was gated; final latents f64 [N, C, h, w])."""
    samplers = runtime.repae("samplers")
    tau = model.tau if tau is None else tau
    shim = NullLabel(model)
    x = initial_latents(model, len(labels), seed).to(torch.float64)
    if mode == "sde":
        grid = torch.cat([torch.linspace(1.0, 0.04, num_steps, dtype=torch.float64),
                          torch.tensor([0.0], dtype=torch.float64)])
    else:
        grid = torch.linspace(1, 0, num_steps + 1, dtype=torch.float64)
    y_null = torch.full_like(labels, NULL)
    pixel, prev = None, None
    for i, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:])):
        noisy = mode == "sde" and i < num_steps - 1
        dt = t_next - t_cur
        guided = cfg_scale > 1.0 and guidance_low <= t_cur <= guidance_high
        x_in = torch.cat([x, x]) if guided else x
        y_in = torch.cat([labels, y_null]) if guided else labels
        t_in = torch.ones(x_in.size(0), dtype=torch.float64) * t_cur
        diffusion = samplers.compute_diffusion(t_cur)
        eps = torch.randn_like(x) if noisy else None
        # In f32, as the model's gate compares its f32 times (hidit_model.hybrid): in f64 a
        # grid time just under tau that rounds up to f32 tau would hand off ungated.
        gated = bool(t_cur.float() < tau)
        if gated and pixel is None:
            if prev is None:
                raise ValueError(f"tau {tau} gates the first step: nothing to hand off from")
            z0 = prev[0] - prev[1] * prev[2]
            start = decode(vae, z0, stats).clamp(-1, 1).to(torch.float64)
            pixel = (1 - t_cur) * start + t_cur * torch.randn_like(start)
        eps_p = torch.randn_like(pixel) if gated and noisy else None

        def combine(d):
            if not guided:
                return d
            cond, uncond = d.chunk(2)
            return uncond + cfg_scale * (cond - uncond)

        def drift(v, state):
            if mode == "ode":
                return v
            return v - 0.5 * diffusion * samplers.get_score_from_velocity(v, state, t_in, path_type="linear")

        if gated:
            p_in = torch.cat([pixel, pixel]) if guided else pixel
            v, x_hat = shim.inference_hybrid(x_in.float(), p_in.float(), t_in.float(), y_in, tau)
            v_p = (p_in - x_hat.to(torch.float64)) / t_cur
            d_p = combine(drift(v_p, p_in))
        else:
            v = shim.inference(x_in.float(), t_in.float(), y_in)
        v = v.to(torch.float64)
        d = combine(drift(v, x_in))
        prev = (x, t_cur, combine(v))
        if noisy:
            x = x + d * dt + torch.sqrt(diffusion) * (eps * torch.sqrt(torch.abs(dt)))
            if gated:
                pixel = pixel + d_p * dt + torch.sqrt(diffusion) * (eps_p * torch.sqrt(torch.abs(dt)))
        else:
            x = x + dt * d
            if gated:
                pixel = pixel + dt * d_p
    image = pixel if pixel is not None else decode(vae, x, stats).to(torch.float64)
    return image, x
