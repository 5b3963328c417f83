use super::*;

fn request(instruction: &str) -> EditSettings {
    let models = EditModelChoice::new(
        "model".into(),
        "llama".into(),
        ComputeDType::F32,
        DeviceChoice::Cpu,
    );
    let values = UserValues::default();
    EditSettings::new(models, "source.png".into(), instruction.into(), &values, 1)
}

fn released(form: EditForm) -> EditModelFacts {
    EditModelFacts {
        form,
        scheduler_shift: 3.0,
        vae_scale: 8,
        // A merged E1-Full transformer's config has the canvas's max_resolution [96, 192].
        base_max_seq: if form == EditForm::E1FullMerged {
            4608
        } else {
            4096
        },
    }
}

#[test]
fn prompt_forms() {
    assert_eq!(
        e1_full_prompt("make it red.", Some("a red car")),
        "Editing Instruction: make it red. Target Image Description: a red car"
    );
    let built = "Editing Instruction: x. Target Image Description: y";
    assert_eq!(e1_full_prompt(built, None), built);
    assert_eq!(target_prompt(built), "y");
    assert_eq!(target_prompt("plain"), "plain");
}

#[test]
fn e1_1_takes_the_official_defaults() {
    let plan = request("make it red")
        .resolve(&released(EditForm::E1_1), (1024, 768))
        .unwrap();
    let r = &plan.resolved;
    assert_eq!((r.guidance, r.image_guidance), (3.0, 1.5));
    assert_eq!(r.negative_prompt, "low quality, blurry, distorted");
    assert_eq!((r.steps, r.shift, r.base_resolution), (28, 3.0, 1024));
    // int(28 · 0.7) as Python computes it in f64.
    assert_eq!((r.refine_strength, r.refine_from_step), (0.3, 19));
    assert_eq!(r.max_seq, 8192);
    assert_eq!((r.width, r.height), plan.fit.crop_size);
    assert_eq!(r.prompt, "make it red");
    assert!(plan.warnings.is_empty());
}

#[test]
fn merged_e1_full_does_not_refine_and_says_so() {
    let mut s = request("make it red");
    s.refine_strength = Some(0.5);
    let plan = s
        .resolve(&released(EditForm::E1FullMerged), (500, 300))
        .unwrap();
    assert_eq!(plan.resolved.refine_strength, 0.0);
    assert_eq!(plan.resolved.refine_from_step, plan.resolved.steps);
    assert_eq!((plan.resolved.width, plan.resolved.height), (768, 768));
    let [warning] = plan.warnings.as_slice() else {
        panic!("one warning expected: {:?}", plan.warnings);
    };
    // Each place names the setting in its own words; only the command line has the flags
    // that would refine instead.
    assert!(
        warning
            .for_cli()
            .starts_with("--refine-strength 0.5 has no effect with a merged E1-Full model")
            && warning.for_cli().ends_with(
                "(pass --refine-model base --base-model DIR to refine with HiDream-I1-Full)"
            ),
        "{}",
        warning.for_cli()
    );
    assert!(
        warning
            .for_window()
            .starts_with("Refine strength 0.5 has no effect with a merged E1-Full model")
            && !warning.for_window().contains("--"),
        "{}",
        warning.for_window()
    );
    assert_eq!(
        plan.resolved.prompt,
        "Editing Instruction: make it red. Target Image Description: make it red"
    );
    assert_eq!(plan.resolved.target_prompt, "make it red");
}

#[test]
fn a_canvas_over_the_model_limit_is_refused_as_the_base_resolution() {
    let mut s = request("make it red");
    s.base_resolution = Some(2048);
    let e = s
        .resolve(&released(EditForm::E1FullMerged), (500, 300))
        .unwrap_err();
    assert_eq!(e.field, Field::BaseResolution);
    assert!(
        e.for_cli().contains("--base-resolution is too large"),
        "{e:?}"
    );
}

#[test]
fn the_window_sees_labels_not_flags() {
    let e = request("  ").validate().unwrap_err();
    assert_eq!(e.field, Field::Instruction);
    assert_eq!(e.for_window(), "Instruction is empty; say what to change");
    assert_eq!(e.for_cli(), "--instruction is empty; say what to change");
    let mut s = request("make it red");
    s.guidance = Some(1e6);
    let e = s.validate().unwrap_err();
    assert_eq!(e.field, Field::InstructionGuidance);
    assert!(
        e.for_window().starts_with("Instruction following must be"),
        "{e:?}"
    );
}

#[test]
fn out_of_range_values_are_refused_before_loading() {
    let mut s = request("make it red");
    s.shift = Some(f64::INFINITY);
    assert_eq!(s.validate().unwrap_err().field, Field::Shift);
    let mut s = request("make it red");
    s.base_resolution = Some(100_000);
    assert_eq!(s.validate().unwrap_err().field, Field::BaseResolution);
    let mut s = request("make it red");
    s.models.dtype = ComputeDType::Bf16;
    assert_eq!(s.validate().unwrap_err().field, Field::Dtype);
    let mut s = request("make it red");
    s.image_guidance = Some(-1.0);
    assert_eq!(s.validate().unwrap_err().field, Field::ImageGuidance);
}

#[test]
fn records_keep_their_flat_json() {
    // Written before the model choice was a field of its own: records in PNGs and the history
    // must still read.
    let written = r#"{"model":"model","base_model":null,"form":null,"llama":"llama",
        "dtype":"f32","device":"cpu","image":"source.png","instruction":"make it red",
        "description":null,"negative_prompt":null,"mask":null,"guidance":null,
        "image_guidance":null,"clip_cfg_norm":true,"refine_strength":null,
        "refine_model":"reference","steps":null,"shift":null,"base_resolution":null,"seed":1}"#;
    let settings = request("make it red");
    assert_eq!(
        serde_json::from_str::<EditSettings>(written).unwrap(),
        settings
    );
    let json = serde_json::to_value(&settings).unwrap();
    assert_eq!(
        json,
        serde_json::from_str::<serde_json::Value>(written).unwrap()
    );
}
