//! The Shapes world: scenes of one to three coloured shapes on a white or black background,
//! their captions, and edits between scenes. The bundled models are trained on it
//! (`tools/train-shapes/shapes_world.py` draws the same pixels, checked by a test on golden
//! renders) and ShapesEval checks generated images against it.
//!
//! Geometry is plain f64 arithmetic on literal constants, so the Python and Rust renderers
//! round identically.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

impl Colour {
    pub const ALL: [Colour; 6] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
    ];

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Green => [30, 160, 50],
            Colour::Blue => [40, 70, 220],
            Colour::Yellow => [235, 200, 20],
            Colour::Purple => [140, 60, 190],
            Colour::Orange => [245, 110, 10],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    White,
    Black,
}

impl Background {
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Background::White => [255, 255, 255],
            Background::Black => [0, 0, 0],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Background::White => "white",
            Background::Black => "black",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Ring,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Ring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Ring => "ring",
        }
    }
}

/// Where a lone object sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    Left,
    Right,
    Top,
    Bottom,
    Centre,
}

impl Place {
    pub const ALL: [Place; 5] = [
        Place::Left,
        Place::Right,
        Place::Top,
        Place::Bottom,
        Place::Centre,
    ];

    /// The centre as fractions of the image side.
    pub fn fraction(self) -> (f64, f64) {
        match self {
            Place::Left => (0.25, 0.5),
            Place::Right => (0.75, 0.5),
            Place::Top => (0.5, 0.25),
            Place::Bottom => (0.5, 0.75),
            Place::Centre => (0.5, 0.5),
        }
    }

    pub(crate) fn words(self) -> &'static str {
        match self {
            Place::Left => "on the left",
            Place::Right => "on the right",
            Place::Top => "at the top",
            Place::Bottom => "at the bottom",
            Place::Centre => "in the centre",
        }
    }
}

/// How the first of two objects sits relative to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    LeftOf,
    RightOf,
    Above,
    Below,
}

impl Relation {
    pub const ALL: [Relation; 4] = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];

    /// The two objects' centres as fractions of the image side.
    pub(crate) fn fractions(self) -> [(f64, f64); 2] {
        match self {
            Relation::LeftOf => [(0.27, 0.5), (0.73, 0.5)],
            Relation::RightOf => [(0.73, 0.5), (0.27, 0.5)],
            Relation::Above => [(0.5, 0.27), (0.5, 0.73)],
            Relation::Below => [(0.5, 0.73), (0.5, 0.27)],
        }
    }

    pub(crate) fn words(self) -> &'static str {
        match self {
            Relation::LeftOf => "to the left of",
            Relation::RightOf => "to the right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }
}

/// One object, in pixels of the rendered image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub shape: Shape,
    pub colour: Colour,
    pub cx: f64,
    pub cy: f64,
    pub r: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub background: Background,
    pub objects: Vec<Object>,
}

const TRIANGLE: [(f64, f64); 3] = [
    (0.0, -1.0),
    (0.8660254037844386, 0.5),
    (-0.8660254037844386, 0.5),
];
/// Five points (outer radius 1) alternating with inner corners at radius 0.45, first point up.
/// The literals are the Python renderer's, digit for digit.
#[allow(clippy::excessive_precision)]
const STAR: [(f64, f64); 10] = [
    (0.0, -1.0),
    (0.26450336353161937, -0.3640576474687263),
    (0.9510565162951535, -0.30901699437494745),
    (0.42797276071036225, 0.1390576474687264),
    (0.5877852522924732, 0.8090169943749473),
    (0.0, 0.45),
    (-0.587785252292473, 0.8090169943749475),
    (-0.42797276071036236, 0.1390576474687263),
    (-0.9510565162951536, -0.30901699437494723),
    (-0.26450336353161943, -0.36405764746872626),
];
const SQUARE_HALF: f64 = 0.85;
const RING_INNER: f64 = 0.55;
/// Object radius as a fraction of the image side, by the number of objects in the scene.
pub(crate) const RADIUS: [f64; 3] = [0.16, 0.14, 0.11];

