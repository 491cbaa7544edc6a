//! One run on several processes (`--hosts FILE --process I`): the same plan, the same
//! bytes as one process, one publish.
//!
//! ```text
//!  every process: discover the inputs ─► rendezvous: same version, inputs, options, hosts?
//!  process 0, in the rendezvous: lock, recover, plan, split ─► {run id, plan, splits} to all
//!  every process: its splits (cluster::assign, by size) ─► mappers ─► timely exchange over
//!                 the mesh ─► the reducers it owns ─► files in the run's staging (shared)
//!  processes 1…N-1: counts and files to process 0 ─► process 0: counts over the whole job,
//!                 manifest, history, publish ─► the verdict to all
//! ```
//!
//! Takes a [`RunConfig`] with [`Cluster`] set; gives process 0 the run's summary, and every
//! other process what it did ([`Joined`]). Fail-stop: a process that dies or goes silent is
//! named by the heartbeats of [`crate::cluster::Control`], and every process then exits at
//! once (the exchange cannot go on without it); nothing is published, and the next run
//! recovers or removes what was staged. A process that fails cleanly (bad input, a full disk)
//! reports its error to process 0, which fails the run with it.
//!
//! Everything a process reads from another is checked before it is used: reducers only
//! from their owner, each once; files only under the run's staging; property ids of the
//! plan.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use planner::Plan;
use serde::{Deserialize, Serialize};

use super::dataflow::Workers;
use super::threads::{MapReduced, ReduceOn};
use super::{Deletes, Opened, PlanSource, Planned, RunConfig, RunSummary};
use crate::cluster::{self, Control, Hosts};
use crate::error::{Error, Result};
use crate::input::{self, Split};
use crate::map::Mapped;
use crate::reduce::Reduced;
use crate::route::PropertyTable;
use crate::store::Stores;
use crate::store::meta::Recovery;
use crate::units::now_ms;

/// How this process joins a multi-process run.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The host file: one `host:port` a line, the same on every process.
    pub hosts: PathBuf,
    /// `--process`; else `JOB_COMPLETION_INDEX` is read.
    pub process: Option<usize>,
    /// How long processes wait for each other to start and connect.
    pub connect_timeout: Duration,
    /// How long a process may stay silent before the run takes it for hung.
    pub hang_timeout: Duration,
}

/// The default `--connect-timeout`: pods of an Indexed Job start minutes apart when an
/// image is pulled.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(300);
/// The default `--hang-timeout`.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a process says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a process waits for a report or the verdict: the heartbeats, not this, catch a
/// process that died or hangs.
const PATIENCE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The exit status of a process that stops because another failed.
const EXIT_PEER_FAILED: i32 = 1;
/// The file process 0 writes into the run's staging, for the others to prove they see the
/// same folder.
const SHARED_MARK: &str = "_cluster";

/// What a run gave this process.
#[derive(Debug)]
pub enum Ran {
    /// Process 0 (or a run on one process): the published run.
    Published(Box<RunSummary>),
    /// Another process: its share of the run process 0 published.
    Joined(Joined),
}

/// What a process other than 0 did in the run process 0 published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Joined {
    pub process: usize,
    pub processes: usize,
    pub run_id: String,
    /// Splits it read.
    pub splits: usize,
    pub records: u64,
    /// Rows its mappers routed.
    pub rows_routed: u64,
    /// The reducers it ran.
    pub reducers: Vec<u32>,
    /// Rows its reducers received (from every process).
    pub rows_reduced: u64,
    pub files: usize,
    pub bytes: u64,
    pub wall_ms: u64,
}

/// What process 0 sends everyone at the rendezvous.
#[derive(Serialize, Deserialize)]
struct Start {
    run_id: String,
    started_ms: i64,
    plan: Plan,
    splits: Vec<Split>,
    staging: PathBuf,
}

/// What a process reports to process 0 once its reducers have written.
#[derive(Serialize, Deserialize)]
struct Report {
    outcome: std::result::Result<Work, String>,
}

#[derive(Serialize, Deserialize)]
struct Work {
    mapped: Vec<Mapped>,
    reduced: Vec<Reduced>,
    /// The reporting process's property names by id (its ids are its own).
    names: Vec<Arc<str>>,
}

