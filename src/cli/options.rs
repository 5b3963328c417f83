//! Options shared by several subcommands.

use candle_core::{DType, Device};
use clap::ValueEnum;

/// The dtype models compute in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ComputeDType {
    F32,
    Bf16,
    F16,
}

impl ComputeDType {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn device(self) -> anyhow::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda if !cfg!(feature = "cuda") => anyhow::bail!(
                "this build of hidream-studio has no CUDA support: rebuild it with \
                 `cargo build --release --features cuda`"
            ),
            Self::Cuda => Device::new_cuda(0)
                .map_err(|e| anyhow::anyhow!("could not open CUDA device 0: {e}")),
        }
    }
}
