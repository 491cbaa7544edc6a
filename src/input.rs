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
//! Bad data is never an error here: a line or text that does not parse is rejected with its
//! place, and reading goes on. Only the operating system failing to read a file is an error.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::explode::json::{JsonContext, JsonScratch, explode_reader, explode_slice};
use crate::explode::{PropertyIds, RecordSink};
use crate::route::{Router, UnitLocation};
use crate::source::{Handle, LocalFile, Reader, Stores};
use parquet::file::reader::FileReader;

/// Default bytes of NDJSON per split.
pub const SPLIT_BYTES: u64 = 64 << 20;
/// Bytes read at a time from an NDJSON range.
const CHUNK: usize = 4 << 20;
/// S3 objects up to this size are fetched whole when discovered, ...
#[cfg(feature = "s3")]
const WHOLE_OBJECT: u64 = 256 << 10;
/// ... as long as all of them together stay within this.
#[cfg(feature = "s3")]
const WHOLE_BUDGET: u64 = 64 << 20;
/// Requests in flight while discovering S3 inputs (each is mostly waiting).
#[cfg(feature = "s3")]
const DISCOVER_REQUESTS: usize = 16;
/// Whole (non-NDJSON) texts up to this size are read into memory and parsed as a slice
/// (faster); larger ones are streamed, so memory stays bounded.
const SLURP_LIMIT: u64 = 16 << 20;

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
    /// Where the bytes are.
    pub location: Location,
}

/// Where an input file's bytes are.
#[derive(Clone, Debug)]
pub enum Location {
    /// At `path` on this machine.
    Local,
    /// In an object store.
    #[cfg(feature = "s3")]
    S3(Arc<crate::s3::S3Object>),
}

impl InputFile {
    /// The file's bytes, for positioned reads.
    pub fn open(&self) -> Result<Handle> {
        match &self.location {
            Location::Local => LocalFile::open(&self.path).map_err(|e| Error::io(&self.path, e)),
            #[cfg(feature = "s3")]
            Location::S3(object) => Ok(object.clone()),
        }
    }
}

/// A unit of map work.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        if input.starts_with("s3://") {
            out.extend(discover_local(&std::mem::take(&mut local))?);
            #[cfg(feature = "s3")]
            out.extend(discover_s3(input, stores)?);
            #[cfg(not(feature = "s3"))]
            {
                let _ = stores;
                return Err(crate::source::no_s3(input));
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

/// `s3://bucket/prefix`: the object itself, or the objects under `prefix/` (hidden names
/// skipped); `s3://bucket/dt=*/x*.json`: the objects (or folders) the glob matches.
#[cfg(feature = "s3")]
fn discover_s3(input: &str, stores: &Stores) -> Result<Vec<InputFile>> {
    use crate::s3::{S3Object, S3Url};
    let url = S3Url::parse(input).expect("an s3:// URL")?;
    let s3 = stores.s3()?;
    let hidden_below = |rest: &str| rest.split('/').any(|c| c.starts_with(['.', '_']));
    let mut keys = Vec::new();
    if is_glob(&url.key) {
        let literal = &url.key[..url.key.find(['*', '?', '[']).unwrap_or(url.key.len())];
        let pattern = glob::Pattern::new(url.key.trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("--input {input:?}: bad pattern: {e}")))?;
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        for object in s3.list(&url.at(literal))? {
            // The key itself, or a folder above it, matches; below a matched folder hidden
            // names are skipped, as in a local directory.
            let key = &object.key;
            let matched = key
                .match_indices('/')
                .map(|(i, _)| i)
                .chain([key.len()])
                .any(|end| {
                    pattern.matches_with(&key[..end], options)
                        && (end == key.len() || !hidden_below(&key[end + 1..]))
                });
            if matched && !key.ends_with('/') {
                keys.push(object);
            }
        }
    } else {
        let exact = url.key.trim_end_matches('/');
        let dir = url.dir_prefix();
        for object in s3.list(&url)? {
            let under = object.key.strip_prefix(&dir).filter(|_| !dir.is_empty());
            let take = if object.key == exact && !url.key.ends_with('/') {
                true
            } else if dir.is_empty() {
                !hidden_below(&object.key)
            } else {
                under.is_some_and(|rest| !rest.is_empty() && !hidden_below(rest))
            };
            if take && !object.key.ends_with('/') {
                keys.push(object);
            }
        }
    }
    if keys.is_empty() {
        return Err(Error::NoInput {
            input: input.to_string(),
            what: "objects",
        });
    }
    // Sniffing is a round trip per object: many at once. Small objects are fetched whole
    // (within a budget), which spares them every later request.
    let budget = std::sync::atomic::AtomicU64::new(WHOLE_BUDGET);
    let files = crate::source::par_map(&keys, DISCOVER_REQUESTS, |object| {
        use std::sync::atomic::Ordering::Relaxed;
        let at = url.at(object.key.clone());
        let name = at.to_string();
        let whole = object.size <= WHOLE_OBJECT
            && budget
                .fetch_update(Relaxed, Relaxed, |left| left.checked_sub(object.size))
                .is_ok();
        let head_len = if whole {
            object.size
        } else {
            object.size.min(4)
        };
        let head = s3.get_range(&at, 0, head_len as usize)?;
        Ok(InputFile {
            path: PathBuf::from(&name),
            name: Arc::from(name.as_str()),
            size: object.size,
            format: sniff(&head[..head.len().min(4)]),
            location: Location::S3(Arc::new(S3Object {
                s3: s3.clone(),
                url: at,
                size: object.size,
                whole: whole.then_some(head),
            })),
        })
    });
    files.into_iter().collect()
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
            if found.is_empty() {
                return Err(Error::NoInput {
                    input: input.clone(),
                    what: "files",
                });
            }
            found.sort();
            paths.extend(found);
        } else {
            let path = PathBuf::from(input);
            let mut found = Vec::new();
            collect(&path, &mut found)?;
            found.sort();
            paths.extend(found);
        }
    }
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    paths.into_iter().map(|p| describe(&p)).collect()
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
    }
    Ok(())
}

