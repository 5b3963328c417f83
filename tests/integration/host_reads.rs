//! The denoising loop reads nothing back to the host once the experts route on the device, and
//! device routing computes what host routing does.
//!
//! On CUDA every host read inside a step is a device-to-host copy that stalls the step; the
//! models pick device-resident routing there ([`ExpertRouting::for_device`]). These tests run
//! the same code on the CPU with that routing forced, counting reads with
//! [`hidream_studio::host_reads`] (which the model sources must use, a unit test checks).

use candle_core::Tensor;
use hidream_studio::engine::Cancelled;
use hidream_studio::host_reads;
use hidream_studio::models::hidream::ExpertRouting;
use hidream_studio::pipelines::{
    ComputeDType, DeviceChoice, EncoderMemory, GenerateSettings, HiDreamModels, ModelSelection,
    Preset, Progress, generate,
};
use hidream_studio::schedulers::ShiftMode;

use crate::common::{fixture_model, fixtures, rel_err};

/// Host reads seen at each step's end, and when decoding starts.
#[derive(Default)]
struct ReadsPerStep {
    at_step: Vec<u64>,
    at_decode: Option<u64>,
}

impl Progress for ReadsPerStep {
    fn stage(&mut self, stage: &str) -> Result<(), Cancelled> {
        if stage == "decoding" {
            self.at_decode = Some(host_reads::count());
        }
        Ok(())
    }

    fn step(&mut self, _: usize, _: usize, _: Option<Tensor>) -> Result<(), Cancelled> {
        self.at_step.push(host_reads::count());
        Ok(())
    }
}

fn settings(case: &str, preset: Preset, steps: usize, guidance: f64) -> GenerateSettings {
    GenerateSettings {
        models: ModelSelection {
            model: fixture_model(case),
            llama: fixtures().join("llama-3.1-tiny"),
            dtype: ComputeDType::F32,
            device: DeviceChoice::Cpu,
            transformer: None,
            placement: hidream_studio::settings::PlacementChoice::default(),
        },
        prompt: "a red circle on the left".into(),
        negative_prompt: Some("blurry".into()),
        preset,
        steps: Some(steps),
        guidance: Some(guidance),
        shift: None,
        shift_mode: ShiftMode::Dynamic,
        width: 64,
        height: 64,
        base_resolution: 64,
        seed: 3,
        init: None,
    }
}

/// Runs a job with the given routing; returns the final latents and the reads per step.
fn run(settings: &GenerateSettings, routing: ExpertRouting) -> (Tensor, ReadsPerStep) {
    let mut models = HiDreamModels::load(&settings.models, EncoderMemory::Keep).unwrap();
    models.transformer.set_expert_routing(routing).unwrap();
    let mut reads = ReadsPerStep::default();
    let out = generate(&mut models, settings, None, &mut reads).unwrap();
    (out.final_latents, reads)
}

fn assert_no_reads_between_steps(what: &str, reads: &ReadsPerStep, steps: usize) {
    assert_eq!(reads.at_step.len(), steps, "{what}: one callback per step");
    let first = reads.at_step[0];
    let decode = reads.at_decode.expect("the pipeline announces decoding");
    assert!(
        reads.at_step.iter().all(|&r| r == first) && decode == first,
        "{what}: host reads during steps 2..{steps}: {:?}, then {decode} at decoding",
        reads.at_step
    );
}

#[test]
fn full_with_cfg_denoises_without_host_reads_on_device_routing() {
    // FlowUniPC with classifier-free guidance (batch 2), four experts top-2.
    let s = settings("full-square", Preset::Full, 4, 5.0);
    let (latents, reads) = run(&s, ExpertRouting::DeviceDense);
    assert_no_reads_between_steps("full-square", &reads, 4);

    // The counter does see host routing's reads: two MoE blocks per step read their routing
    // table, each of them once per forward.
    let (host_latents, host_reads) = run(&s, ExpertRouting::HostGather);
    let per_step: Vec<u64> = host_reads.at_step.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        per_step.iter().all(|&n| n == 4),
        "host routing reads its table in each of the 4 MoE blocks: {per_step:?}"
    );

    assert_same_result(&latents, &host_latents);
}

/// Device and host routing add the same expert outputs in the same order, but the dense path
/// multiplies each expert's weights with all tokens and the host path with its own tokens only:
/// the CPU GEMM blocks a matrix by its row count, so the last bits differ (measured 1.3e-6
/// relative after four UniPC steps with CFG, 2e-7 after four Flash steps).
fn assert_same_result(device_routed: &Tensor, host_routed: &Tensor) {
    let err = rel_err(device_routed, host_routed);
    assert!(
        err < 1e-5,
        "device routing differs from host routing: {err:e}"
    );
}

#[test]
fn dev_with_step_noise_denoises_without_host_reads_on_device_routing() {
    // Flash re-noises with fresh noise at every step; the noise goes to the device, nothing
    // comes back.
    let s = settings("dev-landscape", Preset::Dev, 4, 0.0);
    let (latents, reads) = run(&s, ExpertRouting::DeviceDense);
    assert_no_reads_between_steps("dev-landscape", &reads, 4);
    let (host_latents, _) = run(&s, ExpertRouting::HostGather);
    assert_same_result(&latents, &host_latents);
}
