//! The one-machine driver: the map and reduce stages on threads, joined by bounded channels.
//!
//! ```text
//!  splits ─► queue ─► M mapper threads (map::Mapper) ══ R bounded channels ══► R reducer threads
//!                                                                             (reduce::Reducer)
//!                     when every reducer has its rows: its write jobs (a merge first gathers
//!                     each property's jobs into one, with its stored files) go to the
//!                     WritePool; R writer threads take their own, then others' ─► staging
//! ```
//!
//! Takes the inputs, the splits, the plan's property table and a staging folder; gives what
//! each mapper and reducer counted. A failing stage stops the others (mappers stop taking
//! splits, reducers write nothing); the first error is returned. Files written are synced
//! by two syncing threads, joined before this returns.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::MemoryPlan;
use crate::batch::Rows;
use crate::error::{Error, Result};
use crate::input::{InputFile, Split};
use crate::map::{Mapped, Mapper};
use crate::progress::Progress;
use crate::reduce::{self, Reduced, Reducer, Staging, WritePool};
use crate::route::{Batches, CHANNEL_BATCHES, PropertyTable};

/// What the map and reduce stages gave.
#[derive(Debug)]
pub struct MapReduced {
    pub mapped: Vec<Mapped>,
    pub reduced: Vec<Reduced>,
    /// When the last mapper finished.
    pub mapped_at: Instant,
}

/// What a run's stages share: inputs, plan, memory, staging, progress.
pub struct Job<'a> {
    pub files: &'a [InputFile],
    /// Shared (an `Arc`) with the timely workers, which intern the names other processes'
    /// batches carry.
    pub table: &'a std::sync::Arc<PropertyTable>,
    pub memory: MemoryPlan,
    pub mappers: usize,
    pub staging: Staging<'a>,
    pub spill_dir: &'a Path,
    pub progress: &'a Progress,
    /// Whether mappers send the `(property, object)` pairs carried as histories (an upsert
    /// replaces their stored rows).
    pub histories: bool,
    /// Rearranges the reducers' write jobs (one list per reducer, in its order) before they
    /// are written, knowing what the mappers met: a merge gathers each property's jobs into
    /// one, and drops the objects the input's events deleted. `None`: as they are.
    pub arrange: Option<&'a Arrange<'a>>,
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("files", &self.files.len())
            .field("memory", &self.memory)
            .field("mappers", &self.mappers)
            .field("staging", &self.staging)
            .field("arranged", &self.arrange.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`Job::arrange`] does.
pub type Arrange<'a> =
    dyn Fn(&[Mapped], Vec<Vec<reduce::Job>>) -> Result<Vec<Vec<reduce::Job>>> + Sync + 'a;

/// How the mappers' batches reach the reducers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// A bounded channel per reducer, a thread per reducer.
    Channels,
    /// Through timely dataflow's exchange, to reducers owned by `workers` timely workers
    /// (`run::dataflow`): what multi-process runs build on.
    Timely { workers: usize },
}

/// Where the reducers run, as [`execute`] is given it: [`Exchange`] with, for timely, the
/// workers (and, across processes, the sockets to the others).
#[derive(Debug)]
pub enum ReduceOn {
    Channels,
    Timely(super::dataflow::Workers),
}

impl From<Exchange> for ReduceOn {
    fn from(exchange: Exchange) -> ReduceOn {
        match exchange {
            Exchange::Channels => ReduceOn::Channels,
            Exchange::Timely { workers } => {
                ReduceOn::Timely(super::dataflow::Workers::local(workers))
            }
        }
    }
}

impl ReduceOn {
    /// Whether reducer `r`'s rows end on this process.
    pub fn owns(&self, r: u32) -> bool {
        match self {
            ReduceOn::Channels => true,
            ReduceOn::Timely(w) => w.owns(r),
        }
    }
}

