//! The engine's contract: ordered events, cancellation between steps, model reuse, and a panic
//! in a job reported as a failure while the engine keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use hidream_studio::engine::{Backend, Engine, Event, JobContext, JobError, JobId};

const WAIT: Duration = Duration::from_secs(10);

enum Action {
    Finish,
    Panic,
    Fail,
}

struct Request {
    model: &'static str,
    steps: usize,
    /// When set, each step waits for a token, so tests control exactly where a job is.
    gate: Option<Receiver<()>>,
    action: Action,
}

impl Request {
    fn new(model: &'static str, steps: usize) -> Self {
        Self {
            model,
            steps,
            gate: None,
            action: Action::Finish,
        }
    }

    fn gated(model: &'static str, steps: usize) -> (Self, Sender<()>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Self {
                gate: Some(rx),
                ..Self::new(model, steps)
            },
            tx,
        )
    }
}

/// Loads a "model" per name and counts loads; a job's output is (model name, load number).
#[derive(Default)]
struct FakeBackend {
    loads: Arc<AtomicUsize>,
}

impl Backend for FakeBackend {
    type Request = Request;
    type Output = (String, usize);
    type ModelKey = String;
    type Models = (String, usize);

    fn model_key(&self, request: &Request) -> String {
        request.model.to_string()
    }

    fn load(&mut self, key: &String) -> anyhow::Result<(String, usize)> {
        if key == "broken" {
            anyhow::bail!("/models/broken: transformer/config.json does not parse");
        }
        let n = self.loads.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((key.clone(), n))
    }

    fn run(
        &mut self,
        models: &mut (String, usize),
        request: &Request,
        ctx: &mut JobContext<'_, Self::Output>,
    ) -> Result<Self::Output, JobError> {
        ctx.stage("encoding")?;
        for step in 1..=request.steps {
            if let Some(gate) = &request.gate {
                gate.recv_timeout(WAIT)
                    .map_err(|_| JobError::Failed(anyhow::anyhow!("test gate timed out")))?;
            }
            ctx.step(step, request.steps, None)?;
        }
        // Something made along the way (an agent turn's pictures), from a second link.
        ctx.clone().partial((format!("{} steps", request.steps), 0));
        match request.action {
            Action::Finish => Ok(models.clone()),
            Action::Panic => panic!("expert index out of range"),
            Action::Fail => Err(JobError::Failed(anyhow::anyhow!(
                "out of memory while decoding"
            ))),
        }
    }
}

type FakeEvent = Event<(String, usize)>;

/// Reads the engine's event stream and files every event under its job, so waiting for one
/// job never loses another job's events.
struct Events<'a> {
    engine: &'a Engine<FakeBackend>,
    by_job: std::collections::HashMap<JobId, Vec<FakeEvent>>,
}

impl<'a> Events<'a> {
    fn new(engine: &'a Engine<FakeBackend>) -> Self {
        Self {
            engine,
            by_job: std::collections::HashMap::default(),
        }
    }

    fn pull(&mut self) {
        let event = self
            .engine
            .next_event_timeout(WAIT)
            .expect("the engine stopped reporting");
        self.by_job.entry(event.id()).or_default().push(event);
    }

    /// Every event of job `id` up to and including its terminal one.
    fn all(&mut self, id: JobId) -> Vec<FakeEvent> {
        while !self
            .by_job
            .get(&id)
            .is_some_and(|e| e.last().is_some_and(Event::is_terminal))
        {
            self.pull();
        }
        self.by_job.remove(&id).unwrap_or_default()
    }

    /// Waits until job `id` has reported an event matching `pred`.
    fn wait_for(&mut self, id: JobId, pred: impl Fn(&FakeEvent) -> bool) {
        while !self.by_job.get(&id).is_some_and(|e| e.iter().any(&pred)) {
            if let Some(last) = self.by_job.get(&id).and_then(|e| e.last()) {
                assert!(!last.is_terminal(), "job ended early: {last:?}");
            }
            self.pull();
        }
    }
}

