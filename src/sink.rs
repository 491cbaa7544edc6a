//! Sink: one property's sorted rows → Parquet files, and the dataset's path rules.
//!
//! Takes a property's rows and their output order (from [`crate::reduce`]) and writes them as
//! `part-<run>-r<reducer>.parquet` (then `-1`, `-2`, … once a file passes the target size)
//! in the DESIGN §4 schema: ZSTD, page statistics and `sorting_columns` in the footer, so a
//! reader can find one object's history by min/max pruning. Files are cut only between row
//! groups, so where they are cut depends on the data alone.
//!
//! Property names become Hive partition folders, `property_name=<escaped>`, escaped the way
//! Hive and Spark do: no name can leave its folder, and Hive readers decode the same value.
//!
//! Memory: one open writer (this reducer's) at a time; one row group of gathered columns.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::batch::{Rows, StrColumn};
use crate::error::{Error, Result};

/// The output schema (DESIGN §4). The property is in the path, Hive-style.
pub const SCHEMA: &str = "
message version {
    required int64 object_id;
    required int64 timestamp (TIMESTAMP(MILLIS,true));
    optional binary value (STRING);
    optional binary source_type (STRING);
    optional binary source_id (STRING);
    optional binary source_label (STRING);
    optional int64 updated_by_user_id;
}";

/// The partition column holding the property name.
pub const PROPERTY_COLUMN: &str = "property_name";
/// What Hive calls a partition whose value is null or empty.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// How files are written.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Start a new file once one passes this size.
    pub target_file_bytes: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            target_file_bytes: planner::DEFAULT_TARGET_FILE_BYTES,
            row_group_rows: 1 << 20,
            zstd_level: 3,
        }
    }
}

/// One file written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// What writing one property produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyOutput {
    pub files: Vec<WrittenFile>,
    pub rows: u64,
    pub bytes: u64,
    /// Distinct objects written.
    pub objects: u64,
}

fn schema() -> Arc<Type> {
    Arc::new(parquet::schema::parser::parse_message_type(SCHEMA).expect("the output schema parses"))
}

fn writer_properties(options: &SinkOptions) -> Arc<WriterProperties> {
    let sorted = |column_idx: i32, nulls_first: bool| SortingColumn {
        column_idx,
        descending: false,
        nulls_first,
    };
    Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(options.zstd_level).expect("a valid zstd level"),
            ))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_sorting_columns(Some(vec![
                sorted(0, false),
                sorted(1, false),
                sorted(2, true),
            ]))
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .build(),
    )
}

/// A string column frozen into one shared buffer, so values are slices, not copies.
struct Frozen {
    ends: Vec<u32>,
    data: Bytes,
    valid: Vec<bool>,
}

impl Frozen {
    fn new(col: StrColumn) -> Self {
        let (ends, data, valid) = col.into_parts();
        Frozen {
            ends,
            data: Bytes::from(data),
            valid,
        }
    }

    fn get(&self, i: usize) -> Option<ByteArray> {
        if !self.valid[i] {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(ByteArray::from(
            self.data.slice(start..self.ends[i] as usize),
        ))
    }
}

/// Writes `rows` in `order` under `dir` as `<stem>.parquet`, `<stem>-1.parquet`, ….
pub fn write_property(
    dir: &Path,
    stem: &str,
    rows: Rows,
    order: &[u32],
    options: &SinkOptions,
) -> Result<PropertyOutput> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut output = PropertyOutput::default();
    let mut last_object = None;
    for &i in order {
        let o = rows.object_id[i as usize];
        if last_object != Some(o) {
            output.objects += 1;
            last_object = Some(o);
        }
    }

    let columns = Columns::new(rows);
    let mut start = 0;
    while start < order.len() {
        let n = output.files.len();
        let path = dir.join(if n == 0 {
            format!("{stem}.parquet")
        } else {
            format!("{stem}-{n}.parquet")
        });
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let (written, next) =
            write_file(file, &columns, order, start, options).map_err(|source| Error::Parquet {
                path: path.clone(),
                source,
            })?;
        let bytes = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        output.rows += written;
        output.bytes += bytes;
        output.files.push(WrittenFile {
            path,
            rows: written,
            bytes,
        });
        start = next;
    }
    Ok(output)
}

/// A property's columns, ready to be gathered in output order.
struct Columns {
    object_id: Vec<i64>,
    timestamp: Vec<i64>,
    strings: [Frozen; 4],
    updated_by: Vec<i64>,
    updated_by_valid: Vec<bool>,
}

impl Columns {
    fn new(rows: Rows) -> Self {
        Columns {
            object_id: rows.object_id,
            timestamp: rows.timestamp,
            strings: [
                Frozen::new(rows.value),
                Frozen::new(rows.source_type),
                Frozen::new(rows.source_id),
                Frozen::new(rows.source_label),
            ],
            updated_by: rows.updated_by,
            updated_by_valid: rows.updated_by_valid,
        }
    }
}

