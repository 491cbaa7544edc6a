//! Reduce: a reducer's rows → per-property rows in output order, exact duplicates removed,
//! within a memory budget.
//!
//! Takes the batches routed to one reducer (any mix of properties, in whatever order the
//! mappers delivered them) and keeps them per property. Output order is the whole row,
//! `(object_id, timestamp, value, source_type, source_id, source_label, updated_by_user_id)`
//! with nulls first, and rows equal in every column are dropped. Sorting by the whole row,
//! not just the sort key, is what makes output independent of arrival order: parallel mappers
//! deliver rows in a different order every run, yet the same input gives the same files.
//!
//! ```text
//!  add(batch) ──► per-property columns ──(past the budget)──► spill: the largest properties
//!                        │                                     (down to half the budget), each
//!                        │                                     sorted, de-duplicated, appended
//!                        │                                     to spill-<n>.bin as one segment
//!                        │                                     (blocks of whole columns)
//!                        ▼ finish, per property in the order given
//!               no segments: sort, dedupe ──────────────────► PropertyWriter
//!               segments:    sort the rest, k-way merge it with its segments, dedupe ──► "
//! ```
//!
//! Memory: the buffered rows (capacity, not just length, is counted) and the sort keys of
//! the largest property (28 bytes a row, what a spill needs to sort it) stay within
//! `budget`; merging holds one block per segment and one row group.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::batch::{Columns, Row, Rows, StrColumn};
use crate::error::{Error, Result};
use crate::layout::property_dir;
use crate::sink::{PropertyOutput, PropertyWriter, SinkOptions, Syncer};

/// A sorted run of one property in a spill file.
#[derive(Clone, Copy, Debug)]
struct Segment {
    file: usize,
    offset: u64,
    rows: u64,
}

/// One reducer's rows, per property id, spilled to disk past its budget.
#[derive(Debug)]
pub struct Reducer {
    by_property: Vec<Columns>,
    /// Heap bytes held per property (as of its last update) and in all.
    heap: Vec<usize>,
    bytes: usize,
    /// The most rows any buffered property holds (what its sort keys will take).
    largest: usize,
    budget: usize,
    /// Properties touched by the current batch (`mark[p] == generation`).
    mark: Vec<u32>,
    generation: u32,
    touched: Vec<u32>,
    /// Per property, the current batch's row indices (reused).
    pending: Vec<Vec<u32>>,
    spill_dir: PathBuf,
    spill_files: Vec<PathBuf>,
    segments: Vec<Vec<Segment>>,
    /// Rows received per property.
    received: Vec<u64>,
    rows: u64,
    duplicates: u64,
    spilled_bytes: u64,
    /// String bytes and rows one property's buffer may hold whatever the budget
    /// ([`BUFFER_BYTES_CAP`], [`BUFFER_ROWS_CAP`]).
    caps: (usize, usize),
    /// Properties whose buffer passed a cap: the next spill takes them.
    over_cap: Vec<usize>,
    /// Per property, the objects whose history the rows carry (an upsert), as received.
    replaced: Vec<Vec<i64>>,
}

/// String bytes one property's buffer may hold before it is spilled whatever the budget: a
/// string column addresses its bytes with 32-bit offsets, and a large `--memory-limit` must
/// not let a heavy long-text property reach them.
pub const BUFFER_BYTES_CAP: usize = 1 << 30;
/// Rows one property's buffer may hold before it is spilled whatever the budget: sort orders
/// index rows with 32 bits.
pub const BUFFER_ROWS_CAP: usize = 1 << 30;

/// What a reducer counted before its writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spilled {
    /// Duplicates dropped while spilling.
    pub duplicates: u64,
    /// Bytes written to spill files.
    pub bytes: u64,
}

/// One property's write: its rows in memory and its spilled segments (from one reducer, or
/// from every reducer that holds the property when a merge gathers them), and the stored
/// files a merge reads; sorted, merged, de-duplicated and written by [`Job::write`].
#[derive(Debug)]
pub struct Job {
    pub property: u32,
    /// Rows the reducers received for the property (before duplicates are dropped).
    received: u64,
    parts: Vec<Part>,
    /// Stored files merged in (paths in [`Existing::folder`], with their listed sizes).
    stored: Vec<(String, u64)>,
    /// Objects whose rows are dropped, sorted, without repeats (a merge's deletes, shared by
    /// all its jobs).
    deleted: Arc<[i64]>,
    /// Objects whose stored rows are dropped, sorted, without repeats: the input carries
    /// their history of the property (an upsert).
    replaced: Vec<i64>,
}

/// `ids` sorted, without repeats.
fn sorted_set(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// One reducer's rows of a property: in memory, and spilled.
#[derive(Debug)]
struct Part {
    rows: Columns,
    segments: Vec<Segment>,
    files: Arc<SpillFiles>,
}

/// What a merge reads besides the rows a run routed: the stored dataset. The default, none,
/// is what `overwrite` and `append` write.
#[derive(Clone, Copy, Debug, Default)]
pub struct Existing<'a> {
    /// Where the stored files of [`Job::with_stored`] are read from.
    pub folder: Option<&'a dyn crate::store::Folder>,
}

/// What one job's write counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Merged {
    /// Exact duplicates dropped.
    pub duplicates: u64,
    /// Rows read back from stored files.
    pub stored_rows: u64,
    /// Rows dropped because their object is deleted.
    pub deleted_rows: u64,
    /// The deleted objects that had rows here: bit `i` for the `i`th of the job's deleted
    /// objects ([`Job::with_deleted`]).
    pub deleted_found: Vec<u64>,
    /// Stored rows dropped because the input carries their object's history (an upsert).
    pub replaced_rows: u64,
}

impl Merged {
    /// Adds `other`'s counts (the objects found are a union).
    pub fn add(&mut self, other: Merged) {
        self.duplicates += other.duplicates;
        self.stored_rows += other.stored_rows;
        self.deleted_rows += other.deleted_rows;
        self.replaced_rows += other.replaced_rows;
        if self.deleted_found.len() < other.deleted_found.len() {
            self.deleted_found.resize(other.deleted_found.len(), 0);
        }
        for (a, b) in self.deleted_found.iter_mut().zip(other.deleted_found) {
            *a |= b;
        }
    }

    /// How many deleted objects had rows.
    pub fn objects_deleted(&self) -> u64 {
        self.deleted_found
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }
}

impl Job {
    /// Rows the reducers received for the property (before duplicates are dropped).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// One job of `property` holding every row of `jobs` (each a job of that property from a
    /// different reducer): a merge writes a property as one sorted stream.
    pub fn gather(property: u32, jobs: Vec<Job>) -> Job {
        let mut out = Job {
            property,
            received: 0,
            parts: Vec::new(),
            stored: Vec::new(),
            deleted: Arc::from([]),
            replaced: Vec::new(),
        };
        for job in jobs {
            debug_assert_eq!(job.property, property);
            out.received += job.received;
            out.parts.extend(job.parts);
            out.stored.extend(job.stored);
            out.replaced.extend(job.replaced);
        }
        out.replaced = sorted_set(out.replaced);
        out
    }

    /// The job with `files` (stored data files of its partition) merged in.
    pub fn with_stored(mut self, files: Vec<(String, u64)>) -> Job {
        self.stored.extend(files);
        self
    }

    /// The job with the stored rows of `objects` (sorted) kept after all: their histories
    /// came in part (an upsert merges those).
    pub fn keep_stored(mut self, objects: &[i64]) -> Job {
        if !objects.is_empty() {
            self.replaced.retain(|o| objects.binary_search(o).is_err());
        }
        self
    }

