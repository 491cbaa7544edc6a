//! A plan's quality, predicted: load per reducer, max/mean load, files per property.
//!
//! Each property's expected rows and bytes are cut at reducer boundaries in proportion to its
//! route's overlap with each reducer (exactly as [`crate::Route::reducer`] spreads uniform
//! hashes), using integer arithmetic so the pieces sum to the property's total. A piece of `b`
//! bytes is expected to become `max(1, ⌈b / target_file_bytes⌉)` files.

use serde::Serialize;

use crate::partition::UNIT;
use crate::plan::Plan;

/// One reducer's predicted load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReducerLoad {
    pub reducer: u32,
    pub rows: u64,
    pub bytes: u64,
    /// Seen properties expected to send it rows.
    pub properties: u32,
    /// Share of this reducer reserved for unseen properties, `0..=1`.
    pub spare: f64,
}

/// The largest load over the mean load, the measure of balance everything reports (1.0 is
/// perfect); `None` when there is no load at all.
pub fn max_over_mean(loads: &[u64]) -> Option<f64> {
    let total: u64 = loads.iter().sum();
    if total == 0 {
        return None;
    }
    let mean = total as f64 / loads.len() as f64;
    Some(*loads.iter().max().unwrap_or(&0) as f64 / mean)
}

/// The predicted figures of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanStats {
    pub reducers: Vec<ReducerLoad>,
    /// Expected files per property, in [`Plan::properties`] order.
    pub files: Vec<u32>,
    pub rows: u64,
    pub bytes: u64,
    /// Rows per reducer if all were equal: `rows / R`.
    pub mean_rows: f64,
    pub max_rows: u64,
    /// The plan's balance: 1 is perfect; the slowest reducer bounds the run.
    pub max_over_mean: f64,
    pub files_total: u64,
    /// Mean over the properties expected to have rows.
    pub files_per_property: f64,
    pub max_files_per_property: u32,
}

impl Plan {
    /// Predicts the load on every reducer and the files every property will need.
    pub fn stats(&self) -> PlanStats {
        let r = self.reducers();
        let mut reducers: Vec<ReducerLoad> = (0..r)
            .map(|reducer| ReducerLoad {
                reducer,
                rows: 0,
                bytes: 0,
                properties: 0,
                spare: spare_overlap(self, reducer),
            })
            .collect();
        let target = u128::from(self.target_file_bytes());
        let mut files = Vec::with_capacity(self.properties().len());

        for slot in self.properties() {
            let route = self.slot_route(slot);
            let (start, len) = route.interval();
            let mut property_files = 0u32;
            let work = slot.rows.saturating_add(slot.stored_rows);
            if work > 0 {
                for reducer in route.reducers() {
                    // The overlap [lo, hi) relative to the interval; a point takes everything.
                    let (lo, hi) = if len == 0 {
                        (0, 1)
                    } else {
                        let r0 = u64::from(reducer) * UNIT;
                        (start.max(r0) - start, (start + len).min(r0 + UNIT) - start)
                    };
                    let len = len.max(1);
                    let cut = |x: u64, at: u64| u128::from(x) * u128::from(at) / u128::from(len);
                    let rows = (cut(work, hi) - cut(work, lo)) as u64;
                    let bytes = cut(slot.bytes, hi) - cut(slot.bytes, lo);
                    if rows == 0 {
                        continue;
                    }
                    let load = &mut reducers[reducer as usize];
                    // Saturating: a hand-edited history may claim any volume.
                    load.rows = load.rows.saturating_add(rows);
                    load.bytes = load.bytes.saturating_add(bytes as u64);
                    load.properties += 1;
                    property_files += bytes.div_ceil(target).max(1) as u32;
                }
            }
            files.push(property_files);
        }

        let rows = reducers.iter().fold(0u64, |a, l| a.saturating_add(l.rows));
        let bytes = reducers.iter().fold(0u64, |a, l| a.saturating_add(l.bytes));
        let max_rows = reducers.iter().map(|l| l.rows).max().unwrap_or(0);
        let mean_rows = rows as f64 / f64::from(r);
        let loads: Vec<u64> = reducers.iter().map(|l| l.rows).collect();
        let max_over_mean = max_over_mean(&loads).unwrap_or(1.0);
        let files_total: u64 = files.iter().map(|&f| u64::from(f)).sum();
        let with_rows = files.iter().filter(|&&f| f > 0).count();
        PlanStats {
            reducers,
            rows,
            bytes,
            mean_rows,
            max_rows,
            max_over_mean,
            files_total,
            files_per_property: if with_rows == 0 {
                0.0
            } else {
                files_total as f64 / with_rows as f64
            },
            max_files_per_property: files.iter().copied().max().unwrap_or(0),
            files,
        }
    }
}

