//! Previews of a job's latents without the VAE: the 16 FLUX latent channels mapped linearly to
//! RGB and upsampled. [`render_cpu`] is the reference; [`GpuPreview`] runs the same
//! computation as a wgpu compute pass (`shaders/latent_preview.wgsl`) and must equal it to the
//! bit. See the shader for the fixed-point scheme that makes that possible.

mod gpu;
mod paint;

use image::RgbaImage;

pub use gpu::GpuPreview;

pub use gpu::PreviewGpuError;
pub(crate) use paint::PreviewCallback;
pub use paint::{LatentFrame, PreviewRenderer};

/// Latent channels of the FLUX autoencoder.
pub(crate) const CHANNELS: usize = 16;
/// Largest latent side and output side the fixed-point scheme supports without overflow.
pub(crate) const MAX_LATENT_SIDE: u32 = 1024;
pub(crate) const MAX_OUTPUT_SIDE: u32 = 8192;

/// ComfyUI's FLUX.1 latent→RGB factors (comfy/latent_formats.py, class Flux,
/// `latent_rgb_factors`), one row per latent channel: its contribution to R, G, B. They apply to
/// latents in the transformer's space, which is what the pipelines' x0 estimates are in.
pub(crate) const FLUX_RGB_FACTORS: [[f64; 3]; CHANNELS] = [
    [-0.0346, 0.0244, 0.0681],
    [0.0034, 0.0210, 0.0687],
    [0.0275, -0.0668, -0.0433],
    [-0.0174, 0.0160, 0.0617],
    [0.0859, 0.0721, 0.0329],
    [0.0004, 0.0383, 0.0115],
    [0.0405, 0.0861, 0.0915],
    [-0.0236, -0.0185, -0.0259],
    [-0.0245, 0.0250, 0.1180],
    [0.1008, 0.0755, -0.0421],
    [-0.0515, 0.0201, 0.0011],
    [0.0428, -0.0012, -0.0036],
    [0.0817, 0.0765, 0.0749],
    [-0.1264, -0.0522, -0.1103],
    [-0.0280, -0.0881, -0.0499],
    [-0.1262, -0.0982, -0.0778],
];
/// The same source's `latent_rgb_factors_bias`.
pub(crate) const FLUX_RGB_BIAS: [f64; 3] = [-0.0329, -0.0718, -0.0851];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreviewError {
    #[error("a preview needs {CHANNELS}×{h}×{w} = {expected} latent values, got {got}")]
    WrongLength {
        h: u32,
        w: u32,
        expected: usize,
        got: usize,
    },
    #[error(
        "cannot preview a {w}×{h} latent at {out_w}×{out_h}: sides must be 1 to \
         {MAX_LATENT_SIDE} (latent) and 1 to {MAX_OUTPUT_SIDE} (output)"
    )]
    BadSize {
        w: u32,
        h: u32,
        out_w: u32,
        out_h: u32,
    },
}

