//! Tonight's input counted before the run: exact per-property counts from nested Parquet
//! footers, a bounded sample of JSON. Every run plans from these (checked against the history
//! by [`planner::plan_checked`]; alone for a dataset without one, as Spark's range
//! partitioner and Hadoop's `InputSampler` do).
//!
//! JSON: [`PROBES`] probes of at most [`PROBE_RECORDS`] records each, spread over the whole
//! input by bytes, not only the heads of files (a night's dump is often ordered: by object
//! id, by creation, by export batch). An NDJSON split is cut into equal ranges, one probe
//! each; a compressed file or a JSON array can only be read from its start, so its probes
//! read its first records. The counts are scaled by input bytes read against input bytes in
//! all. Properties too rare to be sampled are unseen to the plan and go whole to its spare
//! share. NDJSON small enough for the probes to read every line (a night's increment often
//! is) is counted exactly. The probes are placed by the input's sizes alone: the same input,
//! the same sample.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use parquet::file::reader::FileReader;
use planner::{Observed, Sample, Volume};

use crate::batch::Rows;
use crate::error::Result;
use crate::explode::json::{JsonContext, JsonScratch, explode_reader};
use crate::explode::{LocalIds, PropertyIds, RecordSink};
use crate::input::{Format, InputFile, Split};

/// Probes over the JSON input.
pub const PROBES: usize = 32;
/// Records read per probe: 4,096 records in all place the heavy properties (the ones that
/// decide the balance) within a few per cent, and cost a fraction of a second where 16,000
/// cost two (an eighth of a whole NDJSON run at the default size).
pub const PROBE_RECORDS: u64 = 128;
/// Rough bytes per row beyond the value, for a first guess at output size.
const ROW_OVERHEAD: u64 = 12;

#[derive(Default)]
struct Counting {
    records: u64,
    volumes: Vec<Volume>,
}

impl RecordSink for Counting {
    fn record(&mut self, _: u64, rows: &Rows, _: crate::explode::Carried) {
        self.records += 1;
        let mut last = None;
        for i in 0..rows.len() {
            let p = rows.property[i] as usize;
            if p >= self.volumes.len() {
                self.volumes.resize(p + 1, Volume::default());
            }
            let v = &mut self.volumes[p];
            v.rows += 1;
            v.bytes += ROW_OVERHEAD + rows.value.get(i).map_or(0, |b| b.len() as u64);
            // A record's versions of one property arrive together: one object each time.
            if last != Some(p) {
                v.objects += 1;
                last = Some(p);
            }
        }
    }
    fn reject(&mut self, _: u64, _: &str) {}
    fn event_without_version(&mut self) {
        self.records += 1;
    }
    fn object_event(&mut self, _: crate::explode::ObjectEvent) {}
    fn record_without_history(&mut self) {}
}

