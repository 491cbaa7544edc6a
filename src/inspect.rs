//! Inspect: a dataset's health, local or in S3.
//!
//! Takes a dataset; gives per property its files, rows and bytes (smallest and largest file),
//! and the result of each check:
//!
//! - **schema**: every data file has the output schema;
//! - **sort order**: every file's rows are in `(object_id, timestamp)` order;
//! - **no strays**: nothing left by a run that did not finish (staging, uploads, temporary
//!   files, a manifest still `publishing`);
//! - **manifests**: the data files are exactly those the committed manifests leave (each run
//!   adds its files and removes those it replaced), with the rows and bytes they recorded.
//!
//! Warnings (not failures): small files beside larger ones of the same property, and reducer
//! loads of the latest run far from even. Only footers and the two sort columns are read.

use std::collections::{BTreeMap, BTreeSet};

use parquet::column::reader::ColumnReader;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;

use crate::error::Result;
use crate::layout::{PROPERTY_COLUMN, unescape_partition_value};
use crate::source::Handle;
use crate::store::meta::{Manifest, STATE_COMMITTED, STATE_PUBLISHING};
use crate::store::{Dataset, LockState};

/// A file smaller than this beside a larger one of the same property is a "small file".
const SMALL_FILE: u64 = 8 << 20;
/// Reducer load max/mean past this is worth a warning.
const SKEWED: f64 = 1.25;

/// One property's files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PropertyReport {
    pub property: String,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub smallest_file: u64,
    pub largest_file: u64,
}

/// One check and what it found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    /// Each problem, naming the file.
    pub problems: Vec<String>,
}

/// What `inspect` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub dataset: String,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub properties: Vec<PropertyReport>,
    pub checks: Vec<Check>,
    pub warnings: Vec<String>,
    /// Committed runs, oldest first.
    pub runs: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// A data file: a visible file in a visible `property_name=` folder.
fn data_property(rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let name = parts.pop()?;
    if parts.is_empty()
        || parts
            .iter()
            .chain([&name])
            .any(|p| p.starts_with(['_', '.']))
    {
        return None;
    }
    let folder = parts.last()?;
    let value = folder.strip_prefix(PROPERTY_COLUMN)?.strip_prefix('=')?;
    unescape_partition_value(value)
}

/// Leftovers of a run that did not finish.
fn is_stray(rel: &str) -> Option<&'static str> {
    const PENDING: [(&str, &str); 4] = [
        ("_skewer/staging/", "staged by a run that did not publish"),
        (
            "_skewer/replaced/",
            "set aside by a publish that did not finish",
        ),
        (
            "_skewer/uploading/",
            "the intent of an upload that did not finish",
        ),
        (
            "_skewer/pending/",
            "the history of a publish that did not finish",
        ),
    ];
    if let Some((_, why)) = PENDING.iter().find(|(p, _)| rel.starts_with(p)) {
        return Some(why);
    }
    if rel.starts_with("_skewer/") {
        return None;
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.starts_with('.') {
        return Some("a hidden (temporary) file in the data folders");
    }
    None
}

/// Inspects the dataset.
pub fn inspect(store: &dyn Dataset, display: &str) -> Result<Report> {
    let objects = store.list("")?;
    let manifests = crate::store::manifests_in(store, &objects)?;
    let [mut schema, mut sorted, mut strays, mut listed] = [
        "schema",
        "sort order",
        "no stray files",
        "manifests match the files",
    ]
    .map(|check| Check {
        check,
        ok: true,
        problems: vec![],
    });

    // A live run may be staging or publishing right now: its files are not strays. A lock
    // whose process is gone (on this host) is itself a leftover.
    // A lock note that cannot be read (a folder, no permission) is reported, not fatal.
    let state = store
        .lock_state()
        .unwrap_or_else(|e| LockState::Leftover(format!("cannot be read: {e}")));
    let locked = match state {
        LockState::Free => false,
        LockState::Held(_) => true,
        LockState::Leftover(why) => {
            strays
                .problems
                .push(format!("{}: {why}", store.name("_skewer/lock")));
            false
        }
    };
    let (live, runs) = live_files(store, &manifests, locked, &mut strays);

    let mut data = Vec::new();
    for (rel, size) in &objects {
        if let Some(why) = is_stray(rel) {
            // A run holding the lock may be staging right now.
            if !(locked && rel.starts_with("_skewer/")) {
                strays.problems.push(format!("{}: {why}", store.name(rel)));
            }
            continue;
        }
        if let Some(property) = data_property(rel) {
            data.push((rel.as_str(), *size, property));
        }
    }
    let properties = check_files(store, data, &live, [&mut schema, &mut sorted, &mut listed])?;
    let warnings = warnings(&properties, &manifests);
    let checks: Vec<Check> = [schema, sorted, strays, listed]
        .into_iter()
        .map(|mut c| {
            c.ok = c.problems.is_empty();
            c
        })
        .collect();
    Ok(Report {
        dataset: display.to_string(),
        files: properties.iter().map(|p| p.files).sum(),
        rows: properties.iter().map(|p| p.rows).sum(),
        bytes: properties.iter().map(|p| p.bytes).sum(),
        properties,
        checks,
        warnings,
        runs,
    })
}