    /// The job with the rows of `deleted` objects (sorted, without repeats) dropped.
    pub fn with_deleted(mut self, deleted: Arc<[i64]>) -> Job {
        debug_assert!(deleted.is_sorted_by(|a, b| a < b));
        self.deleted = deleted;
        self
    }

    /// Writes the property's rows in output order into `writer`, with the stored files
    /// (read from `existing`) merged in and deleted objects dropped. The caller finishes the
    /// writer.
    pub fn write(&self, writer: &mut PropertyWriter, existing: &Existing<'_>) -> Result<Merged> {
        let mut merged = Merged::default();
        let mut sources = Vec::new();
        let mut orders = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let (order, duplicates) = sort_dedupe(&part.rows);
            merged.duplicates += duplicates;
            orders.push(order);
        }
        // The common case: one reducer's rows, all in memory, nothing to merge or drop.
        if let ([part], [order], true, []) = (
            &self.parts[..],
            &orders[..],
            self.stored.is_empty(),
            &self.deleted[..],
        ) && part.segments.is_empty()
        {
            writer.write(&part.rows, order)?;
            return Ok(merged);
        }
        for (part, order) in self.parts.iter().zip(orders) {
            if !order.is_empty() {
                sources.push(Source::Memory {
                    rows: &part.rows,
                    order,
                    pos: 0,
                });
            }
            for s in &part.segments {
                if let Some(c) = Cursor::open(&part.files.files[s.file], s)? {
                    sources.push(Source::Spill(c));
                }
            }
        }
        if !self.stored.is_empty() {
            let folder = existing.folder.ok_or_else(|| {
                Error::Bug("a job merges stored files but no folder was given".into())
            })?;
            for (rel, size) in &self.stored {
                if let Some(s) = StoredCursor::open(folder, rel, *size, self.stored.len())? {
                    sources.push(Source::Stored(s));
                }
            }
        }
        let mut groups = Groups::new(writer.row_group_rows(), &self.deleted, &self.replaced);
        merge(&mut sources, &mut groups, writer)?;
        for s in &sources {
            if let Source::Stored(s) = s {
                merged.stored_rows += s.rows;
            }
        }
        merged.duplicates += groups.duplicates;
        merged.deleted_rows = groups.deleted.dropped;
        merged.deleted_found = groups.deleted.found;
        merged.replaced_rows = groups.replaced.dropped;
        Ok(merged)
    }
}

/// A reducer's spill files, removed when the last job that may read them is dropped (also
/// when a run fails half way).
#[derive(Debug)]
struct SpillFiles {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Drop for SpillFiles {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Reducer {
    /// A reducer that spills to files under `spill_dir` once its rows take `budget` bytes.
    pub fn new(budget: usize, spill_dir: PathBuf) -> Self {
        Reducer {
            by_property: Vec::new(),
            heap: Vec::new(),
            bytes: 0,
            largest: 0,
            budget,
            mark: Vec::new(),
            generation: 1,
            touched: Vec::new(),
            pending: Vec::new(),
            spill_dir,
            spill_files: Vec::new(),
            segments: Vec::new(),
            received: Vec::new(),
            rows: 0,
            duplicates: 0,
            spilled_bytes: 0,
            caps: (BUFFER_BYTES_CAP, BUFFER_ROWS_CAP),
            over_cap: Vec::new(),
            replaced: Vec::new(),
        }
    }

    /// Files a batch's rows under their properties; spills if that passes the budget.
    pub fn add(&mut self, batch: &Rows) -> Result<()> {
        // Group the batch's row indices by property, then move each group column by column.
        for (i, &p) in batch.property.iter().enumerate() {
            let p = p as usize;
            if p >= self.by_property.len() {
                self.by_property.resize_with(p + 1, Columns::default);
                self.heap.resize(p + 1, 0);
                self.mark.resize(p + 1, 0);
                self.segments.resize_with(p + 1, Vec::new);
                self.pending.resize_with(p + 1, Vec::new);
                self.received.resize(p + 1, 0);
            }
            if self.mark[p] != self.generation {
                self.mark[p] = self.generation;
                self.touched.push(p as u32);
            }
            self.pending[p].push(i as u32);
        }
        self.rows += batch.len() as u64;
        for &(p, object) in &batch.histories {
            let p = p as usize;
            if p >= self.replaced.len() {
                self.replaced.resize_with(p + 1, Vec::new);
            }
            self.replaced[p].push(object);
        }
        for &p in &self.touched {
            let p = p as usize;
            let rows = &mut self.by_property[p];
            rows.append_indices(batch, &self.pending[p]);
            self.received[p] += self.pending[p].len() as u64;
            self.pending[p].clear();
            let now = rows.heap_bytes();
            self.bytes = self.bytes + now - self.heap[p];
            self.heap[p] = now;
            self.largest = self.largest.max(rows.len());
            if rows.data_bytes() > self.caps.0 || rows.len() > self.caps.1 {
                self.over_cap.push(p);
            }
        }
        self.touched.clear();
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.bytes + self.largest * SORT_ROW_BYTES > self.budget || !self.over_cap.is_empty() {
            self.spill()?;
        }
        Ok(())
    }

    /// Rows received so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the largest buffered properties, until what stays takes at most half the budget,
    /// as sorted, de-duplicated segments of a new spill file, and frees their buffers.
    ///
    /// Largest first, and only half: the heavy properties that fill the budget go to disk in
    /// long segments, the many light ones stay in memory and are never merged, and what is
    /// left in memory at the end (up to the whole budget) is not written twice. Which
    /// properties spill never changes the output, only the work.
    fn spill(&mut self) -> Result<()> {
        tracing::debug!(file = self.spill_files.len(), "spill");
        std::fs::create_dir_all(&self.spill_dir).map_err(|e| Error::io(&self.spill_dir, e))?;
        let path = self
            .spill_dir
            .join(format!("spill-{}.bin", self.spill_files.len()));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut offset = 0u64;
        let mut encoded = Vec::new();
        let mut block = Columns::default();
        let index = self.spill_files.len();
        // Heaviest first; ties by id, so the same input spills the same way every run.
        let mut chosen: Vec<usize> = (0..self.by_property.len())
            .filter(|&p| !self.by_property[p].is_empty())
            .collect();
        chosen.sort_unstable_by_key(|&p| (std::cmp::Reverse(self.heap[p]), p));
        let (mut left, mut keep) = (self.bytes, 0);
        while keep < chosen.len() && (keep == 0 || left > self.budget / 2) {
            left -= self.heap[chosen[keep]];
            keep += 1;
        }
        chosen.truncate(keep);
        for p in std::mem::take(&mut self.over_cap) {
            if !chosen.contains(&p) {
                chosen.push(p);
            }
        }
        // Segments in id order within the file: reading them back then moves forward.
        chosen.sort_unstable();
        for p in chosen {
            let rows = std::mem::take(&mut self.by_property[p]);
            let (order, duplicates) = sort_dedupe(&rows);
            self.duplicates += duplicates;
            let start = offset;
            for chunk in order.chunks(BLOCK_ROWS) {
                block.clear();
                block.append_indices(&rows, chunk);
                encoded.clear();
                encoded.extend_from_slice(&[0; 4]);
                block.encode(&mut encoded);
                let len = u32::try_from(encoded.len() - 4).expect("a block is under 4 GiB");
                encoded[..4].copy_from_slice(&len.to_le_bytes());
                out.write_all(&encoded).map_err(|e| Error::io(&path, e))?;
                offset += encoded.len() as u64;
            }
            self.segments[p].push(Segment {
                file: index,
                offset: start,
                rows: order.len() as u64,
            });
            self.bytes -= self.heap[p];
            self.heap[p] = 0;
        }
        out.flush().map_err(|e| Error::io(&path, e))?;
        self.largest = self.by_property.iter().map(Columns::len).max().unwrap_or(0);
        self.spilled_bytes += offset;
        self.spill_files.push(path);
        Ok(())
    }

