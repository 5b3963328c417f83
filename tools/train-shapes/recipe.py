"""The toy-scale recipe's shared constants: image size, caption length, guidance, shift, caption
dropout, and the VAE and transformer configurations."""

SIZE = 64
# Captions are at most ~20 tokens; text tokens dominate the transformer's cost at this width.
MAX_SEQUENCE_LENGTH = 24
# Full's guidance at sampling time (ShapesEval: colour is best near 2 at this scale), and the
# guided prediction Dev is distilled from.
GUIDANCE = 2.0
# Flow shift used for Full's sampling and for its training noise levels.
SHIFT = 3.0
CAPTION_DROPOUT = 0.1

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