fn describe(path: &Path) -> Result<InputFile> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io(path, e))?;
    Ok(InputFile {
        path: path.to_path_buf(),
        name: Arc::from(path.to_string_lossy().as_ref()),
        size,
        format: sniff(&magic[..n]),
        location: Location::Local,
    })
}

/// A file's format from its first (up to) four bytes.
fn sniff(magic: &[u8]) -> Format {
    match magic {
        [b'P', b'A', b'R', b'1'] => Format::Parquet,
        [0x1f, 0x8b, ..] => Format::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Format::Zstd,
        _ => Format::Json,
    }
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

/// Whether a plain JSON file is NDJSON: its first line is one complete JSON value.
fn is_ndjson(file: &InputFile) -> Result<bool> {
    // Small reads: the first line is usually short, and from S3 each read is a request.
    let mut reader = BufReader::with_capacity(64 << 10, Reader::new(file.open()?, 0));
    let mut line = Vec::new();
    // A first line longer than this is no NDJSON we can split cheaply; read it whole.
    (&mut reader)
        .take(64 << 20)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io(&file.path, e))?;
    let text = line.trim_ascii();
    Ok(!text.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok())
}

/// Cuts files into splits: NDJSON into ranges of about `split_bytes`, Parquet into its row
/// groups (a file whose footer cannot be read becomes one split, rejected when read).
pub fn splits(files: &[InputFile], split_bytes: u64) -> Result<Vec<Split>> {
    // A look at each file's head or footer: a round trip each from S3, so several at once.
    let indexed: Vec<(usize, &InputFile)> = files.iter().enumerate().collect();
    let per_file = crate::source::par_map(&indexed, SPLIT_LOOKS, |&(i, f)| {
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
        Format::Json if f.size > split_bytes && is_ndjson(f)? => {
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
        Format::Json if is_ndjson(f)? => out.push(Split::Lines {
            file: i,
            start: 0,
            end: f.size,
        }),
        Format::Parquet => {
            let handle = f.open()?;
            match contain_panic(|| crate::explode::parquet::open(handle)) {
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
            read_lines(&files[file], start, end, scratch, ids, router)
        }
        Split::Whole { file } => read_whole(&files[file], scratch, ids, router),
        Split::RowGroups { file, start, end } => {
            read_row_groups(&files[file], start..end, scratch, ids, router)
        }
    }
}

/// Parquet row groups `groups`. A file that cannot be opened as a nested dump is rejected
/// whole; a row group that fails mid-read is rejected from the failure on.
fn read_row_groups(
    file: &InputFile,
    groups: std::ops::Range<usize>,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    use crate::explode::parquet::{ParquetSink, explode_row_group, open};
    // A file's row groups are consecutive splits: read its footer once per mapper, not once
    // per row group (for S3, that is two requests saved per split).
    let cached = matches!(&scratch.opened, Some((name, _)) if *name == file.name);
    if !cached {
        scratch.opened = None;
        let handle = file.open()?;
        match contain_panic(|| open(handle)).and_then(|r| r) {
            Ok(v) => scratch.opened = Some((file.name.clone(), v)),
            Err(reason) => {
                locate(router, file, None, None);
                ParquetSink::reject(router, 0, &reason);
                return Ok(());
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
        let result = contain_panic(|| {
            explode_row_group(opened, g, ids, router, &mut scratch.parquet)
                .map_err(|e| e.to_string())
        });
        if let Err(e) = result.and_then(|r| r) {
            // Whatever the decoder left half-built belongs to the failed row group.
            scratch.parquet = Default::default();
            let reason = format!("row group {g} could not be read to its end: {e}");
            ParquetSink::reject(router, 0, &reason);
        }
        if router.disconnected {
            break;
        }
    }
    Ok(())
}

/// Runs `f`, turning a panic (a third-party decoder meeting input it does not expect) into an
/// error: one corrupt file must not end the run. skewer's own invariants are checked before
/// publishing (rows must add up), so a bug caught here still cannot publish wrong data.
/// Panics inside `f` are not printed (they become rejects with the panic's message); every
/// other panic still reaches the default hook.
pub(crate) fn contain_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    thread_local! {
        static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    CONTAINED.with(|c| c.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(false));
    result.map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown".into());
        format!("the Parquet decoder failed: {msg}")
    })
}

fn locate(router: &mut Router<'_>, file: &InputFile, line: Option<u64>, offset: Option<u64>) {
    router.location = UnitLocation {
        file: file.name.clone(),
        line,
        offset,
        row_group: None,
    };
}

/// The NDJSON lines starting in `[start, end)`: a line belongs to the split its first byte is in.
fn read_lines(
    file: &InputFile,
    start: u64,
    end: u64,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    let f = file.open()?;
    let io = |e| Error::io(&file.path, e);
    let mut lines = LineReader::new(f.as_ref(), &mut scratch.buf);
    if start > 0 {
        // Skip the line that began in the previous split.
        lines.seek(start - 1).map_err(io)?;
        if lines.next_line().map_err(io)?.is_none() {
            return Ok(());
        }
    }
    while let Some((offset, line)) = lines.next_line().map_err(io)? {
        if offset >= end {
            break;
        }
        if router.disconnected {
            break;
        }
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        if text.trim_ascii().is_empty() {
            continue;
        }
        // Line numbers are resolved from offsets only for rejects, after the run.
        explode_line(
            file,
            text,
            None,
            Some(offset),
            &mut scratch.json,
            ids,
            router,
        );
    }
    Ok(())
}

/// A whole JSON text (array, page, pretty-printed or concatenated objects), or any compressed
/// file (which cannot be split).
fn read_whole(
    file: &InputFile,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    let f = file.open()?;
    if file.size == 0 {
        locate(router, file, None, None);
        router.reject(0, "the file is empty");
        return Ok(());
    }
    match file.format {
        Format::Json if file.size <= SLURP_LIMIT => {
            let buf = &mut scratch.buf;
            buf.clear();
            buf.resize(file.size as usize, 0);
            let got =
                read_up_to(&mut Reader::new(f, 0), buf).map_err(|e| Error::io(&file.path, e))?;
            buf.truncate(got);
            locate(router, file, None, None);
            let mut ctx = JsonContext::new(&mut scratch.json, ids, router);
            let result = explode_slice(buf, &mut ctx);
            let records = ctx.records;
            text_done(router, file, result, records);
        }
        Format::Json => read_stream(file, Reader::buffered(f, 0), scratch, ids, router)?,
        Format::Gzip => {
            let decoder = flate2::read::MultiGzDecoder::new(Reader::buffered(f, 0));
            read_stream(
                file,
                BufReader::with_capacity(1 << 20, decoder),
                scratch,
                ids,
                router,
            )?;
        }
        Format::Zstd => match zstd::stream::read::Decoder::with_buffer(Reader::buffered(f, 0)) {
            Ok(decoder) => read_stream(
                file,
                BufReader::with_capacity(1 << 20, decoder),
                scratch,
                ids,
                router,
            )?,
            Err(e) => {
                locate(router, file, None, None);
                router.reject(0, &format!("cannot start zstd decompression: {e}"));
            }
        },
        Format::Parquet => {
            // Only a file whose footer could not be read is split as a whole.
            let reason = match contain_panic(|| crate::explode::parquet::open(f)) {
                Ok(Err(reason)) | Err(reason) => reason,
                Ok(Ok(_)) => "the file changed while it was being read".into(),
            };
            locate(router, file, None, None);
            router.reject(0, &reason);
        }
    }
    Ok(())
}

/// One NDJSON line: its records, or a reject if it is not valid JSON.
fn explode_line(
    file: &InputFile,
    text: &[u8],
    line: Option<u64>,
    offset: Option<u64>,
    json: &mut JsonScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) {
    locate(router, file, line, offset);
    let mut ctx = JsonContext::new(json, ids, router);
    if let Err(e) = explode_slice(text, &mut ctx) {
        let records = ctx.records;
        let reason = format!(
            "invalid JSON at column {}: {}",
            e.column(),
            strip_position(&e)
        );
        router.reject(records, &reason);
    }
}

/// Reports a whole text's syntax error (if any) as a reject of the rest of the text.
fn text_done(
    router: &mut Router<'_>,
    file: &InputFile,
    result: serde_json::Result<()>,
    records: u64,
) {
    if let Err(e) = result {
        let line = e.line() as u64;
        locate(router, file, Some(line), None);
        let what = if e.is_eof() {
            "the text ends early"
        } else {
            "invalid JSON"
        };
        router.reject(
            records,
            &format!(
                "{what} at line {line} column {}: {}; the rest of the file is not read",
                e.column(),
                strip_position(&e)
            ),
        );
    }
}

/// A decompressed (or too large to slurp) stream: NDJSON line by line if its first line is a
/// whole value, else one streamed text. Decompression errors reject the rest of the file.
fn read_stream(
    file: &InputFile,
    mut reader: impl BufRead,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    let buf = &mut scratch.buf;
    buf.clear();
    let mut line_no = 0u64;
    let first = reader.read_until(b'\n', buf);
    let decode_failed = |router: &mut Router<'_>, line: u64, e: &io::Error| {
        locate(router, file, Some(line), None);
        router.reject(
            0,
            &format!("cannot decompress: {e}; the rest of the file is not read"),
        );
    };
    if let Err(e) = first {
        if is_decode_error(&e) {
            decode_failed(router, 1, &e);
            return Ok(());
        }
        return Err(Error::io(&file.path, e));
    }
    let head = buf.trim_ascii();
    if head.is_empty() && buf.is_empty() {
        locate(router, file, None, None);
        router.reject(0, "the file is empty (after decompression)");
        return Ok(());
    }
    let ndjson = !head.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(head).is_ok();
    if !ndjson {
        // One text, streamed: the line already read, then the rest.
        let head = std::mem::take(buf);
        let chained = io::Cursor::new(head).chain(reader);
        locate(router, file, None, None);
        let mut ctx = JsonContext::new(&mut scratch.json, ids, router);
        let result = explode_reader(chained, &mut ctx);
        let records = ctx.records;
        match result {
            Err(e) if e.is_io() => {
                let line = e.line() as u64;
                locate(router, file, Some(line), None);
                router.reject(
                    records,
                    &format!("cannot decompress: {e}; the rest of the file is not read"),
                );
            }
            other => text_done(router, file, other, records),
        }
        return Ok(());
    }
    loop {
        line_no += 1;
        if router.disconnected {
            break;
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.trim_ascii().is_empty() {
            explode_line(
                file,
                line,
                Some(line_no),
                None,
                &mut scratch.json,
                ids,
                router,
            );
        }
        buf.clear();
        match reader.read_until(b'\n', buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_decode_error(&e) => {
                decode_failed(router, line_no + 1, &e);
                break;
            }
            Err(e) => return Err(Error::io(&file.path, e)),
        }
    }
    Ok(())
}

/// A decompressor's complaint about its input (corrupt or truncated data), as opposed to the
/// operating system failing to read the file.
fn is_decode_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::Other
    )
}

/// serde_json's message without its trailing " at line L column C".
fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

/// Lines of a file from an offset, through one reused buffer of about [`CHUNK`] bytes (more
/// only while a single line is longer).
struct LineReader<'f> {
    file: &'f dyn crate::source::RandomAccess,
    buf: &'f mut Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    /// Consumed bytes at the front of `buf`.
    pos: usize,
    eof: bool,
}

