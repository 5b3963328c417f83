//! `hidream-studio edit` refuses bad inputs with messages that say what to do.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::fixtures;

fn edit(dir: &Path, image: &Path, extra: &[&str]) -> Output {
    let base = fixtures().join("full-square/model");
    let mut args = vec!["--base-model", base.to_str().unwrap()];
    args.extend_from_slice(&["--instruction", "make the circle blue"]);
    args.extend_from_slice(&["--steps", "2", "--base-resolution", "64", "--seed", "1"]);
    args.extend_from_slice(extra);
    edit_model(&fixtures().join("edit-e11/model"), dir, image, &args)
}

/// `edit` on `model` with only the Llama, the image and the output given.
fn edit_model(model: &Path, dir: &Path, image: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
        .arg("edit")
        .arg("--model")
        .arg(model)
        .arg("--llama")
        .arg(fixtures().join("llama-3.1-tiny"))
        .arg("--image")
        .arg(image)
        .arg("--out")
        .arg(dir.join("out.png"))
        .env("HF_HUB_CACHE", dir.join("no-cache"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn source() -> std::path::PathBuf {
    fixtures().join("edit-e11/source.png")
}

#[test]
fn unreadable_image() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("photo.png");
    std::fs::write(&bad, b"this is not a picture").unwrap();
    let out = edit(dir.path(), &bad, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("photo.png") && e.contains("not an image"), "{e}");
    let out = edit(dir.path(), &dir.path().join("missing.png"), &[]);
    assert!(
        stderr(&out).contains("no such image file"),
        "{}",
        stderr(&out)
    );
    // A folder exists, so it is named as a folder, not as missing.
    let out = edit(dir.path(), dir.path(), &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("--image") && e.contains("is a folder"), "{e}");
}

#[test]
fn image_too_large() {
    let dir = tempfile::tempdir().unwrap();
    // A valid PNG header claiming 20000×20000 pixels: refused before any pixel is decoded.
    let big = dir.path().join("huge.png");
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, 20000, 20000);
        enc.set_color(png::ColorType::Grayscale);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&vec![0u8; 20000 * 20000]).unwrap();
    }
    std::fs::write(&big, png).unwrap();
    let out = edit(dir.path(), &big, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("20000×20000") && e.contains("downscale"), "{e}");
}

#[test]
fn empty_mask() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("mask.png");
    image::GrayImage::new(80, 48).save(&mask).unwrap();
    let out = edit(dir.path(), &source(), &["--mask", mask.to_str().unwrap()]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("mask is empty") && e.contains("white"), "{e}");
}

#[test]
fn mask_of_another_size_is_resized_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("mask.png");
    image::GrayImage::from_pixel(40, 24, image::Luma([255]))
        .save(&mask)
        .unwrap();
    let out = edit(dir.path(), &source(), &["--mask", mask.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("warning") && e.contains("40×24") && e.contains("stretched"),
        "{e}"
    );
}

#[test]
fn transparent_mask_pixels_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("mask.png");
    let src = image::open(source()).unwrap().into_rgb8();
    let (w, h) = src.dimensions();
    // White everywhere; the left half transparent, so only the right half may change.
    image::RgbaImage::from_fn(w, h, |x, _| {
        image::Rgba([255, 255, 255, if x < w / 2 { 0 } else { 255 }])
    })
    .save(&mask)
    .unwrap();
    let out = edit(dir.path(), &source(), &["--mask", mask.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("warning") && e.contains("transparent pixels") && e.contains("kept"),
        "{e}"
    );
    let result = image::open(dir.path().join("out.png")).unwrap().into_rgb8();
    // The feather reaches 3σ = 3 px into the kept half; beyond it the source is untouched.
    for y in 0..h {
        for x in 0..w / 2 - 4 {
            assert_eq!(result.get_pixel(x, y), src.get_pixel(x, y), "({x}, {y})");
        }
    }
    assert!(
        (w / 2 + 4..w).any(|x| (0..h).any(|y| result.get_pixel(x, y) != src.get_pixel(x, y))),
        "the painted half did not change at all"
    );
}

