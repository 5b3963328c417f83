//! Pillow's `Image.resize` for 8-bit images, bit for bit.
//!
//! The official HiDream-E1 scripts bring the source to the working size and the result back to
//! the source's size with PIL (`inference_e1_1.py`: `BOX` halvings, then `BICUBIC`;
//! `inference.py` and the result: `resize(size)`, whose default filter is `BICUBIC`), and
//! diffusers' `VaeImageProcessor` resizes with `LANCZOS`. A resampler that differs by one grey
//! level in a few pixels already moves the final latents by ~1e-4, so this one repeats Pillow's
//! arithmetic exactly: per output pixel a window of the filter stretched by the downscale
//! factor (antialiasing), weights normalised to sum 1, then rounded to 22-bit fixed point; two
//! separable passes through an 8-bit intermediate image, in Pillow's order (see
//! [`Plane::convolve`]), each rounding half up and clipping to 0..=255. Images with alpha are
//! premultiplied around the passes, as `Image.resize` converts RGBA to RGBa.
//!
//! Written from Pillow 13.0.0's behaviour: `src/libImaging/Resample.c` (filters,
//! `precompute_coeffs`, `normalize_coeffs_8bpc`, `ImagingResampleInner`), `src/PIL/Image.py`
//! (`Image.resize`) and `src/libImaging/Convert.c` (`rgbA2rgba`, `rgba2rgbA`) of
//! <https://github.com/python-pillow/Pillow/tree/13.0.0>; `tests/integration/resample.rs`
//! compares it with Pillow's own outputs.

use image::{ImageBuffer, Pixel};

/// Pillow's convolution filters (`PIL.Image.Resampling`, all but `NEAREST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl Filter {
    /// Half the width of the filter's window at scale 1, in input pixels.
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    /// The filter's weight at distance `x` (input pixels at scale 1).
    fn weight(self, x: f64) -> f64 {
        match self {
            // Half-open so that a pixel centre on the window's edge is counted once.
            Filter::Box => f64::from(u8::from(x > -0.5 && x <= 0.5)),
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    // Pillow writes the window's constants as C floats, widened to double.
                    let px = x * std::f64::consts::PI;
                    px.sin() / px * (f64::from(0.54f32) + f64::from(0.46f32) * px.cos())
                }
            }
            Filter::Bicubic => {
                // Keys' cubic convolution with a = −0.5, as Pillow's.
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = x * std::f64::consts::PI;
        px.sin() / px
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot resize a {from_width}×{from_height}-pixel image to {to_width}×{to_height}: \
     both need at least one pixel on each side"
)]
pub struct EmptyImage {
    pub from_width: u32,
    pub from_height: u32,
    pub to_width: u32,
    pub to_height: u32,
}

/// `Image.resize((width, height), filter)` of Pillow for 8-bit images of any channel count;
/// a last alpha channel (RGBA, LA) is premultiplied around the resampling as Pillow does.
pub fn resize<P>(
    img: &ImageBuffer<P, Vec<u8>>,
    width: u32,
    height: u32,
    filter: Filter,
) -> Result<ImageBuffer<P, Vec<u8>>, EmptyImage>
where
    P: Pixel<Subpixel = u8>,
{
    let (in_w, in_h) = img.dimensions();
    if in_w == 0 || in_h == 0 || width == 0 || height == 0 {
        return Err(EmptyImage {
            from_width: in_w,
            from_height: in_h,
            to_width: width,
            to_height: height,
        });
    }
    if (in_w, in_h) == (width, height) {
        return Ok(img.clone());
    }
    let channels = usize::from(P::CHANNEL_COUNT);
    let mut plane = Plane {
        width: in_w as usize,
        height: in_h as usize,
        channels,
        // An `ImageBuffer`'s container may be longer than its pixels.
        data: img.as_raw()[..in_w as usize * in_h as usize * channels].to_vec(),
    };
    let alpha = P::HAS_ALPHA;
    if alpha {
        premultiply(&mut plane.data, channels);
    }
    let mut out = plane.convolve(width as usize, height as usize, filter);
    if alpha {
        unpremultiply(&mut out.data, channels);
    }
    // The plane has exactly `width · height · channels` values by construction.
    Ok(ImageBuffer::from_raw(width, height, out.data).unwrap_or_else(|| unreachable!()))
}

