//! An edit call checked against its picture before it runs: grounded in the objects the
//! picture has, or, as a plan's later job, not run when it asks for what the picture already
//! shows.

use super::*;

/// A conversation whose #1 shows an orange ring and a red star.
fn ring_and_star() -> Conversation {
    let mut conversation = Conversation::new();
    turn(
        scripted(&[
            r#"{"name": "generate_image", "parameters": {"prompt": "an orange ring to the right of a red star, on black"}}"#,
            "Here is #1.",
        ]),
        &mut conversation,
        "an orange ring right of a red star on black",
        None,
        &mut Recorder::default(),
        &AtomicBool::new(false),
    );
    conversation
}

const EDIT_ORANGE_STAR: &str = r##"{"name": "edit_image", "parameters": {"image": "#1", "instruction": "make the orange star yellow"}}<|eom_id|>"##;

#[test]
fn an_edit_naming_an_object_the_picture_lacks_runs_the_likeliest_one_it_has() {
    let mut conversation = ring_and_star();
    let mut runner = Recorder::default();
    let mut model = scripted(&[EDIT_ORANGE_STAR, "Here is #2."]);
    model.prefers = Some("red star");
    let (run, model) = turn(
        model,
        &mut conversation,
        "can the star be yellow instead?",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    // Each of the picture's objects in the model's own reply, end marker and all.
    assert_eq!(
        *model.scored.borrow(),
        [[
            EDIT_ORANGE_STAR.replace("orange star", "orange ring"),
            EDIT_ORANGE_STAR.replace("orange star", "red star"),
        ]]
    );
    let grounded = Job::Edit {
        image: "#1".into(),
        instruction: "make the red star yellow".into(),
    };
    assert_eq!(runner.ran, std::slice::from_ref(&grounded));
    assert_eq!(run.outcome.jobs, [grounded]);
    assert_eq!(
        run.outcome.notes,
        [
            "The model asked to \"make the orange star yellow\", but #1 has no orange star; it was \
          read as \"make the red star yellow\", the likeliest call naming one of #1's objects."
        ]
    );
    // The conversation records the call that ran, so the model reads back what was done.
    let call = &conversation.messages()[conversation.messages().len() - 3];
    assert_eq!(call.speaker, ASSISTANT);
    let recorded = call.tool_call.as_ref().unwrap();
    assert_eq!(
        recorded.parameters.get("instruction"),
        Some(&crate::agent::Json::String(
            "make the red star yellow".into()
        ))
    );
    assert_eq!(
        run.outcome.outputs[0].prompt.as_deref(),
        Some("an orange ring to the right of a yellow star, on black")
    );
}

#[test]
fn an_edit_is_left_as_written_when_its_object_is_there_or_the_model_cannot_score() {
    // Named correctly: nothing to score.
    let mut conversation = ring_and_star();
    let mut model = scripted(&[
        r##"{"name": "edit_image", "parameters": {"image": "#1", "instruction": "make the red star yellow"}}"##,
        "Here is #2.",
    ]);
    model.prefers = Some("orange ring");
    let (run, model) = turn(
        model,
        &mut conversation,
        "make the red star yellow",
        None,
        &mut Recorder::default(),
        &AtomicBool::new(false),
    );
    assert!(model.scored.borrow().is_empty());
    assert!(run.outcome.notes.is_empty());
    // A model that cannot score (a scripted one, say): the call runs as written.
    let mut conversation = ring_and_star();
    let mut runner = Recorder::default();
    let (run, model) = turn(
        scripted(&[EDIT_ORANGE_STAR, "Here is #2."]),
        &mut conversation,
        "can the star be yellow instead?",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(model.scored.borrow().len(), 1);
    assert_eq!(
        runner.ran,
        [Job::Edit {
            image: "#1".into(),
            instruction: "make the orange star yellow".into(),
        }]
    );
    assert!(run.outcome.notes.is_empty());
}

#[test]
fn a_plans_later_edit_asking_for_what_its_picture_already_shows_is_not_run() {
    // Drawn on black, then (unasked) "make the background black": the plan ends after the
    // generation, and the reply says why there is no second picture.
    let mut conversation = Conversation::new();
    let mut runner = Recorder::default();
    let generate = r#"{"name": "generate_image", "parameters": {"prompt": "a purple star above a green triangle, on black"}}"#;
    let on_black = r##"{"name": "edit_image", "parameters": {"image": "#1", "instruction": "make the background black"}}"##;
    let (run, _) = turn(
        scripted(&[generate, on_black, "(never asked)"]),
        &mut conversation,
        "a purple star above a green triangle with a black background",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    let drawn = Job::Generate {
        prompt: "a purple star above a green triangle, on black".into(),
    };
    assert_eq!(runner.ran, std::slice::from_ref(&drawn));
    assert_eq!(run.outcome.jobs, [drawn]);
    assert_eq!(run.outcome.action, Action::Generate);
    assert_eq!(run.outcome.outputs.len(), 1);
    assert_eq!(
        run.outcome.reply,
        "Made so far: #1. #1 already shows what \"make the background black\" asks for (a purple \
         star above a green triangle, on black), so I left it as it is."
    );
    // The call stays in the conversation with a result saying nothing changed, so the model
    // reads back what happened.
    assert_eq!(
        speakers(&conversation),
        [USER, ASSISTANT, TOOL, ASSISTANT, TOOL, ASSISTANT]
    );
    let result = &conversation.messages()[4];
    let said = result.content.as_deref().unwrap_or_default();
    assert!(said.contains("nothing was changed"), "{said}");
    assert_eq!(conversation.pictures().len(), 1);

    // Asked for as a turn's first job, it runs: the user may be asking for what the prompt
    // says but the picture failed to show.
    let mut runner = Recorder::default();
    let (run, _) = turn(
        scripted(&[
            r##"{"name": "edit_image", "parameters": {"image": "#1", "instruction": "make the green triangle green"}}"##,
            "Here is #2.",
        ]),
        &mut conversation,
        "make the triangle green, it came out blue",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(runner.ran.len(), 1);
    assert_eq!(run.outcome.action, Action::Edit);
    // A later edit that changes something runs as before.
    let mut runner = Recorder::default();
    let (run, _) = turn(
        scripted(&[
            generate,
            r##"{"name": "edit_image", "parameters": {"image": "#3", "instruction": "make the background white"}}"##,
            "Here is #4.",
        ]),
        &mut conversation,
        "the same again, then on white",
        None,
        &mut runner,
        &AtomicBool::new(false),
    );
    assert_eq!(runner.ran.len(), 2);
    assert_eq!(run.outcome.outputs.len(), 2);
}
