//! Edits between Shapes scenes: a source, an instruction in the training templates, and the
//! scene the instruction asks for.

use serde::{Deserialize, Serialize};

use super::world::{Background, Colour, Object, Place, RADIUS, Relation, Scene, Shape, article};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditKind {
    Recolour,
    Remove,
    Add,
    Move,
    Background,
}

impl EditKind {
    pub const ALL: [EditKind; 5] = [
        EditKind::Recolour,
        EditKind::Remove,
        EditKind::Add,
        EditKind::Move,
        EditKind::Background,
    ];

    /// The kind named `name` (as `name()` spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            EditKind::Recolour => "recolour",
            EditKind::Remove => "remove",
            EditKind::Add => "add",
            EditKind::Move => "move",
            EditKind::Background => "background",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditSpec {
    pub kind: EditKind,
    pub source: Scene,
    pub instruction: String,
    pub target: Scene,
}

fn the(o: &Object) -> String {
    format!("the {} {}", o.colour.name(), o.shape.name())
}

fn object_at(
    colour: Colour,
    shape: Shape,
    (fx, fy): (f64, f64),
    radius: f64,
    size: usize,
) -> Object {
    let side = size as f64;
    Object {
        shape,
        colour,
        cx: (fx * side).round(),
        cy: (fy * side).round(),
        r: (radius * side).round(),
    }
}

impl EditSpec {
    /// The `i`-th edit of a kind in ShapesEval's fixed set: sources cycle through colours,
    /// shapes, relations and backgrounds so that no two are alike.
    pub fn fixed(kind: EditKind, i: usize, size: usize) -> Self {
        let n = Colour::ALL.len();
        let c0 = Colour::ALL[i % n];
        let c1 = Colour::ALL[(i + 2) % n];
        let fresh = Colour::ALL[(i + 4) % n];
        let s0 = Shape::ALL[i % Shape::ALL.len()];
        let s1 = Shape::ALL[(i + 3) % Shape::ALL.len()];
        let background = if i.is_multiple_of(2) {
            Background::White
        } else {
            Background::Black
        };
        let relation = Relation::ALL[i % Relation::ALL.len()];
        let pair = |a: (Colour, Shape), b: (Colour, Shape)| {
            let [fa, fb] = relation.fractions();
            vec![
                object_at(a.0, a.1, fa, RADIUS[1], size),
                object_at(b.0, b.1, fb, RADIUS[1], size),
            ]
        };
        let place = Place::ALL[i % Place::ALL.len()];
        let n_places = Place::ALL.len();
        let other_place = Place::ALL[(i + 1 + (i / n_places) % (n_places - 1)) % n_places];
        let single = |p: Place| vec![object_at(c0, s0, p.fraction(), RADIUS[0], size)];
        let (source, instruction, target) = match kind {
            EditKind::Recolour => {
                let objects = pair((c0, s0), (c1, s1));
                let mut changed = objects.clone();
                changed[0].colour = fresh;
                let text = format!("make {} {}", the(&objects[0]), fresh.name());
                (objects, text, changed)
            }
            EditKind::Remove => {
                let objects = pair((c0, s0), (c1, s1));
                let text = format!("remove {}", the(&objects[0]));
                (objects.clone(), text, objects[1..].to_vec())
            }
            EditKind::Add => {
                let objects = single(place);
                let added = object_at(c1, s1, other_place.fraction(), RADIUS[0], size);
                let text = format!(
                    "add {} {} {} {}",
                    article(c1.name()),
                    c1.name(),
                    s1.name(),
                    other_place.words()
                );
                let mut changed = objects.clone();
                changed.push(added);
                (objects, text, changed)
            }
            EditKind::Move => {
                let objects = single(place);
                let text = format!(
                    "move {} {}",
                    the(&objects[0]),
                    other_place
                        .words()
                        .replacen("on the", "to the", 1)
                        .replacen("at the", "to the", 1)
                        .replacen("in the", "to the", 1)
                );
                (objects, text, single(other_place))
            }
            EditKind::Background => {
                let objects = pair((c0, s0), (c1, s1));
                let to = match background {
                    Background::White => Background::Black,
                    Background::Black => Background::White,
                };
                let text = format!("make the background {}", to.name());
                return Self {
                    kind,
                    source: Scene {
                        background,
                        objects: objects.clone(),
                    },
                    instruction: text,
                    target: Scene {
                        background: to,
                        objects,
                    },
                };
            }
        };
        Self {
            kind,
            source: Scene {
                background,
                objects: source,
            },
            instruction,
            target: Scene {
                background,
                objects: target,
            },
        }
    }
}
