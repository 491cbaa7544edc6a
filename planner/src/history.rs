//! Volume history: what past runs actually wrote, per property and per reducer.
//!
//! Takes run records (as parsed by the caller from `_skewer/history/<run>.json`, format in
//! `history/README.md`), gives a [`History`] ordered by start time and, through a [`Window`],
//! the expected volume of every property for the next run.
//!
//! Invariants: a `History` holds only validated records of [`HISTORY_SCHEMA_VERSION`], with
//! unique run ids, sorted by (start time, run id), so the same records in any order give the
//! same expectation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PlanError;
use crate::time::parse_iso8601_ms;

/// The history record format this planner reads and writes.
pub const HISTORY_SCHEMA_VERSION: u32 = 1;

/// How much of something one property (or reducer) had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Version rows: of the run's input (in a merge), or as written (after exact duplicates
    /// are dropped).
    pub rows: u64,
    /// Bytes of the property's files as written (compressed Parquet).
    pub bytes: u64,
    /// Distinct objects with at least one version, as written.
    pub objects: u64,
    /// Rows a merge read back from the property's stored partition (0 for other runs): work
    /// a reducer does besides the input's rows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stored_rows: u64,
}

impl Volume {
    /// Rows a reducer handles for the property: the input's and those read back.
    pub fn work(&self) -> u64 {
        self.rows.saturating_add(self.stored_rows)
    }
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// What one reducer did in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducerVolume {
    pub rows: u64,
    /// Rows it read back from stored partitions (a merge).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stored_rows: u64,
    pub bytes: u64,
    /// Wall time from the reducer's first row to its last file closed.
    pub wall_ms: u64,
    /// The process it ran on, in a multi-process run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<u32>,
}

/// Largest volume a run record may claim for one property (2⁴⁸, some 2.8 × 10¹⁴ rows or
/// bytes): far past any real night, and small enough that sums over many properties and
/// runs stay exact in the planner's arithmetic.
pub const MAX_VOLUME: u64 = 1 << 48;

/// One run's actual volumes: the unit of history (one JSON file per run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema_version: u32,
    pub run_id: String,
    /// ISO-8601 start time (`2026-11-20T02:00:00Z`); runs are ordered by it.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The Hive partition prefix the run wrote under (`dt=2026-11-20`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Per property, keyed by name (a sorted map, so files diff cleanly).
    pub properties: BTreeMap<String, Volume>,
    /// Per reducer, indexed by reducer number.
    #[serde(default)]
    pub reducers: Vec<ReducerVolume>,
}

impl RunRecord {
    /// Checks what serde cannot: the schema version, the start time, the names. Returns the
    /// start time in epoch ms.
    pub fn check(&self) -> Result<i64, PlanError> {
        let bad = |reason: String| PlanError::BadRun {
            run_id: self.run_id.clone(),
            reason,
        };
        if self.schema_version != HISTORY_SCHEMA_VERSION {
            return Err(bad(format!(
                "schema_version is {}, this skewer reads {HISTORY_SCHEMA_VERSION}",
                self.schema_version
            )));
        }
        if self.run_id.trim().is_empty() {
            return Err(bad("run_id is empty".into()));
        }
        if self.properties.contains_key("") {
            return Err(bad("a property has an empty name".into()));
        }
        for (name, v) in &self.properties {
            let fields = [
                ("rows", v.rows),
                ("bytes", v.bytes),
                ("objects", v.objects),
                ("stored_rows", v.stored_rows),
            ];
            if let Some((field, n)) = fields.into_iter().find(|&(_, n)| n > MAX_VOLUME) {
                return Err(bad(format!(
                    "property {name:?} has {field} {n}, beyond any real run (at most {MAX_VOLUME})"
                )));
            }
        }
        parse_iso8601_ms(self.started_at.as_bytes()).ok_or_else(|| {
            bad(format!(
                "started_at {:?} is not an ISO-8601 time such as 2026-11-20T02:00:00Z",
                self.started_at
            ))
        })
    }
}

/// Which past runs predict the next one, and how much each counts.
///
/// The newest run has weight 1, the one before `decay`, then `decay²`, … over the last `runs`
/// runs: `runs = 1` is Plumbee's "same as last night"; `decay = 1` a plain moving average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub runs: u32,
    pub decay: f64,
}

impl Window {
    /// Only the newest run.
    pub const LAST_RUN: Window = Window {
        runs: 1,
        decay: 1.0,
    };

    /// A plain (unweighted) moving average of the last `runs` runs.
    pub fn moving_average(runs: u32) -> Self {
        Window { runs, decay: 1.0 }
    }

    pub(crate) fn validate(&self) -> Result<(), PlanError> {
        if self.runs == 0 {
            return Err(PlanError::InvalidParams(
                "the window must hold at least 1 run".into(),
            ));
        }
        if !(self.decay > 0.0 && self.decay <= 1.0) {
            return Err(PlanError::InvalidParams(format!(
                "the window's decay must be in (0, 1], got {}",
                self.decay
            )));
        }
        Ok(())
    }
}

impl Default for Window {
    /// A week of nightly runs, each night counting 0.8 of the next: stable against one odd
    /// night, quick to follow a trend.
    fn default() -> Self {
        Window {
            runs: 7,
            decay: 0.8,
        }
    }
}

/// Validated runs in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    runs: Vec<RunRecord>,
}

/// What a window of history predicts.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// Run ids used, oldest first.
    pub runs: Vec<String>,
    /// Expected volume per property: the window's weighted mean, rounded to whole units.
    pub volumes: BTreeMap<String, Volume>,
}

