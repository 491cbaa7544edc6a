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

use super::meta::{
    LockOwner, Manifest, Mode, Recovery, STATE_COMMITTED, STATE_PUBLISHING, check_run_id,
    fail_point, injected,
};
use super::{DatasetLock, Folder, Location, LockState, Prepared};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::rejects::Reject;
use crate::source::{Handle, LocalFile};

/// Whether the atomic exchange may be used (`SKEWER_NO_EXCHANGE=1` tests the fallback).
fn exchange_allowed() -> bool {
    std::env::var_os("SKEWER_NO_EXCHANGE").is_none()
}

// ---------------------------------------------------------------------------------------
// The lock
// ---------------------------------------------------------------------------------------

/// The dataset lock: an exclusive `flock` on `_skewer/lock`, held while this value lives.
///
/// The operating system releases it when the process ends, however it ends, so there is no
/// stale lock to take over and no window between creating the file and claiming it. The file
/// itself stays: removing it would let a run lock a new file while another still holds the
/// old, unlinked one.
#[derive(Debug)]
pub struct Lock {
    file: fs::File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Clear the note before the lock goes. Unlock explicitly rather than by closing: a
        // child this process forks keeps a copy of the descriptor until it execs, and the
        // lock with it (a library running skewer beside threads that spawn processes).
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Takes the dataset's lock for `run_id`, or fails at once naming the run that holds it.
pub fn lock(layout: &Layout, run_id: &str) -> Result<Lock> {
    let path = layout.lock_file();
    make_parent(&path)?;
    let note = serde_json::to_vec(&LockOwner::me(run_id)).map_err(|e| Error::Bug(e.to_string()))?;
    // A lock file replaced while we waited for it (by a skewer that removed its lock file on
    // exit) is not the one the next run will lock: lock whatever the path names now.
    for _ in 0..8 {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| lock_file_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let text = fs::read(&path).unwrap_or_default();
                let owner = match LockOwner::parse(&text) {
                    Some(owner) => owner.describe(),
                    // The holder has not written its note yet, or something else holds it.
                    None => "another process (it has not said which run it is yet)".into(),
                };
                return Err(Error::Locked {
                    path,
                    owner,
                    hint: "the lock is released when that process ends (removing the file does not free it)",
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        if !same_file(&file, &path) {
            continue;
        }
        let mut file = file;
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        file.write_all(&note).map_err(|e| Error::io(&path, e))?;
        return Ok(Lock { file });
    }
    Err(Error::Io {
        path,
        source: std::io::Error::other("the lock file keeps being replaced by another process"),
    })
}

/// Whether `file` is still what `path` names (same device and inode).
fn same_file(file: &fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn lock_file_error(path: &Path, e: std::io::Error) -> Error {
    if path.is_dir() {
        return Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(
                "is a directory, not skewer's lock file: remove it (nothing in it is skewer's)",
            ),
        };
    }
    Error::io(path, e)
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
            .starts_with(crate::layout::PROPERTY_COLUMN)
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
                Mode::Overwrite | Mode::Merge | Mode::Upsert => {
                    replaced.push(format!("{rel}/{name}"))
                }
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
///
/// `Ok` once the run is published, with a warning for each step after that which failed
/// (they are repeated by the next run or `skewer recover`). An `Err` says exactly how far the
/// publish got and what to run.
pub fn publish(layout: &Layout, manifest: &mut Manifest) -> Result<Vec<String>> {
    fail_point("staged");
    // The staged files were synced as they were written; their folders are synced here, so
    // that nothing the manifest is about to name can vanish in a power loss.
    sync_dirs(&layout.staging(&manifest.run_id))?;
    manifest.state = STATE_PUBLISHING.into();
    write_manifest(layout, manifest)?;
    fail_point("manifest");
    finish(layout, manifest).map_err(|stopped| stopped.into_error(layout, manifest))
}

/// Where an interrupted publish stopped.
#[derive(Debug)]
struct Stopped {
    swapped: usize,
    cause: Error,
}

impl Stopped {
    fn into_error(self, layout: &Layout, manifest: &Manifest) -> Error {
        Error::PublishStopped {
            dataset: layout.dataset.display().to_string(),
            run: manifest.run_id.clone(),
            progress: crate::error::Progress::Swapped {
                swapped: self.swapped,
                total: manifest.partitions.len(),
            },
            cause: Box::new(self.cause),
        }
    }
}

/// Steps 3–5 (idempotent): what recovery repeats for an interrupted publish. Once every
/// partition is swapped and the history moved, the run is published: a failure to mark the
/// manifest or clean up is a warning.
fn finish(layout: &Layout, manifest: &mut Manifest) -> std::result::Result<Vec<String>, Stopped> {
    let run = manifest.run_id.clone();
    let mut asides = 0;
    let mut swapped = 0;
    let stop = |swapped, cause| Stopped { swapped, cause };
    for (i, rel) in manifest.partitions.iter().enumerate() {
        injected(&format!("swap:{}", i + 1))
            .and_then(|()| swap(layout, &run, rel, &mut asides))
            .map_err(|e| stop(swapped, e))?;
        swapped += 1;
        fail_point(&format!("swap:{}", i + 1));
    }
    // The swaps are renames: durable once the folders holding them are synced.
    let mut parents: Vec<PathBuf> = manifest
        .partitions
        .iter()
        .filter_map(|rel| layout.dataset.join(rel).parent().map(Path::to_path_buf))
        .collect();
    parents.sort();
    parents.dedup();
    for dir in &parents {
        sync_dir(dir).map_err(|e| stop(swapped, e))?;
    }
    let pending = layout.pending_history(&run);
    if pending.exists() {
        let to = layout.history_record(&run);
        make_parent(&to)
            .and_then(|()| rename(&pending, &to))
            .and_then(|()| sync_dir(&layout.history_dir()))
            .map_err(|e| stop(swapped, e))?;
    }
    fail_point("history");
    let mut warnings = Vec::new();
    manifest.state = STATE_COMMITTED.into();
    if let Err(e) = injected("commit").and_then(|()| write_manifest(layout, manifest)) {
        // What is on disk still says publishing; the summary must not say otherwise.
        manifest.state = STATE_PUBLISHING.into();
        warnings.push(format!(
            "the run is published, but its manifest could not be marked committed ({e}); the next run or skewer recover marks it"
        ));
        return Ok(warnings);
    }
    fail_point("committed");
    if let Err(e) = cleanup(layout, &run) {
        warnings.push(format!(
            "the run is published, but its staging folder could not be removed ({e}); the next run or skewer recover removes it"
        ));
    }
    Ok(warnings)
}

/// Swaps one partition into place, unless it already is.
fn swap(layout: &Layout, run: &str, rel: &str, asides: &mut usize) -> Result<()> {
    let target = layout.dataset.join(rel);
    let staged = layout.staging(run).join(rel);
    if has_run_files(&target, run)? {
        return Ok(());
    }
    if !staged.exists() {
        return Err(Error::BadMeta {
            path: layout.manifest(run),
            reason: format!(
                "partition {rel} is neither published (no part-{run}-* file in it) nor staged (no {})",
                staged.display()
            ),
        });
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
            let warnings =
                finish(layout, &mut manifest).map_err(|s| s.into_error(layout, &manifest))?;
            done.warnings.extend(warnings);
            done.rolled_forward.push(run.to_string());
        }
    }
    // Folders under staging/ and replaced/ are named for runs; anything else in them is not
    // skewer's to remove.
    for run in files_in(&layout.meta().join("staging"))? {
        if check_run_id(&run).is_err() {
            tracing::warn!(folder = %layout.meta().join("staging").join(&run).display(), "not a run's staging folder: left alone");
            continue;
        }
        let published = layout.manifest(&run).exists();
        cleanup(layout, &run)?;
        if !published {
            done.discarded.push(run);
        }
    }
    for run in files_in(&layout.meta().join("replaced"))? {
        if check_run_id(&run).is_ok() {
            cleanup(layout, &run)?;
        }
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

/// Syncs a folder, making the names in it (renames, new files) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Syncs `dir` and every folder below it, several at a time (a run stages a folder per
/// property, and each sync waits on the disk).
fn sync_dirs(dir: &Path) -> Result<()> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect(&entry.path(), out)?;
            }
        }
        out.push(dir.to_path_buf());
        Ok(())
    }
    if !dir.exists() {
        return Ok(());
    }
    let mut dirs = Vec::new();
    collect(dir, &mut dirs)?;
    crate::par::par_map(&dirs, 8, |d| sync_dir(d))
        .into_iter()
        .collect()
}

/// Writes `bytes` to `path` through a temporary sibling, fsync and a rename (then a sync of
/// the folder), so a reader (or a crash, or a power loss) never sees half a file.
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
    rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Manifests, history, rejects
// ---------------------------------------------------------------------------------------

/// Writes the manifest (atomically).
pub fn write_manifest(layout: &Layout, manifest: &Manifest) -> Result<()> {
    let value =
        serde_json::to_value(manifest).map_err(|e| Error::Bug(format!("manifest to JSON: {e}")))?;
    write_atomic(
        &layout.manifest(&manifest.run_id),
        crate::jsonfmt::to_lines(&value).as_bytes(),
    )
}

/// Reads a run's manifest, checked ([`Manifest::parse`]).
pub fn read_manifest(layout: &Layout, run: &str) -> Result<Manifest> {
    let path = layout.manifest(run);
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Manifest::parse(&bytes, &path, run)
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
    write_atomic(&layout.rejects(run), &crate::rejects::to_ndjson(rejects)?)
}

// ---------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------

/// A dataset (or a history folder) in a local folder.
#[derive(Debug)]
pub struct LocalDataset {
    location: Location,
    layout: Layout,
}

impl LocalDataset {
    pub fn new(root: &Path) -> LocalDataset {
        LocalDataset {
            location: Location::Local(root.to_path_buf()),
            layout: Layout::new(root),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.layout.dataset.clone()
        } else {
            self.layout.dataset.join(rel)
        }
    }
}

impl Folder for LocalDataset {
    fn location(&self) -> &Location {
        &self.location
    }