/// Counts tonight's per-property volumes for the whole input: JSON from probes over its
/// splits, nested Parquet from footers (exact) or, for the MAP form, from its first row
/// group. The volumes are already scaled to the whole input, so `sampled_records ==
/// estimated_records` in the [`Sample`]; exact when every file was counted whole. The records
/// actually read are returned beside it.
pub fn sample(files: &[InputFile], splits: &[Split]) -> Result<(Observed, u64)> {
    let (json, mut exact) = sample_json(files, splits)?;
    let mut counted_rows: u64 = json.properties.values().map(|v| v.rows).sum();
    let mut records = json.estimated_records;
    let mut read = json.sampled_records;
    let mut volumes: BTreeMap<String, Volume> = json
        .properties
        .into_iter()
        .map(|(name, v)| {
            let v = scaled(&v, json.estimated_records, json.sampled_records);
            (name, v)
        })
        .collect();
    // A footer is a round trip each from S3: several files at once, merged in file order.
    let parquet: Vec<&InputFile> = files
        .iter()
        .filter(|f| f.format == Format::Parquet)
        .collect();
    for counted in crate::par::par_map(&parquet, FOOTER_LOOKS, |f| count_parquet(f)) {
        let (rows, counts) = match counted {
            ParquetCount::Counted { rows, counts } => {
                counted_rows = counts
                    .iter()
                    .fold(counted_rows, |n, (_, v)| n.saturating_add(v.rows));
                (rows, counts)
            }
            ParquetCount::Scaled {
                rows,
                group_rows,
                counts,
            } => {
                // The first row group stands for the file: an estimate.
                exact &= group_rows >= rows;
                let counts = counts
                    .into_iter()
                    .map(|(name, v)| {
                        counted_rows = counted_rows.saturating_add(v.rows);
                        (name, scaled(&v, rows, group_rows))
                    })
                    .collect();
                (rows, counts)
            }
            // The run rejects what it cannot read; the counts of the rest are no longer the
            // whole input's.
            ParquetCount::Unread { rows } => {
                exact = false;
                (rows, Vec::new())
            }
        };
        records = records.saturating_add(rows);
        read = read.saturating_add(rows);
        for (name, v) in counts {
            let e = volumes.entry(name).or_default();
            e.rows = e.rows.saturating_add(v.rows);
            e.bytes = e.bytes.saturating_add(v.bytes);
            e.objects = e.objects.saturating_add(v.objects);
        }
    }
    volumes.retain(|_, v| v.rows > 0);
    let sample = Sample {
        sampled_records: records,
        estimated_records: records,
        properties: volumes,
    };
    let observed = Observed {
        sample,
        exact,
        counted_rows,
    };
    Ok((observed, read))
}

/// `v`'s rows, bytes and objects × `num / den`: a part's counts scaled up to its whole.
fn scaled(v: &Volume, num: u64, den: u64) -> Volume {
    let scale = |x: u64| {
        u64::try_from(u128::from(x) * u128::from(num) / u128::from(den.max(1))).unwrap_or(u64::MAX)
    };
    Volume {
        rows: scale(v.rows),
        bytes: scale(v.bytes),
        objects: scale(v.objects),
        ..Default::default()
    }
}

/// Parquet footers read at once.
const FOOTER_LOOKS: usize = 8;

/// What one Parquet file says about its volumes before the run.
enum ParquetCount {
    /// From the footer (STRUCT form): every property's versions.
    Counted {
        rows: u64,
        counts: Vec<(String, Volume)>,
    },
    /// From the first row group (MAP form), to be scaled to the file's `rows`.
    Scaled {
        rows: u64,
        group_rows: u64,
        counts: Vec<(String, Volume)>,
    },
    /// Unreadable here (the run rejects it, or fails on it).
    Unread { rows: u64 },
}

fn count_parquet(file: &InputFile) -> ParquetCount {
    use crate::explode::parquet::{
        ParquetScratch, contain_panic, explode_row_group, footer_volumes, open,
    };
    let Ok(handle) = file.open() else {
        return ParquetCount::Unread { rows: 0 };
    };
    let Ok(Ok(opened)) = contain_panic(|| open(handle)) else {
        return ParquetCount::Unread { rows: 0 };
    };
    let meta = opened.reader.metadata();
    let rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0);
    if let Some(footer) = footer_volumes(&opened) {
        let counts = footer
            .into_iter()
            .map(|(name, versions, bytes)| {
                let v = Volume {
                    rows: versions,
                    bytes,
                    objects: versions.min(rows),
                    ..Default::default()
                };
                (name, v)
            })
            .collect();
        return ParquetCount::Counted { rows, counts };
    }
    if meta.num_row_groups() == 0 {
        return ParquetCount::Counted {
            rows,
            counts: Vec::new(),
        };
    }
    let group_rows = meta.row_group(0).num_rows().max(1) as u64;
    let mut ids = LocalIds::default();
    let mut counting = ParquetCounting::default();
    let mut scratch = ParquetScratch::default();
    let counted =
        contain_panic(|| explode_row_group(&opened, 0, &mut ids, &mut counting, &mut scratch));
    if !counted.is_ok_and(|r| r.is_ok()) {
        return ParquetCount::Unread { rows };
    }
    let counts = counting
        .0
        .volumes
        .iter()
        .enumerate()
        .map(|(p, v)| (ids.name(p as u32), *v))
        .collect();
    ParquetCount::Scaled {
        rows,
        group_rows,
        counts,
    }
}

