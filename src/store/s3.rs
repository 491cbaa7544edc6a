//! A dataset in S3: the publish protocol for a store that has no rename.
//!
//! Takes a run staged on local disk (a work directory laid out as [`Layout`]) and its
//! manifest, and publishes it in these steps (in brackets, the `SKEWER_FAIL_AT` crash point
//! after each, for tests):
//!
//! ```text
//!  0 lock      _skewer/lock (below); read back before 1 and before 4
//!  1 intent    _skewer/uploading/<run>.json: every key the run will write
//!  2 upload    data objects under their final, unique names (part-<run>-…), in parallel,
//!              multipart above the part size (a failed upload is aborted)
//!  3 pending   _skewer/pending/<run>.json: the run's history record          [uploaded]
//!  4 manifest  _skewer/runs/<run>.json, state "publishing": files added,
//!              objects replaced                                               [manifest]
//!  5 delete    the replaced objects                                           [deleted]
//!  6 history   pending → _skewer/history/<run>.json                           [history]
//!  7 commit    manifest state "committed" [committed]; intent deleted
//! ```
//!
//! What is guaranteed:
//!
//! - Before step 4 nothing is published: no manifest names the run's objects, and an error
//!   deletes them again (after a crash, the next run or `skewer recover` does, from the
//!   intent). A reader that lists partition folders instead of following manifests sees them
//!   meanwhile.
//! - The new objects are complete before the manifest names them, and the old ones go only
//!   after it: a reader that follows the manifests never sees a mix. One that lists the
//!   folders sees new and old side by side between steps 4 and 5.
//! - Steps 4 on are idempotent: the next run, or `skewer recover`, rolls an interrupted
//!   publish forward from its manifest, found through its intent (which goes last, so only
//!   runs with one need looking at). An error from step 4 to 6 is [`Error::PublishStopped`],
//!   saying how far it got; one in step 7 only is a warning, as the run is published.
//! - What recovery reads back is checked before anything is acted on: a manifest by
//!   [`Manifest::parse`], an intent for its run id and for every key being
//!   `<partition>/part-<run>-…`. An edited file is [`Error::BadMeta`]; it cannot make
//!   recovery delete published data or anything outside the dataset.
//!
//! The lock. One run at a time holds `_skewer/lock`, an object holding its [`LockOwner`]
//! note, created with `If-None-Match: *`. A lock whose owner is certainly gone (a process on
//! this host that no longer exists) is taken over by overwriting it with `If-Match` on the
//! ETag of the stale note just read: of several runs taking over one stale lock, one write
//! matches. Nothing deletes a stale lock, so there is no moment in which it is free for a
//! second run. A note that is not one skewer writes is never taken over. The lock is released
//! by a delete only while it still holds this run's note (and `If-Match` on it).
//!
//! That is as strong as the store's conditional writes. AWS S3 evaluates a condition and
//! writes atomically: exactly one run holds the lock. A store that checks a condition, then
//! writes, can let two racing writes through (s3s-fs 0.14 does); the last one stays. For
//! those, a run reads the lock back after a pause ([`LOCK_SETTLE`]) before it recovers or
//! plans anything, and again before its intent and before its manifest: the run whose write
//! was overwritten stops with the "locked by" error and publishes nothing, unless its
//! competitor's write took longer to land than the pause (then both run their recovery of
//! what earlier runs left, which is idempotent, before one stops) or longer than the other's
//! whole run up to its manifest (only then could both publish).
//!
//! A store that answers with no ETag cannot have a stale lock taken over safely: the lock
//! must then be removed by hand.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::meta::{
    LockOwner, Manifest, Mode, Recovery, STATE_COMMITTED, STATE_PUBLISHING, check_run_id, clip,
    fail_point,
};
use super::{DatasetLock, Folder, Location, LockState, Options, Prepared};
use crate::error::{Error, Progress, Result};
use crate::layout::{Layout, check_partition};
use crate::rejects::Reject;
use crate::s3::{Precondition, S3, S3Object, S3Url};
use crate::source::Handle;

/// What frees an S3 lock: a live run's goes when it ends; a dead run's on another host is
/// never taken over automatically.
const STALE_LOCK_HINT: &str = "if that run is no longer alive on its host, remove this object";

