//! Tonight against the history: which properties moved, and the volumes to plan from.
//!
//! Takes the window's expectation ([`History::expect`]) and tonight's input as counted before
//! the run ([`Observed`]: exact per-property counts from Parquet footers, or a sample of the
//! JSON scaled up to the whole input); gives a [`Plan`] and a [`DriftReport`].
//!
//! ```text
//!  history ──expect──► H_p ─┐                         exact counts: plan every property from S_p
//!                           ├─ k = median S_p / H_p ─► sampled: plan from S_p the drifted
//!  tonight ──count────► S_p ┘   (over the properties     (and the new ones), from k·H_p the
//!                               the counts measure)       rest; stored rows from the history
//! ```
//!
//! `k` is the input's growth as the typical property sees it: a median, so that one property
//! jumping to 60 % of the rows (which shrinks every other property's *share*) moves only
//! itself. A property has drifted when tonight's rows differ from `k · H_p` by at least
//! [`PlanParams::drift_threshold`] of one reducer's mean load *and*, for a sample, by more
//! than the sample can err ([`BAND`]): new, vanished, grown or shrunk. Properties seen only
//! tonight are always planned from tonight's counts, however small: a sudden tail of
//! thousands of new properties would otherwise all land in the spare share.
//!
//! Pure and deterministic like the rest of the planner: the same expectation, counts and
//! parameters give the same plan bytes and the same report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::PlanError;
use crate::history::{History, Volume};
use crate::plan::{Basis, Plan, PlanParams, Sample, layout, plan, plan_from_sample};

/// A sampled property's rows must move by more than this factor (either way) to count as
/// drifted: the sample's own error on a property it sees well is a few per cent.
pub const BAND: f64 = 1.25;
/// Rows a sample must have counted of a property (expected or seen) for its ratio to enter
/// the input's growth `k`.
const MEASURED_ROWS: f64 = 32.0;

/// Tonight's input as counted before the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Per-property volumes of the whole input (scaled up where sampled): a [`Sample`] with
    /// `sampled_records == estimated_records`.
    pub sample: Sample,
    /// Every property's count is exact (all of the input counted, e.g. from footers).
    pub exact: bool,
    /// Rows actually counted (the sample's, before scaling up): what the estimates rest on.
    pub counted_rows: u64,
}

/// How a property moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    New,
    Vanished,
    Grown,
    Shrunk,
}

impl std::fmt::Display for DriftKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriftKind::New => "new",
            DriftKind::Vanished => "vanished",
            DriftKind::Grown => "grown",
            DriftKind::Shrunk => "shrunk",
        })
    }
}

/// One property that moved past the threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    pub property: String,
    pub kind: DriftKind,
    /// Rows the history predicts for tonight (`k · H_p`) and rows tonight holds (counted or
    /// estimated).
    pub expected_rows: u64,
    pub observed_rows: u64,
    /// The load that moved, in reducers' mean loads: `|observed − expected| · R / rows`.
    pub load_moved: f64,
}

/// What the check of tonight's input against the history found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftReport {
    /// Tonight's counts are exact (every property planned from them).
    pub exact: bool,
    /// Records tonight holds (estimated when sampled) and rows counted to find out.
    pub records: u64,
    pub counted_rows: u64,
    /// Tonight's rows over the history's, as the typical property sees it.
    pub scale: f64,
    /// Load, in reducers' mean loads, a property must move to count as drifted.
    pub threshold: f64,
    /// The drifted properties, the largest move first.
    pub drifted: Vec<Drift>,
    /// Properties tonight holds that the history does not know, and their rows (all of them
    /// are planned from tonight's counts; the large ones are also in `drifted`).
    pub new_properties: u64,
    pub new_rows: u64,
    /// Properties the history expects that tonight's counts lack, and the rows expected.
    pub vanished_properties: u64,
    pub vanished_rows: u64,
    /// Properties whose volumes the plan took from tonight's counts.
    pub planned_from_input: u64,
}

