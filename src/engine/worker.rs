use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::backend::{Backend, JobContext, JobError};
use super::event::{Event, JobId};
use super::{CancelFlags, Notifier};
use crate::settings::SettingsError;

pub(super) struct QueuedJob<R> {
    pub id: JobId,
    pub request: R,
    pub cancel: Arc<AtomicBool>,
}

/// The engine thread's state: the backend and the models it loaded last.
pub(super) struct Worker<B: Backend> {
    backend: B,
    loaded: Option<(B::ModelKey, B::Models)>,
    jobs: Receiver<QueuedJob<B::Request>>,
    events: Sender<Event<B::Output>>,
    cancel_flags: CancelFlags,
    notify: Arc<Notifier>,
}

impl<B: Backend> Worker<B> {
    pub fn new(
        backend: B,
        jobs: Receiver<QueuedJob<B::Request>>,
        events: Sender<Event<B::Output>>,
        cancel_flags: CancelFlags,
        notify: Arc<Notifier>,
    ) -> Self {
        Self {
            backend,
            loaded: None,
            jobs,
            events,
            cancel_flags,
            notify,
        }
    }

    /// Serves jobs until the handle is dropped.
    pub fn run(mut self) {
        while let Ok(job) = self.jobs.recv() {
            let id = job.id;
            let event = if job.cancel.load(Ordering::SeqCst) {
                Event::Cancelled { id }
            } else {
                self.serve(&job)
            };
            self.cancel_flags
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            self.send(event);
        }
    }

    /// Runs one job and returns its terminal event. A panic anywhere in loading or running is
    /// turned into a failure and the loaded models are dropped, since a panic may have left
    /// them half-updated.
    fn serve(&mut self, job: &QueuedJob<B::Request>) -> Event<B::Output> {
        let id = job.id;
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.load_and_run(job)));
        match outcome {
            Ok(Ok(output)) => Event::Finished {
                id,
                output,
                elapsed: started.elapsed(),
            },
            Ok(Err(JobError::Cancelled)) => Event::Cancelled { id },
            Ok(Err(JobError::Failed(error))) => Event::Failed {
                id,
                error: format!("{error:#}"),
                // Only a bare one: context around it would be lost in a place's wording.
                setting: error
                    .chain()
                    .nth(1)
                    .is_none()
                    .then(|| error.downcast_ref::<SettingsError>().cloned())
                    .flatten(),
            },
            Err(panic) => {
                self.loaded = None;
                Event::Failed {
                    id,
                    error: format!(
                        "internal error: {} (this is a bug in HiDream Studio; the models were \
                         unloaded and the next job starts fresh)",
                        panic_message(panic.as_ref())
                    ),
                    setting: None,
                }
            }
        }
    }

    fn load_and_run(&mut self, job: &QueuedJob<B::Request>) -> Result<B::Output, JobError> {
        let key = self.backend.model_key(&job.request);
        let reuse = matches!(&self.loaded, Some((loaded, _)) if *loaded == key);
        if !reuse {
            // Free the old models before loading new ones: two 17B models do not fit together.
            self.loaded = None;
            self.send(Event::Loading {
                id: job.id,
                what: self.backend.describe(&key),
            });
            let models = self.backend.load(&key)?;
            self.loaded = Some((key, models));
        }
        if job.cancel.load(Ordering::SeqCst) {
            return Err(JobError::Cancelled);
        }
        self.send(Event::Started { id: job.id });
        let notify: &Notifier = &self.notify;
        let mut ctx = JobContext::new(job.id, &job.cancel, &self.events, notify);
        let Some((_, models)) = self.loaded.as_mut() else {
            return Err(JobError::Failed(anyhow::anyhow!("models were not loaded")));
        };
        self.backend.run(models, &job.request, &mut ctx)
    }

    fn send(&self, event: Event<B::Output>) {
        let _ = self.events.send(event);
        (self.notify)();
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