/// Uploads in flight at once.
const UPLOADERS: usize = 4;
/// How long a run waits after writing the lock before it reads it back (see the module doc).
pub const LOCK_SETTLE: Duration = Duration::from_millis(200);
/// Rounds of write, read and take-over before giving up on a lock that keeps changing.
const LOCK_TRIES: usize = 4;

/// A dataset under `s3://bucket/prefix`.
#[derive(Clone, Debug)]
pub struct S3Dataset {
    pub s3: Arc<S3>,
    /// The dataset's root; its key has no trailing `/`.
    pub root: S3Url,
    /// Multipart part size for uploads.
    pub part_bytes: u64,
    /// The note this process wrote into the lock, while it holds it (shared by clones).
    held: Arc<Mutex<Option<Bytes>>>,
    location: Location,
    /// Where a run stages its files: a local work folder, made on first use and removed
    /// with everything in it when the dataset is dropped, however the run ends.
    work: Arc<std::sync::OnceLock<(tempfile::TempDir, Layout)>>,
    work_parent: Option<std::path::PathBuf>,
}

/// What a run is about to write, so that a crash before its manifest can be undone.
#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    run_id: String,
    /// Keys relative to the dataset.
    keys: Vec<String>,
}

impl Intent {
    /// Parses an intent read back from `url` (named `name` in `uploading/`) and checks that
    /// undoing it touches only the run's own objects: every key `<partition>/part-<run>-…`.
    fn parse(bytes: &[u8], url: &S3Url, name: &str) -> Result<Intent> {
        let bad = |reason: String| Error::BadMeta {
            path: url.to_string().into(),
            reason,
        };
        let intent: Intent = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "not an upload intent skewer writes: {}",
                clip(&e.to_string())
            ))
        })?;
        check_run_id(&intent.run_id).map_err(bad)?;
        if name != format!("{}.json", intent.run_id) {
            return Err(bad(format!(
                "the intent of run {} names run {}",
                clip(name.trim_end_matches(".json")),
                intent.run_id
            )));
        }
        let own = format!("part-{}-", intent.run_id);
        for key in &intent.keys {
            let Some((partition, file)) = key.rsplit_once('/') else {
                return Err(bad(format!("key {} is not in a partition", clip(key))));
            };
            check_partition(partition).map_err(bad)?;
            if !file.starts_with(&own) || file.contains(['\0', '\\']) {
                return Err(bad(format!(
                    "key {} is not an object of run {} ({own}…)",
                    clip(key),
                    intent.run_id
                )));
            }
        }
        Ok(intent)
    }
}

/// The dataset lock, released on drop (if it still holds this run's note).
#[derive(Debug)]
pub struct S3Lock {
    s3: Arc<S3>,
    url: S3Url,
    /// What this run wrote into the lock.
    note: Bytes,
    held: Arc<Mutex<Option<Bytes>>>,
    /// The stale lock this one replaced, if any.
    pub took_over: Option<LockOwner>,
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_ref() == Some(&self.note) {
            *held = None;
        }
        drop(held);
        // Only our own lock: a run that found its lock replaced must not free the other's.
        match self.s3.get_tagged(&self.url) {
            Ok(Some((note, etag))) if note == self.note => {
                match self.s3.delete_if_match(&self.url, etag.as_deref()) {
                    Ok(()) => tracing::info!(lock = %self.url, "released the dataset lock"),
                    Err(e) => tracing::warn!("cannot release the dataset lock: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot release the dataset lock: {e}"),
        }
    }
}

/// Who a lock note read back names, for a message (untrusted: clipped).
fn describe_note(note: &[u8]) -> String {
    match LockOwner::parse(note) {
        Some(owner) => owner.describe(),
        None => format!(
            "something that is not a skewer run (the lock holds {} bytes that are not a note \
             skewer writes)",
            note.len()
        ),
    }
}

impl S3Dataset {
    pub fn new(s3: Arc<S3>, root: &S3Url) -> S3Dataset {
        S3Dataset {
            s3,
            root: root.at(root.key.trim_end_matches('/')),
            part_bytes: crate::s3::PART_BYTES,
            held: Arc::default(),
            location: Location::S3(root.clone()),
            work: Arc::default(),
            work_parent: None,
        }
    }

