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
//!  add(batch) ──► per-property columns ──(past the budget)──► spill: each property sorted,
//!                        │                                     de-duplicated, appended to
//!                        │                                     spill-<n>.bin as one segment
//!                        │                                     (blocks of whole columns)
//!                        ▼ finish, per property in the order given
//!               no segments: sort, dedupe ──────────────────► PropertyWriter
//!               segments:    sort the rest, k-way merge it with its segments, dedupe ──► "
//! ```
//!
//! Memory: the buffered rows, capped by `budget` (capacity, not just length, is counted), plus
//! 28 bytes a row (sort keys and permutation) while one property sorts; merging holds one
//! block per segment and one row group.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::batch::{Columns, Row, Rows, StrColumn};
use crate::error::{Error, Result};
use crate::sink::{PropertyOutput, PropertyWriter};

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
}

/// What a reducer wrote.
#[derive(Debug, Default)]
pub struct Finished {
    /// (property id, output), in the order written.
    pub properties: Vec<(u32, PropertyOutput)>,
    pub duplicates: u64,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
}

impl Reducer {
    /// A reducer that spills to files under `spill_dir` once its rows take `budget` bytes.
    pub fn new(budget: usize, spill_dir: PathBuf) -> Self {
        Reducer {
            by_property: Vec::new(),
            heap: Vec::new(),
            bytes: 0,
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
        for &p in &self.touched {
            let p = p as usize;
            let rows = &mut self.by_property[p];
            rows.append_indices(batch, &self.pending[p]);
            self.received[p] += self.pending[p].len() as u64;
            self.pending[p].clear();
            let now = rows.heap_bytes();
            self.bytes = self.bytes + now - self.heap[p];
            self.heap[p] = now;
        }
        self.touched.clear();
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Rows received so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes every buffered property as a sorted, de-duplicated segment of a new spill file,
    /// and frees the buffers.
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
        for p in 0..self.by_property.len() {
            if self.by_property[p].is_empty() {
                continue;
            }
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
            self.heap[p] = 0;
        }
        out.flush().map_err(|e| Error::io(&path, e))?;
        self.spilled_bytes += offset;
        self.spill_files.push(path);
        self.bytes = 0;
        Ok(())
    }

    /// Writes every property in `ids`, in that order (a fixed order keeps runs reproducible;
    /// smallest first keeps the peak low), through the writer `writer_for` makes for it.
    pub fn finish(
        mut self,
        mut ids: Vec<u32>,
        mut writer_for: impl FnMut(u32) -> PropertyWriter,
    ) -> Result<Finished> {
        ids.retain(|&p| {
            let p = p as usize;
            p < self.by_property.len()
                && (!self.by_property[p].is_empty() || !self.segments[p].is_empty())
        });
        let mut done = Finished::default();
        for p in ids {
            let rows = std::mem::take(&mut self.by_property[p as usize]);
            let (order, duplicates) = sort_dedupe(&rows);
            self.duplicates += duplicates;
            let mut writer = writer_for(p);
            if self.segments[p as usize].is_empty() {
                writer.write(&rows, &order)?;
            } else {
                let segments = std::mem::take(&mut self.segments[p as usize]);
                self.duplicates += merge(&rows, &order, &segments, &self.spill_files, &mut writer)?;
            }
            done.properties.push((p, writer.finish()?));
        }
        done.duplicates = self.duplicates;
        done.spilled_bytes = self.spilled_bytes;
        for f in &self.spill_files {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir(&self.spill_dir);
        Ok(done)
    }

    /// Every property id that received rows, with how many.
    pub fn properties(&self) -> Vec<(u32, u64)> {
        (0..self.by_property.len() as u32)
            .filter(|&p| self.received[p as usize] > 0)
            .map(|p| (p, self.received[p as usize]))
            .collect()
    }
}

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
fn compare_rows(a: &Row<'_>, b: &Row<'_>) -> Ordering {
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
/// that a merge over many segments holds little (one block each).
const BLOCK_ROWS: usize = 8192;

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

    fn head(&self) -> Row<'_> {
        self.block.row(self.pos)
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

    /// Moves `n` rows on (at most to the end of the block); false at the segment's end.
    fn skip(&mut self, n: usize) -> Result<bool> {
        self.pos += n;
        if self.pos < self.block.len() {
            return Ok(true);
        }
        self.next_block()
    }
}

/// Merges the in-memory run (`rows` in `order`) with spilled segments into `writer`, a row
/// group at a time, dropping rows equal to the one before. Returns the duplicates dropped.
fn merge(
    rows: &Columns,
    order: &[u32],
    segments: &[Segment],
    files: &[PathBuf],
    writer: &mut PropertyWriter,
) -> Result<u64> {
    let mut cursors: Vec<Cursor> = Vec::with_capacity(segments.len());
    for s in segments {
        if let Some(c) = Cursor::open(&files[s.file], s)? {
            cursors.push(c);
        }
    }
    // Source 0 is the in-memory run; 1.. are the cursors. A binary heap of source indices
    // ordered by their heads (smallest on top; ties by source, so the order is total).
    let mut mem = 0usize;
    fn head_of<'a>(
        i: usize,
        mem: usize,
        rows: &'a Columns,
        order: &[u32],
        cursors: &'a [Cursor],
    ) -> Row<'a> {
        if i == 0 {
            rows.row(order[mem] as usize)
        } else {
            cursors[i - 1].head()
        }
    }
    let mut heap: Vec<usize> = (0..=cursors.len())
        .filter(|&i| i > 0 || !order.is_empty())
        .collect();
    let less = |a: usize, b: usize, mem: usize, cursors: &[Cursor]| {
        let x = head_of(a, mem, rows, order, cursors);
        let y = head_of(b, mem, rows, order, cursors);
        compare_rows(&x, &y).then(a.cmp(&b)) == Ordering::Less
    };
    for i in (0..heap.len() / 2).rev() {
        sift_down(&mut heap, i, &|a, b| less(a, b, mem, &cursors));
    }

