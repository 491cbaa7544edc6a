//! The partitioner's hot path: one route lookup and one multiply-shift per row.
//!
//! `cargo bench -p skewer-planner`. Rows come as a mapper sees them: runs of one object's
//! versions over many properties, heavily skewed toward the top properties.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use planner::{PlanParams, Route, Sample, Volume, object_hash, plan_from_sample};

const PROPERTIES: usize = 1280;
const ROWS: usize = 1 << 20;

/// A 1,280-property sample whose volumes fall off like the field report's (top 20 ≈ 90 %).
fn sample() -> Sample {
    let properties: BTreeMap<String, Volume> = (0..PROPERTIES)
        .map(|i| {
            let rows = if i < 20 {
                1_000_000
            } else {
                3_000 + (i as u64 % 97) * 10
            };
            let volume = Volume {
                rows,
                bytes: rows * 9,
                objects: rows.min(200_000),
                ..Default::default()
            };
            (format!("property_{i:04}"), volume)
        })
        .collect();
    Sample {
        sampled_records: 200_000,
        estimated_records: 200_000,
        properties,
    }
}

/// (route index, object id) per row: 32 objects' worth of versions at a time, properties
/// drawn so that the top 20 take ~90 % of rows (a fixed LCG: the same rows every run).
fn rows() -> Vec<(u32, i64)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        state >> 33
    };
    (0..ROWS)
        .map(|i| {
            let r = next();
            let property = if r % 10 < 9 {
                r % 20
            } else {
                r % PROPERTIES as u64
            };
            (property as u32, 1_000_000 + (i / 40) as i64)
        })
        .collect()
}

fn partitioner(c: &mut Criterion) {
    let plan = plan_from_sample(&sample(), &PlanParams::new(8)).expect("a valid plan");
    let routes: Vec<Route> = (0..PROPERTIES)
        .map(|i| plan.route(&format!("property_{i:04}")))
        .collect();
    let rows = rows();
    let mut group = c.benchmark_group("partitioner");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("route_rows", |b| {
        let mut counts = [0u64; 8];
        b.iter(|| {
            for &(p, object) in black_box(&rows) {
                counts[routes[p as usize].reducer(object_hash(object)) as usize & 7] += 1;
            }
            black_box(&mut counts);
        })
    });
    group.finish();
    c.bench_function("plan_from_sample_1280", |b| {
        let sample = sample();
        b.iter(|| plan_from_sample(black_box(&sample), &PlanParams::new(8)).expect("a plan"))
    });
}

criterion_group!(benches, partitioner);
criterion_main!(benches);