    /// The dataset at `root` for a run: the bucket checked, the options applied.
    pub fn open(s3: Arc<S3>, root: &S3Url, options: &Options) -> Result<S3Dataset> {
        s3.check_bucket(root)?;
        let mut dataset = S3Dataset::new(s3, root);
        if let Some(part_bytes) = options.part_bytes {
            if part_bytes < crate::s3::MIN_PART_BYTES {
                return Err(Error::Config(format!(
                    "--part-size {}: S3 needs parts of at least 5 MiB",
                    crate::units::format_bytes(part_bytes)
                )));
            }
            dataset.part_bytes = part_bytes;
        }
        dataset.work_parent = options.work_dir.clone();
        Ok(dataset)
    }

    /// The URL of `rel`, a path relative to the dataset.
    pub fn url(&self, rel: &str) -> S3Url {
        self.root.at(format!("{}{rel}", self.root.dir_prefix()))
    }

    fn meta(&self, rel: &str) -> S3Url {
        self.url(&format!("_skewer/{rel}"))
    }

    /// `_skewer/history/`.
    pub fn history_dir(&self) -> S3Url {
        self.meta("history/")
    }

    /// `_skewer/rejects/<run>.ndjson`.
    pub fn rejects(&self, run: &str) -> S3Url {
        self.meta(&format!("rejects/{run}.ndjson"))
    }

    /// Keys directly in a `_skewer/` folder, relative to it.
    fn names_in(&self, folder: &str) -> Result<Vec<String>> {
        let dir = self.meta(folder);
        Ok(self
            .s3
            .list(&dir)?
            .into_iter()
            .filter_map(|o| o.key.strip_prefix(&dir.key).map(str::to_string))
            .filter(|name| !name.contains('/'))
            .collect())
    }

    /// Takes the lock for `run_id`. Fails if a live run holds it (or something that is not a
    /// skewer lock note); takes over a stale one (a process on this host that no longer
    /// exists) with a compare-and-swap on its ETag. See the module doc for the guarantee.
    pub fn lock(&self, run_id: &str) -> Result<S3Lock> {
        let url = self.meta("lock");
        let locked = |owner: String| Error::Locked {
            path: url.to_string().into(),
            owner,
            hint: STALE_LOCK_HINT,
        };
        let me: Bytes = serde_json::to_vec(&LockOwner::me(run_id))
            .map_err(|e| Error::Bug(e.to_string()))?
            .into();
        let mut took_over = None;
        let mut condition = Precondition::Absent;
        for _ in 0..LOCK_TRIES {
            if self.s3.put_if(&url, me.clone(), &condition)? {
                return self.settle(url, me, took_over);
            }
            // Held by another run, or this run's own write whose answer was lost: retried,
            // it failed its own condition.
            let Some((note, etag)) = self.s3.get_tagged(&url)? else {
                // Released meanwhile.
                (condition, took_over) = (Precondition::Absent, None);
                continue;
            };
            if note == me {
                return self.settle(url, me, took_over);
            }
            match LockOwner::parse(&note) {
                Some(owner) if owner.is_stale() => {
                    let Some(etag) = etag else {
                        return Err(locked(format!(
                            "{}, whose process is gone, but the store gives no ETag to take \
                             the lock over safely with",
                            owner.describe()
                        )));
                    };
                    took_over = Some(owner);
                    condition = Precondition::Matches(etag);
                }
                _ => return Err(locked(describe_note(&note))),
            }
        }
        Err(locked(
            "other runs that keep taking and releasing it at this moment".into(),
        ))
    }

    /// The lock is written: keep it only if it is still this run's after a pause.
    fn settle(&self, url: S3Url, note: Bytes, took_over: Option<LockOwner>) -> Result<S3Lock> {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(note.clone());
        // From here on, dropping it releases it if it is ours.
        let lock = S3Lock {
            s3: self.s3.clone(),
            url,
            note,
            held: self.held.clone(),
            took_over,
        };
        std::thread::sleep(LOCK_SETTLE);
        self.check_lock()?;
        if let Some(owner) = &lock.took_over {
            tracing::warn!(
                lock = %lock.url,
                "took over the dataset lock of {}, whose process is gone",
                owner.describe()
            );
        }
        tracing::info!(lock = %lock.url, "took the dataset lock");
        Ok(lock)
    }

