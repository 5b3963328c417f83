//! The tracked files stay small enough to travel to a lent GPU machine with the CUDA binary
//! beside them: the device tool takes at most 64 MiB, and `tools/cuda/build.sh` makes a binary
//! of about 16 MiB compressed (its size is in BENCHMARKS.md), so the repository gets 44 MiB
//! (design.md's budget) and about 4 MiB stay for other carried files. (The 16 MB of diffusers
//! wheels tools/gpu/README.md lists for the Python reference do not fit beside both: that
//! check has to trim them; `check.sh --tiers` needs none.) Shared model components are stored
//! once (`tools/link_duplicates.py`), and the bundled transformers as Q8_0 GGUFs (3.1 MB
//! each instead of 5.5). What is left under the budget is for the bundled Hi-DiT and agent
//! models (issues 19 and 20, up to 8 MB each).

use std::path::Path;
use std::process::Command;

const BUDGET_BYTES: u64 = 44 * 1024 * 1024;

#[test]
fn tracked_files_fit_the_trip_to_a_gpu_machine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listing = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("git runs (the tests run in a git checkout)");
    assert!(
        listing.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let mut total = 0u64;
    let mut largest: Vec<(u64, String)> = Vec::new();
    for name in listing.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        // A link travels as a link: its own size, not its target's.
        let Ok(meta) = std::fs::symlink_metadata(root.join(&name)) else {
            continue; // deleted in the working tree: it does not travel
        };
        total += meta.len();
        largest.push((meta.len(), name));
    }
    largest.sort_unstable_by(|a, b| b.cmp(a));
    let top: Vec<String> = largest
        .iter()
        .take(10)
        .map(|(size, name)| format!("{size:>9} {name}"))
        .collect();
    assert!(
        total <= BUDGET_BYTES,
        "tracked files take {:.1} MiB, over the {} MiB budget; store shared files once \
         (python3 tools/link_duplicates.py assets/models tests/fixtures) or make fixtures \
         smaller. Largest:\n{}",
        total as f64 / 1048576.0,
        BUDGET_BYTES / 1048576,
        top.join("\n")
    );
}
