//! Run: the whole job on one machine, wiring the stages together.
//!
//! ```text
//!  discover inputs ─► take the dataset lock ─► recover an interrupted earlier publish
//!        │
//!        ▼ split ─► plan (history window, or a sample of the input)
//!  M mapper threads: read split ─► explode ─► Router ══ R bounded channels ══► R reducer threads
//!                                                                              buffer per property,
//!                                                                              spill past budget
//!                                             (when every mapper is done) sort, merge, dedupe,
//!                                                                              write to staging
//!  counts add up? bad records under the limit? ─► stage history ─► publish (commit.rs)
//! ```
//!
//! Memory is divided by [`MemoryPlan`]: fixed costs per thread, the batches in flight, and
//! what remains split evenly between the reducers' buffers.
//!
//! Invariants checked before anything is published: every routed row reached a reducer, and
//! `rows_exploded = rows_written + duplicates_dropped`; a mismatch is a bug, and the run fails
//! without publishing.

mod dataflow;
pub mod threads;

mod distributed;

pub use distributed::{CONNECT_TIMEOUT, Cluster, HANG_TIMEOUT, Joined, Ran};
pub use threads::Exchange;
use threads::ReduceOn;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use planner::{Plan, PlanParams, RunRecord, Volume};

use crate::error::{Error, Result};
use crate::input::{self, InputFile, Split};
use crate::layout::partition_path;
use crate::map::Mapped;
use crate::reduce::{Existing, Reduced, Staging};
use crate::rejects::Reject;
use crate::route::{CHANNEL_BATCHES, MapCounts, PropertyTable};
use crate::sink::SinkOptions;
use crate::store::meta::{
    Counts, FileEntry, InputEntry, MANIFEST_SCHEMA_VERSION, Manifest, Mode, PlanEntry, Recovery,
    ReducerEntry, Timings,
};
use crate::store::{Dataset, DatasetLock, Prepared};
use crate::store::{Location, Stores};
use crate::units::{format_utc, now_ms};

/// The default multipart part size for uploads to S3.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub inputs: Vec<String>,
    pub output: Location,
    /// History to plan from; `None`: the dataset's own `_skewer/history`.
    pub history: Option<Location>,
    /// An S3-compatible endpoint for `s3://` inputs and outputs.
    pub endpoint: Option<String>,
    /// Local scratch space for a dataset in S3 (staged files, spills); `None`: the system's
    /// temporary folder.
    pub work_dir: Option<PathBuf>,
    /// Multipart part size for uploads to S3 (at least 5 MiB).
    pub part_size: u64,
    /// When to draw progress bars on stderr.
    pub progress: crate::progress::Show,
    /// A plan made by the caller (`replay`), used instead of planning from a history or a
    /// sample; `source` says what it was made from.
    pub plan: Option<(Arc<Plan>, PlanSource)>,
    pub params: PlanParams,
    pub mappers: usize,
    /// Hive partition prefix, `key=value[/key=value…]`.
    pub partition: Option<String>,
    pub mode: Mode,
    /// Objects whose rows a merge removes from every partition: a file of ids, one a line.
    pub delete_objects: Option<Location>,
    pub sink: SinkOptions,
    pub split_bytes: u64,
    /// Unreadable records (and versions) allowed before the run aborts unpublished.
    pub max_bad_records: BadRecordLimit,
    /// Bytes the run may hold in memory; reducers spill to disk to stay within it.
    pub memory_limit: u64,
    /// How batches go from mappers to reducers.
    pub exchange: Exchange,
    /// This process's part in a run on several (`--hosts`); `None`: the run is this
    /// process's alone.
    pub cluster: Option<Cluster>,
}

impl RunConfig {
    /// `skewer run`'s defaults for `inputs` → `output`, with `reducers` reducers and two
    /// mapper threads.
    pub fn new(
        inputs: &[&std::path::Path],
        output: impl AsRef<std::path::Path>,
        reducers: u32,
    ) -> Self {
        RunConfig {
            inputs: inputs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            output: Location::Local(output.as_ref().to_path_buf()),
            history: None,
            endpoint: None,
            work_dir: None,
            part_size: DEFAULT_PART_SIZE,
            progress: crate::progress::Show::Never,
            plan: None,
            params: PlanParams::new(reducers),
            mappers: 2,
            partition: None,
            mode: Mode::Overwrite,
            delete_objects: None,
            sink: SinkOptions::default(),
            split_bytes: input::SPLIT_BYTES,
            max_bad_records: BadRecordLimit::default(),
            memory_limit: default_memory_limit(),
            exchange: Exchange::Channels,
            cluster: None,
        }
    }
}

