//! ShapesEval's fixed prompt set and edit set: every colour, place, shape, relation and
//! background, in the caption templates the models were trained on.

use super::edits::{EditKind, EditSpec};
use super::world::{Background, Colour, Layout, Place, PromptSpec, Relation, Shape};

/// 30 single-object prompts (each colour at each place) and 24 two-object prompts (each
/// relation with six colour pairs), alternating backgrounds, shapes cycling.
pub fn text_to_image() -> Vec<PromptSpec> {
    let bg = |i: usize| {
        if i.is_multiple_of(2) {
            Background::White
        } else {
            Background::Black
        }
    };
    let mut out = Vec::new();
    for (i, (&colour, &place)) in Colour::ALL
        .iter()
        .flat_map(|c| Place::ALL.iter().map(move |p| (c, p)))
        .enumerate()
    {
        out.push(PromptSpec {
            layout: Layout::Single {
                colour,
                shape: Shape::ALL[(i * 2 + i / 5) % Shape::ALL.len()],
                place,
            },
            background: bg(i / 3),
        });
    }
    let n = Colour::ALL.len();
    for (i, &relation) in Relation::ALL.iter().cycle().take(24).enumerate() {
        let a = i % n;
        let b = (a + 1 + (i / 4) % (n - 1)) % n;
        out.push(PromptSpec {
            layout: Layout::Pair {
                first: (Colour::ALL[a], Shape::ALL[i % Shape::ALL.len()]),
                relation,
                second: (Colour::ALL[b], Shape::ALL[(i + 2) % Shape::ALL.len()]),
            },
            background: bg(i / 2),
        });
    }
    out
}

/// 30 edits: six of each kind.
pub fn edits(size: usize) -> Vec<EditSpec> {
    let mut out = Vec::new();
    for (i, kind) in EditKind::ALL
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, 6))
        .enumerate()
    {
        out.push(EditSpec::fixed(kind, i, size));
    }
    out
}
