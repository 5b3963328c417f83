//! The three HiDream-I1 variants' sampling settings, as `MODEL_CONFIGS` in
//! https://github.com/HiDream-ai/HiDream-I1/blob/9b42dd606fecf8f78b974adb7e4d10331c91371a/inference.py#L16-L38.

use serde::{Deserialize, Serialize};

use crate::schedulers::SchedulerKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// HiDream-I1-Full: 50 FlowUniPC steps with classifier-free guidance 5.
    Full,
    /// HiDream-I1-Dev: 28 Flash steps, guidance-distilled (no CFG), shift 6.
    Dev,
    /// HiDream-I1-Fast: 16 Flash steps, guidance-distilled, shift 3.
    Fast,
}

/// The sampling settings a preset starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresetDefaults {
    pub steps: usize,
    pub guidance: f64,
    pub scheduler: SchedulerKind,
    pub shift: f64,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Full, Preset::Dev, Preset::Fast];

    pub fn defaults(self) -> PresetDefaults {
        match self {
            Self::Full => PresetDefaults {
                steps: 50,
                guidance: 5.0,
                scheduler: SchedulerKind::FlowUnipc,
                shift: 3.0,
            },
            Self::Dev => PresetDefaults {
                steps: 28,
                guidance: 0.0,
                scheduler: SchedulerKind::Flash,
                shift: 6.0,
            },
            Self::Fast => PresetDefaults {
                steps: 16,
                guidance: 0.0,
                scheduler: SchedulerKind::Flash,
                shift: 3.0,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "Full",
            Self::Dev => "Dev",
            Self::Fast => "Fast",
        }
    }

    /// The preset a snapshot was made for, from its folder or repository name.
    pub fn guess_from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        [
            ("fast", Self::Fast),
            ("dev", Self::Dev),
            ("full", Self::Full),
        ]
        .into_iter()
        .find(|(key, _)| lower.contains(key))
        .map(|(_, p)| p)
    }
}
