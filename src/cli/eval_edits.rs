//! `hidream-studio eval --edits`: ShapesEval's EmuEdit-like edit scores. Each source scene is
//! rendered, edited by the model with its instruction, and the result is checked against the
//! scene the instruction asks for: carried out, and everything else kept.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use hidream_studio::engine::Engine;
use hidream_studio::pipelines::edit::{EditModelChoice, EditSettings};
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EditJob, HiDreamBackend, JobOutput, find_llama,
};
use hidream_studio::settings::UserValues;
use hidream_studio::shapes::{EditKind, EditScore, Rgb, check_edit, prompts};
use hidream_studio::weights::{StudioManifest, bundled_model, resolve_model_path};

use super::eval::EvalArgs;
use super::job::wait_for;

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let model = match &args.model {
        Some(model) => resolve_model_path(model, None)?,
        None => bundled_model("shapes-e1.1").context(
            "no --model given and the bundled editor shapes-e1.1 was not found in assets/models",
        )?,
    };
    let manifest = StudioManifest::read(&model)?.with_context(|| {
        format!(
            "{} is not a Shapes model (it has no {})",
            model.display(),
            StudioManifest::FILE
        )
    })?;
    let llama = find_llama(None, &model, None)?;
    let size = manifest.base_resolution as usize;
    let values = UserValues {
        steps: args.steps,
        guidance: args.guidance,
        image_guidance: args.image_guidance,
        ..UserValues::default()
    }
    .over(Some(&manifest));
    let work = ScratchDir::new("eval")?;
    let out_dir = args.out_dir.clone();
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let kinds = selected_kinds(&args.kinds)?;
    let mut set = prompts::edits(size);
    set.retain(|spec| kinds.contains(&spec.kind));
    set.truncate(args.limit.unwrap_or(set.len()));
    let mut engine = Engine::spawn(HiDreamBackend::default());
    let started = Instant::now();
    let mut jobs = Vec::new();
    for (index, spec) in set.iter().enumerate() {
        let source = work.path().join(format!("source-{index:03}.png"));
        spec.source
            .render(size)
            .to_image()
            .save(&source)
            .with_context(|| format!("writing {}", source.display()))?;
        for seed in 0..args.seeds {
            let models = EditModelChoice::new(
                model.clone(),
                llama.clone(),
                ComputeDType::F32,
                DeviceChoice::Cpu,
            );
            let instruction = spec.instruction.clone();
            let settings = EditSettings::new(models, source.clone(), instruction, &values, seed);
            let id = engine.submit(
                EditJob {
                    settings,
                    noise: None,
                }
                .into(),
            );
            jobs.push((id, index, seed));
        }
    }
    let mut by_kind: BTreeMap<&'static str, Vec<EditScore>> = BTreeMap::new();
    for &(id, index, seed) in &jobs {
        let JobOutput::Edit(edit) = wait_for(&mut engine, id, |_| Ok(()))
            .with_context(|| format!("edit {index}, seed {seed}"))?
        else {
            anyhow::bail!("edit {index}: the engine answered with another kind of job");
        };
        let result = Rgb::from_image(&edit.image);
        by_kind
            .entry(set[index].kind.name())
            .or_default()
            .push(check_edit(&set[index], &result));
        if let Some(dir) = &out_dir {
            if seed == 0 {
                // The source and what the edit should give, beside the results, to look at.
                let spec = &set[index];
                for (name, scene) in [("source", &spec.source), ("target", &spec.target)] {
                    let path = dir.join(format!("{index:03}-{name}.png"));
                    scene
                        .render(size)
                        .to_image()
                        .save(&path)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                let path = dir.join(format!("{index:03}-instruction.txt"));
                std::fs::write(&path, &spec.instruction)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let path = dir.join(format!("{index:03}-seed-{seed}.png"));
            edit.image
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    println!(
        "ShapesEval edits: {}, {} edits, {:.1} s",
        manifest.name,
        jobs.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<12} {:>8} {:>11} {:>10} {:>6}",
        "kind", "score", "carried out", "preserved", "edits"
    );
    let mut json = serde_json::Map::new();
    for (kind, scores) in &by_kind {
        let n = scores.len() as f64;
        let score = scores.iter().map(|s| s.score).sum::<f64>() / n;
        let carried = scores.iter().filter(|s| s.carried_out).count() as f64 / n;
        let preserved = scores.iter().map(|s| s.preserved).sum::<f64>() / n;
        println!(
            "{kind:<12} {score:>8.3} {carried:>11.3} {preserved:>10.3} {:>6}",
            scores.len()
        );
        json.insert(
            kind.to_string(),
            serde_json::json!({"score": score, "carried_out": carried, "preserved": preserved}),
        );
    }
    println!(
        "{}",
        serde_json::json!({"model": manifest.name, "edits": jobs.len(), "scores": json})
    );
    Ok(ExitCode::SUCCESS)
}

/// The kinds named by `--kinds`; all of them when none is named.
fn selected_kinds(names: &[String]) -> anyhow::Result<Vec<EditKind>> {
    if names.is_empty() {
        return Ok(EditKind::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            EditKind::from_name(name.trim()).with_context(|| {
                let known: Vec<_> = EditKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "--kinds: unknown edit kind {name:?}; the kinds are {}",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// A folder for the rendered sources (the edit pipeline reads its source from a file), removed
/// when the evaluation ends (also `agent-eval`'s).
pub(super) struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// `hidream-studio-{what}-{process id}` in the system's temporary folder.
    pub(super) fn new(what: &str) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("hidream-studio-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
