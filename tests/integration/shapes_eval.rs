//! ShapesEval on ground truth: renders of what each prompt and edit asks for score 1.0, the
//! training renderer (Python) and the product's draw the same pixels, and wrong pictures fail.

use std::path::Path;

use hidream_studio::rng::Rng;
use hidream_studio::shapes::{
    Category, EditKind, Layout, PromptSpec, Scene, Tally, check_edit, check_prompt, prompts, read,
};

const SIZE: usize = 64;

#[test]
fn python_and_rust_renderers_draw_the_same_pixels() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shapes");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let size = golden["size"].as_u64().unwrap() as usize;
    let scenes = golden["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 5);
    for (i, scene) in scenes.iter().enumerate() {
        let scene: Scene = serde_json::from_value(scene.clone()).unwrap();
        let expected = std::fs::read(dir.join(format!("golden-{i}.rgb"))).unwrap();
        let drawn: Vec<u8> = scene.render(size).pixels.into_iter().flatten().collect();
        let differing = drawn.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(drawn.len(), expected.len());
        assert_eq!(differing, 0, "golden scene {i}: {differing} bytes differ");
    }
}

/// The prompt's scene with each object nudged and resized as the training data does.
fn jittered(spec: PromptSpec, rng: &mut Rng) -> Scene {
    let mut scene = spec.scene(SIZE);
    for o in &mut scene.objects {
        o.cx += (rng.next_u64() % 5) as f64 - 2.0;
        o.cy += (rng.next_u64() % 5) as f64 - 2.0;
        o.r += (rng.next_u64() % 3) as f64 - 1.0;
    }
    scene
}

#[test]
fn ground_truth_renders_pass_every_check() {
    let set = prompts::text_to_image();
    assert!(set.len() >= 50, "{} prompts", set.len());
    let mut rng = Rng::new(7);
    let mut tally = Tally::default();
    for spec in &set {
        for scene in [
            spec.scene(SIZE),
            jittered(*spec, &mut rng),
            jittered(*spec, &mut rng),
        ] {
            let checks = check_prompt(spec, &read(&scene.render(SIZE)));
            for (category, ok) in &checks {
                assert!(
                    ok,
                    "{:?} failed for {:?} ({})",
                    category,
                    scene,
                    spec.caption()
                );
            }
            tally.add(&checks);
        }
    }
    for (category, accuracy, n) in tally.accuracies() {
        assert_eq!(accuracy, 1.0, "{category:?} over {n}");
    }
}

