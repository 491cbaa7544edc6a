//! Commit: a run's staged files → published partitions, crash-safe, plus what the run leaves
//! for people and for the next plan.
//!
//! ```text
//!  1 stage     _skewer/staging/<run>/[dt=…/]property_name=<p>/   the partition's whole new state
//!              (append: hard links to the files already there, beside the new ones)
//!  2 manifest  _skewer/runs/<run>.json, state "publishing": partitions, files added, replaced
//!  3 swap      each partition folder atomically exchanged with its staged one
//!              (renameat2 RENAME_EXCHANGE; where unsupported, two renames)
//!  4 history   _skewer/staging/<run>/_history.json → _skewer/history/<run>.json
//!  5 commit    manifest state "committed"; staging and replaced folders removed
//! ```
//!
//! A crash at any point leaves every partition wholly old or wholly new: a swap is one atomic
//! exchange. (On a file system without exchange there is one instant, between two renames,
//! where a partition folder is absent; recovery completes it.) Every step is idempotent and
//! detectable, a partition holding `part-<run>-*` files being already swapped, so the next
//! run, or `skewer recover`, rolls an interrupted publish forward from its manifest. A crash
//! before the manifest leaves staging only, which recovery removes: nothing was published.
//!
//! Staging lives inside the dataset, so every step is a rename on one file system; readers of
//! Hive layouts skip `_skewer/`. One run at a time holds `_skewer/lock`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::route::Reject;

/// The manifest format this skewer writes.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;
pub const STATE_PUBLISHING: &str = "publishing";
pub const STATE_COMMITTED: &str = "committed";

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
    pub fn runs_dir(&self) -> PathBuf {
        self.meta().join("runs")
    }
    pub fn history_dir(&self) -> PathBuf {
        self.meta().join("history")
    }
    pub fn manifest(&self, run: &str) -> PathBuf {
        self.runs_dir().join(format!("{run}.json"))
    }
    pub fn history_record(&self, run: &str) -> PathBuf {
        self.history_dir().join(format!("{run}.json"))
    }
    /// Where a run's history record waits until its publish completes.
    pub fn pending_history(&self, run: &str) -> PathBuf {
        self.staging(run).join("_history.json")
    }
    pub fn rejects(&self, run: &str) -> PathBuf {
        self.meta().join("rejects").join(format!("{run}.ndjson"))
    }
    pub fn lock_file(&self) -> PathBuf {
        self.meta().join("lock")
    }
}

/// Test hook: `SKEWER_FAIL_AT=<point>` aborts the process at that step of a publish, as a
/// crash would (no destructors, no cleanup). Points: `staged`, `manifest`, `swap:<n>` (after
/// the n-th partition swap), `aside:<n>` (between the two renames of the n-th fallback swap
/// of an existing partition), `history`, `committed`.
pub(crate) fn fail_point(point: &str) {
    if std::env::var("SKEWER_FAIL_AT").is_ok_and(|p| p == point) {
        eprintln!("SKEWER_FAIL_AT={point}: aborting");
        std::process::abort();
    }
}

/// Whether the atomic exchange may be used (`SKEWER_NO_EXCHANGE=1` tests the fallback).
fn exchange_allowed() -> bool {
    std::env::var_os("SKEWER_NO_EXCHANGE").is_none()
}

// ---------------------------------------------------------------------------------------
// The lock
// ---------------------------------------------------------------------------------------

/// Who holds a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    pub pid: u32,
    pub host: String,
    /// The process's start time in clock ticks since boot, telling a live owner from a new
    /// process that reused its pid.
    pub process_start: Option<u64>,
    pub since: String,
    pub run_id: String,
}

/// The dataset lock, released on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// The stale lock this one replaced, if any (its owner had died).
    pub took_over: Option<LockOwner>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// A process's start time (field 22 of `/proc/<pid>/stat`), if it is alive here.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

impl LockOwner {
    /// Whether the owner is certainly gone: on this host, and no process with its pid and
    /// start time exists. An owner on another host is assumed alive.
    pub(crate) fn is_stale(&self) -> bool {
        if self.host != host_name() {
            return false;
        }
        match process_start(self.pid) {
            None => true,
            Some(start) => self.process_start.is_some_and(|s| s != start),
        }
    }
}

impl LockOwner {
    /// This process, running `run_id`.
    pub(crate) fn me(run_id: &str) -> LockOwner {
        LockOwner {
            pid: std::process::id(),
            host: host_name(),
            process_start: process_start(std::process::id()),
            since: crate::units::format_utc(crate::units::now_ms()),
            run_id: run_id.to_string(),
        }
    }

