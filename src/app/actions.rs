//! What a user can ask of the window. Every panel's `ui` answers with at most one [`Action`]
//! per frame; the window carries it out after the panel is drawn.
//!
//! This file holds the words only: panels name what was asked without knowing the window,
//! and the window's `handle` says what each one does.

use super::config::{HiditFile, ModelSlot};
use super::queue::EntryKey;
use crate::engine::JobId;

/// One request from the window's panels, carried out by `StudioApp::handle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Generate from the text-to-image controls (the Generate button, Ctrl+Enter).
    Generate,
    /// Edit the source image with the edit controls (Apply edit, Ctrl+Enter).
    Edit,
    /// Draw the chosen class with the class controls (Generate in class mode, Ctrl+Enter).
    GenerateClass,
    /// Ask for an image file to edit.
    OpenImage,
    /// Send the chat's message to the agent (Send, Enter).
    SendMessage,
    /// Ask for an image file to send with the chat's message.
    AttachFile,
    /// Send the result selected in the history with the chat's message.
    AttachSelected,
    /// Send no picture with the chat's message.
    Detach,
    /// Stop the agent's turn (its plan stops after the current step).
    StopTurn,
    /// Start a new conversation with the agent.
    NewConversation,
    /// Stop one job, running or queued.
    Cancel(JobId),
    /// Stop every job.
    CancelAll,
    /// Take a waiting job out of the queue (it never runs).
    RemoveQueued(EntryKey),
    /// Move a waiting job one place earlier (`up`) or later in the queue.
    MoveQueued { key: EntryKey, up: bool },
    /// Remove the status line at this index.
    Dismiss(usize),
    /// Show a history entry on the canvas.
    Select(i64),
    /// Put a history entry's settings back in the controls.
    ReuseSettings(i64),
    /// Make a history entry the image to edit.
    EditThis(i64),
    /// Save a history entry's image elsewhere.
    Export(i64),
    /// Remove a history entry and its files.
    Delete(i64),
    /// Ask for a model slot's folder.
    ChooseModel(ModelSlot),
    /// Empty a model slot.
    ClearModel(ModelSlot),
    /// Ask for a GGUF transformer to use instead of a slot's snapshot weights.
    ChooseTransformerFile(ModelSlot),
    /// Go back to the slot's snapshot weights.
    ClearTransformerFile(ModelSlot),
    /// Ask for one of the Hi-DiT model's files (its folder, autoencoder or statistics).
    ChooseHidit(HiditFile),
    /// Forget one of them (the folder, or a file chosen instead of the default).
    ClearHidit(HiditFile),
    /// Fill the empty model slots from the Hugging Face cache.
    FindInCache,
    /// Device, dtype or base resolution changed in the models view: save them.
    ModelSettingsChanged,
    /// Show the models view.
    ShowModels,
    /// Fill the slots from the cache and show the models view (the first-run screen).
    StartFromCache,
}
