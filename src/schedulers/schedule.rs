//! σ schedules, computed with the reference's exact mix of f32 and f64 arithmetic: the Full
//! sampler hands the transformer timesteps truncated to integers, so one rounding step in the
//! wrong precision would move a timestep by one and change the image.

/// Number of training timesteps of every HiDream scheduler.
pub(crate) const TRAIN_STEPS: usize = 1000;

/// σ for each step plus σ_N = 0, and the timestep value the transformer receives at each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// N + 1 values, the last 0, in f32 as the reference stores them.
    pub sigmas: Vec<f32>,
    /// N values on the 0..1000 scale: truncated integers for FlowUniPC, f32 for Flash.
    pub timesteps: Vec<f32>,
}

impl Schedule {
    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }
}

/// The time shift `S·σ / (1 + (S − 1)·σ)`, in f64.
pub(crate) fn shift_f64(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// The same in f32, operation by operation as PyTorch evaluates it on an f32 tensor.
pub(crate) fn shift_f32(sigma: f32, shift: f64) -> f32 {
    let s = shift as f32;
    let shift_minus_one = (shift - 1.0) as f32;
    (s * sigma) / (1.0 + shift_minus_one * sigma)
}

/// `numpy.linspace(start, stop, num)`: `i·step + start`, the last value exactly `stop`.
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// `mu` of the official pipelines: the FLUX resolution-dependent shift line from (256, 0.5) to
/// (4096, 1.15), evaluated at the transformer's `max_seq` (not at the real token count).
pub(crate) fn calculate_shift(image_seq_len: usize) -> f64 {
    let (base_len, max_len, base_shift, max_shift) = (256.0, 4096.0, 0.5, 1.15);
    let m = (max_shift - base_shift) / (max_len - base_len);
    let b = base_shift - m * base_len;
    image_seq_len as f64 * m + b
}

/// The official FlowUniPC schedule: a 1000-step training grid shifted once with `init_shift`
/// (in f32), then `steps` points from its σ_max down to 0 shifted again with `set_shift` (in
/// f64), timesteps truncated to integers.
pub fn flow_unipc(init_shift: f64, set_shift: f64, steps: usize) -> Schedule {
    // alphas = linspace(1, 1/1000, 1000)[::-1]; sigmas = 1 − alphas; σ_max is the first.
    let alphas = linspace(1.0, 1.0 / TRAIN_STEPS as f64, TRAIN_STEPS);
    let sigma_max = f64::from(shift_f32(
        (1.0 - alphas[TRAIN_STEPS - 1]) as f32,
        init_shift,
    ));
    let sigma_min = 0.0;
    let grid = linspace(sigma_max, sigma_min, steps + 1);
    let shifted: Vec<f64> = grid[..steps]
        .iter()
        .map(|&s| shift_f64(s, set_shift))
        .collect();
    truncated_timesteps(&shifted)
}

/// diffusers' `UniPCMultistepScheduler` with `use_flow_sigmas` (the scheduler of the
/// HiDream-I1-Full snapshot, which the E1 editing pipeline uses): `steps` points of
/// linspace(1, 1/1000) shifted once in f64, the first nudged below 1 by 1e-6, timesteps
/// truncated to integers (`set_timesteps` in
/// https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/schedulers/scheduling_unipc_multistep.py).
pub(crate) fn diffusers_flow_unipc(shift: f64, steps: usize) -> Schedule {
    let grid = linspace(1.0, 1.0 / TRAIN_STEPS as f64, steps + 1);
    let mut shifted: Vec<f64> = grid[..steps].iter().map(|&s| shift_f64(s, shift)).collect();
    if let Some(first) = shifted.first_mut()
        && (*first - 1.0).abs() < 1e-6
    {
        *first -= 1e-6;
    }
    truncated_timesteps(&shifted)
}

/// f64 σs stored as f32 with a final 0, and timesteps `1000·σ` truncated to integers, as
/// both UniPC schedules hand them to the transformer.
fn truncated_timesteps(shifted: &[f64]) -> Schedule {
    let timesteps = shifted
        .iter()
        .map(|&s| (s * TRAIN_STEPS as f64).trunc() as f32)
        .collect();
    let mut sigmas: Vec<f32> = shifted.iter().map(|&s| s as f32).collect();
    sigmas.push(0.0);
    Schedule { sigmas, timesteps }
}

/// The Flash (and FlowMatchLCM) schedule: the f32 training grid shifted with `shift`, then
/// `steps` points from 1000·σ_max to 1000·σ_min shifted again in f64 (the endpoint is shifted
/// twice, as in diffusers' FlowMatchEuler), stored as f32, timesteps `1000·σ` in f32.
pub fn flash(shift: f64, steps: usize) -> Schedule {
    let train = TRAIN_STEPS as f32;
    // linspace(1, 1000, 1000, dtype=f32)[::-1] / 1000, shifted in f32.
    let sigma_max = f64::from(shift_f32(1000.0 / train, shift));
    let sigma_min = f64::from(shift_f32(1.0 / train, shift));
    let t = linspace(
        sigma_max * TRAIN_STEPS as f64,
        sigma_min * TRAIN_STEPS as f64,
        steps,
    );
    let mut sigmas: Vec<f32> = t
        .iter()
        .map(|&t| shift_f64(t / TRAIN_STEPS as f64, shift) as f32)
        .collect();
    let timesteps = sigmas.iter().map(|&s| s * train).collect();
    sigmas.push(0.0);
    Schedule { sigmas, timesteps }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from running the official scheduler classes.
    #[test]
    fn full_official_schedule() {
        let s = flow_unipc(3.0, calculate_shift(4096).exp(), 50);
        assert_eq!(s.timesteps.len(), 50);
        let expect = [
            (0, 999, 0.999894),
            (1, 993, 0.993473),
            (24, 773, 0.773704),
            (37, 525, 0.525872),
            (48, 116, 0.116253),
            (49, 60, 0.060531),
        ];
        for (i, t, sigma) in expect {
            assert_eq!(s.timesteps[i], t as f32, "timestep {i}");
            assert!(
                (s.sigmas[i] - sigma).abs() < 1e-6,
                "sigma {i}: {}",
                s.sigmas[i]
            );
        }
        assert_eq!(s.sigmas[50], 0.0);
        assert!((calculate_shift(4096) - 1.15).abs() < 1e-12);
    }

    #[test]
    fn every_full_timestep_matches() {
        let expected = [
            999, 993, 986, 980, 973, 965, 958, 950, 943, 934, 926, 917, 908, 899, 890, 880, 870,
            859, 848, 837, 825, 813, 800, 787, 773, 759, 744, 728, 712, 695, 677, 659, 639, 619,
            597, 574, 551, 525, 499, 471, 441, 409, 375, 339, 300, 259, 215, 167, 116, 60,
        ];
        let s = flow_unipc(3.0, calculate_shift(4096).exp(), 50);
        let got: Vec<u32> = s.timesteps.iter().map(|&t| t as u32).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn dev_and_fast_flash_schedules() {
        let dev = flash(6.0, 28);
        assert_eq!(dev.timesteps[0], 1000.0);
        assert_eq!(dev.timesteps[1], 993.669_8);
        assert_eq!(dev.timesteps[2], 986.925_8);
        assert_eq!(dev.timesteps[27], 34.782_608);
        assert!((dev.sigmas[18] - 0.753_333).abs() < 1e-6);
        let fast = flash(3.0, 16);
        assert_eq!(fast.timesteps[15], 8.928_572);
        assert!((fast.sigmas[8] - 0.725_417).abs() < 1e-6);
        assert_eq!(*fast.sigmas.last().unwrap(), 0.0);
    }

    /// diffusers 0.42.1's UniPC with flow sigmas, shift 3, N = 28, gives 999, 987, 975, …,
    /// 587 (i = 19), …, 102.
    #[test]
    fn diffusers_unipc_schedule_of_the_editing_pipeline() {
        let s = diffusers_flow_unipc(3.0, 28);
        let t: Vec<u32> = s.timesteps.iter().map(|&t| t as u32).collect();
        assert_eq!(&t[..3], &[999, 987, 975]);
        assert_eq!(t[18], 625);
        assert_eq!(t[19], 587);
        assert_eq!(t[27], 102);
        assert!((s.sigmas[0] - 0.999_999).abs() < 1e-7);
        assert_eq!(s.sigmas[28], 0.0);
    }

    #[test]
    fn linspace_like_numpy() {
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace(2.0, 2.0, 1), vec![2.0]);
    }
}
