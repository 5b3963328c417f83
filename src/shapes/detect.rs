//! Reads a picture back into objects: each pixel takes the nearest palette colour, objects are
//! connected regions of one colour, and a region's outline tells its shape. Exact on renders of
//! the Shapes world and tolerant of the soft edges a model paints.

use super::world::{Background, Colour, Place, Rgb, Shape};

/// A pixel's nearest colour in the world's palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaletteClass {
    Object(Colour),
    Background(Background),
}

impl PaletteClass {
    pub fn of(rgb: [u8; 3]) -> Self {
        let dist = |c: [u8; 3]| -> i32 {
            (0..3)
                .map(|i| {
                    let d = i32::from(rgb[i]) - i32::from(c[i]);
                    d * d
                })
                .sum()
        };
        let mut best = (
            dist(Background::White.rgb()),
            PaletteClass::Background(Background::White),
        );
        let candidates = Colour::ALL
            .iter()
            .map(|&c| (c.rgb(), PaletteClass::Object(c)))
            .chain([(
                Background::Black.rgb(),
                PaletteClass::Background(Background::Black),
            )]);
        for (rgb, class) in candidates {
            let d = dist(rgb);
            if d < best.0 {
                best = (d, class);
            }
        }
        best.1
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub colour: Colour,
    pub shape: Shape,
    pub area: usize,
    pub cx: f64,
    pub cy: f64,
}

impl Detected {
    /// Where the object sits in a `width` x `height` picture: the centre when within an eighth
    /// of the side of it, else the side it leans to most.
    pub fn place(&self, width: usize, height: usize) -> Place {
        let dx = (self.cx - width as f64 / 2.0) / width as f64;
        let dy = (self.cy - height as f64 / 2.0) / height as f64;
        if dx.abs() < 0.125 && dy.abs() < 0.125 {
            Place::Centre
        } else if dx.abs() >= dy.abs() {
            if dx < 0.0 { Place::Left } else { Place::Right }
        } else if dy < 0.0 {
            Place::Top
        } else {
            Place::Bottom
        }
    }
}

/// A connected patch of foreground, whatever its colours: what the eye counts as one thing
/// even where a model paints it in two hues.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blob {
    pub area: usize,
    pub cx: f64,
    pub cy: f64,
}

/// What a picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub width: usize,
    pub height: usize,
    pub background: Background,
    /// One-coloured objects, largest first.
    pub objects: Vec<Detected>,
    /// Foreground blobs, largest first.
    pub blobs: Vec<Blob>,
    pub classes: Vec<PaletteClass>,
}

/// Regions smaller than this share of the picture are edge fringes or specks, not objects.
const MIN_AREA_FRACTION: f64 = 1.0 / 200.0;

pub fn read(img: &Rgb) -> Reading {
    let (w, h) = (img.width, img.height);
    let classes: Vec<PaletteClass> = img.pixels.iter().map(|&p| PaletteClass::of(p)).collect();
    let background = border_background(&classes, w, h);
    let min_area = ((w * h) as f64 * MIN_AREA_FRACTION).ceil() as usize;
    let mut seen = vec![false; w * h];
    let mut objects = Vec::new();
    for start in 0..w * h {
        let PaletteClass::Object(colour) = classes[start] else {
            continue;
        };
        if seen[start] {
            continue;
        }
        let class = classes[start];
        let region = flood(&mut seen, w, h, start, |j| classes[j] == class);
        if region.len() >= min_area {
            objects.push(describe(colour, &region, w));
        }
    }
    objects.sort_by_key(|o| std::cmp::Reverse(o.area));
    let mut seen = vec![false; w * h];
    let is_object = |j: usize| matches!(classes[j], PaletteClass::Object(_));
    let mut blobs = Vec::new();
    for start in 0..w * h {
        if seen[start] || !is_object(start) {
            continue;
        }
        let region = flood(&mut seen, w, h, start, is_object);
        if region.len() >= min_area {
            let n = region.len() as f64;
            let sum = |f: &dyn Fn(usize) -> usize| {
                region.iter().map(|&i| f(i) as f64 + 0.5).sum::<f64>() / n
            };
            blobs.push(Blob {
                area: region.len(),
                cx: sum(&|i| i % w),
                cy: sum(&|i| i / w),
            });
        }
    }
    blobs.sort_by_key(|b| std::cmp::Reverse(b.area));
    Reading {
        width: w,
        height: h,
        background,
        objects,
        blobs,
        classes,
    }
}

