//! `agent` on the command line: the JSON decision line, conversations appended to a file, long
//! conversations truncated with a note, and bad input refused before the model loads, leaving
//! the conversation file as it was. The tiny random chat fixture answers garbage, which is
//! all these need (its replies are chat or malformed calls, never a crash).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{fixtures, succeed};

fn agent(args: &[&str], conversation: Option<&Path>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    command
        .arg("agent")
        .arg("--model")
        .arg(fixtures().join("chat").join("model"))
        .args(["--seed", "1", "--max-new-tokens", "12"])
        .args(args);
    if let Some(path) = conversation {
        command.arg("--conversation").arg(path);
    }
    command
}

fn decision(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

fn saved(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_dry_run_prints_one_decision_line_and_appends_the_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.json");
    let out = succeed(&mut agent(
        &[
            "--message",
            "draw a red circle on the left",
            "--dry-run",
            "--json",
        ],
        Some(&file),
    ));
    let line = decision(&out);
    let action = line["action"].as_str().unwrap();
    assert!(["generate", "edit", "chat"].contains(&action), "{line}");
    assert!(
        line["jobs"].is_array() && line["reply"].is_string(),
        "{line}"
    );
    assert!(
        line.get("outputs").is_none(),
        "a dry run writes no pictures: {line}"
    );
    let first = saved(&file);
    let messages = first["messages"].as_array().unwrap();
    assert_eq!(messages[0]["speaker"], "user");
    assert_eq!(messages[0]["content"], "draw a red circle on the left");
    assert_eq!(messages.last().unwrap()["speaker"], "assistant");
    assert_eq!(messages.last().unwrap()["content"], line["reply"]);

    // A second message continues the same file: the first exchange stays as it was.
    succeed(&mut agent(
        &["--message", "now make it blue", "--dry-run", "--json"],
        Some(&file),
    ));
    let second = saved(&file);
    let grown = second["messages"].as_array().unwrap();
    assert!(grown.len() > messages.len());
    assert_eq!(&grown[..messages.len()], messages.as_slice());
    assert_eq!(grown[messages.len()]["content"], "now make it blue");
}

#[test]
fn an_attached_picture_is_named_and_described_by_its_recorded_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.json");
    let png = dir.path().join("plain.png");
    image::RgbImage::new(8, 8).save(&png).unwrap();
    succeed(&mut agent(
        &[
            "--message",
            "what is this?",
            "--image",
            png.to_str().unwrap(),
            "--dry-run",
        ],
        Some(&file),
    ));
    let saved = saved(&file);
    assert_eq!(
        saved["messages"][0]["content"],
        "[image #1 attached: no description]\nwhat is this?"
    );
    assert_eq!(saved["pictures"][0]["name"], "#1");
    assert_eq!(saved["pictures"][0]["origin"], "attached");
}

#[test]
fn a_conversation_longer_than_the_window_is_truncated_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.json");
    for i in 0..3 {
        let message = format!(
            "message {i}: a blue square at the top, a green star below it, a red ring to the \
             left of the star and a yellow triangle on the right, all on black"
        );
        succeed(&mut agent(
            &["--message", &message, "--dry-run", "--json"],
            Some(&file),
        ));
    }
    // The fixture's byte-level tokenizer makes the protocol's system text and tools about
    // 1300 tokens; 1500 leaves room for the latest message but not for the three before it.
    let out = succeed(&mut agent(
        &[
            "--message",
            "again",
            "--dry-run",
            "--json",
            "--context-tokens",
            "1500",
        ],
        Some(&file),
    ));
    let line = decision(&out);
    let notes = line["notes"].as_array().expect("a note on truncation");
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .contains("oldest messages were left out"),
        "{line}"
    );
}

fn refused(args: &[&str], conversation: Option<&Path>, expected: &[&str]) {
    let before = conversation.map(|p| std::fs::read(p).unwrap());
    let out = agent(args, conversation).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: no decision line");
    for e in expected {
        assert!(err.contains(e), "{args:?}: expected {e:?} in {err}");
    }
    if let (Some(path), Some(before)) = (conversation, before) {
        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "the file is untouched"
        );
    }
}

