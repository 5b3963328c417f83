//! A branch-free `exp` for f32 that vectorises, accurate to about 1 ulp (Cephes' polynomial on
//! a range-reduced argument).

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two so `n·ln2` is exact for the |n| ≤ 128 we use.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5·2²³ rounds to the nearest integer with plain adds (no SSE4.1).
const ROUNDER: f32 = 12_582_912.0;

#[inline(always)]
// `max`/`min` lower to vmaxps/vminps; `clamp`'s NaN and bound checks get in the vectoriser's way.
#[allow(clippy::manual_clamp)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Below the lower bound the result is below the smallest normal; clamping gives 2^-126
    // instead of 0, which is invisible after any sum it takes part in. The upper bound keeps
    // 2^n finite (about 2.4e38 instead of overflowing).
    let x = x.max(-87.336_54).min(88.376_26);
    // z = 1.5·2²³ + n exactly, so n is both `z − ROUNDER` and the low bits of z: no
    // float-to-int conversion, which would not vectorise well.
    let z = x * LOG2E + ROUNDER;
    let n = z - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r2
        + r
        + 1.0;
    let two_n = f32::from_bits(
        z.to_bits()
            .wrapping_sub(ROUNDER.to_bits())
            .wrapping_add(127)
            << 23,
    );
    p * two_n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_to_a_few_ulp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.3 {
            let ours = f64::from(exp_f32(x));
            let exact = f64::from(x).exp();
            worst = worst.max(((ours - exact) / exact).abs());
            x += 0.001_7;
        }
        assert!(
            worst < 3.0 * f64::from(f32::EPSILON),
            "worst relative error {worst:e}"
        );
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(1000.0).is_finite());
    }
}