/// Whether the point (dx, dy) from an object's centre is inside it.
pub fn inside(shape: Shape, dx: f64, dy: f64, r: f64) -> bool {
    match shape {
        Shape::Circle => dx * dx + dy * dy <= r * r,
        Shape::Ring => {
            let d2 = dx * dx + dy * dy;
            let inner = RING_INNER * r;
            d2 <= r * r && d2 > inner * inner
        }
        Shape::Square => {
            let h = SQUARE_HALF * r;
            dx.abs() <= h && dy.abs() <= h
        }
        Shape::Triangle => in_polygon(&TRIANGLE, dx, dy, r),
        Shape::Star => in_polygon(&STAR, dx, dy, r),
    }
}

/// Even-odd crossing test against the unit polygon scaled by `r`.
fn in_polygon(unit: &[(f64, f64)], px: f64, py: f64, r: f64) -> bool {
    let mut odd = false;
    for i in 0..unit.len() {
        let (xi, yi) = (unit[i].0 * r, unit[i].1 * r);
        let j = (i + 1) % unit.len();
        let (xj, yj) = (unit[j].0 * r, unit[j].1 * r);
        if yi == yj {
            continue;
        }
        let crosses = (yi > py) != (yj > py);
        let x_at = (xj - xi) * (py - yi) / (yj - yi) + xi;
        if crosses && px < x_at {
            odd = !odd;
        }
    }
    odd
}

/// An RGB image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

impl Rgb {
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        self.pixels[y * self.width + x]
    }

    pub fn to_image(&self) -> image::RgbImage {
        let raw = self.pixels.iter().flatten().copied().collect();
        // The buffer length is width * height * 3 by construction.
        image::RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .unwrap_or_else(|| image::RgbImage::new(self.width as u32, self.height as u32))
    }

    pub fn from_image(img: &image::RgbImage) -> Self {
        Self {
            width: img.width() as usize,
            height: img.height() as usize,
            pixels: img.pixels().map(|p| p.0).collect(),
        }
    }
}

impl Scene {
    /// Draws the scene, sampling each pixel at its centre; later objects cover earlier ones.
    pub fn render(&self, size: usize) -> Rgb {
        let mut pixels = vec![self.background.rgb(); size * size];
        for o in &self.objects {
            let rgb = o.colour.rgb();
            for y in 0..size {
                let py = y as f64 + 0.5 - o.cy;
                for x in 0..size {
                    if inside(o.shape, x as f64 + 0.5 - o.cx, py, o.r) {
                        pixels[y * size + x] = rgb;
                    }
                }
            }
        }
        Rgb {
            width: size,
            height: size,
            pixels,
        }
    }
}

/// "a" or "an", as the caption templates write it.
pub(crate) fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn noun(colour: Colour, shape: Shape) -> String {
    format!(
        "{} {} {}",
        article(colour.name()),
        colour.name(),
        shape.name()
    )
}

/// What a prompt asks for, in the caption templates of the training data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layout {
    Single {
        colour: Colour,
        shape: Shape,
        place: Place,
    },
    Pair {
        first: (Colour, Shape),
        relation: Relation,
        second: (Colour, Shape),
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PromptSpec {
    pub layout: Layout,
    pub background: Background,
}

impl PromptSpec {
    pub fn caption(&self) -> String {
        let subject = match self.layout {
            Layout::Single {
                colour,
                shape,
                place,
            } => format!("{} {}", noun(colour, shape), place.words()),
            Layout::Pair {
                first,
                relation,
                second,
            } => format!(
                "{} {} {}",
                noun(first.0, first.1),
                relation.words(),
                noun(second.0, second.1)
            ),
        };
        format!("{subject}, on {}", self.background.name())
    }

    /// The scene this prompt describes, with objects at their nominal places and sizes.
    pub fn scene(&self, size: usize) -> Scene {
        let side = size as f64;
        let at = |(fx, fy): (f64, f64)| ((fx * side).round(), (fy * side).round());
        let objects = match self.layout {
            Layout::Single {
                colour,
                shape,
                place,
            } => {
                let (cx, cy) = at(place.fraction());
                vec![Object {
                    shape,
                    colour,
                    cx,
                    cy,
                    r: (RADIUS[0] * side).round(),
                }]
            }
            Layout::Pair {
                first,
                relation,
                second,
            } => relation
                .fractions()
                .into_iter()
                .zip([first, second])
                .map(|(frac, (colour, shape))| {
                    let (cx, cy) = at(frac);
                    Object {
                        shape,
                        colour,
                        cx,
                        cy,
                        r: (RADIUS[1] * side).round(),
                    }
                })
                .collect(),
        };
        Scene {
            background: self.background,
            objects,
        }
    }
}
