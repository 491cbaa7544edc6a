//! The dataset store: where data is and the one interface every command reads and
//! publishes a dataset through.
//!
//! - [`Location`]: a local path or `s3://bucket/prefix`, parsed once where arguments are
//!   checked and carried as a type after.
//! - [`Folder`]: reading what is under a location (list, read, open a file for positioned
//!   reads): a history folder, or a dataset's files for `inspect`.
//! - [`Dataset`]: a [`Folder`] that is a skewer dataset: the lock, recovery, the staging a
//!   run writes into, publish, rejects, manifests and history. [`local`] publishes by
//!   atomic renames; [`s3`] by uploads, conditional writes and a manifest.
//! - [`Stores`]: the object-store clients, connected on first use.
//!
//! This module is the one place the `s3` feature switches: [`open`], [`folder`] and
//! [`Stores`]. Nothing above it knows which store it has.

pub mod local;
pub mod meta;
#[cfg(feature = "s3")]
pub mod s3;

use std::path::PathBuf;
#[cfg(feature = "s3")]
use std::sync::Arc;

pub use crate::location::{Location, S3Url};
pub use crate::source::Found;
pub use meta::{Manifest, Mode, Recovery};

use crate::error::Result;
use crate::layout::Layout;
use crate::rejects::Reject;
use crate::source::Handle;

/// Reading what is under a location. Paths are relative to it, with `/`.
pub trait Folder: std::fmt::Debug + Send + Sync {
    /// Where it is.
    fn location(&self) -> &Location;
    /// Where `rel` is, for messages.
    fn name(&self, rel: &str) -> String;
    /// Every file under `under` (`""`: all, or a folder ending in `/`), recursively, with its
    /// size, sorted by path.
    fn list(&self, under: &str) -> Result<Vec<(String, u64)>>;
    /// Whether `rel` (`""`: the location itself) is a folder with something in it.
    fn is_folder(&self, rel: &str) -> Result<bool>;
    /// A whole (small) file; `None` if there is none at `rel`.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>>;
    /// A file for positioned reads (a Parquet footer, row groups); `size` is the listed one.
    fn open(&self, rel: &str, size: u64) -> Result<Handle>;
    /// Files worth reading at once: CPU-bound locally, waiting on requests remotely.
    fn parallel_reads(&self) -> usize;
}

/// A skewer dataset: what `run`, `replay`, `recover`, `inspect`, `history show` and `plan`
/// need of it, whichever store holds it.
pub trait Dataset: Folder {
    /// Takes the dataset's lock for `run_id` (held until the guard drops), or fails at once
    /// naming the run that holds it.
    fn lock(&self, run_id: &str) -> Result<DatasetLock>;
    /// Rolls interrupted publishes forward and removes what unpublished runs left. Call
    /// with the lock held.
    fn recover(&self) -> Result<Recovery>;
    /// The local folder, laid out as a dataset, that a run stages its files in (inside a
    /// local dataset, so that publishing is renames; a work folder for a remote one).
    fn staging(&self) -> Result<&Layout>;
    /// Writes a run's rejects (if any) where the dataset keeps them; says where that is.
    fn write_rejects(&self, run: &str, rejects: &[Reject]) -> Result<String>;
    /// The partitions a staged run swaps and the files it replaces.
    fn prepare(&self, run: &str, mode: Mode) -> Result<Prepared>;
    /// Publishes a staged run as `manifest` says: each partition wholly old or wholly new
    /// after a crash. `Ok` with the warnings of steps after the publish completed.
    fn publish(&self, manifest: &mut Manifest) -> Result<Vec<String>>;
    /// [`Dataset::publish`] for a run staged by several processes (`run --hosts`): this
    /// process uploads the files `mine` accepts while `others` has the other processes
    /// upload theirs ([`Dataset::upload_staged`]), once nothing can leave them behind
    /// unknown. A dataset whose staging every process shares (a local one) has nothing to
    /// upload.
    fn publish_shared(
        &self,
        manifest: &mut Manifest,
        mine: &(dyn Fn(&meta::FileEntry) -> bool + Sync),
        others: &dyn Fn() -> Result<()>,
    ) -> Result<Vec<String>> {
        let _ = mine;
        others()?;
        self.publish(manifest)
    }
    /// Uploads a run's files staged by this process (`keys`, relative to its staging) to
    /// their place in the dataset, when process 0 of a multi-process run asks; nothing for a
    /// dataset whose staging every process shares.
    fn upload_staged(&self, run: &str, keys: &[String]) -> Result<()> {
        let _ = (run, keys);
        Ok(())
    }
    /// Who holds the lock, as far as its note says (for `inspect`; taking the lock is
    /// [`Dataset::lock`]).
    fn lock_state(&self) -> Result<LockState>;
    /// Whether anything says this is a skewer dataset (its `_skewer/` folder).
    fn exists(&self) -> Result<bool> {
        self.is_folder("_skewer/")
    }
    /// Where its history records are.
    fn history(&self) -> Location {
        self.location().join("_skewer/history")
    }
    /// Every run manifest, checked, oldest first.
    fn manifests(&self) -> Result<Vec<Manifest>> {
        let objects = self.list("_skewer/runs/")?;
        manifests_in(self, &objects)
    }
}