impl<'f> LineReader<'f> {
    fn new(file: &'f dyn crate::source::RandomAccess, buf: &'f mut Vec<u8>) -> Self {
        buf.clear();
        LineReader {
            file,
            buf,
            base: 0,
            pos: 0,
            eof: false,
        }
    }

    fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.buf.clear();
        self.base = offset;
        self.pos = 0;
        self.eof = false;
        Ok(())
    }

    /// Reads more: moves the unconsumed tail to the front, then appends up to a chunk.
    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let have = self.buf.len();
        self.buf.resize(have + CHUNK, 0);
        let mut got = 0;
        while got < CHUNK {
            match self
                .file
                .read_at(&mut self.buf[have + got..], self.base + (have + got) as u64)
            {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(have + got);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(have + got);
        Ok(())
    }

    /// The next line (without its `\n`) and its file offset; the last line may lack a `\n`.
    fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[self.pos..]) {
                let start = self.pos;
                self.pos += nl + 1;
                return Ok(Some((
                    self.base + start as u64,
                    &self.buf[start..start + nl],
                )));
            }
            if self.eof {
                if self.pos < self.buf.len() {
                    let start = self.pos;
                    self.pos = self.buf.len();
                    return Ok(Some((self.base + start as u64, &self.buf[start..])));
                }
                return Ok(None);
            }
            self.fill()?;
        }
    }
}

/// Fills in the line numbers of rejects located by byte offset (NDJSON ranges), counting
/// newlines once per file that has such rejects.
pub fn resolve_reject_lines(
    rejects: &mut [crate::route::Reject],
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