/// Plans tonight's run from `history`'s window checked against tonight's counts.
///
/// No history: the plan comes from the counts alone ([`plan_from_sample`]), and no report.
/// Nothing counted (no readable input): from the history alone, and no report.
pub fn plan_checked(
    history: &History,
    tonight: &Observed,
    params: &PlanParams,
) -> Result<(Plan, Option<DriftReport>), PlanError> {
    params.validate()?;
    let expected = history.expect(params.window)?;
    if expected.runs.is_empty() {
        return Ok((plan_from_sample(&tonight.sample, params)?, None));
    }
    let sample = &tonight.sample;
    if sample.sampled_records == 0 || sample.sampled_records != sample.estimated_records {
        if sample.sampled_records != sample.estimated_records {
            return Err(PlanError::InvalidParams(
                "tonight's counts must be scaled to the whole input".into(),
            ));
        }
        return Ok((plan(history, params)?, None));
    }
    let h = &expected.volumes;
    let s = &sample.properties;
    // Saturating: a hand-edited history may hold any u64, and must not wrap the totals.
    let total_h = total(h.values().map(|v| v.rows));
    let total_s = total(s.values().map(|v| v.rows));
    // Share of tonight's rows actually counted: how well each estimate is measured.
    let counted_share = if tonight.exact || total_s == 0 {
        1.0
    } else {
        (tonight.counted_rows as f64 / total_s as f64).min(1.0)
    };
    let k = growth(h, s, total_h, tonight.counted_rows, counted_share);
    let reducers = f64::from(params.reducers);
    let none = Volume::default();

    let mut report = DriftReport {
        exact: tonight.exact,
        records: sample.estimated_records,
        counted_rows: tonight.counted_rows,
        scale: k,
        threshold: params.drift_threshold,
        drifted: Vec::new(),
        new_properties: 0,
        new_rows: 0,
        vanished_properties: 0,
        vanished_rows: 0,
        planned_from_input: 0,
    };
    // Output bytes per row the history saw overall, for properties it never saw (tonight's
    // bytes are input bytes, not compressed output).
    let total_h_bytes = total(h.values().map(|v| v.bytes));
    let bytes_per_row = |rows: u64, own: Option<&Volume>| -> u64 {
        let (b, r) = match own {
            Some(v) if v.rows > 0 => (v.bytes, v.rows),
            _ if total_h > 0 => (total_h_bytes, total_h),
            _ => return 0,
        };
        (u128::from(rows) * u128::from(b) / u128::from(r)) as u64
    };

    let mut volumes = BTreeMap::new();
    let names: std::collections::BTreeSet<&String> = h.keys().chain(s.keys()).collect();
    for name in names {
        let past = h.get(name);
        let now = s.get(name);
        let hp = past.unwrap_or(&none);
        let sp = now.unwrap_or(&none);
        let expect = (hp.rows as f64 * k).round() as u64;
        let observed = sp.rows;
        let kind = if past.is_none_or(|v| v.rows == 0) {
            (observed > 0).then_some(DriftKind::New)
        } else if observed == 0 {
            Some(DriftKind::Vanished)
        } else if observed > expect {
            Some(DriftKind::Grown)
        } else {
            Some(DriftKind::Shrunk)
        };
        let moved = if total_s == 0 {
            0.0
        } else {
            observed.abs_diff(expect) as f64 * reducers / total_s as f64
        };
        let ratio_past_band = match (expect, observed) {
            (0, 0) => false,
            (0, _) => true,
            // Absent from a sample: vanished only if the sample would have counted enough of
            // it to miss it by chance once in e³² times.
            (e, 0) => tonight.exact || e as f64 * counted_share >= MEASURED_ROWS,
            (e, o) => {
                let r = o as f64 / e as f64;
                !(1.0 / BAND..=BAND).contains(&r)
            }
        };
        let drifted = moved >= params.drift_threshold && (tonight.exact || ratio_past_band);
        match kind {
            Some(DriftKind::New) => {
                report.new_properties += 1;
                report.new_rows = report.new_rows.saturating_add(observed);
            }
            Some(DriftKind::Vanished) => {
                report.vanished_properties += 1;
                report.vanished_rows = report.vanished_rows.saturating_add(expect);
            }
            _ => {}
        }
        if drifted && let Some(kind) = kind {
            report.drifted.push(Drift {
                property: name.clone(),
                kind,
                expected_rows: expect,
                observed_rows: observed,
                load_moved: moved,
            });
        }
        // A property the window expects none of tonight but the counts see (k·H rounds to
        // 0) is planned from the counts too: never a point that takes all its rows.
        let from_input = tonight.exact
            || drifted
            || kind == Some(DriftKind::New)
            || (expect == 0 && observed > 0);
        let v = if from_input {
            report.planned_from_input += 1;
            if observed == 0 {
                // Gone tonight: left out of the plan, so that any rows of it the counts
                // missed go, as an unseen property's do, whole to a reducer of the spare
                // share picked by its name, not all to one point of the seen range.
                continue;
            }
            Volume {
                rows: observed,
                bytes: bytes_per_row(observed, past),
                objects: sp.objects,
                stored_rows: hp.stored_rows,
            }
        } else {
            let scale = |x: u64| (x as f64 * k).round() as u64;
            Volume {
                rows: expect,
                bytes: scale(hp.bytes),
                objects: scale(hp.objects),
                // What is stored does not grow with tonight's input.
                stored_rows: hp.stored_rows,
            }
        };
        volumes.insert(name.clone(), v);
    }
    report.drifted.sort_by(|a, b| {
        b.load_moved
            .total_cmp(&a.load_moved)
            .then_with(|| a.property.cmp(&b.property))
    });
    let basis = Basis::Checked {
        runs: expected.runs,
        window: params.window,
        estimated_records: sample.estimated_records,
        exact: tonight.exact,
        planned_from_input: report.planned_from_input,
    };
    Ok((layout(volumes, basis, params), Some(report)))
}

