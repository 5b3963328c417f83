//! The editing pipeline's guidance formulas
//! (https://github.com/HiDream-ai/HiDream-E1/blob/f6f0631e9b621fa113f74d3b2e2cf2bc5314ef10/pipeline_hidream_image_editing.py#L1140-L1160).
//! Inputs are velocities already cropped to the target half and negated, rows stacked on dim 0.

use candle_core::{Result, Tensor};

/// Rows (no image, positive), (image, negative), (image, positive): instruction guidance on
/// the image rows, its result scaled down wherever its per-pixel channel norm exceeds the
/// conditional one, then image guidance from the image-free row.
pub fn clip_cfg_norm(v: &Tensor, guidance: f64, image_guidance: f64) -> Result<Tensor> {
    let (uncond, image_cond, full_cond) = rows3(v)?;
    let pred_text = (&image_cond + ((&full_cond - &image_cond)? * guidance)?)?;
    let norm_full = channel_norm(&full_cond)?;
    let norm_pred = channel_norm(&pred_text)?;
    let scale = (norm_full / (norm_pred + 1e-8)?)?.clamp(0.0, 1.0)?;
    let pred_text = pred_text.broadcast_mul(&scale)?;
    &uncond + ((pred_text - &uncond)? * image_guidance)?
}

/// Rows (no image, negative), (image, negative), (image, positive): InstructPix2Pix.
pub(crate) fn instruct_pix2pix(v: &Tensor, guidance: f64, image_guidance: f64) -> Result<Tensor> {
    let (uncond, image_cond, full_cond) = rows3(v)?;
    let image_term = ((&image_cond - &uncond)? * image_guidance)?;
    let text_term = ((&full_cond - &image_cond)? * guidance)?;
    (&uncond + image_term)? + text_term
}

/// The refine stage's rows (negative, positive): classic classifier-free guidance.
pub(crate) fn two_way(v: &Tensor, guidance: f64) -> Result<Tensor> {
    let (uncond, cond) = (v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?);
    &uncond + ((cond - &uncond)? * guidance)?
}

fn rows3(v: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?, v.narrow(0, 2, 1)?))
}

/// The L2 norm over channels at each latent pixel, keeping the channel axis: [B, 1, h, w].
fn channel_norm(x: &Tensor) -> Result<Tensor> {
    x.sqr()?.sum_keepdim(1)?.sqrt()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn formulas_on_numbers() -> Result<()> {
        let d = Device::Cpu;
        // One latent pixel, two channels, three rows.
        let v = Tensor::new(
            &[
                [[[0.0f32]], [[0.0]]],
                [[[1.0]], [[0.0]]],
                [[[2.0]], [[0.0]]],
            ],
            &d,
        )?;
        let p2p = instruct_pix2pix(&v, 3.0, 2.0)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(p2p, vec![0.0 + 2.0 * 1.0 + 3.0 * 1.0, 0.0]);
        // pred_text = 1 + 3·1 = 4, norm 4 > ‖full‖ = 2 → scaled to 2; out = 0 + 2·(2 − 0).
        let norm = clip_cfg_norm(&v, 3.0, 2.0)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert!((norm[0] - 4.0).abs() < 1e-6 && norm[1] == 0.0, "{norm:?}");
        Ok(())
    }
}