/// Counts a Parquet row group's rows per property.
#[derive(Default)]
struct ParquetCounting(Counting);

impl crate::explode::parquet::ParquetSink for ParquetCounting {
    fn rows(&mut self, rows: &Rows) {
        for i in 0..rows.len() {
            let p = rows.property[i] as usize;
            if p >= self.0.volumes.len() {
                self.0.volumes.resize(p + 1, Volume::default());
            }
            let v = &mut self.0.volumes[p];
            v.rows += 1;
            v.bytes += ROW_OVERHEAD + rows.value.get(i).map_or(0, |b| b.len() as u64);
            v.objects += 1;
        }
    }
    fn records(&mut self, _: u64) {}
    fn reject(&mut self, _: u64, _: &str) {}
    fn reject_versions(&mut self, _: u64, _: u64, _: &str) {}
}

/// Samples the JSON splits by [`probes`]: counts from the records read, scaled by the input
/// bytes that took. Exact when the probes read every line of the JSON input (a small night's
/// NDJSON often fits in them whole): only NDJSON ranges say so, a stream's probe cannot.
fn sample_json(files: &[InputFile], splits: &[Split]) -> Result<(Sample, bool)> {
    let mut ids = LocalIds::default();
    let mut sink = Counting::default();
    let mut scratch = JsonScratch::default();
    let mut bytes_read = 0u64;
    let probes = probes(files, splits);
    let only_ranges = probes.iter().all(|p| matches!(p, Probe::Range { .. }));
    for probe in probes {
        bytes_read += match probe {
            Probe::Range { file, start, end } => {
                sample_lines(&files[file], start, end, &mut scratch, &mut ids, &mut sink)?
            }
            Probe::Head { file, records } => {
                sample_head(&files[file], records, &mut scratch, &mut ids, &mut sink)?
            }
        };
    }
    let total_bytes: u64 = files
        .iter()
        .filter(|f| f.format != Format::Parquet)
        .map(|f| f.size)
        .sum();
    let estimated = if bytes_read == 0 {
        sink.records
    } else {
        let scaled = u128::from(sink.records) * u128::from(total_bytes) / u128::from(bytes_read);
        u64::try_from(scaled).unwrap_or(u64::MAX).max(sink.records)
    };
    let properties: BTreeMap<String, Volume> = sink
        .volumes
        .iter()
        .enumerate()
        .filter(|(_, v)| v.rows > 0)
        .map(|(p, v)| (ids.name(p as u32), *v))
        .collect();
    let sample = Sample {
        sampled_records: sink.records,
        estimated_records: estimated,
        properties,
    };
    Ok((sample, only_ranges && bytes_read == total_bytes))
}

/// Where one probe reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// Up to [`PROBE_RECORDS`] NDJSON lines starting in `[start, end)` of file `file`.
    Range { file: usize, start: u64, end: u64 },
    /// The first `records` records of file `file` read as one stream (compressed, arrays).
    Head { file: usize, records: u64 },
}

/// The probes over the JSON splits: [`PROBES`] shared by bytes (at least one per split);
/// past [`PROBES`] splits, one each on splits picked evenly. Disjoint, so no record is counted
/// twice however small the input.
fn probes(files: &[InputFile], splits: &[Split]) -> Vec<Probe> {
    let json: Vec<(&Split, u64)> = splits
        .iter()
        .filter_map(|s| match *s {
            Split::Lines { start, end, .. } => Some((s, end - start)),
            // A Parquet file whose footer cannot be read is one split too: not JSON.
            Split::Whole { file } if files[file].format != Format::Parquet => {
                Some((s, files[file].size))
            }
            Split::Whole { .. } | Split::RowGroups { .. } => None,
        })
        .collect();
    let step = json.len().div_ceil(PROBES).max(1);
    let picked: Vec<(&Split, u64)> = json.into_iter().step_by(step).collect();
    let total: u128 = picked
        .iter()
        .map(|&(_, len)| u128::from(len))
        .sum::<u128>()
        .max(1);
    let mut out = Vec::new();
    for (split, len) in picked {
        let share = (u128::from(len) * PROBES as u128 / total) as u64;
        let n = share.max(1);
        match *split {
            Split::Lines { file, start, end } => {
                let n = n.min(len.max(1));
                for i in 0..n {
                    let at =
                        |k: u64| start + (u128::from(len) * u128::from(k) / u128::from(n)) as u64;
                    out.push(Probe::Range {
                        file,
                        start: at(i),
                        end: if i + 1 == n { end } else { at(i + 1) },
                    });
                }
            }
            Split::Whole { file } => out.push(Probe::Head {
                file,
                records: n * PROBE_RECORDS,
            }),
            Split::RowGroups { .. } => unreachable!("only JSON splits are picked"),
        }
    }
    out
}