#[test]
fn bad_input_is_refused_with_the_flag_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.json");
    succeed(&mut agent(
        &["--message", "hello", "--dry-run"],
        Some(&file),
    ));
    refused(
        &["--message", "  ", "--dry-run"],
        Some(&file),
        &["--message is empty"],
    );
    let not_image = dir.path().join("notes.png");
    std::fs::write(&not_image, "not a picture").unwrap();
    refused(
        &["--message", "hi", "--image", not_image.to_str().unwrap()],
        Some(&file),
        &["--image", "notes.png", "not an image"],
    );
    let missing = dir.path().join("missing.png");
    refused(
        &["--message", "hi", "--image", missing.to_str().unwrap()],
        Some(&file),
        &["--image", "missing.png", "could not read"],
    );
    let mut no_model = Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    no_model
        .args(["agent", "--message", "hi", "--dry-run", "--conversation"])
        .arg(&file)
        .arg("--model")
        .arg(dir.path().join("no-model"));
    let before = std::fs::read(&file).unwrap();
    let out = no_model.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no-model: no such folder"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    let damaged = dir.path().join("damaged.json");
    std::fs::write(&damaged, r#"{"messages": "#).unwrap();
    refused(
        &["--message", "hi", "--dry-run"],
        Some(&damaged),
        &["damaged.json", "not a conversation file", "--conversation"],
    );
}

/// The model's replies for one `agent` run, as a file for --scripted-replies.
fn script(dir: &Path, name: &str, replies: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(replies).unwrap()).unwrap();
    path
}

/// `agent --json` answering `message` with the replies of `script`, appending to
/// `conversation`, pictures into `out`.
fn scripted_command(script: &Path, message: &str, conversation: &Path, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hidream-studio"));
    command
        .arg("agent")
        .arg("--scripted-replies")
        .arg(script)
        .args(["--message", message, "--seed", "3", "--json"])
        .arg("--conversation")
        .arg(conversation)
        .arg("--out-dir")
        .arg(out);
    command
}

fn scripted_turn(script: &Path, message: &str, conversation: &Path, out: &Path) -> Output {
    succeed(&mut scripted_command(script, message, conversation, out))
}

#[test]
fn a_generation_then_an_edit_of_it_run_on_the_bundled_shapes_models() {
    use hidream_studio::shapes::{Category, Colour, PromptSpec, Rgb, check_prompt, read};
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    let out = dir.path().join("out");
    let draw = script(
        dir.path(),
        "draw.json",
        &[
            r#"{"name": "generate_image", "parameters": {"prompt": "a red circle on the left, on white"}}"#,
            "Here is #1: a red circle on the left, on white.",
        ],
    );
    let first = decision(&scripted_turn(
        &draw,
        "draw a red circle on the left",
        &chat,
        &out,
    ));
    assert_eq!(first["action"], "generate");
    assert_eq!(
        first["jobs"],
        serde_json::json!([{"kind": "generate", "prompt": "a red circle on the left, on white"}])
    );
    let made = first["outputs"][0].as_str().unwrap().to_owned();
    assert!(made.ends_with("chat-1.png"), "{first}");
    let picture = Rgb::from_image(&image::open(&made).unwrap().to_rgb8());
    let spec = PromptSpec::parse_caption("a red circle on the left, on white").unwrap();
    let checks = check_prompt(&spec, &read(&picture));
    assert!(
        checks.contains(&(Category::SingleColourPosition, true)),
        "{checks:?}"
    );

    let blue = script(
        dir.path(),
        "blue.json",
        &[
            r##"{"name": "edit_image", "parameters": {"image": "#1", "instruction": "make the red circle blue"}}"##,
            "Here is #2.",
        ],
    );
    let second = decision(&scripted_turn(&blue, "now make it blue", &chat, &out));
    assert_eq!(second["action"], "edit");
    assert_eq!(second["jobs"][0]["image"], "#1");
    let edited = second["outputs"][0].as_str().unwrap();
    assert!(edited.ends_with("chat-2.png"), "{second}");
    let reading = read(&Rgb::from_image(&image::open(edited).unwrap().to_rgb8()));
    let colours: Vec<Colour> = reading.objects.iter().map(|o| o.colour).collect();
    assert!(colours.contains(&Colour::Blue), "{colours:?}");
    assert!(!colours.contains(&Colour::Red), "{colours:?}");
    let saved = saved(&chat);
    assert_eq!(saved["pictures"][1]["made_from"], "#1");
    assert_eq!(saved["pictures"][1]["origin"], "edited");
    // The edited picture's PNG carries the edit's settings, instruction included.
    let bytes = std::fs::read(edited).unwrap();
    let record = hidream_studio::store::read_stored_record(&bytes).unwrap();
    assert!(matches!(
        record,
        Some(hidream_studio::store::StoredRecord::Edit(_))
    ));
}

