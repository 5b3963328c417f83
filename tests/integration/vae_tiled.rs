//! Tiled decoding (for GPUs short of memory) against whole decoding, on the bundled Shapes
//! autoencoder and a real picture's latent.

use candle_core::{DType, Device, Tensor};
use hidream_studio::models::vae::{AutoencoderKl, Tiling, to_rgb8};
use hidream_studio::shapes::world::{Background, Colour, Layout, PromptSpec, Relation, Shape};
use hidream_studio::weights::bundled_model;

use crate::common::psnr;

fn vae() -> AutoencoderKl {
    let dir =
        bundled_model("shapes-i1-full").expect("the bundled Shapes models are in assets/models");
    AutoencoderKl::load(&dir.join("vae"), DType::F32, &Device::Cpu).unwrap()
}

/// A 128² picture of two shapes, its latent 16×16: four 8-latent tiles with overlap.
fn latent(vae: &AutoencoderKl) -> Tensor {
    let spec = PromptSpec {
        layout: Layout::Pair {
            first: (Colour::Red, Shape::Circle),
            relation: Relation::Above,
            second: (Colour::Blue, Shape::Square),
        },
        background: Background::White,
    };
    let img = spec.scene(128).render(128).to_image();
    let values: Vec<f32> = img
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 127.5 - 1.0)
        .collect();
    let pixels = Tensor::from_vec(values, (128, 128, 3), &Device::Cpu)
        .unwrap()
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    vae.encode(&pixels).unwrap()
}

#[test]
fn one_tile_covering_the_latent_is_a_whole_decode() {
    let vae = vae();
    let z = latent(&vae);
    let whole = vae.decode(&z).unwrap();
    let tiled = vae
        .decode_tiled(
            &z,
            Tiling {
                tile: 16,
                overlap: 4,
            },
        )
        .unwrap();
    assert_eq!(
        whole.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        tiled.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

#[test]
fn tiles_blend_into_the_whole_picture() {
    let vae = vae();
    let z = latent(&vae);
    let whole = to_rgb8(&vae.decode(&z).unwrap()).unwrap();
    let tiled = vae
        .decode_tiled(
            &z,
            Tiling {
                tile: 8,
                overlap: 2,
            },
        )
        .unwrap();
    assert_eq!(tiled.dims(), &[1, 3, 128, 128]);
    let tiled = to_rgb8(&tiled).unwrap();
    let db = psnr(&whole, &tiled);
    println!("tiled vs whole: {db:.2} dB");
    // Measured 31.6 dB (deterministic on the CPU). Tiles see less of the picture than the
    // decoder's middle attention does, so they are close, not equal; 64-pixel tiles on a
    // 128-pixel picture are a harsher case than the 512-pixel tiles used at 1024².
    assert!(
        db > 30.0,
        "tiled decode is {db:.1} dB from the whole decode"
    );
    assert!(
        db.is_finite(),
        "tiling changed nothing at all: is the latent tiled?"
    );
}

#[test]
fn a_bad_tiling_is_refused() {
    let vae = vae();
    let z = Tensor::zeros((1, 16, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let err = vae
        .decode_tiled(
            &z,
            Tiling {
                tile: 2,
                overlap: 2,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("tile > overlap"), "{err}");
}
