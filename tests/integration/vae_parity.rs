//! The autoencoder's decoder against the reference decode of every fixture.

use crate::common;

use crate::common::{CASES, fixture_model, fixtures, reference, rel_err};
use candle_core::{DType, Device};
use hidream_studio::models::vae::{AutoencoderKl, to_rgb8};

#[test]
fn decode_matches_the_reference() {
    for case in CASES {
        let r = reference(case);
        let vae = AutoencoderKl::load(&fixture_model(case).join("vae"), DType::F32, &Device::Cpu)
            .unwrap();
        let image = vae.decode(&r["latents.final"]).unwrap();
        let err = rel_err(&image, &r["vae.image"]);
        println!("{case}: decode relative error {err:.3e}");
        assert!(err < 1e-4, "{case}: {err:.3e}");

        let ours = to_rgb8(&image).unwrap();
        let theirs = image::open(fixtures().join(case).join("reference.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(ours.dimensions(), theirs.dimensions());
        let psnr = common::psnr(&ours, &theirs);
        println!("{case}: PSNR {psnr:.1} dB");
        assert!(psnr >= 60.0, "{case}: PSNR {psnr:.1} dB");
    }
}

#[test]
fn encode_then_decode_keeps_the_shape() {
    let vae = AutoencoderKl::load(
        &fixture_model("full-square").join("vae"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let image = reference("full-square")["vae.image"]
        .clamp(-1.0, 1.0)
        .unwrap();
    let latents = vae.encode(&image).unwrap();
    assert_eq!(latents.dims(), &[1, 16, 8, 8]);
    assert_eq!(vae.decode(&latents).unwrap().dims(), &[1, 3, 64, 64]);
}
