//! The Planner's prompt rules: what each image model is given for a job. The generator takes
//! the agent's prompt as it is. Editors differ: E1-Full reads "Editing Instruction: … . Target
//! Image Description: …" (HiDream-E1's `inference.py` and its refiner, HiDream-ai/HiDream-E1
//! @ main), so the description of the wanted result is written from the source picture's
//! recorded prompt and the instruction; E1.1 and the Shapes editor take the plain instruction.

use super::conversation::{Conversation, Picture, PictureOrigin};
use crate::shapes::{EditInstruction, PromptSpec};

/// A job the agent planned: one call of one of the protocol's tools.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    Generate { prompt: String },
    Edit { image: String, instruction: String },
}

impl Job {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Generate { .. } => "generate",
            Self::Edit { .. } => "edit",
        }
    }
}

/// How the editor in use wants its instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EditorPrompt {
    /// The instruction as the agent wrote it (E1.1, the Shapes editor).
    #[default]
    Plain,
    /// E1-Full's two-part prompt.
    InstructionAndTarget,
}

/// The target description an editor of kind `editor` is given with `instruction` (the edit
/// settings' `description`, from which the settings build E1-Full's two-part prompt): only
/// E1-Full takes one, and only when the source's prompt is known.
pub fn edit_description(
    editor: EditorPrompt,
    source: Option<&Picture>,
    instruction: &str,
) -> Option<String> {
    match editor {
        EditorPrompt::Plain => None,
        EditorPrompt::InstructionAndTarget => source
            .and_then(|s| s.prompt.as_deref())
            .map(|prompt| target_description(prompt, instruction)),
    }
}

/// The text an editor of kind `editor` gets for turning `source` by `instruction`.
pub fn edit_prompt(editor: EditorPrompt, source: Option<&Picture>, instruction: &str) -> String {
    match editor {
        EditorPrompt::Plain => instruction.trim().to_owned(),
        EditorPrompt::InstructionAndTarget => crate::settings::edit::e1_full_prompt(
            instruction,
            edit_description(editor, source, instruction).as_deref(),
        ),
    }
}

/// What the edited picture shows. A Shapes caption with one of the five edit templates is
/// edited exactly; otherwise the source's prompt is kept with the instruction after it, which
/// names both what stays and what changes.
pub fn target_description(source_prompt: &str, instruction: &str) -> String {
    if let Some(target) = edited_caption(source_prompt, instruction) {
        return target;
    }
    let prompt = source_prompt.trim().trim_end_matches('.');
    let instruction = instruction.trim().trim_end_matches('.');
    if prompt.is_empty() {
        return instruction.to_owned();
    }
    format!("{prompt}{AFTER_THIS_CHANGE}{instruction}")
}

/// What [`target_description`] puts between a prompt and a change it cannot write into it.
pub const AFTER_THIS_CHANGE: &str = ", after this change: ";

/// The Shapes scene `source_prompt` describes, before and after `instruction`, when both
/// parse and the instruction applies to it.
fn edited_scene(source_prompt: &str, instruction: &str) -> Option<(PromptSpec, PromptSpec)> {
    let spec = PromptSpec::parse_caption(source_prompt).ok()?;
    let edit = EditInstruction::parse(instruction).ok()?;
    edit.apply_to_spec(&spec).map(|edited| (spec, edited))
}

/// The caption of the Shapes scene `source_prompt` describes after `instruction`, when both
/// parse.
fn edited_caption(source_prompt: &str, instruction: &str) -> Option<String> {
    edited_scene(source_prompt, instruction).map(|(_, edited)| edited.caption())
}

/// Whether `instruction` would leave the Shapes scene `source_prompt` describes as it is (the
/// background it already has, an object recoloured to its own colour or moved to where it
/// is): both parse, and the edited scene is the source scene. An editor asked for such a
/// change only redraws the picture, so the coordinator does not run it as a plan's later job.
pub fn changes_nothing(source_prompt: &str, instruction: &str) -> bool {
    edited_scene(source_prompt, instruction).is_some_and(|(source, edited)| source == edited)
}

/// The picture `job` will make, as the conversation records it (its name is the next one;
/// the runner adds where it was written and its history entry).
pub fn planned_picture(conversation: &Conversation, job: &Job) -> Picture {
    let (origin, prompt, instruction, made_from) = match job {
        Job::Generate { prompt } => (PictureOrigin::Generated, Some(prompt.clone()), None, None),
        Job::Edit { image, instruction } => {
            let prompt = conversation
                .picture(image)
                .and_then(|s| s.prompt.as_deref())
                .map(|p| target_description(p, instruction));
            (
                PictureOrigin::Edited,
                prompt,
                Some(instruction.clone()),
                Some(image.trim().to_owned()),
            )
        }
    };
    Picture {
        name: conversation.next_name(),
        origin,
        path: None,
        prompt,
        instruction,
        made_from,
        history_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(prompt: &str) -> Picture {
        Picture {
            name: "#1".into(),
            origin: PictureOrigin::Generated,
            path: None,
            prompt: Some(prompt.into()),
            instruction: None,
            made_from: None,
            history_id: None,
        }
    }

    #[test]
    fn an_edit_that_asks_for_what_the_picture_already_shows_changes_nothing() {
        let pair = "a purple star above a green triangle, on black";
        assert!(changes_nothing(pair, "make the background black"));
        assert!(changes_nothing(pair, "make the green triangle green"));
        assert!(!changes_nothing(pair, "make the background white"));
        assert!(!changes_nothing(pair, "make the green triangle red"));
        assert!(!changes_nothing(pair, "remove the purple star"));
        let single = "a red circle on the left, on white";
        assert!(changes_nothing(single, "move the red circle to the left"));
        assert!(!changes_nothing(single, "move the red circle to the right"));
        assert!(!changes_nothing(single, "add a blue star on the right"));
        // An object the picture lacks, words outside the templates, a prompt that is no
        // Shapes caption: not known to change nothing, so the edit runs.
        assert!(!changes_nothing(single, "make the blue circle blue"));
        assert!(!changes_nothing(pair, "remove the background black"));
        assert!(!changes_nothing(
            "a red car at night",
            "make the background black"
        ));
    }

    #[test]
    fn e1_full_gets_a_target_description_and_the_others_the_plain_instruction() {
        let red = source("a red circle on the left, on white");
        assert_eq!(
            edit_prompt(
                EditorPrompt::Plain,
                Some(&red),
                " make the red circle blue "
            ),
            "make the red circle blue"
        );
        assert_eq!(
            edit_prompt(
                EditorPrompt::InstructionAndTarget,
                Some(&red),
                "make the red circle blue"
            ),
            "Editing Instruction: make the red circle blue. Target Image Description: a blue \
             circle on the left, on white"
        );
        // Outside the Shapes templates the source's prompt is kept with the change after it.
        let car = source("a red car at night.");
        assert_eq!(
            edit_prompt(
                EditorPrompt::InstructionAndTarget,
                Some(&car),
                "make it daytime."
            ),
            "Editing Instruction: make it daytime. Target Image Description: a red car at \
             night, after this change: make it daytime"
        );
        // Nothing recorded about the source: the description is the instruction.
        assert_eq!(
            edit_prompt(EditorPrompt::InstructionAndTarget, None, "make it daytime"),
            "Editing Instruction: make it daytime. Target Image Description: make it daytime"
        );
    }
}