/// What process 0 tells the others once they have reported.
#[derive(Serialize, Deserialize)]
enum Order {
    /// Upload the files you staged (a dataset in S3: each process staged on its own disk);
    /// answered with [`Uploaded`].
    Upload,
    /// The last word: the run id published, or why nothing was.
    Verdict(std::result::Result<String, String>),
}

#[derive(Serialize, Deserialize)]
struct Uploaded {
    outcome: std::result::Result<(), String>,
}

/// Whether every process stages into the one output folder (else each stages on its own
/// disk and uploads when process 0 asks).
fn shared_staging(config: &RunConfig) -> bool {
    matches!(config.output, crate::store::Location::Local(_))
}

/// Runs this process's part of a multi-process run.
pub fn run(config: &RunConfig, cluster: &Cluster) -> Result<Ran> {
    refuse_unsupported(config)?;
    let t0 = Instant::now();
    let started_ms = now_ms();
    let hosts = Hosts::read(&cluster.hosts)?;
    let env = std::env::var(cluster::INDEX_ENV).ok();
    let index = cluster::process_index(cluster.process, env.as_deref(), &hosts)?;
    let stores = Stores::with_endpoint(config.endpoint.clone());
    let files = input::discover(&config.inputs, &stores)?;
    let job = super::cluster_job(config, &files);
    tracing::info!(
        process = index,
        processes = hosts.len(),
        "meeting the other processes"
    );

    let mut planned: Option<Planned> = None;
    let meeting = cluster::rendezvous(&hosts, index, &job, cluster.connect_timeout, &mut || {
        let p = super::plan_phase(config, t0, started_ms)?;
        if super::cluster_job(config, &p.opened.files) != job {
            return Err(p.discard(Error::Config(
                "the inputs changed while the processes met: run again once they are complete"
                    .into(),
            )));
        }
        if shared_staging(config) {
            // The others prove they see this folder by reading the mark back.
            std::fs::create_dir_all(&p.staging).map_err(|e| Error::io(&p.staging, e))?;
            let mark = p.staging.join(SHARED_MARK);
            std::fs::write(&mark, &p.run_id).map_err(|e| Error::io(&mark, e))?;
        }
        let start = Start {
            run_id: p.run_id.clone(),
            started_ms,
            plan: (*p.plan).clone(),
            splits: p.splits.clone(),
            staging: p.staging.clone(),
        };
        planned = Some(p);
        serde_json::to_string(&start).map_err(|e| Error::Bug(format!("the start: {e}")))
    })?;
    let mut control = meeting.control;
    // Process 0's lock moves where a stop from another thread can release it.
    let stopper = Arc::new(Stopper {
        lock: std::sync::Mutex::new(planned.as_mut().and_then(|p| p.opened.lock.take())),
        settled: AtomicBool::new(false),
    });
    quiet_lost_exchange(index, stopper.clone());
    let stop = stopper.clone();
    control.watch(
        HEARTBEAT,
        cluster.hang_timeout,
        Arc::new(move |e: &Error| stop.stop(&format!("{e}"))),
    );
    let planned = match planned {
        Some(p) => p,
        None => match joined_plan(config, &hosts, index, &meeting.payload, files, stores, t0) {
            Ok(p) => p,
            Err(e) => {
                // Process 0 is told at once, and why: it stops the run.
                control.fail(&e.to_string());
                return Err(e);
            }
        },
    };
    let work = || -> Result<(MapReduced, Vec<usize>, usize)> {
        let weights = super::threads::split_weights(&planned.opened.files, &planned.splits);
        let owner = cluster::assign(&weights, hosts.len());
        let mine: Vec<Split> = planned
            .splits
            .iter()
            .zip(&owner)
            .filter(|&(_, &p)| p == index)
            .map(|(s, _)| s.clone())
            .collect();
        let splits = mine.len();
        let mesh = cluster::mesh(&hosts, index, &planned.run_id, cluster.connect_timeout)?;
        crate::store::meta::fail_point("cluster:meshed");
        let workers = Workers {
            threads: exchange_threads(config),
            process: index,
            mesh,
        };
        let reducers = planned.table.plan().reducers();
        let owners = (0..reducers).map(|r| workers.owner(r)).collect();
        let stages = super::map_reduce(config, &planned, mine, ReduceOn::Timely(workers))?;
        crate::store::meta::fail_point("cluster:reduced");
        Ok((stages, owners, splits))
    };
    let worked = work();
    if index == 0 {
        let ran = lead(config, &control, &hosts, &stopper, planned, worked);
        drop(stopper.lock.lock().map(|mut l| l.take()));
        ran
    } else {
        follow(&control, &hosts, &stopper, &planned, index, worked, t0)
    }
}