/// An interleaved 8-bit image.
#[derive(Clone)]
struct Plane {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

/// One pass's window per output pixel: first input index, and fixed-point weights.
struct Windows {
    starts: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

impl Windows {
    /// The windows mapping `in_size` input pixels onto `out_size` output pixels.
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Self {
        let scale = in_size as f64 / out_size as f64;
        // Downscaling widens the filter by the factor: every input pixel contributes.
        let filter_scale = scale.max(1.0);
        let support = filter.support() * filter_scale;
        // Pillow multiplies by the reciprocal (not divides): the last bit of a weight can differ.
        let inv_filter_scale = 1.0 / filter_scale;
        let mut starts = Vec::with_capacity(out_size);
        let mut weights = Vec::with_capacity(out_size);
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // C's int conversion truncates towards zero, as `as` does.
            let first = ((center - support + 0.5) as i64).max(0);
            let end = ((center + support + 0.5) as i64).min(in_size as i64);
            let raw: Vec<f64> = (first..end)
                .map(|x| filter.weight((x as f64 - center + 0.5) * inv_filter_scale))
                .collect();
            // Summed in order from +0, as Pillow does.
            let sum = raw.iter().fold(0.0, |acc, w| acc + w);
            let fixed = raw
                .iter()
                .map(|&w| {
                    let w = if sum == 0.0 { w } else { w / sum };
                    // Round half away from zero into 22-bit fixed point.
                    let v = w * f64::from(1u32 << PRECISION_BITS);
                    (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
                })
                .collect();
            starts.push(first as usize);
            weights.push(fixed);
        }
        Self { starts, weights }
    }

    /// One past the last input index any window reads.
    fn end(&self) -> usize {
        match (self.starts.last(), self.weights.last()) {
            (Some(s), Some(w)) => s + w.len(),
            _ => 0,
        }
    }
}

/// A fixed-point sum (with the rounding half already added) back to 8 bits, clipped.
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Σ value·weight in fixed point, starting from one half so that the shift rounds.
fn weighted(values: impl Iterator<Item = u8>, weights: &[i32]) -> u8 {
    let sum = values
        .zip(weights)
        .fold(1i32 << (PRECISION_BITS - 1), |acc, (v, &k)| {
            acc.wrapping_add(i32::from(v).wrapping_mul(k))
        });
    clip8(sum)
}

impl Plane {
    /// `ImagingResampleInner` with the whole image as the box: each pass only when its side
    /// changes, horizontal first (over just the rows the vertical pass reads) unless the height
    /// shrinks by more than twice as many pixels as the width, then vertical first.
    fn convolve(&self, width: usize, height: usize, filter: Filter) -> Plane {
        let need_horizontal = width != self.width;
        let need_vertical = height != self.height;
        let shrink_h = self.height as i64 - height as i64;
        let shrink_w = self.width as i64 - width as i64;
        let vertical_first = shrink_h > 0 && shrink_h > shrink_w * 2;
        let vertical = Windows::new(self.height, height, filter);
        let horizontal = Windows::new(self.width, width, filter);
        match (need_horizontal, need_vertical) {
            (false, false) => self.clone(),
            (true, false) => self.horizontal(&horizontal, 0, self.height),
            (false, true) => self.vertical(&vertical, 0),
            (true, true) if vertical_first => {
                self.vertical(&vertical, 0)
                    .horizontal(&horizontal, 0, height)
            }
            (true, true) => {
                let first = vertical.starts.first().copied().unwrap_or(0);
                self.horizontal(&horizontal, first, vertical.end() - first)
                    .vertical(&vertical, first)
            }
        }
    }

