//! The Shapes world the bundled models are trained on, and ShapesEval, which reads generated
//! pictures back into objects to check that they mean what the prompt said.

pub(crate) mod detect;
pub mod edits;
mod parse;
pub mod prompts;
pub mod score;
pub mod world;

pub use detect::read;

pub use detect::Reading;
pub use edits::EditKind;
pub use edits::EditSpec;
pub use parse::EditInstruction;
pub use score::{Category, EditScore, Tally, check_edit, check_prompt};
pub use world::{
    Background, Colour, Layout, Object, Place, PromptSpec, Relation, Rgb, Scene, Shape,
};
