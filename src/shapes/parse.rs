//! Reading the Shapes world's words back: a caption into the [`PromptSpec`] it was written
//! from, and an edit instruction in one of the five templates of [`EditSpec::fixed`]
//! (recolour, remove, add, move, background) into an [`EditInstruction`] that can be applied
//! to a scene. The agent's evaluation uses them to know what a picture should show.
//!
//! [`EditSpec::fixed`]: super::EditSpec::fixed

use super::edits::EditKind;
use super::world::{
    Background, Colour, Layout, Object, Place, PromptSpec, RADIUS, Relation, Scene, Shape,
};

fn colour(word: &str) -> Option<Colour> {
    Colour::ALL.into_iter().find(|c| c.name() == word)
}

fn shape(word: &str) -> Option<Shape> {
    Shape::ALL.into_iter().find(|s| s.name() == word)
}

fn background(word: &str) -> Option<Background> {
    [Background::White, Background::Black]
        .into_iter()
        .find(|b| b.name() == word)
}

/// `colour shape` at the start of `words`, with an optional article before it.
fn object_words<'a>(words: &'a [&'a str]) -> Option<((Colour, Shape), &'a [&'a str])> {
    let words = match words.first() {
        Some(&("a" | "an" | "the")) => &words[1..],
        _ => words,
    };
    match words {
        [c, s, rest @ ..] => Some(((colour(c)?, shape(s)?), rest)),
        _ => None,
    }
}

/// A place's words (`on the left`, `at the top`, …) with any of the prepositions, or the bare
/// place after `to the` (move instructions).
fn place(words: &[&str]) -> Option<Place> {
    let name = match words {
        ["on" | "at" | "in" | "to", "the", name] => *name,
        _ => return None,
    };
    Place::ALL
        .into_iter()
        .find(|p| p.words().rsplit(' ').next() == Some(name))
}

fn relation(words: &[&str]) -> Option<(Relation, usize)> {
    Relation::ALL.into_iter().find_map(|r| {
        let r_words: Vec<&str> = r.words().split(' ').collect();
        words.starts_with(&r_words).then_some((r, r_words.len()))
    })
}

fn split_words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

impl PromptSpec {
    /// The spec whose [`caption`](Self::caption) is `caption` (extra spaces, a final full stop
    /// and letter case aside).
    pub fn parse_caption(caption: &str) -> Result<Self, String> {
        let text = caption.trim().trim_end_matches('.').to_ascii_lowercase();
        let unknown = || format!("{caption:?} is not a Shapes caption");
        let (subject, bg) = text.rsplit_once(", on ").ok_or_else(unknown)?;
        let background = background(bg.trim()).ok_or_else(unknown)?;
        let words = split_words(subject);
        let (first, rest) = object_words(&words).ok_or_else(unknown)?;
        let layout = if let Some(place) = place(rest).filter(|_| rest[0] != "to") {
            Layout::Single {
                colour: first.0,
                shape: first.1,
                place,
            }
        } else {
            let (relation, n) = relation(rest).ok_or_else(unknown)?;
            let (second, tail) = object_words(&rest[n..]).ok_or_else(unknown)?;
            if !tail.is_empty() {
                return Err(unknown());
            }
            Layout::Pair {
                first,
                relation,
                second,
            }
        };
        Ok(Self { layout, background })
    }
}

/// An edit instruction as the Shapes editor was trained on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditInstruction {
    /// make the {colour} {shape} {new colour}
    Recolour { object: (Colour, Shape), to: Colour },
    /// remove the {colour} {shape}
    Remove { object: (Colour, Shape) },
    /// add a {colour} {shape} {place}
    Add { object: (Colour, Shape), at: Place },
    /// move the {colour} {shape} to the {place}
    Move { object: (Colour, Shape), to: Place },
    /// make the background {white|black}
    Background { to: Background },
}

impl EditInstruction {
    pub fn parse(instruction: &str) -> Result<Self, String> {
        let text = instruction
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let words = split_words(&text);
        let unknown = || format!("{instruction:?} is not one of the Shapes editor's instructions");
        let parsed = match words.as_slice() {
            ["make", "the", "background", bg] => Self::Background {
                to: background(bg).ok_or_else(unknown)?,
            },
            ["make", rest @ ..] => match object_words(rest) {
                Some((object, [to])) => Self::Recolour {
                    object,
                    to: colour(to).ok_or_else(unknown)?,
                },
                _ => return Err(unknown()),
            },
            ["remove", rest @ ..] => match object_words(rest) {
                Some((object, [])) => Self::Remove { object },
                _ => return Err(unknown()),
            },
            ["add", rest @ ..] => match object_words(rest) {
                Some((object, at)) => Self::Add {
                    object,
                    at: place(at).ok_or_else(unknown)?,
                },
                None => return Err(unknown()),
            },
            ["move", rest @ ..] => match object_words(rest) {
                Some((object, to)) if to.first() == Some(&"to") => Self::Move {
                    object,
                    to: place(to).ok_or_else(unknown)?,
                },
                _ => return Err(unknown()),
            },
            _ => return Err(unknown()),
        };
        Ok(parsed)
    }

    pub fn kind(&self) -> EditKind {
        match self {
            Self::Recolour { .. } => EditKind::Recolour,
            Self::Remove { .. } => EditKind::Remove,
            Self::Add { .. } => EditKind::Add,
            Self::Move { .. } => EditKind::Move,
            Self::Background { .. } => EditKind::Background,
        }
    }

