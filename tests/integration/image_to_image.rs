//! Image-to-image and inpainting with the bundled Shapes I1 models: the invariants that pin
//! the method (strength 1 is text-to-image, strength under one step returns the image's own
//! latents, a mask keeps the outside), through the same `generate` as the window and the CLI.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use hidream_studio::pipelines::{
    EncoderMemory, GenerateSettings, Generation, HiDreamModels, Preset, Silent, generate,
};
use hidream_studio::settings::InitImage;

use crate::shapes_models::bundled_settings;

fn settings(preset: Preset, steps: usize, seed: u64, init: Option<InitImage>) -> GenerateSettings {
    GenerateSettings {
        steps: Some(steps),
        init,
        ..bundled_settings(preset, "a red circle to the left of a blue square", seed)
    }
}

fn run(models: &mut HiDreamModels, settings: &GenerateSettings) -> Generation {
    generate(models, settings, None, &mut Silent).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// A start image: the model's own drawing for another seed, as the window's "Use selected
/// result" would give it.
fn start_image(models: &mut HiDreamModels, preset: Preset, dir: &Path) -> PathBuf {
    let path = dir.join("start.png");
    run(models, &settings(preset, 6, 7, None))
        .image
        .save(&path)
        .unwrap();
    path
}

fn init(image: &Path, strength: f64, mask: Option<PathBuf>) -> InitImage {
    InitImage {
        image: image.to_path_buf(),
        strength,
        mask,
    }
}

#[test]
fn strength_one_is_text_to_image_bit_for_bit_with_each_sampler() {
    let dir = tempfile::tempdir().unwrap();
    for preset in [Preset::Full, Preset::Fast] {
        let s = settings(preset, 6, 3, None);
        let mut models = HiDreamModels::load(&s.models, EncoderMemory::Keep).unwrap();
        let image = start_image(&mut models, preset, dir.path());
        let t2i = run(&mut models, &s);
        let i2i = run(
            &mut models,
            &settings(preset, 6, 3, Some(init(&image, 1.0, None))),
        );
        assert_eq!(
            values(&i2i.final_latents),
            values(&t2i.final_latents),
            "{preset:?}"
        );
        assert_eq!(i2i.image, t2i.image, "{preset:?}");
        assert_eq!(i2i.record.timings.step_ms.len(), 6);
        // Half strength runs the last three steps from the image: neither the image nor t2i.
        let half = run(
            &mut models,
            &settings(preset, 6, 3, Some(init(&image, 0.5, None))),
        );
        assert_ne!(half.image, t2i.image, "{preset:?}");
        assert_eq!(half.record.timings.step_ms.len(), 3, "{preset:?}");
        let start = image::open(&image).unwrap().to_rgb8();
        assert_ne!(half.image, start, "{preset:?}");
    }
}

/// The start image's latents as the pipeline encodes them: diffusers' `VaeImageProcessor`
/// (x/255·2 − 1, NCHW) through the VAE's mean, f32 [1, 16, h, w].
fn encoded(models: &HiDreamModels, image: &Path) -> Tensor {
    let rgb = image::open(image).unwrap().to_rgb8();
    let (w, h) = rgb.dimensions();
    let pixels: Vec<f32> = rgb
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0 * 2.0 - 1.0)
        .collect();
    let pixels = Tensor::from_vec(pixels, (h as usize, w as usize, 3), &Device::Cpu)
        .unwrap()
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    models.vae.encode(&pixels).unwrap()
}

fn relative_l2(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (values(a), values(b));
    let diff: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (diff / norm).sqrt()
}

#[test]
fn strength_towards_zero_returns_the_start_images_latents() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(Preset::Full, 6, 3, None);
    let mut models = HiDreamModels::load(&s.models, EncoderMemory::Keep).unwrap();
    let image = start_image(&mut models, Preset::Full, dir.path());
    let expected = encoded(&models, &image);
    // Any strength above 0 runs the last step, from the schedule's smallest σ, which falls
    // with the step count: the result moves towards the image's latents.
    let mut errors = Vec::new();
    for steps in [6, 50, 500] {
        let out = run(
            &mut models,
            &settings(Preset::Full, steps, 3, Some(init(&image, 1e-6, None))),
        );
        assert_eq!(out.record.timings.step_ms.len(), 1);
        assert_eq!(out.final_latents.dtype(), DType::F32);
        errors.push(relative_l2(&out.final_latents, &expected));
    }
    eprintln!("relative L2 to the start image's latents at 6, 50, 500 steps: {errors:?}");
    assert!(errors[0] > errors[1] && errors[1] > errors[2], "{errors:?}");
    assert!(errors[2] < 1e-2, "{errors:?}");
}