fn events_of(engine: &Engine<FakeBackend>, id: JobId) -> Vec<FakeEvent> {
    Events::new(engine).all(id)
}

fn kind(e: &Event<(String, usize)>) -> String {
    match e {
        Event::Queued { .. } => "queued".into(),
        Event::Loading { .. } => "loading".into(),
        Event::Started { .. } => "started".into(),
        Event::Stage { stage, .. } => format!("stage:{stage}"),
        Event::Step { step, total, .. } => format!("step {step}/{total}"),
        Event::Partial { output, .. } => format!("partial:{}", output.0),
        Event::Finished { .. } => "finished".into(),
        Event::Failed { .. } => "failed".into(),
        Event::Cancelled { .. } => "cancelled".into(),
    }
}

#[test]
fn events_come_in_order() {
    let mut engine = Engine::spawn(FakeBackend::default());
    let id = engine.submit(Request::new("full", 3));
    let kinds: Vec<String> = events_of(&engine, id).iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "queued",
            "loading",
            "started",
            "stage:encoding",
            "step 1/3",
            "step 2/3",
            "step 3/3",
            "partial:3 steps",
            "finished"
        ]
    );
    assert_eq!(engine.pending(), 0);
}

#[test]
fn models_are_reused_until_the_folder_changes() {
    let backend = FakeBackend::default();
    let loads = backend.loads.clone();
    let mut engine = Engine::spawn(backend);
    let models = ["full", "full", "full", "dev", "full"];
    let ids: Vec<JobId> = models
        .iter()
        .map(|m| engine.submit(Request::new(m, 1)))
        .collect();
    let mut outputs = Vec::new();
    let mut loading = Vec::new();
    for id in ids {
        let events = events_of(&engine, id);
        loading.push(events.iter().any(|e| matches!(e, Event::Loading { .. })));
        match events.last() {
            Some(Event::Finished { output, .. }) => outputs.push(output.clone()),
            other => panic!("job {id} did not finish: {other:?}"),
        }
    }
    assert_eq!(loads.load(Ordering::SeqCst), 3);
    assert_eq!(loading, [true, false, false, true, true]);
    let load_numbers: Vec<usize> = outputs.iter().map(|(_, n)| *n).collect();
    assert_eq!(load_numbers, [1, 1, 1, 2, 3]);
}

#[test]
fn cancel_takes_effect_at_the_next_step() {
    let mut engine = Engine::spawn(FakeBackend::default());
    let (request, gate) = Request::gated("full", 10);
    let id = engine.submit(request);
    gate.send(()).unwrap();
    let mut events = Events::new(&engine);
    events.wait_for(id, |e| matches!(e, Event::Step { step: 1, .. }));
    assert!(engine.cancel(id));
    gate.send(()).unwrap();
    let all: Vec<String> = events.all(id).iter().map(kind).collect();
    // Step 2 was already under way when the cancel arrived; nothing runs after it.
    assert_eq!(
        all[all.len() - 3..],
        ["step 1/10", "step 2/10", "cancelled"]
    );
    assert!(
        !engine.cancel(id),
        "a finished job cannot be cancelled again"
    );

    // The engine keeps serving, with the same models.
    let next = engine.submit(Request::new("full", 2));
    let events = events_of(&engine, next);
    assert!(matches!(events.last(), Some(Event::Finished { .. })));
    assert!(!events.iter().any(|e| matches!(e, Event::Loading { .. })));
}

#[test]
fn queued_jobs_can_be_cancelled_before_they_start() {
    let mut engine = Engine::spawn(FakeBackend::default());
    let (first, gate) = Request::gated("full", 1);
    let running = engine.submit(first);
    let queued_a = engine.submit(Request::new("full", 1));
    let queued_b = engine.submit(Request::new("dev", 1));
    let mut events = Events::new(&engine);
    events.wait_for(running, |e| matches!(e, Event::Stage { .. }));
    assert_eq!(engine.pending(), 3);
    engine.cancel(queued_a);
    gate.send(()).unwrap();
    assert!(matches!(
        events.all(running).last(),
        Some(Event::Finished { .. })
    ));
    assert_eq!(
        events.all(queued_a).iter().map(kind).collect::<Vec<_>>(),
        ["queued", "cancelled"]
    );
    assert!(matches!(
        events.all(queued_b).last(),
        Some(Event::Finished { .. })
    ));
}