/// A file the committed manifests leave: its rows, its bytes and the run that wrote it.
type Live = BTreeMap<String, (u64, u64, String)>;

/// What the committed manifests leave, applied oldest first (each run adds its files and
/// removes those it replaced), and the committed runs. A run stopped while publishing is a
/// stray unless a live run holds the lock (it may be that run).
fn live_files(
    store: &dyn Dataset,
    manifests: &[Manifest],
    locked: bool,
    strays: &mut Check,
) -> (Live, Vec<String>) {
    let mut live = Live::new();
    let mut runs = Vec::new();
    for m in manifests {
        if m.state == STATE_PUBLISHING {
            if !locked {
                strays.problems.push(format!(
                    "{}: run {} stopped while publishing (skewer recover finishes it)",
                    store.name(&format!("_skewer/runs/{}.json", m.run_id)),
                    m.run_id
                ));
            }
            continue;
        }
        if m.state != STATE_COMMITTED {
            continue;
        }
        runs.push(m.run_id.clone());
        for r in &m.replaced {
            live.remove(r);
        }
        for f in &m.files {
            live.insert(f.path.clone(), (f.rows, f.bytes, m.run_id.clone()));
        }
    }
    (live, runs)
}

/// Reads every data file's footer and sort columns (several at once) and checks it against
/// the schema, its order and the manifests; gives the files per property.
fn check_files(
    store: &dyn Dataset,
    data: Vec<(&str, u64, String)>,
    live: &Live,
    [schema, sorted, listed]: [&mut Check; 3],
) -> Result<Vec<PropertyReport>> {
    let checked = crate::par::par_map(&data, store.parallel_reads(), |(rel, size, _)| {
        let handle = store.open(rel, *size)?;
        Ok(FileCheck::read(handle, &store.name(rel)))
    });
    let mut properties: BTreeMap<String, PropertyReport> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for ((rel, size, property), file) in data.into_iter().zip(checked) {
        seen.insert(rel);
        let rows = match file? {
            Err(problem) => {
                schema.problems.push(problem);
                0
            }
            Ok(f) => {
                schema.problems.extend(f.schema_problem);
                sorted.problems.extend(f.order_problem);
                f.rows
            }
        };
        match live.get(rel) {
            None => listed.problems.push(format!(
                "{}: not in any committed manifest (written by something else, or left by a crash)",
                store.name(rel)
            )),
            Some((want_rows, want_bytes, run)) if (*want_rows, *want_bytes) != (rows, size) => {
                listed.problems.push(format!(
                    "{}: {rows} rows and {size} bytes, but run {run}'s manifest says {want_rows} rows and {want_bytes} bytes",
                    store.name(rel)
                ))
            }
            Some(_) => {}
        }
        let p = properties
            .entry(property.clone())
            .or_insert_with(|| PropertyReport {
                property,
                smallest_file: u64::MAX,
                ..Default::default()
            });
        p.files += 1;
        p.rows += rows;
        p.bytes += size;
        p.smallest_file = p.smallest_file.min(size);
        p.largest_file = p.largest_file.max(size);
    }
    for (rel, (_, _, run)) in live {
        if !seen.contains(rel.as_str()) {
            listed.problems.push(format!(
                "{}: listed by run {run}'s manifest but missing",
                store.name(rel)
            ));
        }
    }
    Ok(properties.into_values().collect())
}

/// What is worth a look though no check failed: small files beside large ones, and the
/// latest run's reducer loads far from even.
fn warnings(properties: &[PropertyReport], manifests: &[Manifest]) -> Vec<String> {
    let mut warnings = Vec::new();
    for p in properties {
        if p.files > 1 && p.smallest_file < SMALL_FILE && p.largest_file >= 2 * SMALL_FILE {
            warnings.push(format!(
                "small files: property {:?} has {} files, the smallest {}",
                p.property,
                p.files,
                crate::units::format_bytes(p.smallest_file)
            ));
        }
    }
    if let Some(m) = manifests.iter().rev().find(|m| m.state == STATE_COMMITTED) {
        let loads: Vec<u64> = m.reducers.iter().map(|r| r.rows).collect();
        if let Some(skew) = planner::max_over_mean(&loads).filter(|&s| s > SKEWED) {
            warnings.push(format!(
                "skew: the latest run ({}) had reducer load max/mean {:.2} (the plan predicted {:.2})",
                m.run_id,
                skew,
                m.plan.predicted_max_over_mean
            ));
        }
    }
    warnings
}

