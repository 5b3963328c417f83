//! Choosing the next token from the logits, as transformers' `generate` does: the repetition
//! penalty (a logits processor, so greedy decoding applies it too), then for sampling the
//! temperature, top-k and top-p warpers in that order (`_get_logits_processor` in transformers
//! 5.23.0's `generation/utils.py`; the maths of each in `generation/logits_process.py`), all in
//! f32 like the reference. Removed tokens get −∞.
//!
//! The draw itself cannot be transformers': torch samples through its own generator
//! (`torch.multinomial`), which nothing outside torch replays. Ours draws from the same
//! distribution with the project's seeded [`Rng`], so a seed gives the same reply everywhere.

use crate::rng::Rng;

/// The sampling knobs, with transformers' meanings and neutral values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Logits are divided by it; 1 leaves them.
    pub temperature: f32,
    /// Keep the k most likely tokens (ties with the k-th kept too); 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches top_p; 1 keeps all.
    pub top_p: f32,
}

impl Default for SamplingParams {
    /// transformers' defaults when a model's generation_config.json sets none.
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
        }
    }
}

impl SamplingParams {
    /// Applies temperature, top-k and top-p, in generate's order.
    pub fn warp(&self, logits: &mut [f32]) {
        if self.temperature != 1.0 {
            apply_temperature(logits, self.temperature);
        }
        if self.top_k != 0 {
            apply_top_k(logits, self.top_k);
        }
        if self.top_p < 1.0 {
            apply_top_p(logits, self.top_p);
        }
    }
}

/// `RepetitionPenaltyLogitsProcessor`: every token already in `previous` (prompt included)
/// has its logit divided by `penalty` when positive and multiplied when negative, once
/// however often it occurred.
pub fn apply_repetition_penalty(logits: &mut [f32], previous: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &id in previous {
        let i = id as usize;
        if i < logits.len() && !seen[i] {
            seen[i] = true;
            let s = logits[i];
            logits[i] = if s < 0.0 { s * penalty } else { s / penalty };
        }
    }
}

/// `TemperatureLogitsWarper`.
pub fn apply_temperature(logits: &mut [f32], temperature: f32) {
    for s in logits {
        *s /= temperature;
    }
}

/// `TopKLogitsWarper`: tokens below the k-th largest logit are removed.
pub fn apply_top_k(logits: &mut [f32], k: usize) {
    let k = k.min(logits.len());
    if k == 0 {
        return;
    }
    let mut sorted = logits.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    for s in logits {
        if *s < threshold {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// `TopPLogitsWarper`: sorted from least to most likely, tokens whose cumulative probability
/// is at most 1 − top_p are removed; the most likely token always stays.
pub fn apply_top_p(logits: &mut [f32], top_p: f32) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let sorted: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
    let probs = softmax(&sorted);
    // The reference compares its f32 cumulative sums with (1 − top_p) rounded to f32; torch
    // accumulates a CPU cumsum in double and rounds each partial sum.
    let threshold = (1.0 - f64::from(top_p)) as f32;
    let mut cumulative = 0f64;
    let last = order.len().saturating_sub(1);
    for (rank, (&i, &p)) in order.iter().zip(&probs).enumerate() {
        cumulative += f64::from(p);
        if rank < last && cumulative as f32 <= threshold {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// Probabilities of `logits` (−∞ → 0), accumulated in f64.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; logits.len()];
    }
    let exps: Vec<f64> = logits
        .iter()
        .map(|&s| (f64::from(s) - f64::from(max)).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / total) as f32).collect()
}

/// The most likely token; the first of equals, as `torch.argmax`.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in logits.iter().enumerate() {
        if s > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Seeded draws from a distribution over tokens.
#[derive(Debug, Clone)]
pub struct Sampler {
    rng: Rng,
}

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
        }
    }

    /// A token drawn with probability proportional to `probs`: the inverse of the cumulative
    /// distribution at one uniform draw u in (0, 1] (token i when cum(i−1) < u·total ≤ cum(i)).
    pub fn draw(&mut self, probs: &[f32]) -> u32 {
        let total: f64 = probs.iter().map(|&p| f64::from(p)).sum();
        let target = self.rng.uniform() * total;
        let mut cumulative = 0.0;
        let mut last_possible = 0;
        for (i, &p) in probs.iter().enumerate() {
            if p <= 0.0 {
                continue;
            }
            last_possible = i;
            cumulative += f64::from(p);
            if target <= cumulative {
                return i as u32;
            }
        }
        // Rounding left the target at the very top: the last token that could be drawn.
        last_possible as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_distribution_and_repeat_with_the_seed() {
        let probs = [0.5, 0.0, 0.3, 0.2];
        let mut sampler = Sampler::new(11);
        let mut counts = [0usize; 4];
        let n = 20_000;
        let draws: Vec<u32> = (0..n).map(|_| sampler.draw(&probs)).collect();
        for &d in &draws {
            counts[d as usize] += 1;
        }
        assert_eq!(counts[1], 0, "a token of probability 0 was drawn");
        for (i, &p) in probs.iter().enumerate() {
            let freq = counts[i] as f64 / f64::from(n);
            // Four standard deviations of a binomial frequency at n = 20000 is under 0.015.
            assert!(
                (freq - f64::from(p)).abs() < 0.015,
                "token {i}: {freq} vs {p}"
            );
        }
        let mut again = Sampler::new(11);
        assert!(draws.iter().all(|&d| d == again.draw(&probs)));
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), 1);
    }
}
