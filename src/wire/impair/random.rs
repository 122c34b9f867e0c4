// SPDX-License-Identifier: MIT OR Apache-2.0
//! The impairment's randomness: seeded generators, one per direction and feature, with
//! netem-style correlation, and the delay distributions. Only integer operations and the
//! exactly rounded IEEE 754 operations (+ - * / sqrt), so runs repeat bit for bit on every
//! machine. Pure: no I/O, no clock.

use crate::config::impair::{Chance, Delay, Dist};

// ---------------------------------------------------------------------------
// Randomness. Everything below uses only integer operations and the IEEE 754
// operations + - * / sqrt (all exactly rounded), so runs are bit-for-bit
// reproducible on every machine: no libm (ln, pow, cbrt, ...) is called.

/// SplitMix64 (Steele, Lea, Flood; Vigna's splitmix64.c), used for seeding.
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub(super) fn mix(x: u64) -> u64 {
    SplitMix64(x).next_u64()
}

/// xoshiro256** 1.0 (Blackman, Vigna).
#[derive(Debug, Clone)]
pub(super) struct Xoshiro256 {
    pub(super) s: [u64; 4],
}

impl Xoshiro256 {
    /// State from SplitMix64, as the authors recommend (never all zero).
    fn seeded(seed: u64) -> Self {
        let mut sm = SplitMix64(seed);
        Xoshiro256 {
            s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()],
        }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

/// Uniform in the open interval (0, 1): (k + 0.5) / 2^52, exact.
pub(super) fn unit(x: u64) -> f64 {
    ((x >> 12) as f64 + 0.5) * (1.0 / 4_503_599_627_370_496.0)
}

/// Feature ids: each feature draws from its own generator, so enabling one
/// never shifts the decisions of another. Never renumber (seeds would change).
#[derive(Clone, Copy)]
pub(super) enum Feature {
    Loss = 1,
    Delay = 2,
    Duplicate = 3,
    Corrupt = 4,
    Reorder = 5,
    CorruptPos = 6,
    DupDelay = 7,
}

/// One feature's generator plus netem-style correlation state.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub(super) rng: Xoshiro256,
    last: f64,
}

impl Source {
    pub(super) fn new(seed: u64, stream: u64, feature: Feature) -> Self {
        let mut rng = Xoshiro256::seeded(mix(mix(mix(seed) ^ stream) ^ feature as u64));
        let last = unit(rng.next_u64()); // netem also starts from a random value
        Source { rng, last }
    }

    pub(super) fn uniform(&mut self) -> f64 {
        unit(self.rng.next_u64())
    }

    /// netem's get_crandom: (1 - c) * fresh + c * last. Like netem, this
    /// narrows the spread, so a correlated chance is not exactly `pct`.
    pub(super) fn correlated(&mut self, corr: f64) -> f64 {
        let v = (1.0 - corr) * self.uniform() + corr * self.last;
        self.last = v;
        v
    }

    pub(super) fn chance(&mut self, c: &Chance) -> bool {
        below(self.correlated(c.corr), c.pct)
    }
}

pub(super) fn below(u: f64, p: f64) -> bool {
    p >= 1.0 || u < p
}

/// Natural logarithm of a positive normal `x`: exponent * ln 2 plus the atanh
/// series of the mantissa (|s| <= 0.172, 12 terms: error below 1 ulp).
pub(super) fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut sum = 0.0;
    for k in (0..12).rev() {
        sum = sum * s2 + 1.0 / f64::from(2 * k + 1);
    }
    e as f64 * std::f64::consts::LN_2 + 2.0 * s * sum
}

/// Cube root of `x >= 1` by Newton's method from a power-of-two guess.
pub(super) fn cbrt(x: f64) -> f64 {
    let e = ((x.to_bits() >> 52) & 0x7ff).saturating_sub(1023);
    let mut y = f64::from_bits((1023 + e / 3) << 52);
    for _ in 0..10 {
        y = (2.0 * y + x / (y * y)) / 3.0;
    }
    y
}

/// Inverse of the standard normal CDF for p in (0, 1): Acklam's rational
/// approximation, relative error below 1.2e-9. The coefficients are as published.
#[allow(clippy::excessive_precision)]
pub(super) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383577518672690e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let poly = |c: &[f64], x: f64| c.iter().fold(0.0, |acc, &k| acc * x + k);
    let tail = |q: f64| {
        let q = (-2.0 * ln(q)).sqrt();
        poly(&C, q) / (poly(&D, q) * q + 1.0)
    };
    if p < 0.02425 {
        tail(p)
    } else if p > 1.0 - 0.02425 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        poly(&A, r) * q / (poly(&B, r) * r + 1.0)
    }
}

/// Pareto (alpha 3, scale 1) quantile, standardised to mean 0, deviation 1:
/// X = (1 - p)^(-1/3) has mean 1.5 and standard deviation sqrt(3)/2.
pub(super) fn pareto_quantile(p: f64) -> f64 {
    (cbrt(1.0 / (1.0 - p)) - 1.5) * (2.0 / 3.0f64.sqrt())
}

/// Shapes a uniform variate by the inverse CDF, so correlation acts on the
/// uniform variate as in netem, and paretonormal mixes the two quantiles of
/// the same variate as netem's table does.
pub(super) fn shape(dist: Dist, u: f64) -> f64 {
    match dist {
        Dist::Uniform => 2.0 * u - 1.0,
        Dist::Normal => normal_quantile(u),
        Dist::Pareto => pareto_quantile(u),
        Dist::ParetoNormal => 0.25 * normal_quantile(u) + 0.75 * pareto_quantile(u),
    }
}

/// One delay sample in ns (one draw when there is jitter, none otherwise).
pub(super) fn sample_delay(d: &Delay, src: &mut Source) -> u64 {
    if d.jitter == 0 {
        return d.time;
    }
    let v = d.time as f64 + d.jitter as f64 * shape(d.dist, src.correlated(d.corr));
    if v > 0.0 {
        v.round() as u64 // saturates; never below 0
    } else {
        0
    }
}

/// Transmission time of `len` bytes at `rate` bit/s, ns, rounded up.
pub(super) fn tx_time(len: usize, rate: u64) -> u64 {
    let ns = (len as u128 * 8_000_000_000).div_ceil(u128::from(rate.max(1)));
    u64::try_from(ns).unwrap_or(u64::MAX)
}
