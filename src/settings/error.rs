//! What is wrong with a job's settings, as a value: the field and the reason. Where the user
//! is decides the words for the field: the command line names its flag (`--steps`), the
//! window its label ("Steps").

/// A setting a user can give, on the command line or in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Instruction,
    Steps,
    /// Text-to-image's classifier-free guidance.
    Guidance,
    /// An edit's instruction guidance (the window's "instruction following").
    InstructionGuidance,
    ImageGuidance,
    Shift,
    RefineStrength,
    /// Image-to-image: how much of the schedule runs from the start image.
    Strength,
    BaseResolution,
    /// The requested width and height together.
    Size,
    Dtype,
}

impl Field {
    /// The command-line flag that sets the field.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Instruction => "--instruction",
            Self::Steps => "--steps",
            Self::Guidance | Self::InstructionGuidance => "--guidance",
            Self::ImageGuidance => "--image-guidance",
            Self::Shift => "--shift",
            Self::RefineStrength => "--refine-strength",
            Self::Strength => "--strength",
            Self::BaseResolution => "--base-resolution",
            Self::Size => "--width/--height",
            Self::Dtype => "--dtype",
        }
    }

    /// The field's label in the window (the generate, edit and models panels).
    pub fn label(self) -> &'static str {
        match self {
            Self::Instruction => "Instruction",
            Self::Steps => "Steps",
            Self::Guidance => "Guidance",
            Self::InstructionGuidance => "Instruction following",
            Self::ImageGuidance => "Image preservation",
            Self::Shift => "Shift",
            Self::RefineStrength => "Refine strength",
            Self::Strength => "Strength",
            Self::BaseResolution => "Base resolution",
            Self::Size => "Size",
            Self::Dtype => "Precision",
        }
    }

    /// A name for the field that belongs to neither place, for errors raised where the
    /// caller is unknown (a job that reached the engine without being checked).
    pub fn name(self) -> &'static str {
        match self {
            Self::Instruction => "the instruction",
            Self::Steps => "steps",
            Self::Guidance | Self::InstructionGuidance => "guidance",
            Self::ImageGuidance => "image guidance",
            Self::Shift => "shift",
            Self::RefineStrength => "refine strength",
            Self::Strength => "strength",
            Self::BaseResolution => "base resolution",
            Self::Size => "the size",
            Self::Dtype => "the dtype",
        }
    }
}

/// One invalid setting. `reason` follows the field's name in a sentence ("must be at least
/// 1") and names no flag or label: the caller puts the field in its own words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} {reason}", field.name())]
pub struct SettingsError {
    pub field: Field,
    pub reason: String,
}

impl SettingsError {
    pub fn new(field: Field, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The message for the command line: the field as its flag.
    pub fn for_cli(&self) -> String {
        format!("{} {}", self.field.flag(), self.reason)
    }

    /// The message for the window: the field as its label.
    pub(crate) fn for_window(&self) -> String {
        format!("{} {}", self.field.label(), self.reason)
    }
}

/// What the user should know about a job besides its result.
#[derive(Debug, Clone, PartialEq)]
pub enum JobWarning {
    /// A setting the job left unused or changed, named like a [`SettingsError`]: each place
    /// words the field its own way. `cli_hint` is what the command line can do instead, with
    /// options the window does not offer.
    Setting {
        setting: SettingsError,
        cli_hint: Option<&'static str>,
    },
    /// About an input file, in words for every place.
    Note(String),
}

impl JobWarning {
    /// The warning for the command line: the field as its flag, and its hint.
    pub fn for_cli(&self) -> String {
        match self {
            Self::Setting {
                setting,
                cli_hint: Some(hint),
            } => format!("{} ({hint})", setting.for_cli()),
            Self::Setting {
                setting,
                cli_hint: None,
            } => setting.for_cli(),
            Self::Note(text) => text.clone(),
        }
    }

    /// The warning for the window: the field as its label.
    pub(crate) fn for_window(&self) -> String {
        match self {
            Self::Setting { setting, .. } => setting.for_window(),
            Self::Note(text) => text.clone(),
        }
    }
}

/// In neither place's words, as a job's record keeps it.
impl std::fmt::Display for JobWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Setting { setting, .. } => setting.fmt(f),
            Self::Note(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_place_names_the_field_in_its_own_words() {
        let e = SettingsError::new(Field::Instruction, "is empty; say what to change");
        assert_eq!(e.for_cli(), "--instruction is empty; say what to change");
        assert_eq!(e.for_window(), "Instruction is empty; say what to change");
        assert!(!e.for_window().contains("--"));
        assert_eq!(
            e.to_string(),
            "the instruction is empty; say what to change"
        );
    }

    #[test]
    fn a_warning_names_the_field_in_each_place_words_and_the_hint_on_the_command_line() {
        let w = JobWarning::Setting {
            setting: SettingsError::new(Field::RefineStrength, "0.5 has no effect"),
            cli_hint: Some("pass --refine-model base"),
        };
        assert_eq!(
            w.for_cli(),
            "--refine-strength 0.5 has no effect (pass --refine-model base)"
        );
        assert_eq!(w.for_window(), "Refine strength 0.5 has no effect");
        assert_eq!(w.to_string(), "refine strength 0.5 has no effect");
        let note = JobWarning::Note("mask.png: stretched".into());
        assert_eq!(note.for_cli(), note.for_window());
    }
}
