//! The command-line tools; each subcommand in its own file.

pub mod bench;
mod bench_pipeline;
pub mod edit;
pub mod eval;
pub mod eval_edits;
pub mod generate;
pub mod hidit;
pub mod info;
mod job;
mod job_args;
mod outputs;
pub mod parity;
pub mod plan;
mod previews;
mod progress_bar;
pub mod quantize;
