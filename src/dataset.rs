//! Reading a skewer dataset back: its data files, their partition values, their rows.
//!
//! Used to verify runs (tests, benchmarks, checksums) and by `inspect`. Files are found as a
//! Hive reader finds them: folders named `key=value` (values unescaped), anything starting
//! with `_` or `.` skipped. Rows are read through the Parquet column API into [`Rows`], a
//! row group at a time ([`StoredFile`]); a partition's files merge into one sorted stream
//! ([`SortedFiles`]), what a merge into stored partitions reads.

use std::path::{Path, PathBuf};

use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::batch::Rows;
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
    let mut group = Rows::default();
    while file.next_group(&mut group)? {
        rows.append_indices(&group, &(0..group.len() as u32).collect::<Vec<_>>());
    }
    Ok(rows)
}

/// A data file skewer wrote, read back one row group at a time: its rows are sorted by
/// `(object_id, timestamp, value)` (as every file's `sorting_columns` say), so a reader of a
/// partition's files can merge them as sorted streams without holding any file whole.
pub struct StoredFile {
    path: PathBuf,
    reader: SerializedFileReader<crate::source::PreadFile>,
    /// The file's column index of each output column, in [`Rows`] order.
    columns: [usize; 7],
    next: usize,
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
    /// Opens `handle` (named `path` in messages): its footer is read and its columns found;
    /// a file without the output's columns, or with other types, is an error naming it.
    pub fn open(handle: crate::source::Handle, path: &Path) -> Result<StoredFile> {
        let parquet = |source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let reader =
            SerializedFileReader::new(crate::source::PreadFile::new(handle)).map_err(parquet)?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let index = |name: &str| {
            (0..schema.num_columns())
                .find(|&i| schema.column(i).name() == name)
                .ok_or_else(|| Error::Input {
                    path: path.to_path_buf(),
                    reason: format!("is not a skewer data file: no column {name:?}"),
                })
        };
        let columns = [
            index("object_id")?,
            index("timestamp")?,
            index("value")?,
            index("source_type")?,
            index("source_id")?,
            index("source_label")?,
            index("updated_by_user_id")?,
        ];
        Ok(StoredFile {
            path: path.to_path_buf(),
            reader,
            columns,
            next: 0,
            ints: Vec::new(),
            strings: Vec::new(),
            defs: Vec::new(),
        })
    }

    /// Row groups in the file.
    pub fn row_groups(&self) -> usize {
        self.reader.num_row_groups()
    }

    /// Reads the next row group into `out` (cleared first; `property` left at 0); `false`
    /// once every group has been read.
    pub fn next_group(&mut self, out: &mut Rows) -> Result<bool> {
        out.clear();
        if self.next >= self.reader.num_row_groups() {
            return Ok(false);
        }
        let path = self.path.clone();
        let parquet = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        let group = self.reader.get_row_group(self.next).map_err(parquet)?;
        self.next += 1;
        let n = group.metadata().num_rows() as usize;
        for (k, &c) in self.columns.iter().enumerate() {
            self.ints.clear();
            self.strings.clear();
            self.defs.clear();
            let read = match group.get_column_reader(c).map_err(parquet)? {
                ColumnReader::Int64ColumnReader(mut r) if k <= 1 || k == 6 => r
                    .read_records(n, Some(&mut self.defs), None, &mut self.ints)
                    .map_err(parquet)?,
                ColumnReader::ByteArrayColumnReader(mut r) if (2..=5).contains(&k) => r
                    .read_records(n, Some(&mut self.defs), None, &mut self.strings)
                    .map_err(parquet)?,
                _ => {
                    return Err(Error::Input {
                        path,
                        reason: format!(
                            "is not a skewer data file: column {} has another type",
                            group.metadata().column(c).column_descr().name()
                        ),
                    });
                }
            };
            if read.0 != n {
                return Err(Error::Input {
                    path,
                    reason: format!(
                        "row group {} holds {} rows but its column {c} {}",
                        self.next - 1,
                        n,
                        read.0
                    ),
                });
            }
            self.take_column(k, n, out);
        }
        out.property.resize(n, 0);
        Ok(true)
    }

