//! The latent preview as a headless wgpu compute pass, for tests, benchmarks and
//! `generate --preview-dir`.

use std::sync::mpsc;
use std::time::Duration;

use image::RgbaImage;

use super::{CHANNELS, PreviewError, check_sizes, quantized_factors};

/// The WGSL source, shared with the window's paint callback.
pub(crate) const SHADER: &str = include_str!("../../shaders/latent_preview.wgsl");

/// How long to wait for the device to finish one preview before giving up (a software
/// rasteriser on a busy machine can be slow; a lost device would otherwise hang forever).
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PreviewGpuError {
    #[error(
        "no GPU adapter for the latent preview ({0}); install a Vulkan driver (on Linux \
         without a GPU: the libvulkan1 and mesa-vulkan-drivers packages)"
    )]
    NoAdapter(String),
    #[error("the GPU refused the preview device: {0}")]
    Device(String),
    #[error("the preview compute pass failed: {0}")]
    Run(String),
    #[error(transparent)]
    Input(#[from] PreviewError),
}

/// A device with the preview pipeline built.
pub struct GpuPreview {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipelines: Pipelines,
    adapter_name: String,
}

/// The two compute stages, sharing one bind group layout.
pub(super) struct Pipelines {
    pub layout: wgpu::BindGroupLayout,
    pub colours: wgpu::ComputePipeline,
    pub upsample: wgpu::ComputePipeline,
}

impl Pipelines {
    pub fn new(device: &wgpu::Device, module: &wgpu::ShaderModule) -> Self {
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("latent preview"),
            entries: &[
                storage(0, true),
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(2, false),
                storage(4, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("latent preview"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let stage = |entry_point| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry_point),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some(entry_point),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        };
        Self {
            colours: stage("colours_main"),
            upsample: stage("main"),
            layout,
        }
    }

    /// Records both dispatches; `buffers` are the latent, params, pixels and colours.
    pub fn record(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        [latent, params, pixels, colours]: [&wgpu::Buffer; 4],
        (w, h): (u32, u32),
        (out_w, out_h): (u32, u32),
    ) {
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("latent preview"),
            layout: &self.layout,
            entries: &[
                entry(0, latent),
                entry(1, params),
                entry(2, pixels),
                entry(4, colours),
            ],
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("latent preview"),
            timestamp_writes: None,
        });
        pass.set_bind_group(0, &bind_group, &[]);
        pass.set_pipeline(&self.colours);
        pass.dispatch_workgroups(w.div_ceil(8), h.div_ceil(8), 1);
        pass.set_pipeline(&self.upsample);
        pass.dispatch_workgroups(out_w.div_ceil(8), out_h.div_ceil(8), 1);
    }
}

/// A storage buffer for each latent pixel's colour (4 × i32).
pub(super) fn colours_buffer(device: &wgpu::Device, (w, h): (u32, u32)) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("preview colours"),
        size: u64::from(w) * u64::from(h) * 16,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    })
}

impl GpuPreview {
    /// Opens the first adapter wgpu offers (a software one where there is no GPU).
    pub fn new() -> Result<Self, PreviewGpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            compatible_surface: None,
            ..Default::default()
        }))
        .map_err(|e| PreviewGpuError::NoAdapter(e.to_string()))?;
        let adapter_name = adapter.get_info().name;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("latent preview"),
            ..Default::default()
        }))
        .map_err(|e| PreviewGpuError::Device(e.to_string()))?;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("latent_preview.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let pipelines = Pipelines::new(&device, &module);
        Ok(Self {
            device,
            queue,
            pipelines,
            adapter_name,
        })
    }

    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// Renders `latent` ([16, h, w] f32) at `out_w`×`out_h`; equals
    /// [`super::render_cpu`] to the bit.
    pub fn render(
        &self,
        latent: &[f32],
        (w, h): (u32, u32),
        (out_w, out_h): (u32, u32),
    ) -> Result<RgbaImage, PreviewGpuError> {
        use wgpu::util::DeviceExt as _;
        check_sizes(latent.len(), (w, h), (out_w, out_h))?;
        // The shader reads finite values only; the CPU reference treats the rest as 0 too.
        let clean: Vec<f32> = latent
            .iter()
            .map(|&v| if v.is_finite() { v } else { 0.0 })
            .collect();
        let latent_buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("preview latent"),
                contents: bytemuck::cast_slice(&clean),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let params = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("preview params"),
                contents: &params_bytes((w, h), (out_w, out_h)),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let size = u64::from(out_w) * u64::from(out_h) * 4;
        let pixels = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("preview pixels"),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("preview readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let colours = colours_buffer(&self.device, (w, h));
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("preview"),
            });
        self.pipelines.record(
            &self.device,
            &mut encoder,
            [&latent_buffer, &params, &pixels, &colours],
            (w, h),
            (out_w, out_h),
        );
        encoder.copy_buffer_to_buffer(&pixels, 0, &readback, 0, size);
        let submission = self.queue.submit([encoder.finish()]);
        let slice = readback.slice(..);
        let (sender, receiver) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| drop(sender.send(r)));
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(WAIT),
            })
            .map_err(|e| PreviewGpuError::Run(e.to_string()))?;
        receiver
            .recv_timeout(WAIT)
            .map_err(|e| PreviewGpuError::Run(e.to_string()))?
            .map_err(|e| PreviewGpuError::Run(e.to_string()))?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| PreviewGpuError::Run(e.to_string()))?
            .to_vec();
        readback.unmap();
        RgbaImage::from_raw(out_w, out_h, bytes)
            .ok_or_else(|| PreviewGpuError::Run("the output has the wrong size".into()))
    }
}

/// The uniform block: size (4 × u32), 16 factor rows (4 × i32 each), bias (4 × i32).
pub(super) fn params_bytes((w, h): (u32, u32), (out_w, out_h): (u32, u32)) -> Vec<u8> {
    let (factors, bias) = quantized_factors();
    let mut bytes = Vec::with_capacity(16 * (CHANNELS + 2));
    for v in [w, h, out_w, out_h] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for row in factors {
        for v in [row[0], row[1], row[2], 0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    for v in [bias[0], bias[1], bias[2], 0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

pub(super) fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}
