//! HiDream Studio: run the HiDream family of image models locally.
//!
//! The library holds everything the window and the command line share: reading model folders
//! ([`weights`]), describing them ([`info`]) and the background engine that runs jobs
//! ([`engine`]).

pub mod agent;
pub mod app;
pub mod device_memory;
pub mod engine;
#[cfg(test)]
mod error_message_tests;
pub mod host_reads;
pub mod hub;
pub mod info;
pub(crate) mod kernels;
pub mod models;
pub mod pipelines;
pub mod placement;
pub mod preview;
pub mod quantize;
pub mod rng;
pub mod schedulers;
pub mod settings;
pub mod shapes;
#[cfg(test)]
mod source_scan;
pub mod store;
pub mod weights;
