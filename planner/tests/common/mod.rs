//! Seeded generators shared by the planner's randomised tests: a tiny PRNG (no `rand`, whose
//! streams change between versions) and synthetic histories of known shape.

#![allow(dead_code)]

use std::collections::BTreeMap;

use planner::{HISTORY_SCHEMA_VERSION, RunRecord, Volume};

/// SplitMix64: small, fast, and its stream never changes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        planner::fmix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range(0, i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The shapes of volume the planner must handle.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Uniform,
    Zipf(f64),
    /// One property holds (nearly) every row.
    OneHot,
}

pub const SHAPES: [Shape; 5] = [
    Shape::Uniform,
    Shape::Zipf(0.8),
    Shape::Zipf(1.1),
    Shape::Zipf(1.5),
    Shape::OneHot,
];

/// Each of `n` properties' share of the rows, heaviest first; the shares sum to 1.
pub fn shares(shape: Shape, n: usize) -> Vec<f64> {
    let raw: Vec<f64> = (0..n)
        .map(|k| match shape {
            Shape::Uniform => 1.0,
            Shape::Zipf(s) => ((k + 1) as f64).powf(-s),
            Shape::OneHot if k == 0 => 1.0,
            Shape::OneHot => 0.0,
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| w / sum).collect()
}

/// Names in a random order, so nothing depends on names sorting like volumes.
pub fn names(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("prop_{i:05}")).collect();
    rng.shuffle(&mut v);
    v
}

/// `runs` nightly runs of `n` properties with ±10 % noise per run and roughly `total` rows.
pub fn history_runs(
    rng: &mut Rng,
    shape: Shape,
    n: usize,
    runs: usize,
    total: f64,
) -> Vec<RunRecord> {
    let names = names(rng, n);
    let shares = shares(shape, n);
    (0..runs)
        .map(|day| {
            let properties: BTreeMap<String, Volume> = names
                .iter()
                .enumerate()
                .map(|(k, name)| {
                    let noise = 0.9 + 0.2 * rng.f64();
                    let rows = (shares[k] * total * noise).round() as u64;
                    let v = Volume {
                        rows,
                        bytes: rows * rng.range(8, 64),
                        objects: rows.div_ceil(3),
                        ..Default::default()
                    };
                    (name.clone(), v)
                })
                .collect();
            RunRecord {
                schema_version: HISTORY_SCHEMA_VERSION,
                run_id: format!("run-{day:02}"),
                started_at: format!("2026-11-{:02}T02:{:02}:00Z", 10 + day, rng.range(0, 60)),
                dataset: Some("contacts".into()),
                partition: None,
                properties,
                reducers: vec![],
            }
        })
        .collect()
}
