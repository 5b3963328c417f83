//! Resolving and validating job settings in one place. A job's numbers come from, lowest
//! first, the preset's or editing form's defaults, a bundled model's `studio.json` and the
//! user ([`layers`]); they are checked against the same bounds for every job ([`checks`]) and
//! refused as typed errors ([`SettingsError`]: a field and a reason) that the command line
//! words with its flags and the window with its labels.

pub mod checks;
pub mod edit;
mod error;
mod generate;
mod layers;

pub use edit::EditSettings;

pub use edit::EditResolved;
pub(crate) use edit::FormDefaults;
pub use edit::{EditModelChoice, EditModelFacts, EditPlan};
pub use error::{Field, JobWarning, SettingsError};
pub use generate::{
    ComputeDType, DeviceChoice, GenerateSettings, InitImage, ModelSelection, PlacementChoice,
    Resolved,
};
pub use layers::{DEFAULT_BASE_RESOLUTION, UserValues};