    /// The write of every property in `ids` that holds rows, as independent jobs in that
    /// order (a fixed order keeps runs reproducible; smallest first keeps the peak low), and
    /// what the reducer counted while spilling.
    ///
    /// Jobs may run on any thread and in any order: each owns its rows and its segments, and
    /// the spill files go when the last job that reads them is dropped.
    pub fn into_jobs(mut self, mut ids: Vec<u32>) -> (Vec<Job>, Spilled) {
        ids.retain(|&p| {
            let p = p as usize;
            p < self.by_property.len()
                && (!self.by_property[p].is_empty() || !self.segments[p].is_empty())
        });
        let files = Arc::new(SpillFiles {
            dir: std::mem::take(&mut self.spill_dir),
            files: std::mem::take(&mut self.spill_files),
        });
        let jobs = ids
            .into_iter()
            .map(|p| Job {
                property: p,
                received: self.received[p as usize],
                parts: vec![Part {
                    rows: std::mem::take(&mut self.by_property[p as usize]),
                    segments: std::mem::take(&mut self.segments[p as usize]),
                    files: files.clone(),
                }],
                stored: Vec::new(),
                deleted: Arc::from([]),
                replaced: match self.replaced.get_mut(p as usize) {
                    Some(objects) => sorted_set(std::mem::take(objects)),
                    None => Vec::new(),
                },
            })
            .collect();
        let spilled = Spilled {
            duplicates: self.duplicates,
            bytes: self.spilled_bytes,
        };
        (jobs, spilled)
    }

    /// Every property id that received rows, with how many.
    pub fn properties(&self) -> Vec<(u32, u64)> {
        (0..self.by_property.len() as u32)
            .filter(|&p| self.received[p as usize] > 0)
            .map(|p| (p, self.received[p as usize]))
            .collect()
    }
}

/// Where reducers write their files: a staging folder (partition folders are made under
/// it), how files are named, written and synced.
#[derive(Clone, Debug)]
pub struct Staging<'a> {
    pub root: &'a Path,
    /// File names start `<prefix>-r<reducer>` (`part-<run>`: a run's files are its own).
    pub prefix: &'a str,
    pub sink: &'a SinkOptions,
    /// Closed files go to it to be synced off the writer's thread; `None`: synced by the
    /// writer before it goes on.
    pub syncer: Option<Syncer>,
    /// What a merge reads besides the routed rows.
    pub existing: Existing<'a>,
}

impl Staging<'_> {
    /// Writes one job, owned by reducer `owner`, into property `name`'s folder: what it
    /// counted and the files written.
    pub fn write(&self, job: &Job, owner: usize, name: &str) -> Result<(Merged, PropertyOutput)> {
        let mut writer = PropertyWriter::new(
            &self.root.join(property_dir(name)),
            &format!("{}-r{owner}", self.prefix),
            self.sink,
        );
        if let Some(syncer) = &self.syncer {
            writer = writer.with_syncer(syncer.clone());
        }
        let merged = job.write(&mut writer, &self.existing)?;
        // A job that read a stored partition replaces it, even with nothing left in it.
        let written = if job.stored.is_empty() {
            writer.finish()?
        } else {
            writer.finish_with_a_file()?
        };
        let out = PropertyOutput {
            input_rows: job.received(),
            stored_rows: merged.stored_rows,
            ..written
        };
        Ok((merged, out))
    }
}

/// What one reducer did.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Reduced {
    pub reducer: u32,
    /// Rows it received.
    pub rows_in: u64,
    /// Exact duplicates it dropped (spilling and writing), stored rows it read and rows of
    /// deleted objects it dropped (writing).
    pub merged: Merged,
    pub spilled_bytes: u64,
    /// (property id, output) per property written, in its order.
    pub properties: Vec<(u32, PropertyOutput)>,
    /// From its first row to its last file.
    pub wall: std::time::Duration,
}

impl Reducer {
    /// The order a reducer writes its properties in: smallest first, so each property
    /// written frees its rows before the next sorts and the largest sorts beside the least
    /// else; ties by name, so logs come out the same every run (files do whatever the order).
    pub fn write_order(&self, names: &[Arc<str>]) -> Vec<u32> {
        let mut ids = self.properties();
        ids.sort_by(|a, b| (a.1, &names[a.0 as usize]).cmp(&(b.1, &names[b.0 as usize])));
        ids.into_iter().map(|(p, _)| p).collect()
    }

    /// The reduce stage on its own, on the calling thread: writes every property this
    /// reducer (number `reducer`) holds into `staging`, in [`Reducer::write_order`].
    /// `names` are the property names by id. A driver that shares the write phase between
    /// threads uses [`Reducer::into_jobs`] and a [`WritePool`] instead, to the same files.
    pub fn write_all(
        self,
        reducer: u32,
        names: &[Arc<str>],
        staging: &Staging<'_>,
    ) -> Result<Reduced> {
        let started = Instant::now();
        let rows_in = self.rows();
        let order = self.write_order(names);
        let (jobs, spilled) = self.into_jobs(order);
        let mut out = Reduced {
            reducer,
            rows_in,
            merged: Merged {
                duplicates: spilled.duplicates,
                ..Merged::default()
            },
            spilled_bytes: spilled.bytes,
            ..Reduced::default()
        };
        for job in jobs {
            let (merged, written) =
                staging.write(&job, reducer as usize, &names[job.property as usize])?;
            out.merged.add(merged);
            out.properties.push((job.property, written));
        }
        out.wall = started.elapsed();
        Ok(out)
    }
}

/// The write phase, shared by the reducer threads. Each reducer publishes its jobs and
/// writes them in its order; a thread whose queue is empty takes the next job of another
/// reducer's queue. Loads are even in rows, not in work (a reducer that spilled also merges),
/// and without this the last reducer to finish wrote alone while the other cores idled.
///
/// Which thread writes a property never shows in the output: the file carries its owning
/// reducer's number, and [`WritePool::into_written`] puts each owner's results back in its
/// order. At most one writer per thread is open at a time.
#[derive(Debug)]
pub struct WritePool {
    queues: Vec<Mutex<VecDeque<Taken>>>,
    /// Per owner: a slot per job, in its order, filled as jobs are written.
    slots: Vec<Mutex<Slots>>,
    /// Set when a write fails: the other threads stop taking jobs.
    failed: AtomicBool,
}

#[derive(Debug, Default)]
struct Slots {
    outputs: Vec<Option<(u32, PropertyOutput)>>,
    left: usize,
    merged: Merged,
    finished: Option<Instant>,
}

/// A job taken from the pool, with its owning reducer and its place in the owner's order.
#[derive(Debug)]
pub struct Taken {
    pub owner: usize,
    position: usize,
    pub job: Job,
}

