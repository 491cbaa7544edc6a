//! Replay: old raw dumps, one date at a time, re-partitioned into a dataset.
//!
//! Takes a run configuration whose `--input` values hold `{date}`, a date range and a
//! partition template (`dt={date}`); gives one run per date, in date order, each replacing only
//! its own partition. A date whose input does not exist is reported and skipped; a date that
//! fails is reported and the others go on.
//!
//! The plan of each date comes from the dataset's history:
//!
//! - `history-at-date` (the default): the runs of dates before it (a run's date is its
//!   partition's, or for a nightly run without one, its start), as a nightly run that day
//!   would have seen them;
//! - `current`: every run except those of the dates being replayed.
//!
//! Either way the plan of a date does not depend on the replay having run before, so a replay
//! is resumable: a date already committed with the same input files and the same plan is
//! skipped (unless `force`). With no history to go on, a date is planned from a sample of
//! its input, as a first run is.
//!
//! With `--mode merge` the dates are merged in order into the same partitions (the
//! partition, if any, need not hold `{date}`): a date whose input files a committed merge
//! already took is skipped, whatever its plan, since merging an input again changes no row.

use std::sync::Arc;

use planner::{History, RunRecord};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::run::{PlanSource, RunConfig};
use crate::store::Location;
use crate::store::Stores;
use crate::store::meta::{Manifest, STATE_COMMITTED};
use crate::units::{find_date, format_date};

/// Which history plans each date.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlanFrom {
    /// The runs of dates before the one replayed.
    #[default]
    HistoryAtDate,
    /// Every run but those of the replayed dates.
    Current,
}

/// A replay: `run` is the template (its inputs hold `{date}`).
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub run: RunConfig,
    /// First and last date, inclusive, as day numbers.
    pub from: i64,
    pub to: i64,
    /// The partition of each date, with `{date}`; a merge may give one without, or none.
    pub partition: Option<String>,
    pub plan_from: PlanFrom,
    /// Redo dates already committed with the same input and plan.
    pub force: bool,
}

/// What happened to one date.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Committed {
        run_id: String,
        rows: u64,
        files: usize,
    },
    /// Already committed by `run_id` with the same input and plan.
    Skipped {
        run_id: String,
    },
    /// No input for the date.
    Missing {
        input: String,
    },
    Failed {
        reason: String,
    },
}

/// One date's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DateResult {
    pub date: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Replays every date in order; `Err` only for a configuration that no date could run with.
pub fn replay(config: &ReplayConfig) -> Result<Vec<DateResult>> {
    if config.from > config.to {
        return Err(Error::Config(format!(
            "--from {} is after --to {}",
            format_date(config.from),
            format_date(config.to)
        )));
    }
    if !config.run.inputs.iter().any(|i| i.contains("{date}")) {
        return Err(Error::Config(
            "--input must hold {date}, e.g. 'raw/contacts/dt={date}/'".into(),
        ));
    }
    let merge = config.run.mode.merges();
    match &config.partition {
        Some(p) if !merge && !p.contains("{date}") => {
            return Err(Error::Config(format!(
                "--partition {p:?} must hold {{date}}, e.g. dt={{date}} (or merge every date into \
                 one partition with --mode merge)"
            )));
        }
        None if !merge => {
            return Err(Error::Config(
                "a replay needs --partition with {date}, e.g. dt={date}, or --mode merge".into(),
            ));
        }
        // Checked once here rather than failing every date the same way.
        Some(p) => {
            crate::layout::partition_path(&p.replace("{date}", "2026-01-01"))?;
        }
        None => {}
    }
    let stores = Stores::with_endpoint(config.run.endpoint.clone());
    // The manifests are read once: a dataset with a year of nightly runs has hundreds, each
    // a request from S3, and only this replay adds to them meanwhile.
    let mut latest = if config.force {
        Committed::default()
    } else {
        committed(&config.run, &stores)?
    };
    let mut results = Vec::new();
    for day in config.from..=config.to {
        let date = format_date(day);
        let outcome = replay_date(config, &stores, &mut latest, day, &date).unwrap_or_else(|e| {
            Outcome::Failed {
                reason: e.to_string(),
            }
        });
        results.push(DateResult { date, outcome });
    }
    Ok(results)
}

fn replay_date(
    config: &ReplayConfig,
    stores: &Stores,
    latest: &mut Committed,
    day: i64,
    date: &str,
) -> Result<Outcome> {
    let inputs: Vec<String> = config
        .run
        .inputs
        .iter()
        .map(|i| i.replace("{date}", date))
        .collect();
    let files = match crate::input::discover(&inputs, stores) {
        Ok(files) => files,
        Err(Error::NoInput { input, .. }) => return Ok(Outcome::Missing { input }),
        Err(Error::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Outcome::Missing {
                input: path.display().to_string(),
            });
        }
        Err(e) => return Err(e),
    };
    let partition = config.partition.as_ref().map(|p| p.replace("{date}", date));
    let partition_dir = partition
        .as_deref()
        .map(crate::layout::partition_path)
        .transpose()?;

    let (plan, source) = plan_for(config, stores, &files, day)?;
    let done = if config.run.mode.merges() {
        latest.merges.iter().find(|m| {
            m.mode == config.run.mode && m.partition == partition_dir && same_inputs(m, &files)
        })
    } else {
        partition_dir
            .as_ref()
            .and_then(|p| latest.by_partition.get(p))
            .filter(|done| done.plan.digest == plan.digest() && same_inputs(done, &files))
    };
    if !config.force
        && let Some(done) = done
    {
        return Ok(Outcome::Skipped {
            run_id: done.run_id.clone(),
        });
    }

    let mut run = config.run.clone();
    run.inputs = inputs;
    run.partition = partition;
    run.plan = Some((Arc::new(plan), source));
    let summary = crate::run::run(&run)?;
    latest.add(summary.manifest.clone());
    Ok(Outcome::Committed {
        run_id: summary.manifest.run_id.clone(),
        rows: summary.manifest.counts.rows_written,
        files: summary.manifest.files.len(),
    })
}