/// The reduce side while the mappers run: a thread per reducer, or the timely workers.
enum Reducing<'s> {
    Threads(Vec<std::thread::ScopedJoinHandle<'s, Result<Received>>>),
    Timely(std::thread::ScopedJoinHandle<'s, Result<Vec<Received>>>),
}

/// Runs the mappers and reducers over `splits`, the batches carried as `on` says; staged
/// files are under `job.staging` when this returns `Ok`. Across processes, `splits` are this
/// process's, and what is given back are its mappers and the reducers it owns.
pub fn execute(job: &Job<'_>, splits: Vec<Split>, on: ReduceOn) -> Result<MapReduced> {
    let reducers = job.table.plan().reducers() as usize;
    let (split_tx, split_rx) = crossbeam_channel::unbounded();
    let weights = split_weights(job.files, &splits);
    for s in splits.into_iter().zip(weights) {
        split_tx.send(s).expect("the queue is open");
    }
    drop(split_tx);
    let pool = WritePool::new(reducers);
    // Set when a mapper fails: the others stop taking splits, reducers write nothing.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Files are synced while the reducers go on; waiting on the disk is not CPU time.
        let (syncer, syncers) = crate::sink::Syncer::start(scope, 2);
        let staging = Staging {
            syncer: Some(syncer),
            ..job.staging.clone()
        };
        let (reducing, outputs): (Reducing<'_>, Vec<Box<dyn Batches + Send + '_>>) = match on {
            ReduceOn::Channels => {
                let (senders, receivers): (Vec<Sender<Rows>>, Vec<Receiver<Rows>>) = (0..reducers)
                    .map(|_| crossbeam_channel::bounded(CHANNEL_BATCHES))
                    .unzip();
                let handles = receivers
                    .into_iter()
                    .enumerate()
                    .map(|(r, rx)| {
                        let (stop, pool) = (&stop, &pool);
                        scope.spawn(move || {
                            let received = reduce_thread(job, r as u32, rx);
                            if received.is_err() {
                                stop.store(true, Relaxed);
                                pool.fail();
                            }
                            received
                        })
                    })
                    .collect();
                let outputs = (0..job.mappers.max(1))
                    .map(|_| Box::new(senders.clone()) as Box<dyn Batches + Send + '_>)
                    .collect();
                (Reducing::Threads(handles), outputs)
            }
            ReduceOn::Timely(workers) => {
                let (feed, fed) = crossbeam_channel::bounded(CHANNEL_BATCHES * workers.threads);
                let local: Vec<bool> = (0..reducers as u32).map(|r| workers.owns(r)).collect();
                let (stop, pool) = (&stop, &pool);
                let handle = scope.spawn(move || {
                    let received = super::dataflow::reduce(job, fed, workers);
                    if received.is_err() {
                        stop.store(true, Relaxed);
                        pool.fail();
                    }
                    received
                });
                let outputs = (0..job.mappers.max(1))
                    .map(|_| {
                        let feed =
                            super::dataflow::Feed::new(feed.clone(), job.table, local.clone());
                        Box::new(feed) as Box<dyn Batches + Send + '_>
                    })
                    .collect();
                (Reducing::Timely(handle), outputs)
            }
        };
        let mapper_handles: Vec<_> = outputs
            .into_iter()
            .map(|out| {
                let split_rx = split_rx.clone();
                let (stop, pool) = (&stop, &pool);
                scope.spawn(move || {
                    let mapped = map_thread(job, split_rx, out, stop);
                    if mapped.is_err() {
                        stop.store(true, Relaxed);
                        pool.fail();
                    }
                    mapped
                })
            })
            .collect();

        let mut first_error = None;
        let mapped: Vec<Mapped> = mapper_handles
            .into_iter()
            .filter_map(|h| keep(&mut first_error, joined(h.join(), "mapper")))
            .collect();
        let mapped_at = Instant::now();
        let mut received: Vec<Received> = match reducing {
            Reducing::Threads(handles) => handles
                .into_iter()
                .filter_map(|h| keep(&mut first_error, joined(h.join(), "reducer")))
                .collect(),
            Reducing::Timely(handle) => {
                keep(&mut first_error, joined(handle.join(), "timely")).unwrap_or_default()
            }
        };
        if first_error.is_none() {
            // Every reducer's list, in reducer order (empty for those another process owns).
            let mut jobs: Vec<Vec<reduce::Job>> = (0..reducers).map(|_| Vec::new()).collect();
            for r in &mut received {
                jobs[r.reducer as usize] = std::mem::take(&mut r.jobs);
            }
            let arranged = match job.arrange {
                Some(arrange) => arrange(&mapped, jobs),
                None => Ok(jobs),
            };
            if let Some(jobs) = keep(&mut first_error, arranged) {
                for (r, jobs) in jobs.into_iter().enumerate() {
                    pool.publish(r, jobs);
                }
                // A writer per reducer held here, starting with its own jobs.
                let writers: Vec<_> = received
                    .iter()
                    .map(|r| r.reducer as usize)
                    .map(|r| {
                        let (staging, pool) = (staging.clone(), &pool);
                        scope.spawn(move || write_thread(job, r, &staging, pool))
                    })
                    .collect();
                for h in writers {
                    keep(&mut first_error, joined(h.join(), "writer"));
                }
            }
        }
        drop(staging);
        // Every file written is on stable storage once its syncing thread is joined.
        for h in syncers {
            keep(&mut first_error, joined(h.join(), "syncing"));
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((mapped, received, mapped_at)),
        }
    })
    .map(|(mapped, received, mapped_at)| MapReduced {
        mapped,
        reduced: reduced(received, pool),
        mapped_at,
    })
}