/// Writes row groups from `order[start..]` into `sink` until the file passes the target
/// size; returns the rows written and where the next file starts.
fn write_file<W: std::io::Write + Send>(
    sink: W,
    columns: &Columns,
    order: &[u32],
    start: usize,
    options: &SinkOptions,
) -> parquet::errors::Result<(u64, usize)> {
    let mut writer = SerializedFileWriter::new(sink, schema(), writer_properties(options))?;
    let mut ints: Vec<i64> = Vec::new();
    let mut strings: Vec<ByteArray> = Vec::new();
    let mut defs: Vec<i16> = Vec::new();
    let mut at = start;
    let mut written = 0u64;
    while at < order.len() {
        let end = (at + options.row_group_rows).min(order.len());
        let group = &order[at..end];
        let mut rg = writer.next_row_group()?;

        for source in [&columns.object_id, &columns.timestamp] {
            ints.clear();
            ints.extend(group.iter().map(|&i| source[i as usize]));
            let mut col = rg.next_column()?.expect("schema column");
            col.typed::<Int64Type>().write_batch(&ints, None, None)?;
            col.close()?;
        }
        for frozen in &columns.strings {
            strings.clear();
            defs.clear();
            for &i in group {
                match frozen.get(i as usize) {
                    Some(v) => {
                        strings.push(v);
                        defs.push(1);
                    }
                    None => defs.push(0),
                }
            }
            let mut col = rg.next_column()?.expect("schema column");
            col.typed::<ByteArrayType>()
                .write_batch(&strings, Some(&defs), None)?;
            col.close()?;
        }
        ints.clear();
        defs.clear();
        for &i in group {
            let i = i as usize;
            if columns.updated_by_valid[i] {
                ints.push(columns.updated_by[i]);
                defs.push(1);
            } else {
                defs.push(0);
            }
        }
        let mut col = rg.next_column()?.expect("schema column");
        col.typed::<Int64Type>()
            .write_batch(&ints, Some(&defs), None)?;
        col.close()?;
        rg.close()?;

        written += group.len() as u64;
        at = end;
        if writer.bytes_written() as u64 >= options.target_file_bytes {
            break;
        }
    }
    writer.close()?;
    Ok((written, at))
}

/// Escapes a partition value as Hive and Spark do: `%XX` for control characters and
/// `"#%'*/:=?\{[]^` and DEL; the empty string is Hive's default partition.
pub fn escape_partition_value(value: &str) -> String {
    if value.is_empty() {
        return HIVE_DEFAULT_PARTITION.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let escape = matches!(
            c,
            '\u{0}'
                ..='\u{1f}'
                    | '"'
                    | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '\u{7f}'
                    | '{'
                    | '['
                    | ']'
                    | '^'
        );
        if escape {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`escape_partition_value`] (and of any reader's `%XX` escaping).
pub fn unescape_partition_value(escaped: &str) -> Option<String> {
    if escaped == HIVE_DEFAULT_PARTITION {
        return Some(String::new());
    }
    let b = escaped.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The folder of one property: `property_name=<escaped>`.
pub fn property_dir(property: &str) -> String {
    format!("{PROPERTY_COLUMN}={}", escape_partition_value(property))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Row;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    #[test]
    fn escaping_round_trips_and_never_leaves_the_folder() {
        for name in [
            "email",
            "a/b",
            "x=y",
            "..",
            ".",
            "50%",
            "ünïcødé 🚀",
            "tab\there",
            "a:b*c?",
            "",
        ] {
            let escaped = escape_partition_value(name);
            assert!(
                !escaped.contains('/') && !escaped.contains('\0'),
                "{escaped}"
            );
            assert_ne!(property_dir(name), "..");
            assert_eq!(unescape_partition_value(&escaped).as_deref(), Some(name));
        }
        assert_eq!(escape_partition_value("a/b=c%"), "a%2Fb%3Dc%25");
        assert_eq!(escape_partition_value(""), HIVE_DEFAULT_PARTITION);
        assert_eq!(unescape_partition_value("%zz"), None);
    }

    #[test]
    fn files_read_back_in_order_with_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Rows::default();
        for i in 0..10i64 {
            rows.push(&Row {
                property: 0,
                object_id: 3_000_000_000 + (9 - i),
                timestamp: i,
                value: if i % 3 == 0 { None } else { Some(b"v") },
                source_type: Some(b"CRM_UI"),
                source_id: None,
                source_label: Some(b""),
                updated_by_user_id: (i % 2 == 0).then_some(i),
            });
        }
        let order: Vec<u32> = (0..10).rev().collect();
        let options = SinkOptions {
            row_group_rows: 4,
            target_file_bytes: 1, // every row group past the target: one row group per file
            ..SinkOptions::default()
        };
        let out = write_property(dir.path(), "part-r0", rows, &order, &options).unwrap();
        assert_eq!(out.rows, 10);
        assert_eq!(out.objects, 10);
        let names: Vec<_> = out
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["part-r0.parquet", "part-r0-1.parquet", "part-r0-2.parquet"]
        );

        let mut objects = Vec::new();
        for f in &out.files {
            let reader = SerializedFileReader::new(File::open(&f.path).unwrap()).unwrap();
            let meta = reader.metadata();
            assert_eq!(
                meta.file_metadata().schema_descr().root_schema(),
                schema().as_ref()
            );
            let rg = meta.row_group(0);
            assert_eq!(rg.sorting_columns().unwrap().len(), 3);
            assert!(rg.column(0).statistics().is_some());
            for row in reader.get_row_iter(None).unwrap() {
                let row = row.unwrap();
                let fields: Vec<_> = row.get_column_iter().map(|(_, f)| f.clone()).collect();
                if let Field::Long(o) = fields[0] {
                    objects.push(o);
                }
                assert!(matches!(fields[1], Field::TimestampMillis(_)));
            }
        }
        let mut sorted = objects.clone();
        sorted.sort();
        assert_eq!(objects, sorted);
        assert_eq!(objects.len(), 10);
    }
}
