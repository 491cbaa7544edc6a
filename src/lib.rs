//! skewer: a skew-aware, MapReduce-style preprocessor for CRM property histories.
//!
//! It explodes a raw dump of CRM objects, in which every property carries its whole version
//! history, into one row per version, and writes a Parquet dataset partitioned by property,
//! sorted by (object_id, timestamp), in few large files. A planner reads past runs' volumes and
//! gives each property fractional reducer slots, so heavy properties spread over several
//! reducers, rare ones share one, and every reducer gets about the mean load.
//!
//! ```text
//!  inputs ──► splits ──► mapper threads ──► partitioner ──► bounded channels ──► reducer threads ──► committer
//!  (local/S3, (file, row   parse + explode   plan: slots,    backpressure,       buffer, spill,      staging ──►
//!   NDJSON/    group or    into columnar     offset per      memory bound        sort, dedupe,       atomic swap
//!   Parquet)   byte range) row batches       property                            write Parquet       + history
//!                                                ▲                                                       │
//!                                                └──────────── planner ◄── history (_skewer/history) ◄───┘
//! ```
//!
//! Built so far: the planner and partitioner (the `skewer-planner` crate, imported as
//! `planner`), reading history ([`history`]), and showing a plan ([`app::plan`], [`report`]).
//! The design is `../shared/DESIGN.md`; the history format is `history/README.md`.

pub mod app;
pub mod batch;
pub mod checksum;
pub mod commit;
pub mod dataset;
pub mod error;
pub mod explode;
pub mod generate;
pub mod history;
pub mod input;
pub mod jsonfmt;
pub mod reduce;
pub mod report;
pub mod route;
pub mod run;
pub mod sample;
pub mod sink;
pub mod units;

pub use error::{Error, Result};