#[test]
fn wrong_pictures_fail_the_checks_they_break() {
    let set = prompts::text_to_image();
    let single = set
        .iter()
        .find(|s| matches!(s.layout, Layout::Single { .. }))
        .unwrap();
    let Layout::Single { colour, .. } = single.layout else {
        unreachable!()
    };
    // Another colour at the same place: colour fails, position holds.
    let mut scene = single.scene(SIZE);
    scene.objects[0].colour = hidream_studio::shapes::Colour::ALL
        .into_iter()
        .find(|&c| c != colour)
        .unwrap();
    let checks = check_prompt(single, &read(&scene.render(SIZE)));
    let get = |c: Category| checks.iter().find(|(k, _)| *k == c).unwrap().1;
    assert!(!get(Category::SingleColour));
    assert!(get(Category::SinglePosition));

    // A pair drawn with its relation reversed: the layout axis holds, the binding does not.
    let pair = set
        .iter()
        .find(|s| matches!(s.layout, Layout::Pair { .. }))
        .unwrap();
    let mut scene = pair.scene(SIZE);
    let (a, b) = (scene.objects[0], scene.objects[1]);
    (scene.objects[0].cx, scene.objects[0].cy) = (b.cx, b.cy);
    (scene.objects[1].cx, scene.objects[1].cy) = (a.cx, a.cy);
    let checks = check_prompt(pair, &read(&scene.render(SIZE)));
    let get = |c: Category| checks.iter().find(|(k, _)| *k == c).unwrap().1;
    assert!(get(Category::PairLayout));
    assert!(get(Category::PairObjects));
    assert!(!get(Category::PairBinding));

    // One object of the pair painted in two hues: still two blobs in the arrangement, but
    // three one-coloured regions.
    let scene = pair.scene(SIZE);
    let first = scene.objects[0];
    let other = hidream_studio::shapes::Colour::ALL
        .into_iter()
        .find(|&c| scene.objects.iter().all(|o| o.colour != c))
        .unwrap();
    let mut picture = scene.render(SIZE);
    for y in 0..SIZE {
        for x in 0..(first.cx as usize).min(SIZE) {
            let near = (x as f64 - first.cx).abs() <= first.r + 1.0
                && (y as f64 - first.cy).abs() <= first.r + 1.0;
            if near && picture.pixels[y * SIZE + x] == first.colour.rgb() {
                picture.pixels[y * SIZE + x] = other.rgb();
            }
        }
    }
    let reading = read(&picture);
    assert_eq!((reading.blobs.len(), reading.objects.len()), (2, 3));
    let checks = check_prompt(pair, &reading);
    let get = |c: Category| checks.iter().find(|(k, _)| *k == c).unwrap().1;
    assert!(get(Category::PairLayout));
    assert!(!get(Category::PairObjects));

    // Two objects run together into one blob: no layout.
    let mut scene = pair.scene(SIZE);
    (scene.objects[1].cx, scene.objects[1].cy) = (scene.objects[0].cx + 4.0, scene.objects[0].cy);
    let checks = check_prompt(pair, &read(&scene.render(SIZE)));
    let get = |c: Category| checks.iter().find(|(k, _)| *k == c).unwrap().1;
    assert!(!get(Category::PairLayout));

    // A blank picture: nothing holds but the background.
    let blank = Scene {
        background: pair.background,
        objects: vec![],
    };
    let checks = check_prompt(pair, &read(&blank.render(SIZE)));
    for (category, ok) in checks {
        assert_eq!(ok, category == Category::Background, "{category:?}");
    }
}

#[test]
fn every_shape_is_recognised_at_training_sizes() {
    use hidream_studio::shapes::{Background, Colour, Object, Shape};
    for shape in Shape::ALL {
        for r in [6.0, 7.0, 9.0, 10.0, 11.0, 14.0] {
            let scene = Scene {
                background: Background::White,
                objects: vec![Object {
                    shape,
                    colour: Colour::Blue,
                    cx: 32.0,
                    cy: 32.0,
                    r,
                }],
            };
            let reading = read(&scene.render(SIZE));
            assert_eq!(reading.objects.len(), 1);
            assert_eq!(reading.objects[0].shape, shape, "radius {r}");
        }
    }
}

#[test]
fn edit_targets_score_one_and_untouched_sources_zero() {
    let edits = prompts::edits(SIZE);
    assert_eq!(edits.len(), 30);
    for edit in &edits {
        let perfect = check_edit(edit, &edit.target.render(SIZE));
        assert!(perfect.carried_out, "{}", edit.instruction);
        assert_eq!(perfect.preserved, 1.0, "{}", edit.instruction);
        assert_eq!(perfect.score, 1.0);
        let unchanged = check_edit(edit, &edit.source.render(SIZE));
        assert!(!unchanged.carried_out, "{}", edit.instruction);
        assert_eq!(unchanged.score, 0.0);
    }
    // An edit that does what was asked but also wipes the other object is not carried out.
    let recolour = edits.iter().find(|e| e.kind == EditKind::Recolour).unwrap();
    let mut wrong = recolour.target.clone();
    wrong.objects.truncate(1);
    let score = check_edit(recolour, &wrong.render(SIZE));
    assert!(!score.carried_out);
    assert!(score.preserved < 0.95, "{}", score.preserved);
}
