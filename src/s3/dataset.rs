//! A dataset in S3: the publish protocol for a store that has no rename.
//!
//! Takes a run staged on local disk (a work directory laid out as [`Layout`]) and its
//! manifest; gives the same guarantees as the local publish in [`crate::commit`]:
//!
//! ```text
//!  1 intent    _skewer/uploading/<run>.json: every key the run will write
//!  2 upload    data objects under their final, unique names (part-<run>-…), in parallel,
//!              multipart above 16 MiB (a failed upload is aborted)
//!  3 pending   _skewer/pending/<run>.json: the run's history record
//!  4 manifest  _skewer/runs/<run>.json, state "publishing": files added, objects replaced
//!  5 delete    the replaced objects
//!  6 history   pending → _skewer/history/<run>.json
//!  7 commit    manifest state "committed"; intent deleted
//! ```
//!
//! A reader that follows the manifests never sees a mix: the new objects are complete before
//! the manifest names them, and the old ones go only after it. Every step after 4 is
//! idempotent, so the next run (or `skewer recover`) rolls an interrupted publish forward from
//! the manifest. The intent is deleted last, so the runs to look at are those with one. A run that stopped before its manifest published nothing: recovery deletes
//! what its intent lists (and aborts its multipart uploads where the store can list them).
//!
//! One run at a time holds `_skewer/lock`, taken with a conditional write (`If-None-Match`).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{S3, S3Url};
use crate::commit::{
    Layout, LockOwner, Manifest, Recovery, STATE_COMMITTED, STATE_PUBLISHING, fail_point,
};
use crate::error::{Error, Result};

/// Uploads in flight at once.
const UPLOADERS: usize = 4;

/// A dataset under `s3://bucket/prefix`.
#[derive(Clone, Debug)]
pub struct S3Dataset {
    pub s3: Arc<S3>,
    /// The dataset's root; its key has no trailing `/`.
    pub root: S3Url,
    /// Multipart part size for uploads.
    pub part_bytes: u64,
}

/// What a run is about to write, so that a crash before its manifest can be undone.
#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    run_id: String,
    /// Keys relative to the dataset.
    keys: Vec<String>,
}

/// The dataset lock, deleted on drop.
#[derive(Debug)]
pub struct S3Lock {
    s3: Arc<S3>,
    url: S3Url,
    /// The stale lock this one replaced, if any.
    pub took_over: Option<LockOwner>,
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        let _ = self
            .s3
            .delete(&self.url, std::slice::from_ref(&self.url.key));
    }
}

impl S3Dataset {
    pub fn new(s3: Arc<S3>, root: &S3Url) -> S3Dataset {
        S3Dataset {
            s3,
            root: root.at(root.key.trim_end_matches('/')),
            part_bytes: super::PART_BYTES,
        }
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

    /// Takes the lock for `run_id`. Fails if a live run holds it; replaces a stale one (a
    /// process on this host that no longer exists).
    pub fn lock(&self, run_id: &str) -> Result<S3Lock> {
        let url = self.meta("lock");
        let me =
            serde_json::to_vec(&LockOwner::me(run_id)).map_err(|e| Error::Bug(e.to_string()))?;
        let mut took_over = None;
        for _ in 0..2 {
            if self.s3.put_if_absent(&url, me.clone())? {
                return Ok(S3Lock {
                    s3: self.s3.clone(),
                    url,
                    took_over,
                });
            }
            let text = self.s3.get(&url)?.unwrap_or_default();
            match serde_json::from_slice::<LockOwner>(&text) {
                Ok(owner) if !owner.is_stale() => {
                    return Err(Error::Locked {
                        path: url.to_string().into(),
                        owner: owner.describe(),
                    });
                }
                owner => {
                    took_over = owner.ok();
                    self.s3.delete(&url, std::slice::from_ref(&url.key))?;
                }
            }
        }
        Err(Error::Locked {
            path: url.to_string().into(),
            owner: "another process that took it at the same moment".into(),
        })
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

    /// Publishes a run staged in `work` (its files are `manifest.files`, relative to the
    /// staging folder). On an error before the manifest, what was uploaded is deleted again.
    pub fn publish(&self, work: &Layout, manifest: &mut Manifest) -> Result<Vec<String>> {
        let run = manifest.run_id.clone();
        let intent = Intent {
            run_id: run.clone(),
            keys: manifest.files.iter().map(|f| f.path.clone()).collect(),
        };
        let intent_url = self.meta(&format!("uploading/{run}.json"));
        self.put_json(&intent_url, &intent)?;
        let staged = work.staging(&run);
        let uploaded = self.upload_all(&staged, &intent.keys).and_then(|()| {
            let pending = work.pending_history(&run);
            match std::fs::read(&pending) {
                Ok(bytes) => self
                    .s3
                    .put(&self.meta(&format!("pending/{run}.json")), bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(&pending, e)),
            }
        });
        if let Err(e) = uploaded {
            // Nothing is published yet: take back what went up (best effort; a crash here is
            // undone by the next run from the intent).
            let _ = self.discard(&intent);
            return Err(e);
        }
        fail_point("uploaded");
        manifest.state = STATE_PUBLISHING.into();
        self.put_json(&self.meta(&format!("runs/{run}.json")), manifest)?;
        fail_point("manifest");
        self.finish(manifest).map(|()| Vec::new())
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

    /// Steps 5–7 (idempotent): what recovery repeats for an interrupted publish.
    fn finish(&self, manifest: &mut Manifest) -> Result<()> {
        let run = manifest.run_id.clone();
        tracing::debug!(run = %run, replaced = manifest.replaced.len(), "finishing the publish");
        let replaced: Vec<String> = manifest
            .replaced
            .iter()
            .map(|rel| self.url(rel).key)
            .collect();
        self.s3.delete(&self.root, &replaced)?;
        fail_point("deleted");
        let pending = self.meta(&format!("pending/{run}.json"));
        if let Some(record) = self.s3.get(&pending)? {
            self.s3
                .put(&self.meta(&format!("history/{run}.json")), record)?;
            self.s3
                .delete(&self.root, std::slice::from_ref(&pending.key))?;
        }
        fail_point("history");
        manifest.state = STATE_COMMITTED.into();
        self.put_json(&self.meta(&format!("runs/{run}.json")), manifest)?;
        fail_point("committed");
        let intent = self.meta(&format!("uploading/{run}.json"));
        self.s3
            .delete(&self.root, std::slice::from_ref(&intent.key))
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
    /// manifest. Call with the lock held.
    ///
    /// Only runs with an intent can be unfinished (the intent goes last, after the commit
    /// mark), so this reads the few intents, not every manifest of the dataset's history.
    pub fn recover(&self) -> Result<Recovery> {
        let mut done = Recovery::default();
        for name in self.names_in("uploading/")? {
            let url = self.meta(&format!("uploading/{name}"));
            let Some(bytes) = self.s3.get(&url)? else {
                continue;
            };
            let intent: Intent =
                serde_json::from_slice(&bytes).map_err(|e| Error::json(url.to_string(), &e))?;
            match self.read_manifest(&intent.run_id)? {
                Some(mut manifest) if manifest.state == STATE_PUBLISHING => {
                    self.finish(&mut manifest)?;
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