/// The run manifests among `objects` (a listing of the dataset), read and checked, oldest
/// first.
pub fn manifests_in<D: Dataset + ?Sized>(
    dataset: &D,
    objects: &[(String, u64)],
) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for (rel, _) in objects {
        let Some(name) = rel.strip_prefix("_skewer/runs/") else {
            continue;
        };
        if name.contains('/') || !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let name_of = dataset.name(rel);
        let bytes = dataset.read(rel)?.ok_or_else(|| {
            crate::Error::io(
                &name_of,
                std::io::Error::new(std::io::ErrorKind::NotFound, "listed, then gone"),
            )
        })?;
        let run = name.strip_suffix(".json").unwrap_or(name);
        out.push(Manifest::parse(
            &bytes,
            std::path::Path::new(&name_of),
            run,
        )?);
    }
    // Run ids sort by start time.
    out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(out)
}

/// What a dataset's lock note says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockState {
    /// No run holds it.
    Free,
    /// A live run holds it: its staging is not a leftover.
    Held(meta::LockOwner),
    /// A lock no live run holds that will stop the next run or needs taking over: why.
    Leftover(String),
}

/// What a publish will change: the partitions it swaps (relative paths) and the files it
/// replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    pub partitions: Vec<String>,
    pub replaced: Vec<String>,
}

/// A dataset's lock, whichever store holds it: released when dropped.
#[derive(Debug)]
pub struct DatasetLock {
    _held: Box<dyn std::fmt::Debug + Send>,
}

impl DatasetLock {
    pub(crate) fn new(held: impl std::fmt::Debug + Send + 'static) -> DatasetLock {
        DatasetLock {
            _held: Box::new(held),
        }
    }
}

/// How a dataset is opened for a run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Multipart part size for uploads (`None`: the store's default).
    pub part_bytes: Option<u64>,
    /// Where a remote dataset's run stages its files (`None`: the system's temporary folder).
    pub work_dir: Option<PathBuf>,
}

/// The dataset at `location` (which need not exist yet: a first run creates it).
pub fn open(location: &Location, stores: &Stores, options: &Options) -> Result<Box<dyn Dataset>> {
    match location {
        Location::Local(path) => Ok(Box::new(local::LocalDataset::new(path))),
        #[cfg(feature = "s3")]
        Location::S3(url) => Ok(Box::new(s3::S3Dataset::open(stores.s3()?, url, options)?)),
        #[cfg(not(feature = "s3"))]
        Location::S3(url) => {
            let _ = (stores, options);
            Err(no_s3(&url.to_string()))
        }
    }
}

/// An existing dataset at `location`: an error if nothing there is skewer's.
pub fn open_existing(location: &Location, stores: &Stores) -> Result<Box<dyn Dataset>> {
    let dataset = open(location, stores, &Options::default())?;
    if !dataset.exists()? {
        return Err(crate::Error::Config(format!(
            "{location}: not a skewer dataset (no _skewer folder)"
        )));
    }
    Ok(dataset)
}

/// What is under `location`, for reading (a history folder or file).
pub fn folder(location: &Location, stores: &Stores) -> Result<Box<dyn Folder>> {
    match location {
        Location::Local(path) => Ok(Box::new(local::LocalDataset::new(path))),
        #[cfg(feature = "s3")]
        Location::S3(url) => Ok(Box::new(s3::S3Dataset::new(stores.s3()?, url))),
        #[cfg(not(feature = "s3"))]
        Location::S3(url) => {
            let _ = stores;
            Err(no_s3(&url.to_string()))
        }
    }
}

/// Access to object stores, connected on first use: a run that reads and writes only local
/// files never loads AWS configuration.
#[derive(Debug, Default)]
pub struct Stores {
    #[cfg(feature = "s3")]
    config: crate::s3::S3Config,
    #[cfg(feature = "s3")]
    s3: std::sync::OnceLock<Arc<crate::s3::S3>>,
}

impl Stores {
    /// Stores reached through `endpoint` (an S3-compatible store; `None`: AWS's own, or
    /// `AWS_ENDPOINT_URL`). Without the `s3` feature the endpoint is unused.
    pub fn with_endpoint(endpoint: Option<String>) -> Stores {
        #[cfg(feature = "s3")]
        {
            Stores {
                config: crate::s3::S3Config { endpoint },
                s3: std::sync::OnceLock::new(),
            }
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = endpoint;
            Stores {}
        }
    }

    /// The S3 client.
    #[cfg(feature = "s3")]
    pub fn s3(&self) -> crate::Result<Arc<crate::s3::S3>> {
        if let Some(s3) = self.s3.get() {
            return Ok(s3.clone());
        }
        let s3 = crate::s3::S3::connect(&self.config)?;
        Ok(self.s3.get_or_init(|| s3).clone())
    }
}

impl Stores {
    /// The objects `url` names (`input`, as given, for messages), each with its first
    /// `head_bytes`.
    pub fn discover(&self, url: &S3Url, input: &str, head_bytes: usize) -> Result<Vec<Found>> {
        #[cfg(feature = "s3")]
        {
            crate::s3::inputs::discover(&self.s3()?, url, input, head_bytes)
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (url, head_bytes);
            Err(no_s3(input))
        }
    }
}

/// The error for an `s3://` location in a build without the `s3` feature.
pub fn no_s3(location: &str) -> crate::Error {
    crate::Error::Config(format!(
        "{location}: this skewer was built without S3 support (cargo feature \"s3\")"
    ))
}
