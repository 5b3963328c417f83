//! `hidream-studio agent-eval`: the agent on held-out requests (tools/train-agent/heldout.jsonl).
//! Each request's earlier pictures are drawn procedurally from their prompts (the Shapes
//! renderer, so an edit is judged on its own, not on the generator's earlier mistakes) and put
//! into the conversation as the trainer does; then one turn runs. It reports whether the agent
//! chose the expected action and, unless --dry-run, whether the picture of its first job shows
//! what was asked: every ShapesEval check of the expected prompt for a generation; for an edit,
//! the expected instruction applied to the source scene, carried out (`check_edit`). Where a
//! request says how many pictures it asks for, it also counts the turns that made more.
//!
//! `--oracle` puts the expected call in the model's place (a scripted model): the same turn,
//! jobs and checks, so the picture pass rate it reports is the ceiling the image models set for
//! any agent, and the agent's own rate can be read against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use hidream_studio::agent::{
    Action, Agent, AgentOptions, Attachment, ChatModel, Conversation, ConversationMessage, DryRun,
    JobRunner, LanguageModel, Picture, PictureOrigin, ScriptedModel, TurnOutcome,
};
use hidream_studio::shapes::{
    EditInstruction, EditSpec, PromptSpec, Rgb, check_edit, check_prompt, read,
};
use serde::Deserialize;

use super::agent::agent_model_dir;
use super::agent_jobs::EngineRunner;
use super::eval_edits::ScratchDir;
use super::job_args::at_least_one;

#[derive(Args)]
pub struct AgentEvalArgs {
    /// The held-out requests, one JSON object a line: {"id", "images": [{"name", "prompt"}],
    /// "attached"?, "message", "expect": {"action", "prompt" | "image" and "instruction"}}.
    #[arg(long)]
    requests: PathBuf,
    /// The agent's model. Default: the bundled assets/models/shapes-agent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Only the first N requests.
    #[arg(long, value_parser = at_least_one::<usize>)]
    limit: Option<usize>,
    /// Judge the actions only; run no jobs.
    #[arg(long)]
    dry_run: bool,
    /// Seed of the pictures.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Put the expected call in the model's place: the pass rate the image models allow.
    #[arg(long, conflicts_with = "model")]
    oracle: bool,
    #[command(flatten)]
    output: EvalOutput,
}

/// What agent-eval prints.
#[derive(Args)]
struct EvalOutput {
    /// Print each request's outcome on stderr.
    #[arg(long)]
    verbose: bool,
    /// Print only the JSON summary line.
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct Request {
    id: String,
    #[serde(default)]
    images: Vec<Earlier>,
    #[serde(default)]
    attached: Option<String>,
    message: String,
    expect: Expect,
}

#[derive(Deserialize)]
struct Earlier {
    name: String,
    prompt: String,
}

#[derive(Deserialize)]
struct Expect {
    action: String,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    instruction: Option<String>,
    /// Pictures the request asks for (2 for "draw …, then change it"), where the file says.
    #[serde(default)]
    jobs: Option<usize>,
}

/// Side of the rendered source pictures when no editor fixes it (dry runs).
const DRY_RUN_SIZE: usize = 64;

fn read_requests(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Request>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--requests {}: could not read the file", path.display()))?;
    let mut requests = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let request: Request = serde_json::from_str(line).with_context(|| {
            format!(
                "--requests {}, line {}: not a held-out request",
                path.display(),
                n + 1
            )
        })?;
        requests.push(request);
    }
    requests.truncate(limit.unwrap_or(requests.len()));
    Ok(requests)
}