/// What was written for one owning reducer.
#[derive(Debug, Default)]
pub struct Written {
    /// (property id, output), in the owner's order.
    pub properties: Vec<(u32, PropertyOutput)>,
    /// What its jobs counted.
    pub merged: Merged,
    /// When its last job was written (or it published none); `None` if some never were.
    pub finished: Option<Instant>,
}

impl WritePool {
    pub fn new(reducers: usize) -> Self {
        WritePool {
            queues: (0..reducers).map(|_| Mutex::default()).collect(),
            slots: (0..reducers).map(|_| Mutex::default()).collect(),
            failed: AtomicBool::new(false),
        }
    }

    /// Hands `reducer`'s jobs, in its order, to the pool.
    pub fn publish(&self, reducer: usize, jobs: Vec<Job>) {
        {
            let mut slots = lock(&self.slots[reducer]);
            slots.outputs = (0..jobs.len()).map(|_| None).collect();
            slots.left = jobs.len();
            if jobs.is_empty() {
                slots.finished = Some(Instant::now());
            }
        }
        *lock(&self.queues[reducer]) = jobs
            .into_iter()
            .enumerate()
            .map(|(position, job)| Taken {
                owner: reducer,
                position,
                job,
            })
            .collect();
    }

    /// The next job for `reducer`'s thread: its own first, then the other queues in turn;
    /// `None` when none is left (or a write failed).
    pub fn next(&self, reducer: usize) -> Option<Taken> {
        if self.failed.load(SeqCst) {
            return None;
        }
        let n = self.queues.len();
        (0..n).find_map(|k| lock(&self.queues[(reducer + k) % n]).pop_front())
    }

    /// Records a job's output.
    pub fn done(&self, taken: &Taken, out: PropertyOutput, merged: Merged) {
        let mut slots = lock(&self.slots[taken.owner]);
        slots.outputs[taken.position] = Some((taken.job.property, out));
        slots.merged.add(merged);
        slots.left -= 1;
        if slots.left == 0 {
            slots.finished = Some(Instant::now());
        }
    }

    /// Stops every thread taking jobs (the run is failing).
    pub fn fail(&self) {
        self.failed.store(true, SeqCst);
    }

    /// Per owning reducer, what was written, in its order.
    pub fn into_written(self) -> Vec<Written> {
        self.slots
            .into_iter()
            .map(|m| {
                let slots = m.into_inner().unwrap_or_else(|e| e.into_inner());
                Written {
                    properties: slots.outputs.into_iter().flatten().collect(),
                    merged: slots.merged,
                    finished: slots.finished,
                }
            })
            .collect()
    }
}

/// A mutex's contents, even after a panic elsewhere (the panic itself fails the run).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes [`sort_dedupe`] takes per row while it sorts: a key and the permutation.
const SORT_ROW_BYTES: usize = std::mem::size_of::<(i64, i64, u32)>() + std::mem::size_of::<u32>();

/// The output order of `rows` with exact duplicates removed, and how many were removed.
///
/// Sorts compact `(object_id, timestamp, index)` keys (24 contiguous bytes each, far faster to
/// sort than a permutation compared through the columns); only rows whose keys tie, rare in
/// practice, are then ordered by the rest of the row. The index never decides an order, so
/// the result does not depend on the order rows arrived in.
pub fn sort_dedupe(rows: &Columns) -> (Vec<u32>, u64) {
    let n = rows.len();
    // Rows arrive as long runs of ascending object ids (inputs are in id order, batches
    // interleave them): a stable, run-adaptive sort on the object id alone is close to a
    // merge of those runs. Within one object the versions come newest first, so each object's
    // few rows are then sorted on their own.
    let mut keys: Vec<(i64, i64, u32)> = (0..n)
        .map(|i| (rows.object_id[i], rows.timestamp[i], i as u32))
        .collect();
    keys.sort_by_key(|k| k.0);
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && keys[end].0 == keys[start].0 {
            end += 1;
        }
        if end - start > 1 {
            keys[start..end].sort_unstable_by_key(|k| k.1);
        }
        start = end;
    }
    let mut order: Vec<u32> = keys.iter().map(|k| k.2).collect();
    let mut duplicates = 0u64;
    let mut kept = 0usize;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && (keys[j].0, keys[j].1) == (keys[i].0, keys[i].1) {
            j += 1;
        }
        if j - i == 1 {
            order[kept] = order[i];
            kept += 1;
        } else {
            // A tie: order by the whole row, then drop rows equal to the one before.
            let group = &mut order[i..j];
            group.sort_unstable_by(|&a, &b| compare(rows, a as usize, b as usize));
            let mut last: Option<u32> = None;
            for k in i..j {
                let r = order[k];
                if last.is_some_and(|l| compare(rows, l as usize, r as usize) == Ordering::Equal) {
                    duplicates += 1;
                    continue;
                }
                order[kept] = r;
                kept += 1;
                last = Some(r);
            }
        }
        i = j;
    }
    order.truncate(kept);
    (order, duplicates)
}

/// The whole-row order (nulls first) on columns. `Equal` means the rows are identical.
fn compare(rows: &Columns, a: usize, b: usize) -> Ordering {
    rows.object_id[a]
        .cmp(&rows.object_id[b])
        .then_with(|| rows.timestamp[a].cmp(&rows.timestamp[b]))
        .then_with(|| compare_str(&rows.value, a, b))
        .then_with(|| compare_str(&rows.source_type, a, b))
        .then_with(|| compare_str(&rows.source_id, a, b))
        .then_with(|| compare_str(&rows.source_label, a, b))
        .then_with(|| rows.updated_by.get(a).cmp(&rows.updated_by.get(b)))
}

#[inline]
fn compare_str(col: &StrColumn, a: usize, b: usize) -> Ordering {
    // `Option`'s order puts `None` first: nulls first, as the files' sorting_columns say.
    col.get(a).cmp(&col.get(b))
}

/// The same order on row views (what the merge compares).
/// The output order: the whole row, nulls first.
pub(crate) fn compare_rows(a: &Row<'_>, b: &Row<'_>) -> Ordering {
    (
        a.object_id,
        a.timestamp,
        a.value,
        a.source_type,
        a.source_id,
        a.source_label,
        a.updated_by_user_id,
    )
        .cmp(&(
            b.object_id,
            b.timestamp,
            b.value,
            b.source_type,
            b.source_id,
            b.source_label,
            b.updated_by_user_id,
        ))
}

// ---------------------------------------------------------------------------------------
// Spill segments: a property's sorted rows as blocks of up to BLOCK_ROWS rows, each a u32 LE
// byte length and a `Columns` block (see `batch`'s block codec).
// ---------------------------------------------------------------------------------------

/// Rows per spill block: large enough that the codec runs in long column loops, small enough
/// that a merge over many segments holds little (one block each, decoded and raw: ~200 KB
/// for NDJSON rows with sources). A small budget spills often, and a heavy property then
/// merges a hundred segments or more.
const BLOCK_ROWS: usize = 1024;

/// Reads one segment a block at a time.
struct Cursor {
    reader: BufReader<File>,
    /// Rows not yet decoded.
    left: u64,
    block: Columns,
    pos: usize,
    raw: Vec<u8>,
    path: PathBuf,
}

