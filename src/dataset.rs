//! Reading a skewer dataset back: its data files, their partition values, their rows.
//!
//! Used to verify runs (tests, benchmarks, checksums) and by `inspect`. Files are found as a
//! Hive reader finds them: folders named `key=value` (values unescaped), anything starting
//! with `_` or `.` skipped. Rows are read through the Parquet column API into [`Columns`], a
//! batch at a time ([`StoredFile`]): what `inspect`, checksums and a merge into stored
//! partitions (`reduce`) read.

use std::path::{Path, PathBuf};

use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::batch::{Columns, Rows};
use crate::error::{Error, Result};
use crate::layout::{PROPERTY_COLUMN, unescape_partition_value};
use crate::pages::StrChunk;

/// One data file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    /// The property, from the `property_name=` folder (unescaped).
    pub property: String,
    /// Other partition folders above it, as `key=value` (raw), outermost first.
    pub partitions: Vec<String>,
}

/// Every data file under `dataset`, sorted by path.
pub fn files(dataset: &Path) -> Result<Vec<DataFile>> {
    let mut out = Vec::new();
    walk(dataset, &mut Vec::new(), &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dir: &Path, partitions: &mut Vec<String>, out: &mut Vec<DataFile>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            partitions.push(name);
            walk(&path, partitions, out)?;
            partitions.pop();
        } else if let Some(folder) = partitions.last() {
            let Some(value) = folder
                .strip_prefix(PROPERTY_COLUMN)
                .and_then(|v| v.strip_prefix('='))
            else {
                continue;
            };
            let property = unescape_partition_value(value).ok_or_else(|| Error::BadHistory {
                path: path.clone(),
                reason: format!("folder {folder:?} is not a valid escaped partition value"),
            })?;
            out.push(DataFile {
                path,
                property,
                partitions: partitions[..partitions.len() - 1].to_vec(),
            });
        }
    }
    Ok(())
}

/// All rows of one data file, in file order (`property` column left at 0).
pub fn read_rows(path: &Path) -> Result<Rows> {
    let handle = crate::source::LocalFile::open(path).map_err(|e| Error::io(path, e))?;
    let mut file = StoredFile::open(handle, path)?;
    let mut rows = Rows::default();
    while file.next_batch(&mut rows.cols, 64 * 1024)? > 0 {}
    rows.property.resize(rows.len(), 0);
    Ok(rows)
}

/// A data file skewer wrote, read back a batch of rows at a time: its rows are sorted by
/// `(object_id, timestamp, value)` (as every file's `sorting_columns` say), so a reader of a
/// partition's files merges them as sorted streams without holding any file, or even a whole
/// row group, in memory.
pub struct StoredFile {
    path: PathBuf,
    reader: SerializedFileReader<crate::source::PreadFile>,
    /// The next row group to open.
    next: usize,
    /// The open row group's column readers (in [`Columns`] order) and rows left in it.
    open: Option<(Vec<Chunk>, usize)>,
    ints: Vec<i64>,
    strings: Vec<ByteArray>,
    defs: Vec<i16>,
}

