//! All integration tests, in one binary: one link instead of twenty, and a fraction of the disk.

mod cli_info;
mod common;
mod dit_checkpoint;
mod dit_parity;
mod edit_errors;
mod edit_parity;
mod edit_reuse;
mod encoder_errors;
mod encoder_parity;
mod engine;
mod generate_errors;
mod generate_parity;
mod generate_previews;
mod hf_cache;
mod history_store;
mod preview_parity;
mod preview_snapshot;
mod prompt_cache;
mod shapes_editor;
mod shapes_eval;
mod shapes_models;
mod studio_snapshots;
mod studio_window;
mod vae_parity;
mod weights_errors;