impl Cursor {
    fn open(path: &Path, segment: &Segment) -> Result<Option<Self>> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(segment.offset))
            .map_err(|e| Error::io(path, e))?;
        let mut c = Cursor {
            reader: BufReader::with_capacity(64 << 10, file),
            left: segment.rows,
            block: Columns::default(),
            pos: 0,
            raw: Vec::new(),
            path: path.to_path_buf(),
        };
        Ok(if c.next_block()? { Some(c) } else { None })
    }

    /// Loads the next block; false at the segment's end.
    fn next_block(&mut self) -> Result<bool> {
        if self.left == 0 {
            return Ok(false);
        }
        let io = |e| Error::io(&self.path, e);
        let mut len = [0u8; 4];
        self.reader.read_exact(&mut len).map_err(io)?;
        self.raw.resize(u32::from_le_bytes(len) as usize, 0);
        self.reader.read_exact(&mut self.raw).map_err(io)?;
        let bad = || {
            Error::Bug(format!(
                "spill file {} holds a block that does not decode",
                self.path.display()
            ))
        };
        self.block.decode(&self.raw).map_err(|_| bad())?;
        if self.block.is_empty() || self.block.len() as u64 > self.left {
            return Err(bad());
        }
        self.left -= self.block.len() as u64;
        self.pos = 0;
        Ok(true)
    }
}

/// A sorted source read a block at a time: a spilled segment or a stored file.
trait Blocks {
    /// The current block and the position of the head in it.
    fn at(&mut self) -> (&Columns, &mut usize);
    /// Loads the next block (position 0); false at the source's end.
    fn next_block(&mut self) -> Result<bool>;

    /// Moves `n` rows on (at most to the end of the block); false at the source's end.
    fn skip(&mut self, n: usize) -> Result<bool> {
        let (block, pos) = self.at();
        *pos += n;
        if *pos < block.len() {
            return Ok(true);
        }
        self.next_block()
    }
}

impl Blocks for Cursor {
    fn at(&mut self) -> (&Columns, &mut usize) {
        (&self.block, &mut self.pos)
    }

    fn next_block(&mut self) -> Result<bool> {
        Cursor::next_block(self)
    }
}

impl Blocks for StoredCursor {
    fn at(&mut self) -> (&Columns, &mut usize) {
        (&self.block, &mut self.pos)
    }

    fn next_block(&mut self) -> Result<bool> {
        StoredCursor::next_block(self)
    }
}

/// String bytes a merged row group may hold before it is written (values of ordinary size
/// never reach it: a row group of 256 Ki rows holds a few MiB).
const GROUP_BYTES_CAP: usize = 256 << 20;
/// Rows moved into a row group at a time, so that the cap is checked often enough.
const APPEND_ROWS: usize = 256;

/// A sorted, duplicate-free stream a merge reads: a reducer's rows in memory (in their
/// sort order), a spilled segment, or a stored data file.
enum Source<'a> {
    Memory {
        rows: &'a Columns,
        order: Vec<u32>,
        pos: usize,
    },
    Spill(Cursor),
    Stored(StoredCursor),
}

impl Source<'_> {
    /// The `i`-th row from the head, within the current block.
    #[inline]
    fn row(&self, i: usize) -> Row<'_> {
        match self {
            Source::Memory { rows, order, pos } => rows.row(order[pos + i] as usize),
            Source::Spill(c) => c.block.row(c.pos + i),
            Source::Stored(c) => c.block.row(c.pos + i),
        }
    }

    /// Rows left in the current block (at least 1 while the source is in the heap).
    fn available(&self) -> usize {
        match self {
            Source::Memory { order, pos, .. } => order.len() - pos,
            Source::Spill(c) => c.block.len() - c.pos,
            Source::Stored(c) => c.block.len() - c.pos,
        }
    }

    /// Whether its rows come from a stored file (those an upsert may replace).
    fn is_stored(&self) -> bool {
        matches!(self, Source::Stored(_))
    }

    /// The next `take` rows, as their columns and a run of indices into them.
    fn run(&self, take: usize) -> (&Columns, Run<'_>) {
        match self {
            Source::Memory { rows, order, pos } => (rows, Run::Order(&order[*pos..pos + take])),
            Source::Spill(c) => (&c.block, Run::Range(c.pos..c.pos + take)),
            Source::Stored(c) => (&c.block, Run::Range(c.pos..c.pos + take)),
        }
    }

    /// Moves `n` rows on (at most to the end of the block); false at the source's end.
    fn advance(&mut self, n: usize) -> Result<bool> {
        match self {
            Source::Memory { order, pos, .. } => {
                *pos += n;
                Ok(*pos < order.len())
            }
            Source::Spill(c) => c.skip(n),
            Source::Stored(c) => c.skip(n),
        }
    }
}

/// Merges `sources` into `groups` (and so into `writer`), a row group at a time.
///
/// A binary heap of source indices ordered by their heads (smallest on top; ties by
/// index, so the order is total). The top source gives every row of its current block that
/// sorts before the runner-up's head in one run: inputs arrive in id order, so spilled runs
/// overlap little and runs are long, and a stored file's rows run long between the few new
/// rows merged into it.
fn merge(
    sources: &mut [Source<'_>],
    groups: &mut Groups<'_>,
    writer: &mut PropertyWriter,
) -> Result<()> {
    let less = |sources: &[Source<'_>], a: usize, b: usize| {
        compare_rows(&sources[a].row(0), &sources[b].row(0)).then(a.cmp(&b)) == Ordering::Less
    };
    let mut heap: Vec<usize> = (0..sources.len()).collect();
    for i in (0..heap.len() / 2).rev() {
        sift_down(&mut heap, i, &|a, b| less(sources, a, b));
    }
    while let Some(&top) = heap.first() {
        let runner_up = match (heap.get(1), heap.get(2)) {
            (Some(&a), Some(&b)) => Some(if less(sources, a, b) { a } else { b }),
            (Some(&a), None) => Some(a),
            _ => None,
        };
        let source = &sources[top];
        let available = source.available();
        let take = match runner_up {
            None => available,
            Some(b) => {
                let bound = sources[b].row(0);
                // Ties go to the lower source, as in the heap.
                gallop(available, |i| {
                    compare_rows(&source.row(i), &bound).then(top.cmp(&b)) == Ordering::Less
                })
            }
        };
        let (columns, run) = source.run(take);
        groups.append(columns, run, source.is_stored(), writer)?;
        // Advance the source on top; drop it from the heap when it runs out.
        if !sources[top].advance(take)? {
            let last_index = heap.len() - 1;
            heap.swap(0, last_index);
            heap.pop();
        }
        if !heap.is_empty() {
            sift_down(&mut heap, 0, &|a, b| less(sources, a, b));
        }
    }
    groups.finish(writer)
}

/// Rows read from a stored file at a time at most: long column loops, little held.
const STORED_BATCH_ROWS: usize = 8 * 1024;
/// ... and at least: a few long values at a time still make progress.
const STORED_MIN_ROWS: usize = 16;
/// Bytes one job's stored cursors hold at a time, together (about: a batch is cut in half
/// once it passes its share, so a file of long values reads a few rows at a time). Part of
/// what `run::MemoryPlan` keeps for each reducer's output side.
pub const STORED_JOB_BYTES: usize = 8 << 20;

/// A stored data file read a batch at a time, checked to be in order as it is read: a merge
/// of files that are not sorted would write unsorted files, so such a file stops the run.
struct StoredCursor {
    file: crate::dataset::StoredFile,
    block: Columns,
    pos: usize,
    /// The key of the last row read, to check the order across batches.
    last: Option<(i64, i64)>,
    /// Rows read.
    rows: u64,
    /// Rows the next batch reads, and the bytes a batch should stay under.
    batch: usize,
    budget: usize,
}

impl StoredCursor {
    /// Opens stored file `rel` (of `size` bytes), one of `files` a job reads together, and
    /// reads its first batch; `None` if it has no rows.
    fn open(
        folder: &dyn crate::store::Folder,
        rel: &str,
        size: u64,
        files: usize,
    ) -> Result<Option<Self>> {
        let name = PathBuf::from(folder.name(rel));
        let file = crate::dataset::StoredFile::open(folder.open(rel, size)?, &name)?;
        let files = files.max(1);
        let mut c = StoredCursor {
            file,
            block: Columns::default(),
            pos: 0,
            last: None,
            rows: 0,
            // Small first: how long the values are is known only once some are read.
            batch: STORED_MIN_ROWS * 4,
            budget: STORED_JOB_BYTES / files,
        };
        Ok(if c.next_block()? { Some(c) } else { None })
    }

    fn next_block(&mut self) -> Result<bool> {
        self.block.clear();
        self.pos = 0;
        let n = self.file.next_batch(&mut self.block, self.batch)?;
        if n == 0 {
            return Ok(false);
        }
        // Long values: fewer rows next time; short ones: back up to the most.
        let bytes = self.block.data_bytes() + n * 32;
        if bytes > self.budget {
            self.batch = (self.batch / 2).max(STORED_MIN_ROWS);
        } else if bytes < self.budget / 4 {
            self.batch = (self.batch * 2).min(STORED_BATCH_ROWS);
        }
        let (ids, ts) = (&self.block.object_id, &self.block.timestamp);
        let mut last = self.last.unwrap_or((i64::MIN, i64::MIN));
        for i in 0..n {
            let key = (ids[i], ts[i]);
            if key < last {
                return Err(Error::Input {
                    path: self.file.path().to_path_buf(),
                    reason: format!(
                        "row group {} is not sorted by (object_id, timestamp) (object {} at {} \
                         follows object {} at {}): a merge needs the files skewer wrote; \
                         rewrite this partition with --mode overwrite",
                        self.file.row_group(),
                        key.0,
                        key.1,
                        last.0,
                        last.1
                    ),
                });
            }
            last = key;
        }
        self.last = Some(last);
        self.rows += n as u64;
        Ok(true)
    }
}

/// Rows of a source that sort in one run: indices in a sort order, or a range of a block.
enum Run<'a> {
    Order(&'a [u32]),
    Range(std::ops::Range<usize>),
}

impl Run<'_> {
    fn len(&self) -> usize {
        match self {
            Run::Order(order) => order.len(),
            Run::Range(range) => range.len(),
        }
    }

    /// Index `i` of the run, in its source.
    fn at(&self, i: usize) -> usize {
        match self {
            Run::Order(order) => order[i] as usize,
            Run::Range(range) => range.start + i,
        }
    }
}