/// The history the dates plan from: `--history`, or the dataset's own.
fn history_location(run: &RunConfig) -> Location {
    match &run.history {
        Some(h) => h.clone(),
        None => run.output.join("_skewer/history/"),
    }
}

/// A run's date: its partition's, else the day it started.
fn record_day(r: &RunRecord) -> Option<i64> {
    r.partition
        .as_deref()
        .and_then(find_date)
        .or_else(|| find_date(&r.started_at))
}

/// The plan for `day` and what it was made from.
fn plan_for(
    config: &ReplayConfig,
    stores: &Stores,
    files: &[crate::input::InputFile],
    day: i64,
) -> Result<(planner::Plan, PlanSource)> {
    let location = history_location(&config.run);
    let runs: Vec<RunRecord> = match crate::history::load_from(&location, stores) {
        Ok(loaded) => loaded.history.runs().to_vec(),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Vec::new()
        }
        Err(Error::EmptyHistory { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let (kept, what): (Vec<RunRecord>, String) = match config.plan_from {
        PlanFrom::HistoryAtDate => (
            runs.into_iter()
                .filter(|r| record_day(r).is_some_and(|d| d < day))
                .collect(),
            format!("before {}", format_date(day)),
        ),
        PlanFrom::Current => (
            runs.into_iter()
                .filter(|r| !record_day(r).is_some_and(|d| (config.from..=config.to).contains(&d)))
                .collect(),
            "outside the replayed dates".to_string(),
        ),
    };
    let splits = crate::input::splits(files, config.run.split_bytes)?;
    if kept.is_empty() {
        return crate::run::plan_from_sample(files, &splits, &config.run.params);
    }
    let n = kept.len();
    let history = History::new(kept).map_err(|e| Error::Bug(format!("validated history: {e}")))?;
    // The old dump's own counts correct the history where it drifted from them.
    let (plan, _) = crate::run::plan_checked(&history, files, &splits, &config.run.params)?;
    Ok((
        plan,
        PlanSource::Given {
            what: format!("{n} history runs {what} in {}", location),
        },
    ))
}

/// What the dataset has committed, for skipping dates done before.
#[derive(Debug, Default)]
struct Committed {
    /// The latest committed run of each partition.
    by_partition: std::collections::HashMap<String, Manifest>,
    /// Every committed merge.
    merges: Vec<Manifest>,
}

impl Committed {
    /// Adds a committed run (runs in the order they committed).
    fn add(&mut self, m: Manifest) {
        if m.mode.merges() {
            self.merges.push(m.clone());
        }
        if let Some(p) = m.partition.clone() {
            self.by_partition.insert(p, m);
        }
    }
}

fn committed(run: &RunConfig, stores: &Stores) -> Result<Committed> {
    let dataset = crate::store::open(&run.output, stores, &Default::default())?;
    let mut out = Committed::default();
    if !dataset.exists()? {
        return Ok(out);
    }
    // Oldest first: a later run of a partition replaces an earlier one.
    for m in dataset.manifests()? {
        if m.state == STATE_COMMITTED {
            out.add(m);
        }
    }
    Ok(out)
}

fn same_inputs(done: &Manifest, files: &[crate::input::InputFile]) -> bool {
    let mut had: Vec<(&str, u64)> = done
        .inputs
        .iter()
        .map(|i| (i.path.as_str(), i.bytes))
        .collect();
    let mut now: Vec<(&str, u64)> = files.iter().map(|f| (f.name.as_ref(), f.size)).collect();
    had.sort_unstable();
    now.sort_unstable();
    had == now
}

/// The report for people: one line per date, then the tally.
pub fn table(results: &[DateResult]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut tally = [0usize; 4];
    for r in results {
        let (i, line) = match &r.outcome {
            Outcome::Committed {
                run_id,
                rows,
                files,
            } => (
                0,
                format!(
                    "committed  run {run_id}: {} rows in {files} files",
                    crate::units::format_count(*rows)
                ),
            ),
            Outcome::Skipped { run_id } => (
                1,
                format!(
                    "skipped    already committed by run {run_id} with the same input and plan"
                ),
            ),
            Outcome::Missing { input } => (2, format!("missing    no input at {input}")),
            Outcome::Failed { reason } => (3, format!("FAILED     {reason}")),
        };
        tally[i] += 1;
        let _ = writeln!(out, "{}  {line}", r.date);
    }
    let _ = writeln!(
        out,
        "{} dates: {} committed, {} skipped, {} missing, {} failed",
        results.len(),
        tally[0],
        tally[1],
        tally[2],
        tally[3]
    );
    out
}
