//! The partitioner against the plan's own prediction: route a million synthetic rows drawn
//! from a Zipf distribution through a plan made from yesterday's sample of the same
//! distribution, and compare the realised reducer loads with the predicted ones.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{Rng, Shape, names, shares};
use planner::{
    HISTORY_SCHEMA_VERSION, History, PlanParams, Route, RunRecord, Split, Volume, object_hash,
    plan, reducer,
};

const ROWS: usize = 1_000_000;
const OBJECTS: usize = 200_000;
const PROPERTIES: usize = 1280;

/// One night's rows as (property index, object id): properties Zipf-distributed, objects
/// uniform over a fixed population of ids above 2³¹.
fn night(rng: &mut Rng, cumulative: &[f64], objects: &[i64]) -> Vec<(u32, i64)> {
    (0..ROWS)
        .map(|_| {
            let u = rng.f64();
            let p = cumulative
                .partition_point(|&c| c < u)
                .min(cumulative.len() - 1);
            let o = objects[rng.range(0, objects.len() as u64) as usize];
            (p as u32, o)
        })
        .collect()
}

fn run_record(names: &[String], rows: &[(u32, i64)]) -> RunRecord {
    let mut properties: BTreeMap<String, Volume> = BTreeMap::new();
    for &(p, _) in rows {
        let v = properties.entry(names[p as usize].clone()).or_default();
        v.rows += 1;
        v.bytes += 24;
    }
    RunRecord {
        schema_version: HISTORY_SCHEMA_VERSION,
        run_id: "yesterday".into(),
        started_at: "2026-11-20T02:00:00Z".into(),
        dataset: None,
        partition: None,
        properties,
        reducers: vec![],
    }
}

#[test]
fn realised_load_is_within_5_percent_of_predicted() {
    for (s, r, split) in [
        (1.1, 16, Split::Weighted),
        (1.1, 64, Split::Weighted),
        (1.5, 7, Split::Weighted),
        (1.1, 16, Split::Uniform),
    ] {
        let mut rng = Rng::new(20261121 + r as u64);
        let names = names(&mut rng, PROPERTIES);
        let cumulative: Vec<f64> = shares(Shape::Zipf(s), PROPERTIES)
            .iter()
            .scan(0.0, |acc, x| {
                *acc += x;
                Some(*acc)
            })
            .collect();
        let objects: Vec<i64> = (0..OBJECTS)
            .map(|_| rng.range(1 << 31, 1 << 40) as i64)
            .collect();

        let yesterday = night(&mut rng, &cumulative, &objects);
        let history = History::new(vec![run_record(&names, &yesterday)]).unwrap();
        let mut params = PlanParams::new(r);
        params.split = split;
        let plan = plan(&history, &params).unwrap();
        let predicted = plan.stats().max_over_mean;

        // Route tonight's rows as the pipeline does: one route per interned property, one hash
        // per row, and every (property, object) pair always on the same reducer.
        let routes: Vec<Route> = names.iter().map(|n| plan.route(n)).collect();
        let mut loads = vec![0u64; r as usize];
        let mut seen: HashMap<(u32, i64), u32> = HashMap::new();
        for (i, &(p, o)) in night(&mut rng, &cumulative, &objects).iter().enumerate() {
            let to = routes[p as usize].reducer(object_hash(o));
            loads[to as usize] += 1;
            assert_eq!(*seen.entry((p, o)).or_insert(to), to);
            if i % 1000 == 0 {
                assert_eq!(reducer(&plan, &names[p as usize], o), to);
            }
        }
        let mean = ROWS as f64 / f64::from(r);
        let realised = *loads.iter().max().unwrap() as f64 / mean;
        eprintln!("Zipf s={s} R={r} {split:?}: predicted {predicted:.4}, realised {realised:.4}");
        assert!(
            (realised / predicted - 1.0).abs() <= 0.05,
            "Zipf s={s} R={r} {split:?}: predicted max/mean {predicted:.4}, realised {realised:.4}, loads {loads:?}"
        );
    }
}
