//! Reading a skewer dataset back: its data files, their partition values, their rows.
//!
//! Used to verify runs (tests, benchmarks, checksums) and by `inspect`. Files are found as a
//! Hive reader finds them: folders named `key=value` (values unescaped), anything starting
//! with `_` or `.` skipped. Rows are read through the Parquet column API into [`Rows`].

use std::fs::File;
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
    let parquet = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(parquet)?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let index = |name: &str| {
        (0..schema.num_columns())
            .find(|&i| schema.column(i).name() == name)
            .ok_or_else(|| Error::BadHistory {
                path: path.to_path_buf(),
                reason: format!("no column {name:?}"),
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
    let mut rows = Rows::default();
    let mut ints: Vec<i64> = Vec::new();
    let mut strings: Vec<ByteArray> = Vec::new();
    let mut defs: Vec<i16> = Vec::new();
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(parquet)?;
        let n = group.metadata().num_rows() as usize;
        let base = rows.len();
        for (k, &c) in columns.iter().enumerate() {
            ints.clear();
            strings.clear();
            defs.clear();
            match group.get_column_reader(c).map_err(parquet)? {
                ColumnReader::Int64ColumnReader(mut r) => {
                    r.read_records(n, Some(&mut defs), None, &mut ints)
                        .map_err(parquet)?;
                }
                ColumnReader::ByteArrayColumnReader(mut r) => {
                    r.read_records(n, Some(&mut defs), None, &mut strings)
                        .map_err(parquet)?;
                }
                _ => {
                    return Err(Error::BadHistory {
                        path: path.to_path_buf(),
                        reason: format!(
                            "column {} has an unexpected type",
                            schema.column(c).name()
                        ),
                    });
                }
            }
            let present = |i: usize| defs.is_empty() || defs[i] > 0;
            let mut next = 0;
            match k {
                0 => rows.object_id.extend_from_slice(&ints),
                1 => rows.timestamp.extend_from_slice(&ints),
                2..=5 => {
                    let col = match k {
                        2 => &mut rows.value,
                        3 => &mut rows.source_type,
                        4 => &mut rows.source_id,
                        _ => &mut rows.source_label,
                    };
                    for i in 0..n {
                        if present(i) {
                            col.push(Some(strings[next].data()));
                            next += 1;
                        } else {
                            col.push(None);
                        }
                    }
                }
                _ => {
                    for i in 0..n {
                        if present(i) {
                            rows.updated_by.push(Some(ints[next]));
                            next += 1;
                        } else {
                            rows.updated_by.push(None);
                        }
                    }
                }
            }
        }
        rows.property.resize(base + n, 0);
    }
    Ok(rows)
}
