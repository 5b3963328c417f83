//! The source image of an edit: decoded with limits, EXIF orientation applied, converted to
//! RGB, and brought to the model's working size as the official scripts do.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::pipelines::resample::{self, EmptyImage, Filter};

/// Sides above this are refused before decoding (a 16384² RGBA image is already 1 GiB).
pub(crate) const MAX_SIDE: u32 = 16384;
const MAX_DECODE_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: cannot open the image: {cause}")]
    Open {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{path}: not an image HiDream Studio can read ({detail}); use PNG, JPEG, WebP, TIFF or BMP"
    )]
    Decode {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "{path}: the image is {width}×{height} pixels, larger than the {max}-pixel limit per side; \
         downscale it first (the model works at about 1 megapixel anyway)"
    )]
    TooLarge {
        path: std::path::PathBuf,
        width: u32,
        height: u32,
        max: u32,
    },
    #[error("{path}: the image is {width}×{height} pixels; it needs at least 16 on each side")]
    TooSmall {
        path: std::path::PathBuf,
        width: u32,
        height: u32,
    },
}

/// Reads any image the `image` crate decodes, upright and as 8-bit RGB (alpha dropped, grey
/// expanded), refusing sizes that would exhaust memory with a message instead of an abort.
pub fn read_rgb(path: &Path) -> Result<RgbImage, SourceError> {
    let decode_error = |detail: String| SourceError::Decode {
        path: path.to_path_buf(),
        detail,
    };
    let reader = ImageReader::open(path)
        .map_err(|cause| SourceError::Open {
            path: path.to_path_buf(),
            cause,
        })?
        .with_guessed_format()
        .map_err(|cause| SourceError::Open {
            path: path.to_path_buf(),
            cause,
        })?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max: MAX_SIDE,
        });
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    decoder
        .set_limits(limits)
        .map_err(|e| decode_error(e.to_string()))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e.to_string()))?;
    if let Some(orientation) = orientation {
        img.apply_orientation(orientation);
    }
    let rgb = img.into_rgb8();
    if rgb.width() < 16 || rgb.height() < 16 {
        return Err(SourceError::TooSmall {
            path: path.to_path_buf(),
            width: rgb.width(),
            height: rgb.height(),
        });
    }
    Ok(rgb)
}

/// How the source is brought to the working size: a resize to `resize`, then a crop of
/// `crop_size` at `crop_origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Box-filtered halvings first (E1.1 does this while the short side is ≥ 2× the target).
    pub halvings: u32,
    pub resize: (u32, u32),
    pub crop_origin: (u32, u32),
    pub crop_size: (u32, u32),
}

impl Fit {
    /// E1-Full: a plain resize to `side`², aspect not kept.
    pub fn square(side: u32) -> Self {
        Self {
            halvings: 0,
            resize: (side, side),
            crop_origin: (0, 0),
            crop_size: (side, side),
        }
    }

    /// E1.1's `resize_image`: about `image_size`² pixels, sides multiples of 16, aspect kept
    /// by a centred crop, with Python's rounding
    /// (https://github.com/HiDream-ai/HiDream-E1/blob/f6f0631e9b621fa113f74d3b2e2cf2bc5314ef10/inference_e1_1.py#L25-L60).
    pub fn e1_1(width: u32, height: u32, image_size: u32) -> Self {
        let (mut w, mut h) = (width, height);
        let mut halvings = 0;
        while w.min(h) >= 2 * image_size {
            w /= 2;
            h /= 2;
            halvings += 1;
        }
        let m = 16u64;
        let s_max = u64::from(image_size) * u64::from(image_size);
        let scale = (s_max as f64 / (f64::from(w) * f64::from(h))).sqrt();
        let (fw, fh) = (f64::from(w) * scale, f64::from(h) * scale);
        let snap = |v: f64| (v as u64) / m * m;
        let (rw, rh) = (snap(round_half_even(fw)), snap(round_half_even(fh)));
        let (lw, lh) = (snap(fw.floor()), snap(fh.floor()));
        let mut candidates = [(rw, rh), (rw, lh), (lw, rh), (lw, lh)];
        // Python's sort is stable: equal areas keep this order.
        candidates.sort_by_key(|&(a, b)| std::cmp::Reverse(a * b));
        let (nw, nh) = candidates
            .into_iter()
            .find(|&(a, b)| a * b <= s_max)
            .unwrap_or((lw, lh));
        let (nw, nh) = (nw.max(m) as u32, nh.max(m) as u32);
        let s1 = f64::from(w) / f64::from(nw);
        let s2 = f64::from(h) / f64::from(nh);
        if s1 < s2 {
            let rh = round_half_even(f64::from(h) / s1) as u32;
            Self {
                halvings,
                resize: (nw, rh),
                crop_origin: (0, rh.saturating_sub(nh) / 2),
                crop_size: (nw, nh),
            }
        } else {
            let rw = round_half_even(f64::from(w) / s2) as u32;
            Self {
                halvings,
                resize: (rw, nh),
                crop_origin: (rw.saturating_sub(nw) / 2, 0),
                crop_size: (nw, nh),
            }
        }
    }

