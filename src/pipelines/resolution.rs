//! Output sizes: every request is rescaled to the area of the base resolution (1024² for the
//! released models) with sides floored to multiples of 16, as the official pipelines do.

/// One of the seven sizes of the official demos, named width × height as they come out. (The
/// official labels read the numbers as height × width and so call the landscape ones portrait.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedResolution {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
}

pub const OFFICIAL_RESOLUTIONS: [NamedResolution; 7] = [
    NamedResolution {
        name: "1024x1024",
        width: 1024,
        height: 1024,
    },
    NamedResolution {
        name: "1360x768",
        width: 1360,
        height: 768,
    },
    NamedResolution {
        name: "768x1360",
        width: 768,
        height: 1360,
    },
    NamedResolution {
        name: "1168x880",
        width: 1168,
        height: 880,
    },
    NamedResolution {
        name: "880x1168",
        width: 880,
        height: 1168,
    },
    NamedResolution {
        name: "1248x832",
        width: 1248,
        height: 832,
    },
    NamedResolution {
        name: "832x1248",
        width: 832,
        height: 1248,
    },
];

/// Parses `WIDTHxHEIGHT` (also with `×` or `*`).
pub fn parse_size(text: &str) -> Option<(u32, u32)> {
    let normalized = text.trim().replace(['×', '*', 'X'], "x");
    let (w, h) = normalized.split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// The pixel size a request becomes: scaled to `base²` pixels, each side floored to a
/// multiple of `multiple` (16: the VAE's 8× and the 2× patches). `None` when a side ends up 0.
pub(crate) fn effective_size(
    width: u32,
    height: u32,
    base: u32,
    multiple: u32,
) -> Option<(u32, u32)> {
    if width == 0 || height == 0 || multiple == 0 {
        return None;
    }
    let scale =
        ((f64::from(base) * f64::from(base)) / (f64::from(width) * f64::from(height))).sqrt();
    let fit =
        |side: u32| ((f64::from(side) * scale) / f64::from(multiple)).floor() as u32 * multiple;
    let (w, h) = (fit(width), fit(height));
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_sizes_are_kept_and_others_rescaled_to_a_megapixel() {
        for r in OFFICIAL_RESOLUTIONS {
            assert_eq!(
                effective_size(r.width, r.height, 1024, 16),
                Some((r.width, r.height)),
                "{}",
                r.name
            );
        }
        assert_eq!(effective_size(512, 512, 1024, 16), Some((1024, 1024)));
        assert_eq!(effective_size(1920, 1080, 1024, 16), Some((1360, 768)));
        // The fixtures' tiny base resolution.
        assert_eq!(effective_size(48, 80, 64, 16), Some((48, 80)));
        assert_eq!(effective_size(10_000, 1, 1024, 16), None);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1360x768"), Some((1360, 768)));
        assert_eq!(parse_size("832 × 1248"), Some((832, 1248)));
        assert_eq!(parse_size("big"), None);
    }
}