/// Reads the first `records` records of a file that can only be read from its start (a
/// compressed file, a JSON array or pages) as one stream of JSON values; returns the input
/// bytes that took.
fn sample_head(
    file: &InputFile,
    records: u64,
    scratch: &mut JsonScratch,
    ids: &mut LocalIds,
    sink: &mut Counting,
) -> Result<u64> {
    let f = crate::source::Reader::buffered(file.open()?, 0);
    let count = Rc::new(Cell::new(0));
    let raw = crate::input::Counted {
        inner: f,
        count: count.clone(),
    };
    let decoded: Box<dyn Read> = match file.format {
        Format::Gzip => Box::new(crate::input::GzMembers::over(raw)),
        Format::Zstd => match zstd::stream::read::Decoder::new(raw) {
            Ok(d) => Box::new(d),
            // Not zstd after all: the run itself will reject the file.
            Err(_) => return Ok(0),
        },
        _ => Box::new(raw),
    };
    let mut reader = BufReader::with_capacity(64 << 10, decoded);
    if reader
        .fill_buf()
        .is_ok_and(|b| b.starts_with(crate::input::BOM))
    {
        reader.consume(crate::input::BOM.len());
    }
    // A record too long to hold ends the sample (the run rejects it, or stops at it).
    let mark = crate::explode::json::StreamMark::default();
    let guarded = crate::input::Guarded {
        inner: reader,
        mark: &mark,
    };
    let mut ctx = JsonContext::new(scratch, ids, sink);
    ctx.limit = Some(records);
    ctx.mark = Some(&mark);
    // A syntax error only ends this file's sample early; the run reports it.
    // serde_json reads a byte at a time: from a buffer, which fills from the guard in bulk.
    let _ = explode_reader(BufReader::with_capacity(64 << 10, guarded), &mut ctx);
    Ok(count.get())
}

/// One probe of an NDJSON range: up to [`PROBE_RECORDS`] whole lines by positioned reads, each
/// parsed from a slice as the run parses it (three times the speed of a byte-at-a-time
/// stream, which made the sample a tenth of a one-file run); returns the bytes it covered.
fn sample_lines(
    file: &InputFile,
    start: u64,
    end: u64,
    scratch: &mut JsonScratch,
    ids: &mut LocalIds,
    sink: &mut Counting,
) -> Result<u64> {
    use crate::input::Line;
    let f = file.open()?;
    let first = sink.records;
    let mut read_to = start;
    let mut whole = true;
    // A read error only ends this probe early; the run reports it.
    let _ = crate::input::range_lines(f.as_ref(), &mut Vec::new(), start, end, |offset, line| {
        let left = PROBE_RECORDS.saturating_sub(sink.records - first);
        if left == 0 {
            whole = false;
            return false;
        }
        // A line too long to hold is the run's to reject; the sample goes on past it.
        if let Line::Text(text) = line {
            read_to = offset + text.len() as u64 + 1;
            let mut ctx = JsonContext::new(scratch, ids, sink);
            ctx.limit = Some(left);
            // A line that is not JSON is the run's to reject; it adds nothing here.
            let _ = crate::explode::json::explode_slice(text, &mut ctx);
        }
        true
    });
    // A range read to its end was sampled whole, including any line too long to count.
    Ok(if whole { end } else { read_to }.saturating_sub(start))
}
