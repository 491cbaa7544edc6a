//! What a dataset keeps about itself under `_skewer/`, whichever store holds it: run
//! manifests (and their validation), the lock's owner note, the publish modes and the crash
//! points tests use. Everything here is read back from storage anything may have edited, so
//! each parser checks before anything is acted on.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::check_partition;

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
    /// Merge this run's rows into the partitions it writes: their stored rows and the new
    /// ones, exact duplicates dropped, replace them; every other partition is kept.
    Merge,
    /// As `Merge`, but the stored rows of each (object, property) the input carries with a
    /// history are replaced by the input's versions.
    Upsert,
}

impl Mode {
    /// Whether the run reads the partitions it writes back and merges into them.
    pub fn merges(self) -> bool {
        matches!(self, Mode::Merge | Mode::Upsert)
    }
}

/// Test hook: `SKEWER_FAIL_AT=<point>` aborts the process at that step of a publish, as a
/// crash would (no destructors, no cleanup). Points: `staged`, `manifest`, `swap:<n>` (after
/// the n-th partition swap), `aside:<n>` (between the two renames of the n-th fallback swap
/// of an existing partition), `history`, `committed`; in a multi-process run,
/// `cluster:meshed` (connected to the others, before mapping) and `cluster:reduced` (its
/// files written, before reporting them); and `cluster:no-upload`, a process that answers
/// process 0's order to upload without uploading.
pub(crate) fn fail_point(point: &str) {
    if std::env::var("SKEWER_FAIL_AT").is_ok_and(|p| p == point) {
        eprintln!("SKEWER_FAIL_AT={point}: aborting");
        std::process::abort();
    }
}

/// Test hook: `SKEWER_FAIL_AT=error:<point>` makes that step fail with an I/O error, as a
/// full disk or a refused rename would. Points: `swap:<n>` (the n-th partition swap),
/// `commit` (marking the manifest committed).
pub(crate) fn injected(point: &str) -> Result<()> {
    match std::env::var("SKEWER_FAIL_AT") {
        Ok(p) if p.strip_prefix("error:") == Some(point) => Err(Error::Io {
            path: PathBuf::from(format!("SKEWER_FAIL_AT=error:{point}")),
            source: std::io::Error::other("injected failure"),
        }),
        _ => Ok(()),
    }
}

/// Who holds a dataset: the note a run writes into the lock file while it holds the lock.
/// It is for people (messages, `inspect`); the lock itself is the operating system's.
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

pub(crate) fn host_name() -> String {
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

    /// A note read back from a lock file (untrusted: anything may have written it).
    pub(crate) fn parse(bytes: &[u8]) -> Option<LockOwner> {
        serde_json::from_slice(bytes).ok()
    }

    /// For messages: who, where, since when (each part clipped: the note is untrusted).
    pub(crate) fn describe(&self) -> String {
        format!(
            "run {} (pid {} on {}, since {})",
            clip(&self.run_id),
            self.pid,
            clip(&self.host),
            clip(&self.since)
        )
    }
}

/// Text read back from metadata, shortened and with control characters escaped, for a message.
pub(crate) fn clip(text: &str) -> String {
    crate::units::clip(text, 80)
}

/// What a recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Runs whose interrupted publish was rolled forward.
    pub rolled_forward: Vec<String>,
    /// Runs that crashed before publishing anything; their staged files were removed.
    pub discarded: Vec<String>,
    /// Steps after a rolled-forward publish that failed (the publish itself completed).
    pub warnings: Vec<String>,
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
    /// Of those, records that carried property values but no version history (a dump
    /// exported without histories): they gave no rows.
    #[serde(default)]
    pub records_without_history: u64,
    /// Versions rejected alone (Parquet input), not counted in `rows_exploded`.
    pub versions_rejected: u64,
    pub rows_exploded: u64,
    pub duplicates_dropped: u64,
    /// `rows_exploded + stored_rows_read = rows_written + duplicates_dropped + rows_deleted
    /// + rows_replaced`.
    pub rows_written: u64,
    /// Rows read back from the partitions a merge rewrote.
    #[serde(default)]
    pub stored_rows_read: u64,
    /// Rows dropped because their object was deleted.
    #[serde(default)]
    pub rows_deleted: u64,
    /// Objects asked to be deleted, and how many of them had rows in the partitions merged.
    #[serde(default)]
    pub objects_to_delete: u64,
    #[serde(default)]
    pub objects_deleted: u64,
    /// Stored rows an upsert replaced: the input carried their object's history of the
    /// property.
    #[serde(default)]
    pub rows_replaced: u64,
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
    /// Rows it read back from stored partitions (a merge; the partitions whose jobs it owned).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stored_rows: u64,
    pub bytes: u64,
    pub wall_ms: u64,
    /// Rows the plan predicted for it (manifests before 0.1 lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_rows: Option<u64>,
    /// The process it ran on, in a multi-process run (`--hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<u32>,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
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