    /// Applies the fit to the source as `inference_e1_1.py`'s `resize_image` (and
    /// `inference.py`'s `resize((side, side))`) do, with Pillow's arithmetic: BOX halvings,
    /// a BICUBIC resize, a crop.
    pub fn apply(&self, img: &RgbImage) -> Result<RgbImage, EmptyImage> {
        let mut out = img.clone();
        for _ in 0..self.halvings {
            let (w, h) = (out.width() / 2, out.height() / 2);
            out = resample::resize(&out, w, h, Filter::Box)?;
        }
        // `Image.resize`'s default filter, which both scripts use.
        out = resample::resize(&out, self.resize.0, self.resize.1, Filter::Bicubic)?;
        Ok(self.crop(out))
    }

    /// Applies the fit to a mask of the source's size. The official scripts have no masks, so
    /// nothing to match bit for bit: the mask is a float coverage, resized by the `image` crate
    /// with filters close to the source's (triangle for the box halvings, Catmull-Rom for
    /// bicubic), which keeps it aligned with the source to well under a pixel.
    pub(crate) fn apply_mask<P>(
        &self,
        img: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    ) -> image::ImageBuffer<P, Vec<P::Subpixel>>
    where
        P: image::Pixel + 'static,
        P::Subpixel: 'static,
    {
        let mut out = img.clone();
        for _ in 0..self.halvings {
            let (w, h) = (out.width() / 2, out.height() / 2);
            out = image::imageops::resize(&out, w, h, FilterType::Triangle);
        }
        if out.dimensions() != self.resize {
            out =
                image::imageops::resize(&out, self.resize.0, self.resize.1, FilterType::CatmullRom);
        }
        self.crop(out)
    }

    /// The centred crop of the resized image (the whole image when it already has the size).
    fn crop<P>(
        &self,
        img: image::ImageBuffer<P, Vec<P::Subpixel>>,
    ) -> image::ImageBuffer<P, Vec<P::Subpixel>>
    where
        P: image::Pixel + 'static,
        P::Subpixel: 'static,
    {
        if self.crop_origin == (0, 0) && self.crop_size == img.dimensions() {
            return img;
        }
        image::imageops::crop_imm(
            &img,
            self.crop_origin.0,
            self.crop_origin.1,
            self.crop_size.0,
            self.crop_size.1,
        )
        .to_image()
    }
}

/// The edited image (at the working size) back at the source's size, as both official scripts
/// end: `result.images[0].resize(original_size)`, Pillow's BICUBIC.
pub fn to_source_size(result: &RgbImage, size: (u32, u32)) -> Result<RgbImage, EmptyImage> {
    resample::resize(result, size.0, size.1, Filter::Bicubic)
}

/// Python 3's `round`: halves to even.
fn round_half_even(v: f64) -> f64 {
    v.round_ties_even()
}

/// RGB8 → f32 [1, 3, H, W] in [−1, 1], as diffusers' `VaeImageProcessor` (x/255·2 − 1).
pub(crate) fn to_tensor(img: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
    let (w, h) = img.dimensions();
    let values: Vec<f32> = img
        .as_raw()
        .iter()
        .map(|&v| (f32::from(v) / 255.0) * 2.0 - 1.0)
        .collect();
    Tensor::from_vec(values, (h as usize, w as usize, 3), &Device::Cpu)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?
        .contiguous()?
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::{Fit, read_rgb};

    #[test]
    fn rgba_and_grey_become_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let rgba = dir.path().join("a.png");
        image::RgbaImage::from_pixel(20, 18, image::Rgba([10, 20, 30, 0]))
            .save(&rgba)
            .unwrap();
        let grey = dir.path().join("g.png");
        image::GrayImage::from_pixel(17, 16, image::Luma([77]))
            .save(&grey)
            .unwrap();
        let a = read_rgb(&rgba).unwrap();
        assert_eq!(
            (a.dimensions(), a.get_pixel(3, 3).0),
            ((20, 18), [10, 20, 30])
        );
        let g = read_rgb(&grey).unwrap();
        assert_eq!(
            (g.dimensions(), g.get_pixel(0, 0).0),
            ((17, 16), [77, 77, 77])
        );
    }

    /// Worked examples of the official `resize_image`.
    #[test]
    fn e1_1_sizes_as_the_reference() {
        for ((w, h), (ow, oh)) in [
            ((1024, 1024), (1024, 1024)),
            ((1920, 1080), (1360, 768)),
            ((3000, 2000), (1248, 832)),
            ((800, 600), (1168, 880)),
            ((4032, 3024), (1168, 880)),
            ((512, 512), (1024, 1024)),
        ] {
            assert_eq!(Fit::e1_1(w, h, 1024).crop_size, (ow, oh), "{w}×{h}");
        }
        let f = Fit::e1_1(4032, 3024, 1024);
        assert_eq!(f.halvings, 1);
        // The tiny fixtures: already at the working size, nothing to do.
        let f = Fit::e1_1(80, 48, 64);
        assert_eq!(
            (f.resize, f.crop_size, f.crop_origin),
            ((80, 48), (80, 48), (0, 0))
        );
    }
}