fn total(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}

/// Tonight's rows over the history's for the typical property: the median ratio over the
/// properties both hold and the counts measure well (at least [`MEASURED_ROWS`] counted, or
/// expected to be); the ratio of their totals when fewer than three are. Properties absent
/// tonight stay out of the median: a night that touches a few properties (webhook events,
/// an increment) must not scale every other one down to nothing. Never 0: a night with no
/// rows counted says nothing about growth, so 1.
fn growth(
    h: &BTreeMap<String, Volume>,
    s: &BTreeMap<String, Volume>,
    total_h: u64,
    counted_rows: u64,
    counted_share: f64,
) -> f64 {
    let total_s = total(s.values().map(|v| v.rows));
    if total_h == 0 || total_s == 0 {
        return 1.0;
    }
    let mut ratios: Vec<f64> = h
        .iter()
        .filter(|(_, v)| v.rows > 0)
        .filter_map(|(name, v)| {
            let seen = s.get(name).map_or(0, |v| v.rows);
            if seen == 0 {
                return None;
            }
            let expected_counted = v.rows as f64 / total_h as f64 * counted_rows as f64;
            let counted = seen as f64 * counted_share;
            (expected_counted.max(counted) >= MEASURED_ROWS).then(|| seen as f64 / v.rows as f64)
        })
        .collect();
    if ratios.len() < 3 {
        // Too few measured: the ratio of the totals over the properties both hold.
        let (both_h, both_s) = h
            .iter()
            .filter_map(|(name, v)| s.get(name).map(|now| (v.rows, now.rows)))
            .filter(|&(past, now)| past > 0 && now > 0)
            .fold((0u64, 0u64), |(a, b), (past, now)| {
                (a.saturating_add(past), b.saturating_add(now))
            });
        return if both_h == 0 {
            total_s as f64 / total_h as f64
        } else {
            both_s as f64 / both_h as f64
        };
    }
    ratios.sort_by(f64::total_cmp);
    let mid = ratios.len() / 2;
    if ratios.len() % 2 == 1 {
        ratios[mid]
    } else {
        (ratios[mid - 1] + ratios[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::RunRecord;

    fn vols(rows: &[(String, u64)]) -> BTreeMap<String, Volume> {
        rows.iter()
            .map(|(n, r)| {
                let v = Volume {
                    rows: *r,
                    bytes: r / 4,
                    objects: r / 10,
                    ..Default::default()
                };
                (n.clone(), v)
            })
            .collect()
    }

    /// 40 Zipf-like properties: `p00` the heaviest.
    fn zipf(total: u64) -> Vec<(String, u64)> {
        let weights: Vec<f64> = (1..=40).map(|i| 1.0 / f64::from(i)).collect();
        let sum: f64 = weights.iter().sum();
        (0..40)
            .map(|i| (format!("p{i:02}"), (total as f64 * weights[i] / sum) as u64))
            .collect()
    }

    fn history(rows: &[(String, u64)]) -> History {
        History::new(vec![RunRecord {
            schema_version: 1,
            run_id: "last".into(),
            started_at: "2026-11-30T02:00:00Z".into(),
            dataset: None,
            partition: None,
            properties: vols(rows),
            reducers: vec![],
        }])
        .unwrap()
    }

    /// Tonight as a sample that counted a hundredth of the rows.
    fn sampled(rows: &[(String, u64)]) -> Observed {
        let total: u64 = rows.iter().map(|r| r.1).sum();
        Observed {
            sample: Sample {
                sampled_records: 1000,
                estimated_records: 1000,
                properties: vols(rows),
            },
            exact: false,
            counted_rows: total / 100,
        }
    }

    fn check(
        past: &[(String, u64)],
        tonight: &[(String, u64)],
    ) -> (Plan, DriftReport, crate::PlanStats) {
        let params = PlanParams::new(8);
        let (plan, report) = plan_checked(&history(past), &sampled(tonight), &params).unwrap();
        let report = report.expect("a history and counts give a report");
        // The plan's predicted loads under tonight's real volumes.
        let real = plan_from_sample(&sampled(tonight).sample, &params).unwrap();
        let mut loads = vec![0u64; 8];
        for slot in real.properties() {
            let route = plan.route(&slot.name);
            let (start, len) = route.interval();
            for r in route.reducers() {
                let r0 = u64::from(r) * crate::UNIT;
                let overlap = if len == 0 {
                    1
                } else {
                    (start + len).min(r0 + crate::UNIT) - start.max(r0)
                };
                loads[r as usize] +=
                    (u128::from(slot.rows) * u128::from(overlap) / u128::from(len.max(1))) as u64;
            }
        }
        let mut stats = plan.stats();
        stats.max_over_mean = crate::max_over_mean(&loads).unwrap();
        (plan, report, stats)
    }

    fn names(report: &DriftReport) -> Vec<(&str, DriftKind)> {
        report
            .drifted
            .iter()
            .map(|d| (d.property.as_str(), d.kind))
            .collect()
    }

    #[test]
    fn a_new_heavy_property_is_planned_from_tonight() {
        let past = zipf(10_000_000);
        let mut tonight = past.clone();
        tonight.push(("hot".into(), 15_000_000)); // 60 % of tonight's rows
        let (plan, report, stats) = check(&past, &tonight);
        assert_eq!(names(&report), [("hot", DriftKind::New)]);
        assert_eq!(report.new_properties, 1);
        assert!((report.scale - 1.0).abs() < 1e-9, "{}", report.scale);
        assert!(plan.get("hot").unwrap().slots >= 4);
        assert!(stats.max_over_mean <= 1.10, "{}", stats.max_over_mean);
        assert!(matches!(plan.basis(), Basis::Checked { exact: false, .. }));
    }

    #[test]
    fn a_property_jumping_to_most_rows_moves_only_itself() {
        // Same total rows: the others' shares all fall, their rows stay put relative to
        // each other, so k follows them and only p05 drifts.
        let past = zipf(10_000_000);
        let mut tonight: Vec<(String, u64)> =
            past.iter().map(|(n, r)| (n.clone(), r * 4 / 10)).collect();
        tonight[5].1 = 6_000_000;
        let (_, report, stats) = check(&past, &tonight);
        assert_eq!(names(&report), [("p05", DriftKind::Grown)]);
        assert!((report.scale - 0.4).abs() < 0.01, "{}", report.scale);
        assert!(stats.max_over_mean <= 1.10, "{}", stats.max_over_mean);
    }

    #[test]
    fn a_vanished_heavy_property_frees_its_reducers() {
        let mut past = zipf(4_000_000);
        past.push(("hot".into(), 6_000_000));
        let tonight = zipf(4_000_000);
        let (plan, report, stats) = check(&past, &tonight);
        assert_eq!(names(&report), [("hot", DriftKind::Vanished)]);
        assert_eq!(report.vanished_properties, 1);
        // Left out of the plan: rows of it the counts missed go to the spare share.
        assert!(plan.get("hot").is_none());
        assert!(stats.max_over_mean <= 1.10, "{}", stats.max_over_mean);
    }

    /// A night that touches a third of the properties (webhook events, an increment): the
    /// absent ones do not drag the growth to 0, and every property with rows tonight is
    /// planned with rows, never as a point that would take them all.
    #[test]
    fn a_night_touching_few_properties_keeps_their_scale() {
        let past: Vec<(String, u64)> = (0..200).map(|i| (format!("p{i:03}"), 50_000)).collect();
        let tonight: Vec<(String, u64)> = past.iter().step_by(3).cloned().collect();
        let (plan, report, _) = check(&past, &tonight);
        assert!((report.scale - 1.0).abs() < 1e-9, "{}", report.scale);
        for (name, rows) in &tonight {
            assert_eq!(plan.get(name).map(|p| p.rows), Some(*rows), "{name}");
        }
        // A sample too small to have seen a light property: absent, but not called vanished.
        let mut thin = sampled(&tonight);
        thin.counted_rows = 2_000;
        let (plan, report) = plan_checked(&history(&past), &thin, &PlanParams::new(8)).unwrap();
        let report = report.unwrap();
        assert!(report.drifted.is_empty(), "{:?}", report.drifted);
        assert_eq!(plan.get("p001").map(|p| p.rows), Some(50_000));
    }

    #[test]
    fn doubling_is_caught_and_noise_is_not() {
        let past = zipf(10_000_000);
        // Every property within ±10 % (sample noise), p01 doubled.
        let mut tonight: Vec<(String, u64)> = past
            .iter()
            .enumerate()
            .map(|(i, (n, r))| (n.clone(), r * (95 + (i as u64 * 7) % 11) / 100))
            .collect();
        tonight[1].1 *= 2;
        let (_, report, stats) = check(&past, &tonight);
        assert_eq!(names(&report), [("p01", DriftKind::Grown)]);
        assert!(stats.max_over_mean <= 1.10, "{}", stats.max_over_mean);
        let (_, quiet, _) = check(&past, &past);
        assert!(quiet.drifted.is_empty());
        assert_eq!(quiet.planned_from_input, 0);
    }

    #[test]
    fn a_tail_of_new_small_properties_is_planned_not_piled_on_the_spare() {
        let past = zipf(8_000_000);
        let mut tonight = past.clone();
        for i in 0..3000 {
            tonight.push((format!("tail_{i:04}"), 1_000)); // 3 M rows in all, each tiny
        }
        let (_, report, stats) = check(&past, &tonight);
        assert_eq!(report.new_properties, 3000);
        assert_eq!(report.new_rows, 3_000_000);
        assert!(report.drifted.is_empty(), "each is far below the threshold");
        assert_eq!(report.planned_from_input, 3000);
        assert!(stats.max_over_mean <= 1.10, "{}", stats.max_over_mean);
    }

    #[test]
    fn exact_counts_plan_every_property_and_keep_stored_rows() {
        let past = zipf(1_000_000);
        let mut h = history(&past);
        let mut runs = h.runs().to_vec();
        runs[0].properties.get_mut("p03").unwrap().stored_rows = 77;
        h = History::new(runs).unwrap();
        let tonight: Vec<(String, u64)> = past.iter().map(|(n, r)| (n.clone(), r + 1)).collect();
        let mut observed = sampled(&tonight);
        observed.exact = true;
        let params = PlanParams::new(4);
        let (plan, report) = plan_checked(&h, &observed, &params).unwrap();
        let report = report.unwrap();
        assert!(report.exact && report.drifted.is_empty());
        assert_eq!(report.planned_from_input, 40);
        for (name, rows) in &tonight {
            assert_eq!(plan.get(name).unwrap().rows, *rows, "{name}");
        }
        assert_eq!(plan.get("p03").unwrap().stored_rows, 77);
        // Deterministic: the same inputs give the same bytes.
        let again = plan_checked(&h, &observed, &params).unwrap();
        assert_eq!(again.0.to_bincode(), plan.to_bincode());
        assert_eq!(again.1.unwrap(), report);
    }

    #[test]
    fn no_history_or_no_counts_fall_back() {
        let past = zipf(1_000);
        let params = PlanParams::new(2);
        let (p, r) = plan_checked(&History::default(), &sampled(&past), &params).unwrap();
        assert!(r.is_none() && matches!(p.basis(), Basis::Sample { .. }));
        let (p, r) = plan_checked(&history(&past), &Observed::default(), &params).unwrap();
        assert!(r.is_none() && matches!(p.basis(), Basis::History { .. }));
        let mut bad = sampled(&past);
        bad.sample.sampled_records = 10;
        assert!(plan_checked(&history(&past), &bad, &params).is_err());
    }

    #[test]
    fn a_hand_edited_history_of_huge_volumes_is_refused_or_does_not_wrap() {
        // Past any real run: refused by name.
        let past = vec![("a".to_string(), crate::MAX_VOLUME + 1)];
        let err = History::new(vec![RunRecord {
            schema_version: 1,
            run_id: "last".into(),
            started_at: "2026-11-30T02:00:00Z".into(),
            dataset: None,
            partition: None,
            properties: vols(&past),
            reducers: vec![],
        }])
        .unwrap_err();
        assert!(err.to_string().contains("\"a\" has rows"), "{err}");
        // Within the limit, but enough of them to pass u64 in a plain sum (a panic in debug
        // builds, a wrap in release).
        let past: Vec<(String, u64)> = (0..70_000)
            .map(|i| (format!("q{i}"), crate::MAX_VOLUME))
            .collect();
        let tonight = zipf(10_000);
        let params = PlanParams::new(4);
        let (plan, report) = plan_checked(&history(&past), &sampled(&tonight), &params).unwrap();
        let report = report.unwrap();
        assert_eq!(report.new_properties, 40);
        assert_eq!(report.vanished_properties, 70_000);
        assert!(plan.properties().len() >= 40);
        plan.stats();
    }
}