#[test]
fn cancel_all_stops_the_running_job_and_the_queue() {
    let mut engine = Engine::spawn(FakeBackend::default());
    let (first, gate) = Request::gated("full", 5);
    let running = engine.submit(first);
    let queued: Vec<JobId> = (0..3)
        .map(|_| engine.submit(Request::new("full", 5)))
        .collect();
    gate.send(()).unwrap();
    let mut events = Events::new(&engine);
    events.wait_for(running, |e| matches!(e, Event::Step { step: 1, .. }));
    engine.cancel_all();
    gate.send(()).unwrap();
    assert!(matches!(
        events.all(running).last(),
        Some(Event::Cancelled { .. })
    ));
    for id in queued {
        let kinds: Vec<String> = events.all(id).iter().map(kind).collect();
        assert_eq!(kinds, ["queued", "cancelled"]);
    }
    assert_eq!(engine.pending(), 0);
}

#[test]
fn a_panic_is_a_failure_and_the_engine_keeps_serving() {
    let backend = FakeBackend::default();
    let loads = backend.loads.clone();
    let mut engine = Engine::spawn(backend);
    let ok = engine.submit(Request::new("full", 1));
    assert!(matches!(
        events_of(&engine, ok).last(),
        Some(Event::Finished { .. })
    ));

    let boom = engine.submit(Request {
        action: Action::Panic,
        ..Request::new("full", 2)
    });
    match events_of(&engine, boom).last() {
        Some(Event::Failed { error, .. }) => {
            assert!(
                error.contains("internal error") && error.contains("expert index out of range"),
                "{error}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // Models touched by a panic are not trusted: the next job loads them again.
    let after = engine.submit(Request::new("full", 1));
    match events_of(&engine, after).last() {
        Some(Event::Finished { output, .. }) => assert_eq!(output.1, 2),
        other => panic!("expected the engine to recover, got {other:?}"),
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[test]
fn load_and_run_errors_are_reported_readably() {
    let mut engine = Engine::spawn(FakeBackend::default());
    let bad_load = engine.submit(Request::new("broken", 1));
    match events_of(&engine, bad_load).last() {
        Some(Event::Failed { error, .. }) => {
            assert!(error.contains("config.json does not parse"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let bad_run = engine.submit(Request {
        action: Action::Fail,
        ..Request::new("full", 1)
    });
    match events_of(&engine, bad_run).last() {
        Some(Event::Failed { error, .. }) => assert_eq!(error, "out of memory while decoding"),
        other => panic!("{other:?}"),
    }
    let fine = engine.submit(Request::new("full", 1));
    assert!(matches!(
        events_of(&engine, fine).last(),
        Some(Event::Finished { .. })
    ));
}

#[test]
fn dropping_the_engine_cancels_and_joins() {
    let mut engine = Engine::spawn(FakeBackend::default());
    let (request, gate) = Request::gated("full", 1000);
    let id = engine.submit(request);
    gate.send(()).unwrap();
    Events::new(&engine).wait_for(id, |e| matches!(e, Event::Step { step: 1, .. }));
    // Let the job reach its next step boundary, where it sees the cancel and returns.
    gate.send(()).unwrap();
    drop(engine);
}

#[test]
fn the_notifier_fires_for_every_event() {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let mut engine = Engine::spawn_with_notifier(
        FakeBackend::default(),
        Box::new(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        }),
    );
    let id = engine.submit(Request::new("full", 2));
    let n = events_of(&engine, id).len();
    // Joining the engine thread guarantees the notification after the last event ran.
    drop(engine);
    assert_eq!(count.load(Ordering::SeqCst), n);
}
