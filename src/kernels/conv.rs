//! 2-D convolution on the CPU as im2col + matmul, for the autoencoder, whose 3×3 convolutions
//! at 512–1024 pixels dominate decoding. candle's own CPU path gathers every patch element by
//! element; here each im2col row is built from contiguous runs of the NCHW input, the output is
//! computed a band of rows at a time (so the patch matrix stays a few MB), and the matmul is
//! candle's.

use candle_core::{Module, Result, Shape, Tensor};
use candle_nn::Conv2d;
use rayon::prelude::*;

use super::cpu_op::{CpuOp, F32Inputs, F32Kernel, is_cpu_f32};

/// Elements of one band's patch matrix: 4 Mi f32 = 16 MB.
const BAND_ELEMENTS: usize = 1 << 22;

/// `conv.forward(x)`, through [`conv2d`] when it applies (CPU, f32, no groups or dilation).
pub(crate) fn conv2d_module(conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
    let cfg = conv.config();
    if !(is_cpu_f32(&[x]) && cfg.groups == 1 && cfg.dilation == 1) {
        return conv.forward(x);
    }
    conv2d(x, conv.weight(), conv.bias(), cfg.stride, cfg.padding)
}

/// `x` [B, C, H, W] ⊛ `weight` [Co, C, kh, kw] (+ `bias` [Co]) with zero padding.
///
/// The input is transposed to channels-last once, so each patch is `kh·kw` contiguous runs of
/// C values, and the product is patches [pixels, K] · Wᵀ [K, Co]: with many pixels and few
/// output channels this orientation runs the matmul about twice as fast as W · patches.
pub(crate) fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (co, ci, kh, kw) = weight.dims4()?;
    if ci != c {
        candle_core::bail!("conv2d: input has {c} channels, kernel expects {ci}");
    }
    let out_h = (h + 2 * padding)
        .checked_sub(kh)
        .map_or(0, |v| v / stride + 1);
    let out_w = (w + 2 * padding)
        .checked_sub(kw)
        .map_or(0, |v| v / stride + 1);
    if out_h == 0 || out_w == 0 {
        candle_core::bail!("conv2d: a {h}×{w} input is smaller than the {kh}×{kw} kernel");
    }
    let k = c * kh * kw;
    let channels_last = transpose_last2(&x.reshape((b, c, h * w))?)?;
    // [Co, kh, kw, C] flattened, matching the patch layout.
    let w_t = weight.permute((0, 2, 3, 1))?.reshape((co, k))?.t()?;
    let rows_per_band = (BAND_ELEMENTS / (k * out_w)).clamp(1, out_h);
    let mut images = Vec::with_capacity(b);
    for batch in 0..b {
        let mut bands = Vec::with_capacity(out_h.div_ceil(rows_per_band));
        for first_row in (0..out_h).step_by(rows_per_band) {
            let rows = rows_per_band.min(out_h - first_row);
            let op = Im2Col {
                in_h: h,
                in_w: w,
                batch,
                first_row,
                rows,
                out_w,
                kh,
                kw,
                stride,
                padding,
            };
            let patches = channels_last.apply_op1_no_bwd(&CpuOp(op))?;
            bands.push(patches.matmul(&w_t)?);
        }
        let image = transpose_last2(&Tensor::cat(&bands, 0)?.unsqueeze(0)?)?;
        images.push(image.reshape((co, out_h, out_w))?);
    }
    let out = Tensor::stack(&images, 0)?;
    match bias {
        Some(bias) => out.broadcast_add(&bias.reshape((1, co, 1, 1))?),
        None => Ok(out),
    }
}

/// The patch matrix of output rows `first_row..first_row + rows` of one channels-last image
/// [B, H·W, C]: [rows·out_w, kh·kw·C], row (y, x) holding, for each kernel tap (i, j), the C
/// values of input pixel (y·s + i − p, x·s + j − p), zeros outside the image.
struct Im2Col {
    in_h: usize,
    in_w: usize,
    batch: usize,
    first_row: usize,
    rows: usize,
    out_w: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
}