/// The row groups a merge fills, run by run: written when full, an exact duplicate of the
/// row written before dropped.
struct Groups<'d> {
    group_rows: usize,
    identity: Vec<u32>,
    group: Columns,
    /// The last row of the previous group, to drop a duplicate across a group boundary.
    previous: Columns,
    idx: Vec<u32>,
    duplicates: u64,
    /// Objects whose rows are dropped wherever they come from.
    deleted: Dropping<'d>,
    /// Objects whose stored rows are dropped (an upsert).
    replaced: Dropping<'d>,
}

/// A sorted set of objects whose rows are dropped, walked as rows come in object order.
struct Dropping<'d> {
    objects: &'d [i64],
    /// The first object that may still come (rows come in object order: only forward).
    next: usize,
    /// Rows dropped.
    dropped: u64,
    /// Bit `i`: `objects[i]` had a row.
    found: Vec<u64>,
}

impl<'d> Dropping<'d> {
    fn new(objects: &'d [i64]) -> Self {
        Dropping {
            objects,
            next: 0,
            dropped: 0,
            found: Vec::new(),
        }
    }

    /// Whether `object`'s row is dropped (and counts it); objects must come in
    /// non-decreasing order.
    #[inline]
    fn drops(&mut self, object: i64) -> bool {
        let d = self.objects;
        while self.next < d.len() && d[self.next] < object {
            self.next += 1;
        }
        if d.get(self.next) != Some(&object) {
            return false;
        }
        self.dropped += 1;
        if self.found.is_empty() {
            self.found = vec![0; d.len().div_ceil(64)];
        }
        self.found[self.next / 64] |= 1 << (self.next % 64);
        true
    }
}

impl<'d> Groups<'d> {
    fn new(group_rows: usize, deleted: &'d [i64], replaced: &'d [i64]) -> Groups<'d> {
        let group_rows = group_rows.max(1);
        Groups {
            group_rows,
            identity: (0..group_rows as u32).collect(),
            group: Columns::default(),
            previous: Columns::default(),
            idx: Vec::new(),
            duplicates: 0,
            deleted: Dropping::new(deleted),
            replaced: Dropping::new(replaced),
        }
    }

    /// Appends a run of `source` (sorted, free of duplicates, sorting after every row
    /// appended before it; `stored`: read from a stored file), writing each group as it
    /// fills.
    fn append(
        &mut self,
        source: &Columns,
        run: Run<'_>,
        stored: bool,
        writer: &mut PropertyWriter,
    ) -> Result<()> {
        let take = run.len();
        if take == 0 {
            return Ok(());
        }
        // Each source is free of duplicates, so only a run's first row can repeat the row
        // written before it.
        let last = match self.group.len() {
            0 => (!self.previous.is_empty()).then(|| self.previous.row(0)),
            n => Some(self.group.row(n - 1)),
        };
        let mut i = 0;
        if last.is_some_and(|last| compare_rows(&source.row(run.at(0)), &last) == Ordering::Equal) {
            self.duplicates += 1;
            i = 1;
        }
        // Long values move a few rows at a time, so that the group's cap is checked often.
        let long = source.data_bytes() / source.len().max(1) > 1024;
        let step = if long { APPEND_ROWS } else { usize::MAX };
        while i < take {
            let n = (take - i).min(self.group_rows - self.group.len()).min(step);
            self.idx.clear();
            match &run {
                Run::Order(order) => self.idx.extend_from_slice(&order[i..i + n]),
                Run::Range(range) => self
                    .idx
                    .extend((range.start + i..range.start + i + n).map(|r| r as u32)),
            }
            if !self.deleted.objects.is_empty() {
                let deleted = &mut self.deleted;
                self.idx
                    .retain(|&r| !deleted.drops(source.object_id[r as usize]));
            }
            if stored && !self.replaced.objects.is_empty() {
                let replaced = &mut self.replaced;
                self.idx
                    .retain(|&r| !replaced.drops(source.object_id[r as usize]));
            }
            self.group.append_indices(source, &self.idx);
            i += n;
            // A row group ends at its row count, or (long values) once its strings pass the
            // cap: it is held whole while it fills.
            if self.group.len() == self.group_rows || self.group.data_bytes() >= GROUP_BYTES_CAP {
                writer.write_group(&self.group, &self.identity[..self.group.len()])?;
                self.previous.clear();
                self.previous.push(&self.group.row(self.group.len() - 1));
                self.group.clear();
            }
        }
        Ok(())
    }

    /// Writes the last group.
    fn finish(&mut self, writer: &mut PropertyWriter) -> Result<()> {
        writer.write_group(&self.group, &self.identity[..self.group.len()])?;
        self.group.clear();
        Ok(())
    }
}

