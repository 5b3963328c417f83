"""Shapes Hi-DiT: REPA-E's SiT (models/sit.py @3ad8046) used as it is for stage 1, and a
subclass adding our pixel branch (reference design, section 4.3) for stage 2.

Pixel-branch forward, written out for the Rust side to mirror (N batch, T = 16 tokens on the
4 x 4 latent grid in row-major order, D hidden, f the VAE's downsample factor = 16, H = W = 64):

    z_t [N, C, 4, 4] normalised noisy latent, p_t [N, 3, H, W] noisy pixels in [-1, 1] scale,
    t [N] in [0, 1] (t = 1 noise), y [N] labels (null = num_classes)
    g     = 1[t < tau]                                     per sample, tau = pixel_branch.tau
    h     = x_embedder(z_t) + pos_embed + g * pix_embedder(p_t)             [N, T, D]
            pix_embedder.proj: Conv2d(3 -> D, kernel = stride = f), output flattened row-major
    c     = t_embedder(t) + y_embedder(y)                                   [N, D]
    h     = blocks(h, c)                                  (SiT's blocks, unchanged)
    v_z   = unpatchify(final_layer(h, c))                 the latent velocity, [N, C, 4, 4]
    pix_head(h, c):
      shift, scale = pix_head.adaLN_modulation.1(SiLU(c)).chunk(2)         [N, D] each
      u = pix_head.proj_in(LayerNorm(h) * (1 + scale) + shift)             [N, T, C0]
          (LayerNorm without affine, eps 1e-6)
      u = u.transpose(1, 2).reshape(N, C0, 4, 4)
      for each pix_head.ups.i (Conv2d 3x3, pad 1, C_i -> 4 C_{i+1}):
          u = SiLU(PixelShuffle(2)(conv(u)))                               [N, C_{i+1}, 2s, 2s]
      x_hat = PixelShuffle(r)(pix_head.out(u))            Conv2d 3x3, pad 1, C_last -> 3 r r
                                                          x_hat [N, 3, H, W], clean pixels
    v_p   = (p_t - x_hat) / t                             the pixel velocity (x-prediction)
    PixelShuffle(r) is torch's: [N, C r^2, h, w] -> [N, C, h r, w r] with
      out[n, c, y r + i, x r + j] = in[n, c r^2 + i r + j, y, x]

With g = 0 the latent output is exactly stage 1's whatever p_t is (the pixel tokens are
multiplied by zero), and pix_embedder and pix_head.out start at zero, so stage 2 starts
exactly at the stage-1 function."""

from __future__ import annotations

import runtime  # noqa: I001
import class_world as cw
import torch
import torch.nn as nn
import torch.nn.functional as F

# Latent-only SiT at our scale (an `arch` object in args.json): REPA taps after block 2 of 4.
ARCH = dict(depth=4, hidden_size=128, decoder_hidden_size=128, num_heads=4, patch_size=1,
            mlp_ratio=4.0, input_size=4, in_channels=8, z_dims=[64], projector_dim=256)
ENCODER_DEPTH = 2
CFG_PROB = 0.1
PIXEL_BRANCH = dict(tau=0.3, patch_size=16, head_channels=[64, 32, 16], out_shuffle=4,
                    prediction="x", image_channels=3)


def sit_kwargs(arch: dict, encoder_depth: int = ENCODER_DEPTH, cfg_prob: float = CFG_PROB) -> dict:
    return dict(path_type="linear", input_size=arch["input_size"], patch_size=arch["patch_size"],
                in_channels=arch["in_channels"], hidden_size=arch["hidden_size"],
                decoder_hidden_size=arch["decoder_hidden_size"], encoder_depth=encoder_depth,
                depth=arch["depth"], num_heads=arch["num_heads"], mlp_ratio=arch["mlp_ratio"],
                class_dropout_prob=cfg_prob, num_classes=cw.NUM_CLASSES, z_dims=arch["z_dims"],
                projector_dim=arch["projector_dim"], fused_attn=True, qk_norm=False)


def build_sit(arch: dict = ARCH, **kw) -> nn.Module:
    return runtime.repae("models/sit").SiT(**sit_kwargs(arch, **kw))