    /// Moves the column just read (`k`-th in [`Rows`] order) into `out`.
    fn take_column(&self, k: usize, n: usize, out: &mut Rows) {
        let present = |i: usize| self.defs.is_empty() || self.defs[i] > 0;
        let mut next = 0;
        match k {
            0 => out.object_id.extend_from_slice(&self.ints),
            1 => out.timestamp.extend_from_slice(&self.ints),
            2..=5 => {
                let col = match k {
                    2 => &mut out.cols.value,
                    3 => &mut out.cols.source_type,
                    4 => &mut out.cols.source_id,
                    _ => &mut out.cols.source_label,
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

/// A partition's stored files as one sorted stream: each file's rows are in output order
/// (the whole row, nulls first), so the next row overall is the smallest of the files'
/// heads. One row group per file is held at a time; a partition has few files (about one
/// per reducer its property spans), so the heads are compared in a plain scan.
#[derive(Debug)]
pub struct SortedFiles {
    /// Each file, its current row group and the position in it.
    files: Vec<(StoredFile, Rows, usize)>,
}

impl SortedFiles {
    /// The stream over `files`, their first row groups read.
    pub fn open(files: Vec<StoredFile>) -> Result<SortedFiles> {
        let mut out = SortedFiles {
            files: Vec::with_capacity(files.len()),
        };
        for mut file in files {
            let mut group = Rows::default();
            if file.next_group(&mut group)? {
                out.files.push((file, group, 0));
            }
        }
        Ok(out)
    }

    /// Appends up to `max` of the next rows, in order, to `out`; how many (0: all were read).
    pub fn next_rows(&mut self, out: &mut Rows, max: usize) -> Result<usize> {
        let mut taken = 0;
        while taken < max {
            let Some(i) = self.smallest() else {
                break;
            };
            let (file, group, pos) = &mut self.files[i];
            out.push(0, &group.row(*pos));
            taken += 1;
            *pos += 1;
            if *pos == group.len() {
                *pos = 0;
                if !file.next_group(group)? {
                    self.files.swap_remove(i);
                }
            }
        }
        Ok(taken)
    }

    /// The file whose head sorts first (ties: the first such file).
    fn smallest(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, (_, group, pos)) in self.files.iter().enumerate() {
            let better = match best {
                None => true,
                Some(b) => {
                    let (_, bg, bp) = &self.files[b];
                    crate::reduce::compare_rows(&group.row(*pos), &bg.row(*bp))
                        == std::cmp::Ordering::Less
                }
            };
            if better {
                best = Some(i);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Columns, Row};
    use crate::sink::{PropertyWriter, SinkOptions};

    /// What the sink writes, a stored file gives back, one row group at a time, nulls and all.
    #[test]
    fn a_stored_file_reads_back_group_by_group() {
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
        let mut group = Rows::default();
        let mut back = Columns::default();
        let mut sizes = Vec::new();
        while file.next_group(&mut group).unwrap() {
            sizes.push(group.len());
            for i in 0..group.len() {
                back.push(&group.row(i));
            }
        }
        assert_eq!(sizes, [300, 300, 300, 100]);
        assert_eq!(back, rows);
        assert_eq!(read_rows(path).unwrap().cols, rows);
    }

    /// Three files holding interleaved parts of one partition read back as one sorted stream,
    /// equal to sorting all their rows.
    #[test]
    fn a_partitions_files_merge_into_one_sorted_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Columns::default();
        let mut seed = 7u64;
        let mut files = Vec::new();
        let options = SinkOptions {
            row_group_rows: 50,
            ..SinkOptions::default()
        };
        for f in 0..3 {
            let mut rows = Columns::default();
            for _ in 0..400 {
                seed = planner::fmix64(seed);
                let row = Row {
                    object_id: (seed % 300) as i64,
                    timestamp: (seed >> 20) as i64 % 1000,
                    value: None,
                    source_type: (f != 1).then_some(&b"A"[..]),
                    source_id: None,
                    source_label: None,
                    updated_by_user_id: Some(f),
                };
                rows.push(&row);
                all.push(&row);
            }
            let (order, _) = crate::reduce::sort_dedupe(&rows);
            let mut writer = PropertyWriter::new(dir.path(), &format!("part-{f}"), &options);
            writer.write(&rows, &order).unwrap();
            let path = writer.finish().unwrap().files[0].path.clone();
            let handle = crate::source::LocalFile::open(&path).unwrap();
            files.push(StoredFile::open(handle, &path).unwrap());
        }
        let mut stream = SortedFiles::open(files).unwrap();
        let mut merged = Rows::default();
        while stream.next_rows(&mut merged, 77).unwrap() > 0 {}
        let (order, duplicates) = crate::reduce::sort_dedupe(&all);
        let mut want = Columns::default();
        for &i in &order {
            want.push(&all.row(i as usize));
        }
        assert_eq!(merged.len() as u64 + duplicates, 1200);
        assert_eq!(merged.cols, want);
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
