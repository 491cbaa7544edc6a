//! Commit: a run's staged files → published partitions, plus what the run leaves behind for
//! people and for the next plan (manifest, history record, rejects).
//!
//! ```text
//!  <dataset>/_skewer/staging/<run>/[dt=…/]property_name=<p>/part-<run>-r<r>.parquet
//!        │ publish, per staged partition folder:
//!        │   overwrite: the old folder moves aside, the staged one renames into place
//!        │   append:    the staged files rename into the (possibly new) folder
//!        ▼
//!  <dataset>/[dt=…/]property_name=<p>/part-<run>-r<r>.parquet
//!  <dataset>/_skewer/runs/<run>.json      manifest: inputs, plan, counts, files, replaced
//!  <dataset>/_skewer/history/<run>.json   actual volumes (the next plan's input)
//!  <dataset>/_skewer/rejects/<run>.ndjson records that could not be read
//! ```
//!
//! Staging lives inside the dataset, so every publish step is a rename on one file system;
//! readers of Hive layouts skip `_skewer/`. Metadata files are written under a temporary
//! name and renamed, so a reader never sees half a manifest.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::route::Reject;

/// The manifest format this skewer writes.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// How a run's partitions meet the existing dataset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replace exactly the partitions this run writes; keep every other one.
    #[default]
    Overwrite,
    /// Add this run's files beside the existing ones.
    Append,
}

/// `_skewer/…` paths of a dataset.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dataset: PathBuf,
}

impl Layout {
    pub fn new(dataset: impl Into<PathBuf>) -> Self {
        Layout {
            dataset: dataset.into(),
        }
    }
    pub fn meta(&self) -> PathBuf {
        self.dataset.join("_skewer")
    }
    pub fn staging(&self, run: &str) -> PathBuf {
        self.meta().join("staging").join(run)
    }
    pub fn replaced(&self, run: &str) -> PathBuf {
        self.meta().join("replaced").join(run)
    }
    pub fn history_dir(&self) -> PathBuf {
        self.meta().join("history")
    }
    pub fn manifest(&self, run: &str) -> PathBuf {
        self.meta().join("runs").join(format!("{run}.json"))
    }
    pub fn history_record(&self, run: &str) -> PathBuf {
        self.history_dir().join(format!("{run}.json"))
    }
    pub fn rejects(&self, run: &str) -> PathBuf {
        self.meta().join("rejects").join(format!("{run}.ndjson"))
    }
}

/// Moves every staged partition folder into the dataset. Returns the dataset-relative paths
/// of the files this replaced (overwrite mode), sorted.
pub fn publish(layout: &Layout, run: &str, mode: Mode) -> Result<Vec<String>> {
    let staging = layout.staging(run);
    let mut partitions = Vec::new();
    staged_partitions(&staging, &staging, &mut partitions)?;
    partitions.sort();

    let mut replaced = Vec::new();
    let aside = layout.replaced(run);
    for rel in &partitions {
        let staged = staging.join(rel);
        let target = layout.dataset.join(rel);
        match mode {
            Mode::Overwrite => {
                if target.exists() {
                    for name in files_in(&target)? {
                        replaced.push(relative(rel, &name));
                    }
                    let moved = aside.join(rel);
                    make_parent(&moved)?;
                    rename(&target, &moved)?;
                }
                make_parent(&target)?;
                rename(&staged, &target)?;
            }
            Mode::Append => {
                fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
                for name in files_in(&staged)? {
                    rename(&staged.join(&name), &target.join(&name))?;
                }
            }
        }
    }
    remove_dir(&aside)?;
    remove_dir(&staging)?;
    // Leave no empty `staging/` or `replaced/` behind once nothing else is in flight.
    for parent in [
        layout.meta().join("staging"),
        layout.meta().join("replaced"),
    ] {
        let _ = fs::remove_dir(parent);
    }
    replaced.sort();
    Ok(replaced)
}

/// Folders named `property_name=…` under `dir`, relative to `root`.
fn staged_partitions(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let rel = path.strip_prefix(root).expect("under root").to_path_buf();
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(crate::sink::PROPERTY_COLUMN)
        {
            out.push(rel);
        } else {
            staged_partitions(root, &path, out)?;
        }
    }
    Ok(())
}

fn files_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn relative(dir: &Path, name: &str) -> String {
    let mut s = dir.to_string_lossy().into_owned();
    s.push('/');
    s.push_str(name);
    s
}

fn make_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) => fs::create_dir_all(p).map_err(|e| Error::io(p, e)),
        None => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io(from, e))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Writes `bytes` to `path` through a temporary sibling and a rename, creating the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    make_parent(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    rename(&tmp, path)
}