/// Writes the picture `prompt` describes, drawn by the Shapes renderer.
fn render(prompt: &str, size: usize, path: &Path) -> anyhow::Result<()> {
    let spec = PromptSpec::parse_caption(prompt).map_err(anyhow::Error::msg)?;
    spec.scene(size)
        .render(size)
        .to_image()
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// The conversation before the request: each earlier picture asked for, made and answered,
/// in the words the trainer uses (tools/train-agent/conversations.py, `history_messages`).
fn history(
    request: &Request,
    size: usize,
    dir: &Path,
) -> anyhow::Result<(Conversation, Option<Attachment>)> {
    let mut conversation = Conversation::new();
    for image in &request.images {
        let path = dir.join(format!(
            "{}-source-{}.png",
            request.id,
            image.name.trim_start_matches('#')
        ));
        render(&image.prompt, size, &path)?;
        conversation.push_message(ConversationMessage::user(format!("draw {}", image.prompt)));
        let call = hidream_studio::agent::ToolCall {
            name: hidream_studio::agent::GENERATE_TOOL.to_owned(),
            arguments: hidream_studio::agent::Json::Object(vec![(
                "prompt".to_owned(),
                hidream_studio::agent::Json::String(image.prompt.clone()),
            )]),
        };
        conversation.push_message(ConversationMessage::call(&call));
        let name = conversation.push_picture(Picture {
            name: String::new(),
            origin: PictureOrigin::Generated,
            path: Some(path),
            prompt: Some(image.prompt.clone()),
            instruction: None,
            made_from: None,
            history_id: None,
        });
        anyhow::ensure!(
            name == image.name,
            "request {}: its pictures are not named #1, #2, … in order",
            request.id
        );
        let mut tool = ConversationMessage::tool(hidream_studio::agent::generated_result(
            &name,
            &image.prompt,
        ));
        tool.pictures.push(name.clone());
        conversation.push_message(tool);
        conversation.push_message(ConversationMessage::assistant(format!(
            "Here is {name}: {}.",
            image.prompt
        )));
    }
    let attached = match &request.attached {
        Some(prompt) => {
            let path = dir.join(format!("{}-attached.png", request.id));
            render(prompt, size, &path)?;
            Some(Attachment {
                path,
                description: Some(prompt.clone()),
                history_id: None,
            })
        }
        None => None,
    };
    Ok((conversation, attached))
}

#[derive(Default)]
struct Counts {
    n: usize,
    action_ok: usize,
    /// Requests whose first job wrote exactly the expected prompt or instruction (and picture).
    exact: usize,
    pictures: usize,
    passed: usize,
    edit_score: f64,
    /// Requests whose number of pictures is known, and those where the agent made more.
    jobs_known: usize,
    extra_jobs: usize,
}

pub fn run(args: &AgentEvalArgs) -> anyhow::Result<ExitCode> {
    let requests = read_requests(&args.requests, args.limit)?;
    let options = AgentOptions {
        seed: args.seed,
        ..AgentOptions::default()
    };
    let shared = if args.oracle {
        None
    } else {
        let model_dir = agent_model_dir(args.model.as_deref())?;
        let model = ChatModel::load(&model_dir, &Device::Cpu).with_context(|| {
            format!("--model {}: could not load the agent", model_dir.display())
        })?;
        Some(Agent::new(
            Box::new(model) as Box<dyn LanguageModel>,
            options.clone(),
        ))
    };
    let scratch = ScratchDir::new("agent-eval")?;
    let mut engine = if args.dry_run {
        None
    } else {
        Some(EngineRunner::new(scratch.path(), "result", args.seed)?)
    };
    let size = engine
        .as_ref()
        .map_or(DRY_RUN_SIZE, EngineRunner::picture_size);
    let mut by_action: BTreeMap<String, Counts> = BTreeMap::new();
    let cancel = AtomicBool::new(false);
    for request in &requests {
        let (mut conversation, attached) = history(request, size, scratch.path())?;
        let runner: &mut dyn JobRunner = match engine.as_mut() {
            Some(engine) => {
                engine.set_stem(&request.id);
                engine
            }
            None => &mut DryRun,
        };
        let oracle;
        let agent = if let Some(agent) = &shared {
            agent
        } else {
            oracle = Agent::new(
                Box::new(ScriptedModel::new(expected_replies(&request.expect)))
                    as Box<dyn LanguageModel>,
                options.clone(),
            );
            &oracle
        };
        let outcome = agent
            .turn(
                &mut conversation,
                &request.message,
                attached,
                runner,
                &cancel,
                &mut |_| {},
            )
            .with_context(|| format!("request {}", request.id))?;
        let counts = by_action.entry(request.expect.action.clone()).or_default();
        counts.n += 1;
        counts.action_ok += usize::from(outcome.action.as_str() == request.expect.action);
        counts.exact += usize::from(exact(&request.expect, &outcome));
        if let Some(asked) = request.expect.jobs {
            counts.jobs_known += 1;
            counts.extra_jobs += usize::from(outcome.jobs.len() > asked);
        }
        let verdict = if args.dry_run || request.expect.action == "chat" {
            None
        } else {
            counts.pictures += 1;
            Some(judge_picture(
                request,
                &conversation,
                &outcome,
                size,
                counts,
            )?)
        };
        if args.output.verbose {
            let jobs = serde_json::to_string(&outcome.jobs).unwrap_or_default();
            let verdict = verdict.map_or(String::new(), |v| format!(" picture: {v}"));
            eprintln!(
                "{}: expected {}, got {} {jobs} {:?}{verdict}",
                request.id,
                request.expect.action,
                outcome.action.as_str(),
                outcome.reply
            );
        }
    }
    report(&by_action, requests.len(), args)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether the first job's picture shows what was asked (counted in `counts`); a turn that
/// took another action made no picture of what was asked. Returns the verdict in words:
/// "pass", or what failed (the checks a generation broke; an edit's preserved share).
fn judge_picture(
    request: &Request,
    conversation: &Conversation,
    outcome: &TurnOutcome,
    size: usize,
    counts: &mut Counts,
) -> anyhow::Result<String> {
    let first = outcome
        .outputs
        .first()
        .filter(|_| outcome.action.as_str() == request.expect.action);
    let Some(path) = first.and_then(|p| p.path.as_deref()) else {
        return Ok("fail (no picture of what was asked)".to_owned());
    };
    let image = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_rgb8();
    let result = Rgb::from_image(&image);
    let context = || format!("request {}", request.id);
    if request.expect.action == "generate" {
        let prompt = request.expect.prompt.as_deref().unwrap_or("");
        let spec = PromptSpec::parse_caption(prompt)
            .map_err(anyhow::Error::msg)
            .with_context(context)?;
        let checks = check_prompt(&spec, &read(&result));
        let failed: Vec<&str> = checks
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(category, _)| category.name())
            .collect();
        counts.passed += usize::from(failed.is_empty());
        return Ok(if failed.is_empty() {
            "pass".to_owned()
        } else {
            format!("fail ({})", failed.join(", "))
        });
    }
    let name = request.expect.image.as_deref().unwrap_or("");
    let instruction = request.expect.instruction.clone().unwrap_or_default();
    // The source as the renderer drew it (an attachment joined during the turn).
    let source = conversation
        .picture(name)
        .and_then(|p| PromptSpec::parse_caption(p.prompt.as_deref()?).ok())
        .map(|spec| spec.scene(size))
        .with_context(|| format!("request {}: no source picture {name}", request.id))?;
    let edit = EditInstruction::parse(&instruction)
        .map_err(anyhow::Error::msg)
        .with_context(context)?;
    let target = edit
        .apply(&source, size)
        .map_err(anyhow::Error::msg)
        .with_context(context)?;
    let spec = EditSpec {
        kind: edit.kind(),
        source,
        instruction,
        target,
    };
    let score = check_edit(&spec, &result);
    counts.passed += usize::from(score.carried_out);
    counts.edit_score += score.score;
    let verdict = if score.carried_out {
        "pass"
    } else {
        "fail (not carried out)"
    };
    Ok(format!("{verdict}, preserved {:.3}", score.preserved))
}

/// What a model that answers exactly as expected says: the expected call (Llama-3.1's JSON, as
/// the protocol asks) and a closing line, or a chat reply.
fn expected_replies(expect: &Expect) -> Vec<String> {
    let call = |name: &str, parameters: serde_json::Value| {
        serde_json::json!({"name": name, "parameters": parameters}).to_string()
    };
    let done = "Done.".to_owned();
    match expect.action.as_str() {
        "generate" => vec![
            call(
                hidream_studio::agent::GENERATE_TOOL,
                serde_json::json!({"prompt": expect.prompt.as_deref().unwrap_or("")}),
            ),
            done,
        ],
        "edit" => vec![
            call(
                hidream_studio::agent::EDIT_TOOL,
                serde_json::json!({
                    "image": expect.image.as_deref().unwrap_or(""),
                    "instruction": expect.instruction.as_deref().unwrap_or(""),
                }),
            ),
            done,
        ],
        _ => vec![done],
    }
}

/// Whether the first job is the expected one, word for word.
fn exact(expect: &Expect, outcome: &TurnOutcome) -> bool {
    use hidream_studio::agent::Job;
    match (expect.action.as_str(), outcome.jobs.first()) {
        ("chat", None) => outcome.action == Action::Chat,
        ("generate", Some(Job::Generate { prompt })) => expect.prompt.as_deref() == Some(prompt),
        ("edit", Some(Job::Edit { image, instruction })) => {
            expect.image.as_deref() == Some(image)
                && expect.instruction.as_deref() == Some(instruction)
        }
        _ => false,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn report(
    by_action: &BTreeMap<String, Counts>,
    n: usize,
    args: &AgentEvalArgs,
) -> anyhow::Result<()> {
    let total = |f: fn(&Counts) -> usize| by_action.values().map(f).sum::<usize>();
    let mut json = serde_json::json!({
        "requests": n,
        "action_accuracy": ratio(total(|c| c.action_ok), n),
        "exact_match": ratio(total(|c| c.exact), n),
        "oracle": args.oracle,
    });
    if total(|c| c.jobs_known) > 0 {
        json["extra_job_rate"] =
            serde_json::json!(ratio(total(|c| c.extra_jobs), total(|c| c.jobs_known)));
    }
    if !args.dry_run {
        json["picture_pass_rate"] =
            serde_json::json!(ratio(total(|c| c.passed), total(|c| c.pictures)));
    }
    for (action, c) in by_action {
        let mut row = serde_json::json!({
            "n": c.n,
            "action_accuracy": ratio(c.action_ok, c.n),
            "exact_match": ratio(c.exact, c.n),
        });
        if c.jobs_known > 0 {
            row["extra_job_rate"] = serde_json::json!(ratio(c.extra_jobs, c.jobs_known));
        }
        if !args.dry_run && action != "chat" {
            row["picture_pass_rate"] = serde_json::json!(ratio(c.passed, c.pictures));
            if action == "edit" {
                row["mean_edit_score"] = serde_json::json!(if c.pictures == 0 {
                    0.0
                } else {
                    c.edit_score / c.pictures as f64
                });
            }
        }
        json[action.as_str()] = row;
    }
    if !args.output.json {
        println!(
            "agent-eval: {n} requests from {}{}",
            args.requests.display(),
            if args.oracle {
                " (oracle: the expected call in the model's place)"
            } else {
                ""
            }
        );
        println!(
            "{:<10} {:>5} {:>8} {:>8} {:>9}",
            "expected", "n", "action", "exact", "picture"
        );
        for (action, c) in by_action {
            let picture = if args.dry_run || action == "chat" {
                "-".to_owned()
            } else {
                format!("{:.3}", ratio(c.passed, c.pictures))
            };
            println!(
                "{action:<10} {:>5} {:>8.3} {:>8.3} {picture:>9}",
                c.n,
                ratio(c.action_ok, c.n),
                ratio(c.exact, c.n)
            );
        }
    }
    super::print_report(&format!("{json}\n"))
}