/// What one file's footer and sort columns say.
struct FileCheck {
    rows: u64,
    schema_problem: Option<String>,
    order_problem: Option<String>,
}

impl FileCheck {
    /// `Err`: the file cannot be read as Parquet at all.
    fn read(handle: Handle, name: &str) -> std::result::Result<FileCheck, String> {
        let reader = SerializedFileReader::new(crate::source::PreadFile::new(handle))
            .map_err(|e| format!("{name}: not a readable Parquet file: {e}"))?;
        let meta = reader.metadata().file_metadata();
        let rows = u64::try_from(meta.num_rows()).unwrap_or(0);
        if let Some(problem) = crate::sink::schema_mismatch(meta.schema()) {
            return Ok(FileCheck {
                rows,
                schema_problem: Some(format!("{name}: {problem}")),
                order_problem: None,
            });
        }
        let order_problem = check_order(&reader).map_err(|e| format!("{name}: {e}"))?;
        Ok(FileCheck {
            rows,
            schema_problem: None,
            order_problem: order_problem.map(|p| format!("{name}: {p}")),
        })
    }
}

/// The first place `(object_id, timestamp)` goes backwards, if any. Columns 0 and 1 (the
/// schema was checked).
fn check_order<R: FileReader>(reader: &R) -> std::result::Result<Option<String>, String> {
    let mut last: Option<(i64, i64)> = None;
    let mut row = 0u64;
    let (mut ids, mut times) = (Vec::new(), Vec::new());
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(|e| e.to_string())?;
        let n = group.metadata().num_rows() as usize;
        for (c, out) in [(0, &mut ids), (1, &mut times)] {
            out.clear();
            match group.get_column_reader(c).map_err(|e| e.to_string())? {
                ColumnReader::Int64ColumnReader(mut r) => {
                    r.read_records(n, None, None, out)
                        .map_err(|e| e.to_string())?;
                }
                _ => return Err(format!("column {c} is not INT64")),
            }
        }
        for (&o, &t) in ids.iter().zip(&times) {
            if let Some(prev) = last
                && (o, t) < prev
            {
                return Ok(Some(format!(
                    "row {row} (row group {g}) has object_id {o}, timestamp {t} after object_id {}, timestamp {}: not sorted",
                    prev.0, prev.1
                )));
            }
            last = Some((o, t));
            row += 1;
        }
    }
    Ok(None)
}

/// The report for people.
pub fn table(r: &Report, top: usize) -> String {
    use crate::units::{format_bytes, format_count};
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} properties, {} files, {} rows, {} ({} committed runs)",
        r.dataset,
        format_count(r.properties.len() as u64),
        format_count(r.files as u64),
        format_count(r.rows),
        format_bytes(r.bytes),
        r.runs.len()
    );
    let mut by_size: Vec<&PropertyReport> = r.properties.iter().collect();
    by_size.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.property.cmp(&b.property)));
    let _ = writeln!(
        out,
        "\n  {:<38} {:>6} {:>14} {:>11} {:>11} {:>11}",
        "property", "files", "rows", "bytes", "smallest", "largest"
    );
    let shown = if top == 0 {
        by_size.len()
    } else {
        top.min(by_size.len())
    };
    for p in &by_size[..shown] {
        let _ = writeln!(
            out,
            "  {:<38} {:>6} {:>14} {:>11} {:>11} {:>11}",
            crate::units::clip(&p.property, 38),
            p.files,
            format_count(p.rows),
            format_bytes(p.bytes),
            format_bytes(p.smallest_file),
            format_bytes(p.largest_file)
        );
    }
    if shown < by_size.len() {
        let rest = &by_size[shown..];
        let _ = writeln!(
            out,
            "  {:<38} {:>6} {:>14} {:>11}",
            format!("… {} more properties", rest.len()),
            rest.iter().map(|p| p.files).sum::<usize>(),
            format_count(rest.iter().map(|p| p.rows).sum()),
            format_bytes(rest.iter().map(|p| p.bytes).sum())
        );
    }
    out.push('\n');
    for c in &r.checks {
        let _ = writeln!(out, "{} {}", if c.ok { "ok  " } else { "FAIL" }, c.check);
        for p in c.problems.iter().take(20) {
            let _ = writeln!(out, "       {p}");
        }
        if c.problems.len() > 20 {
            let _ = writeln!(out, "       … and {} more", c.problems.len() - 20);
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warn {w}");
    }
    out
}
