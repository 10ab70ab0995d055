//! The estimated distribution of a job type's durations: the type's own
//! durations smoothed in log time, mixed with a log-normal prior by the
//! weight their count earns (see the parent module for the formula).

use std::time::Duration;

use super::{BANDWIDTH_SCALE, MAX_BANDWIDTH, MIN_BANDWIDTH, PRIOR_WEIGHT, SMALL_SAMPLE_SIGMA};

/// A log-normal distribution of durations in seconds: `ln d` is normal
/// with mean `mu` and standard deviation `sigma`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNormal {
    /// Mean of the log seconds.
    pub mu: f64,
    /// Standard deviation of the log seconds (positive).
    pub sigma: f64,
}

impl LogNormal {
    /// The log-normal with this median and spread.
    pub fn with_median(median: Duration, sigma: f64) -> LogNormal {
        LogNormal {
            mu: median.as_secs_f64().max(1e-3).ln(),
            sigma,
        }
    }

    /// `P(d <= x)` for `x` seconds.
    pub fn cdf(&self, x: f64) -> f64 {
        if x <= 0.0 || x.is_nan() {
            return 0.0;
        }
        if self.sigma <= 0.0 {
            return if x.ln() >= self.mu { 1.0 } else { 0.0 };
        }
        let z = (x.ln() - self.mu) / (self.sigma * std::f64::consts::SQRT_2);
        0.5 * erfc(-z)
    }
}

/// The complementary error function, to a relative error below 1.2e-7
/// (the Chebyshev fit of Numerical Recipes' `erfcc`).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The estimated distribution of one type's durations.
#[derive(Clone, Copy, Debug)]
pub struct Model<'h> {
    /// The type's durations as sorted log seconds.
    sorted: &'h [f64],
    /// The type's share: `n / (n + PRIOR_WEIGHT)`.
    weight: f64,
    /// Half-width of each duration's box, in log seconds.
    bandwidth: f64,
    /// The prior.
    prior: LogNormal,
}

impl<'h> Model<'h> {
    /// The model of a type whose durations are `sorted` (log seconds,
    /// ascending) with sample variance `variance`, shrunk toward `prior`.
    pub fn new(sorted: &'h [f64], variance: f64, prior: LogNormal) -> Model<'h> {
        let n = sorted.len() as f64;
        let sigma = ((n * variance + SMALL_SAMPLE_SIGMA * SMALL_SAMPLE_SIGMA) / (n + 1.0)).sqrt();
        let bandwidth = if sorted.is_empty() {
            MIN_BANDWIDTH
        } else {
            (BANDWIDTH_SCALE * sigma * n.powf(-0.2)).clamp(MIN_BANDWIDTH, MAX_BANDWIDTH)
        };
        Model {
            sorted,
            weight: n / (n + PRIOR_WEIGHT),
            bandwidth,
            prior,
        }
    }

    /// How many of the type's own durations the model holds.
    pub fn samples(&self) -> usize {
        self.sorted.len()
    }

    /// The type's share of the mixture.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The box half-width in log seconds.
    pub fn bandwidth(&self) -> f64 {
        self.bandwidth
    }

    /// `P(d <= x)` for `x` seconds.
    pub fn cdf(&self, x: f64) -> f64 {
        let own = if self.weight > 0.0 {
            self.weight * self.smoothed(x)
        } else {
            0.0
        };
        own + (1.0 - self.weight) * self.prior.cdf(x)
    }

    /// `P(d > x)`.
    pub fn survival(&self, x: f64) -> f64 {
        (1.0 - self.cdf(x)).max(0.0)
    }

    /// `P(d <= age + g | d > age)`; 1 when the model leaves no chance of
    /// running past `age`.
    pub fn conditional(&self, age: f64, g: f64) -> f64 {
        Conditioned::new(*self, age).within(g)
    }

    /// The share of the type's durations at or below `x` seconds, each
    /// spread evenly over `[ln d - h, ln d + h]`.
    fn smoothed(&self, x: f64) -> f64 {
        if self.sorted.is_empty() || x <= 0.0 || x.is_nan() {
            return 0.0;
        }
        let lx = x.ln();
        let h = self.bandwidth;
        // Boxes wholly below `lx` count fully; the sorted order lets the
        // loop skip them and stop at the first box wholly above.
        let start = self.sorted.partition_point(|&ld| ld + h <= lx);
        let mut total = start as f64;
        for &ld in &self.sorted[start..] {
            let low = ld - h;
            if lx <= low {
                break;
            }
            total += ((lx - low) / (2.0 * h)).min(1.0);
        }
        total / self.sorted.len() as f64
    }
}

/// A model given that the job has run past `age`, with `P(d <= age)`
/// computed once for the many gaps a placement tries.
#[derive(Clone, Copy, Debug)]
pub struct Conditioned<'h> {
    model: Model<'h>,
    age: f64,
    base: f64,
}

impl<'h> Conditioned<'h> {
    /// `model` past `age` seconds.
    pub fn new(model: Model<'h>, age: f64) -> Conditioned<'h> {
        Conditioned {
            model,
            age,
            base: model.cdf(age),
        }
    }

    /// The age it is conditioned on.
    pub fn age(&self) -> f64 {
        self.age
    }

    /// `P(d > age)`.
    pub fn survival(&self) -> f64 {
        (1.0 - self.base).max(0.0)
    }

    /// `P(d <= age + g | d > age)`; 1 when the model leaves no chance of
    /// running past `age`.
    pub fn within(&self, g: f64) -> f64 {
        let survival = 1.0 - self.base;
        if survival <= 1e-12 {
            return 1.0;
        }
        ((self.model.cdf(self.age + g) - self.base) / survival).clamp(0.0, 1.0)
    }
}
