//! Running engine jobs from the command line, one after another, each with a progress bar.

use std::io::IsTerminal;
use std::time::Duration;

use hidream_studio::engine::{Engine, Event, JobId};
use hidream_studio::pipelines::{HiDreamBackend, Job, JobOutput};

use super::previews::PreviewWriter;
use super::progress_bar::ProgressBar;

/// Submits the job to a fresh engine and follows its events until it ends. With `previews`,
/// each step's clean-image estimate is written as a PNG (here, not on the engine thread, so
/// the denoising loop never waits for it).
pub fn run_job(
    backend: HiDreamBackend,
    job: Job,
    quiet: bool,
    previews: Option<&PreviewWriter>,
) -> anyhow::Result<JobOutput> {
    let mut output = None;
    run_jobs(backend, vec![job], quiet, previews, |_, out| {
        output = Some(out);
        Ok(())
    })?;
    output.ok_or_else(|| anyhow::anyhow!("internal error: the job ended without an output"))
}

/// Runs `jobs` in order on one engine (the models load once) and hands each output to
/// `done` with its index as it comes, so a later failure keeps the earlier results. The
/// first failure ends the run; dropping the engine cancels the jobs after it.
pub fn run_jobs(
    backend: HiDreamBackend,
    jobs: Vec<Job>,
    quiet: bool,
    previews: Option<&PreviewWriter>,
    mut done: impl FnMut(usize, JobOutput) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut engine = Engine::spawn(backend);
    let ids: Vec<JobId> = jobs.into_iter().map(|job| engine.submit(job)).collect();
    for (index, id) in ids.into_iter().enumerate() {
        let mut bar = ProgressBar::new(std::io::stderr().is_terminal() && !quiet);
        let output = wait_for(&mut engine, id, |event| {
            match event {
                Event::Loading { what, .. } => bar.message(&format!("loading {what}")),
                Event::Stage { stage, .. } => bar.message(stage),
                Event::Step {
                    step,
                    total,
                    preview,
                    ..
                } => {
                    bar.step(*step, *total);
                    if let (Some(writer), Some(x0)) = (previews, preview) {
                        writer.write(*step, x0)?;
                    }
                }
                _ => {}
            }
            Ok(())
        });
        bar.finish();
        done(index, output?)?;
    }
    Ok(())
}

/// Follows the engine's events until job `id` ends: its output, or its failure as the error.
/// Every other event of the job is handed to `on_event` first.
pub fn wait_for(
    engine: &mut Engine<HiDreamBackend>,
    id: JobId,
    mut on_event: impl FnMut(&Event<JobOutput>) -> anyhow::Result<()>,
) -> anyhow::Result<JobOutput> {
    loop {
        let Some(event) = engine.next_event_timeout(Duration::from_hours(1)) else {
            anyhow::bail!("the engine stopped answering");
        };
        if event.id() != id {
            continue;
        }
        match event {
            Event::Finished { output, .. } => return Ok(output),
            Event::Failed { error, setting, .. } => {
                anyhow::bail!("{}", setting.map_or(error, |s| s.for_cli()))
            }
            Event::Cancelled { .. } => anyhow::bail!("the job was cancelled"),
            other => on_event(&other)?,
        }
    }
}