/// Input bytes a split stands for, for progress: its range, or its share of its file.
pub(super) fn split_weights(files: &[InputFile], splits: &[Split]) -> Vec<u64> {
    let mut per_file = vec![0u64; files.len()];
    for s in splits {
        if let Split::Whole { file } | Split::RowGroups { file, .. } = *s {
            per_file[file] += 1;
        }
    }
    splits
        .iter()
        .map(|s| match *s {
            Split::Lines { start, end, .. } => end - start,
            Split::Whole { file } | Split::RowGroups { file, .. } => {
                files[file].size / per_file[file].max(1)
            }
        })
        .collect()
}

/// Each reducer's rows in and its writes, whichever thread did them.
fn reduced(received: Vec<Received>, pool: WritePool) -> Vec<Reduced> {
    let mut written = pool.into_written();
    received
        .into_iter()
        .map(|r| {
            let w = std::mem::take(&mut written[r.reducer as usize]);
            let end = w.finished.unwrap_or_else(Instant::now);
            Reduced {
                reducer: r.reducer,
                rows_in: r.rows_in,
                merged: {
                    let mut m = w.merged;
                    m.duplicates += r.spilled.duplicates;
                    m
                },
                spilled_bytes: r.spilled.bytes,
                properties: w.properties,
                wall: end.saturating_duration_since(r.started),
            }
        })
        .collect()
}

/// What a reducer received before the write phase.
pub(super) struct Received {
    reducer: u32,
    rows_in: u64,
    spilled: crate::reduce::Spilled,
    /// When its first row arrived.
    started: Instant,
    /// Its write jobs, in its order.
    jobs: Vec<reduce::Job>,
}

/// `result`'s value, or `None` with its error kept in `first` (if it is the first).
fn keep<T>(first: &mut Option<Error>, result: Result<T>) -> Option<T> {
    result.map_err(|e| first.get_or_insert(e)).ok()
}

fn joined<T>(result: std::thread::Result<Result<T>>, what: &str) -> Result<T> {
    match result {
        Ok(r) => r,
        Err(panic) => Err(Error::Bug(format!(
            "a {what} thread panicked: {}",
            crate::error::panic_message(panic.as_ref())
        ))),
    }
}

fn map_thread<'a>(
    job: &Job<'a>,
    splits: Receiver<(Split, u64)>,
    out: Box<dyn Batches + Send + 'a>,
    stop: &AtomicBool,
) -> Result<Mapped> {
    let mut mapper =
        Mapper::new(job.files, job.table, out, job.memory.batch_rows).with_histories(job.histories);
    let progress = job.progress;
    let (mut records, mut rows) = (0, 0);
    for (split, weight) in splits.iter() {
        mapper.map(&split)?;
        let c = mapper.counts();
        let (r, n) = (c.records + c.rejected, c.rows);
        progress.bytes_read.fetch_add(weight, Relaxed);
        progress.records_read.fetch_add(r - records, Relaxed);
        progress.rows_routed.fetch_add(n - rows, Relaxed);
        (records, rows) = (r, n);
        if mapper.stopped() || stop.load(Relaxed) {
            break;
        }
    }
    Ok(mapper.finish())
}

fn reduce_thread(job: &Job<'_>, reducer: u32, batches: Receiver<Rows>) -> Result<Received> {
    let mut state = Reducer::new(
        job.memory.reducer_budget,
        job.spill_dir.join(format!("r{reducer}")),
    );
    let mut first_row: Option<Instant> = None;
    for batch in batches.iter() {
        first_row.get_or_insert_with(Instant::now);
        // On an error (a full spill disk) the receiver drops: mappers stop, the run fails.
        state.add(&batch)?;
    }
    Ok(received(job, reducer, state, first_row))
}

/// What reducer `reducer` (`state`, its first row at `first_row`) hands the write phase.
pub(super) fn received(
    job: &Job<'_>,
    reducer: u32,
    state: Reducer,
    first_row: Option<Instant>,
) -> Received {
    let started = first_row.unwrap_or_else(Instant::now);
    let rows_in = state.rows();
    let order = state.write_order(&job.table.names());
    let (jobs, spilled) = state.into_jobs(order);
    tracing::debug!(
        reducer,
        rows = rows_in,
        spilled_bytes = spilled.bytes,
        "reducer received its rows"
    );
    Received {
        reducer,
        rows_in,
        spilled,
        started,
        jobs,
    }
}

/// Writes reducer `reducer`'s jobs, then any other reducer's left in the pool.
fn write_thread(
    job: &Job<'_>,
    reducer: usize,
    staging: &Staging<'_>,
    pool: &WritePool,
) -> Result<()> {
    let names = job.table.names();
    while let Some(taken) = pool.next(reducer) {
        let (p, rows) = (taken.job.property, taken.job.received());
        match staging.write(&taken.job, taken.owner, &names[p as usize]) {
            Ok((merged, out)) => pool.done(&taken, out, merged),
            Err(e) => {
                pool.fail();
                return Err(e);
            }
        }
        job.progress.rows_written.fetch_add(rows, Relaxed);
        job.progress.files_written.fetch_add(1, Relaxed);
    }
    Ok(())
}