/// What stops this process when another fails: the dataset's lock (process 0's), released
/// first, so that the next run does not find it held by a process that is gone (a lock in
/// S3 outlives its process); and whether the run is settled (every report and upload in),
/// after which the loss of a process changes nothing and stops nothing.
struct Stopper {
    lock: std::sync::Mutex<Option<crate::store::DatasetLock>>,
    settled: AtomicBool,
}

impl Stopper {
    /// Ends the process with `why`, unless the run is settled. Called from the thread that
    /// found the failure while the run may be blocked elsewhere (the exchange waits on the
    /// process that went), so it exits rather than unwinds; what was staged is removed by
    /// the next run.
    fn stop(&self, why: &str) {
        if self.settled.load(Relaxed) {
            tracing::warn!("after the run settled: {why}");
            return;
        }
        if let Ok(mut lock) = self.lock.try_lock() {
            drop(lock.take());
        }
        eprintln!("error: {why}");
        std::process::exit(EXIT_PEER_FAILED);
    }

    fn settle(&self) {
        self.settled.store(true, Relaxed);
    }
}

/// Makes a lost exchange link (timely's network threads panic when a peer's socket closes)
/// end this process with one line instead of a panic's backtrace, after a moment in which
/// the heartbeats can name the process that went (their message is the better one).
fn quiet_lost_exchange(index: usize, stopper: Arc<Stopper>) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let network = thread
            .name()
            .is_some_and(|n| n.starts_with("timely:send") || n.starts_with("timely:recv"));
        if !network {
            return default(info);
        }
        std::thread::sleep(Duration::from_millis(500));
        stopper.stop(&format!(
            "process {index} lost its exchange link to another process ({}); nothing was \
             published",
            crate::error::panic_message(info.payload())
        ));
    }));
}

/// What a multi-process run cannot do yet, refused before any process waits for another.
fn refuse_unsupported(config: &RunConfig) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::Config(format!(
            "{what} cannot run on several processes yet: run it without --hosts"
        )))
    };
    if config.mode.merges() {
        return refuse("--mode merge and upsert");
    }
    if config.plan.is_some() {
        return refuse("a replay");
    }
    Ok(())
}

/// Timely worker threads per process: `--timely-workers`, else one (a worker only routes
/// and buffers; the writes run on their own threads). The same on every process: the
/// rendezvous compares it, as reducer `r` lives on worker `r % (threads × processes)`.
fn exchange_threads(config: &RunConfig) -> usize {
    match config.exchange {
        super::Exchange::Timely { workers } => workers.max(1),
        super::Exchange::Channels => 1,
    }
}