impl History {
    /// Validates every record ([`RunRecord::check`]) and orders them by (start time, run id).
    pub fn new(runs: Vec<RunRecord>) -> Result<Self, PlanError> {
        let mut keyed = Vec::with_capacity(runs.len());
        for run in runs {
            keyed.push((run.check()?, run));
        }
        keyed.sort_by(|(ta, a), (tb, b)| ta.cmp(tb).then_with(|| a.run_id.cmp(&b.run_id)));
        let mut ids: Vec<&str> = keyed.iter().map(|(_, r)| r.run_id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PlanError::DuplicateRun {
                run_id: w[0].to_string(),
            });
        }
        Ok(History {
            runs: keyed.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// The runs, oldest first.
    pub fn runs(&self) -> &[RunRecord] {
        &self.runs
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The window's weighted mean volume per property. A property missing from a run counts
    /// as 0 rows in that run: it really had none, so a vanished property fades out.
    pub fn expect(&self, window: Window) -> Result<Expectation, PlanError> {
        window.validate()?;
        let take = (window.runs as usize).min(self.runs.len());
        let used = &self.runs[self.runs.len() - take..];

        let mut weight = 1.0f64;
        let mut total_weight = 0.0f64;
        let mut sums: BTreeMap<&str, [f64; 4]> = BTreeMap::new();
        for run in used.iter().rev() {
            for (name, v) in &run.properties {
                let s = sums.entry(name.as_str()).or_default();
                s[0] += weight * v.rows as f64;
                s[1] += weight * v.bytes as f64;
                s[2] += weight * v.objects as f64;
                s[3] += weight * v.stored_rows as f64;
            }
            total_weight += weight;
            weight *= window.decay;
        }
        let mean = |x: f64| (x / total_weight).round() as u64;
        let volumes = sums
            .into_iter()
            .map(|(name, [rows, bytes, objects, stored_rows])| {
                let v = Volume {
                    rows: mean(rows),
                    bytes: mean(bytes),
                    objects: mean(objects),
                    stored_rows: mean(stored_rows),
                };
                (name.to_string(), v)
            })
            .collect();
        Ok(Expectation {
            runs: used.iter().map(|r| r.run_id.clone()).collect(),
            volumes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, at: &str, props: &[(&str, u64)]) -> RunRecord {
        RunRecord {
            schema_version: HISTORY_SCHEMA_VERSION,
            run_id: id.into(),
            started_at: at.into(),
            dataset: None,
            partition: None,
            properties: props
                .iter()
                .map(|&(n, rows)| {
                    let v = Volume {
                        rows,
                        bytes: rows * 10,
                        objects: rows / 2,
                        ..Default::default()
                    };
                    (n.to_string(), v)
                })
                .collect(),
            reducers: vec![],
        }
    }

    #[test]
    fn orders_by_time_not_by_input_order_or_offset() {
        let a = run("a", "2026-11-20T02:00:00Z", &[]);
        let b = run("b", "2026-11-20T01:00:00-02:00", &[]); // 03:00Z: newer
        let c = run("c", "2026-11-19T02:00:00.250Z", &[]);
        let h = History::new(vec![a, b, c]).unwrap();
        let ids: Vec<_> = h.runs().iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }

    #[test]
    fn weighted_window_and_vanished_properties() {
        let h = History::new(vec![
            run("1", "2026-11-18T00:00:00Z", &[("old", 1000), ("x", 100)]),
            run("2", "2026-11-19T00:00:00Z", &[("x", 200)]),
            run("3", "2026-11-20T00:00:00Z", &[("x", 400), ("new", 90)]),
        ])
        .unwrap();
        let last = h.expect(Window::LAST_RUN).unwrap();
        assert_eq!(last.runs, ["3"]);
        assert_eq!(last.volumes["x"].rows, 400);
        assert!(!last.volumes.contains_key("old"));

        let avg = h.expect(Window::moving_average(3)).unwrap();
        assert_eq!(avg.runs, ["1", "2", "3"]);
        assert_eq!(avg.volumes["x"].rows, 233); // 700 / 3
        assert_eq!(avg.volumes["old"].rows, 333);
        assert_eq!(avg.volumes["new"].rows, 30);
        assert_eq!(avg.volumes["x"].bytes, 2333);

        // Weights 1, 0.5, 0.25 newest first: (400 + 100 + 25) / 1.75 = 300.
        let decayed = h
            .expect(Window {
                runs: 10,
                decay: 0.5,
            })
            .unwrap();
        assert_eq!(decayed.volumes["x"].rows, 300);
    }

    #[test]
    fn rejects_bad_records() {
        let mut r = run("r", "2026-11-20T00:00:00Z", &[]);
        r.schema_version = 2;
        assert!(matches!(
            History::new(vec![r]),
            Err(PlanError::BadRun { .. })
        ));
        let r = run("r", "yesterday", &[]);
        let err = History::new(vec![r]).unwrap_err().to_string();
        assert!(err.contains("\"yesterday\""), "{err}");
        let r = run("r", "2026-11-20T00:00:00Z", &[("", 1)]);
        assert!(History::new(vec![r]).is_err());
        let dup = vec![
            run("same", "2026-11-20T00:00:00Z", &[]),
            run("same", "2026-11-21T00:00:00Z", &[]),
        ];
        assert!(matches!(
            History::new(dup),
            Err(PlanError::DuplicateRun { .. })
        ));
    }

    #[test]
    fn window_parameters_are_checked() {
        let h = History::default();
        assert!(h.expect(Window::moving_average(0)).is_err());
        for decay in [0.0, -1.0, 1.5, f64::NAN] {
            assert!(h.expect(Window { runs: 3, decay }).is_err(), "{decay}");
        }
        assert!(h.expect(Window::default()).unwrap().volumes.is_empty());
    }
}