#[test]
fn a_mask_keeps_the_start_image_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(Preset::Full, 6, 3, None);
    let mut models = HiDreamModels::load(&s.models, EncoderMemory::Keep).unwrap();
    let image = start_image(&mut models, Preset::Full, dir.path());
    let start = image::open(&image).unwrap().to_rgb8();
    let (w, h) = start.dimensions();
    // Repaint a centred square, a quarter of each side in from the edges.
    let mask = image::GrayImage::from_fn(w, h, |x, y| {
        let inside = (w / 4..3 * w / 4).contains(&x) && (h / 4..3 * h / 4).contains(&y);
        image::Luma([if inside { 255 } else { 0 }])
    });
    let mask_path = dir.path().join("mask.png");
    mask.save(&mask_path).unwrap();
    for strength in [1.0, 0.6] {
        let out = run(
            &mut models,
            &settings(
                Preset::Full,
                6,
                3,
                Some(init(&image, strength, Some(mask_path.clone()))),
            ),
        );
        // The feather is σ = 1 px at 64²: pixels 4 or more away from the square are the
        // start image's, bit for bit; inside, the image was repainted.
        let mut outside = 0;
        for (x, y, p) in out.image.enumerate_pixels() {
            let far = x + 4 < w / 4 || x >= 3 * w / 4 + 4 || y + 4 < h / 4 || y >= 3 * h / 4 + 4;
            if far {
                assert_eq!(
                    p,
                    start.get_pixel(x, y),
                    "({x}, {y}) at strength {strength}"
                );
                outside += 1;
            }
        }
        assert!(outside > (w * h / 3) as usize);
        let inside_changed = (w / 4 + 2..3 * w / 4 - 2)
            .flat_map(|x| (h / 4 + 2..3 * h / 4 - 2).map(move |y| (x, y)))
            .filter(|&(x, y)| out.image.get_pixel(x, y) != start.get_pixel(x, y))
            .count();
        assert!(inside_changed > 0, "strength {strength} changed nothing");
    }
}

fn cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("generate")
        .args(["--prompt", "a red circle to the left of a blue square"])
        .args(["--steps", "4", "--seed", "3"])
        .args(args)
        .env("HF_HUB_CACHE", "/nonexistent-cache-for-tests")
        .output()
        .unwrap()
}

#[test]
fn the_command_line_takes_a_start_image_strength_and_mask_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(Preset::Full, 6, 3, None);
    let mut models = HiDreamModels::load(&s.models, EncoderMemory::Keep).unwrap();
    let image = start_image(&mut models, Preset::Full, dir.path());
    let mask = dir.path().join("mask.png");
    image::GrayImage::from_fn(64, 64, |x, _| image::Luma([if x < 32 { 255 } else { 0 }]))
        .save(&mask)
        .unwrap();
    let out = dir.path().join("out.png");
    let os = |s: &str| std::ffi::OsString::from(s);
    let done = crate::common::succeed(&mut {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
        c.arg("generate")
            .args(["--prompt", "a red circle to the left of a blue square"])
            .args(["--steps", "4", "--seed", "3", "--strength", "0.5"])
            .arg("--init-image")
            .arg(&image)
            .arg("--mask")
            .arg(&mask)
            .arg("--out")
            .arg(&out)
            .env("HF_HUB_CACHE", "/nonexistent-cache-for-tests");
        c
    });
    assert!(done.status.success());
    let record = hidream_studio::store::read_stored_record(&std::fs::read(&out).unwrap())
        .unwrap()
        .unwrap();
    let hidream_studio::store::StoredRecord::Generation(record) = record else {
        panic!("expected a text-to-image record");
    };
    assert_eq!(
        record.settings.init,
        Some(init(&image, 0.5, Some(mask.clone()))),
        "the PNG's settings reproduce the job"
    );
    // The size came from the start image; the right half (away from the mask) is kept.
    let result = image::open(&out).unwrap().to_rgb8();
    let start = image::open(&image).unwrap().to_rgb8();
    assert_eq!(result.dimensions(), (64, 64));
    for y in 0..64 {
        for x in 36..64 {
            assert_eq!(result.get_pixel(x, y), start.get_pixel(x, y), "({x}, {y})");
        }
    }

    // Refused before any model loads, in the command line's words.
    let refused = cli(&[
        &os("--init-image"),
        image.as_os_str(),
        &os("--strength"),
        &os("0"),
        &os("--out"),
        out.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--strength must be above 0 and at most 1 (got 0)"),
        "{err}"
    );
    let refused = cli(&[&os("--strength"), &os("0.5"), &os("--out"), out.as_os_str()]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(err.contains("--init-image"), "{err}");
}