impl F32Kernel<1> for Im2Col {
    const NAME: &'static str = "im2col-band";

    fn forward(&self, inputs: &F32Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let [data] = inputs.data;
        let (_, _, c) = inputs.shapes[0].dims3()?;
        let (h, w) = (self.in_h, self.in_w);
        let image = &data[self.batch * h * w * c..][..h * w * c];
        let k = c * self.kh * self.kw;
        let mut out = vec![0f32; self.rows * self.out_w * k];
        out.par_chunks_mut(self.out_w * k)
            .enumerate()
            .for_each(|(r, row)| {
                let y = (self.first_row + r) * self.stride;
                for (x, patch) in row.chunks_mut(k).enumerate() {
                    for (tap, dst) in patch.chunks_mut(c).enumerate() {
                        let (i, j) = (tap / self.kw, tap % self.kw);
                        let iy = (y + i) as isize - self.padding as isize;
                        let ix = (x * self.stride + j) as isize - self.padding as isize;
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            let from = (iy as usize * w + ix as usize) * c;
                            dst.copy_from_slice(&image[from..from + c]);
                        }
                    }
                }
            });
        Ok((out, Shape::from((self.rows * self.out_w, k))))
    }
}

/// [B, R, C] → [B, C, R], in cache-sized tiles.
pub(crate) fn transpose_last2(x: &Tensor) -> Result<Tensor> {
    if is_cpu_f32(&[x]) {
        return x.contiguous()?.apply_op1_no_bwd(&CpuOp(Transpose));
    }
    x.transpose(1, 2)?.contiguous()
}

struct Transpose;

/// Tile side: 32×32 f32 tiles are 4 KB each way.
const TILE: usize = 32;

impl F32Kernel<1> for Transpose {
    const NAME: &'static str = "transpose-last2";

    fn forward(&self, inputs: &F32Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let [src] = inputs.data;
        let (b, r, c) = inputs.shapes[0].dims3()?;
        let mut out = vec![0f32; src.len()];
        // Per image, parallel over bands of TILE output rows (input columns).
        out.par_chunks_mut(r * c)
            .zip(src.par_chunks(r * c))
            .for_each(|(dst, src)| {
                dst.par_chunks_mut(TILE * r)
                    .enumerate()
                    .for_each(|(band, dst)| {
                        let col0 = band * TILE;
                        let cols = dst.len() / r;
                        for row0 in (0..r).step_by(TILE) {
                            for row in row0..(row0 + TILE).min(r) {
                                for dc in 0..cols {
                                    dst[dc * r + row] = src[row * c + col0 + dc];
                                }
                            }
                        }
                    });
            });
        Ok((out, Shape::from((b, c, r))))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn equals_candle_conv2d() {
        for (stride, padding, kernel) in [(1, 1, 3), (2, 0, 3), (1, 0, 1), (1, 2, 3), (2, 1, 3)] {
            let x = crate::kernels::seeded_randn(1, 0.0, 1.0, (2, 5, 9, 7));
            let w = crate::kernels::seeded_randn(2, 0.0, 1.0, (4, 5, kernel, kernel));
            let bias = crate::kernels::seeded_randn(3, 0.0, 1.0, 4);
            let ours = conv2d(&x, &w, Some(&bias), stride, padding).unwrap();
            let theirs = x
                .conv2d(&w, padding, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bias.reshape((1, 4, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(
                ours.dims(),
                theirs.dims(),
                "stride {stride} padding {padding}"
            );
            let diff = crate::kernels::test_support::max_abs_diff(&ours, &theirs);
            assert!(diff < 1e-4, "stride {stride} padding {padding}: {diff}");
        }
    }

    #[test]
    fn transpose_equals_candle() {
        let x = crate::kernels::seeded_randn(4, 0.0, 1.0, (3, 37, 70));
        let ours = transpose_last2(&x).unwrap();
        let theirs = x.transpose(1, 2).unwrap().contiguous().unwrap();
        assert_eq!(
            ours.to_vec3::<f32>().unwrap(),
            theirs.to_vec3::<f32>().unwrap()
        );
    }
}
