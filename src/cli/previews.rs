//! `--preview-dir`: one PNG per denoising step, the step's clean-image estimate drawn by the
//! latent preview shader (the CPU reference where no GPU adapter can be opened).

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use hidream_studio::preview::{GpuPreview, render_cpu};

pub struct PreviewWriter {
    dir: PathBuf,
    gpu: Option<GpuPreview>,
    /// The VAE's upscale: previews are made at the output size.
    scale: u32,
}

impl PreviewWriter {
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create the preview folder {}", dir.display()))?;
        let gpu = match GpuPreview::new() {
            Ok(gpu) => Some(gpu),
            Err(e) => {
                eprintln!("note: previews are drawn on the CPU: {e}");
                None
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            gpu,
            scale: 8,
        })
    }

    /// Writes `step-NNN.png` from an x0 estimate, f32-convertible [1, 16, h, w].
    pub fn write(&self, step: usize, x0: &Tensor) -> anyhow::Result<()> {
        let (_, c, h, w) = x0
            .dims4()
            .context("a preview latent must be [1, 16, h, w]")?;
        anyhow::ensure!(c == 16, "a preview latent must have 16 channels, not {c}");
        let values: Vec<f32> = x0
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let size = (w as u32, h as u32);
        let out = (size.0 * self.scale, size.1 * self.scale);
        let image = match &self.gpu {
            Some(gpu) => gpu.render(&values, size, out)?,
            None => render_cpu(&values, size, out)?,
        };
        let path = self.dir.join(format!("step-{step:03}.png"));
        image
            .save(&path)
            .with_context(|| format!("could not write the preview {}", path.display()))
    }
}