    /// For messages: who, where, since when.
    pub(crate) fn describe(&self) -> String {
        format!(
            "run {} (pid {} on {}, since {})",
            self.run_id, self.pid, self.host, self.since
        )
    }
}

/// Takes the dataset's lock for `run_id`. Fails if a live run holds it; replaces a stale one.
pub fn lock(layout: &Layout, run_id: &str) -> Result<Lock> {
    let path = layout.lock_file();
    make_parent(&path)?;
    let me = LockOwner::me(run_id);
    let body = serde_json::to_vec(&me).map_err(|e| Error::Bug(e.to_string()))?;
    let mut took_over = None;
    for _ in 0..2 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(&body).map_err(|e| Error::io(&path, e))?;
                return Ok(Lock { path, took_over });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = fs::read(&path).unwrap_or_default();
                match serde_json::from_slice::<LockOwner>(&text) {
                    Ok(owner) if !owner.is_stale() => {
                        return Err(Error::Locked {
                            path,
                            owner: owner.describe(),
                        });
                    }
                    // A dead owner, or a lock file cut short by a crash: take it over.
                    owner => {
                        took_over = owner.ok();
                        let _ = fs::remove_file(&path);
                    }
                }
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Err(Error::Locked {
        path,
        owner: "another process that took it at the same moment".into(),
    })
}

// ---------------------------------------------------------------------------------------
// Publish and recover
// ---------------------------------------------------------------------------------------

/// Files of a run are named `part-<run>-…`: a partition holding one has been swapped.
fn has_run_files(dir: &Path, run: &str) -> Result<bool> {
    let prefix = format!("part-{run}-");
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(|e| Error::io(dir, e))?;
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Partition folders (`…/property_name=…`) staged for `run`, relative to the dataset, sorted.
pub fn staged_partitions(layout: &Layout, run: &str) -> Result<Vec<String>> {
    let root = layout.staging(run);
    let mut out = Vec::new();
    collect_partitions(&root, &root, &mut out)?;
    let mut rel: Vec<String> = out
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    rel.sort();
    Ok(rel)
}

fn collect_partitions(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
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
            collect_partitions(root, &path, out)?;
        }
    }
    Ok(())
}

fn files_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(dir, e))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    names.sort();
    Ok(names)
}

/// Before the manifest: completes each staged partition's new state and lists the files that
/// publishing will replace (overwrite) or keep beside the new ones (append, as hard links).
pub fn prepare(layout: &Layout, run: &str, mode: Mode) -> Result<(Vec<String>, Vec<String>)> {
    let partitions = staged_partitions(layout, run)?;
    let mut replaced = Vec::new();
    for rel in &partitions {
        let target = layout.dataset.join(rel);
        let staged = layout.staging(run).join(rel);
        for name in files_in(&target)? {
            match mode {
                Mode::Overwrite => replaced.push(format!("{rel}/{name}")),
                Mode::Append => {
                    let to = staged.join(&name);
                    if !to.exists() {
                        fs::hard_link(target.join(&name), &to)
                            .map_err(|e| Error::io(target.join(&name), e))?;
                    }
                }
            }
        }
    }
    replaced.sort();
    Ok((partitions, replaced))
}

/// Publishes a prepared run: manifest (state `publishing`), swaps, history, commit mark,
/// cleanup. `manifest.partitions` must be what [`prepare`] returned.
pub fn publish(layout: &Layout, manifest: &mut Manifest) -> Result<()> {
    fail_point("staged");
    manifest.state = STATE_PUBLISHING.into();
    write_manifest(layout, manifest)?;
    fail_point("manifest");
    finish(layout, manifest)
}

/// Steps 3–5 (idempotent): what recovery repeats for an interrupted publish.
fn finish(layout: &Layout, manifest: &mut Manifest) -> Result<()> {
    let run = manifest.run_id.clone();
    let mut asides = 0;
    for (i, rel) in manifest.partitions.iter().enumerate() {
        swap(layout, &run, rel, &mut asides)?;
        fail_point(&format!("swap:{}", i + 1));
    }
    let pending = layout.pending_history(&run);
    if pending.exists() {
        let to = layout.history_record(&run);
        make_parent(&to)?;
        rename(&pending, &to)?;
    }
    fail_point("history");
    manifest.state = STATE_COMMITTED.into();
    write_manifest(layout, manifest)?;
    fail_point("committed");
    cleanup(layout, &run)
}