fn spare_overlap(plan: &Plan, reducer: u32) -> f64 {
    let r0 = u64::from(reducer) * UNIT;
    let lo = plan.spare_start().max(r0);
    let hi = r0 + UNIT;
    if lo >= hi {
        0.0
    } else {
        (hi - lo) as f64 / UNIT as f64
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{PlanParams, Sample, Split, Volume, plan_from_sample};

    fn exact(rows: &[(&str, u64, u64)], params: &PlanParams) -> crate::Plan {
        let properties: BTreeMap<String, Volume> = rows
            .iter()
            .map(|&(n, rows, bytes)| {
                let v = Volume {
                    rows,
                    bytes,
                    objects: rows,
                    ..Default::default()
                };
                (n.to_string(), v)
            })
            .collect();
        let sample = Sample {
            sampled_records: 1,
            estimated_records: 1,
            properties,
        };
        plan_from_sample(&sample, params).unwrap()
    }

    #[test]
    fn weighted_loads_are_even_uniform_are_not() {
        let rows = [
            ("a", 700, 7000),
            ("b", 600, 6000),
            ("c", 300, 3000),
            ("d", 200, 2000),
        ];
        let mut params = PlanParams::new(4);
        params.spare = 0.0;
        params.min_split_rows = 0;
        let s = exact(&rows, &params).stats();
        let loads: Vec<u64> = s.reducers.iter().map(|l| l.rows).collect();
        assert_eq!(loads, [450, 450, 450, 450]);
        assert_eq!(s.rows, 1800);
        assert_eq!(s.bytes, 18000);
        assert!((s.max_over_mean - 1.0).abs() < 1e-12);
        // a: [0, 1.56) b: [1.56, 2.89) c: [2.89, 3.56) d: [3.56, 4)
        assert_eq!(s.files, [2, 2, 2, 1]);
        assert_eq!(s.files_total, 7);

        params.split = Split::Uniform;
        let s = exact(&rows, &params).stats();
        // a: 350+350 on 0,1; b: 300+300 on 1,2; c: 150+150 on 2,3; d: 200 on 3.
        let loads: Vec<u64> = s.reducers.iter().map(|l| l.rows).collect();
        assert_eq!(loads, [350, 650, 450, 350]);
        assert!((s.max_over_mean - 650.0 / 450.0).abs() < 1e-12);
    }

    #[test]
    fn big_pieces_split_into_files_and_spare_is_reported() {
        let mut params = PlanParams::new(2);
        params.target_file_bytes = 100;
        params.spare = 0.25;
        params.min_split_rows = 0;
        let s = exact(&[("big", 10, 1000), ("small", 1, 10)], &params).stats();
        // big: [0, 1.36): ~733 bytes on reducer 0 (8 files), ~267 on reducer 1 (3 files).
        assert_eq!(s.files, [11, 1]);
        assert_eq!(s.max_files_per_property, 11);
        assert_eq!(s.reducers[0].spare, 0.0);
        assert_eq!(s.reducers[1].spare, 0.5);
        assert_eq!(s.reducers[1].properties, 2);
    }
}
