//! The jobs the window has sent to the engine and not yet seen end: their progress, for the
//! queue list and the progress bar.

use std::time::{Duration, Instant};

use crate::engine::JobId;

#[derive(Debug, Clone, PartialEq)]
pub enum JobPhase {
    Queued,
    Loading(String),
    /// Running; the text says what it is doing when not denoising.
    Running(String),
    Denoising {
        step: usize,
        total: usize,
    },
}

/// A submitted job as the window sees it.
#[derive(Debug, Clone)]
pub struct PendingJob {
    pub id: JobId,
    /// "Generate: a red fox…", for the queue list.
    pub title: String,
    pub phase: JobPhase,
    /// For edits: the history entry edited, kept as the result's parent.
    pub parent: Option<i64>,
    /// A Hi-DiT class job: its errors name the command's flags, which the window words as its
    /// labels.
    pub class_job: bool,
    started: Option<Instant>,
    /// When the first denoising step ended, and how many had ended by then.
    first_step: Option<(Instant, usize)>,
}

impl PendingJob {
    pub fn new(id: JobId, title: String, parent: Option<i64>) -> Self {
        Self {
            id,
            title,
            phase: JobPhase::Queued,
            parent,
            class_job: false,
            started: None,
            first_step: None,
        }
    }

    pub fn started(&mut self) {
        self.started = Some(Instant::now());
        self.phase = JobPhase::Running("starting".into());
    }

    pub fn step(&mut self, step: usize, total: usize) {
        if self.first_step.is_none() {
            self.first_step = Some((Instant::now(), step));
        }
        self.phase = JobPhase::Denoising { step, total };
    }

    /// Fraction done, for the progress bar.
    pub fn fraction(&self) -> f32 {
        match self.phase {
            JobPhase::Denoising { step, total } if total > 0 => step as f32 / total as f32,
            _ => 0.0,
        }
    }

    /// The time the remaining steps should take, from the pace of the steps since the first
    /// (which also carries the prompt encoding and is left out).
    pub fn eta(&self) -> Option<Duration> {
        let JobPhase::Denoising { step, total } = self.phase else {
            return None;
        };
        let (since, first) = self.first_step?;
        let done = step.checked_sub(first).filter(|&d| d > 0)?;
        let per_step = since.elapsed().as_secs_f64() / done as f64;
        Some(Duration::from_secs_f64(per_step * (total - step) as f64))
    }

    /// One line for the progress bar.
    pub(crate) fn status_line(&self) -> String {
        match &self.phase {
            JobPhase::Queued => "waiting in the queue".into(),
            JobPhase::Loading(what) => format!("loading {what}"),
            JobPhase::Running(stage) => stage.clone(),
            JobPhase::Denoising { step, total } => match self.eta() {
                Some(eta) => format!("step {step} of {total} · about {} left", human(eta)),
                None => format!("step {step} of {total}"),
            },
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.started.is_some()
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.0} min {:.0} s", (s / 60.0).floor(), s % 60.0)
    }
}
