//! The bundled Shapes Hi-DiT through the Rust pipeline at the settings a new user gets (the
//! `hidit` command's and the window's defaults), checked for meaning: ShapesEval's reader
//! finds the class's colour and shape in the largest object of the picture.

use hidream_studio::models::hidit::sampler::Mode;
use hidream_studio::pipelines::Silent;
use hidream_studio::pipelines::hidit::{HiditFiles, HiditModels, HiditSettings, generate};
use hidream_studio::shapes::{Rgb, read};
use hidream_studio::weights::bundled_experiment;

use crate::common::succeed;

#[test]
fn bundled_hidit_draws_its_classes() {
    let folder = bundled_experiment("shapes-hidit").expect("assets/models/shapes-hidit is missing");
    let args: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("args.json")).unwrap()).unwrap();
    let names: Vec<String> = serde_json::from_value(args["class_names"].clone()).unwrap();
    assert!(
        args.get("pixel_branch").is_some(),
        "the bundle is stage 2, with its pixel branch"
    );
    let files = HiditFiles {
        model: folder.clone(),
        checkpoint: None,
        vae: None,
        latents_stats: None,
    };
    let models = HiditModels::load(&files, &candle_core::Device::Cpu).unwrap();
    let (mut hits, mut total, mut misses) = (0usize, 0usize, Vec::new());
    for (class, name) in names.iter().enumerate() {
        let (colour, shape) = name.split_once(' ').unwrap();
        for seed in 0..2 {
            // `hidream-studio hidit`'s defaults, which the window's class mode starts from.
            let settings = HiditSettings {
                class,
                steps: 50,
                mode: Mode::Ode,
                cfg_scale: 1.5,
                guidance_low: 0.0,
                guidance_high: 1.0,
                seed,
                tau: None,
                latent_only: false,
            };
            let generation = generate(&models, &settings, None, &mut Silent).unwrap();
            let reading = read(&Rgb::from_image(&generation.image));
            let main = reading.objects.first();
            let ok = main.is_some_and(|o| o.colour.name() == colour && o.shape.name() == shape);
            total += 1;
            hits += usize::from(ok);
            if !ok {
                misses.push(format!("{name} (seed {seed}): read {main:?}"));
            }
        }
    }
    let accuracy = hits as f64 / total as f64;
    eprintln!("Shapes Hi-DiT: {hits} of {total} read back as their class; misses: {misses:#?}");
    assert!(
        accuracy >= 0.9,
        "class accuracy {accuracy:.3} < 0.9: {misses:#?}"
    );
}

/// `info` on the bundle counts the checkpoint's `model` and `ema`, views of the same tensors,
/// once: its total is what the files take, not twice the checkpoint.
#[test]
fn info_counts_shared_checkpoint_storage_once() {
    let folder = bundled_experiment("shapes-hidit").expect("assets/models/shapes-hidit is missing");
    let out = succeed(
        std::process::Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
            .arg("info")
            .arg(&folder),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("total: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|l| l.strip_suffix(" on disk"))
        .unwrap_or_else(|| panic!("no total line in:\n{text}"));
    let megabytes: f64 = total.strip_suffix(" MB").unwrap().parse().unwrap();
    let files: u64 = walk_pt(&folder);
    let ratio = megabytes * 1e6 / files as f64;
    assert!(
        (0.97..=1.0).contains(&ratio),
        "total {total} for {files} bytes of .pt files:\n{text}"
    );
    assert!(
        text.contains("stored once with an earlier entry's"),
        "{text}"
    );
}

fn walk_pt(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                walk_pt(&p)
            } else if p.extension().is_some_and(|e| e == "pt") {
                p.metadata().unwrap().len()
            } else {
                0
            }
        })
        .sum()
}