/// What a run read, dropped and wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records met in the input (objects, or webhook events).
    pub records_read: u64,
    pub records_rejected: u64,
    /// Records read whole: `records_read = records_rejected + records_exploded`.
    pub records_exploded: u64,
    /// Of those, webhook events that were not property changes (no version to explode).
    pub events_without_version: u64,
    /// Versions rejected alone (Parquet input), not counted in `rows_exploded`.
    pub versions_rejected: u64,
    pub rows_exploded: u64,
    pub duplicates_dropped: u64,
    /// `rows_exploded = rows_written + duplicates_dropped`.
    pub rows_written: u64,
}

/// One input file as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputEntry {
    pub path: String,
    pub bytes: u64,
    pub format: String,
}

/// One file this run added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the dataset.
    pub path: String,
    pub property: String,
    pub reducer: u32,
    pub rows: u64,
    pub bytes: u64,
}

/// The plan a run followed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub digest: String,
    pub reducers: u32,
    pub basis: planner::Basis,
    pub predicted_max_over_mean: f64,
}

/// One reducer's actual work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducerEntry {
    pub reducer: u32,
    /// Rows routed to it (before duplicates were dropped).
    pub rows: u64,
    pub bytes: u64,
    pub wall_ms: u64,
}

/// `_skewer/runs/<run>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub run_id: String,
    pub state: String,
    pub started_at: String,
    pub finished_at: String,
    pub mode: Mode,
    pub partition: Option<String>,
    pub inputs: Vec<InputEntry>,
    pub plan: PlanEntry,
    pub counts: Counts,
    pub reducers: Vec<ReducerEntry>,
    pub files: Vec<FileEntry>,
    pub replaced: Vec<String>,
}

/// Writes the manifest.
pub fn write_manifest(layout: &Layout, manifest: &Manifest) -> Result<()> {
    let value =
        serde_json::to_value(manifest).map_err(|e| Error::Bug(format!("manifest to JSON: {e}")))?;
    write_atomic(
        &layout.manifest(&manifest.run_id),
        crate::jsonfmt::to_lines(&value).as_bytes(),
    )
}

/// Writes the run's history record (the next plan's input).
pub fn write_history(layout: &Layout, record: &planner::RunRecord) -> Result<()> {
    let value =
        serde_json::to_value(record).map_err(|e| Error::Bug(format!("history to JSON: {e}")))?;
    write_atomic(
        &layout.history_record(&record.run_id),
        crate::jsonfmt::to_lines(&value).as_bytes(),
    )
}

/// Writes the rejects, one JSON object per line, if there are any.
pub fn write_rejects(layout: &Layout, run: &str, rejects: &[Reject]) -> Result<()> {
    if rejects.is_empty() {
        return Ok(());
    }
    let mut out = Vec::new();
    for r in rejects {
        let line = serde_json::json!({
            "file": r.file.as_ref(),
            "line": r.line,
            "row_group": r.row_group,
            "record": r.record,
            "reason": r.reason,
        });
        serde_json::to_writer(&mut out, &line)
            .map_err(|e| Error::Bug(format!("reject to JSON: {e}")))?;
        out.push(b'\n');
    }
    write_atomic(&layout.rejects(run), &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(layout: &Layout, run: &str, rel: &str, file: &str) {
        let dir = layout.staging(run).join(rel);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file), run).unwrap();
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        walk(root, root, &mut out);
        out.retain(|p| !p.starts_with("_skewer"));
        out.sort();
        out
    }

    #[test]
    fn overwrite_replaces_only_touched_partitions_and_append_adds() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        stage(&layout, "r1", "property_name=a", "part-r1-r0.parquet");
        stage(&layout, "r1", "property_name=b", "part-r1-r1.parquet");
        assert_eq!(
            publish(&layout, "r1", Mode::Overwrite).unwrap(),
            Vec::<String>::new()
        );

        stage(&layout, "r2", "property_name=a", "part-r2-r0.parquet");
        let replaced = publish(&layout, "r2", Mode::Overwrite).unwrap();
        assert_eq!(replaced, ["property_name=a/part-r1-r0.parquet"]);
        assert_eq!(
            tree(dir.path()),
            [
                "property_name=a/part-r2-r0.parquet",
                "property_name=b/part-r1-r1.parquet"
            ]
        );

        stage(
            &layout,
            "r3",
            "dt=2026-11-20/property_name=b",
            "part-r3-r0.parquet",
        );
        stage(&layout, "r3", "property_name=b", "part-r3-r1.parquet");
        assert!(publish(&layout, "r3", Mode::Append).unwrap().is_empty());
        assert_eq!(
            tree(dir.path()),
            [
                "dt=2026-11-20/property_name=b/part-r3-r0.parquet",
                "property_name=a/part-r2-r0.parquet",
                "property_name=b/part-r1-r1.parquet",
                "property_name=b/part-r3-r1.parquet",
            ]
        );
        assert!(!layout.staging("r3").exists() && !layout.replaced("r2").exists());
    }

    #[test]
    fn atomic_writes_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/x.json");
        write_atomic(&path, b"{}").unwrap();
        write_atomic(&path, b"{\"v\": 2}").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"v\": 2}");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
