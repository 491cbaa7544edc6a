//! Input: paths, directories and globs → files → splits → records into explode.
//!
//! ```text
//!  --input a.ndjson dir/ 'dumps/*.json.gz'
//!        │ discover: files (directories walked, `_`/`.` names skipped as Hive does), sniffed
//!        ▼           by content: Parquet (PAR1), gzip, zstd, else JSON
//!  InputFile ──splits──► Split::Lines{start,end}  NDJSON, cut at newlines (~split_bytes each)
//!                        Split::Whole             a JSON array/page/pretty file, any compressed file
//!                        Split::RowGroups{..}     Parquet
//! ```
//!
//! A split is the unit of parallel map work. NDJSON ranges are read with positioned reads
//! into one bounded buffer per mapper rather than memory-mapped: a dump truncated while we
//! read it is then an I/O error, not a SIGBUS, and resident memory stays at the buffer size
//! whatever the file size. The copy costs far less than the JSON parse that follows.
//!
//! No record is lost without a count. A record that cannot be read (a line that does not
//! parse, a Parquet object without an id) is rejected with its place and reading goes on. A
//! loss whose size cannot be known (a cut gzip stream, a JSON text that stops parsing, a
//! Parquet file without its footer, a file that changed while it was read) stops the run
//! with an [`Error::Input`] naming the file and the place. Inputs are regular files: a pipe
//! cannot be read more than once, and is refused.

mod decode;
mod lines;
mod text;

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::explode::PropertyIds;
use crate::explode::json::JsonScratch;
use crate::route::{Router, UnitLocation};
use crate::source::{Handle, LocalFile, Reader};
use crate::store::Stores;
use parquet::file::reader::FileReader;

pub(crate) use decode::{Counted, Guarded, GzMembers};
pub(crate) use lines::{BOM, Line, range_lines};

/// Default bytes of NDJSON per split.
pub const SPLIT_BYTES: u64 = 64 << 20;
/// How a file's bytes are encoded, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Gzip,
    Zstd,
    Parquet,
}

/// One input file.
#[derive(Clone, Debug)]
pub struct InputFile {
    /// The local path, or the `s3://` URL (for messages).
    pub path: PathBuf,
    /// The path as shown in messages and manifests.
    pub name: Arc<str>,
    pub size: u64,
    pub format: Format,
    /// When a local file was last modified, as discovered: a run checks that no input
    /// changed while it was read.
    pub modified: Option<std::time::SystemTime>,
    /// The bytes in an object store; `None`: at `path` on this machine.
    pub remote: Option<Handle>,
}

impl InputFile {
    /// The file's bytes, for positioned reads.
    pub fn open(&self) -> Result<Handle> {
        match &self.remote {
            None => LocalFile::open(&self.path).map_err(|e| Error::io(&self.path, e)),
            Some(handle) => Ok(handle.clone()),
        }
    }
}

/// A unit of map work.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Split {
    /// The NDJSON lines that start in `[start, end)` of file `file`.
    Lines { file: usize, start: u64, end: u64 },
    /// All of file `file`.
    Whole { file: usize },
    /// Row groups `[start, end)` of Parquet file `file`.
    RowGroups {
        file: usize,
        start: usize,
        end: usize,
    },
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Skipped when walking a directory, as Hive readers skip them (`_SUCCESS`, `.crc`, temp files).
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name.starts_with('_')
}

/// Resolves `--input` values to files, in a stable order (as given; directories and globs
/// sorted). A path or directory that does not exist, or a glob that matches nothing, is an
/// error: a nightly job reading nothing is almost always a wrong path. `s3://bucket/prefix`
/// values (and globs under them) are listed in the bucket.
pub fn discover(inputs: &[String], stores: &Stores) -> Result<Vec<InputFile>> {
    let mut out = Vec::new();
    let mut local = Vec::new();
    for input in inputs {
        if let Some(url) = crate::store::S3Url::parse(input) {
            out.extend(discover_local(&std::mem::take(&mut local))?);
            for found in stores.discover(&url?, input, MAGIC_BYTES)? {
                let head = &found.head[..found.head.len().min(MAGIC_BYTES)];
                out.push(InputFile {
                    path: PathBuf::from(&found.name),
                    format: sniff(head, Path::new(&found.name))?,
                    name: Arc::from(found.name),
                    size: found.size,
                    modified: None,
                    remote: Some(found.handle),
                });
            }
        } else {
            local.push(input.clone());
        }
    }
    out.extend(discover_local(&local)?);
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(f.name.clone()));
    Ok(out)
}

