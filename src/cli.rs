//! The command line: clap types, and their conversion into the library's plain configs.
//! Range checks happen here, so a bad value is a usage error (exit 2) with clap's message.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use planner::{MAX_REDUCERS, MAX_SPARE, PlanParams, Split, Window};
use skewer::app::{OutputFormat, PlanConfig};
use skewer::generate::{Dialect, Format as GenFormat, GenConfig};
use skewer::run::{BadRecordLimit, Exchange, RunConfig};
use skewer::sink::SinkOptions;
use skewer::store::Location;
use skewer::store::meta::Mode;

/// Explodes CRM property histories into a property-partitioned Parquet dataset, with a
/// skew-aware plan so that every reducer gets an even share and every property few files.
#[derive(Debug, Parser)]
#[command(name = "skewer", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explode a dump into the dataset: read, plan, route, sort, write, publish.
    Run(RunArgs),
    /// Finish a publish that a crashed run left halfway, and remove what unfinished runs
    /// staged (`run` does this itself before it starts).
    Recover(RecoverArgs),
    /// Show the allocation a volume history gives: each property's share, slots and reducers,
    /// the predicted load per reducer and the files to expect.
    Plan(PlanArgs),
    /// Generate a synthetic HubSpot-like dump (deterministic by --seed) with its expected row
    /// count and checksum in <out>/_expected.json.
    Gen(GenArgs),
    /// Re-partition old dumps: one run per date from --from to --to, each replacing only its
    /// own partition; missing dates are skipped, dates already committed with the same input
    /// and plan too (unless --force).
    Replay(ReplayArgs),
    /// Show a dataset's volume history: totals per run and the trend of the largest
    /// properties.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Check a dataset's health: files, rows and bytes per property; schema, sort order, stray
    /// files and manifests (exit 1 if a check fails); small-file and skew warnings.
    Inspect(InspectArgs),
    /// Count a dataset's rows and checksum them (order-independent); with --expected, check
    /// them against what `gen` wrote (exit 1 if they differ).
    Checksum(ChecksumArgs),
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Volumes per run, and the rows of the largest properties over the last runs.
    Show(HistoryShowArgs),
}

#[derive(Debug, Args)]
pub struct HistoryShowArgs {
    /// A dataset (its _skewer/history is read), a history folder or file; local or s3://.
    #[arg(value_name = "DATASET|HISTORY", value_parser = location)]
    pub dataset: Location,

    #[command(flatten)]
    pub s3: S3Args,

    /// Largest properties to follow.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Runs the trends cover (the planner's window, by default).
    #[arg(long, value_name = "N", default_value_t = Window::default().runs as usize)]
    pub window: usize,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// First date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub from: i64,

    /// Last date, included (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub to: i64,

    /// Which history plans each date: the runs of earlier dates, or every run but the
    /// replayed dates'.
    #[arg(long, value_enum, default_value_t = PlanFromArg::HistoryAtDate)]
    pub plan_from: PlanFromArg,

    /// Redo dates already committed with the same input and plan.
    #[arg(long)]
    pub force: bool,