#[test]
fn latents_that_stop_being_finite_fail_with_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.safetensors");
    // The source's working size at base resolution 64 is 6×10 latent pixels.
    let mut values = vec![0.5f32; 16 * 6 * 10];
    values[3] = f32::INFINITY;
    let latents =
        candle_core::Tensor::from_vec(values, (1, 16, 6, 10), &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("latents".to_string(), latents)]),
        &noise,
    )
    .unwrap();
    let out = edit(dir.path(), &source(), &["--noise", noise.to_str().unwrap()]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("step 1 of 2") && e.contains("noise file"), "{e}");
    assert!(!dir.path().join("out.png").exists(), "no image on failure");
}

#[test]
fn bad_numbers_and_missing_base() {
    let dir = tempfile::tempdir().unwrap();
    let out = edit(dir.path(), &source(), &["--refine-strength", "1.5"]);
    assert!(
        stderr(&out).contains("--refine-strength must be between 0 and 1"),
        "{}",
        stderr(&out)
    );
    let out = edit(dir.path(), &source(), &["--image-guidance=-1"]);
    assert!(
        stderr(&out).contains("--image-guidance must be 0 or more"),
        "{}",
        stderr(&out)
    );
    // An E1.1 folder with only its transformer needs the base for its other components.
    let out = edit_model(
        &fixtures().join("edit-e11/model"),
        dir.path(),
        &source(),
        &["--instruction", "x"],
    );
    assert!(stderr(&out).contains("--base-model"), "{}", stderr(&out));
    // The LoRA file alone cannot be used.
    let out = edit_model(
        &fixtures().join("edit-e1full-lora/HiDream-E1-Full.safetensors"),
        dir.path(),
        &source(),
        &["--instruction", "x"],
    );
    let e = stderr(&out);
    assert!(e.contains("LoRA") && e.contains("--base-model"), "{e}");
}

#[test]
fn settings_are_refused_in_flag_words() {
    let dir = tempfile::tempdir().unwrap();
    let base = fixtures().join("full-square/model");
    let out = edit_model(
        &fixtures().join("edit-e11/model"),
        dir.path(),
        &source(),
        &["--base-model", base.to_str().unwrap(), "--instruction", " "],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--instruction is empty; say what to change"),
        "{}",
        stderr(&out)
    );
    let out = edit(dir.path(), &source(), &["--shift", "1000"]);
    assert!(
        stderr(&out).contains("--shift must be positive, at most 20"),
        "{}",
        stderr(&out)
    );
    let out = edit(dir.path(), &source(), &["--guidance", "1e6"]);
    assert!(
        stderr(&out).contains("--guidance must be 0 or more, at most 20"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("out.png").exists());
}

#[test]
fn an_unused_refine_strength_is_named_by_its_flag_with_what_to_pass_instead() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--instruction",
        "make the circle blue",
        "--steps",
        "2",
        "--base-resolution",
        "64",
        "--seed",
        "1",
        "--refine-strength",
        "0.5",
        "--json",
    ];
    let out = edit_model(
        &fixtures().join("edit-e1full-merged/model"),
        dir.path(),
        &fixtures().join("edit-e1full-merged/source.png"),
        &args,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = "--refine-strength 0.5 has no effect with a merged E1-Full model: its \
                    official pipeline does not refine, so the edit ran without a refine stage \
                    (pass --refine-model base --base-model DIR to refine with HiDream-I1-Full)";
    assert!(
        stderr(&out).contains(&format!("warning: {expected}")),
        "{}",
        stderr(&out)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["warnings"], serde_json::json!([expected]));
    assert_eq!(summary["resolved"]["refine_strength"], 0.0);
}