    /// Checks that this process still holds the lock (its note is in it): before acting on
    /// the dataset, in case a store let another run's write replace it (see the module doc).
    pub fn check_lock(&self) -> Result<()> {
        let url = self.meta("lock");
        let Some(me) = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Err(Error::Bug(format!("{url}: publishing without the lock")));
        };
        match self.s3.get(&url)? {
            Some(note) if note == me => Ok(()),
            Some(note) => Err(Error::Locked {
                path: url.to_string().into(),
                owner: format!(
                    "{}, which replaced this run's lock (this run stopped and published nothing)",
                    describe_note(&note)
                ),
                hint: STALE_LOCK_HINT,
            }),
            None => Err(Error::S3 {
                url: url.to_string(),
                op: "hold",
                reason: "this run's lock was deleted while the run held it, so another run may \
                         be writing: the run stopped and published nothing"
                    .into(),
            }),
        }
    }

    /// Objects in the partitions `partitions` that a run `run` replaces: all but its own.
    ///
    /// One listing of the folder the partitions share (`dt=…/`, or the dataset), not one per
    /// partition: a run touches a thousand partitions, and a listing costs a round trip.
    pub fn replaced(&self, partitions: &[String], run: &str) -> Result<Vec<String>> {
        let Some(first) = partitions.first() else {
            return Ok(Vec::new());
        };
        let mut common = first
            .rsplit_once('/')
            .map_or("", |(dir, _)| dir)
            .to_string();
        for rel in partitions {
            while !(common.is_empty() || rel.starts_with(&format!("{common}/"))) {
                common = common
                    .rsplit_once('/')
                    .map_or("", |(dir, _)| dir)
                    .to_string();
            }
        }
        let wanted: std::collections::HashSet<&str> =
            partitions.iter().map(String::as_str).collect();
        let base = self.url(
            if common.is_empty() {
                String::new()
            } else {
                format!("{common}/")
            }
            .as_str(),
        );
        let own = format!("part-{run}-");
        let root = self.root.dir_prefix();
        let mut out = Vec::new();
        for object in self.s3.list(&base)? {
            let Some(rel) = object.key.strip_prefix(&root) else {
                continue;
            };
            // Only files directly in a partition folder, as a Hive reader sees them.
            let Some((dir, name)) = rel.rsplit_once('/') else {
                continue;
            };
            if wanted.contains(dir) && !name.starts_with(&own) {
                out.push(rel.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    fn put_json(&self, url: &S3Url, value: &impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value).map_err(|e| Error::Bug(format!("to JSON: {e}")))?;
        self.s3
            .put(url, crate::jsonfmt::to_lines(&value).into_bytes())
    }

    fn read_manifest(&self, run: &str) -> Result<Option<Manifest>> {
        let url = self.meta(&format!("runs/{run}.json"));
        match self.s3.get(&url)? {
            None => Ok(None),
            Some(bytes) => Manifest::parse(&bytes, Path::new(&url.to_string()), run).map(Some),
        }
    }

    /// The error for a publish that stopped after its uploads.
    fn stopped(&self, run: &str, progress: Progress, cause: Error) -> Error {
        Error::PublishStopped {
            dataset: self.root.to_string().trim_end_matches('/').to_string(),
            run: run.to_string(),
            progress,
            cause: Box::new(cause),
        }
    }

    /// Publishes a run staged in `work` (its files are `manifest.files`, relative to the
    /// staging folder), with the lock held. Of a multi-process run, this process uploads the
    /// files `mine` accepts while `others` has the other processes upload the rest: after
    /// the intent names them all, so that a crash anywhere leaves nothing unknown.
    ///
    /// An error before the manifest deletes what was uploaded again: nothing is published.
    /// After it, [`Error::PublishStopped`] says how far the publish got (the next run or
    /// `skewer recover` finishes it). `Ok` once the run is published, with a warning for each
    /// step after that which failed (marking the manifest committed, deleting the intent).
    pub fn publish(
        &self,
        work: &Layout,
        manifest: &mut Manifest,
        mine: &(dyn Fn(&crate::store::meta::FileEntry) -> bool + Sync),
        others: &dyn Fn() -> Result<()>,
    ) -> Result<Vec<String>> {
        let run = manifest.run_id.clone();
        let intent = Intent {
            run_id: run.clone(),
            keys: manifest.files.iter().map(|f| f.path.clone()).collect(),
        };
        self.check_lock()?;
        let intent_url = self.meta(&format!("uploading/{run}.json"));
        let staged = work.staging(&run);
        let own: Vec<String> = manifest
            .files
            .iter()
            .filter(|f| mine(f))
            .map(|f| f.path.clone())
            .collect();
        let uploaded = self
            .put_json(&intent_url, &intent)
            .and_then(|()| {
                std::thread::scope(|scope| {
                    let ours = scope.spawn(|| self.upload_all(&staged, &own));
                    let theirs = others();
                    let ours = ours
                        .join()
                        .unwrap_or_else(|_| Err(Error::Bug("an uploading thread panicked".into())));
                    theirs.and(ours)
                })
            })
            .and_then(|()| {
                if own.len() == manifest.files.len() {
                    return Ok(());
                }
                self.check_uploaded(manifest)
            })
            .and_then(|()| {
                let pending = work.pending_history(&run);
                match std::fs::read(&pending) {
                    Ok(bytes) => self
                        .s3
                        .put(&self.meta(&format!("pending/{run}.json")), bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io(&pending, e)),
                }
            })
            // The manifest publishes: only while the lock is still this run's.
            .and_then(|()| self.check_lock());
        if let Err(e) = uploaded {
            // Nothing is published yet: take back what went up (best effort; a crash here is
            // undone by the next run from the intent).
            if let Err(e) = self.discard(&intent) {
                tracing::warn!("cannot delete what the run uploaded (the next run will): {e}");
            }
            return Err(e);
        }
        fail_point("uploaded");
        manifest.state = STATE_PUBLISHING.into();
        if let Err(e) = self.put_json(&self.meta(&format!("runs/{run}.json")), manifest) {
            // The write may have landed: recovery tells (and rolls forward or undoes).
            return Err(self.stopped(&run, Progress::ManifestUnsure, e));
        }
        fail_point("manifest");
        self.finish(manifest)
            .map_err(|(progress, e)| self.stopped(&run, progress, e))
    }

    /// Checks that every file of `manifest` is in the dataset with its size, before the
    /// manifest names them: other processes uploaded some of them, and one that reached
    /// another store (or uploaded less than it wrote) must not make a partial run look
    /// published. One listing of the run's partition prefix (or of the dataset).
    fn check_uploaded(&self, manifest: &Manifest) -> Result<()> {
        let under = match &manifest.partition {
            Some(p) => format!("{}/", p.trim_end_matches('/')),
            None => String::new(),
        };
        let listed: std::collections::HashMap<String, u64> =
            Folder::list(self, &under)?.into_iter().collect();
        for f in &manifest.files {
            let found = listed.get(&f.path);
            if found != Some(&f.bytes) {
                return Err(Error::Mismatch(format!(
                    "{} should now be in {} with {} bytes, but {}: the process that wrote it \
                     did not upload it there",
                    f.path,
                    self.location,
                    f.bytes,
                    found.map_or("it is not there".to_string(), |size| format!(
                        "it has {size}"
                    ))
                )));
            }
        }
        Ok(())
    }

    /// Uploads `keys` (relative paths) from `staged`, [`UPLOADERS`] at a time.
    fn upload_all(&self, staged: &Path, keys: &[String]) -> Result<()> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let errors = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..UPLOADERS.min(keys.len()) {
                scope.spawn(|| {
                    use std::sync::atomic::Ordering::Relaxed;
                    loop {
                        let i = next.fetch_add(1, Relaxed);
                        if i >= keys.len() || failed.load(Relaxed) {
                            break;
                        }
                        let rel = &keys[i];
                        tracing::debug!(key = %rel, "upload");
                        if let Err(e) =
                            self.s3
                                .upload_file(&staged.join(rel), &self.url(rel), self.part_bytes)
                        {
                            failed.store(true, Relaxed);
                            errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((i, e));
                        }
                    }
                });
            }
        });
        let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
        errors.sort_by_key(|(i, _)| *i);
        match errors.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Steps 5–7 (idempotent): what recovery repeats for an interrupted publish. Once the
    /// replaced objects are deleted and the history record is in place the run is published:
    /// a failure to mark the manifest or delete the intent is a warning.
    fn finish(
        &self,
        manifest: &mut Manifest,
    ) -> std::result::Result<Vec<String>, (Progress, Error)> {
        let run = manifest.run_id.clone();
        tracing::debug!(run = %run, replaced = manifest.replaced.len(), "finishing the publish");
        let replaced: Vec<String> = manifest
            .replaced
            .iter()
            .map(|rel| self.url(rel).key)
            .collect();
        let total = replaced.len();
        let mut deleted = 0;
        let result = self.s3.delete_counted(&self.root, &replaced, &mut deleted);
        result.map_err(|e| (Progress::Deleted { deleted, total }, e))?;
        fail_point("deleted");
        let pending = self.meta(&format!("pending/{run}.json"));
        let history = || -> Result<()> {
            if let Some(record) = self.s3.get(&pending)? {
                self.s3
                    .put(&self.meta(&format!("history/{run}.json")), record)?;
                self.s3
                    .delete(&self.root, std::slice::from_ref(&pending.key))?;
            }
            Ok(())
        };
        history().map_err(|e| {
            (
                Progress::Deleted {
                    deleted: total,
                    total,
                },
                e,
            )
        })?;
        fail_point("history");
        let mut warnings = Vec::new();
        manifest.state = STATE_COMMITTED.into();
        if let Err(e) = self.put_json(&self.meta(&format!("runs/{run}.json")), manifest) {
            // The intent stays, so that recovery finds the run and marks it.
            warnings.push(format!(
                "the run is published, but its manifest could not be marked committed ({e}); the next run or skewer recover marks it"
            ));
            return Ok(warnings);
        }
        fail_point("committed");
        let intent = self.meta(&format!("uploading/{run}.json"));
        if let Err(e) = self
            .s3
            .delete(&self.root, std::slice::from_ref(&intent.key))
        {
            warnings.push(format!(
                "the run is published, but its upload intent could not be deleted ({e}); the next run or skewer recover deletes it"
            ));
        }
        Ok(warnings)
    }

    /// Undoes a run that never wrote its manifest: its multipart uploads, objects, pending
    /// history and intent.
    fn discard(&self, intent: &Intent) -> Result<()> {
        let mut keys: Vec<String> = intent.keys.iter().map(|rel| self.url(rel).key).collect();
        // Uploads cut by a crash; a store that cannot list them is left to its lifecycle
        // rules, and that must not keep the objects below from being deleted.
        match self.s3.incomplete_uploads(&self.root) {
            Ok(Some(uploads)) => {
                let wanted: std::collections::HashSet<&str> =
                    keys.iter().map(String::as_str).collect();
                for (key, id) in uploads {
                    if wanted.contains(key.as_str()) {
                        self.s3.abort_upload(&self.root.at(key), &id)?;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot list incomplete multipart uploads: {e}"),
        }
        keys.push(self.meta(&format!("pending/{}.json", intent.run_id)).key);
        self.s3.delete(&self.root, &keys)?;
        let url = self.meta(&format!("uploading/{}.json", intent.run_id));
        self.s3.delete(&self.root, std::slice::from_ref(&url.key))
    }

    /// Rolls every interrupted publish forward and undoes runs that stopped before their
    /// manifest. Call with the lock held. Steps after a rolled-forward publish that failed
    /// are [`Recovery::warnings`].
    ///
    /// Only runs with an intent can be unfinished (the intent goes last, after the commit
    /// mark), so this reads the few intents, not every manifest of the dataset's history.
    /// Each is checked (`Intent::parse`, [`Manifest::parse`]) before it is acted on.
    pub fn recover(&self) -> Result<Recovery> {
        let mut done = Recovery::default();
        for name in self.names_in("uploading/")? {
            let url = self.meta(&format!("uploading/{name}"));
            if name.starts_with('.') || !name.ends_with(".json") {
                tracing::warn!(%url, "not an upload intent: left alone");
                continue;
            }
            let Some(bytes) = self.s3.get(&url)? else {
                continue;
            };
            let intent = Intent::parse(&bytes, &url, &name)?;
            match self.read_manifest(&intent.run_id)? {
                Some(mut manifest) if manifest.state == STATE_PUBLISHING => {
                    let warnings = self
                        .finish(&mut manifest)
                        .map_err(|(progress, e)| self.stopped(&intent.run_id, progress, e))?;
                    done.warnings.extend(warnings);
                    done.rolled_forward.push(intent.run_id);
                }
                // Committed, its intent not yet deleted.
                Some(_) => self.s3.delete(&self.root, std::slice::from_ref(&url.key))?,
                None => {
                    self.discard(&intent)?;
                    done.discarded.push(intent.run_id);
                }
            }
        }
        Ok(done)
    }
}

/// A data file of at most this size is fetched in one request when opened for reading: a
/// footer and the pages of two columns are several requests, a file of a few MiB costs less
/// in one.
const WHOLE_FILE: u64 = 8 << 20;

impl Folder for S3Dataset {
    fn location(&self) -> &Location {
        &self.location
    }

    fn name(&self, rel: &str) -> String {
        self.url(rel).to_string()
    }

    fn list(&self, under: &str) -> Result<Vec<(String, u64)>> {
        let prefix = self.root.dir_prefix();
        let mut out: Vec<(String, u64)> = self
            .s3
            .list(&self.url(under))?
            .into_iter()
            .filter(|o| !o.key.ends_with('/'))
            .filter_map(|o| {
                o.key
                    .strip_prefix(&prefix)
                    .map(|rel| (rel.to_string(), o.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn is_folder(&self, rel: &str) -> Result<bool> {
        let url = self.url(rel);
        Ok(!self.s3.list(&url.at(url.dir_prefix()))?.is_empty())
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let url = if rel.is_empty() {
            match &self.location {
                // `s3://b/dir/` names a folder, never an object.
                Location::S3(url) if !url.key.ends_with('/') => url.clone(),
                _ => return Ok(None),
            }
        } else {
            self.url(rel)
        };
        if url.key.is_empty() {
            return Ok(None);
        }
        Ok(self.s3.get(&url)?.map(|b| b.to_vec()))
    }

    fn open(&self, rel: &str, size: u64) -> Result<Handle> {
        let url = self.url(rel);
        let whole = if size <= WHOLE_FILE {
            Some(self.s3.get_range(&url, 0, size as usize)?)
        } else {
            None
        };
        Ok(Arc::new(S3Object::new(
            self.s3.clone(),
            url,
            size,
            None,
            whole,
        )))
    }

    fn parallel_reads(&self) -> usize {
        16
    }
}

impl super::Dataset for S3Dataset {
    fn lock(&self, run_id: &str) -> Result<DatasetLock> {
        Ok(DatasetLock::new(S3Dataset::lock(self, run_id)?))
    }

    fn recover(&self) -> Result<Recovery> {
        S3Dataset::recover(self)
    }

    fn staging(&self) -> Result<&Layout> {
        if let Some((_, layout)) = self.work.get() {
            return Ok(layout);
        }
        let parent = self.work_parent.clone().unwrap_or_else(std::env::temp_dir);
        let work = tempfile::Builder::new()
            .prefix("skewer-work-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let layout = Layout::new(work.path());
        Ok(&self.work.get_or_init(|| (work, layout)).1)
    }

    fn write_rejects(&self, run: &str, rejects: &[Reject]) -> Result<String> {
        let url = self.rejects(run);
        if !rejects.is_empty() {
            self.s3.put(&url, crate::rejects::to_ndjson(rejects)?)?;
        }
        Ok(url.to_string())
    }

    fn prepare(&self, run: &str, mode: Mode) -> Result<Prepared> {
        let partitions = super::local::staged_partitions(self.staging()?, run)?;
        let replaced = match mode {
            Mode::Overwrite | Mode::Merge | Mode::Upsert => self.replaced(&partitions, run)?,
            Mode::Append => Vec::new(),
        };
        Ok(Prepared {
            partitions,
            replaced,
        })
    }

    fn publish(&self, manifest: &mut Manifest) -> Result<Vec<String>> {
        let work = self.staging()?;
        S3Dataset::publish(self, work, manifest, &|_| true, &|| Ok(()))
    }

    fn publish_shared(
        &self,
        manifest: &mut Manifest,
        mine: &(dyn Fn(&crate::store::meta::FileEntry) -> bool + Sync),
        others: &dyn Fn() -> Result<()>,
    ) -> Result<Vec<String>> {
        let work = self.staging()?;
        S3Dataset::publish(self, work, manifest, mine, others)
    }

    fn upload_staged(&self, run: &str, keys: &[String]) -> Result<()> {
        let staged = self.staging()?.staging(run);
        self.upload_all(&staged, keys)
    }

    fn history(&self) -> Location {
        Location::S3(self.history_dir())
    }

    fn lock_state(&self) -> Result<LockState> {
        // The lock is the object itself: one left by a dead run stays until taken over.
        let note = Folder::read(self, "_skewer/lock")?.unwrap_or_default();
        if note.is_empty() {
            return Ok(LockState::Free);
        }
        Ok(match LockOwner::parse(&note) {
            Some(owner) if !owner.is_stale() => LockState::Held(owner),
            Some(owner) => LockState::Leftover(format!(
                "left by {}, whose process is gone (the next run or skewer recover takes it over)",
                owner.describe()
            )),
            // Never taken over: it could be anything's.
            None => LockState::Leftover(
                "is not a lock note skewer writes, so no run will take the dataset until it is removed"
                    .into(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_names_its_objects_under_its_root() {
        let s3 = S3::connect(&crate::s3::S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
        })
        .unwrap();
        let ds = S3Dataset::new(s3, &S3Url::parse("s3://b/lake/").unwrap().unwrap());
        assert_eq!(ds.root.key, "lake");
        assert_eq!(
            ds.url("property_name=a/x.parquet").key,
            "lake/property_name=a/x.parquet"
        );
        assert_eq!(ds.history_dir().to_string(), "s3://b/lake/_skewer/history/");
        assert_eq!(ds.rejects("r1").key, "lake/_skewer/rejects/r1.ndjson");
    }

    fn url() -> S3Url {
        S3Url::parse("s3://b/lake/_skewer/uploading/r1.json")
            .unwrap()
            .unwrap()
    }

    fn parse(json: serde_json::Value, name: &str) -> Result<Intent> {
        Intent::parse(&serde_json::to_vec(&json).unwrap(), &url(), name)
    }

    #[test]
    fn intents_that_would_delete_other_objects_are_refused() {
        let good = serde_json::json!({
            "run_id": "r1",
            "keys": ["dt=1/property_name=a/part-r1-r0.parquet", "property_name=b/part-r1-r1.parquet"],
        });
        parse(good, "r1.json").unwrap();
        let cases = [
            (
                serde_json::json!({"run_id": "../x", "keys": []}),
                "r1.json",
                "run id",
            ),
            (
                serde_json::json!({"run_id": "r2", "keys": []}),
                "r1.json",
                "names run",
            ),
            (
                serde_json::json!({"run_id": "r1"}),
                "r1.json",
                "not an upload intent",
            ),
            (
                serde_json::json!({"run_id": "r1", "keys": ["part-r1-r0.parquet"]}),
                "r1.json",
                "not in a partition",
            ),
            (
                serde_json::json!({"run_id": "r1", "keys": ["property_name=a/part-r0-r0.parquet"]}),
                "r1.json",
                "not an object of run r1",
            ),
            (
                serde_json::json!({"run_id": "r1", "keys": ["property_name=a/x/part-r1-r0.parquet"]}),
                "r1.json",
                "does not end in one property_name=",
            ),
            (
                serde_json::json!({"run_id": "r1", "keys": ["../property_name=a/part-r1-r0.parquet"]}),
                "r1.json",
                "key=value",
            ),
            (
                serde_json::json!({"run_id": "r1", "keys": ["_skewer/property_name=a/part-r1-r0.parquet"]}),
                "r1.json",
                "key=value",
            ),
        ];
        for (json, name, want) in cases {
            let err = parse(json, name).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("edited or damaged"),
                "{want}: {err}"
            );
        }
    }
}
