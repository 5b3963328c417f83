//! The command-line tools; each subcommand in its own file.

pub mod info;
