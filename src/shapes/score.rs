//! ShapesEval's checks: GenEval-like categories for text-to-image, and an EmuEdit-like score
//! for edits (the instruction carried out, the rest left alone, the minimum of the two).

use std::collections::BTreeMap;

use serde::Serialize;

use super::detect::{PaletteClass, Reading, read};
use super::edits::EditSpec;
use super::world::{Layout, PromptSpec, Relation, Rgb};

/// One yes/no check of a text-to-image result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The largest object has the asked colour.
    SingleColour,
    /// The largest object is at the asked place.
    SinglePosition,
    /// Both of the above.
    SingleColourPosition,
    /// The largest object has the asked shape.
    SingleShape,
    /// Exactly one object.
    SingleCount,
    /// Exactly two blobs (foreground patches, whatever their colours), side by side or one
    /// above the other as the relation says.
    PairLayout,
    /// The same with one-coloured objects: exactly two, in that arrangement (stricter: an
    /// object painted in two hues counts twice).
    PairObjects,
    /// Both asked colours present.
    PairColours,
    /// The first colour's object is where the relation puts it relative to the second's.
    PairBinding,
    /// The background is the asked one.
    Background,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::SingleColour => "single colour",
            Category::SinglePosition => "single position",
            Category::SingleColourPosition => "single colour+position",
            Category::SingleShape => "single shape",
            Category::SingleCount => "single count",
            Category::PairLayout => "two-object layout",
            Category::PairObjects => "two one-colour objects",
            Category::PairColours => "two-object colours",
            Category::PairBinding => "two-object colour binding",
            Category::Background => "background",
        }
    }
}

/// Whether `a` sits relative to `b` as the relation says: apart by more than a sixth of the
/// side along the relation's axis, and more along it than across.
fn related(a: (f64, f64), b: (f64, f64), relation: Relation, size: f64) -> bool {
    let (dx, dy) = (a.0 - b.0, a.1 - b.1);
    let (along, across) = match relation {
        Relation::LeftOf => (-dx, dy),
        Relation::RightOf => (dx, dy),
        Relation::Above => (-dy, dx),
        Relation::Below => (dy, dx),
    };
    along > size / 6.0 && along > across.abs()
}

pub fn check_prompt(spec: &PromptSpec, reading: &Reading) -> Vec<(Category, bool)> {
    let size = reading.width.min(reading.height) as f64;
    let objects = &reading.objects;
    let mut out = vec![(Category::Background, reading.background == spec.background)];
    match spec.layout {
        Layout::Single {
            colour,
            shape,
            place,
        } => {
            let main = objects.first();
            let colour_ok = main.is_some_and(|o| o.colour == colour);
            let place_ok = main.is_some_and(|o| o.place(reading.width, reading.height) == place);
            out.extend([
                (Category::SingleColour, colour_ok),
                (Category::SinglePosition, place_ok),
                (Category::SingleColourPosition, colour_ok && place_ok),
                (
                    Category::SingleShape,
                    main.is_some_and(|o| o.shape == shape),
                ),
                (Category::SingleCount, objects.len() == 1),
            ]);
        }
        Layout::Pair {
            first,
            relation,
            second,
        } => {
            let arranged = |a: (f64, f64), b: (f64, f64)| {
                related(a, b, relation, size) || related(b, a, relation, size)
            };
            let blobs = &reading.blobs;
            let layout = blobs.len() == 2
                && arranged((blobs[0].cx, blobs[0].cy), (blobs[1].cx, blobs[1].cy));
            let one_colour = objects.len() == 2
                && arranged(
                    (objects[0].cx, objects[0].cy),
                    (objects[1].cx, objects[1].cy),
                );
            let find = |c| objects.iter().find(|o| o.colour == c);
            let (a, b) = (find(first.0), find(second.0));
            let binding = match (a, b) {
                (Some(a), Some(b)) => related((a.cx, a.cy), (b.cx, b.cy), relation, size),
                _ => false,
            };
            out.extend([
                (Category::PairLayout, layout),
                (Category::PairObjects, one_colour),
                (Category::PairColours, a.is_some() && b.is_some()),
                (Category::PairBinding, binding),
            ]);
        }
    }
    out
}

/// An edit result's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EditScore {
    /// The result shows the target scene's objects (colour and place) and background.
    pub carried_out: bool,
    /// Of the pixels the edit should not touch, the share that kept the target's palette
    /// colour: the lower of the shares among object pixels and among background pixels.
    pub preserved: f64,
    /// min(carried_out, preserved).
    pub score: f64,
}

/// Pixels within this many of a changed pixel may change too (soft edges).
const EDIT_MARGIN: usize = 2;

pub fn check_edit(spec: &EditSpec, result: &Rgb) -> EditScore {
    let size = result.width;
    let source = spec.source.render(size);
    let target = spec.target.render(size);
    let reading = read(result);
    let expected = read(&target);
    let carried_out = reading.background == expected.background
        && reading.objects.len() == expected.objects.len()
        && expected.objects.iter().all(|want| {
            reading.objects.iter().any(|got| {
                got.colour == want.colour
                    && (got.cx - want.cx).hypot(got.cy - want.cy) < size as f64 / 8.0
            })
        });
    let changed: Vec<bool> = source
        .pixels
        .iter()
        .zip(&target.pixels)
        .map(|(a, b)| a != b)
        .collect();
    let near_change = dilate(&changed, size, result.height, EDIT_MARGIN);
    // Object pixels and background pixels are counted apart: a lost object is a small share
    // of the picture but all of what mattered there.
    let mut kept = [[0usize; 2]; 2];
    for (i, near) in near_change.iter().enumerate() {
        if *near {
            continue;
        }
        let want = PaletteClass::of(target.pixels[i]);
        let group = usize::from(matches!(want, PaletteClass::Object(_)));
        kept[group][1] += 1;
        if reading.classes[i] == want {
            kept[group][0] += 1;
        }
    }
    let preserved = kept
        .iter()
        .map(|&[k, n]| if n == 0 { 1.0 } else { k as f64 / n as f64 })
        .fold(1.0, f64::min);
    EditScore {
        carried_out,
        preserved,
        score: if carried_out { preserved } else { 0.0 },
    }
}

fn dilate(mask: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    for y in 0..h {
        for x in 0..w {
            if !mask[y * w + x] {
                continue;
            }
            for ny in y.saturating_sub(r)..(y + r + 1).min(h) {
                for nx in x.saturating_sub(r)..(x + r + 1).min(w) {
                    out[ny * w + nx] = true;
                }
            }
        }
    }
    out
}

/// Accuracy per category over many results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    counts: BTreeMap<Category, (usize, usize)>,
}

impl Tally {
    pub fn add(&mut self, checks: &[(Category, bool)]) {
        for &(category, ok) in checks {
            let entry = self.counts.entry(category).or_default();
            entry.0 += usize::from(ok);
            entry.1 += 1;
        }
    }

    /// (category, accuracy, number of checks), in category order.
    pub fn accuracies(&self) -> Vec<(Category, f64, usize)> {
        self.counts
            .iter()
            .map(|(&c, &(ok, n))| (c, ok as f64 / n as f64, n))
            .collect()
    }

    pub fn accuracy(&self, category: Category) -> Option<f64> {
        self.counts
            .get(&category)
            .map(|&(ok, n)| ok as f64 / n as f64)
    }
}
