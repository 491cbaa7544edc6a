//! skewer's planner: last runs' per-property volumes → reducer slots and offsets, and the
//! partitioner that follows them.
//!
//! ```text
//!  History ──window──► expected volume ──layout──► Plan ──route(property)──► Route
//!  (runs)   (last N,    per property     (shares      │                        │
//!            decay)                       end to end)  └─► PlanStats           └─ reducer(object_hash)
//!                                                          (loads, files)
//!  Sample ─────scale─────┘  (cold start: no history yet)
//!  Observed ──drift check─┘  (tonight's counts against the window: plan_checked)
//! ```
//!
//! Pure: no I/O, no clock, no randomness, no Arrow. Same inputs, same plan bytes
//! ([`Plan::to_bincode`]) and the same [`Plan::digest`] on every machine. The caller reads and
//! writes history files and prints plans; see `history/README.md` for the JSON format.
//!
//! # Example
//!
//! ```
//! use planner::{History, PlanParams, RunRecord, Volume, object_hash, plan};
//!
//! let run: RunRecord = serde_json::from_str(r#"{
//!     "schema_version": 1, "run_id": "r1", "started_at": "2026-11-20T02:00:00Z",
//!     "properties": {
//!         "email":          {"rows": 9000, "bytes": 90000, "objects": 3000},
//!         "lifecyclestage": {"rows": 1000, "bytes": 4000,  "objects": 1000}
//!     }
//! }"#).unwrap();
//! let history = History::new(vec![run]).unwrap();
//! let plan = plan(&history, &PlanParams::new(4)).unwrap();
//!
//! let email = plan.route("email");          // once per property
//! let r = email.reducer(object_hash(901));   // once per row
//! assert!(email.reducers().contains(&r));
//! assert!(plan.stats().max_over_mean < 1.06);
//! ```

mod drift;
mod error;
mod history;
mod partition;
mod plan;
mod stats;
mod time;

pub use drift::{BAND, Drift, DriftKind, DriftReport, Observed, plan_checked};
pub use error::PlanError;
pub use history::{
    Expectation, HISTORY_SCHEMA_VERSION, History, MAX_VOLUME, ReducerVolume, RunRecord, Volume,
    Window,
};
pub use partition::{Route, UNIT, fmix64, name_hash, object_hash};
pub use plan::{
    Basis, DEFAULT_DRIFT_THRESHOLD, DEFAULT_MIN_SPLIT_ROWS, DEFAULT_SPARE,
    DEFAULT_TARGET_FILE_BYTES, MAX_REDUCERS, MAX_SPARE, PLAN_FORMAT_VERSION, Plan, PlanParams,
    PropertySlot, Sample, Split, WHOLE_BELOW, plan, plan_from_sample, reducer,
};
pub use stats::{PlanStats, ReducerLoad, max_over_mean};
pub use time::{days_from_civil, parse_iso8601_ms};