/// A process other than 0: the run as process 0 planned it, in the staging every process
/// must see.
fn joined_plan(
    config: &RunConfig,
    hosts: &Hosts,
    index: usize,
    payload: &str,
    files: Vec<input::InputFile>,
    stores: Stores,
    t0: Instant,
) -> Result<Planned> {
    let from_0 = |reason: String| Error::Cluster {
        process: 0,
        address: hosts.addresses[0].clone(),
        reason,
    };
    let start: Start = serde_json::from_str(payload)
        .map_err(|e| from_0(format!("sent a start this process cannot read: {e}")))?;
    crate::store::meta::check_run_id(&start.run_id).map_err(from_0)?;
    for s in &start.splits {
        let (file, ordered) = match *s {
            Split::Lines { file, start, end } => (file, start <= end),
            Split::RowGroups { file, start, end } => (file, start <= end),
            Split::Whole { file } => (file, true),
        };
        if file >= files.len() || !ordered {
            return Err(from_0(format!(
                "sent a split this process cannot read ({s:?} of {} input files)",
                files.len()
            )));
        }
    }
    let options = crate::store::Options {
        part_bytes: Some(config.part_size),
        work_dir: config.work_dir.clone(),
    };
    let dataset = crate::store::open(&config.output, &stores, &options)?;
    let staging = dataset.staging()?.staging(&start.run_id);
    if !shared_staging(config) {
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    let mark = staging.join(SHARED_MARK);
    let seen = std::fs::read_to_string(&mark).unwrap_or_default();
    if shared_staging(config) && (staging != start.staging || seen != start.run_id) {
        return Err(Error::Config(format!(
            "process {index} cannot see the run's staging folder {} that process 0 made: \
             every process of a run writes into the same output, a folder they all mount at \
             the same path",
            start.staging.display()
        )));
    }
    let plan = Arc::new(start.plan);
    let predicted = plan.stats();
    Ok(Planned {
        t0,
        started_ms: start.started_ms,
        run_id: start.run_id,
        partition: config
            .partition
            .as_deref()
            .map(crate::layout::partition_path)
            .transpose()?,
        opened: Opened {
            stores,
            files,
            dataset,
            lock: None,
            recovery: Recovery::default(),
        },
        deletes: Deletes {
            listed: Vec::new(),
            all: std::sync::OnceLock::new(),
        },
        splits: start.splits,
        table: Arc::new(PropertyTable::new(plan.clone())),
        plan,
        plan_source: PlanSource::Given {
            what: "process 0".into(),
        },
        drift: None,
        predicted,
        planned_at: Instant::now(),
        staging,
    })
}

/// Process 0: gathers every process's report, checks and publishes the whole run, and tells
/// everyone how it ended.
fn lead(
    config: &RunConfig,
    control: &Control,
    hosts: &Hosts,
    stopper: &Stopper,
    planned: Planned,
    worked: Result<(MapReduced, Vec<usize>, usize)>,
) -> Result<Ran> {
    let processes = control.processes();
    // Every report is awaited, failed or not, so that no process is cut off mid-write.
    let mut reports = Vec::with_capacity(processes);
    for p in 1..processes {
        reports.push((p, control.recv::<Report>(p, PATIENCE)));
    }
    if shared_staging(config) {
        // Every file is in place: from here on only process 0 works.
        stopper.settle();
    }
    let gathered = worked.and_then(|(mut stages, owners, _)| {
        gather(&planned, &mut stages, &owners, reports, hosts)?;
        Ok((stages, owners))
    });
    // Asked of the publish once the run's intent names every file (a dataset in S3).
    let others = || -> Result<()> {
        if shared_staging(config) {
            return Ok(());
        }
        // Every process told to upload is waited for, whatever the others do: none may
        // still be uploading once the publish gives up and deletes what its intent names.
        let mut first = None;
        let mut told = Vec::new();
        for p in 1..processes {
            match control.send(p, &Order::Upload) {
                Ok(()) => told.push(p),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        for p in told {
            let answer = control.recv::<Uploaded>(p, PATIENCE).and_then(|u| {
                u.outcome.map_err(|e| Error::Cluster {
                    process: p,
                    address: hosts.addresses[p].clone(),
                    reason: format!("could not upload its files: {}", e.trim_end_matches('.')),
                })
            });
            if let Err(e) = answer {
                first.get_or_insert(e);
            }
        }
        stopper.settle();
        first.map_or(Ok(()), Err)
    };
    // `finish` removes what was staged if it fails before publishing.
    let outcome = match gathered {
        Ok((stages, owners)) => {
            let shared = super::Shared {
                owners: &owners,
                others: &others,
            };
            super::finish(config, planned, stages, Some(shared))
        }
        Err(e) => Err(planned.discard(e)),
    };
    let verdict = Order::Verdict(match &outcome {
        Ok(summary) => Ok(summary.manifest.run_id.clone()),
        Err(e) => Err(e.to_string()),
    });
    for p in 1..processes {
        let _ = control.send(p, &verdict);
    }
    control.close();
    outcome.map(|summary| Ran::Published(Box::new(summary)))
}

/// Adds the other processes' reports to process 0's `stages`, checking each: its reducers
/// are its own, each reported once, every file under the run's staging, property ids of the
/// plan.
fn gather(
    planned: &Planned,
    stages: &mut MapReduced,
    owners: &[usize],
    reports: Vec<(usize, Result<Report>)>,
    hosts: &Hosts,
) -> Result<()> {
    let mut failure = None;
    for (p, report) in reports {
        let bad = |reason: String| Error::Cluster {
            process: p,
            address: hosts.addresses[p].clone(),
            reason,
        };
        let mut work = match report.and_then(|r| {
            r.outcome
                .map_err(|e| bad(format!("failed: {}", e.trim_end_matches('.'))))
        }) {
            Ok(work) => work,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        for r in &mut work.reduced {
            if owners.get(r.reducer as usize) != Some(&p) {
                return Err(bad(format!(
                    "reported reducer {}, which it does not own",
                    r.reducer
                )));
            }
            for (property, out) in &mut r.properties {
                // Its ids become process 0's, by name.
                let Some(name) = work.names.get(*property as usize) else {
                    return Err(bad(format!(
                        "reported property {property} of the {} it named",
                        work.names.len()
                    )));
                };
                *property = planned.table.intern(name);
                // Reported relative to the reporter's staging: placed in this one's.
                for f in &mut out.files {
                    let partition = planned.partition.as_deref();
                    if !is_run_file(&f.path, &planned.run_id, partition, name) {
                        return Err(bad(format!(
                            "reported a file that is not one of this run's for property \
                             {name:?}: {}",
                            f.path.display()
                        )));
                    }
                    f.path = planned.staging.join(&f.path);
                    // Its partition folder, for the publish to know it swaps it.
                    if let Some(dir) = f.path.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                    }
                }
            }
        }
        stages.mapped.extend(work.mapped);
        stages.reduced.extend(work.reduced);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    stages.reduced.sort_by_key(|r| r.reducer);
    let reported: Vec<u32> = stages.reduced.iter().map(|r| r.reducer).collect();
    let expected: Vec<u32> = (0..owners.len() as u32).collect();
    if reported != expected {
        return Err(Error::Cluster {
            process: 0,
            address: hosts.addresses[0].clone(),
            reason: format!(
                "the processes reported reducers {reported:?}, not each of 0 to {} once",
                owners.len().saturating_sub(1)
            ),
        });
    }
    Ok(())
}

/// Whether `rel` (a reported file, relative to the staging) is one a reducer of run `run`
/// writes for `property` under the run's `partition`: exactly
/// `[<partition>/]<layout::property_dir>/part-<run>-….parquet`, so that nothing a report
/// says can name another run's file, skewer's own or anything outside.
fn is_run_file(rel: &std::path::Path, run: &str, partition: Option<&str>, property: &str) -> bool {
    let folder = crate::layout::property_dir(property);
    let folder = match partition {
        Some(p) => format!("{p}/{folder}"),
        None => folder,
    };
    let Some((dir, file)) = rel.to_str().and_then(|r| r.rsplit_once('/')) else {
        return false;
    };
    dir == folder
        && file.starts_with(&format!("part-{run}-"))
        && file.ends_with(".parquet")
        && !file.contains(['\\', '\0'])
}

/// A process other than 0: reports to process 0, and waits for its verdict.
fn follow(
    control: &Control,
    hosts: &Hosts,
    stopper: &Stopper,
    planned: &Planned,
    index: usize,
    worked: Result<(MapReduced, Vec<usize>, usize)>,
    t0: Instant,
) -> Result<Ran> {
    // An input that changed while this process read it was read in part.
    let worked = worked.and_then(|w| input::check_unchanged(&planned.opened.files).map(|()| w));
    let (report, joined) = match worked {
        Ok((stages, _, splits)) => {
            let joined = Joined {
                process: index,
                processes: control.processes(),
                run_id: planned.run_id.clone(),
                splits,
                records: stages.mapped.iter().map(|m| m.counts.records).sum(),
                rows_routed: stages.mapped.iter().map(|m| m.counts.rows).sum(),
                reducers: stages.reduced.iter().map(|r| r.reducer).collect(),
                rows_reduced: stages.reduced.iter().map(|r| r.rows_in).sum(),
                files: stages
                    .reduced
                    .iter()
                    .flat_map(|r| &r.properties)
                    .map(|(_, o)| o.files.len())
                    .sum(),
                bytes: stages
                    .reduced
                    .iter()
                    .flat_map(|r| &r.properties)
                    .map(|(_, o)| o.bytes)
                    .sum(),
                wall_ms: 0,
            };
            // Files go by their place in the staging: process 0's may be elsewhere.
            let mut reduced = stages.reduced;
            let mut keys = Vec::new();
            let files = reduced.iter_mut().flat_map(|r| &mut r.properties);
            for f in files.flat_map(|p| &mut p.1.files) {
                let rel = f.path.strip_prefix(&planned.staging).map_err(|_| {
                    Error::Bug(format!(
                        "a file written outside the staging: {}",
                        f.path.display()
                    ))
                })?;
                let rel = rel.to_path_buf();
                keys.push(rel.to_string_lossy().into_owned());
                f.path = rel;
            }
            let work = Work {
                mapped: stages.mapped,
                reduced,
                names: planned.table.names(),
            };
            (Report { outcome: Ok(work) }, Ok((joined, keys)))
        }
        Err(e) => (
            Report {
                outcome: Err(e.to_string()),
            },
            Err(e),
        ),
    };
    control.send(0, &report)?;
    let verdict = loop {
        match control.recv::<Order>(0, PATIENCE) {
            Ok(Order::Upload) => {
                let keys = joined.as_ref().map_or(&[][..], |(_, keys)| &keys[..]);
                // Test hook: a process that says it uploaded what it did not.
                let lie = std::env::var("SKEWER_FAIL_AT").is_ok_and(|p| p == "cluster:no-upload");
                let uploaded = match lie {
                    true => Ok(()),
                    false => planned.opened.dataset.upload_staged(&planned.run_id, keys),
                };
                let answer = Uploaded {
                    outcome: uploaded.map_err(|e| e.to_string()),
                };
                control.send(0, &answer)?;
            }
            Ok(Order::Verdict(verdict)) => {
                stopper.settle();
                break Ok(verdict);
            }
            Err(e) => break Err(e),
        }
    };
    control.close();
    let (mut joined, _) = joined?;
    match verdict? {
        Ok(run) if run == joined.run_id => {
            joined.wall_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            Ok(Ran::Joined(joined))
        }
        Ok(other) => Err(Error::Bug(format!(
            "process 0 published run {other}, not {}",
            joined.run_id
        ))),
        Err(reason) => Err(Error::Cluster {
            process: 0,
            address: hosts.addresses[0].clone(),
            reason: format!("failed the run: {}", reason.trim_end_matches('.')),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A file another process reports must be one of this run's, for its property, inside
    /// the staging: nothing it says can name another run's file or skewer's own.
    #[test]
    fn only_this_runs_files_for_their_property_are_taken_from_a_report() {
        let run = "20261202T140000.000Z-abcd";
        let ok = |rel: &str, property: &str| is_run_file(Path::new(rel), run, None, property);
        let ok_in = |rel: &str, property: &str| {
            is_run_file(Path::new(rel), run, Some("dt=2026-12-01"), property)
        };
        assert!(ok(
            &format!("property_name=email/part-{run}-r3.parquet"),
            "email"
        ));
        assert!(ok_in(
            &format!("dt=2026-12-01/property_name=email/part-{run}-r3-2.parquet"),
            "email"
        ));
        // Not the run's partition.
        assert!(!ok(
            &format!("dt=2026-12-01/property_name=email/part-{run}-r3-2.parquet"),
            "email"
        ));
        assert!(!ok_in(
            &format!("property_name=email/part-{run}-r3.parquet"),
            "email"
        ));
        assert!(ok(
            &format!("property_name=a%2Fb/part-{run}-r0.parquet"),
            "a/b"
        ));
        for bad in [
            format!("property_name=email/part-{run}-r3.parquet.tmp"),
            format!("property_name=phone/part-{run}-r3.parquet"),
            "property_name=email/part-20250101T000000.000Z-0000-r3.parquet".to_string(),
            format!("_skewer/property_name=email/part-{run}-r3.parquet"),
            format!("../property_name=email/part-{run}-r3.parquet"),
            format!("/tmp/property_name=email/part-{run}-r3.parquet"),
            format!("part-{run}-r3.parquet"),
            String::new(),
        ] {
            assert!(!ok(&bad, "email"), "{bad:?} was taken");
        }
    }
}