fn discover_local(inputs: &[String]) -> Result<Vec<InputFile>> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for input in inputs {
        if is_glob(input) {
            let matches = glob::glob(input)
                .map_err(|e| Error::Config(format!("--input {input:?}: bad pattern: {e}")))?;
            let mut found = Vec::new();
            for m in matches {
                let path = m.map_err(|e| {
                    let at = e.path().to_path_buf();
                    Error::io(at, e.into())
                })?;
                collect(&path, &mut found)?;
            }
            paths.extend(some_files(input, found)?);
        } else {
            let mut found = Vec::new();
            collect(Path::new(input), &mut found)?;
            paths.extend(some_files(input, found)?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    paths.into_iter().map(|p| describe(&p)).collect()
}

/// The files an `--input` value found, sorted; none is an error (a wrong path, a folder
/// with nothing visible in it, a dump that is not there yet).
fn some_files(input: &str, mut found: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    if found.is_empty() {
        return Err(Error::NoInput {
            input: input.to_string(),
            what: "files",
        });
    }
    found.sort();
    Ok(found)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            if !is_hidden(&entry.file_name()) {
                collect(&entry.path(), out)?;
            }
        }
        return Ok(());
    }
    // A pipe (`/dev/stdin`, `<(zcat …)`), a socket or a device: read once, it could not be
    // sniffed, split and sampled, and a run could not tell whether it read all of it.
    Err(Error::Input {
        path: path.to_path_buf(),
        reason: "is not a regular file (a pipe, socket or device): skewer reads each input \
                 more than once (to recognise, split and plan it), so save it to a file first"
            .into(),
    })
}

fn describe(path: &Path) -> Result<InputFile> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; MAGIC_BYTES];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io(path, e))?;
    Ok(InputFile {
        path: path.to_path_buf(),
        name: Arc::from(path.to_string_lossy().as_ref()),
        size: meta.len(),
        format: sniff(&magic[..n], path)?,
        modified: meta.modified().ok(),
        remote: None,
    })
}

/// Bytes looked at to recognise a file's format.
const MAGIC_BYTES: usize = 8;

