//! One file of weights, whichever format it is in: safetensors or GGUF.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::error::Result;
use super::gguf::GgufFile;
use super::mapped_file::MappedFile;
use super::safetensors_file::{SafetensorsFile, TensorEntry};

#[derive(Debug)]
pub(crate) enum WeightsFile {
    Safetensors(SafetensorsFile),
    Gguf(GgufFile),
}

impl WeightsFile {
    fn mapped(&self) -> &MappedFile {
        match self {
            Self::Safetensors(f) => &f.file,
            Self::Gguf(f) => &f.file,
        }
    }

    pub fn path(&self) -> &Path {
        &self.mapped().path
    }

    pub fn tensors(&self) -> &HashMap<String, TensorEntry> {
        &self.mapped().tensors
    }

    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors().get(name)
    }

    pub fn file_size(&self) -> u64 {
        self.mapped().mmap.len() as u64
    }

    /// A tensor in its stored float dtype (quantised GGUF tensors dequantised to f32).
    pub fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        match self {
            Self::Safetensors(f) => f.load(name, device),
            Self::Gguf(f) => f.load(name, device),
        }
    }
}
