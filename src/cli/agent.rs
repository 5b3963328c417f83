//! `hidream-studio agent`: one turn of the conversational mode from the command line. The
//! agent model decides between generating, editing and answering; the jobs run on the bundled
//! Shapes models (or are only planned, with --dry-run) and the decision is printed as one JSON
//! line. With --conversation the exchange is appended to a file, so a later message can refer
//! to earlier pictures ("now make it blue").

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use hidream_studio::agent::{
    Agent, AgentOptions, Attachment, ChatModel, Conversation, DryRun, JobRunner, LanguageModel,
    ScriptedModel, TurnOutcome,
};
use hidream_studio::rng::fresh_seed;
use hidream_studio::store::{StoredRecord, hidit_title, read_stored_record};
use hidream_studio::weights::bundled_chat_model;

use super::agent_jobs::EngineRunner;

/// The bundled agent model's folder name under assets/models.
pub(super) const BUNDLED_AGENT: &str = "shapes-agent";

#[derive(Args)]
pub struct AgentArgs {
    /// The agent's language model: a Llama chat model folder (config.json, the safetensors
    /// weights, tokenizer.json, tokenizer_config.json with its chat template or a
    /// chat_template.jinja). Default: the bundled assets/models/shapes-agent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A picture to send with the message (it becomes #N in the conversation).
    #[arg(long)]
    image: Option<PathBuf>,
    /// A conversation file (JSON) to continue and append this exchange to; created if missing.
    #[arg(long)]
    conversation: Option<PathBuf>,
    /// What you ask.
    #[arg(long)]
    message: String,
    /// Decide and plan, but make no pictures.
    #[arg(long)]
    dry_run: bool,
    /// Where the pictures are written, as {conversation name}-{N}.png. Default: the current
    /// folder.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Seed of the pictures (and of the agent's sampling, if its model samples). Default: a
    /// new one.
    #[arg(long)]
    seed: Option<u64>,
    /// Tokens the agent reads at once (prompt and reply); older messages are left out beyond.
    #[arg(long, hide = true)]
    context_tokens: Option<usize>,
    /// New tokens per reply, instead of the model's generation config.
    #[arg(long, hide = true)]
    max_new_tokens: Option<usize>,
    /// For tests: the model's replies, a JSON array of strings (one per time the model is
    /// asked), instead of a model.
    #[arg(long, hide = true, conflicts_with = "model")]
    scripted_replies: Option<PathBuf>,
    /// Print the decision as one JSON line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    if args.message.trim().is_empty() {
        anyhow::bail!("--message is empty: write what you want made, changed or answered");
    }
    let mut conversation = match &args.conversation {
        Some(path) => Conversation::load_or_new(path)?,
        None => Conversation::new(),
    };
    let attached = args.image.as_deref().map(attachment).transpose()?;
    let model: Box<dyn LanguageModel> = if let Some(path) = &args.scripted_replies {
        Box::new(scripted(path)?)
    } else {
        let dir = agent_model_dir(args.model.as_deref())?;
        Box::new(
            ChatModel::load(&dir, &Device::Cpu)
                .with_context(|| format!("--model {}: could not load the agent", dir.display()))?,
        )
    };
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let options = AgentOptions {
        seed,
        context_tokens: args.context_tokens,
        max_new_tokens: args.max_new_tokens,
        ..AgentOptions::default()
    };
    let agent = Agent::new(model, options);
    let mut runner: Box<dyn JobRunner> = if args.dry_run {
        Box::new(DryRun)
    } else {
        let stem = args
            .conversation
            .as_deref()
            .and_then(Path::file_stem)
            .map_or_else(|| "agent".to_owned(), |s| s.to_string_lossy().into_owned());
        let out_dir = args.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        Box::new(EngineRunner::new(&out_dir, &stem, seed)?)
    };
    let cancel = Arc::new(AtomicBool::new(false));
    stop_on_ctrl_c(&cancel);
    let outcome = agent.turn(
        &mut conversation,
        &args.message,
        attached,
        runner.as_mut(),
        &cancel,
        &mut |_| {},
    )?;
    if let Some(path) = &args.conversation {
        conversation.save(path)?;
    }
    if args.json {
        super::print_report(&format!("{}\n", decision_json(&outcome, !args.dry_run)))?;
    } else {
        print_decision(&outcome);
    }
    Ok(if outcome.cancelled {
        // What a shell expects of a command Ctrl-C ended (128 + SIGINT).
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Ctrl-C raises `cancel`: the turn stops after the token or picture in progress and ends as a
/// stop, so the conversation file records the pictures made so far and the JSON line lists them.
/// A second Ctrl-C ends the process at once. Where the handler cannot be installed, Ctrl-C
/// keeps its default (the process ends, the conversation file unchanged) and the turn runs.
fn stop_on_ctrl_c(cancel: &Arc<AtomicBool>) {
    use signal_hook::consts::SIGINT;
    use signal_hook::flag;
    // Registered first, so it sees the flag as the previous Ctrl-C left it.
    let installed = flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(cancel))
        .and_then(|_| flag::register(SIGINT, Arc::clone(cancel)));
    if let Err(error) = installed {
        eprintln!("warning: Ctrl-C will end the process without saving this turn ({error})");
    }
}

/// `--model`, else the bundled agent; a folder that is not there is named with what to do.
pub(super) fn agent_model_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) if dir.is_dir() => Ok(dir.to_owned()),
        Some(dir) => anyhow::bail!(
            "--model {}: no such folder; give the folder of a Llama chat model (config.json, \
             weights, tokenizer.json, tokenizer_config.json), or leave --model out to use the \
             bundled agent",
            dir.display()
        ),
        None => bundled_chat_model(BUNDLED_AGENT).with_context(|| {
            format!(
                "the bundled agent model {BUNDLED_AGENT} was not found (looked in \
                 $HIDREAM_STUDIO_MODELS and assets/models beside the executable): pass --model \
                 with a Llama chat model folder"
            )
        }),
    }
}