fn border_background(classes: &[PaletteClass], w: usize, h: usize) -> Background {
    let (mut white, mut black) = (0usize, 0usize);
    let border = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]));
    for (x, y) in border {
        match classes[y * w + x] {
            PaletteClass::Background(Background::White) => white += 1,
            PaletteClass::Background(Background::Black) => black += 1,
            PaletteClass::Object(_) => {}
        }
    }
    if black > white {
        Background::Black
    } else {
        Background::White
    }
}

/// The 8-connected region of pixels that `belongs` from `start` (thin star points stay
/// attached).
fn flood(
    seen: &mut [bool],
    w: usize,
    h: usize,
    start: usize,
    belongs: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut region = Vec::new();
    let mut stack = vec![start];
    seen[start] = true;
    while let Some(i) = stack.pop() {
        region.push(i);
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        for dy in -1..=1isize {
            for dx in -1..=1isize {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if !seen[j] && belongs(j) {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    region
}

fn describe(colour: Colour, region: &[usize], w: usize) -> Detected {
    let n = region.len() as f64;
    let (mut sx, mut sy) = (0.0, 0.0);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for &i in region {
        let (x, y) = (i % w, i / w);
        sx += x as f64 + 0.5;
        sy += y as f64 + 0.5;
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let (cx, cy) = (sx / n, sy / n);
    let bbox = ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64;
    let fill = n / bbox;
    // A ring's centre is not its own: look at the pixels around the centroid.
    let member: std::collections::HashSet<usize> = region.iter().copied().collect();
    let (ix, iy) = (cx.floor() as isize, cy.floor() as isize);
    let mut centre_hits = 0;
    let mut centre_total = 0;
    for dy in -1..=1isize {
        for dx in -1..=1isize {
            let (x, y) = (ix + dx, iy + dy);
            if x >= 0 && y >= 0 {
                centre_total += 1;
                if member.contains(&(y as usize * w + x as usize)) {
                    centre_hits += 1;
                }
            }
        }
    }
    // Ideal values: solidity (area over convex hull) is 1 but for the star (0.56); the
    // bounding box's fill is 1.0 for the square, 0.785 for the circle and 0.5 for the triangle.
    let solidity = n / hull_area(region, w);
    let shape = if centre_hits * 3 < centre_total {
        Shape::Ring
    } else if solidity < 0.75 {
        Shape::Star
    } else if fill > 0.89 {
        Shape::Square
    } else if fill > 0.64 {
        Shape::Circle
    } else {
        Shape::Triangle
    };
    Detected {
        colour,
        shape,
        area: region.len(),
        cx,
        cy,
    }
}

/// Area of the convex hull of the region's pixel squares (their corners), by Andrew's monotone
/// chain and the shoelace formula.
fn hull_area(region: &[usize], w: usize) -> f64 {
    let mut points: Vec<(i64, i64)> = region
        .iter()
        .flat_map(|&i| {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(i64, i64)> = Vec::with_capacity(points.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Box<dyn Iterator<Item = &(i64, i64)>> = if pass == 0 {
            Box::new(points.iter())
        } else {
            Box::new(points.iter().rev())
        };
        for &p in ordered {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    let twice: i64 = (0..hull.len())
        .map(|i| {
            let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    (twice.abs() as f64 / 2.0).max(1.0)
}
