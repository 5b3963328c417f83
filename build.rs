//! Compiles the fused attention CUDA kernels (src/kernels/cuda_attention/attention.cu) to PTX
//! with nvcc, only when the `cuda` feature is on: the CPU build needs no CUDA toolkit and this
//! script then does nothing.
//!
//! nvcc is `$NVCC`, else `bin/nvcc` under `$CUDA_ROOT`, `$CUDA_HOME` or `$CUDA_PATH`, else `nvcc`
//! on the PATH. The target is `sm_$CUDA_COMPUTE_CAP` (default 90, Hopper).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/kernels/cuda_attention/attention.cu";
const DEFAULT_COMPUTE_CAP: &str = "90";

fn main() {
    // Without this line cargo would rerun the script after any change in the package.
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed={SOURCE}");
    for var in [
        "CUDA_COMPUTE_CAP",
        "NVCC",
        "CUDA_ROOT",
        "CUDA_HOME",
        "CUDA_PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if let Err(message) = compile_ptx() {
        // A build script reports failure by panicking; the message says what to fix.
        panic!("building the fused attention kernels: {message}");
    }
}

fn compile_ptx() -> Result<(), String> {
    let out_dir = env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?;
    let ptx = PathBuf::from(out_dir).join("cuda_attention.ptx");
    let arch = compute_cap()?;
    let nvcc = nvcc();
    // No --use_fast_math: the softmax needs the accurate expf, and nvcc's device code is
    // optimised by default (-O3 here is for the host pass, kept for symmetry with candle).
    let output = Command::new(&nvcc)
        .args(["--ptx", "-std=c++17", "-O3"])
        .arg(format!("-arch=sm_{arch}"))
        .arg("-o")
        .arg(&ptx)
        .arg(SOURCE)
        .output()
        .map_err(|err| {
            format!(
                "could not run {} ({err}); install the CUDA toolkit or set NVCC / CUDA_ROOT",
                nvcc.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}{}",
            nvcc.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// `CUDA_COMPUTE_CAP` as nvcc's `sm_` suffix: digits with an optional letter ("90", "90a").
fn compute_cap() -> Result<String, String> {
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| DEFAULT_COMPUTE_CAP.to_owned());
    let cap = cap.trim();
    let digits = cap.trim_end_matches(|c: char| c.is_ascii_lowercase());
    let valid = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && cap.len() - digits.len() <= 1;
    if valid {
        Ok(cap.to_owned())
    } else {
        Err(format!(
            "CUDA_COMPUTE_CAP={cap:?} is not a compute capability like 90 or 90a"
        ))
    }
}

fn nvcc() -> PathBuf {
    if let Some(nvcc) = env::var_os("NVCC") {
        return PathBuf::from(nvcc);
    }
    ["CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(env::var_os)
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("nvcc"))
}