    /// Rows `first..first + rows` resampled to the windows' width.
    fn horizontal(&self, windows: &Windows, first: usize, rows: usize) -> Plane {
        let (c, out_w) = (self.channels, windows.starts.len());
        let mut data = Vec::with_capacity(rows * out_w * c);
        for y in first..first + rows {
            let row = &self.data[y * self.width * c..(y + 1) * self.width * c];
            for (start, weights) in windows.starts.iter().zip(&windows.weights) {
                for ch in 0..c {
                    let values = (0..weights.len()).map(|i| row[(start + i) * c + ch]);
                    data.push(weighted(values, weights));
                }
            }
        }
        Plane {
            width: out_w,
            height: rows,
            channels: c,
            data,
        }
    }

    /// Columns resampled to the windows' height; window starts are `row_offset` rows below
    /// this plane's first row (the horizontal pass kept only the rows that are read).
    fn vertical(&self, windows: &Windows, row_offset: usize) -> Plane {
        let (c, w) = (self.channels, self.width);
        let stride = w * c;
        let mut data = Vec::with_capacity(windows.starts.len() * stride);
        for (start, weights) in windows.starts.iter().zip(&windows.weights) {
            let top = start - row_offset;
            for i in 0..stride {
                let values = (0..weights.len()).map(|k| self.data[(top + k) * stride + i]);
                data.push(weighted(values, weights));
            }
        }
        Plane {
            width: w,
            height: windows.starts.len(),
            channels: c,
            data,
        }
    }
}

/// `v · a / 255` rounded as Pillow's `MULDIV255`.
fn muldiv255(v: u8, a: u8) -> u8 {
    let t = u32::from(v) * u32::from(a) + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// RGBA → RGBa (and LA → La): colour channels times alpha.
fn premultiply(data: &mut [u8], channels: usize) {
    for px in data.chunks_exact_mut(channels) {
        let (colour, alpha) = px.split_at_mut(channels - 1);
        for v in colour {
            *v = muldiv255(*v, alpha[0]);
        }
    }
}

/// RGBa → RGBA: colour divided by alpha (truncating, clipped), untouched at alpha 0 and 255.
fn unpremultiply(data: &mut [u8], channels: usize) {
    for px in data.chunks_exact_mut(channels) {
        let (colour, alpha) = px.split_at_mut(channels - 1);
        let a = u32::from(alpha[0]);
        if a != 0 && a != 255 {
            for v in colour {
                *v = (255 * u32::from(*v) / a).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point_and_the_window_widens_when_downscaling() {
        let up = Windows::new(10, 17, Filter::Bicubic);
        let down = Windows::new(40, 7, Filter::Bicubic);
        // Upscaling: at most 4 taps (support 2); downscaling by 40/7: ⌈2·40/7⌉·2 + 1 at most.
        assert!(up.weights.iter().all(|w| w.len() <= 5));
        assert!(down.weights.iter().any(|w| w.len() > 20));
        for w in up.weights.iter().chain(&down.weights) {
            let sum: i32 = w.iter().sum();
            assert!(
                (sum - (1 << PRECISION_BITS)).abs() <= w.len() as i32,
                "{sum}"
            );
        }
    }

    #[test]
    fn identity_and_empty_sizes() {
        let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(resize(&img, 5, 3, Filter::Lanczos).unwrap(), img);
        assert!(resize(&img, 0, 3, Filter::Bicubic).is_err());
        let empty = image::RgbImage::new(0, 0);
        let err = resize(&empty, 4, 4, Filter::Box).unwrap_err();
        assert!(err.to_string().contains("0×0-pixel image to 4×4"), "{err}");
    }

    #[test]
    fn premultiplied_alpha_round_trip_as_pillow() {
        // MULDIV255(200, 128) = 100; 255·100 / 128 = 199 (truncating).
        let mut px = [200u8, 10, 255, 128];
        premultiply(&mut px, 4);
        assert_eq!(px, [100, 5, 128, 128]);
        unpremultiply(&mut px, 4);
        assert_eq!(px, [199, 9, 255, 128]);
    }
}
