// Latent → RGB preview: a linear map of the 16 FLUX latent channels to RGB, then bilinear
// upsampling to the output size.
//
// The factors and bias are ComfyUI's for FLUX.1 (comfy/latent_formats.py, class Flux:
// latent_rgb_factors and latent_rgb_factors_bias); they are uploaded by
// src/preview/mod.rs, which also holds the CPU reference of this exact computation.
//
// Everything after reading the latent is integer arithmetic, so the GPU and the CPU reference
// agree to the bit on every device:
//   latent value  → i32 in 1/256 units (clamped to ±16, rounded half to even)
//   RGB           → Σ q·f in 1/2^20 units → shifted to 1/4096 units, plus the bias, clamped ±2
//   upsampling    → source position in 1/256 pixel, bilinear weights in 1/256
//   output        → [−1, 1] → [0, 255], rounded

struct Params {
    // Latent width and height, output width and height.
    size: vec4<u32>,
    // factors[c].xyz: channel c's contribution to R, G, B, in 1/4096 units.
    factors: array<vec4<i32>, 16>,
    // .xyz: the bias, in 1/4096 units.
    bias: vec4<i32>,
}

// [16, h, w], f32, finite (the host replaces anything else by 0).
@group(0) @binding(0) var<storage, read> latent: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
// One RGBA8 pixel per element, R in the lowest byte.
@group(0) @binding(2) var<storage, read_write> pixels: array<u32>;
// Each latent pixel's colour (.xyz), written by `colours_main`, read by `main`.
@group(0) @binding(4) var<storage, read_write> colours: array<vec4<i32>>;

// First dispatch, one invocation per latent pixel: its colour in 1/4096 units, clamped to ±2.
@compute @workgroup_size(8, 8, 1)
fn colours_main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.size.x;
    let h = params.size.y;
    if (id.x >= w || id.y >= h) {
        return;
    }
    var acc = vec3<i32>(0, 0, 0);
    for (var c = 0u; c < 16u; c = c + 1u) {
        let v = latent[(c * h + id.y) * w + id.x];
        let q = i32(round(clamp(v, -16.0, 16.0) * 256.0));
        acc = acc + q * params.factors[c].xyz;
    }
    let rgb = (acc >> vec3<u32>(8u, 8u, 8u)) + params.bias.xyz;
    colours[id.y * w + id.x] = vec4<i32>(clamp(rgb, vec3<i32>(-8192), vec3<i32>(8192)), 0);
}

fn latent_rgb(x: u32, y: u32) -> vec3<i32> {
    return colours[y * params.size.x + x].xyz;
}

// Source position of output coordinate `o` (of `out_n`) on an axis of `n` latent pixels, in
// 1/256 pixel, clamped to the latent (half-pixel centres, as bilinear resizing does).
fn source_position(o: u32, n: u32, out_n: u32) -> i32 {
    let s = i32(((2u * o + 1u) * n * 128u) / out_n) - 128;
    return clamp(s, 0, i32(n - 1u) * 256);
}

// Second dispatch, one invocation per output pixel: bilinear upsampling of the colours.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = params.size.x;
    let h = params.size.y;
    let out_w = params.size.z;
    let out_h = params.size.w;
    if (id.x >= out_w || id.y >= out_h) {
        return;
    }
    let sx = source_position(id.x, w, out_w);
    let sy = source_position(id.y, h, out_h);
    let x0 = u32(sx >> 8u);
    let y0 = u32(sy >> 8u);
    let x1 = min(x0 + 1u, w - 1u);
    let y1 = min(y0 + 1u, h - 1u);
    let fx = sx & 255;
    let fy = sy & 255;
    let top = latent_rgb(x0, y0) * (256 - fx) + latent_rgb(x1, y0) * fx;
    let bottom = latent_rgb(x0, y1) * (256 - fx) + latent_rgb(x1, y1) * fx;
    let v = top * (256 - fy) + bottom * fy;
    // 1/2^28 → 1/4096 units, rounded; then [−1, 1] → [0, 255], rounded.
    let v12 = clamp((v + vec3<i32>(32768)) >> vec3<u32>(16u, 16u, 16u), vec3<i32>(-4096), vec3<i32>(4096));
    let rgb = vec3<u32>(((v12 + vec3<i32>(4096)) * 255 + vec3<i32>(4096)) / 8192);
    pixels[id.y * out_w + id.x] = rgb.x | (rgb.y << 8u) | (rgb.z << 16u) | (255u << 24u);
}

// ----- Drawing the computed pixels into the window (egui_wgpu paint callback) -----
//
// The compute pass above fills `pixels` at the canvas rectangle's size in physical pixels;
// these entry points draw them into that rectangle (the viewport egui sets for the
// callback), one pixel per framebuffer pixel.

@group(0) @binding(3) var<storage, read> shown: array<u32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
}

// One triangle that covers the viewport.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let uv = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let out_w = params.size.z;
    let out_h = params.size.w;
    let x = min(u32(in.uv.x * f32(out_w)), out_w - 1u);
    let y = min(u32(in.uv.y * f32(out_h)), out_h - 1u);
    let p = shown[y * out_w + x];
    // egui renders into a non-sRGB framebuffer with gamma-space colours, as these are.
    return vec4<f32>(
        f32(p & 255u),
        f32((p >> 8u) & 255u),
        f32((p >> 16u) & 255u),
        255.0,
    ) / 255.0;
}
