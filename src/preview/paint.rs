//! The latent preview inside the window: an egui_wgpu paint callback that runs the preview
//! compute pass at the canvas rectangle's pixel size and draws the result, so a preview costs
//! the UI thread one upload and no image conversion.

use std::sync::Arc;

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use eframe::wgpu;
use wgpu::util::DeviceExt as _;

use super::gpu::{Pipelines, SHADER, colours_buffer, entry, params_bytes};
use super::{MAX_OUTPUT_SIDE, check_sizes};

/// A preview to draw: x0 latents [16, h, w] f32, finite, and a number that changes with them.
#[derive(Clone)]
pub struct LatentFrame {
    pub latent: Arc<Vec<f32>>,
    pub size: (u32, u32),
    pub version: u64,
}

/// The GPU objects the callback keeps between frames (in egui_wgpu's callback resources).
pub struct PreviewRenderer {
    compute: Pipelines,
    render: wgpu::RenderPipeline,
    state: Option<Prepared>,
}

struct Prepared {
    version: u64,
    out: (u32, u32),
    render_bind: wgpu::BindGroup,
}

impl PreviewRenderer {
    /// Builds the pipelines and registers them with the window's renderer. Call once, from
    /// the app's creation (the window runs with egui's default: no MSAA, no depth buffer).
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let device = &render_state.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("latent_preview.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let compute = Pipelines::new(device, &module);
        let render = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("latent preview draw"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                targets: &[Some(render_state.target_format.into())],
            }),
            multiview_mask: None,
            cache: None,
        });
        render_state
            .renderer
            .write()
            .callback_resources
            .insert(Self {
                compute,
                render,
                state: None,
            });
    }
}

/// Draws `frame` into the callback's rectangle.
pub(crate) struct PreviewCallback {
    pub frame: LatentFrame,
    /// The rectangle's size in points.
    pub size_points: egui::Vec2,
}

impl CallbackTrait for PreviewCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        _queue: &wgpu::Queue,
        screen: &ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(renderer) = resources.get_mut::<PreviewRenderer>() else {
            return Vec::new();
        };
        let px = |points: f32| {
            ((points * screen.pixels_per_point).round() as u32).clamp(1, MAX_OUTPUT_SIDE)
        };
        let out = (px(self.size_points.x), px(self.size_points.y));
        let current = renderer
            .state
            .as_ref()
            .is_some_and(|s| s.version == self.frame.version && s.out == out);
        let frame = &self.frame;
        if current || check_sizes(frame.latent.len(), frame.size, out).is_err() {
            return Vec::new();
        }
        let latent = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("preview latent"),
            contents: bytemuck::cast_slice(&frame.latent),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("preview params"),
            contents: &params_bytes(frame.size, out),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let pixels = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("preview pixels"),
            size: u64::from(out.0) * u64::from(out.1) * 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let render_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("preview draw"),
            layout: &renderer.render.get_bind_group_layout(0),
            entries: &[entry(1, &params), entry(3, &pixels)],
        });
        let colours = colours_buffer(device, frame.size);
        renderer.compute.record(
            device,
            encoder,
            [&latent, &params, &pixels, &colours],
            frame.size,
            out,
        );
        renderer.state = Some(Prepared {
            version: frame.version,
            out,
            render_bind,
        });
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(PreviewRenderer {
            render,
            state: Some(state),
            ..
        }) = resources.get::<PreviewRenderer>()
        else {
            return;
        };
        render_pass.set_pipeline(render);
        render_pass.set_bind_group(0, &state.render_bind, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
