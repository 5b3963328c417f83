"""What the transformer stages share: building and loading the transformer, its raw output and
training-mode layout, the noise levels, the MoE load-balancing loss, and saving a stage's model."""

from __future__ import annotations

import json
from pathlib import Path

import runtime  # noqa: I001  (the environment before numpy and torch)
import torch
from recipe import DIT, SHIFT
from runtime import log


def new_transformer():
    from diffusers import HiDreamImageTransformer2DModel
    # Imported here, not at the top, as it always was: the fixtures' modules apply
    # determinism.py when first imported (one torch thread, strict deterministic algorithms),
    # so `full` trains with those settings whatever --threads says (README.md).
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
    return (shift * u / (1 + (shift - 1) * u)).to(runtime.DEV)


def predict(model, x_t, sigma, cond):
    """The transformer's raw output, in the pipeline's convention: the pipeline negates it to
    get the flow velocity noise - x0, and feeds timesteps sigma * 1000."""
    t5, llama, pooled = cond
    return model(x_t, timesteps=sigma * 1000, encoder_hidden_states_t5=t5,
                 encoder_hidden_states_llama3=llama, pooled_embeds=pooled, return_dict=False)[0]


def load_transformer(path: Path, train: bool):
    from diffusers import HiDreamImageTransformer2DModel
    model = HiDreamImageTransformer2DModel.from_pretrained(path).to(runtime.DEV)
    model.train(train)
    return model


def unpatchify(out: torch.Tensor, p: int = 2) -> torch.Tensor:
    """The training-mode output [B, C, S, p*p] back to [B, C, H, W] (square latents)."""
    b, c, s, _ = out.shape
    side = int(round(s ** 0.5))
    return out.reshape(b, c, side, side, p, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, side * p, side * p)


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