/// What every process of a multi-process run must share, by field, for the rendezvous
/// ([`crate::cluster::rendezvous`]) to compare: skewer's version, the inputs found (their
/// names and sizes), the output, and every option that shapes the plan, the routing or the
/// bytes written. What may differ between machines (memory, mapper threads, progress) is
/// left out.
pub fn cluster_job(
    config: &RunConfig,
    files: &[InputFile],
) -> std::collections::BTreeMap<String, String> {
    let mut inputs = crate::checksum::Fnv::default();
    for f in files {
        inputs.bytes(f.name.as_bytes());
        inputs.bytes(&f.size.to_le_bytes());
    }
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    let show = |o: &Option<Location>| o.as_ref().map_or("none".to_string(), |l| l.to_string());
    [
        ("skewer version", env!("CARGO_PKG_VERSION").to_string()),
        (
            "inputs",
            format!(
                "{} files, {bytes} bytes, names and sizes digest {:016x}",
                files.len(),
                inputs.finish()
            ),
        ),
        ("output", config.output.to_string()),
        (
            // Every process must reach the same store (its credentials may differ).
            "S3 endpoint",
            config
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .unwrap_or_else(|| "the default".into()),
        ),
        ("history", show(&config.history)),
        ("delete objects", show(&config.delete_objects)),
        ("mode", format!("{:?}", config.mode)),
        ("partition", format!("{:?}", config.partition)),
        ("planning", format!("{:?}", config.params)),
        ("writing", format!("{:?}", config.sink)),
        ("split bytes", config.split_bytes.to_string()),
        ("bad record limit", config.max_bad_records.to_string()),
        ("exchange", format!("{:?}", config.exchange)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The default `--memory-limit`: 1 GiB, or a quarter of this machine's memory if that is less.
///
/// A fixed figure rather than a share of RAM: a nightly job shares its machine, and the same
/// run should behave the same on a large machine as on a small one. 1 GiB holds the default
/// benchmark's Parquet rows with a modest spill, and spilling costs little (blocks of columns
/// merged in runs); a larger limit trades memory for a few per cent of time.
pub fn default_memory_limit() -> u64 {
    const DEFAULT: u64 = 1 << 30;
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    total_kib.map_or(DEFAULT, |k| (k * 1024 / 4).min(DEFAULT))
}

/// How a run divides its memory limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Rows a reducer may buffer (by heap bytes) before it spills.
    pub reducer_budget: usize,
    /// Rows per batch a mapper sends a reducer.
    pub batch_rows: usize,
}

impl MemoryPlan {
    /// The process itself: code, allocator, thread stacks, small tables.
    const BASE: u64 = 48 << 20;
    /// A mapper's input buffers (an NDJSON chunk, a small JSON text, a Parquet column chunk).
    const PER_MAPPER: u64 = 40 << 20;
    /// A reducer's output side: one row group while merging, gather chunks, writer pages,
    /// and a merge's stored-file batches (`reduce::STORED_JOB_BYTES`).
    const PER_REDUCER: u64 = (40 << 20) + crate::reduce::STORED_JOB_BYTES as u64;
    /// Share of what is left kept back from the reducers' budgets for the free gaps the
    /// allocator leaves between their many small per-property buffers, which the budgets do
    /// not see: 5-16 % of the budgets, measured with `mallinfo2` during the 3x benchmark.
    const ALLOCATOR_GAPS_PERCENT: u64 = 10;
    /// Buffered rows below which spilling would be constant.
    const MIN_REDUCER_BUDGET: u64 = 4 << 20;
    /// Heap bytes a routed row takes in a batch (columns, offsets, flags; values are extra).
    const ROW_BYTES: u64 = 64;

    fn batch_rows(limit: u64, in_flight: u64) -> u64 {
        (limit / 8 / (in_flight * Self::ROW_BYTES)).clamp(256, 8 * 1024)
    }

    fn fixed(limit: u64, m: u64, r: u64) -> u64 {
        // Batches in flight: one open per (mapper, reducer) and a channel's worth per reducer.
        let in_flight = (m + CHANNEL_BATCHES as u64) * r;
        // A batch holds its rows' columns and up to as many bytes again of strings
        // (`route::batch_bytes`).
        let batch = 2 * Self::batch_rows(limit, in_flight) * Self::ROW_BYTES;
        Self::BASE + m * Self::PER_MAPPER + r * Self::PER_REDUCER + in_flight * batch
    }

    /// The smallest limit a run with these threads accepts (each reducer then buffers the
    /// minimum before it spills).
    pub fn minimum(mappers: usize, reducers: usize) -> u64 {
        let (m, r) = (mappers as u64, reducers as u64);
        // The batch size grows with the limit, so find the fixed point from below.
        let mut limit = Self::fixed(0, m, r) + r * Self::MIN_REDUCER_BUDGET;
        while limit < Self::fixed(limit, m, r) + r * Self::MIN_REDUCER_BUDGET {
            limit = Self::fixed(limit, m, r) + r * Self::MIN_REDUCER_BUDGET;
        }
        limit
    }

    pub fn new(limit: u64, mappers: usize, reducers: usize) -> Result<Self> {
        let (m, r) = (mappers as u64, reducers as u64);
        let in_flight = (m + CHANNEL_BATCHES as u64) * r;
        let batch_rows = Self::batch_rows(limit, in_flight);
        let fixed = Self::fixed(limit, m, r);
        if limit < fixed + r * Self::MIN_REDUCER_BUDGET {
            // The least limit that passes: what is needed grows with the limit (batches).
            let needed = Self::minimum(mappers, reducers);
            return Err(Error::Config(format!(
                "--memory-limit {} is too small for {mappers} mapper threads and {reducers} reducers: \
                 give at least {}MiB (or fewer threads or reducers)",
                crate::units::format_bytes(limit),
                needed.div_ceil(1 << 20)
            )));
        }
        Ok(MemoryPlan {
            reducer_budget: ((limit - fixed) / r / 100 * (100 - Self::ALLOCATOR_GAPS_PERCENT))
                .max(Self::MIN_REDUCER_BUDGET) as usize,
            batch_rows: batch_rows as usize,
        })
    }
}

/// How many unreadable records a run tolerates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BadRecordLimit {
    Count(u64),
    /// A percentage of the records read.
    Percent(f64),
}

impl Default for BadRecordLimit {
    /// Up to 1 % of the records: a malformed record here and there is expected, a dump that
    /// is mostly unreadable (a changed export format, a wrong path) should stop the night.
    fn default() -> Self {
        BadRecordLimit::Percent(1.0)
    }
}

impl BadRecordLimit {
    /// Parses `100` or `2.5%`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let t = text.trim();
        let bad =
            || format!("{text:?} is not a count (100) or a percentage (2.5%) of the records read");
        match t.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(BadRecordLimit::Percent(v)),
                _ => Err(bad()),
            },
            None => t.parse().map(BadRecordLimit::Count).map_err(|_| bad()),
        }
    }

    pub fn exceeded(&self, bad: u64, read: u64) -> bool {
        match *self {
            BadRecordLimit::Count(n) => bad > n,
            BadRecordLimit::Percent(p) => bad as f64 > p / 100.0 * read as f64,
        }
    }
}

