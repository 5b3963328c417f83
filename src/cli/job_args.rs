//! The options `generate` and `edit` share, flattened into both: how the job runs (seed or
//! exact noise, device, dtype) and where its results go (`--out`, `--dump`). Where a command
//! says more about one of them, it rewords that option's help with `mut_arg`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Tensor;
use clap::Args;
use hidream_studio::pipelines::{ComputeDType, DeviceChoice, NoiseInput};
use hidream_studio::placement::{EncoderDevice, parse_size};
use hidream_studio::rng::fresh_seed;
use hidream_studio::settings::PlacementChoice;
use hidream_studio::store::write_atomically;
use hidream_studio::weights::{HubCache, resolve_model_path};

use super::outputs::write_dump;

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Random seed. Default: a new one, printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Exact starting noise: a safetensors file with `latents` [1, 16, h, w].
    #[arg(long)]
    noise: Option<PathBuf>,
    /// Compute dtype. Default: f32 on the CPU, bf16 on CUDA.
    #[arg(long, value_enum)]
    dtype: Option<ComputeDType>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub(crate) device: DeviceChoice,
}

/// Where the models go (`generate` and `edit`).
#[derive(Args)]
pub(crate) struct PlacementArgs {
    /// GPU memory the models may use: 24GiB (2³⁰ bytes), 24GB (10⁹ bytes), 16000MiB. The
    /// planner then decides what stays on the GPU, what is streamed and where the text
    /// encoders run, and prints why. Default on CUDA: the GPU's free memory.
    #[arg(long, value_parser = size_flag)]
    vram_budget: Option<u64>,
    /// Where the text encoders run. Default: the GPU where they fit beside the transformer
    /// (all at once, or one at a time), else the CPU.
    #[arg(long, value_enum)]
    encoder_device: Option<EncoderDevice>,
}

/// clap names the flag and the value around this message.
pub(crate) fn size_flag(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// A count flag (`--seeds`, `--limit`): a whole number of 1 or more, since 0 would run nothing
/// and report an empty result as if it had finished.
pub(crate) fn at_least_one<T: std::str::FromStr + PartialEq + From<u8>>(
    text: &str,
) -> Result<T, String> {
    match text.trim().parse::<T>() {
        Ok(n) if n == T::from(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a whole number".to_owned()),
    }
}

impl PlacementArgs {
    /// `--vram-budget` and `--encoder-device`.
    pub(crate) fn choice(&self) -> PlacementChoice {
        PlacementChoice {
            vram_budget: self.vram_budget,
            encoder_device: self.encoder_device,
        }
    }
}

impl RunArgs {
    /// `--seed`, else a new one.
    pub(crate) fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(fresh_seed)
    }

    /// Whether `--noise` was given.
    pub(crate) fn has_noise(&self) -> bool {
        self.noise.is_some()
    }

    /// The `--noise` file's tensors, if one was given.
    pub(crate) fn noise(&self) -> anyhow::Result<Option<NoiseInput>> {
        self.noise.as_deref().map(NoiseInput::read).transpose()
    }

    /// `--dtype`, else the device's default.
    pub(crate) fn dtype(&self) -> ComputeDType {
        self.dtype.unwrap_or(match self.device {
            DeviceChoice::Cpu => ComputeDType::F32,
            DeviceChoice::Cuda => ComputeDType::Bf16,
        })
    }
}

#[derive(Args)]
pub(crate) struct OutputArgs {
    /// Where to write the PNG, a name ending in .png (it carries the settings as text chunks).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Also write `final_latents` and `image` (f32, about [−1, 1], NCHW) as safetensors.
    #[arg(long)]
    pub(crate) dump: Option<PathBuf>,
}

impl OutputArgs {
    /// See [`check_outputs`].
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        check_outputs(&self.out, self.dump.as_deref())
    }

    /// The outputs of image `index` (0-based) of a batch of `count`: `a.png` becomes
    /// `a-1.png`, `a-2.png`, … (and `--dump` likewise); a batch of one keeps the names.
    pub(crate) fn numbered(&self, index: usize, count: usize) -> OutputArgs {
        let number = |path: &Path| {
            if count <= 1 {
                return path.to_path_buf();
            }
            let mut name = path
                .file_stem()
                .map(OsStr::to_os_string)
                .unwrap_or_default();
            name.push(format!("-{}", index + 1));
            if let Some(ext) = path.extension() {
                name.push(".");
                name.push(ext);
            }
            path.with_file_name(name)
        };
        OutputArgs {
            out: number(&self.out),
            dump: self.dump.as_deref().map(number),
        }
    }

    /// Writes the PNG to `--out` and, with `--dump`, the final latents and decoded image.
    pub(crate) fn write(
        &self,
        png: &[u8],
        final_latents: &Tensor,
        decoded: &Tensor,
    ) -> anyhow::Result<()> {
        write_atomically(&self.out, png)
            .with_context(|| format!("--out {}", self.out.display()))?;
        if let Some(dump) = &self.dump {
            write_dump(
                dump,
                &[("final_latents", final_latents), ("image", decoded)],
            )?;
        }
        Ok(())
    }
}

/// How `generate` and `edit` start: refuse unusable outputs before minutes of work, then
/// find `--model` (a folder, or a Hugging Face id in the cache), else the bundled model
/// `bundled` returns. Returns the cache too, for the other models the command looks up.
pub(crate) fn outputs_and_model(
    output: &OutputArgs,
    model: Option<&str>,
    bundled: impl FnOnce() -> anyhow::Result<PathBuf>,
) -> anyhow::Result<(Option<HubCache>, PathBuf)> {
    output.check()?;
    let cache = HubCache::from_env();
    let model = match model {
        Some(model) => resolve_model_path(model, cache.as_ref())?,
        None => bundled()?,
    };
    Ok((cache, model))
}

/// Refuses, before minutes of work, outputs that would fail or lose data: an unwritable
/// path, a name that does not end in .png (the bytes are PNG whatever the name says), and a
/// --dump that would overwrite the image.
fn check_outputs(out: &Path, dump: Option<&Path>) -> anyhow::Result<()> {
    check_writable(out)?;
    if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        anyhow::bail!(
            "--out {}: the image is written as a PNG (with its settings embedded); give a name \
             ending in .png",
            out.display()
        );
    }
    if let Some(dump) = dump {
        if same_file(out, dump) {
            anyhow::bail!(
                "--dump {}: is the --out image itself and would replace it; give the tensors \
                 their own name, such as {}",
                dump.display(),
                out.with_extension("safetensors").display()
            );
        }
        check_writable(dump)?;
    }
    Ok(())
}

/// Whether two output paths name the same file (they need not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| -> Option<PathBuf> {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(dir.canonicalize().ok()?.join(p.file_name()?))
    };
    a == b || matches!((absolute(a), absolute(b)), (Some(x), Some(y)) if x == y)
}

/// Creates and removes a file beside `path` to prove it can be written.
fn check_writable(path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: the folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!(
            "{}: is a folder; give a file name such as image.png",
            path.display()
        );
    }
    let probe = dir.join(format!(".hidream-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("{}: cannot write to {}", path.display(), dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}
