//! The command-line tools; each subcommand in its own file.

pub mod agent;
pub mod agent_eval;
mod agent_jobs;
pub mod bench;
mod bench_pipeline;
mod bench_sit;
pub mod download;
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

/// Writes a report to standard output. A reader that stops early (`info … | head`) closes the
/// pipe: that ends the output, it is not an error (`print!` would panic on it).
pub(crate) fn print_report(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
