//! Grounding an edit in its picture. A small agent model, asked to "make the star red" of a
//! picture showing an orange ring and a blue star, sometimes writes "make the orange star red":
//! the shape copied from the message, the colour from the other object. The editor cannot
//! change an object the picture does not have, so such a call would make a picture that ignores
//! the request. When the source picture's recorded prompt says which objects it shows (a Shapes
//! caption, with the changes recorded since), the planner asks the model how likely it finds the
//! same call naming each of those objects instead, and runs the likeliest: constrained decoding
//! over the valid calls, decided by the model, not by matching words of the message.

use std::sync::atomic::AtomicBool;

use super::chat_model::ChatError;
use super::chat_template::{Message, RenderOptions, ToolCall};
use super::conversation::Conversation;
use super::json::Json;
use super::language_model::{AgentOptions, LanguageModel};
use super::planner::{AFTER_THIS_CHANGE, Job};
use crate::shapes::{Colour, EditInstruction, Layout, PromptSpec, Shape};

type Object = (Colour, Shape);

/// The objects the picture described by `prompt` shows: a Shapes caption, followed by the
/// changes the planner recorded after it (`…, after this change: remove the red circle`).
/// `None` when the description is anything else.
pub fn described_objects(prompt: &str) -> Option<Vec<Object>> {
    let mut parts = prompt.split(AFTER_THIS_CHANGE);
    let spec = PromptSpec::parse_caption(parts.next()?).ok()?;
    let mut objects = match spec.layout {
        Layout::Single { colour, shape, .. } => vec![(colour, shape)],
        Layout::Pair { first, second, .. } => vec![first, second],
    };
    for change in parts {
        match EditInstruction::parse(change).ok()? {
            EditInstruction::Recolour { object, to } => {
                let found = objects.iter_mut().find(|o| **o == object)?;
                found.0 = to;
            }
            EditInstruction::Remove { object } => {
                let at = objects.iter().position(|o| *o == object)?;
                objects.remove(at);
            }
            EditInstruction::Add { object, .. } => objects.push(object),
            EditInstruction::Move { object, .. } => {
                objects.iter().find(|o| **o == object)?;
            }
            EditInstruction::Background { .. } => {}
        }
    }
    Some(objects)
}

/// The object an instruction acts on (recolour, remove, move); `None` for the others.
fn acted_on(edit: EditInstruction) -> Option<Object> {
    match edit {
        EditInstruction::Recolour { object, .. }
        | EditInstruction::Remove { object }
        | EditInstruction::Move { object, .. } => Some(object),
        EditInstruction::Add { .. } | EditInstruction::Background { .. } => None,
    }
}

/// The object `instruction` names (recolour, remove, move) when it is not among `objects`,
/// and the instruction naming each of `objects` in its place; `None` when there is nothing to
/// ground (the object is there, the instruction names none, or it is not a Shapes one).
pub fn alternatives(instruction: &str, objects: &[Object]) -> Option<(Object, Vec<String>)> {
    let edit = EditInstruction::parse(instruction).ok()?;
    let named = acted_on(edit)?;
    if objects.is_empty() || objects.contains(&named) {
        return None;
    }
    let text = instruction
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .windows(2)
        .position(|w| w == [named.0.name(), named.1.name()])?;
    let mut out: Vec<String> = Vec::new();
    for object in objects {
        let mut replaced = words.clone();
        replaced[at] = object.0.name();
        replaced[at + 1] = object.1.name();
        let candidate = replaced.join(" ");
        let reads_back = EditInstruction::parse(&candidate)
            .ok()
            .is_some_and(|e| acted_on(e) == Some(*object) && e.kind() == edit.kind());
        if reads_back && !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    (!out.is_empty()).then_some((named, out))
}

/// A call changed to name an object its picture has.
#[derive(Debug, Clone, PartialEq)]
pub struct Grounded {
    pub call: ToolCall,
    pub job: Job,
    /// For the user: what the model named and what was edited instead.
    pub note: String,
}

/// What the model said and read, for scoring other versions of its reply.
pub struct Said<'a> {
    pub messages: &'a [Message],
    pub render: &'a RenderOptions,
    pub options: &'a AgentOptions,
    /// The reply as generated, the call's JSON in it.
    pub text: &'a str,
}