    /// The run options; --input holds {date} (e.g. 'raw/contacts/dt={date}/'), and
    /// --partition defaults to dt={date} (with --mode merge: no partition, every date merged
    /// into the same dataset in date order).
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFromArg {
    HistoryAtDate,
    Current,
}

fn parse_date(text: &str) -> Result<i64, String> {
    skewer::units::parse_date(text).ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

impl ReplayArgs {
    pub fn into_config(self) -> (skewer::replay::ReplayConfig, OutputFormat) {
        let (partition, mode) = (self.run.partition.clone(), self.run.mode);
        let (run, format) = self.run.into_config();
        (
            skewer::replay::ReplayConfig {
                run,
                from: self.from,
                to: self.to,
                // A merge takes every date into the same partitions: none unless asked.
                partition: match (partition, mode) {
                    (None, ModeArg::Merge | ModeArg::Upsert) => None,
                    (p, _) => Some(p.unwrap_or_else(|| "dt={date}".into())),
                },
                plan_from: match self.plan_from {
                    PlanFromArg::HistoryAtDate => skewer::replay::PlanFrom::HistoryAtDate,
                    PlanFromArg::Current => skewer::replay::PlanFrom::Current,
                },
                force: self.force,
            },
            format,
        )
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The dataset: a folder or s3://bucket/prefix.
    #[arg(value_name = "DATASET", value_parser = location)]
    pub dataset: Location,

    #[command(flatten)]
    pub s3: S3Args,

    /// Properties listed, largest first (0: all).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Draw this run's reducer loads, actual beside predicted ("latest": the newest
    /// committed run), into --svg or --html.
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,

    /// The SVG file to draw --run into.
    #[arg(long, value_name = "FILE", requires = "run")]
    pub svg: Option<PathBuf>,

    /// The HTML page to draw --run into.
    #[arg(long, value_name = "FILE", requires = "run")]
    pub html: Option<PathBuf>,
}

impl InspectArgs {
    pub fn into_config(self) -> skewer::app::InspectConfig {
        skewer::app::InspectConfig {
            dataset: self.dataset,
            endpoint: self.s3.endpoint,
            top: self.top,
            run: self.run,
            svg: self.svg,
            html: self.html,
            format: if self.json {
                OutputFormat::Json
            } else {
                OutputFormat::Table
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct ChecksumArgs {
    /// The dataset.
    #[arg(value_name = "DATASET")]
    pub dataset: PathBuf,

    /// A generated dump's _expected.json (or its folder) to compare with.
    #[arg(long, value_name = "FILE|DIR")]
    pub expected: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Objects (contacts or deals) to generate.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub objects: u64,

    /// Properties per object type (the top 20 hold ~90 % of the version rows).
    #[arg(long, value_name = "N", default_value_t = 1280,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub properties: u32,

    /// The HubSpot API shape to write.
    #[arg(long, value_enum, default_value_t = DialectArg::V1)]
    pub dialect: DialectArg,

    #[arg(long, value_enum, default_value_t = FormatArg::Ndjson)]
    pub format: FormatArg,

    /// Compress each NDJSON file with gzip.
    #[arg(long, conflicts_with = "parquet_map")]
    pub gzip: bool,

    /// Parquet: write `properties` as a MAP<name, {value, versions}> instead of a STRUCT.
    #[arg(long)]
    pub parquet_map: bool,

    /// Parquet: versions also carry source-type, source-id, source-label, updated-by-user-id.
    #[arg(long)]
    pub parquet_sources: bool,

    /// Give the first property this share of all rows (e.g. 0.6): extreme skew.
    #[arg(long, value_name = "F", value_parser = parse_hot_share)]
    pub hot_share: Option<f64>,

    /// Parquet: objects per row group (the default makes row groups of a few tens of MiB).
    #[arg(long, value_name = "N", default_value_t = 16_384,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub row_group_objects: u64,

    /// Directory to write (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    /// Files to spread the objects over.
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub files: u32,

    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Writer threads [default: the number of CPU cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Also write N increments after the base dump (base/, inc-001/ …, and final/: the state
    /// after the last, as one dump; each with its answer key). An increment holds its changed
    /// and new objects' full records, events.ndjson (changes as webhook events, deletions
    /// as deletion, privacy-deletion and merge events) and _deleted-objects.txt.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub increments: u32,

    /// With --increments: the share of objects each increment changes (and half as many new).
    #[arg(long, value_name = "F", default_value_t = 0.01, value_parser = parse_rate)]
    pub change_rate: f64,

    /// With --increments: the share of objects each increment deletes.
    #[arg(long, value_name = "F", default_value_t = 0.001, value_parser = parse_rate)]
    pub delete_rate: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    /// v1 contacts (vid, versions with source-type and epoch-ms timestamps)
    V1,
    /// v1 deals (dealId, versions with source and sourceId)
    V1Deals,
    /// v3 objects (id as a string, propertiesWithHistory, ISO-8601 timestamps)
    V3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Ndjson,
    /// Nested Parquet (properties STRUCT of {value, versions LIST<STRUCT>}), v1 style
    Parquet,
}

impl GenArgs {
    pub fn into_config(self) -> Result<GenConfig, String> {
        let format = match self.format {
            FormatArg::Ndjson => GenFormat::Ndjson,
            FormatArg::Parquet => GenFormat::Parquet,
        };
        if format == GenFormat::Parquet && self.gzip {
            return Err("--gzip applies to NDJSON; Parquet files are compressed inside".into());
        }
        if format == GenFormat::Ndjson && (self.parquet_map || self.parquet_sources) {
            return Err("--parquet-map and --parquet-sources need --format parquet".into());
        }
        Ok(GenConfig {
            objects: self.objects,
            properties: self.properties as usize,
            dialect: match self.dialect {
                DialectArg::V1 => Dialect::V1,
                DialectArg::V1Deals => Dialect::V1Deals,
                DialectArg::V3 => Dialect::V3,
            },
            format,
            gzip: self.gzip,
            parquet_map: self.parquet_map,
            parquet_sources: self.parquet_sources,
            row_group_objects: self.row_group_objects,
            hot_share: self.hot_share,
            out: self.out,
            files: self.files as usize,
            seed: self.seed,
            threads: self.threads.unwrap_or_else(cores) as usize,
            increments: self.increments,
            change_rate: self.change_rate,
            delete_rate: self.delete_rate,
        })
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A history directory (a dataset's _skewer/history) or a file of run records, local or
    /// s3://bucket/prefix.
    #[arg(long, value_name = "DIR|FILE|S3", value_parser = location)]
    pub history: Location,

    /// Check the history against tonight's input before planning, as a run does: exact
    /// counts from nested Parquet footers, a sample of JSON; the drifted properties are
    /// planned from them and named (files, directories or globs, local or s3://).
    #[arg(long, short = 'i', value_name = "PATH", num_args = 1..)]
    pub input: Vec<String>,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub planning: PlanningArgs,

    /// Properties listed before the rest are summed up in one line (0: list all).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,

    /// Print the plan and its figures as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Also draw the reducers' predicted loads, stacked by property, into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Also draw them into this HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// How the reducers are allocated: shared by `plan` and `run`.
#[derive(Debug, Args)]
pub struct PlanningArgs {
    /// Reducers to plan for [default: the number of CPU cores].
    #[arg(long, short = 'r', value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_REDUCERS)))]
    pub reducers: Option<u32>,

    /// Past runs averaged to predict the next (1: last run only).
    #[arg(long, value_name = "N", default_value_t = Window::default().runs,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub window: u32,

    /// Weight of each run relative to the next newer one in the window (1: plain average).
    #[arg(long, value_name = "F", default_value_t = Window::default().decay, value_parser = parse_decay)]
    pub decay: f64,

    /// Share of the reducers kept for properties the history has never seen.
    #[arg(long, value_name = "F", default_value_t = planner::DEFAULT_SPARE, value_parser = parse_spare)]
    pub spare: f64,

    /// A reducer starts a new file for a property past this size (e.g. 512MiB, 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = parse_target_size)]
    pub target_file_size: u64,

    /// How a property spanning several reducers divides its rows among them.
    #[arg(long, value_enum, default_value_t = SplitArg::Weighted)]
    pub split: SplitArg,

    /// Load, in reducers' mean loads, a property must move between the history's prediction
    /// and the input's counts to be planned from the counts (and named as drifted).
    #[arg(long, value_name = "F", default_value_t = planner::DEFAULT_DRIFT_THRESHOLD,
          value_parser = parse_drift)]
    pub drift_threshold: f64,
}

/// Object-store options, shared by every command that reads or writes `s3://`.
#[derive(Debug, Args)]
pub struct S3Args {
    /// An S3-compatible endpoint (e.g. http://127.0.0.1:9000), addressed path-style; also
    /// AWS_ENDPOINT_URL. Credentials and region come from the standard AWS chain.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input files, directories or globs, local or s3://bucket/prefix (NDJSON, JSON arrays or
    /// API pages, .gz/.zst; nested Parquet).
    #[arg(long, short = 'i', value_name = "PATH", required = true, num_args = 1..)]
    pub input: Vec<String>,

    /// The dataset to write (created if missing): a folder or s3://bucket/prefix.
    #[arg(long, short = 'o', value_name = "DIR|S3", value_parser = location)]
    pub output: Location,

    /// Plan from this history instead of the dataset's own _skewer/history.
    #[arg(long, value_name = "DIR|FILE|S3", value_parser = location)]
    pub history: Option<Location>,

    #[command(flatten)]
    pub s3: S3Args,

    /// Local scratch space when the dataset is in S3 (staged files and spills, about the
    /// output's size) [default: the system's temporary folder].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Multipart part size for uploads to S3 (at least 5MiB); files up to it go in one request.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = skewer::units::parse_size)]
    pub part_size: u64,

    #[command(flatten)]
    pub planning: PlanningArgs,

    /// Write under a Hive partition prefix, e.g. dt=2026-11-20.
    #[arg(long, value_name = "KEY=VALUE")]
    pub partition: Option<String>,

    /// overwrite: replace only the partitions this run writes; append: add files beside them;
    /// merge: merge this run's rows into the partitions it writes (stored rows kept, exact
    /// duplicates dropped); upsert: as merge, but where the input carries an object's
    /// property with its history, that history replaces the stored one.
    #[arg(long, value_enum, default_value_t = ModeArg::Overwrite)]
    pub mode: ModeArg,

    /// With --mode merge or upsert: remove these objects' rows from every partition. A file
    /// (or s3:// object) of object ids, one per line; ids with no rows are counted, not
    /// errors.
    #[arg(long, value_name = "PATH|s3://…", value_parser = location)]
    pub delete_objects: Option<Location>,

    /// Mapper threads [default: the number of CPU cores; twice that for s3:// inputs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Unreadable records allowed, as a count (100) or a share of those read (2.5%); past it
    /// the run publishes nothing and exits with 3. Every rejected record is listed, with its
    /// place and reason, in <output>/_skewer/rejects/<run>.ndjson.
    #[arg(long, value_name = "N|P%", default_value = "1%", value_parser = BadRecordLimit::parse)]
    pub max_bad_records: BadRecordLimit,

    /// Memory the run may use (e.g. 1GiB, 512MiB); past it reducers spill sorted runs to disk
    /// under the dataset's _skewer/staging [default: 1GiB, or a quarter of this machine's
    /// memory if less].
    #[arg(long, value_name = "SIZE", value_parser = skewer::units::parse_size)]
    pub memory_limit: Option<u64>,

    /// Carry the mappers' batches to the reducers through timely dataflow on N workers
    /// instead of channels (the exchange multi-process runs are built on; same output).
    #[arg(long, value_name = "N", hide = true,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub timely_workers: Option<u32>,

    /// ZSTD level of the Parquet files written, 1 to 22: 1 favours speed; most tools write
    /// 3 by default.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,

    /// Run on several processes (machines): a file of `host:port` lines, one a process, the
    /// same file on every one; each is started with its own --process. The output must be a
    /// folder every process sees at the same path.
    #[arg(long, value_name = "FILE", help_heading = "Several processes")]
    pub hosts: Option<PathBuf>,

    /// This process's line in --hosts, from 0 [default: $JOB_COMPLETION_INDEX, as
    /// Kubernetes Indexed Jobs set it]. Process 0 plans and publishes.
    #[arg(
        long,
        value_name = "I",
        requires = "hosts",
        help_heading = "Several processes"
    )]
    pub process: Option<usize>,

    /// Seconds the processes wait for each other to start and connect.
    #[arg(long, value_name = "SECS", default_value_t = skewer::run::CONNECT_TIMEOUT.as_secs(), requires = "hosts",
          value_parser = clap::value_parser!(u64).range(1..=86_400),
          help_heading = "Several processes")]
    pub connect_timeout: u64,

    /// Seconds a process may go silent before the run takes it for hung and fails.
    #[arg(long, value_name = "SECS", default_value_t = skewer::run::HANG_TIMEOUT.as_secs(), requires = "hosts",
          value_parser = clap::value_parser!(u64).range(2..=86_400),
          help_heading = "Several processes")]
    pub hang_timeout: u64,

    /// Print the run's manifest and figures as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// No progress bars (they are drawn on stderr only when it is a terminal).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The dataset: a folder or s3://bucket/prefix.
    #[arg(value_name = "DATASET", value_parser = location)]
    pub dataset: Location,

    #[command(flatten)]
    pub s3: S3Args,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Overwrite,
    Append,
    Merge,
    Upsert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// In proportion to the reducers' overlap with the property's share (even loads).
    Weighted,
    /// Equally among the reducers touched, as Plumbee's partitioner did (for comparison).
    Uniform,
}

impl PlanningArgs {
    fn params(&self) -> PlanParams {
        PlanParams {
            reducers: self.reducers.unwrap_or_else(cores),
            spare: self.spare,
            target_file_bytes: self.target_file_size,
            window: Window {
                runs: self.window,
                decay: self.decay,
            },
            split: match self.split {
                SplitArg::Weighted => Split::Weighted,
                SplitArg::Uniform => Split::Uniform,
            },
            drift_threshold: self.drift_threshold,
            ..PlanParams::new(1)
        }
    }
}

impl PlanArgs {
    pub fn into_config(self) -> PlanConfig {
        PlanConfig {
            history: self.history,
            inputs: self.input,
            endpoint: self.s3.endpoint,
            svg: self.svg,
            html: self.html,
            params: self.planning.params(),
            top: self.top,
            format: if self.json {
                OutputFormat::Json
            } else {
                OutputFormat::Table
            },
        }
    }
}

impl RunArgs {
    pub fn into_config(self) -> (RunConfig, OutputFormat) {
        let params = self.planning.params();
        let remote = self.input.iter().any(|i| i.starts_with("s3://"));
        let config = RunConfig {
            inputs: self.input,
            output: self.output,
            history: self.history,
            endpoint: self.s3.endpoint,
            work_dir: self.work_dir,
            part_size: self.part_size,
            progress: skewer::progress::Show::from_env(self.quiet),
            plan: None,
            // From S3 a mapper waits on each ranged GET: twice as many overlap the waits
            // with decoding (measured: map 10.2 s → 8.0 s on the default benchmark).
            mappers: self
                .threads
                .unwrap_or_else(|| cores() * if remote { 2 } else { 1 })
                as usize,
            partition: self.partition,
            delete_objects: self.delete_objects,
            mode: match self.mode {
                ModeArg::Overwrite => Mode::Overwrite,
                ModeArg::Append => Mode::Append,
                ModeArg::Merge => Mode::Merge,
                ModeArg::Upsert => Mode::Upsert,
            },
            sink: SinkOptions {
                target_file_bytes: params.target_file_bytes,
                zstd_level: self.zstd_level,
                ..SinkOptions::default()
            },
            split_bytes: skewer::input::SPLIT_BYTES,
            max_bad_records: self.max_bad_records,
            memory_limit: self
                .memory_limit
                .unwrap_or_else(skewer::run::default_memory_limit),
            exchange: match self.timely_workers {
                Some(workers) => Exchange::Timely {
                    workers: workers as usize,
                },
                None => Exchange::Channels,
            },
            cluster: self.hosts.map(|hosts| skewer::run::Cluster {
                hosts,
                process: self.process,
                connect_timeout: std::time::Duration::from_secs(self.connect_timeout),
                hang_timeout: std::time::Duration::from_secs(self.hang_timeout),
            }),
            params,
        };
        let format = if self.json {
            OutputFormat::Json
        } else {
            OutputFormat::Table
        };
        (config, format)
    }
}

/// A dataset, history or output location: `s3://bucket/prefix` (a bucket must be named) or a
/// local path, parsed once here.
fn location(text: &str) -> Result<Location, String> {
    Location::parse(text).map_err(|e| e.to_string())
}

/// One thread per core: mapping and sorting are CPU-bound.
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_REDUCERS as usize) as u32)
}

fn parse_fraction(s: &str, what: &str, lo_inclusive: bool, hi: f64) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    let above_lo = if lo_inclusive { v >= 0.0 } else { v > 0.0 };
    if above_lo && v <= hi {
        Ok(v)
    } else {
        let open = if lo_inclusive { '[' } else { '(' };
        Err(format!("{what} must be in {open}0, {hi}], got {s}"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    parse_fraction(s, "the rate", true, 1.0)
}

fn parse_hot_share(s: &str) -> Result<f64, String> {
    parse_fraction(s, "the hot share", false, 0.99)
}

fn parse_decay(s: &str) -> Result<f64, String> {
    parse_fraction(s, "the decay", false, 1.0)
}

fn parse_drift(s: &str) -> Result<f64, String> {
    parse_fraction(s, "the drift threshold", false, f64::from(MAX_REDUCERS))
}

fn parse_spare(s: &str) -> Result<f64, String> {
    parse_fraction(s, "the spare share", true, MAX_SPARE)
}

fn parse_target_size(s: &str) -> Result<u64, String> {
    match skewer::units::parse_size(s)? {
        0 => Err("the target file size must be positive".into()),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn plan_arguments_become_a_config() {
        let cli = Cli::try_parse_from([
            "skewer",
            "plan",
            "--history",
            "h",
            "-r",
            "8",
            "--window",
            "3",
            "--decay",
            "1",
            "--spare",
            "0",
            "--target-file-size",
            "1GiB",
            "--split",
            "uniform",
            "--json",
        ])
        .unwrap();
        let Command::Plan(args) = cli.command else {
            panic!("a plan command")
        };
        let cfg = args.into_config();
        assert_eq!(cfg.params.reducers, 8);
        assert_eq!(
            cfg.params.window,
            Window {
                runs: 3,
                decay: 1.0
            }
        );
        assert_eq!(cfg.params.spare, 0.0);
        assert_eq!(cfg.params.target_file_bytes, 1 << 30);
        assert_eq!(cfg.params.split, Split::Uniform);
        assert_eq!(cfg.format, OutputFormat::Json);
        assert!(cfg.params.validate().is_ok());
    }

    #[test]
    fn out_of_range_values_are_usage_errors() {
        for bad in [
            &["--reducers", "0"][..],
            &["--reducers", "65537"],
            &["--window", "0"],
            &["--decay", "0"],
            &["--decay", "1.5"],
            &["--spare", "0.6"],
            &["--spare", "-0.1"],
            &["--target-file-size", "0"],
            &["--target-file-size", "lots"],
            &["--split", "random"],
        ] {
            let mut argv = vec!["skewer", "plan", "--history", "h"];
            argv.extend_from_slice(bad);
            let err = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