impl std::fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFile")
            .field("path", &self.path)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl StoredFile {
    /// Opens `handle` (named `path` in messages): its footer is read and its schema checked;
    /// a file without the output schema (the same columns, in [`Columns`] order, of the same
    /// types, as `inspect` checks) is an error naming it.
    pub fn open(handle: crate::source::Handle, path: &Path) -> Result<StoredFile> {
        let reader =
            SerializedFileReader::new(crate::source::PreadFile::new(handle)).map_err(|source| {
                Error::Parquet {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        if let Some(problem) = chunk_ranges_problem(&reader)
            .or_else(|| crate::sink::schema_mismatch(reader.metadata().file_metadata().schema()))
        {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: format!("is not a skewer data file: {problem}"),
            });
        }
        Ok(StoredFile {
            path: path.to_path_buf(),
            reader,
            next: 0,
            open: None,
            ints: Vec::new(),
            strings: Vec::new(),
            defs: Vec::new(),
        })
    }

    /// Where the file is, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Row groups in the file.
    pub fn row_groups(&self) -> usize {
        self.reader.num_row_groups()
    }

    /// Rows in the file, as its footer says.
    pub fn rows(&self) -> u64 {
        let rows = self.reader.metadata().file_metadata().num_rows();
        u64::try_from(rows).unwrap_or(0)
    }

    /// The row group the last batch came from (for messages).
    pub fn row_group(&self) -> usize {
        self.next.saturating_sub(1)
    }

    /// Whether the file may hold a row of one of `ids` (sorted): some row group's
    /// `object_id` statistics cover one of them, or a group has no statistics.
    pub fn may_hold(&self, ids: &[i64]) -> bool {
        use parquet::file::statistics::Statistics;
        self.reader.metadata().row_groups().iter().any(|group| {
            let range = match group.column(0).statistics() {
                Some(Statistics::Int64(s)) => s.min_opt().zip(s.max_opt()),
                _ => None,
            };
            range.is_none_or(|(&min, &max)| {
                let first = ids.partition_point(|&id| id < min);
                ids.get(first).is_some_and(|&id| id <= max)
            })
        })
    }

    /// Appends up to `max` (at least 1) of the file's next rows to `out`, never crossing a
    /// row group; how many (0: every row has been read).
    pub fn next_batch(&mut self, out: &mut Columns, max: usize) -> Result<usize> {
        let path = self.path.clone();
        let parquet = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        while self.open.as_ref().is_none_or(|(_, left)| *left == 0) {
            if self.next >= self.reader.num_row_groups() {
                self.open = None;
                return Ok(0);
            }
            let group = self.reader.get_row_group(self.next).map_err(parquet)?;
            let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            // The schema was checked: the file's columns are the output's, in order.
            let readers = (0..group.num_columns())
                .map(|c| {
                    let meta = group.metadata().column(c);
                    if (2..=5).contains(&c) && StrChunk::handles(meta) {
                        let pages = group.get_column_page_reader(c).map_err(parquet)?;
                        let max_def = meta.column_descr().max_def_level();
                        Ok(Chunk::Strings(StrChunk::new(pages, max_def)))
                    } else {
                        group
                            .get_column_reader(c)
                            .map(Chunk::Generic)
                            .map_err(parquet)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            self.next += 1;
            self.open = Some((readers, rows));
        }
        let (mut readers, left) = self.open.take().expect("a row group is open");
        let n = left.min(max.max(1));
        for (k, reader) in readers.iter_mut().enumerate() {
            self.ints.clear();
            self.strings.clear();
            self.defs.clear();
            let reader = match reader {
                Chunk::Strings(strings) => {
                    let col = string_column(out, k);
                    let read = strings.read(n, col).map_err(|reason| {
                        self.bad_column(k, &format!("row group {}: {reason}", self.next - 1))
                    })?;
                    if read != n {
                        return Err(self.ends_early(k, left));
                    }
                    continue;
                }
                Chunk::Generic(reader) => reader,
            };
            let read = match reader {
                ColumnReader::Int64ColumnReader(r) => r
                    .read_records(n, Some(&mut self.defs), None, &mut self.ints)
                    .map_err(parquet)?,
                ColumnReader::ByteArrayColumnReader(r) => r
                    .read_records(n, Some(&mut self.defs), None, &mut self.strings)
                    .map_err(parquet)?,
                _ => return Err(Error::Bug("a column's type was checked at open".into())),
            };
            let values = if (2..=5).contains(&k) {
                self.strings.len()
            } else {
                self.ints.len()
            };
            let nulls_ok = self.defs.len() == n || (self.defs.is_empty() && values == n);
            if read.0 != n || !nulls_ok || (k <= 1 && values != n) {
                return Err(self.ends_early(k, left));
            }
            self.take_column(k, n, out);
        }
        self.open = Some((readers, left - n));
        Ok(n)
    }

    /// Column `k`'s name, for messages.
    fn column_name(&self, k: usize) -> String {
        let schema = self.reader.metadata().file_metadata().schema_descr();
        schema.column(k).name().to_string()
    }

    fn bad_column(&self, k: usize, reason: &str) -> Error {
        Error::Input {
            path: self.path.clone(),
            reason: format!("column {:?}, {reason}", self.column_name(k)),
        }
    }

    fn ends_early(&self, k: usize, left: usize) -> Error {
        Error::Input {
            path: self.path.clone(),
            reason: format!(
                "row group {} of {} rows ends early in column {:?} (or holds nulls where none \
                 may be)",
                self.next - 1,
                left,
                self.column_name(k)
            ),
        }
    }

    /// Moves the column just read (`k`-th in [`Columns`] order, `n` rows) into `out`.
    fn take_column(&self, k: usize, n: usize, out: &mut Columns) {
        let present = |i: usize| self.defs.is_empty() || self.defs[i] > 0;
        let mut next = 0;
        match k {
            0 => out.object_id.extend_from_slice(&self.ints),
            1 => out.timestamp.extend_from_slice(&self.ints),
            2..=5 => {
                let col = string_column(out, k);
                for i in 0..n {
                    if present(i) {
                        col.push(Some(self.strings[next].data()));
                        next += 1;
                    } else {
                        col.push(None);
                    }
                }
            }
            _ => {
                for i in 0..n {
                    if present(i) {
                        out.updated_by.push(Some(self.ints[next]));
                        next += 1;
                    } else {
                        out.updated_by.push(None);
                    }
                }
            }
        }
    }
}

/// What is wrong with a footer's column chunk ranges, if anything: the parquet crate panics
/// on a negative offset or size when it reads the chunk, so a corrupted footer is caught here.
fn chunk_ranges_problem<R: parquet::file::reader::ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
) -> Option<String> {
    for (g, group) in reader.metadata().row_groups().iter().enumerate() {
        for c in group.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            if start < 0 || len < 0 || start.checked_add(len).is_none() {
                return Some(format!(
                    "row group {g}, column {:?}: its footer gives the chunk offset {start} and \
                     size {len}",
                    c.column_descr().name()
                ));
            }
        }
    }
    None
}

/// A row group's reader of one column: string columns page by page into the arenas where
/// their encodings allow ([`StrChunk`]), the parquet crate's value reader otherwise.
enum Chunk {
    Strings(StrChunk),
    Generic(ColumnReader),
}

/// The `k`-th column of [`Columns`] order, one of the four string columns (2 to 5).
fn string_column(out: &mut Columns, k: usize) -> &mut crate::batch::StrColumn {
    match k {
        2 => &mut out.value,
        3 => &mut out.source_type,
        4 => &mut out.source_id,
        _ => &mut out.source_label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Row;
    use crate::sink::{PropertyWriter, SinkOptions};
    use parquet::file::properties::WriterProperties;

    /// What the sink writes, a stored file gives back, one row group at a time, nulls and all.
    #[test]
    fn a_stored_file_reads_back_batch_by_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Columns::default();
        let values: Vec<String> = (0..1000).map(|i| format!("v{i}")).collect();
        for i in 0..1000i64 {
            rows.push(&Row {
                object_id: i / 3,
                timestamp: 1_700_000_000_000 + i,
                value: (i % 7 != 0).then(|| values[i as usize].as_bytes()),
                source_type: Some(b"CRM_UI"),
                source_id: (i % 2 == 0).then_some(&b"id"[..]),
                source_label: None,
                updated_by_user_id: (i % 5 == 0).then_some(i),
            });
        }
        let options = SinkOptions {
            row_group_rows: 300,
            ..SinkOptions::default()
        };
        let mut writer = PropertyWriter::new(dir.path(), "part-t", &options);
        writer
            .write(&rows, &(0..1000).collect::<Vec<u32>>())
            .unwrap();
        let out = writer.finish().unwrap();
        assert_eq!(out.files.len(), 1);

        let path = &out.files[0].path;
        let handle = crate::source::LocalFile::open(path).unwrap();
        let mut file = StoredFile::open(handle, path).unwrap();
        assert_eq!(file.row_groups(), 4);
        assert_eq!(file.rows(), 1000);
        let mut back = Columns::default();
        let mut sizes = Vec::new();
        loop {
            let n = file.next_batch(&mut back, 200).unwrap();
            if n == 0 {
                break;
            }
            sizes.push(n);
        }
        // Batches never cross a row group.
        assert_eq!(sizes, [200, 100, 200, 100, 200, 100, 100]);
        assert_eq!(back, rows);
        assert_eq!(read_rows(path).unwrap().cols, rows);
    }

    /// Rows with nulls in every pattern, empty and long values, many distinct and repeated.
    fn mixed_rows(n: i64) -> Columns {
        let mut rows = Columns::default();
        let long = "x".repeat(3000);
        for i in 0..n {
            let value = match i % 11 {
                0 => None,
                1 => Some(String::new()),
                2 => Some(long.clone()),
                3..=6 => Some(format!("repeated-{}", i % 3)),
                _ => Some(format!("v{i}")),
            };
            rows.push(&Row {
                object_id: i / 3,
                timestamp: 1_700_000_000_000 + i,
                value: value.as_deref().map(str::as_bytes),
                source_type: Some(b"CRM_UI"),
                source_id: (i % 2 == 0).then_some(&b"id"[..]),
                source_label: None,
                updated_by_user_id: (i % 5 == 0).then_some(i),
            });
        }
        rows
    }

    fn write_with(dir: &Path, stem: &str, rows: &Columns, props: WriterProperties) -> PathBuf {
        let options = SinkOptions {
            row_group_rows: 700,
            ..SinkOptions::default()
        };
        let mut writer = PropertyWriter::new(dir, stem, &options).with_properties(props);
        let order: Vec<u32> = (0..rows.len() as u32).collect();
        writer.write(rows, &order).unwrap();
        let out = writer.finish().unwrap();
        out.files[0].path.clone()
    }

    fn read_in_batches(path: &Path, batch: usize) -> Result<Columns> {
        let handle = crate::source::LocalFile::open(path).unwrap();
        let mut file = StoredFile::open(handle, path)?;
        let mut back = Columns::default();
        while file.next_batch(&mut back, batch)? > 0 {}
        Ok(back)
    }

    /// Whatever pages and encodings a writer chose, the rows read back are the rows written:
    /// v1 and v2 pages, dictionary and plain values, a dictionary that fills and falls back
    /// to plain within a chunk, many small pages, and (through the generic reader) an
    /// encoding the page decoder leaves alone.
    #[test]
    fn string_columns_read_back_from_every_page_layout() {
        use parquet::basic::{Compression, Encoding};
        use parquet::file::properties::WriterVersion;
        let dir = tempfile::tempdir().unwrap();
        let rows = mixed_rows(2500);
        let base =
            || WriterProperties::builder().set_compression(Compression::ZSTD(Default::default()));
        let variants = [
            ("v1-dictionary", base(), true),
            (
                "v2-dictionary",
                base().set_writer_version(WriterVersion::PARQUET_2_0),
                true,
            ),
            ("plain", base().set_dictionary_enabled(false), true),
            (
                "fallback-small-pages",
                base()
                    .set_dictionary_page_size_limit(256)
                    .set_data_page_row_count_limit(7)
                    .set_write_batch_size(5),
                true,
            ),
            (
                "v2-plain-uncompressed",
                base()
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .set_dictionary_enabled(false)
                    .set_encoding(Encoding::PLAIN)
                    .set_compression(Compression::UNCOMPRESSED),
                true,
            ),
            (
                "delta",
                ["value", "source_type", "source_id", "source_label"]
                    .into_iter()
                    .fold(base(), |b, c| {
                        b.set_column_dictionary_enabled(c.into(), false)
                            .set_column_encoding(c.into(), Encoding::DELTA_BYTE_ARRAY)
                    }),
                false,
            ),
        ];
        for (stem, props, decoded_by_pages) in variants {
            let path = write_with(dir.path(), stem, &rows, props.build());
            let handle = crate::source::LocalFile::open(&path).unwrap();
            let file = StoredFile::open(handle, &path).unwrap();
            let group = file.reader.metadata().row_group(0);
            assert_eq!(
                StrChunk::handles(group.column(2)),
                decoded_by_pages,
                "{stem}: {:?}",
                group.column(2).encodings().collect::<Vec<_>>()
            );
            for batch in [1, 13, 700, 5000] {
                let back = read_in_batches(&path, batch).unwrap();
                assert!(back == rows, "{stem}, batches of {batch}");
            }
        }
    }

    /// Bytes flipped anywhere in an uncompressed file (so that lengths, levels and indices
    /// reach the decoder as they are) give an error or the rows' count, never a panic.
    #[test]
    fn a_corrupted_string_page_is_an_error_not_a_panic() {
        use parquet::basic::Compression;
        let dir = tempfile::tempdir().unwrap();
        let rows = mixed_rows(300);
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_data_page_row_count_limit(50)
            .set_write_batch_size(10)
            .build();
        let path = write_with(dir.path(), "clean", &rows, props);
        let clean = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.parquet");
        let mut errors = 0;
        for at in (4..clean.len() - 8).step_by(3) {
            let mut bytes = clean.clone();
            bytes[at] ^= 0xa5;
            std::fs::write(&bad, &bytes).unwrap();
            match read_in_batches(&bad, 64) {
                Ok(back) => assert_eq!(back.len(), rows.len(), "flip at {at}"),
                Err(e) => {
                    assert!(e.to_string().contains("bad.parquet"), "{e}");
                    errors += 1;
                }
            }
        }
        assert!(errors > 0);
    }

    #[test]
    fn a_file_that_is_not_skewers_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, b"PAR1 not really").unwrap();
        let handle = crate::source::LocalFile::open(&path).unwrap();
        let err = StoredFile::open(handle, &path).unwrap_err().to_string();
        assert!(err.contains("x.parquet"), "{err}");
    }
}
