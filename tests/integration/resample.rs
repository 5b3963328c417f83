//! Pillow-exact resampling against Pillow's own outputs, and the edit pipeline's resizes against
//! the official scripts' (tests/fixtures/resample, made by tools/fixtures/make_resample_fixtures.py).

use std::path::PathBuf;

use hidream_studio::models::vae::to_rgb8;
use hidream_studio::pipelines::edit::{Fit, read_rgb, to_source_size};
use hidream_studio::pipelines::resample::{Filter, resize};

use crate::common::{byte_difference, fixtures, reference};

fn dir() -> PathBuf {
    fixtures().join("resample")
}

fn cases(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir().join(file)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["cases"].as_array().unwrap().clone()
}

fn filter(name: &str) -> Filter {
    match name {
        "box" => Filter::Box,
        "bilinear" => Filter::Bilinear,
        "hamming" => Filter::Hamming,
        "bicubic" => Filter::Bicubic,
        "lanczos" => Filter::Lanczos,
        other => panic!("unknown filter {other} in cases.json"),
    }
}

fn u32_of(case: &serde_json::Value, key: &str) -> u32 {
    case[key].as_u64().unwrap() as u32
}

#[test]
fn bit_exact_with_pillow_for_every_filter_up_down_odd_rgb_and_rgba() {
    let mut failures = Vec::new();
    let all = cases("cases.json");
    assert!(all.len() >= 45, "{} cases", all.len());
    for case in &all {
        let input = image::open(dir().join(case["input"].as_str().unwrap())).unwrap();
        let expected = image::open(dir().join(case["output"].as_str().unwrap())).unwrap();
        let (w, h) = (u32_of(case, "width"), u32_of(case, "height"));
        let f = filter(case["filter"].as_str().unwrap());
        let diff = match case["mode"].as_str().unwrap() {
            "RGB" => {
                let ours = resize(&input.to_rgb8(), w, h, f).unwrap();
                byte_difference(ours.as_raw(), expected.to_rgb8().as_raw())
            }
            "RGBA" => {
                let ours = resize(&input.to_rgba8(), w, h, f).unwrap();
                byte_difference(ours.as_raw(), expected.to_rgba8().as_raw())
            }
            other => panic!("unexpected mode {other}"),
        };
        if let Some(d) = diff {
            failures.push(format!("{}: {d}", case["output"].as_str().unwrap()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The source brought to the working size as `inference_e1_1.py` (BOX halvings, BICUBIC,
/// crop) and `inference.py` (`resize((side, side))`) do, at sizes where they are not the
/// identity.
#[test]
fn working_size_source_equals_the_official_scripts() {
    let mut checked = 0;
    for case in cases("edit.json").iter().filter(|c| c["kind"] == "source") {
        let source = read_rgb(&dir().join(case["source"].as_str().unwrap())).unwrap();
        let fit = match case["form"].as_str().unwrap() {
            "e1.1" => Fit::e1_1(source.width(), source.height(), 64),
            _ => Fit::square(64),
        };
        let ours = fit.apply(&source).unwrap();
        let official = image::open(dir().join(case["working"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        assert_eq!(ours.dimensions(), official.dimensions(), "{case}");
        assert_eq!(
            byte_difference(ours.as_raw(), official.as_raw()),
            None,
            "{}",
            case["working"]
        );
        checked += 1;
    }
    // 100×60 and 150×131 (one BOX halving) for E1.1, 97×53 for E1-Full.
    assert_eq!(checked, 3);
}

/// The official decoded image of an editing fixture, turned into 8 bits and resized back to a
/// source size as both scripts end (`result.images[0].resize(original_size)`), equals the
/// official PNG.
#[test]
fn resized_back_result_equals_the_official_scripts() {
    let mut checked = 0;
    for case in cases("edit.json").iter().filter(|c| c["kind"] == "back") {
        let decoded = &reference(case["case"].as_str().unwrap())["vae.image"];
        let result = to_rgb8(decoded).unwrap();
        let size = (u32_of(case, "width"), u32_of(case, "height"));
        assert_ne!(
            result.dimensions(),
            size,
            "the resize must not be the identity"
        );
        let ours = to_source_size(&result, size).unwrap();
        let official = image::open(dir().join(case["output"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        assert_eq!(ours.dimensions(), official.dimensions());
        assert_eq!(
            byte_difference(ours.as_raw(), official.as_raw()),
            None,
            "{}",
            case["output"]
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}
