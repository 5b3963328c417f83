//! `hidream-studio download REPO`: fetch a model from the Hugging Face hub into the standard
//! cache, with a progress bar.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hidream_studio::hub::known::KNOWN_REPOS;
use hidream_studio::hub::{DownloadOptions, HubClient, download};
use hidream_studio::weights::HubCache;

use super::progress_bar::ProgressBar;

#[derive(Args)]
pub struct DownloadArgs {
    /// The repository, ORG/NAME (for example HiDream-ai/HiDream-I1-Dev). Without it, the
    /// models the studio knows are listed with their sizes.
    repo: Option<String>,
    /// Only the files whose path matches this glob (`*` crosses folders); repeat for more.
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,
    /// A branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// The hub cache to download into. Default: HF_HUB_CACHE, else HF_HOME/hub, else
    /// ~/.cache/huggingface/hub, as huggingface_hub chooses.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

pub fn run(args: &DownloadArgs) -> anyhow::Result<ExitCode> {
    let Some(repo) = &args.repo else {
        super::print_report(&known_list())?;
        return Ok(ExitCode::SUCCESS);
    };
    let cache = match &args.cache_dir {
        Some(dir) => HubCache::new(dir),
        None => HubCache::from_env().context(
            "no Hugging Face cache folder could be determined (HF_HUB_CACHE, HF_HOME and HOME \
             are unset): pass --cache-dir",
        )?,
    };
    let client = HubClient::from_env();
    let options = DownloadOptions {
        revision: args.revision.clone(),
        include: args.include.clone(),
        ..DownloadOptions::default()
    };
    let mut bar = ProgressBar::new(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    bar.message(&format!(
        "Downloading {repo} from {} into {} (Ctrl-C stops; the same command continues)",
        client.endpoint(),
        cache.root().display()
    ));
    let result = download(&client, &cache, repo, &options, &mut |p| {
        bar.fraction(
            p.fraction(),
            &format!("{}, files {}/{}", p.summary(), p.files_done, p.files_total),
        );
    });
    bar.finish();
    let snapshot = result?;
    super::print_report(&format!("{}\n", snapshot.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn known_list() -> String {
    let mut text = String::from(
        "Models the studio uses (download one with `hidream-studio download REPO [--include PATTERN]`):\n",
    );
    for k in KNOWN_REPOS {
        let _ = write!(
            text,
            "  {:<30} {:>6}  {}",
            k.label,
            format!("~{} GB", k.approx_bytes / 1_000_000_000),
            k.repo
        );
        for pattern in k.include {
            let _ = write!(text, " --include '{pattern}'");
        }
        let gated = if k.gated {
            " (accept the licence on its page first)"
        } else {
            ""
        };
        let _ = writeln!(text, "\n      {}{gated}", k.note);
    }
    text
}
