//! The wgpu latent preview (shaders/latent_preview.wgsl, run as a compute pass) equals the CPU
//! reference to the bit. Runs on Mesa's software Vulkan driver in CI.

use hidream_studio::preview::{GpuPreview, render_cpu};
use hidream_studio::rng::Rng;

/// Latent values like a denoising run's x0 estimates (about unit variance), with a few
/// outliers beyond the clamp and exact half-steps that test rounding.
fn latent(seed: u64, w: u32, h: u32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let n = 16 * (w * h) as usize;
    (0..n)
        .map(|i| match i % 97 {
            0 => 40.0,
            1 => -40.0,
            2 => 0.5 / 256.0,
            3 => -1.5 / 256.0,
            _ => (rng.normal() * 1.3) as f32,
        })
        .collect()
}

#[test]
fn shader_equals_cpu_reference_exactly() {
    let gpu = match GpuPreview::new() {
        Ok(gpu) => gpu,
        Err(e) => panic!("{e}"),
    };
    // (latent w, h) → (output w, h): square, non-square both ways, ×8 and odd scales,
    // downsampling, a single pixel.
    let cases = [
        ((8, 8), (64, 64)),
        ((16, 10), (128, 80)),
        ((7, 13), (56, 104)),
        ((13, 7), (200, 71)),
        ((32, 24), (17, 11)),
        ((1, 1), (9, 5)),
        ((128, 128), (256, 256)),
    ];
    for (i, ((w, h), (ow, oh))) in cases.into_iter().enumerate() {
        let latent = latent(i as u64 + 1, w, h);
        let cpu = render_cpu(&latent, (w, h), (ow, oh)).unwrap();
        let shader = gpu.render(&latent, (w, h), (ow, oh)).unwrap();
        let differing = cpu
            .pixels()
            .zip(shader.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing,
            0,
            "{w}×{h} → {ow}×{oh} on {}: {differing} pixels differ",
            gpu.adapter_name()
        );
        // Not a trivial image: the colours vary.
        let first = cpu.get_pixel(0, 0);
        assert!(cpu.pixels().any(|p| p != first) || (w, h) == (1, 1));
    }
}
