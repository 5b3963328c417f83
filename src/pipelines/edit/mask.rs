//! Brushed masks (white = may change): our addition to HiDream-E1, which has none.
//!
//! Method, in two places:
//! 1. **Latents, every step.** After each scheduler step the latents outside the mask are
//!    replaced by the source latents noised to the step's σ with the job's own initial noise,
//!    `x ← m·x + (1 − m)·((1 − σ)·src + σ·ε)`, where `m` is the feathered mask averaged over each
//!    8×8 latent pixel. The model therefore sees a consistent image at every noise level and
//!    blends its edit into the kept surroundings; at σ = 0 the outside is the source exactly.
//! 2. **Pixels, at the end.** The decoded result (back at the source's size) is composited over
//!    the original source with the mask feathered by a Gaussian of σ = [`feather_sigma`], so
//!    pixels farther than about 3σ from the painted region are the source's, bit for bit
//!    (the VAE round trip never touches them).

use std::path::Path;

use candle_core::{Device, Tensor};
use image::{GrayImage, ImageBuffer, Luma, RgbImage};

use super::source::Fit;

/// A mask as f32 coverage in [0, 1] at some image size.
pub(crate) type Coverage = ImageBuffer<Luma<f32>, Vec<f32>>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MaskError {
    #[error("{path}: cannot read the mask: {detail}")]
    Read {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "{path}: the mask is empty (all black), so nothing may change; paint the region to edit \
         in white"
    )]
    Empty { path: std::path::PathBuf },
}

/// A mask read from a file, at the source's size.
#[derive(Debug, Clone)]
pub(crate) struct Mask {
    pub coverage: Coverage,
    /// Set when the file had another size than the source and was resized.
    pub warning: Option<String>,
}

impl Mask {
    /// Reads any image as luminance; one of another size than the source is resized to it
    /// (with a warning, since a mask for another image is usually a mistake). A transparent
    /// pixel counts as black (kept): luminance is multiplied by alpha, so "white = may change"
    /// holds for whatever is visibly painted, and the warning says so.
    pub fn read(path: &Path, source_size: (u32, u32)) -> Result<Self, MaskError> {
        let read_error = |detail: String| MaskError::Read {
            path: path.to_path_buf(),
            detail,
        };
        let decoded = image::ImageReader::open(path)
            .map_err(|e| read_error(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| read_error(e.to_string()))?
            .decode()
            .map_err(|e| read_error(e.to_string()))?;
        let mut warnings = Vec::new();
        let grey = if decoded.color().has_alpha() {
            let (grey, transparent) = luminance_times_alpha(&decoded.into_luma_alpha8());
            if transparent {
                warnings.push(format!(
                    "{}: the mask has transparent pixels; they count as black, so what they \
                     cover is kept",
                    path.display()
                ));
            }
            grey
        } else {
            decoded.into_luma8()
        };
        let grey = if grey.dimensions() == source_size {
            grey
        } else {
            warnings.push(format!(
                "{}: the mask is {}×{} but the image is {}×{}; it was stretched to fit",
                path.display(),
                grey.width(),
                grey.height(),
                source_size.0,
                source_size.1
            ));
            image::imageops::resize(
                &grey,
                source_size.0,
                source_size.1,
                image::imageops::FilterType::Triangle,
            )
        };
        if grey.pixels().all(|p| p.0[0] == 0) {
            return Err(MaskError::Empty {
                path: path.to_path_buf(),
            });
        }
        let coverage = Coverage::from_fn(grey.width(), grey.height(), |x, y| {
            Luma([f32::from(grey.get_pixel(x, y).0[0]) / 255.0])
        });
        let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
        Ok(Self { coverage, warning })
    }

    /// The feathered mask at the working size, averaged per latent pixel: f32 [1, 1, h, w].
    pub fn latent(&self, fit: &Fit, scale: u32, device: &Device) -> candle_core::Result<Tensor> {
        let working = feather(&fit.apply_mask(&self.coverage));
        let (w, h) = (working.width() / scale, working.height() / scale);
        let area = (scale * scale) as f32;
        let mut values = Vec::with_capacity((w * h) as usize);
        for ly in 0..h {
            for lx in 0..w {
                let mut sum = 0.0;
                for dy in 0..scale {
                    for dx in 0..scale {
                        sum += working.get_pixel(lx * scale + dx, ly * scale + dy).0[0];
                    }
                }
                values.push((sum / area).clamp(0.0, 1.0));
            }
        }
        Tensor::from_vec(values, (1, 1, h as usize, w as usize), device)
    }

    /// `result` over `source` through the feathered mask, at the source's size.
    pub(crate) fn composite(&self, result: &RgbImage, source: &RgbImage) -> RgbImage {
        let m = feather(&self.coverage);
        RgbImage::from_fn(source.width(), source.height(), |x, y| {
            let a = m.get_pixel(x, y).0[0];
            let (r, s) = (result.get_pixel(x, y).0, source.get_pixel(x, y).0);
            image::Rgb(std::array::from_fn(|c| {
                (a * f32::from(r[c]) + (1.0 - a) * f32::from(s[c])).round() as u8
            }))
        })
    }
}

/// Step 1 of the method: latents `x` after a step that ended at `sigma`, with the area outside
/// `mask` (f32 [1, 1, h, w], 1 = may change) put back on the source's noising path
/// `(1 − σ)·source + σ·noise` (`source` and `noise` f32 [1, C, h, w], `noise` the job's initial
/// noise). At σ = 0 the outside is `source` exactly.
pub(crate) fn keep_outside(
    x: &Tensor,
    mask: &Tensor,
    source: &Tensor,
    noise: &Tensor,
    sigma: f64,
) -> candle_core::Result<Tensor> {
    let kept = noised(source, noise, sigma)?;
    mask.broadcast_mul(x)? + mask.affine(-1.0, 1.0)?.broadcast_mul(&kept)?
}

/// Clean latents moved along the flow to noise level σ: `(1 − σ)·clean + σ·noise`.
pub(crate) fn noised(clean: &Tensor, noise: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    (clean * (1.0 - sigma))? + (noise * sigma)?
}

/// Luminance scaled by opacity (rounded), and whether any pixel was less than opaque.
fn luminance_times_alpha(image: &image::GrayAlphaImage) -> (GrayImage, bool) {
    let mut transparent = false;
    let grey = GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let [l, a] = image.get_pixel(x, y).0;
        transparent |= a < u8::MAX;
        Luma([((u16::from(l) * u16::from(a) + 127) / 255) as u8])
    });
    (grey, transparent)
}

