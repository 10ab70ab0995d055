//! The optimal schedule of one type at the default spacing: for every age
//! at which a poll found the job still running, the age of the next poll
//! that minimises the expected `calls + LOSS_RATE / spacing * delay` over
//! the rest of the job, by dynamic programming over the estimated
//! distribution on a grid.
//!
//! The one-step rule of the parent module (`g * P(done within g) >=
//! spacing`) optimises the same cost one gap at a time and gathers its
//! polls too densely where a sharp distribution ends; the programme sees
//! every later poll too. A plan costs `O(GRID * reach)` to build (at most
//! `GRID` points, `reach` the points within `max_interval`), so a type's
//! plan is rebuilt only when its history has grown by a quarter since (or
//! by one duration while it holds fewer than eight).

use super::{Conditioned, Model};

/// The most grid points of a plan.
pub const GRID: usize = 2000;
/// The finest grid step, in seconds.
const MIN_STEP: f64 = 0.1;
/// The plan covers ages up to where this share of jobs still runs.
const HORIZON_SURVIVAL: f64 = 5e-3;
/// The weight of a second of delay against one call, times the spacing:
/// the cost the one-step rule minimises is `calls + 2 * delay / spacing`.
pub const LOSS_RATE: f64 = 2.0;

/// A type's plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The grid step in seconds.
    step: f64,
    /// Per grid point, the grid point of the next poll (`u32::MAX` where
    /// nothing is left to plan).
    next: Vec<u32>,
}

/// A type's plan as last built: for which gap cap, at which count of the
/// type's records, and the plan itself (`None` when the type's span is
/// too wide to plan).
#[derive(Clone, Debug)]
pub struct Slot {
    pub cap: f64,
    pub built_at: u64,
    pub plan: Option<Plan>,
}

impl Plan {
    /// The plan of `model` for gaps of at most `cap` seconds, or `None`
    /// when the type's span is too wide for the grid to resolve a gap
    /// (a step above a quarter of `cap`).
    pub fn build(model: Model<'_>, spacing: f64, cap: f64) -> Option<Plan> {
        let horizon = horizon(model);
        let step = (horizon / GRID as f64).max(MIN_STEP);
        if step > 0.25 * cap {
            return None;
        }
        let n = ((horizon / step).ceil() as usize + 1).clamp(2, GRID + 1);
        let t = |i: usize| i as f64 * step;
        let cdf: Vec<f64> = (0..n).map(|i| model.cdf(t(i))).collect();
        // The integral of the CDF from 0: the expected delay of the jobs
        // that end between two polls is a difference of it.
        let mut area = vec![0.0; n];
        for i in 1..n {
            area[i] = area[i - 1] + 0.5 * (cdf[i] + cdf[i - 1]) * step;
        }
        let lambda = LOSS_RATE / spacing.max(1e-3);
        let reach = ((cap / step).floor() as usize).max(1);
        let mut value = vec![0.0; n];
        let mut next = vec![u32::MAX; n];
        for i in (0..n - 1).rev() {
            let survival = 1.0 - cdf[i];
            if survival <= 1e-12 {
                continue;
            }
            let mut best = (f64::INFINITY, u32::MAX);
            for j in (i + 1)..(i + 1 + reach).min(n) {
                let loss = area[j] - area[i] - cdf[i] * (t(j) - t(i));
                let cost = survival + lambda * loss + value[j];
                if cost < best.0 {
                    best = (cost, j as u32);
                }
            }
            value[i] = best.0;
            next[i] = best.1;
        }
        Some(Plan { step, next })
    }

    /// The gap in seconds after a poll at `age`, or `None` past the plan.
    pub fn gap(&self, age: f64) -> Option<f64> {
        if age.is_nan() || age < 0.0 {
            return None;
        }
        let index = (age / self.step).floor();
        let next = *self.next.get(index as usize)?;
        if next == u32::MAX {
            return None;
        }
        Some(f64::from(next) * self.step - age)
    }
}

/// The age by which all but [`HORIZON_SURVIVAL`] of the jobs have ended,
/// found by doubling then bisection (at most 30 days).
fn horizon(model: Model<'_>) -> f64 {
    let limit = 30.0 * 24.0 * 3600.0;
    let done = |x: f64| Conditioned::new(model, x).survival() <= HORIZON_SURVIVAL;
    let mut high = 1.0;
    while !done(high) && high < limit {
        high *= 2.0;
    }
    let mut low = 0.0;
    for _ in 0..30 {
        let middle = 0.5 * (low + high);
        if done(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    high.min(limit)
}