class PixelEmbedder(nn.Module):
    def __init__(self, hidden: int, patch: int, channels: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(channels, hidden, patch, stride=patch)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.proj(p).flatten(2).transpose(1, 2)  # [N, 3, H, W] -> [N, T, D]


class PixelHead(nn.Module):
    def __init__(self, hidden: int, channels: list[int], shuffle: int, out_channels: int = 3):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.proj_in = nn.Linear(hidden, channels[0])
        self.ups = nn.ModuleList(nn.Conv2d(a, 4 * b, 3, padding=1) for a, b in zip(channels, channels[1:]))
        self.out = nn.Conv2d(channels[-1], out_channels * shuffle * shuffle, 3, padding=1)
        self.shuffle = shuffle
        nn.init.xavier_uniform_(self.proj_in.weight)
        nn.init.zeros_(self.proj_in.bias)
        for layer in (self.adaLN_modulation[-1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        u = self.proj_in(self.norm(h) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1))
        n, t, ch = u.shape
        side = int(round(t ** 0.5))
        u = u.transpose(1, 2).reshape(n, ch, side, side)
        for conv in self.ups:
            u = F.silu(F.pixel_shuffle(conv(u), 2))
        return F.pixel_shuffle(self.out(u), self.shuffle)  # [N, 3, H, W]


def build_hidit(arch: dict = ARCH, pixel: dict = PIXEL_BRANCH, **kw) -> nn.Module:
    sit = runtime.repae("models/sit")

    class HiDiT(sit.SiT):
        def __init__(self):
            super().__init__(**sit_kwargs(arch, **kw))
            assert 2 ** len(pixel["head_channels"][1:]) * pixel["out_shuffle"] == pixel["patch_size"]
            hidden = arch["hidden_size"]
            self.tau = pixel["tau"]
            self.pix_embedder = PixelEmbedder(hidden, pixel["patch_size"], pixel["image_channels"])
            self.pix_head = PixelHead(hidden, pixel["head_channels"], pixel["out_shuffle"],
                                      pixel["image_channels"])

        def hybrid(self, z_t, p_t, t, y, tau: float | None = None):
            """(v_z, x_hat, REPA projections): the forward above. y is used as given (label
            dropout is the caller's); t is [N]."""
            gate = (t < (self.tau if tau is None else tau)).to(z_t.dtype)[:, None, None]
            h = self.x_embedder(z_t) + self.pos_embed + gate * self.pix_embedder(p_t)
            n, tokens, d = h.shape
            c = self.t_embedder(t) + self.y_embedder(y, False)
            zs_tilde = None
            for i, block in enumerate(self.blocks):
                h = block(h, c)
                if i + 1 == self.encoder_depth:
                    zs_tilde = [proj(h.reshape(-1, d)).reshape(n, tokens, -1) for proj in self.projectors]
            v_z = self.unpatchify(self.final_layer(h, c))
            return v_z, self.pix_head(h, c), zs_tilde

        @torch.no_grad()
        def inference_hybrid(self, z_t, p_t, t, y, tau: float | None = None):
            v_z, x_hat, _ = self.hybrid(z_t, p_t, t, y, tau)
            return v_z, x_hat

    return HiDiT()


def build_from_args(args: dict) -> nn.Module:
    """The model an experiment's args.json describes: with `pixel_branch`, Hi-DiT; else SiT."""
    kw = dict(encoder_depth=args["encoder_depth"], cfg_prob=args["cfg_prob"])
    if args.get("pixel_branch"):
        return build_hidit(args["arch"], args["pixel_branch"], **kw)
    return build_sit(args["arch"], **kw)


def repa_loss(zs, zs_tilde) -> torch.Tensor:
    """REPA-E's projection loss: minus the mean cosine similarity over tokens, over the batch."""
    total = 0.0
    for z, z_tilde in zip(zs, zs_tilde):
        cos = (F.normalize(z, dim=-1) * F.normalize(z_tilde, dim=-1)).sum(-1)  # [N, T]
        total = total - cos.mean()
    return total / len(zs)
