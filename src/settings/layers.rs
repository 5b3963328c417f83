//! Where a job's numbers come from, lowest first: the preset's or the editing form's defaults
//! (made for the released models), a bundled model's own `studio.json`, then what the user
//! set. This file merges the last two; the preset and form fill what is still unset when the
//! settings are resolved.

use std::path::Path;

use crate::weights::StudioManifest;

/// The base resolution of the released models, used when neither the user nor a manifest
/// gives one.
pub const DEFAULT_BASE_RESOLUTION: u32 = 1024;

/// The numbers a user may set for a job; `None` is "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UserValues {
    pub steps: Option<usize>,
    pub guidance: Option<f64>,
    pub image_guidance: Option<f64>,
    pub shift: Option<f64>,
    pub refine_strength: Option<f64>,
    pub base_resolution: Option<u32>,
}

impl UserValues {
    /// Fills what the user left unset from a bundled model's manifest (real snapshots have
    /// none and leave the preset's or form's defaults to apply).
    pub fn over(self, manifest: Option<&StudioManifest>) -> Self {
        let Some(manifest) = manifest else {
            return self;
        };
        let d = manifest.defaults;
        Self {
            steps: self.steps.or(d.map(|d| d.steps)),
            guidance: self.guidance.or(d.map(|d| d.guidance)),
            image_guidance: self.image_guidance.or(d.and_then(|d| d.image_guidance)),
            shift: self.shift.or(d.map(|d| d.shift)),
            refine_strength: self.refine_strength.or(d.and_then(|d| d.refine_strength)),
            base_resolution: self.base_resolution.or(Some(manifest.base_resolution)),
        }
    }

    /// [`Self::over`] the manifest of the model folder `model`, if it has one.
    pub fn over_model(self, model: &Path) -> crate::weights::Result<Self> {
        Ok(self.over(StudioManifest::read(model)?.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::ManifestDefaults;

    fn manifest() -> StudioManifest {
        StudioManifest {
            name: "shapes".into(),
            base_resolution: 64,
            max_sequence_length: 32,
            defaults: Some(ManifestDefaults {
                steps: 12,
                guidance: 2.0,
                shift: 3.0,
                image_guidance: Some(1.2),
                refine_strength: None,
            }),
            examples: Vec::new(),
            llama: None,
            training: serde_json::Value::Null,
            scores: serde_json::Value::Null,
            dequantize_at_load: false,
        }
    }

    #[test]
    fn the_user_wins_over_the_manifest() {
        let user = UserValues {
            steps: Some(3),
            shift: Some(5.0),
            ..UserValues::default()
        };
        let merged = user.over(Some(&manifest()));
        assert_eq!(merged.steps, Some(3));
        assert_eq!(merged.shift, Some(5.0));
        assert_eq!(merged.guidance, Some(2.0));
        assert_eq!(merged.image_guidance, Some(1.2));
        assert_eq!(merged.refine_strength, None);
        assert_eq!(merged.base_resolution, Some(64));
        assert_eq!(user.over(None), user);
    }
}