/// The edit `job` grounded in its source picture, when it names an object the picture does
/// not have and the model can score the alternatives; `None` leaves the call as it is.
pub fn ground_edit<M: LanguageModel + ?Sized>(
    model: &M,
    said: &Said<'_>,
    call: &ToolCall,
    job: &Job,
    conversation: &Conversation,
    cancel: &AtomicBool,
) -> Result<Option<Grounded>, ChatError> {
    let Job::Edit { image, instruction } = job else {
        return Ok(None);
    };
    let Some(objects) = conversation
        .picture(image)
        .and_then(|p| p.prompt.as_deref())
        .and_then(described_objects)
    else {
        return Ok(None);
    };
    let Some(((colour, shape), candidates)) = alternatives(instruction, &objects) else {
        return Ok(None);
    };
    // The candidates differ from the reply only in the instruction's words, so each is scored
    // as the whole reply the model would have written for it (end marker included).
    if said.text.matches(instruction.as_str()).count() != 1 {
        return Ok(None);
    }
    let replies: Vec<String> = candidates
        .iter()
        .map(|c| said.text.replacen(instruction.as_str(), c, 1))
        .collect();
    let Some(scores) =
        model.score_replies(said.messages, said.render, said.options, &replies, cancel)?
    else {
        return Ok(None);
    };
    let Some(chosen) = scores
        .iter()
        .zip(&candidates)
        .filter(|(s, _)| s.is_finite())
        .max_by(|a, b| a.0.total_cmp(b.0))
        .map(|(_, c)| c.clone())
    else {
        return Ok(None);
    };
    let mut call = call.clone();
    if let Json::Object(entries) = &mut call.arguments {
        for (key, value) in entries.iter_mut() {
            if key == "instruction" {
                *value = Json::String(chosen.clone());
            }
        }
    }
    let note = format!(
        "The model asked to \"{instruction}\", but {image} has no {} {}; it was read as \
         \"{chosen}\", the likeliest call naming one of {image}'s objects.",
        colour.name(),
        shape.name()
    );
    Ok(Some(Grounded {
        call,
        job: Job::Edit {
            image: image.clone(),
            instruction: chosen,
        },
        note,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(prompt: &str) -> Vec<String> {
        described_objects(prompt)
            .unwrap()
            .iter()
            .map(|(c, s)| format!("{} {}", c.name(), s.name()))
            .collect()
    }

    #[test]
    fn a_caption_and_its_recorded_changes_say_which_objects_are_there() {
        assert_eq!(
            objects("an orange ring to the right of a red star, on black"),
            ["orange ring", "red star"]
        );
        assert_eq!(
            objects("a yellow square at the bottom, on white"),
            ["yellow square"]
        );
        assert_eq!(
            objects(
                "a blue star above a green star, on white, after this change: remove the \
                 blue star, after this change: add a red circle on the left, after this \
                 change: make the red circle purple"
            ),
            ["green star", "purple circle"]
        );
        assert_eq!(described_objects("a red car at night"), None);
        // A recorded change that does not fit the picture: unknown, not guessed.
        assert_eq!(
            described_objects(
                "a red star at the top, on white, after this change: remove the blue star"
            ),
            None
        );
    }

    #[test]
    fn only_an_object_the_picture_lacks_is_replaced_by_each_it_has() {
        let scene =
            described_objects("an orange ring to the right of a red star, on black").unwrap();
        let grounded = |instruction: &str| {
            let ((c, s), candidates) = alternatives(instruction, &scene).unwrap();
            (format!("{} {}", c.name(), s.name()), candidates)
        };
        let (named, candidates) = grounded("make the orange star yellow");
        assert_eq!(named, "orange star");
        assert_eq!(
            candidates,
            ["make the orange ring yellow", "make the red star yellow"]
        );
        assert_eq!(
            grounded("move the blue circle to the top").1,
            [
                "move the orange ring to the top",
                "move the red star to the top"
            ]
        );
        let (named, candidates) = grounded("Remove the green star.");
        assert_eq!(named, "green star");
        assert_eq!(
            candidates,
            ["remove the orange ring", "remove the red star"]
        );
        // Named correctly, adding, the background, or not a Shapes instruction: left alone.
        assert_eq!(alternatives("remove the red star", &scene), None);
        assert_eq!(alternatives("add a blue star at the top", &scene), None);
        assert_eq!(alternatives("make the background white", &scene), None);
        assert_eq!(alternatives("make it daytime", &scene), None);
        assert_eq!(alternatives("remove the blue star", &[]), None);
    }
}
