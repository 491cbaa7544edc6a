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
    open: Option<(Vec<ColumnReader>, usize)>,
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
        if let Some(problem) =
            crate::sink::schema_mismatch(reader.metadata().file_metadata().schema())
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
                .map(|c| group.get_column_reader(c).map_err(parquet))
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
                return Err(Error::Input {
                    path,
                    reason: format!(
                        "row group {} of {} rows ends early in column {:?} (or holds nulls \
                         where none may be)",
                        self.next - 1,
                        left,
                        self.reader
                            .metadata()
                            .file_metadata()
                            .schema_descr()
                            .column(k)
                            .name()
                    ),
                });
            }
            self.take_column(k, n, out);
        }
        self.open = Some((readers, left - n));
        Ok(n)
    }

    /// Moves the column just read (`k`-th in [`Columns`] order, `n` rows) into `out`.
    fn take_column(&self, k: usize, n: usize, out: &mut Columns) {
        let present = |i: usize| self.defs.is_empty() || self.defs[i] > 0;
        let mut next = 0;
        match k {
            0 => out.object_id.extend_from_slice(&self.ints),
            1 => out.timestamp.extend_from_slice(&self.ints),
            2..=5 => {
                let col = match k {
                    2 => &mut out.value,
                    3 => &mut out.source_type,
                    4 => &mut out.source_id,
                    _ => &mut out.source_label,
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Row;
    use crate::sink::{PropertyWriter, SinkOptions};

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