/// One `agent --json` turn of the bundled agent in the conversation file `chat`.
fn bundled_turn(chat: &Path, args: &[&str]) -> serde_json::Value {
    decision(&succeed(
        Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
            .arg("agent")
            .args(args)
            .arg("--json")
            .arg("--conversation")
            .arg(chat),
    ))
}

/// The bundled agent end to end: its own decisions, jobs on the bundled Shapes models.
#[test]
fn the_bundled_agent_draws_then_edits_its_own_picture() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    let out_dir = dir.path().to_str().unwrap();
    let turn = |message: &str| {
        bundled_turn(
            &chat,
            &["--message", message, "--seed", "1", "--out-dir", out_dir],
        )
    };
    let first = turn("draw a red circle on the left");
    assert_eq!(first["action"], "generate", "{first}");
    assert_eq!(first["outputs"].as_array().unwrap().len(), 1, "{first}");
    let second = turn("now make it blue");
    assert_eq!(second["action"], "edit", "{second}");
    assert_eq!(second["jobs"][0]["image"], "#1", "{second}");
    let outputs = second["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{second}");
    assert!(Path::new(outputs[0].as_str().unwrap()).is_file());
    let saved = saved(&chat);
    let pictures = saved["pictures"].as_array().unwrap();
    assert_eq!(pictures.len(), 2);
    assert_eq!(pictures[1]["made_from"], "#1");
}

/// The bundled agent, asked to take the ring out of a red ring and a blue square, writes
/// "remove the blue ring" (the shape from the message, the colour from the other object):
/// the planner runs the likeliest call that names an object the picture has, and says so.
#[test]
fn the_bundled_agents_edit_is_grounded_in_the_objects_of_its_picture() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    let turn = |message: &str| bundled_turn(&chat, &["--message", message, "--dry-run"]);
    let first = turn("draw a red ring to the left of a blue square on black");
    assert_eq!(
        first["jobs"][0]["prompt"], "a red ring to the left of a blue square, on black",
        "{first}"
    );
    let second = turn("get rid of the ring");
    assert_eq!(
        second["jobs"][0]["instruction"], "remove the red ring",
        "{second}"
    );
    let note = second["notes"][0].as_str().unwrap_or_default();
    assert!(
        note.contains("\"remove the blue ring\", but #1 has no blue ring"),
        "{second}"
    );
    // The conversation keeps the call that ran.
    let saved = saved(&chat);
    let calls: Vec<&serde_json::Value> = saved["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("tool_call"))
        .collect();
    assert_eq!(
        calls[1]["parameters"]["instruction"], "remove the red ring",
        "{saved}"
    );
}