/// The feather's Gaussian σ in pixels: 1 % of the shorter side, at least 1.
pub(crate) fn feather_sigma(width: u32, height: u32) -> f32 {
    (width.min(height) as f32 * 0.01).max(1.0)
}

/// A separable Gaussian blur (radius 3σ, edges clamped).
pub fn feather(mask: &Coverage) -> Coverage {
    let sigma = feather_sigma(mask.width(), mask.height());
    let radius = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let (w, h) = (i64::from(mask.width()), i64::from(mask.height()));
    let pass = |src: &Coverage, horizontal: bool| {
        Coverage::from_fn(src.width(), src.height(), |x, y| {
            let mut acc = 0.0;
            for (k, weight) in weights.iter().enumerate() {
                let d = k as i64 - radius;
                let (sx, sy) = if horizontal {
                    ((i64::from(x) + d).clamp(0, w - 1), i64::from(y))
                } else {
                    (i64::from(x), (i64::from(y) + d).clamp(0, h - 1))
                };
                acc += weight * src.get_pixel(sx as u32, sy as u32).0[0];
            }
            Luma([acc])
        })
    };
    pass(&pass(mask, true), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_pixels_count_as_black() {
        let image = image::GrayAlphaImage::from_fn(4, 1, |x, _| {
            image::LumaA([255, [255, 128, 0, 255][x as usize]])
        });
        let (grey, transparent) = luminance_times_alpha(&image);
        assert_eq!(grey.as_raw(), &[255, 128, 0, 255]);
        assert!(transparent);
        let opaque = image::GrayAlphaImage::from_pixel(2, 2, image::LumaA([200, 255]));
        let (grey, transparent) = luminance_times_alpha(&opaque);
        assert_eq!(grey.as_raw(), &[200; 4]);
        assert!(!transparent);
    }

    #[test]
    fn feather_keeps_far_pixels_and_mass() {
        let mut m = Coverage::new(64, 64);
        for y in 16..48 {
            for x in 16..48 {
                m.put_pixel(x, y, Luma([1.0]));
            }
        }
        let f = feather(&m);
        assert_eq!(f.get_pixel(2, 2).0[0], 0.0);
        assert!((f.get_pixel(32, 32).0[0] - 1.0).abs() < 1e-6);
        let before: f32 = m.pixels().map(|p| p.0[0]).sum();
        let after: f32 = f.pixels().map(|p| p.0[0]).sum();
        assert!((before - after).abs() / before < 1e-3);
    }
}
