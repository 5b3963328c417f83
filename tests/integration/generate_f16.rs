//! `generate --dtype f16` on the CPU, end to end. bf16 is refused there up front (candle's CPU
//! matrix product has no bf16 kernel); f16 has every op it needs, so it runs, and its results
//! are checked against the same reference as f32's, at a tolerance made for f16.

use candle_core::Device;

use super::generate_parity::generate;
use crate::common::CASES;
use crate::common::against_reference;

// f16 keeps 11 significant bits: each rounding is off by up to 2⁻¹¹ ≈ 4.9e-4 relative. The
// weights, activations and every matrix product's output are rounded through the encoders and
// the transformer, at every step, and the VAE; over the fixtures (6 to 50 steps) the final
// latents measured 1.2e-3 to 5.6e-3 from the f32 reference (2.4 to 11 roundings' worth), the
// PNG 51.7 to 58.0 dB PSNR with no pixel more than 5 levels off. The bounds leave about 3.5×
// that: 2e-2 (40 roundings) and 40 dB. Broken f16 (an overflow, a wrong conversion) lands
// far outside: full-square from other noise measures 0.92 and 9.7 dB.
const MAX_LATENT_ERROR: f64 = 2e-2;
const MIN_PSNR: f64 = 40.0;
// What f32 keeps to (generate_parity; full-square measures 1.6e-6): f16 lands above it, so
// the job really computed in f16.
const F32_LATENT_ERROR: f64 = 1e-4;

#[test]
fn f16_on_the_cpu_runs_every_fixture_close_to_the_reference() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let out = generate(
            case,
            dir.path(),
            true,
            &["--dtype", "f16", "--device", "cpu", "--json"],
        );
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["settings"]["models"]["dtype"], "f16", "{case}");

        let dump =
            candle_core::safetensors::load(dir.path().join("dump.safetensors"), &Device::Cpu)
                .unwrap();
        for name in ["final_latents", "image"] {
            let sum = dump[name]
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(sum.is_finite(), "{case}: {name} is not finite");
        }
        let against = against_reference(case, dir.path());
        let (err, p) = (against.latents, against.psnr);
        println!("{case}: f16 final latents {err:.3e}, PSNR {p:.1} dB");
        assert!(
            err < MAX_LATENT_ERROR,
            "{case}: final latents relative error {err:.3e}"
        );
        assert!(
            err > F32_LATENT_ERROR,
            "{case}: {err:.3e} is f32's accuracy: was f16 used?"
        );
        assert!(p >= MIN_PSNR, "{case}: PSNR {p:.1} dB");
    }
}