/// Ctrl-C mid-plan: the picture in progress finishes, the plan stops there, and the
/// conversation file and the JSON line keep what was made (exit status 130, as for any
/// command Ctrl-C ends).
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_plan_and_keeps_what_it_made() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    let out = dir.path().join("out");
    let call = |colour: &str| {
        format!(
            r#"{{"name": "generate_image", "parameters": {{"prompt": "a {colour} circle in the centre, on white"}}}}"#
        )
    };
    let calls = ["red", "green", "blue", "yellow"].map(call);
    let mut replies: Vec<&str> = calls.iter().map(String::as_str).collect();
    replies.push("Here are four circles.");
    let plan = script(dir.path(), "plan.json", &replies);
    let child = scripted_command(&plan, "four circles, one of each colour", &chat, &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.join("chat-1.png").exists() {
        assert!(
            started.elapsed() < Duration::from_mins(5),
            "no first picture"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = decision(&output);
    assert_eq!(line["stopped"], true, "{line}");
    assert!(
        line["reply"].as_str().unwrap().starts_with("Stopped."),
        "{line}"
    );
    let outputs = line["outputs"].as_array().unwrap();
    assert!(
        (1..4).contains(&outputs.len()),
        "stopped after the first picture, before the fourth: {line}"
    );
    for path in outputs {
        assert!(Path::new(path.as_str().unwrap()).is_file(), "{path}");
    }
    let saved = saved(&chat);
    assert_eq!(
        saved["pictures"].as_array().unwrap().len(),
        outputs.len(),
        "{saved}"
    );
    let messages = saved["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["speaker"], "assistant", "{last}");
    assert!(
        last["content"].as_str().unwrap().starts_with("Stopped."),
        "{last}"
    );
}

/// `agent-eval --oracle --verbose` on the first 8 held-out requests (generations, a chat, an edit): each request's
/// line ends with its picture's verdict, a failure names the checks it broke, and the verdicts
/// add up to the summary's pass rate.
#[test]
fn agent_eval_verbose_gives_each_picture_its_verdict() {
    let requests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/train-agent/heldout.jsonl");
    let out = succeed(
        Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
            .arg("agent-eval")
            .arg("--requests")
            .arg(&requests)
            .args(["--oracle", "--verbose", "--json", "--limit", "8"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": expected "))
        .collect();
    assert_eq!(lines.len(), 8, "{stderr}");
    let checks = [
        "background",
        "single colour",
        "single position",
        "single colour+position",
        "single shape",
        "single count",
        "two-object layout",
        "two one-colour objects",
        "two-object colours",
        "two-object colour binding",
    ];
    let (mut pictures, mut passed) = (0, 0);
    for line in &lines {
        if line.contains(": expected chat,") {
            assert!(!line.contains(" picture: "), "{line}");
            continue;
        }
        let (_, verdict) = line
            .split_once(" picture: ")
            .unwrap_or_else(|| panic!("{line}"));
        pictures += 1;
        if verdict == "pass" || verdict.starts_with("pass, preserved ") {
            passed += 1;
        } else if let Some(broken) = verdict.strip_prefix("fail (") {
            let broken = broken.split(')').next().unwrap();
            for check in broken.split(", ") {
                assert!(
                    checks.contains(&check) || check == "not carried out",
                    "{line}"
                );
            }
        } else {
            panic!("no verdict: {line}");
        }
    }
    assert!(pictures > 0, "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let rate = summary["picture_pass_rate"].as_f64().unwrap();
    assert!(
        (rate - f64::from(passed) / f64::from(pictures)).abs() < 1e-12,
        "{summary} against {passed}/{pictures}"
    );
}

/// `agent-eval` counts the turns that made more pictures than their request asks for, among
/// the requests that say how many (`expect.jobs`); the oracle makes one picture per request.
#[test]
fn agent_eval_counts_pictures_nobody_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let line = |id: &str, jobs: &str| {
        format!(
            r#"{{"id": "{id}", "images": [], "message": "draw a red circle on the left", "expect": {{"action": "generate", "prompt": "a red circle on the left, on white"{jobs}}}}}"#
        )
    };
    let lines = [
        line("asks-one", r#", "jobs": 1"#),
        line("asks-none", r#", "jobs": 0"#),
        line("unsaid", ""),
    ];
    std::fs::write(&requests, lines.join("\n")).unwrap();
    let summary = |limit: &str| {
        let out = succeed(
            Command::new(env!("CARGO_BIN_EXE_hidream-studio"))
                .arg("agent-eval")
                .arg("--requests")
                .arg(&requests)
                .args(["--oracle", "--dry-run", "--json", "--limit", limit]),
        );
        decision(&out)
    };
    let all = summary("3");
    assert_eq!(all["extra_job_rate"], 0.5, "{all}");
    assert_eq!(all["generate"]["extra_job_rate"], 0.5, "{all}");
    assert_eq!(summary("1")["extra_job_rate"], 0.0);
}