    /// The scene (rendered at `size` pixels) after the edit, placed as ShapesEval's fixed
    /// edits place things: an added object at the place with a single object's radius, a
    /// moved one centred on its new place.
    pub fn apply(&self, scene: &Scene, size: usize) -> Result<Scene, String> {
        let mut target = scene.clone();
        let find = |object: (Colour, Shape)| {
            scene
                .objects
                .iter()
                .position(|o| (o.colour, o.shape) == object)
                .ok_or_else(|| {
                    format!("the picture has no {} {}", object.0.name(), object.1.name())
                })
        };
        let side = size as f64;
        let centre = |p: Place| {
            let (fx, fy) = p.fraction();
            ((fx * side).round(), (fy * side).round())
        };
        match *self {
            Self::Recolour { object, to } => target.objects[find(object)?].colour = to,
            Self::Remove { object } => {
                target.objects.remove(find(object)?);
            }
            Self::Add { object, at } => {
                let (cx, cy) = centre(at);
                target.objects.push(Object {
                    shape: object.1,
                    colour: object.0,
                    cx,
                    cy,
                    r: (RADIUS[0] * side).round(),
                });
            }
            Self::Move { object, to } => {
                let moved = &mut target.objects[find(object)?];
                (moved.cx, moved.cy) = centre(to);
            }
            Self::Background { to } => target.background = to,
        }
        Ok(target)
    }

    /// The prompt spec after the edit, where the caption templates can say it (recolouring,
    /// a new background, moving a single object); `None` otherwise.
    pub fn apply_to_spec(&self, spec: &PromptSpec) -> Option<PromptSpec> {
        let mut out = *spec;
        match (*self, &mut out.layout) {
            (Self::Background { to }, _) => out.background = to,
            (Self::Recolour { object, to }, Layout::Single { colour, shape, .. })
                if (*colour, *shape) == object =>
            {
                *colour = to;
            }
            (Self::Recolour { object, to }, Layout::Pair { first, second, .. }) => {
                if *first == object {
                    first.0 = to;
                } else if *second == object {
                    second.0 = to;
                } else {
                    return None;
                }
            }
            (
                Self::Move { object, to },
                Layout::Single {
                    colour,
                    shape,
                    place,
                },
            ) if (*colour, *shape) == object => *place = to,
            _ => return None,
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EditSpec, prompts};
    use super::*;

    #[test]
    fn every_caption_reads_back_into_its_spec() {
        let mut specs = prompts::text_to_image();
        // Every colour, shape, place, relation and background in both layouts.
        for (i, &colour) in Colour::ALL.iter().enumerate() {
            for (j, &shape) in Shape::ALL.iter().enumerate() {
                for &place in &Place::ALL {
                    specs.push(PromptSpec {
                        layout: Layout::Single {
                            colour,
                            shape,
                            place,
                        },
                        background: Background::Black,
                    });
                }
                for &relation in &Relation::ALL {
                    specs.push(PromptSpec {
                        layout: Layout::Pair {
                            first: (colour, shape),
                            relation,
                            second: (Colour::ALL[(i + j + 1) % 6], Shape::ALL[(i + 2) % 5]),
                        },
                        background: Background::White,
                    });
                }
            }
        }
        for spec in specs {
            assert_eq!(PromptSpec::parse_caption(&spec.caption()), Ok(spec));
        }
        assert_eq!(
            PromptSpec::parse_caption("  An Orange star above a red ring, on black. ")
                .unwrap()
                .caption(),
            "an orange star above a red ring, on black"
        );
        for bad in [
            "a red circle",
            "a red blob on the left, on white",
            "a red circle to the left, on white",
            "a red circle above a blue star twice, on white",
            "a red circle on the left, on grey",
        ] {
            assert!(PromptSpec::parse_caption(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fixed_edits_parse_and_give_their_target_scenes() {
        for size in [32, 64] {
            for kind in EditKind::ALL {
                for i in 0..12 {
                    let spec = EditSpec::fixed(kind, i, size);
                    let edit = EditInstruction::parse(&spec.instruction).unwrap();
                    assert_eq!(edit.kind(), kind, "{}", spec.instruction);
                    assert_eq!(
                        edit.apply(&spec.source, size).unwrap(),
                        spec.target,
                        "{}",
                        spec.instruction
                    );
                }
            }
        }
    }

    #[test]
    fn other_instructions_and_missing_objects_are_refused() {
        for bad in [
            "make it blue",
            "remove the red circle please",
            "add a red circle somewhere",
            "move the red circle left",
            "make the background grey",
        ] {
            assert!(EditInstruction::parse(bad).is_err(), "{bad}");
        }
        let scene = PromptSpec::parse_caption("a red circle on the left, on white")
            .unwrap()
            .scene(64);
        let edit = EditInstruction::parse("remove the blue star").unwrap();
        assert_eq!(
            edit.apply(&scene, 64).unwrap_err(),
            "the picture has no blue star"
        );
    }

    #[test]
    fn specs_follow_the_edits_their_captions_can_say() {
        let spec = PromptSpec::parse_caption("a red circle on the left, on white").unwrap();
        let after = |text: &str| {
            EditInstruction::parse(text)
                .unwrap()
                .apply_to_spec(&spec)
                .map(|s| s.caption())
        };
        assert_eq!(
            after("make the red circle blue").as_deref(),
            Some("a blue circle on the left, on white")
        );
        assert_eq!(
            after("move the red circle to the top").as_deref(),
            Some("a red circle at the top, on white")
        );
        assert_eq!(
            after("make the background black").as_deref(),
            Some("a red circle on the left, on black")
        );
        assert_eq!(after("remove the red circle"), None);
        assert_eq!(after("make the green star blue"), None);
    }
}