/// Swaps one partition into place, unless it already is.
fn swap(layout: &Layout, run: &str, rel: &str, asides: &mut usize) -> Result<()> {
    let target = layout.dataset.join(rel);
    let staged = layout.staging(run).join(rel);
    if has_run_files(&target, run)? {
        return Ok(());
    }
    if !staged.exists() {
        return Err(Error::Bug(format!(
            "partition {rel} of run {run} is neither published nor staged"
        )));
    }
    if !target.exists() {
        // A new partition (or a fallback swap cut between its two renames).
        make_parent(&target)?;
        return rename(&staged, &target);
    }
    if exchange_allowed() && exchange(&staged, &target).is_ok() {
        // The staged path now holds the old files; cleanup removes them.
        return Ok(());
    }
    let aside = layout.replaced(run).join(rel);
    make_parent(&aside)?;
    rename(&target, &aside)?;
    *asides += 1;
    fail_point(&format!("aside:{asides}"));
    rename(&staged, &target)
}

/// Atomically exchanges two directories (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

fn cleanup(layout: &Layout, run: &str) -> Result<()> {
    remove_dir(&layout.replaced(run))?;
    remove_dir(&layout.staging(run))?;
    // Leave no empty `staging/` or `replaced/` behind once nothing else is in flight.
    for parent in [
        layout.meta().join("staging"),
        layout.meta().join("replaced"),
    ] {
        let _ = fs::remove_dir(parent);
    }
    Ok(())
}

/// What [`recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Runs whose interrupted publish was rolled forward.
    pub rolled_forward: Vec<String>,
    /// Runs that crashed before publishing anything; their staged files were removed.
    pub discarded: Vec<String>,
}

/// Rolls every interrupted publish forward and removes what runs left unpublished. Call with
/// the lock held.
pub fn recover(layout: &Layout) -> Result<Recovery> {
    let mut done = Recovery::default();
    for name in files_in(&layout.runs_dir())? {
        let Some(run) = name.strip_suffix(".json") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let mut manifest = read_manifest(layout, run)?;
        if manifest.state == STATE_PUBLISHING {
            finish(layout, &mut manifest)?;
            done.rolled_forward.push(run.to_string());
        }
    }
    for run in files_in(&layout.meta().join("staging"))? {
        let published = layout.manifest(&run).exists();
        cleanup(layout, &run)?;
        if !published {
            done.discarded.push(run);
        }
    }
    for run in files_in(&layout.meta().join("replaced"))? {
        cleanup(layout, &run)?;
    }
    Ok(done)
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

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

/// Writes `bytes` to `path` through a temporary sibling, fsync and a rename, so a reader (or
/// a crash) never sees half a file.
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

// ---------------------------------------------------------------------------------------
// Manifests, history, rejects
// ---------------------------------------------------------------------------------------

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
    /// Rows the plan predicted for it (manifests before 0.1 lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_rows: Option<u64>,
}

/// Where a run's wall time went (milliseconds): planning (discovery, recovery, sampling),
/// mapping (until every mapper finished), reducing (sorting, merging, writing what was left)
/// and publishing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub plan_ms: u64,
    pub map_ms: u64,
    pub reduce_ms: u64,
    /// Not known when the manifest is written; in the run's summary only.
    pub publish_ms: u64,
}

/// `_skewer/runs/<run>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub run_id: String,
    /// `publishing` while partitions are being swapped, then `committed`.
    pub state: String,
    pub started_at: String,
    pub finished_at: String,
    pub mode: Mode,
    pub partition: Option<String>,
    pub inputs: Vec<InputEntry>,
    pub plan: PlanEntry,
    pub counts: Counts,
    pub reducers: Vec<ReducerEntry>,
    #[serde(default)]
    pub timings: Timings,
    /// Partition folders this run swaps, relative to the dataset.
    pub partitions: Vec<String>,
    /// Files this run adds, relative to the dataset.
    pub files: Vec<FileEntry>,
    /// Files this run replaces (overwrite mode), relative to the dataset.
    pub replaced: Vec<String>,
}

/// Writes the manifest (atomically).
pub fn write_manifest(layout: &Layout, manifest: &Manifest) -> Result<()> {
    let value =
        serde_json::to_value(manifest).map_err(|e| Error::Bug(format!("manifest to JSON: {e}")))?;
    write_atomic(
        &layout.manifest(&manifest.run_id),
        crate::jsonfmt::to_lines(&value).as_bytes(),
    )
}

/// Reads a run's manifest.
pub fn read_manifest(layout: &Layout, run: &str) -> Result<Manifest> {
    let path = layout.manifest(run);
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::json(&path, &e))
}

