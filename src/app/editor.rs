//! Which editing model runs: the one answer that the edit panel, the model slots and the
//! history's records share.
//!
//! The pipeline's [`EditForm`] is finer (it tells E1-Full's LoRA file from a merged folder,
//! which is a matter of how the weights were found, not a choice the user makes), so it maps
//! into this enum and not the other way.

use crate::pipelines::edit::EditForm;
use crate::settings::FormDefaults;

/// One of the released editing models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Editor {
    E1_1,
    E1Full,
}

impl Editor {
    /// The short name on the edit panel's buttons.
    pub fn name(self) -> &'static str {
        match self {
            Self::E1_1 => "E1.1",
            Self::E1Full => "E1-Full",
        }
    }

    /// The model's own name, as the models view and the messages write it.
    pub fn label(self) -> &'static str {
        match self {
            Self::E1_1 => "HiDream-E1.1",
            Self::E1Full => "HiDream-E1-Full",
        }
    }

    /// The Hugging Face repository the weights come from.
    pub fn repo_id(self) -> &'static str {
        match self {
            Self::E1_1 => "HiDream-ai/HiDream-E1-1",
            Self::E1Full => "HiDream-ai/HiDream-E1-Full",
        }
    }

    /// The official scripts' (instruction, image) guidance, as the pipeline applies them.
    pub(crate) fn default_guidance(self) -> (f64, f64) {
        let form = match self {
            Self::E1_1 => EditForm::E1_1,
            Self::E1Full => EditForm::E1FullLora,
        };
        let defaults = FormDefaults::of(form);
        (defaults.guidance, defaults.image_guidance)
    }
}

impl From<EditForm> for Editor {
    fn from(form: EditForm) -> Self {
        match form {
            EditForm::E1_1 => Self::E1_1,
            EditForm::E1FullLora | EditForm::E1FullMerged => Self::E1Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_e1_full_are_the_e1_full_editor() {
        assert_eq!(Editor::from(EditForm::E1_1), Editor::E1_1);
        assert_eq!(Editor::from(EditForm::E1FullLora), Editor::E1Full);
        assert_eq!(Editor::from(EditForm::E1FullMerged), Editor::E1Full);
    }

    #[test]
    fn the_panel_starts_from_the_pipeline_defaults() {
        assert_eq!(Editor::E1_1.default_guidance(), (3.0, 1.5));
        assert_eq!(Editor::E1Full.default_guidance(), (5.0, 4.0));
        let merged = FormDefaults::of(EditForm::E1FullMerged);
        assert_eq!(
            Editor::E1Full.default_guidance(),
            (merged.guidance, merged.image_guidance)
        );
    }
}
