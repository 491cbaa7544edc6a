//! Reads volume history from disk: a directory of run records (a dataset's `_skewer/history`)
//! or one file holding a record or an array of them (format: `history/README.md`).
//!
//! Gives a validated [`planner::History`]. Every failure names the file, and for JSON errors
//! the line and column; a record of another `schema_version` is refused before its fields are
//! interpreted, so the message says "newer format" rather than "missing field".

use std::fs;
use std::path::{Path, PathBuf};

use planner::{HISTORY_SCHEMA_VERSION, History, RunRecord};
use serde::Deserialize;

use crate::error::{Error, Result};

/// A history read from disk, with where it came from.
#[derive(Debug)]
pub struct LoadedHistory {
    pub history: History,
    /// The directory or file it was read from.
    pub source: PathBuf,
    /// The record files read, in name order.
    pub files: Vec<PathBuf>,
}

/// Reads every run record under `path` (a directory or a file).
pub fn load(path: &Path) -> Result<LoadedHistory> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let files = if meta.is_dir() {
        record_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut records = Vec::new();
    for file in files {
        let bytes = fs::read(&file).map_err(|e| Error::io(&file, e))?;
        records.push((file, bytes));
    }
    from_records(path, records)
}

/// Reads a history from wherever `location` is: a folder of run records (local or in an
/// object store), or one file of them.
pub fn load_from(
    location: &crate::store::Location,
    stores: &crate::store::Stores,
) -> Result<LoadedHistory> {
    if let crate::store::Location::Local(path) = location {
        // Local files get the finer messages (a dangling link is named, not skipped).
        return load(path);
    }
    let folder = crate::store::folder(location, stores)?;
    let mut records = Vec::new();
    if folder.is_folder("")? {
        for (rel, _) in folder.list("")? {
            if rel.contains('/') || !is_record_name(&rel) {
                continue;
            }
            // Listed, then removed (by a concurrent publish's cleanup): not a record.
            if let Some(bytes) = folder.read(&rel)? {
                records.push((PathBuf::from(folder.name(&rel)), bytes));
            }
        }
    } else {
        let Some(bytes) = folder.read("")? else {
            return Err(Error::io(
                location.to_string(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder or object"),
            ));
        };
        records.push((PathBuf::from(location.to_string()), bytes));
    }
    from_records(Path::new(&location.to_string()), records)
}

/// A history from run-record files already read: (name, bytes), in name order.
pub fn from_records(source: &Path, records: Vec<(PathBuf, Vec<u8>)>) -> Result<LoadedHistory> {
    let path = source;
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut origin: Vec<(String, usize)> = Vec::new(); // run id → index into `files`
    let files: Vec<PathBuf> = records.iter().map(|(p, _)| p.clone()).collect();
    for (i, (file, bytes)) in records.iter().enumerate() {
        for run in read_file(file, bytes)? {
            origin.push((run.run_id.clone(), i));
            runs.push(run);
        }
    }
    if runs.is_empty() {
        return Err(Error::EmptyHistory { path: path.into() });
    }
    origin.sort();
    if let Some(w) = origin.windows(2).find(|w| w[0].0 == w[1].0) {
        let (first, second) = (&files[w[0].1], &files[w[1].1]);
        let also = if first == second {
            "twice in this file".to_string()
        } else {
            format!("also in {}", first.display())
        };
        return Err(Error::BadHistory {
            path: second.clone(),
            reason: format!("run {:?} appears {also}", w[0].0),
        });
    }
    // Every record was checked with its file name above, so this cannot fail on input.
    let history = History::new(runs).map_err(|e| Error::Bug(format!("validated history: {e}")))?;
    Ok(LoadedHistory {
        history,
        source: path.into(),
        files,
    })
}

/// A run record's file name: `*.json`, not hidden or in progress (`.`/`_`).
fn is_record_name(name: &str) -> bool {
    !name.starts_with(['.', '_']) && name.ends_with(".json")
}

/// `*.json` files directly in `dir`, skipping hidden and in-progress (`.`/`_`) ones, by name.
fn record_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !is_record_name(&name) {
            continue;
        }
        let path = entry.path();
        // Follow links; a dangling or unreadable entry is reported, not silently skipped.
        let meta = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Only the version, read first so that a record of another version gets a clear message.
#[derive(Deserialize)]
struct VersionProbe {
    schema_version: Option<serde_json::Value>,
    run_id: Option<serde_json::Value>,
}

fn read_file(path: &Path, bytes: &[u8]) -> Result<Vec<RunRecord>> {
    let bad = |reason: String| Error::BadHistory {
        path: path.into(),
        reason,
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let is_array = match first {
        None => return Err(bad("the file is empty".into())),
        Some(b'[') => true,
        Some(b'{') => false,
        Some(_) => {
            return Err(bad(
                "not a history record: expected a JSON object or an array of them".into(),
            ));
        }
    };

    // Typed parses give line and column for both syntax and type errors (an untagged
    // one-or-many enum would not), so arrays and single records are parsed separately.
    let probes: Vec<VersionProbe> = if is_array {
        serde_json::from_slice(bytes).map_err(|e| Error::json(path, &e))?
    } else {
        vec![serde_json::from_slice(bytes).map_err(|e| Error::json(path, &e))?]
    };
    for (i, probe) in probes.iter().enumerate() {
        let which = match &probe.run_id {
            Some(id) => format!("run {id}"),
            None if is_array => format!("record {} of the array", i + 1),
            None => "the record".into(),
        };
        match &probe.schema_version {
            None => return Err(bad(format!("{which} has no schema_version"))),
            Some(v) if v.as_u64() == Some(u64::from(HISTORY_SCHEMA_VERSION)) => {}
            Some(v) => {
                return Err(bad(format!(
                    "{which}: schema_version is {v}, this skewer reads {HISTORY_SCHEMA_VERSION} \
                     (written by a newer skewer?)"
                )));
            }
        }
    }

    let runs: Vec<RunRecord> = if is_array {
        serde_json::from_slice(bytes).map_err(|e| Error::json(path, &e))?
    } else {
        vec![serde_json::from_slice(bytes).map_err(|e| Error::json(path, &e))?]
    };
    for run in &runs {
        run.check().map_err(|e| bad(e.to_string()))?;
    }
    Ok(runs)
}