impl LatentFrame {
    /// Reads an x0 estimate [1, 16, h, w] (any float dtype, any device) for drawing.
    pub fn from_tensor(x0: &candle_core::Tensor, version: u64) -> candle_core::Result<Self> {
        let (_, c, h, w) = x0.dims4()?;
        if c != CHANNELS {
            candle_core::bail!("a preview latent has {CHANNELS} channels, this one {c}");
        }
        let latent: Vec<f32> = x0
            .to_device(&candle_core::Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?
            .into_iter()
            .map(|v: f32| if v.is_finite() { v } else { 0.0 })
            .collect();
        Ok(Self {
            latent: std::sync::Arc::new(latent),
            size: (w as u32, h as u32),
            version,
        })
    }
}

/// The factors and bias in the shader's fixed point (1/4096 units).
pub(crate) fn quantized_factors() -> ([[i32; 3]; CHANNELS], [i32; 3]) {
    let q = |v: f64| (v * 4096.0).round_ties_even() as i32;
    let mut factors = [[0; 3]; CHANNELS];
    for (row, f) in factors.iter_mut().zip(FLUX_RGB_FACTORS) {
        *row = f.map(q);
    }
    (factors, FLUX_RGB_BIAS.map(q))
}

pub(crate) fn check_sizes(
    latent_len: usize,
    (w, h): (u32, u32),
    (out_w, out_h): (u32, u32),
) -> Result<(), PreviewError> {
    let ok = |n: u32, max: u32| (1..=max).contains(&n);
    if !(ok(w, MAX_LATENT_SIDE)
        && ok(h, MAX_LATENT_SIDE)
        && ok(out_w, MAX_OUTPUT_SIDE)
        && ok(out_h, MAX_OUTPUT_SIDE))
    {
        return Err(PreviewError::BadSize { w, h, out_w, out_h });
    }
    let expected = CHANNELS * w as usize * h as usize;
    if latent_len != expected {
        return Err(PreviewError::WrongLength {
            h,
            w,
            expected,
            got: latent_len,
        });
    }
    Ok(())
}

/// A latent value in 1/256 units, as the shader reads it (non-finite values count as 0).
fn quantize(v: f32) -> i32 {
    if v.is_finite() {
        (v.clamp(-16.0, 16.0) * 256.0).round_ties_even() as i32
    } else {
        0
    }
}

/// Source position on one axis in 1/256 pixel (see `source_position` in the shader).
fn source_position(o: u32, n: u32, out_n: u32) -> i32 {
    let s = (((2 * o + 1) * n * 128) / out_n) as i32 - 128;
    s.clamp(0, (n as i32 - 1) * 256)
}

/// The CPU reference: `latent` is [16, h, w] f32 (channel-major, as a [1, 16, h, w] tensor
/// flattens); returns an `out_w`×`out_h` RGBA image.
pub fn render_cpu(
    latent: &[f32],
    (w, h): (u32, u32),
    (out_w, out_h): (u32, u32),
) -> Result<RgbaImage, PreviewError> {
    check_sizes(latent.len(), (w, h), (out_w, out_h))?;
    let (factors, bias) = quantized_factors();
    let plane = (w * h) as usize;
    // Each latent pixel's colour, in 1/4096 units.
    let mut colours = vec![[0i32; 3]; plane];
    for (p, colour) in colours.iter_mut().enumerate() {
        let mut acc = [0i32; 3];
        for (c, f) in factors.iter().enumerate() {
            let q = quantize(latent[c * plane + p]);
            for k in 0..3 {
                acc[k] += q * f[k];
            }
        }
        for k in 0..3 {
            colour[k] = ((acc[k] >> 8) + bias[k]).clamp(-8192, 8192);
        }
    }
    let at = |x: u32, y: u32| colours[(y * w + x) as usize];
    let mut image = RgbaImage::new(out_w, out_h);
    for oy in 0..out_h {
        let sy = source_position(oy, h, out_h);
        let (y0, fy) = ((sy >> 8) as u32, sy & 255);
        let y1 = (y0 + 1).min(h - 1);
        for ox in 0..out_w {
            let sx = source_position(ox, w, out_w);
            let (x0, fx) = ((sx >> 8) as u32, sx & 255);
            let x1 = (x0 + 1).min(w - 1);
            let (c00, c10, c01, c11) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
            let mut rgba = [0u8, 0, 0, 255];
            for k in 0..3 {
                let top = c00[k] * (256 - fx) + c10[k] * fx;
                let bottom = c01[k] * (256 - fx) + c11[k] * fx;
                let v = top * (256 - fy) + bottom * fy;
                let v12 = ((v + 32768) >> 16).clamp(-4096, 4096);
                rgba[k] = (((v12 + 4096) * 255 + 4096) / 8192) as u8;
            }
            image.put_pixel(ox, oy, image::Rgba(rgba));
        }
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latent_made_of_one_colour_previews_as_that_colour() {
        // A latent that is zero everywhere shows the bias: (−0.0329, −0.0718, −0.0851) mapped
        // from [−1, 1] to [0, 255].
        let image = render_cpu(&vec![0.0; 16 * 6], (3, 2), (24, 16)).unwrap();
        let expected = FLUX_RGB_BIAS.map(|b| (f64::midpoint(b, 1.0) * 255.0).round() as u8);
        for p in image.pixels() {
            assert_eq!(
                [p[0], p[1], p[2], p[3]],
                [expected[0], expected[1], expected[2], 255]
            );
        }
    }

    #[test]
    fn upsampling_interpolates_between_latent_pixels() {
        // Channel 12 pushes all three colours up: a bright left pixel and a dark right one
        // give a ramp from left to right.
        let mut latent = vec![0.0; 16 * 2];
        latent[12 * 2] = 8.0;
        latent[12 * 2 + 1] = -8.0;
        let image = render_cpu(&latent, (2, 1), (16, 1)).unwrap();
        let reds: Vec<u8> = image.pixels().map(|p| p[0]).collect();
        assert!(reds.windows(2).all(|w| w[0] >= w[1]), "{reds:?}");
        assert!(reds[0] > reds[15] + 100, "{reds:?}");
        // The outer quarter-pixels are flat (clamped to the edge pixel), as in bilinear resizing.
        assert_eq!(reds[0], reds[3]);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(matches!(
            render_cpu(&[0.0; 10], (2, 2), (4, 4)),
            Err(PreviewError::WrongLength { expected: 64, .. })
        ));
        assert!(matches!(
            render_cpu(&[], (0, 2), (4, 4)),
            Err(PreviewError::BadSize { .. })
        ));
    }
}
