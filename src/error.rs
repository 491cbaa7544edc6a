//! skewer's errors. Each bad-input variant names the file (and where it can, the line and
//! column); `Config` is a usage error; `Bug` is a broken invariant, never the user's fault.

use std::path::PathBuf;

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JSON file does not parse (or has the wrong types) at `line:column`.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A Parquet file could not be read or written.
    #[error("{}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    /// An input that cannot be read to its end, so that the records it holds cannot all be
    /// counted (a cut or corrupt stream, a text that stops parsing, a file that changed while
    /// it was read, a pipe): the run stops and publishes nothing.
    #[error("{}: {reason}; the run stopped and published nothing", path.display())]
    Input { path: PathBuf, reason: String },
    /// A history file parses but is not a valid history.
    #[error("{}: {reason}", path.display())]
    BadHistory { path: PathBuf, reason: String },
    /// A file skewer keeps for itself under `_skewer/` (a manifest, an intent, a lock note)
    /// does not hold what skewer writes: it was edited or damaged, and is not acted on.
    #[error("{}: {reason}; skewer wrote this file for itself and it has been edited or damaged, so skewer will not act on it: restore it, or move it out of _skewer/ once you know what it describes", path.display())]
    BadMeta { path: PathBuf, reason: String },
    /// A history directory or file holds no run records.
    #[error("{}: no history runs found (expected *.json run records, see history/README.md)", path.display())]
    EmptyHistory { path: PathBuf },
    /// An object-store request failed (after its retries).
    #[error("{url}: cannot {op}: {reason}")]
    S3 {
        url: String,
        op: &'static str,
        reason: String,
    },
    /// Writing the command's output failed (a closed pipe, a full disk).
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// Another run holds the dataset. `hint`: what frees it (a local lock dies with its
    /// process; an object-store lock must be removed if its run is gone).
    #[error("{}: the dataset is locked by {owner}; {hint}", path.display())]
    Locked {
        path: PathBuf,
        owner: String,
        hint: &'static str,
    },
    /// A publish stopped part way: some partitions may be new, the rest old, until it is
    /// finished from its manifest.
    #[error("{}", publish_stopped(dataset, run, progress, cause))]
    PublishStopped {
        dataset: String,
        run: String,
        progress: Progress,
        cause: Box<Error>,
    },
    /// More records were unreadable than `--max-bad-records` allows; nothing was published.
    #[error("{bad} of {read} records (and versions) could not be read, more than --max-bad-records {limit} allows; nothing was published (the rejects, with reasons: {})", rejects.display())]
    TooManyBadRecords {
        bad: u64,
        read: u64,
        limit: String,
        rejects: PathBuf,
    },
    /// An `--input` path, prefix or glob matched nothing (exit 2, as a usage error).
    #[error("--input {input:?} matches no {what}")]
    NoInput { input: String, what: &'static str },
    /// A dataset does not hold what it should (`skewer checksum --expected`).
    #[error("{0}")]
    Mismatch(String),

    /// A multi-process run's processes could not meet, or do not run the same job.
    #[error("process {process} ({address}): {reason}; nothing was published")]
    Cluster {
        process: usize,
        address: String,
        reason: String,
    },
    /// The configuration is invalid (a usage error).
    #[error("{0}")]
    Config(String),
    /// A broken invariant: a bug in skewer.
    #[error("internal error (a bug in skewer, please report it): {0}")]
    Bug(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A serde_json error at its line and column, without serde_json's own location suffix.
    pub(crate) fn json(path: impl Into<PathBuf>, e: &serde_json::Error) -> Self {
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        Error::Json {
            path: path.into(),
            line,
            column,
            message,
        }
    }

    /// The process exit code: 2 for usage, 3 for too many bad records, 1 for any other failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::NoInput { .. } => 2,
            Error::TooManyBadRecords { .. } => 3,
            _ => 1,
        }
    }
}

/// How far a publish got when it stopped ([`Error::PublishStopped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A local publish: partitions swapped so far, of the run's `total`.
    Swapped { swapped: usize, total: usize },
    /// A publish to S3 whose manifest could not be written: it may or may not be there.
    ManifestUnsure,
    /// A publish to S3, its manifest written: objects it replaces deleted so far, of `total`
    /// (all of them when it stopped moving the history record).
    Deleted { deleted: usize, total: usize },
}

fn publish_stopped(dataset: &str, run: &str, progress: &Progress, cause: &Error) -> String {
    // The cause may end a sentence of its own (a store's message).
    let text = cause.to_string();
    let cause = text.trim_end_matches('.');
    let manifest = format!("{dataset}/_skewer/runs/{run}.json");
    let recover = format!(
        "Fix the cause, then run `skewer recover {dataset}` (the next run also does it first)"
    );
    match *progress {
        Progress::Swapped { swapped, total } => {
            local_publish_stopped(dataset, run, swapped, total, &text)
        }
        Progress::ManifestUnsure => format!(
            "the publish of run {run} stopped writing its manifest: {cause}. Readers still see \
             the dataset as it was, beside the run's new objects, which no manifest names yet; \
             the manifest ({manifest}) may or may not have been written. {recover}: it \
             finishes the publish if the manifest is there and removes the new objects if not"
        ),
        Progress::Deleted { deleted, total } => {
            let seen = if deleted >= total {
                "readers see the run's new objects and none of the ones they replace (its \
                 history record and commit mark are missing)"
                    .to_string()
            } else {
                format!(
                    "readers listing the partitions see the run's new objects side by side with \
                     {} of the {total} old ones they replace",
                    total - deleted
                )
            };
            format!(
                "the publish of run {run} stopped after deleting {deleted} of the {total} objects \
                 it replaces: {cause}. {seen}; its manifest ({manifest}) says \"publishing\". \
                 {recover} to finish the publish"
            )
        }
    }
}

fn local_publish_stopped(
    dataset: &str,
    run: &str,
    swapped: usize,
    total: usize,
    cause: &str,
) -> String {
    let seen = if swapped == 0 {
        "readers still see the dataset as it was".to_string()
    } else {
        format!(
            "readers now see {swapped} of the run's {total} partitions new and the rest as they were"
        )
    };
    format!(
        "the publish of run {run} stopped after {swapped} of {total} partitions: {cause}. \
         {seen}; its manifest ({dataset}/_skewer/runs/{run}.json) says \"publishing\". \
         Fix the cause, then run `skewer recover {dataset}` (the next run also does it first) \
         to finish the publish"
    )
}

/// What a panic said, from its payload (a `String` or a `&str`, else "unknown").
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