/// Stages the run's history record, to be moved into `_skewer/history` by the publish.
pub fn stage_history(layout: &Layout, record: &planner::RunRecord) -> Result<()> {
    let value =
        serde_json::to_value(record).map_err(|e| Error::Bug(format!("history to JSON: {e}")))?;
    write_atomic(
        &layout.pending_history(&record.run_id),
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

    fn manifest(run: &str, mode: Mode, partitions: Vec<String>, replaced: Vec<String>) -> Manifest {
        Manifest {
            schema_version: MANIFEST_SCHEMA_VERSION,
            run_id: run.into(),
            state: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            mode,
            partition: None,
            inputs: vec![],
            plan: PlanEntry {
                digest: String::new(),
                reducers: 1,
                basis: planner::Basis::Empty,
                predicted_max_over_mean: 1.0,
            },
            counts: Counts::default(),
            reducers: vec![],
            timings: Timings::default(),
            partitions,
            files: vec![],
            replaced,
        }
    }

    fn publish_run(layout: &Layout, run: &str, mode: Mode) -> Vec<String> {
        let (partitions, replaced) = prepare(layout, run, mode).unwrap();
        let mut m = manifest(run, mode, partitions, replaced.clone());
        publish(layout, &mut m).unwrap();
        assert_eq!(read_manifest(layout, run).unwrap().state, STATE_COMMITTED);
        replaced
    }

    #[test]
    fn overwrite_replaces_only_touched_partitions_and_append_adds() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        stage(&layout, "r1", "property_name=a", "part-r1-r0.parquet");
        stage(&layout, "r1", "property_name=b", "part-r1-r1.parquet");
        assert!(publish_run(&layout, "r1", Mode::Overwrite).is_empty());

        stage(&layout, "r2", "property_name=a", "part-r2-r0.parquet");
        assert_eq!(
            publish_run(&layout, "r2", Mode::Overwrite),
            ["property_name=a/part-r1-r0.parquet"]
        );
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
        assert!(publish_run(&layout, "r3", Mode::Append).is_empty());
        assert_eq!(
            tree(dir.path()),
            [
                "dt=2026-11-20/property_name=b/part-r3-r0.parquet",
                "property_name=a/part-r2-r0.parquet",
                "property_name=b/part-r1-r1.parquet",
                "property_name=b/part-r3-r1.parquet",
            ]
        );
        assert!(
            !layout.meta().join("staging").exists() && !layout.meta().join("replaced").exists()
        );
    }

    #[test]
    fn recovery_finishes_an_interrupted_publish_and_discards_unpublished_staging() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        stage(&layout, "r1", "property_name=a", "part-r1-r0.parquet");
        publish_run(&layout, "r1", Mode::Overwrite);

        // r2 wrote its manifest and swapped nothing yet; r3 staged but never published.
        stage(&layout, "r2", "property_name=a", "part-r2-r0.parquet");
        stage(&layout, "r2", "property_name=c", "part-r2-r1.parquet");
        let (partitions, replaced) = prepare(&layout, "r2", Mode::Overwrite).unwrap();
        let mut m = manifest("r2", Mode::Overwrite, partitions, replaced);
        m.state = STATE_PUBLISHING.into();
        write_manifest(&layout, &m).unwrap();
        stage(&layout, "r3", "property_name=a", "part-r3-r0.parquet");

        let done = recover(&layout).unwrap();
        assert_eq!(done.rolled_forward, ["r2"]);
        assert_eq!(done.discarded, ["r3"]);
        assert_eq!(
            tree(dir.path()),
            [
                "property_name=a/part-r2-r0.parquet",
                "property_name=c/part-r2-r1.parquet"
            ]
        );
        assert_eq!(read_manifest(&layout, "r2").unwrap().state, STATE_COMMITTED);
        // Recovery is idempotent.
        assert_eq!(recover(&layout).unwrap(), Recovery::default());
    }

    #[test]
    fn the_lock_keeps_a_second_run_out_and_a_stale_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let held = lock(&layout, "r1").unwrap();
        let err = lock(&layout, "r2").unwrap_err().to_string();
        assert!(
            err.contains("run r1") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        drop(lock(&layout, "r2").unwrap());

        // A lock left by a process that no longer exists.
        let dead = LockOwner {
            pid: u32::MAX - 7,
            host: host_name(),
            process_start: Some(1),
            since: "2026-11-20T02:00:00Z".into(),
            run_id: "crashed".into(),
        };
        fs::write(layout.lock_file(), serde_json::to_vec(&dead).unwrap()).unwrap();
        let taken = lock(&layout, "r3").unwrap();
        assert_eq!(
            taken.took_over.as_ref().map(|o| o.run_id.as_str()),
            Some("crashed")
        );
        drop(taken);
        // A lock file cut short by a crash is stale too.
        fs::write(layout.lock_file(), b"{\"pid\": 1").unwrap();
        assert!(lock(&layout, "r4").is_ok());
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
