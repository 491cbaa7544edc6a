//! skewer: a skew-aware, MapReduce-style preprocessor for CRM property histories.
//!
//! It explodes a raw dump of CRM objects, in which every property carries its whole version
//! history, into one row per version, and writes a Parquet dataset partitioned by property,
//! sorted by (object_id, timestamp), in few large files. A planner reads past runs' volumes and
//! gives each property fractional reducer slots, so heavy properties spread over several
//! reducers, rare ones share one, and every reducer gets about the mean load.
//!
//! ```text
//!  inputs ──► splits ──► mapper threads ──► partitioner ──► bounded channels ──► reducer threads ──► store
//!  (local/S3, (file, row   parse + explode   plan: slots,    backpressure,       buffer, spill,      staging ──►
//!   NDJSON/    group or    into columnar     offset per      memory bound        sort, dedupe,       atomic swap
//!   Parquet)   byte range) row batches       property                            write Parquet       + history
//!                                                ▲                                                       │
//!                                                └──────────── planner ◄── history (_skewer/history) ◄───┘
//! ```
//!
//! The stages, one module each:
//!
//! | module | takes | gives |
//! |---|---|---|
//! | [`input`] | `--input` paths, globs, directories, `s3://` prefixes | files, sniffed by content, and splits |
//! | [`source`] | a local file or an S3 object | positioned reads (pread, ranged GETs) |
//! | [`explode`] | a split's JSON or nested Parquet | version rows, columnar ([`batch`]) |
//! | [`route`] | rows | per-reducer batches, by the plan, to any output ([`route::Batches`]) |
//! | [`map`] | splits | the map stage on its own: read, explode, route ([`map::Mapper`]) |
//! | [`reduce`] | a reducer's batches | per property, sorted and de-duplicated rows (spilling past its budget), written to a [`reduce::Staging`] |
//! | [`sink`] | sorted rows | Parquet files in Hive partition folders |
//! | [`store`] | staged files; a dataset, local or `s3://` | the lock, an atomic publish, its manifest, history record and rejects; reading a dataset back |
//! | `s3` (feature `s3`) | an `s3://` URL | the S3 client: listing, ranged reads, uploads, conditional writes |
//! | [`layout`] | names, partitions | the dataset's folders and `_skewer/` files |
//! | [`rejects`] | unreadable records | `_skewer/rejects/<run>.ndjson` |
//! | [`history`], [`sample`] | past runs, or the input itself | the volumes the planner (`planner`) plans from |
//! | [`cluster`] | a host file, this process's index, the job's description | the rendezvous: every process checked to run the same job (multi-process runs, being built) |
//! | [`inspect`] | a dataset, local or in S3 | its files per property and health checks |
//! | [`replay`] | dumps per date (`{date}` in `--input`), a date range | one run per date, resumable |
//! | [`report`] | a plan, a run, a history | tables, JSON, pictures |
//!
//! [`run`] wires them together as phases (open, plan, map and reduce on threads, check the
//! counts, publish, report); [`app`] is each subcommand as a call with a plain config;
//! [`par`] spreads waiting work over threads.
//! `ARCHITECTURE.md` maps the code (what each module owns and may import) and its
//! invariants; `README.md` is the user's guide; the history format is `history/README.md`.

pub mod app;
pub mod batch;
pub mod checksum;
pub mod cluster;
pub mod dataset;
pub mod error;
pub mod explode;
pub mod generate;
pub mod history;
pub mod input;
pub mod inspect;
pub mod jsonfmt;
pub mod layout;
pub mod location;
pub mod map;
pub mod merge;
pub mod pages;
pub mod par;
pub mod progress;
pub mod reduce;
pub mod rejects;
pub mod replay;
pub mod report;
pub mod route;
pub mod run;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sample;
pub mod sink;
pub mod source;
pub mod store;
pub mod units;

pub use error::{Error, Result};