// ---------------------------------------------------------------------------------------
// Reading metadata back: untrusted input
// ---------------------------------------------------------------------------------------

/// Why `id` cannot be a run id, if it cannot. Run ids name files and folders under
/// `_skewer/`, so one read back from metadata must not be able to name anything else.
pub fn check_run_id(id: &str) -> std::result::Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['.', '-', '_'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "run id {} is not one skewer writes (letters, digits, '.', '-' and '_', at most 64)",
            clip(id)
        ))
    }
}

/// Why `rel` cannot be a file directly in one of `partitions`, if it cannot; a file a run
/// adds must also carry its run's name.
fn check_file(
    rel: &str,
    partitions: &std::collections::HashSet<&str>,
    run: Option<&str>,
) -> std::result::Result<(), String> {
    let Some((dir, name)) = rel.rsplit_once('/') else {
        return Err(format!("file {} is not in a partition", clip(rel)));
    };
    if !partitions.contains(dir) {
        return Err(format!(
            "file {} is not in a partition the run lists",
            clip(rel)
        ));
    }
    if name.is_empty() || name.starts_with('.') || name.contains(['\0', '\\']) {
        return Err(format!("file {} has no plain name", clip(rel)));
    }
    if let Some(run) = run
        && !name.starts_with(&format!("part-{run}-"))
    {
        return Err(format!(
            "file {} is not named for run {run} (part-{run}-…)",
            clip(rel)
        ));
    }
    Ok(())
}

impl Manifest {
    /// Parses a manifest read back from `path` and checks that acting on it (recovery
    /// swaps its partitions and deletes what it replaced) stays inside the dataset. `run`
    /// is the run its file name says it is.
    pub fn parse(bytes: &[u8], path: &Path, run: &str) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            // A newer format is refused by its version, not by a missing field.
            match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(v) if v["schema_version"].as_u64() > Some(MANIFEST_SCHEMA_VERSION.into()) => {
                    Error::BadMeta {
                        path: path.into(),
                        reason: format!(
                            "manifest schema_version {} is newer than this skewer's ({MANIFEST_SCHEMA_VERSION}): upgrade skewer",
                            v["schema_version"]
                        ),
                    }
                }
                _ => Error::json(path, &e),
            }
        })?;
        manifest.validate(run).map_err(|reason| Error::BadMeta {
            path: path.into(),
            reason,
        })?;
        Ok(manifest)
    }

    fn validate(&self, run: &str) -> std::result::Result<(), String> {
        if self.schema_version != MANIFEST_SCHEMA_VERSION {
            return Err(format!(
                "manifest schema_version {} is not {MANIFEST_SCHEMA_VERSION}",
                self.schema_version
            ));
        }
        check_run_id(&self.run_id)?;
        if self.run_id != run {
            return Err(format!(
                "the manifest of run {run} names run {}",
                clip(&self.run_id)
            ));
        }
        if self.state != STATE_PUBLISHING && self.state != STATE_COMMITTED {
            return Err(format!(
                "state {} is neither {STATE_PUBLISHING:?} nor {STATE_COMMITTED:?}",
                clip(&self.state)
            ));
        }
        for rel in &self.partitions {
            check_partition(rel)?;
            if let Some(prefix) = &self.partition
                && !rel.starts_with(&format!("{prefix}/"))
            {
                return Err(format!(
                    "partition {} is not under the run's --partition {}",
                    clip(rel),
                    clip(prefix)
                ));
            }
        }
        let partitions = self.partitions.iter().map(String::as_str).collect();
        for f in &self.files {
            check_file(&f.path, &partitions, Some(&self.run_id))?;
        }
        for rel in &self.replaced {
            check_file(rel, &partitions, None)?;
        }
        Ok(())
    }
}
