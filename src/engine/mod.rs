//! The background engine: one thread that owns the models, runs jobs one at a time in the order
//! they were submitted, and reports what happens as [`Event`]s.
//!
//! The window and the command line both drive models through this; neither ever blocks on
//! model work. What a job *does* is up to a [`Backend`]; the engine provides ordering,
//! cancellation between steps, model reuse across jobs and recovery from panics.

mod backend;
mod event;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

pub use backend::{Backend, Cancelled, JobContext, JobError};
pub use event::{Event, JobId};

use worker::{QueuedJob, Worker};

type CancelFlags = Arc<Mutex<HashMap<JobId, Arc<AtomicBool>>>>;

/// Called after every event, from the engine thread: the window uses it to request a repaint.
pub(crate) type Notifier = Box<dyn Fn() + Send + Sync + 'static>;

/// A handle to the engine thread. Dropping it cancels whatever is pending and waits for the
/// thread to finish its current step.
pub struct Engine<B: Backend> {
    jobs: Option<Sender<QueuedJob<B::Request>>>,
    events_tx: Sender<Event<B::Output>>,
    events: Receiver<Event<B::Output>>,
    cancel_flags: CancelFlags,
    notify: Arc<Notifier>,
    next_id: JobId,
    thread: Option<JoinHandle<()>>,
}

impl<B: Backend> Engine<B> {
    pub fn spawn(backend: B) -> Self {
        Self::spawn_with_notifier(backend, Box::new(|| {}))
    }

    pub fn spawn_with_notifier(backend: B, notify: Notifier) -> Self {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let cancel_flags = CancelFlags::default();
        let notify = Arc::new(notify);
        let worker = Worker::new(
            backend,
            jobs_rx,
            events_tx.clone(),
            cancel_flags.clone(),
            notify.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("hidream-engine".into())
            .spawn(move || worker.run())
            .ok();
        Self {
            jobs: Some(jobs_tx),
            events_tx,
            events: events_rx,
            cancel_flags,
            notify,
            next_id: 1,
            thread,
        }
    }

    /// Queues a job; its events carry the returned id.
    pub fn submit(&mut self, request: B::Request) -> JobId {
        let id = self.next_id;
        self.next_id += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        self.flags().insert(id, cancel.clone());
        // Queued goes out before the job is handed over, so it always precedes the job's own
        // events.
        self.emit(Event::Queued { id });
        let sent = self.jobs.as_ref().is_some_and(|jobs| {
            jobs.send(QueuedJob {
                id,
                request,
                cancel,
            })
            .is_ok()
        });
        if !sent {
            self.flags().remove(&id);
            self.emit(Event::Failed {
                id,
                error: "the engine thread is not running (it could not be started or has \
                        stopped); restart HiDream Studio"
                    .into(),
                setting: None,
            });
        }
        id
    }

    /// Asks a queued or running job to stop. A running job stops at its next step boundary.
    /// Returns false when the job is unknown or already over.
    pub fn cancel(&self, id: JobId) -> bool {
        match self.flags().get(&id) {
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Cancels every queued and running job.
    pub fn cancel_all(&self) {
        for flag in self.flags().values() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Jobs submitted and not yet finished, failed or cancelled.
    pub fn pending(&self) -> usize {
        self.flags().len()
    }

    /// The event stream, for callers that select over several channels.
    pub fn events(&self) -> &Receiver<Event<B::Output>> {
        &self.events
    }

    pub(crate) fn try_next_event(&self) -> Option<Event<B::Output>> {
        self.events.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event.
    pub fn next_event_timeout(&self, timeout: Duration) -> Option<Event<B::Output>> {
        self.events.recv_timeout(timeout).ok()
    }

    fn emit(&self, event: Event<B::Output>) {
        // The receiver lives in `self`, so sending cannot fail while we exist.
        let _ = self.events_tx.send(event);
        (self.notify)();
    }

    fn flags(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<AtomicBool>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.cancel_flags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B: Backend> Drop for Engine<B> {
    fn drop(&mut self) {
        self.cancel_all();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
