//! `hidream-studio`: the studio window, or one of the command-line tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// HiDream Studio: create and edit images with the HiDream models, locally.
///
/// Run without a command to open the studio window.
#[derive(Parser)]
#[command(name = "hidream-studio", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a model folder: what it holds and what is missing or damaged.
    ///
    /// Reads only file headers, so checking a 47 GB download takes a moment. Prints each
    /// component with its class, files, stored dtypes, parameter count and size, then every
    /// problem found. Exits with status 1 when the folder cannot be used as it is.
    Info(cli::info::InfoArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HIDREAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => hidream_studio::app::run_window(),
        Some(Command::Info(args)) => cli::info::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
