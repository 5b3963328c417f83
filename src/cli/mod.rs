//! The command-line tools; each subcommand in its own file.

pub mod bench;
pub mod info;
pub mod options;