    let group_rows = writer.row_group_rows().max(1);
    let identity: Vec<u32> = (0..group_rows as u32).collect();
    let mut group = Columns::default();
    // The last row of the previous group, to drop a duplicate across a group boundary.
    let mut previous = Columns::default();
    let mut idx: Vec<u32> = Vec::new();
    let mut duplicates = 0u64;
    while let Some(&top) = heap.first() {
        // The runner-up: the smaller of the top's children. The top source gives every row of
        // its current block that sorts before the runner-up's head in one run (inputs arrive
        // in id order, so spilled runs overlap little and runs are long).
        let runner_up = match (heap.get(1), heap.get(2)) {
            (Some(&a), Some(&b)) => Some(if less(a, b, mem, &cursors) { a } else { b }),
            (Some(&a), None) => Some(a),
            _ => None,
        };
        let (source, first): (&Columns, usize) = if top == 0 {
            (rows, mem)
        } else {
            let c = &cursors[top - 1];
            (&c.block, c.pos)
        };
        let row = |i: usize| {
            if top == 0 {
                rows.row(order[first + i] as usize)
            } else {
                source.row(first + i)
            }
        };
        let available = if top == 0 {
            order.len() - mem
        } else {
            source.len() - first
        };
        let take = match runner_up {
            None => available,
            Some(b) => {
                let bound = head_of(b, mem, rows, order, &cursors);
                // Ties go to the lower source, as in the heap.
                gallop(available, |i| {
                    compare_rows(&row(i), &bound).then(top.cmp(&b)) == Ordering::Less
                })
            }
        };
        // Each source is free of duplicates, so only a run's first row can repeat the row
        // written before it.
        let last = match group.len() {
            0 => (!previous.is_empty()).then(|| previous.row(0)),
            n => Some(group.row(n - 1)),
        };
        let mut i = 0;
        if last.is_some_and(|last| compare_rows(&row(0), &last) == Ordering::Equal) {
            duplicates += 1;
            i = 1;
        }
        while i < take {
            let n = (take - i).min(group_rows - group.len());
            idx.clear();
            if top == 0 {
                idx.extend_from_slice(&order[first + i..first + i + n]);
            } else {
                idx.extend((first + i..first + i + n).map(|r| r as u32));
            }
            group.append_indices(source, &idx);
            i += n;
            if group.len() == group_rows {
                writer.write_group(&group, &identity)?;
                previous.clear();
                previous.push(&group.row(group_rows - 1));
                group.clear();
            }
        }
        // Advance the source on top; drop it from the heap when it runs out.
        let alive = if top == 0 {
            mem += take;
            mem < order.len()
        } else {
            cursors[top - 1].skip(take)?
        };
        if alive {
            sift_down(&mut heap, 0, &|a, b| less(a, b, mem, &cursors));
        } else {
            let last_index = heap.len() - 1;
            heap.swap(0, last_index);
            heap.pop();
            if !heap.is_empty() {
                sift_down(&mut heap, 0, &|a, b| less(a, b, mem, &cursors));
            }
        }
    }
    writer.write_group(&group, &identity[..group.len()])?;
    Ok(duplicates)
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
        let mut next = || {
            seed = planner::fmix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
            seed
        };
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
        let mut next = || {
            seed = planner::fmix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
            seed
        };
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
        let done = reducer
            .finish(vec![0], |_| PropertyWriter::new(&out, "p", &options))
            .unwrap();
        assert!(done.spilled_bytes > 0);

        all.sort_by(compare_rows);
        all.dedup_by(|a, b| compare_rows(a, b) == Ordering::Equal);
        assert_eq!(done.duplicates, 32_504 - all.len() as u64);
        let mut files: Vec<_> = std::fs::read_dir(&out)
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
        assert_eq!(got.len(), all.len());
        for (i, want) in all.iter().enumerate() {
            assert_eq!(got.row(i), *want, "row {i}");
        }
    }
}