/// A file's format from its first (up to) [`MAGIC_BYTES`] bytes. Formats skewer does not read
/// (other compressions, archives) are refused by name rather than misread as broken JSON.
fn sniff(magic: &[u8], path: &Path) -> Result<Format> {
    let other = match magic {
        [b'P', b'A', b'R', b'1', ..] => return Ok(Format::Parquet),
        [0x1f, 0x8b, ..] => return Ok(Format::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => return Ok(Format::Zstd),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz-compressed",
        [b'B', b'Z', b'h', ..] => "bzip2-compressed",
        [0x04, 0x22, 0x4d, 0x18, ..] => "LZ4-compressed",
        [0xff, 0x06, 0, 0, b's', b'N', b'a', b'P'] => "Snappy-framed",
        [b'P', b'K', 0x03, 0x04, ..] => "a zip archive",
        [b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c, ..] => "a 7-Zip archive",
        [b'O', b'b', b'j', 0x01, ..] => "an Avro file",
        [b'O', b'R', b'C', ..] => "an ORC file",
        _ => return Ok(Format::Json),
    };
    Err(Error::Input {
        path: path.to_path_buf(),
        reason: format!(
            "is {other}, which skewer does not read: it reads JSON and nested Parquet, plain or \
             gzip- or zstd-compressed"
        ),
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Cuts files into splits: NDJSON into ranges of about `split_bytes`, Parquet into its row
/// groups (a file whose footer cannot be read becomes one split, rejected when read).
pub fn splits(files: &[InputFile], split_bytes: u64) -> Result<Vec<Split>> {
    // A look at each file's head or footer: a round trip each from S3, so several at once.
    let indexed: Vec<(usize, &InputFile)> = files.iter().enumerate().collect();
    let per_file = crate::par::par_map(&indexed, SPLIT_LOOKS, |&(i, f)| {
        file_splits(i, f, split_bytes)
    });
    let mut out = Vec::new();
    for splits in per_file {
        out.extend(splits?);
    }
    Ok(out)
}

/// Files looked at in parallel when cutting splits.
const SPLIT_LOOKS: usize = 8;

fn file_splits(i: usize, f: &InputFile, split_bytes: u64) -> Result<Vec<Split>> {
    let mut out = Vec::new();
    match f.format {
        Format::Json if !text::is_ndjson(f)? => out.push(Split::Whole { file: i }),
        Format::Json => {
            let mut start = 0;
            while start < f.size {
                let end = (start + split_bytes).min(f.size);
                out.push(Split::Lines {
                    file: i,
                    start,
                    end,
                });
                start = end;
            }
        }
        Format::Parquet => {
            let handle = f.open()?;
            match crate::explode::parquet::contain_panic(|| crate::explode::parquet::open(handle)) {
                Ok(Ok(opened)) => {
                    let groups = opened.reader.metadata().num_row_groups();
                    out.extend((0..groups).map(|g| Split::RowGroups {
                        file: i,
                        start: g,
                        end: g + 1,
                    }));
                }
                _ => out.push(Split::Whole { file: i }),
            }
        }
        _ => out.push(Split::Whole { file: i }),
    }
    Ok(out)
}

/// A mapper's reusable state.
#[derive(Debug, Default)]
pub struct MapperScratch {
    pub json: JsonScratch,
    pub parquet: crate::explode::parquet::ParquetScratch,
    buf: Vec<u8>,
    /// The Parquet file last read, by name, with its footer.
    opened: Option<(Arc<str>, crate::explode::parquet::Opened)>,
}

/// Reads one split, exploding its records into `router`. `Err` only for I/O failures the
/// operating system reports on a readable file (the run cannot be complete without it).
pub fn read_split(
    files: &[InputFile],
    split: &Split,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    match *split {
        Split::Lines { file, start, end } => {
            text::read_lines(&files[file], start, end, scratch, ids, router)
        }
        Split::Whole { file } if files[file].format == Format::Parquet => {
            unreadable_parquet(&files[file], router)
        }
        Split::Whole { file } => text::read_whole(&files[file], scratch, ids, router),
        Split::RowGroups { file, start, end } => {
            read_row_groups(&files[file], start..end, scratch, ids, router)
        }
    }
}

/// Parquet row groups `groups`. A file that cannot be opened as a nested dump is handled by
/// [`unreadable_parquet`]; a row group that fails mid-read counts every record it holds as
/// rejected (some of their versions were read before the damage; which of the rest exist
/// cannot be known).
fn read_row_groups(
    file: &InputFile,
    groups: std::ops::Range<usize>,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    use crate::explode::parquet::{explode_row_group, open};
    // A file's row groups are consecutive splits: read its footer once per mapper, not once
    // per row group (for S3, that is two requests saved per split).
    let cached = matches!(&scratch.opened, Some((name, _)) if *name == file.name);
    if !cached {
        scratch.opened = None;
        let handle = file.open()?;
        match crate::explode::parquet::contain_panic(|| open(handle)).and_then(|r| r) {
            Ok(v) => scratch.opened = Some((file.name.clone(), v)),
            // It was read when the splits were cut: it changed since.
            Err(reason) => {
                return Err(Error::Input {
                    path: file.path.clone(),
                    reason: format!("{reason} (it could be read when the run started)"),
                });
            }
        }
    }
    let opened = &scratch.opened.as_ref().expect("opened above").1;
    for g in groups {
        router.location = UnitLocation {
            file: file.name.clone(),
            line: None,
            offset: None,
            row_group: Some(g),
        };
        let rows = opened.reader.metadata().row_group(g).num_rows();
        let rows = u64::try_from(rows).unwrap_or(0);
        router.counts.records_met += rows;
        let accepted_before = router.counts.records;
        let rejected_before = router.counts.rejected;
        let result = crate::explode::parquet::contain_panic(|| {
            explode_row_group(opened, g, ids, router, &mut scratch.parquet)
                .map_err(|e| e.to_string())
        });
        if let Err(e) = result.and_then(|r| r) {
            // Whatever the decoder left half-built belongs to the failed row group.
            scratch.parquet = Default::default();
            // Every record of the group is lost in part: count them all as rejected.
            router.counts.records = accepted_before;
            router.counts.rejected = rejected_before;
            let reason = format!(
                "row group {g} could not be read to its end ({e}): its {rows} records are counted as rejected (versions read before the damage were kept)"
            );
            router.reject_records(rows, &reason);
        }
        if router.disconnected {
            break;
        }
    }
    Ok(())
}

/// A Parquet file whose footer or layout could not be read when the splits were cut. Without
/// a footer its records cannot be counted: the run stops. A readable footer of a file that is
/// not a nested dump counts every row as a rejected record.
fn unreadable_parquet(file: &InputFile, router: &mut Router<'_>) -> Result<()> {
    let handle = file.open()?;
    let reason = match crate::explode::parquet::contain_panic(|| {
        crate::explode::parquet::open(handle.clone())
    }) {
        Ok(Err(reason)) | Err(reason) => reason,
        Ok(Ok(_)) => "it changed while it was being read".into(),
    };
    match crate::explode::parquet::footer_rows(handle) {
        Some(rows) => {
            locate(router, file, None, None);
            router.counts.records_met += rows;
            router.reject_records(rows, &format!("all {rows} records: {reason}"));
            Ok(())
        }
        None => Err(Error::Input {
            path: file.path.clone(),
            reason: format!(
                "{reason}: the file is cut or is not Parquet, and its records cannot be counted"
            ),
        }),
    }
}

fn locate(router: &mut Router<'_>, file: &InputFile, line: Option<u64>, offset: Option<u64>) {
    router.location = UnitLocation {
        file: file.name.clone(),
        line,
        offset,
        row_group: None,
    };
}

/// Checks that no local input changed while the run read it (its size and modification time
/// are what discovery saw): a file still being written, or replaced, would otherwise publish
/// a part of it as if it were all. An S3 object is read only as the version the run found
/// (its ETag): a read that met another version is reported here, even where the decoder
/// turned it into rejects.
pub fn check_unchanged(files: &[InputFile]) -> Result<()> {
    for f in files {
        if let Some(remote) = &f.remote {
            if let Some(reason) = remote.changed() {
                return Err(Error::Input {
                    path: f.path.clone(),
                    reason,
                });
            }
            continue;
        }
        let meta = std::fs::metadata(&f.path).map_err(|e| Error::io(&f.path, e))?;
        if meta.len() != f.size || meta.modified().ok() != f.modified {
            return Err(Error::Input {
                path: f.path.clone(),
                reason: format!(
                    "changed while the run read it (it was {} bytes, it is now {}, modified since): \
                     run again once it is complete",
                    f.size,
                    meta.len()
                ),
            });
        }
    }
    Ok(())
}

/// Fills in the line numbers of rejects located by byte offset (NDJSON ranges), counting
/// newlines once per file that has such rejects.
pub fn resolve_reject_lines(
    rejects: &mut [crate::rejects::Reject],
    files: &[InputFile],
) -> Result<()> {
    use std::collections::HashMap;
    let by_name: HashMap<&str, &InputFile> = files.iter().map(|f| (f.name.as_ref(), f)).collect();
    let mut pending: Vec<usize> = (0..rejects.len())
        .filter(|&i| rejects[i].line.is_none() && rejects[i].offset.is_some())
        .collect();
    pending.sort_by(|&a, &b| {
        (rejects[a].file.as_ref(), rejects[a].offset)
            .cmp(&(rejects[b].file.as_ref(), rejects[b].offset))
    });
    let mut i = 0;
    while i < pending.len() {
        let name = rejects[pending[i]].file.clone();
        let Some(file) = by_name.get(name.as_ref()) else {
            i += 1;
            continue;
        };
        let mut reader = Reader::buffered(file.open()?, 0);
        let (mut at, mut line) = (0u64, 1u64);
        while i < pending.len() && rejects[pending[i]].file == name {
            let target = rejects[pending[i]].offset.unwrap_or(0);
            while at < target {
                let chunk = reader.fill_buf().map_err(|e| Error::io(&file.path, e))?;
                if chunk.is_empty() {
                    break;
                }
                let take = chunk.len().min((target - at) as usize);
                line += memchr::memchr_iter(b'\n', &chunk[..take]).count() as u64;
                reader.consume(take);
                at += take as u64;
            }
            rejects[pending[i]].line = Some(line);
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_input_changed_after_discovery_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.ndjson");
        std::fs::write(&path, b"{}\n").unwrap();
        let files = discover(
            &[path.to_string_lossy().into_owned()],
            &Stores::with_endpoint(None),
        )
        .unwrap();
        check_unchanged(&files).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{}\n")
            .unwrap();
        let err = check_unchanged(&files).unwrap_err().to_string();
        assert!(err.contains("changed while the run read it"), "{err}");
    }

    #[test]
    fn formats_skewer_does_not_read_are_named() {
        let p = Path::new("x");
        assert_eq!(sniff(b"PAR1", p).unwrap(), Format::Parquet);
        assert_eq!(sniff(b"{\"a\"", p).unwrap(), Format::Json);
        assert_eq!(sniff(b"", p).unwrap(), Format::Json);
        for (magic, name) in [
            (&b"\xfd7zXZ\x00\x00\x04"[..], "xz-compressed"),
            (b"BZh91AY&", "bzip2"),
            (b"PK\x03\x04", "a zip archive"),
        ] {
            let err = sniff(magic, p).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn an_empty_folder_is_no_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
        let err = discover(
            &[dir.path().to_string_lossy().into_owned()],
            &Stores::with_endpoint(None),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NoInput { .. }), "{err}");
    }
}