    fn name(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    fn list(&self, under: &str) -> Result<Vec<(String, u64)>> {
        let root = &self.layout.dataset;
        let dir = self.path(under);
        let mut out = Vec::new();
        // A folder that is not there holds nothing; anything that vanishes while it is
        // walked (a run publishing meanwhile) is an error, not a shorter listing.
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&dir, e)),
            Ok(_) => walk(root, &dir, &mut out)?,
        }
        out.sort();
        Ok(out)
    }

    fn is_folder(&self, rel: &str) -> Result<bool> {
        Ok(self.path(rel).is_dir())
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(rel);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn open(&self, rel: &str, _size: u64) -> Result<Handle> {
        let path = self.path(rel);
        LocalFile::open(&path).map_err(|e| Error::io(&path, e))
    }

    fn parallel_reads(&self) -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

impl super::Dataset for LocalDataset {
    fn lock(&self, run_id: &str) -> Result<DatasetLock> {
        Ok(DatasetLock::new(lock(&self.layout, run_id)?))
    }

    fn recover(&self) -> Result<Recovery> {
        recover(&self.layout)
    }

    fn staging(&self) -> Result<&Layout> {
        Ok(&self.layout)
    }

    fn write_rejects(&self, run: &str, rejects: &[Reject]) -> Result<String> {
        write_rejects(&self.layout, run, rejects)?;
        Ok(self.layout.rejects(run).display().to_string())
    }

    fn prepare(&self, run: &str, mode: Mode) -> Result<Prepared> {
        let (partitions, replaced) = prepare(&self.layout, run, mode)?;
        Ok(Prepared {
            partitions,
            replaced,
        })
    }

    fn publish(&self, manifest: &mut Manifest) -> Result<Vec<String>> {
        publish(&self.layout, manifest)
    }

    fn lock_state(&self) -> Result<LockState> {
        // The lock is the operating system's, released when its process ends: the file
        // stays, and what a dead run left in it is only a note.
        let note = self.read("_skewer/lock")?.unwrap_or_default();
        Ok(match LockOwner::parse(&note) {
            Some(owner) if !owner.is_stale() => LockState::Held(owner),
            _ => LockState::Free,
        })
    }
}

/// Every file under `dir`, relative to `root` (with `/`), with its size.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push((rel.to_string_lossy().into_owned(), meta.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::meta::{
        Counts, FileEntry, MANIFEST_SCHEMA_VERSION, PlanEntry, Timings, host_name,
    };

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
    fn the_lock_keeps_a_second_run_out_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let held = lock(&layout, "r1").unwrap();
        let err = lock(&layout, "r2").unwrap_err().to_string();
        assert!(
            err.contains("run r1") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert_eq!(fs::read(layout.lock_file()).unwrap(), b"");
        drop(lock(&layout, "r2").unwrap());

        // What a crashed run left in the file is only a note: the lock died with it.
        let dead = LockOwner {
            pid: u32::MAX - 7,
            host: host_name(),
            process_start: Some(1),
            since: "2026-11-20T02:00:00Z".into(),
            run_id: "crashed".into(),
        };
        fs::write(layout.lock_file(), serde_json::to_vec(&dead).unwrap()).unwrap();
        let taken = lock(&layout, "r3").unwrap();
        let note = LockOwner::parse(&fs::read(layout.lock_file()).unwrap()).unwrap();
        assert_eq!(note.run_id, "r3");
        drop(taken);
        fs::write(layout.lock_file(), b"{\"pid\": 1").unwrap();
        assert!(lock(&layout, "r4").is_ok());
    }

    #[test]
    fn of_many_runs_starting_at_once_exactly_one_gets_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let start = std::sync::Barrier::new(16);
        let got = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for i in 0..16 {
                let (layout, start, got) = (&layout, &start, &got);
                s.spawn(move || {
                    start.wait();
                    let held = lock(layout, &format!("r{i}"));
                    // Everyone has tried before anyone lets go.
                    start.wait();
                    got.lock().unwrap().push(held.is_ok());
                });
            }
        });
        let got = got.into_inner().unwrap();
        assert_eq!(got.iter().filter(|ok| **ok).count(), 1, "{got:?}");
    }

    #[test]
    fn a_lock_path_that_is_a_directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.lock_file()).unwrap();
        let err = lock(&layout, "r1").unwrap_err().to_string();
        assert!(
            err.contains("is a directory, not skewer's lock file"),
            "{err}"
        );
    }

    #[test]
    fn manifests_that_would_act_outside_the_dataset_are_refused() {
        let good = || {
            let mut m = manifest(
                "r1",
                Mode::Overwrite,
                vec!["dt=1/property_name=a".into()],
                vec!["dt=1/property_name=a/old.parquet".into()],
            );
            m.state = STATE_PUBLISHING.into();
            m.partition = Some("dt=1".into());
            m.files = vec![FileEntry {
                path: "dt=1/property_name=a/part-r1-r0.parquet".into(),
                property: "a".into(),
                reducer: 0,
                rows: 1,
                bytes: 1,
            }];
            m
        };
        let check = |m: &Manifest, run: &str| {
            let bytes = serde_json::to_vec(m).unwrap();
            Manifest::parse(&bytes, Path::new("runs/x.json"), run).map(|_| ())
        };
        check(&good(), "r1").unwrap();
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|m| m.run_id = "../../../victim".into()), "run id"),
            (Box::new(|m| m.run_id = "r2".into()), "names run"),
            (Box::new(|m| m.state = "done".into()), "state"),
            (
                Box::new(|m| m.partitions = vec!["../../etc/property_name=a".into()]),
                "key=value",
            ),
            (
                Box::new(|m| m.partitions = vec!["/abs/property_name=a".into()]),
                "key=value",
            ),
            (
                Box::new(|m| m.partitions = vec!["dt=1/property_name=a/x=..".into()]),
                "property_name",
            ),
            (
                Box::new(|m| m.partitions = vec!["dt=2/property_name=a".into()]),
                "--partition",
            ),
            (
                Box::new(|m| m.replaced = vec!["dt=1/property_name=a/..".into()]),
                "no plain name",
            ),
            (
                Box::new(|m| m.replaced = vec!["dt=1/property_name=b/x.parquet".into()]),
                "not in a partition",
            ),
            (
                Box::new(|m| m.files[0].path = "dt=1/property_name=a/part-r0-r0.parquet".into()),
                "not named for run",
            ),
            (Box::new(|m| m.schema_version = 7), "schema_version"),
        ];
        for (edit, want) in cases {
            let mut m = good();
            edit(&mut m);
            let err = check(&m, "r1").unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("edited or damaged"),
                "{want}: {err}"
            );
        }
        // A hand-edited manifest is refused by recovery before it touches anything.
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("ds"));
        let victim = dir.path().join("victim");
        fs::create_dir_all(victim.join("property_name=a")).unwrap();
        fs::write(victim.join("property_name=a/keep"), b"x").unwrap();
        let mut m = good();
        m.run_id = "../../../victim".into();
        let text = serde_json::to_vec(&m).unwrap();
        fs::create_dir_all(layout.runs_dir()).unwrap();
        fs::write(layout.runs_dir().join("evil.json"), text).unwrap();
        assert!(recover(&layout).is_err());
        assert_eq!(fs::read(victim.join("property_name=a/keep")).unwrap(), b"x");
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