fn scripted(path: &Path) -> anyhow::Result<ScriptedModel> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--scripted-replies {}: could not read it", path.display()))?;
    let replies: Vec<String> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--scripted-replies {}: expected a JSON array of strings",
            path.display()
        )
    })?;
    Ok(ScriptedModel::new(replies))
}

/// The `--image` file as an attachment, described by the prompt recorded in it.
fn attachment(path: &Path) -> anyhow::Result<Attachment> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("--image {}: could not read the file", path.display()))?;
    image::load_from_memory(&bytes).with_context(|| {
        format!(
            "--image {}: not an image this program can read (PNG, JPEG, WebP, …)",
            path.display()
        )
    })?;
    // A record that does not parse leaves the picture undescribed; the picture still counts.
    let description = read_stored_record(&bytes)
        .ok()
        .flatten()
        .and_then(|record| match record {
            StoredRecord::Generation(r) => Some(r.settings.prompt.clone()),
            StoredRecord::Edit(r) => r.settings.description.clone(),
            StoredRecord::Hidit(r) => Some(hidit_title(&r)),
        });
    Ok(Attachment {
        path: path.to_owned(),
        description,
        history_id: None,
    })
}

/// The `--json` line: the decision, and the pictures' files when jobs ran.
pub(super) fn decision_json(outcome: &TurnOutcome, with_outputs: bool) -> serde_json::Value {
    let mut line = serde_json::json!({
        "action": outcome.action.as_str(),
        "jobs": outcome.jobs,
        "reply": outcome.reply,
    });
    if with_outputs {
        let outputs: Vec<String> = outcome
            .outputs
            .iter()
            .filter_map(|p| p.path.as_ref().map(|p| p.display().to_string()))
            .collect();
        line["outputs"] = serde_json::json!(outputs);
    }
    if !outcome.notes.is_empty() {
        line["notes"] = serde_json::json!(outcome.notes);
    }
    if outcome.cancelled {
        line["stopped"] = serde_json::json!(true);
    }
    line
}

fn print_decision(outcome: &TurnOutcome) {
    println!("{}", outcome.reply);
    for picture in &outcome.outputs {
        match &picture.path {
            Some(path) => println!("{}: {}", picture.name, path.display()),
            None => println!("{}: planned (dry run)", picture.name),
        }
    }
    for note in &outcome.notes {
        eprintln!("note: {note}");
    }
}