impl std::fmt::Display for BadRecordLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadRecordLimit::Count(n) => write!(f, "{n}"),
            BadRecordLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Where the plan came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanSource {
    History {
        dir: Location,
        runs: usize,
    },
    /// Counted on `sampled` records (footers count as read), scaled to `estimated`.
    Sample {
        sampled: u64,
        estimated: u64,
    },
    /// Made by the caller (replay), as it describes it.
    Given {
        what: String,
    },
}

/// What a run did, for the summary on screen.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub manifest: Manifest,
    /// What the run found to finish or discard from earlier runs before it started.
    pub recovery: Recovery,
    /// Bytes the reducers spilled to disk to stay within the memory limit.
    pub spilled_bytes: u64,
    pub wall: Duration,
    pub plan_source: PlanSource,
    /// What the check of the input against the history found (a plan from a history).
    pub drift: Option<planner::DriftReport>,
    pub properties: usize,
    pub bytes_written: u64,
    pub input_bytes: u64,
    pub predicted_max_over_mean: f64,
    pub actual_max_over_mean: f64,
    pub files_per_property: f64,
    pub max_files_per_property: usize,
    /// What the user should know though the run succeeded (printed after the summary).
    pub warnings: Vec<String>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A run id that sorts by start time (to the millisecond: replays start several runs a
/// second, and manifests are applied in run-id order) and differs between runs started at
/// the same moment.
fn new_run_id(started_ms: i64) -> String {
    let stamp = format_utc(started_ms).replace(['-', ':'], "");
    let stamp = format!(
        "{}.{:03}Z",
        stamp.trim_end_matches('Z'),
        started_ms.rem_euclid(1000)
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let salt = planner::fmix64(u64::from(nanos) ^ (u64::from(std::process::id()) << 32)) & 0xffff;
    format!("{stamp}-{salt:04x}")
}

/// Runs the job: reads `config.inputs`, writes and publishes the dataset.
///
/// The phases, each a function with named inputs and outputs: open (inputs, dataset, lock,
/// recovery) and plan (`plan_phase`) → map and reduce ([`threads::execute`], over
/// [`crate::map`] and [`crate::reduce`]) → check the counts ([`account`], rejects, the
/// bad-record limit), the manifest and history record, publish, the summary (`finish`).
/// A multi-process run (`distributed`) has the same phases, the first and last on process 0.
pub fn run(config: &RunConfig) -> Result<RunSummary> {
    if config.cluster.is_some() {
        return Err(Error::Bug(
            "a multi-process run goes through run::run_any".into(),
        ));
    }
    let t0 = Instant::now();
    let planned = plan_phase(config, t0, now_ms())?;
    let stages = map_reduce(
        config,
        &planned,
        planned.splits.clone(),
        ReduceOn::from(config.exchange),
    )
    .map_err(|e| planned.discard(e))?;
    finish(config, planned, stages, None)
}

/// Runs the job alone ([`run`]) or as one of several processes (`distributed`), as
/// `config.cluster` says.
pub fn run_any(config: &RunConfig) -> Result<Ran> {
    match &config.cluster {
        Some(cluster) => distributed::run(config, cluster),
        None => run(config).map(|s| Ran::Published(Box::new(s))),
    }
}

/// What the open and plan phases give the rest of a run.
struct Planned {
    t0: Instant,
    started_ms: i64,
    run_id: String,
    /// The partition path (`dt=…`) the run writes under, if any.
    partition: Option<String>,
    opened: Opened,
    deletes: Deletes,
    splits: Vec<Split>,
    plan: Arc<Plan>,
    plan_source: PlanSource,
    drift: Option<planner::DriftReport>,
    predicted: planner::PlanStats,
    planned_at: Instant,
    table: Arc<PropertyTable>,
    /// Where the run stages its files.
    staging: PathBuf,
}

impl Planned {
    /// What a failed run staged goes with it; nothing was published.
    fn discard(&self, e: Error) -> Error {
        let _ = std::fs::remove_dir_all(&self.staging);
        e
    }
}

/// The open and plan phases: the inputs found, the dataset opened, locked and recovered, the
/// splits and the plan made.
fn plan_phase(config: &RunConfig, t0: Instant, started_ms: i64) -> Result<Planned> {
    if config.delete_objects.is_some() && !config.mode.merges() {
        return Err(Error::Config(
            "--delete-objects removes rows from stored partitions: it needs --mode merge (or \
             upsert)"
                .into(),
        ));
    }
    let run_id = new_run_id(started_ms);
    let partition = config
        .partition
        .as_deref()
        .map(partition_path)
        .transpose()?;
    let opened = open_run(config, &run_id)?;
    let deletes = Deletes {
        listed: match &config.delete_objects {
            Some(location) => crate::merge::read_delete_ids(location, &opened.stores)?,
            None => Vec::new(),
        },
        all: std::sync::OnceLock::new(),
    };
    let splits = input::splits(&opened.files, config.split_bytes)?;
    let (plan, plan_source, drift, predicted) = plan_run(
        config,
        &*opened.dataset,
        &opened.stores,
        &opened.files,
        &splits,
    )?;
    let table = Arc::new(PropertyTable::new(plan.clone()));
    let staging = opened.dataset.staging()?.staging(&run_id);
    Ok(Planned {
        t0,
        started_ms,
        run_id,
        partition,
        opened,
        deletes,
        splits,
        plan,
        plan_source,
        drift,
        predicted,
        planned_at: Instant::now(),
        table,
        staging,
    })
}

/// A multi-process run's part in [`finish`].
struct Shared<'a> {
    /// The process that ran each reducer.
    owners: &'a [usize],
    /// Has the other processes upload the files they staged, and waits until they have.
    others: &'a dyn Fn() -> Result<()>,
}

/// The check, record and publish phases, once every reducer has written: `stages` holds
/// every mapper's and reducer's counts (of every process, in a multi-process run).
fn finish(
    config: &RunConfig,
    planned: Planned,
    stages: threads::MapReduced,
    shared: Option<Shared<'_>>,
) -> Result<RunSummary> {
    let discard = |e: Error| planned.discard(e);
    let Planned {
        t0,
        started_ms,
        ref run_id,
        ref partition,
        ref opened,
        ref deletes,
        ref plan,
        ref predicted,
        planned_at,
        ref table,
        ref staging,
        ..
    } = planned;
    let dataset = &*opened.dataset;
    let files = &opened.files;
    let reduced_at = Instant::now();
    let spilled_bytes = stages.reduced.iter().map(|r| r.spilled_bytes).sum();
    let events_kept = match deletes.all.get() {
        Some(_) => 0,
        None => {
            crate::merge::deleted_objects(&[], stages.mapped.iter().flat_map(|m| &m.events)).len()
        }
    };

    let mut counts = check_counts(
        config,
        dataset,
        run_id,
        files,
        stages.mapped,
        &stages.reduced,
    )
    .map_err(discard)?;
    counts.objects_to_delete = deletes.all.get().map_or(0, |d| d.len() as u64);
    counts.objects_deleted = objects_deleted(&stages.reduced);
    let mut outputs = Outputs::gather(
        &stages.reduced,
        &table.names(),
        staging,
        predicted,
        config.mode.merges(),
    );
    if let Some(shared) = &shared {
        for r in &mut outputs.reducers {
            r.process = shared.owners.get(r.reducer as usize).map(|&p| p as u32);
        }
    }
    let record = outputs.history_record(run_id, started_ms, config.output.name(), partition);
    crate::store::local::stage_history(dataset.staging()?, &record).map_err(discard)?;
    let prepared = dataset.prepare(run_id, config.mode).map_err(discard)?;
    let timings = Timings {
        plan_ms: ms(planned_at - t0),
        map_ms: ms(stages.mapped_at.saturating_duration_since(planned_at)),
        reduce_ms: ms(reduced_at.saturating_duration_since(stages.mapped_at)),
        publish_ms: 0,
    };
    let mut manifest = manifest(
        config, run_id, started_ms, partition, files, plan, counts, timings, &outputs, prepared,
    );

    // From here on, a failure leaves a manifest the next run or `skewer recover` completes.
    let publishing = Instant::now();
    tracing::info!(
        files = manifest.files.len(),
        replaced = manifest.replaced.len(),
        "publishing"
    );
    let mut warnings = opened.recovery.warnings.clone();
    warnings.extend(input_warnings(&manifest.counts));
    if events_kept > 0 {
        warnings.push(format!(
            "the input's webhook events delete or merge away {} object{}; their rows were not \
             removed: deletes apply only with --mode merge or upsert",
            crate::units::format_count(events_kept as u64),
            if events_kept == 1 { "" } else { "s" }
        ));
    }
    warnings.extend(match &shared {
        None => dataset.publish(&mut manifest)?,
        Some(shared) => {
            let mine = |f: &crate::store::meta::FileEntry| {
                shared.owners.get(f.reducer as usize) == Some(&0)
            };
            dataset.publish_shared(&mut manifest, &mine, shared.others)?
        }
    });
    tracing::info!(run = %run_id, publish_ms = ms(publishing.elapsed()), "committed");
    manifest.timings.publish_ms = ms(publishing.elapsed());
    let Planned {
        opened,
        plan_source,
        drift,
        ..
    } = planned;
    drop(opened.lock);
    Ok(RunSummary {
        bytes_written: manifest.files.iter().map(|f| f.bytes).sum(),
        input_bytes: opened.files.iter().map(|f| f.size).sum(),
        predicted_max_over_mean: manifest.plan.predicted_max_over_mean,
        actual_max_over_mean: outputs.max_over_mean(),
        properties: outputs.volumes.len(),
        files_per_property: outputs.mean_files_per_property(),
        max_files_per_property: outputs
            .files_per_property
            .values()
            .copied()
            .max()
            .unwrap_or(0),
        manifest,
        wall: t0.elapsed(),
        plan_source,
        drift,
        recovery: opened.recovery,
        spilled_bytes,
        warnings,
    })
}

/// What a run opens before it plans.
struct Opened {
    stores: Stores,
    files: Vec<InputFile>,
    dataset: Box<dyn Dataset>,
    /// Held until the run has published (or failed); `None` on the processes of a
    /// multi-process run other than process 0, which holds it for all.
    lock: Option<DatasetLock>,
    /// What the run found to finish or discard from earlier runs.
    recovery: Recovery,
}

/// The open phase: the inputs found, the dataset opened and locked, an interrupted earlier
/// publish finished (before planning from its history).
fn open_run(config: &RunConfig, run_id: &str) -> Result<Opened> {
    let stores = Stores::with_endpoint(config.endpoint.clone());
    let files = input::discover(&config.inputs, &stores)?;
    let options = crate::store::Options {
        part_bytes: Some(config.part_size),
        work_dir: config.work_dir.clone(),
    };
    let dataset = crate::store::open(&config.output, &stores, &options)?;
    // Where the run will stage (a work folder, for a remote dataset) is made now: a bad
    // --work-dir fails the run before it touches the dataset.
    dataset.staging()?;
    tracing::info!(run = %run_id, inputs = files.len(), output = %config.output, "run starts");
    let lock = dataset.lock(run_id)?;
    let recovery = dataset.recover()?;
    if recovery != Recovery::default() {
        tracing::info!(rolled_forward = ?recovery.rolled_forward, discarded = ?recovery.discarded, "recovered earlier runs");
    }
    Ok(Opened {
        stores,
        files,
        dataset,
        lock: Some(lock),
        recovery,
    })
}

/// A merge's deletes: the ids of the delete file, and, once every record is read, all the
/// objects the run deletes (with those of the input's events).
#[derive(Debug)]
struct Deletes {
    listed: Vec<i64>,
    all: std::sync::OnceLock<Arc<[i64]>>,
}

/// The map and reduce phase, on this machine's threads ([`threads::execute`]): the run's
/// files staged under its staging folder (and partition), named for its run id. A merge
/// reads the partitions it writes back from the dataset, and drops the deleted objects.
/// Across processes, `splits` are this process's and `on` reaches the others.
fn map_reduce(
    config: &RunConfig,
    planned: &Planned,
    splits: Vec<Split>,
    on: ReduceOn,
) -> Result<threads::MapReduced> {
    let Planned {
        ref run_id,
        ref partition,
        ref opened,
        ref deletes,
        ref table,
        ref staging,
        ..
    } = *planned;
    let files = &opened.files[..];
    let existing = Existing {
        folder: config
            .mode
            .merges()
            .then_some(&*opened.dataset as &dyn crate::store::Folder),
    };
    let started = Instant::now();
    let reducers = table.plan().reducers();
    // Reducers whose rows this process holds (all, unless others hold some).
    let held = (0..reducers).filter(|&r| on.owns(r)).count();
    let staged_root = match partition {
        Some(p) => staging.join(p),
        None => staging.to_path_buf(),
    };
    let prefix = format!("part-{run_id}");
    let progress = Arc::new(crate::progress::Progress::default());
    let arrange = |mapped: &[Mapped], jobs| -> Result<Vec<Vec<crate::reduce::Job>>> {
        let folder = existing
            .folder
            .ok_or_else(|| Error::Bug("a merge without its dataset".into()))?;
        crate::merge::check_event_types(mapped.iter().flat_map(|m| &m.events))?;
        let deleted = deletes.all.get_or_init(|| {
            let events = mapped.iter().flat_map(|m| &m.events);
            crate::merge::deleted_objects(&deletes.listed, events).into()
        });
        let partial: Vec<(u32, i64)> = mapped
            .iter()
            .flat_map(|m| m.partial.iter().copied())
            .collect();
        crate::merge::arrange(folder, partition.as_deref(), deleted, &partial, table, jobs)
    };
    let job = threads::Job {
        files,
        table,
        memory: MemoryPlan::new(config.memory_limit, config.mappers.max(1), held.max(1))?,
        mappers: config.mappers,
        staging: Staging {
            root: &staged_root,
            prefix: &prefix,
            sink: &config.sink,
            syncer: None,
            existing,
        },
        spill_dir: &staging.join("_spill"),
        progress: &progress,
        histories: config.mode == Mode::Upsert,
        arrange: existing
            .folder
            .is_some()
            .then_some(&arrange as &threads::Arrange<'_>),
    };
    tracing::info!(run = %run_id, splits = splits.len(), reducers, held, "mapping");
    let bytes = threads::split_weights(files, &splits).iter().sum();
    let bars = crate::progress::start(&progress, bytes, config.progress);
    let stages = threads::execute(&job, splits, on)?;
    drop(bars);
    tracing::info!(
        map_ms = ms(stages.mapped_at - started),
        reduce_ms = ms(stages.mapped_at.elapsed()),
        spilled_bytes = stages.reduced.iter().map(|r| r.spilled_bytes).sum::<u64>(),
        "mapped and reduced"
    );
    Ok(stages)
}

/// How many deleted objects had rows, over every reducer's writes.
fn objects_deleted(reduced: &[Reduced]) -> u64 {
    let mut found = crate::reduce::Merged::default();
    for r in reduced {
        found.add(crate::reduce::Merged {
            deleted_found: r.merged.deleted_found.clone(),
            ..Default::default()
        });
    }
    found.objects_deleted()
}

/// The plan phase: the caller's plan, else one from the history (the dataset's, or
/// `--history`), else one from a sample of the input.
fn plan_run(
    config: &RunConfig,
    dataset: &dyn Dataset,
    stores: &Stores,
    files: &[InputFile],
    splits: &[Split],
) -> Result<(
    Arc<Plan>,
    PlanSource,
    Option<planner::DriftReport>,
    planner::PlanStats,
)> {
    let (plan, source, drift) = match &config.plan {
        Some((plan, source)) => (plan.clone(), source.clone(), None),
        None => {
            let (plan, source, drift) = make_plan(config, dataset, stores, files, splits)?;
            (Arc::new(plan), source, drift)
        }
    };
    // The predicted loads, computed once: logged here, recorded per reducer in the manifest.
    let stats = plan.stats();
    tracing::info!(digest = %plan.digest(), source = ?source, predicted_max_over_mean = stats.max_over_mean, "plan");
    Ok((plan, source, drift, stats))
}

/// The check phase, before anything is published: the stages' counts add up ([`account`]),
/// no input changed while read, the rejects are written where the dataset keeps them, and
/// they are within `--max-bad-records`.
fn check_counts(
    config: &RunConfig,
    dataset: &dyn Dataset,
    run_id: &str,
    files: &[InputFile],
    mapped: Vec<Mapped>,
    reduced: &[Reduced],
) -> Result<Counts> {
    let mut rejects: Vec<Reject> = Vec::new();
    let mut map_counts = Vec::with_capacity(mapped.len());
    for m in mapped {
        map_counts.push(m.counts);
        rejects.extend(m.rejects);
    }
    let reduce_counts: Vec<ReduceCounts> = reduced
        .iter()
        .map(|r| ReduceCounts {
            rows_in: r.rows_in,
            duplicates: r.merged.duplicates,
            rows_written: r.properties.iter().map(|p| p.1.rows).sum(),
            stored_rows: r.merged.stored_rows,
            deleted_rows: r.merged.deleted_rows,
            replaced_rows: r.merged.replaced_rows,
        })
        .collect();
    let counts = account(&map_counts, &reduce_counts).map_err(Error::Bug)?;
    // An input that changed while it was read was read in part.
    input::check_unchanged(files)?;
    input::resolve_reject_lines(&mut rejects, files)?;
    rejects.sort_by(|a, b| {
        (a.file.as_ref(), a.line, a.row_group, a.record).cmp(&(
            b.file.as_ref(),
            b.line,
            b.row_group,
            b.record,
        ))
    });
    let rejects_at = dataset.write_rejects(run_id, &rejects)?;
    // Records and (Parquet) versions are each a unit that can be rejected.
    let bad = counts.records_rejected + counts.versions_rejected;
    let total = counts.records_read + counts.versions_rejected;
    if config.max_bad_records.exceeded(bad, total) {
        return Err(Error::TooManyBadRecords {
            bad,
            read: total,
            limit: config.max_bad_records.to_string(),
            rejects: rejects_at.into(),
        });
    }
    Ok(counts)
}

/// What the reducers wrote, as the manifest and the history record it: files, volumes per
/// property, loads per reducer.
#[derive(Debug, Default)]
struct Outputs {
    /// Files relative to the staging folder, sorted by path.
    files: Vec<FileEntry>,
    volumes: BTreeMap<String, Volume>,
    reducers: Vec<ReducerEntry>,
    files_per_property: BTreeMap<String, usize>,
    /// The plan's predicted max/mean reducer load.
    predicted_max_over_mean: f64,
}

impl Outputs {
    fn gather(
        reduced: &[Reduced],
        names: &[Arc<str>],
        staging: &std::path::Path,
        predicted: &planner::PlanStats,
        merging: bool,
    ) -> Outputs {
        let mut out = Outputs {
            predicted_max_over_mean: predicted.max_over_mean,
            ..Outputs::default()
        };
        for r in reduced {
            let mut bytes = 0;
            for (p, written) in &r.properties {
                let name = names[*p as usize].as_ref();
                let v = out.volumes.entry(name.to_string()).or_default();
                // A merge's rows written are mostly read back: the next plan wants the two
                // apart (its input's rows, and what merging them costs).
                v.rows += if merging {
                    written.input_rows
                } else {
                    written.rows
                };
                v.stored_rows += written.stored_rows;
                v.bytes += written.bytes;
                v.objects += written.objects;
                bytes += written.bytes;
                *out.files_per_property.entry(name.to_string()).or_default() += written.files.len();
                for f in &written.files {
                    let rel = f.path.strip_prefix(staging).unwrap_or(&f.path);
                    out.files.push(FileEntry {
                        path: rel.to_string_lossy().into_owned(),
                        property: name.to_string(),
                        reducer: r.reducer,
                        rows: f.rows,
                        bytes: f.bytes,
                    });
                }
            }
            out.reducers.push(ReducerEntry {
                reducer: r.reducer,
                rows: r.rows_in,
                stored_rows: r.merged.stored_rows,
                bytes,
                wall_ms: ms(r.wall),
                predicted_rows: predicted.reducers.get(r.reducer as usize).map(|l| l.rows),
                process: None,
            });
        }
        out.files.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// The reducers' largest load over their mean (1.0 when nothing was written).
    fn max_over_mean(&self) -> f64 {
        let loads: Vec<u64> = self
            .reducers
            .iter()
            .map(|r| r.rows + r.stored_rows)
            .collect();
        planner::max_over_mean(&loads).unwrap_or(1.0)
    }

    fn mean_files_per_property(&self) -> f64 {
        let files: usize = self.files_per_property.values().sum();
        match self.volumes.len() {
            0 => 0.0,
            n => files as f64 / n as f64,
        }
    }

    /// The run's history record: what the next plan reads.
    fn history_record(
        &self,
        run_id: &str,
        started_ms: i64,
        dataset: Option<String>,
        partition: &Option<String>,
    ) -> RunRecord {
        RunRecord {
            schema_version: planner::HISTORY_SCHEMA_VERSION,
            run_id: run_id.to_string(),
            started_at: crate::units::format_utc_ms(started_ms),
            dataset,
            partition: partition.clone(),
            properties: self.volumes.clone(),
            reducers: self
                .reducers
                .iter()
                .map(|r| planner::ReducerVolume {
                    rows: r.rows,
                    stored_rows: r.stored_rows,
                    bytes: r.bytes,
                    wall_ms: r.wall_ms,
                    process: r.process,
                })
                .collect(),
        }
    }
}

/// The run's manifest, before publishing.
#[allow(clippy::too_many_arguments)]
fn manifest(
    config: &RunConfig,
    run_id: &str,
    started_ms: i64,
    partition: &Option<String>,
    files: &[InputFile],
    plan: &Plan,
    counts: Counts,
    timings: Timings,
    outputs: &Outputs,
    prepared: Prepared,
) -> Manifest {
    Manifest {
        schema_version: MANIFEST_SCHEMA_VERSION,
        run_id: run_id.to_string(),
        state: String::new(),
        started_at: crate::units::format_utc_ms(started_ms),
        finished_at: format_utc(now_ms()),
        mode: config.mode,
        partition: partition.clone(),
        inputs: files
            .iter()
            .map(|f| InputEntry {
                path: f.name.to_string(),
                bytes: f.size,
                format: format!("{:?}", f.format).to_lowercase(),
            })
            .collect(),
        plan: PlanEntry {
            digest: plan.digest(),
            reducers: plan.reducers(),
            basis: plan.basis().clone(),
            predicted_max_over_mean: outputs.predicted_max_over_mean,
        },
        counts,
        reducers: outputs.reducers.clone(),
        timings,
        partitions: prepared.partitions,
        files: outputs.files.clone(),
        replaced: prepared.replaced,
    }
}

fn make_plan(
    config: &RunConfig,
    dataset: &dyn Dataset,
    stores: &Stores,
    files: &[InputFile],
    splits: &[Split],
) -> Result<(Plan, PlanSource, Option<planner::DriftReport>)> {
    let dir = config.history.clone().unwrap_or_else(|| dataset.history());
    let loaded = match crate::history::load_from(&dir, stores) {
        Ok(loaded) => Some(loaded),
        // No history yet (a new dataset): plan from tonight's counts alone.
        Err(Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && config.history.is_none() =>
        {
            None
        }
        Err(Error::EmptyHistory { .. }) => None,
        Err(e) => return Err(e),
    };
    match loaded {
        Some(loaded) => {
            let runs = loaded.history.runs().len();
            let (plan, drift) = plan_checked(&loaded.history, files, splits, &config.params)?;
            Ok((plan, PlanSource::History { dir, runs }, drift))
        }
        None => {
            let (plan, source) = plan_from_sample(files, splits, &config.params)?;
            Ok((plan, source, None))
        }
    }
}

/// A plan from `history` checked against tonight's counts of the input (exact from Parquet
/// footers, a sample of JSON): the drifted properties planned from the counts.
pub fn plan_checked(
    history: &planner::History,
    files: &[InputFile],
    splits: &[Split],
    params: &PlanParams,
) -> Result<(Plan, Option<planner::DriftReport>)> {
    let started = std::time::Instant::now();
    let (observed, read) = crate::sample::sample(files, splits)?;
    tracing::info!(
        count_ms = started.elapsed().as_millis() as u64,
        records_read = read,
        rows_counted = observed.counted_rows,
        exact = observed.exact,
        "counted tonight's input"
    );
    planner::plan_checked(history, &observed, params).map_err(plan_error)
}

/// A plan for input no history knows: from a sample of it (footers, for nested Parquet).
pub fn plan_from_sample(
    files: &[InputFile],
    splits: &[Split],
    params: &PlanParams,
) -> Result<(Plan, PlanSource)> {
    let (observed, sampled) = crate::sample::sample(files, splits)?;
    let estimated = observed.sample.estimated_records;
    let plan = planner::plan_from_sample(&observed.sample, params).map_err(plan_error)?;
    Ok((plan, PlanSource::Sample { sampled, estimated }))
}

/// A planner error: bad parameters are a usage error; anything else, with a validated history
/// or sample, is a bug.
pub(crate) fn plan_error(e: planner::PlanError) -> Error {
    match e {
        planner::PlanError::InvalidParams(msg) => Error::Config(msg),
        other => Error::Bug(format!("planning: {other}")),
    }
}

/// What the counts say the user should know about the input.
fn input_warnings(c: &Counts) -> Vec<String> {
    let mut out = Vec::new();
    if c.records_without_history > 0 {
        out.push(format!(
            "{} of {} records carry property values but no version history, and gave no rows: \
             was the dump exported without histories (v1: propertyMode=value_and_history; v3: \
             propertiesWithHistory)?",
            crate::units::format_count(c.records_without_history),
            crate::units::format_count(c.records_read)
        ));
    } else if c.rows_written == 0 && c.records_exploded > c.events_without_version {
        out.push(format!(
            "{} records were read but none had a property version: nothing was written",
            crate::units::format_count(c.records_exploded)
        ));
    }
    out
}

/// What one reducer counted, for [`account`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReduceCounts {
    /// Rows it received.
    pub rows_in: u64,
    /// Exact duplicates it dropped.
    pub duplicates: u64,
    /// Rows its files hold.
    pub rows_written: u64,
    /// Rows it read back from stored files (a merge).
    pub stored_rows: u64,
    /// Rows of deleted objects it dropped.
    pub deleted_rows: u64,
    /// Stored rows it dropped because the input carried their history (an upsert).
    pub replaced_rows: u64,
}

/// The run's counts from what each stage counted on its own, checked against each other:
/// every record the input stage met was exploded or rejected, every row the mappers routed
/// reached a reducer, and every row a reducer received was written or dropped as a duplicate.
/// A mismatch is a bug (rows lost or made up between stages): the run must not publish.
pub fn account(mapped: &[MapCounts], reduced: &[ReduceCounts]) -> Result<Counts, String> {
    let mut c = Counts::default();
    for m in mapped {
        c.records_read += m.records_met;
        c.records_exploded += m.records + m.events_without_version;
        c.records_rejected += m.rejected;
        c.events_without_version += m.events_without_version;
        c.records_without_history += m.records_without_history;
        c.versions_rejected += m.versions_rejected;
        c.rows_exploded += m.rows;
    }
    let received: u64 = reduced.iter().map(|r| r.rows_in).sum();
    c.duplicates_dropped = reduced.iter().map(|r| r.duplicates).sum();
    c.rows_written = reduced.iter().map(|r| r.rows_written).sum();
    c.stored_rows_read = reduced.iter().map(|r| r.stored_rows).sum();
    c.rows_deleted = reduced.iter().map(|r| r.deleted_rows).sum();
    c.rows_replaced = reduced.iter().map(|r| r.replaced_rows).sum();
    if c.records_read != c.records_exploded + c.records_rejected {
        return Err(format!(
            "records do not add up: {} met in the input, {} exploded + {} rejected",
            c.records_read, c.records_exploded, c.records_rejected
        ));
    }
    if received != c.rows_exploded
        || c.rows_written + c.duplicates_dropped + c.rows_deleted + c.rows_replaced
            != received + c.stored_rows_read
    {
        return Err(format!(
            "rows do not add up: exploded {}, received by reducers {received}, read back {}, \
             written {} + duplicates {} + deleted {} + replaced {}",
            c.rows_exploded,
            c.stored_rows_read,
            c.rows_written,
            c.duplicates_dropped,
            c.rows_deleted,
            c.rows_replaced
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(met: u64, records: u64, rejected: u64, rows: u64) -> MapCounts {
        MapCounts {
            records_met: met,
            records,
            rejected,
            rows,
            ..MapCounts::default()
        }
    }

    fn reduced(rows_in: u64, duplicates: u64, rows_written: u64) -> ReduceCounts {
        ReduceCounts {
            rows_in,
            duplicates,
            rows_written,
            ..ReduceCounts::default()
        }
    }

    /// Processes of one run must agree on what shapes its bytes, and only on that.
    #[test]
    fn a_cluster_job_names_what_must_match_and_leaves_out_what_may_differ() {
        let file = |name: &str, size| InputFile {
            path: name.into(),
            name: name.into(),
            size,
            format: crate::input::Format::Json,
            modified: None,
            remote: None,
        };
        let files = [file("a.ndjson", 10), file("b.ndjson", 20)];
        let base = RunConfig::new(&[std::path::Path::new("in")], "out", 4);
        let job = cluster_job(&base, &files);
        let mut other_machine = base.clone();
        other_machine.mappers = 7;
        other_machine.memory_limit = 123 << 20;
        assert_eq!(cluster_job(&other_machine, &files), job);
        let mut more_reducers = base.clone();
        more_reducers.params = PlanParams::new(8);
        let differs = |a: &BTreeMapJob, b: &BTreeMapJob| {
            a.iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            differs(&cluster_job(&more_reducers, &files), &job),
            ["planning"]
        );
        let grown = [file("a.ndjson", 10), file("b.ndjson", 21)];
        assert_eq!(differs(&cluster_job(&base, &grown), &job), ["inputs"]);
        assert!(job["skewer version"].starts_with(env!("CARGO_PKG_VERSION")));
    }

    type BTreeMapJob = std::collections::BTreeMap<String, String>;

    #[test]
    fn counts_that_add_up_are_summed_across_stages() {
        let c = account(
            &[mapped(10, 8, 2, 30), mapped(5, 5, 0, 12)],
            &[reduced(20, 1, 19), reduced(22, 0, 22)],
        )
        .unwrap();
        assert_eq!(
            (c.records_read, c.records_exploded, c.records_rejected),
            (15, 13, 2)
        );
        assert_eq!(
            (c.rows_exploded, c.rows_written, c.duplicates_dropped),
            (42, 41, 1)
        );
    }

    #[test]
    fn a_record_or_row_lost_between_stages_is_a_mismatch() {
        // A record the input stage met that was neither exploded nor rejected.
        let err = account(&[mapped(10, 8, 1, 30)], &[reduced(30, 0, 30)]).unwrap_err();
        assert!(err.contains("records do not add up: 10 met"), "{err}");
        // A row routed but never received.
        let err = account(&[mapped(1, 1, 0, 30)], &[reduced(29, 0, 29)]).unwrap_err();
        assert!(err.contains("received by reducers 29"), "{err}");
        // A row received but neither written nor a duplicate.
        let err = account(&[mapped(1, 1, 0, 30)], &[reduced(30, 1, 28)]).unwrap_err();
        assert!(err.contains("written 28 + duplicates 1"), "{err}");
    }

    #[test]
    fn the_memory_limit_suggested_is_one_that_passes() {
        for (m, r) in [(1, 1), (2, 2), (2, 8), (8, 64)] {
            let err = MemoryPlan::new(1 << 20, m, r).unwrap_err().to_string();
            let mib: u64 = err
                .split("give at least ")
                .nth(1)
                .and_then(|s| s.split("MiB").next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{err}"));
            assert!(MemoryPlan::new(mib << 20, m, r).is_ok(), "{m}x{r}: {err}");
            assert!(
                MemoryPlan::new((mib - 1) << 20, m, r).is_err(),
                "{m}x{r}: {err}"
            );
        }
    }
}