/// How many of the first `n` items satisfy `before`, which holds for item 0 and, once false,
/// stays false: an exponential probe then a binary search, so a run of `k` costs `O(log k)`
/// comparisons (two for a run of one).
fn gallop(n: usize, before: impl Fn(usize) -> bool) -> usize {
    debug_assert!(n > 0 && before(0));
    let (mut lo, mut step) = (0, 1);
    let hi = loop {
        let probe = lo + step;
        if probe >= n {
            break n;
        }
        if !before(probe) {
            break probe;
        }
        lo = probe;
        step *= 2;
    };
    // The first false lies in (lo, hi].
    let (mut a, mut b) = (lo + 1, hi);
    while a < b {
        let m = a + (b - a) / 2;
        if before(m) {
            a = m + 1;
        } else {
            b = m;
        }
    }
    a
}

fn sift_down(heap: &mut [usize], mut i: usize, less: &dyn Fn(usize, usize) -> bool) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut smallest = i;
        if l < heap.len() && less(heap[l], heap[smallest]) {
            smallest = l;
        }
        if r < heap.len() && less(heap[r], heap[smallest]) {
            smallest = r;
        }
        if smallest == i {
            return;
        }
        heap.swap(i, smallest);
        i = smallest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkOptions;

    /// A stored file of long values is read a few rows at a time (its cursor's batches stay
    /// near its share of the job's bytes), all of it, in order.
    #[test]
    fn stored_files_of_long_values_are_read_in_small_batches() {
        let dir = tempfile::tempdir().unwrap();
        let long = vec![b'x'; 64 << 10];
        let mut rows = Columns::default();
        for i in 0..300 {
            rows.push(&Row {
                object_id: i / 3,
                timestamp: i % 3,
                value: Some(&long),
                source_type: None,
                source_id: None,
                source_label: None,
                updated_by_user_id: None,
            });
        }
        let order: Vec<u32> = (0..300).collect();
        let mut w = PropertyWriter::new(&dir.path().join("p"), "f", &SinkOptions::default());
        w.write(&rows, &order).unwrap();
        let out = w.finish().unwrap();
        let folder = crate::store::local::LocalDataset::new(dir.path());
        let rel = "p/f.parquet";
        // One of 8 files: a share of 1 MiB, 16 rows of 64 KiB.
        let mut c = StoredCursor::open(&folder, rel, out.bytes, 8)
            .unwrap()
            .unwrap();
        let mut sizes = vec![c.block.len()];
        let mut read = c.block.object_id.clone();
        while c.next_block().unwrap() {
            sizes.push(c.block.len());
            read.extend_from_slice(&c.block.object_id);
        }
        assert_eq!(read, rows.object_id);
        assert_eq!(&sizes[..3], [64, 32, 16], "{sizes:?}");
        assert!(sizes[3..].iter().all(|&n| n <= 16), "{sizes:?}");
    }

    fn row(object_id: i64, timestamp: i64, value: Option<&'static [u8]>) -> Row<'static> {
        Row {
            object_id,
            timestamp,
            value,
            source_type: None,
            source_id: None,
            source_label: None,
            updated_by_user_id: None,
        }
    }

    /// The next number of a seeded sequence.
    fn seeded(seed: &mut u64) -> u64 {
        *seed = planner::fmix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
        *seed
    }

    /// Writes every job of `reducer`, in `ids` order, on this thread; returns what was
    /// spilled, with the duplicates of the writes added.
    fn write_all(
        reducer: Reducer,
        ids: Vec<u32>,
        mut writer_for: impl FnMut(u32) -> PropertyWriter,
    ) -> Spilled {
        let (jobs, mut done) = reducer.into_jobs(ids);
        for job in jobs {
            let mut writer = writer_for(job.property);
            done.duplicates += job
                .write(&mut writer, &Existing::default())
                .unwrap()
                .duplicates;
            writer.finish().unwrap();
        }
        done
    }

    /// Every row of the Parquet files in `dir`, files in name order.
    fn rows_in(dir: &Path) -> Columns {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut got = Columns::default();
        for f in files {
            let rows = crate::dataset::read_rows(&f).unwrap();
            for i in 0..rows.len() {
                got.push(&rows.row(i));
            }
        }
        got
    }

    #[test]
    fn sorts_by_the_whole_row_and_drops_exact_duplicates() {
        let mut rows = Columns::default();
        for r in [
            row(2, 1, Some(b"b")),
            row(1, 5, Some(b"x")),
            row(2, 1, Some(b"a")),
            row(2, 1, None),
            row(1, 5, Some(b"x")),
            row(2, 1, Some(b"a")),
            row(1, -3, Some(b"")),
        ] {
            rows.push(&r);
        }
        let mut differs_in_source = row(1, 5, Some(b"x"));
        differs_in_source.source_type = Some(b"API");
        rows.push(&differs_in_source);

        let (order, duplicates) = sort_dedupe(&rows);
        assert_eq!(duplicates, 2);
        let got: Vec<_> = order
            .iter()
            .map(|&i| {
                let r = rows.row(i as usize);
                (r.object_id, r.timestamp, r.value, r.source_type)
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, -3, Some(&b""[..]), None),
                (1, 5, Some(&b"x"[..]), None),
                (1, 5, Some(&b"x"[..]), Some(&b"API"[..])),
                (2, 1, None, None),
                (2, 1, Some(&b"a"[..]), None),
                (2, 1, Some(&b"b"[..]), None),
            ]
        );
    }

    #[test]
    fn column_and_row_orders_agree() {
        let mut seed = 7u64;
        let mut next = || seeded(&mut seed);
        let values: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"a"), Some(b"ab")];
        let mut rows = Columns::default();
        for _ in 0..400 {
            rows.push(&Row {
                object_id: (next() % 3) as i64,
                timestamp: (next() % 3) as i64 - 1,
                value: values[(next() % 4) as usize],
                source_type: values[(next() % 4) as usize],
                source_id: values[(next() % 4) as usize],
                source_label: values[(next() % 4) as usize],
                updated_by_user_id: [None, Some(-1), Some(0)][(next() % 3) as usize],
            });
        }
        for a in 0..rows.len() {
            for b in 0..rows.len() {
                assert_eq!(
                    compare(&rows, a, b),
                    compare_rows(&rows.row(a), &rows.row(b))
                );
            }
        }
    }

    #[test]
    fn gallop_finds_the_end_of_every_run() {
        for n in 1..70 {
            for k in 1..=n {
                assert_eq!(gallop(n, |i| i < k), k, "n {n} k {k}");
            }
        }
    }

    /// Rows spilled in several runs (blocks, mixed null states) and a run left in memory merge
    /// to exactly the sorted, de-duplicated rows, across row groups and spill blocks.
    #[test]
    fn spilled_runs_merge_to_the_sorted_deduplicated_rows() {
        let mut seed = 3u64;
        let mut next = || seeded(&mut seed);
        let values: [Option<&[u8]>; 3] = [None, Some(b"a"), Some(b"bc")];
        let dir = tempfile::tempdir().unwrap();
        let mut reducer = Reducer::new(200_000, dir.path().join("spill"));
        let mut all = Vec::new();
        // 12,000 and 20,000 rows pass the budget and spill (in several blocks); the small
        // batches stay until the next spill, the last one in memory.
        for (k, n) in [12_000usize, 3, 20_000, 1, 500].into_iter().enumerate() {
            let mut batch = Rows::default();
            for _ in 0..n {
                let row = Row {
                    object_id: (next() % 300) as i64,
                    timestamp: (next() % 4) as i64,
                    value: values[(next() % 3) as usize],
                    // Only some batches carry sources: spill blocks in every null state.
                    source_type: (k % 2 == 0).then_some(&b"API"[..]),
                    source_id: values[(next() % 3) as usize].filter(|_| k > 1),
                    source_label: None,
                    updated_by_user_id: (k == 2).then_some((next() % 2) as i64),
                };
                batch.push(0, &row);
                all.push(row);
            }
            reducer.add(&batch).unwrap();
        }
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let options = SinkOptions {
            row_group_rows: 1000,
            ..SinkOptions::default()
        };
        let done = write_all(reducer, vec![0], |_| {
            PropertyWriter::new(&out, "p", &options)
        });
        assert!(done.bytes > 0);

        all.sort_by(compare_rows);
        all.dedup_by(|a, b| compare_rows(a, b) == Ordering::Equal);
        assert_eq!(done.duplicates, 32_504 - all.len() as u64);
        let got = rows_in(&out);
        assert_eq!(got.len(), all.len());
        for (i, want) in all.iter().enumerate() {
            assert_eq!(got.row(i), *want, "row {i}");
        }
    }

    /// Past the budget only the heaviest properties spill, down to half the budget: light
    /// properties stay in memory, heavy ones are merged from several segments, and every
    /// property still comes out as exactly its sorted, de-duplicated rows.
    #[test]
    fn spilling_the_heaviest_properties_keeps_every_property_exact() {
        let mut seed = 11u64;
        let mut next = || seeded(&mut seed);
        let values: [Option<&[u8]>; 4] = [None, Some(b"a"), Some(b"bc"), Some(b"a longer value")];
        let dir = tempfile::tempdir().unwrap();
        let mut reducer = Reducer::new(400_000, dir.path().join("spill"));
        // Property p gets a share ~ 1/2^p of the rows: 0 is heavy, 5 is rare.
        let mut all: Vec<Vec<Row<'static>>> = vec![Vec::new(); 6];
        for _ in 0..40 {
            let mut batch = Rows::default();
            for _ in 0..1_000 {
                let p = (next() % 64).leading_zeros().saturating_sub(58).min(5);
                let row = Row {
                    object_id: (next() % 2_000) as i64,
                    timestamp: (next() % 3) as i64,
                    value: values[(next() % 4) as usize],
                    source_type: None,
                    source_id: None,
                    source_label: None,
                    updated_by_user_id: None,
                };
                batch.push(p, &row);
                all[p as usize].push(row);
            }
            reducer.add(&batch).unwrap();
        }
        assert!(
            reducer.segments[0].len() >= 2,
            "the heavy property spills repeatedly"
        );
        assert!(
            reducer.segments[5].is_empty(),
            "the rare property never spills"
        );
        assert!(!reducer.by_property[5].is_empty());

        let out = dir.path().join("out");
        let options = SinkOptions {
            row_group_rows: 700,
            ..SinkOptions::default()
        };
        let done = write_all(reducer, (0..6).rev().collect(), |p| {
            PropertyWriter::new(&out.join(p.to_string()), "p", &options)
        });
        assert!(done.bytes > 0);
        let mut dropped = 0;
        for (p, want) in all.iter_mut().enumerate() {
            let n = want.len();
            want.sort_by(compare_rows);
            want.dedup_by(|a, b| compare_rows(a, b) == Ordering::Equal);
            dropped += (n - want.len()) as u64;
            let got = rows_in(&out.join(p.to_string()));
            assert_eq!(got.len(), want.len(), "property {p}");
            for (i, want) in want.iter().enumerate() {
                assert_eq!(got.row(i), *want, "property {p}, row {i}");
            }
        }
        assert_eq!(done.duplicates, dropped);
    }

    /// A property past the buffer caps spills whatever the budget (its string column's 32-bit
    /// offsets must never overflow, however large `--memory-limit` is), and comes out whole;
    /// a merged row group of long values ends at its byte cap, not only at its row count.
    #[test]
    fn a_property_past_the_buffer_caps_spills_whatever_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut reducer = Reducer::new(usize::MAX / 4, dir.path().join("spill"));
        reducer.caps = (256 << 10, 1_000);
        static LONG: [u8; 10_000] = [b'x'; 10_000];
        let mut want = Vec::new();
        for b in 0..20i64 {
            let mut batch = Rows::default();
            for k in 0..50 {
                batch.push(0, &row(b * 50 + k, 0, Some(&LONG)));
                want.push(b * 50 + k);
            }
            // A light property beside it stays in memory.
            batch.push(1, &row(b, 0, Some(b"v")));
            reducer.add(&batch).unwrap();
            assert!(reducer.by_property[0].data_bytes() <= (256 << 10) + 50 * 10_000);
        }
        assert!(
            reducer.segments[0].len() >= 3,
            "{:?}",
            reducer.segments[0].len()
        );
        assert!(reducer.segments[1].is_empty());
        let out = dir.path().join("out");
        let done = write_all(reducer, vec![0, 1], |p| {
            PropertyWriter::new(&out.join(p.to_string()), "p", &SinkOptions::default())
        });
        assert_eq!(done.duplicates, 0);
        let got = rows_in(&out.join("0"));
        assert_eq!(
            (0..got.len())
                .map(|i| got.row(i).object_id)
                .collect::<Vec<_>>(),
            want
        );
    }

    /// A thread with nothing left of its own takes another reducer's jobs in that reducer's
    /// order, and results come back in each owner's order whoever wrote them and when.
    #[test]
    fn an_idle_thread_takes_the_next_job_of_another_reducer() {
        let dir = tempfile::tempdir().unwrap();
        let mut reducer = Reducer::new(1 << 30, dir.path().join("spill"));
        let mut batch = Rows::default();
        for p in 0..4u32 {
            for k in 0..=p {
                batch.push(p, &row(i64::from(k), 0, Some(b"v")));
            }
        }
        reducer.add(&batch).unwrap();
        let (jobs, _) = reducer.into_jobs(vec![3, 1, 0, 2]);
        assert_eq!(
            jobs.iter().map(|j| j.received()).collect::<Vec<_>>(),
            [4, 2, 1, 3]
        );

        let pool = WritePool::new(2);
        pool.publish(0, jobs);
        pool.publish(1, Vec::new());
        // Thread 1 owns nothing: it takes reducer 0's first job; thread 0 goes on in order.
        let a = pool.next(1).unwrap();
        let b = pool.next(0).unwrap();
        let c = pool.next(1).unwrap();
        assert_eq!((a.owner, a.job.property), (0, 3));
        assert_eq!((b.owner, b.job.property), (0, 1));
        assert_eq!((c.owner, c.job.property), (0, 0));
        let out = |rows| PropertyOutput {
            rows,
            ..PropertyOutput::default()
        };
        let dups = |duplicates| Merged {
            duplicates,
            ..Merged::default()
        };
        pool.done(&c, out(1), Merged::default());
        pool.done(&a, out(4), dups(2));
        // A failed write stops everyone taking jobs.
        pool.fail();
        assert!(pool.next(0).is_none());
        pool.done(&b, out(2), dups(1));

        let written = pool.into_written();
        let order: Vec<_> = written[0]
            .properties
            .iter()
            .map(|(p, o)| (*p, o.rows))
            .collect();
        assert_eq!(order, [(3, 4), (1, 2), (0, 1)]);
        assert_eq!(written[0].merged.duplicates, 3);
        assert!(
            written[0].finished.is_none(),
            "reducer 0 still has a job left"
        );
        assert!(written[1].finished.is_some() && written[1].properties.is_empty());
    }
}
