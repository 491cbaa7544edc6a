//! Sink: one property's sorted rows → Parquet files, and the dataset's path rules.
//!
//! Takes a property's rows and their output order (from [`crate::reduce`]) and writes them as
//! `part-<run>-r<reducer>.parquet` (then `-1`, `-2`, … once a file passes the target size)
//! in the output schema (ARCHITECTURE.md): ZSTD, page statistics and `sorting_columns` in the footer, so a
//! reader can find one object's history by min/max pruning. Files are cut only between row
//! groups, so where they are cut depends on the data alone.
//!
//! Property names become Hive partition folders, `property_name=<escaped>`, escaped the way
//! Hive and Spark do: no name can leave its folder, and Hive readers decode the same value.
//!
//! Memory: one open writer (this reducer's) at a time, and one gather chunk of values.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

use crate::batch::Columns;
use crate::error::{Error, Result};

/// The output schema. The property is in the path, Hive-style.
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
            // ~256k rows: a few MiB per row group compressed, and bounded buffers when merging.
            row_group_rows: 256 * 1024,
            zstd_level: 1,
        }
    }
}

/// One file written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// What writing one property produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PropertyOutput {
    pub files: Vec<WrittenFile>,
    pub rows: u64,
    pub bytes: u64,
    /// Distinct objects written.
    pub objects: u64,
    /// What the job that wrote them took in (set by the job): rows the run routed to the
    /// property, and rows read back from its stored partition (a merge).
    pub input_rows: u64,
    pub stored_rows: u64,
}

pub(crate) fn schema() -> Arc<Type> {
    Arc::new(parquet::schema::parser::parse_message_type(SCHEMA).expect("the output schema parses"))
}

/// How a file's schema `actual` differs from the output schema (same columns, in the same
/// order, with the same types and nullability), or `None` if it does not.
pub(crate) fn schema_mismatch(actual: &Type) -> Option<String> {
    let expected = schema();
    let same = actual.get_fields().len() == expected.get_fields().len()
        && actual
            .get_fields()
            .iter()
            .zip(expected.get_fields())
            .all(|(a, b)| {
                a.name() == b.name()
                    && a.is_primitive()
                    && a.get_physical_type() == b.get_physical_type()
                    && a.get_basic_info().logical_type_ref()
                        == b.get_basic_info().logical_type_ref()
                    && a.get_basic_info().repetition() == b.get_basic_info().repetition()
            });
    (!same).then(|| {
        format!(
            "columns {} differ from the output schema's {}",
            field_list(actual),
            field_list(&expected)
        )
    })
}

fn field_list(t: &Type) -> String {
    let names: Vec<String> = t
        .get_fields()
        .iter()
        .map(|f| {
            let physical = if f.is_primitive() {
                f.get_physical_type().to_string()
            } else {
                "GROUP".to_string()
            };
            let logical = f
                .get_basic_info()
                .logical_type_ref()
                .map(|l| format!(" {l:?}"))
                .unwrap_or_default();
            format!("{} {physical}{logical}", f.name())
        })
        .collect();
    format!("[{}]", names.join(", "))
}

fn writer_properties(options: &SinkOptions) -> Arc<WriterProperties> {
    let sorted = |column_idx: i32, nulls_first: bool| SortingColumn {
        column_idx,
        descending: false,
        nulls_first,
    };
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(options.zstd_level).expect("a valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![
            sorted(0, false),
            sorted(1, false),
            sorted(2, true),
        ]))
        .set_max_row_group_row_count(Some(options.row_group_rows));
    // Sorted ids repeat and timestamps climb within an object: their deltas pack into a few
    // bits, where a dictionary would fill and fall back to plain 64-bit values.
    for column in ["object_id", "timestamp"] {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(column), false)
            .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
    }
    Arc::new(builder.build())
}

/// Rows gathered per `write_batch` call: bounds the gather buffers whatever the row group size
/// (a column chunk may be written in several batches).
const GATHER_ROWS: usize = 64 * 1024;

/// String bytes gathered per `write_batch` call at most (long values make shorter chunks).
const GATHER_BYTES: usize = 64 << 20;

/// `order` in chunks of [`GATHER_ROWS`] rows, or fewer where `column`'s values are long on
/// average, so that one chunk's copy stays near [`GATHER_BYTES`] (values are at most 1 MiB,
/// so uneven sizes cannot take it far past).
fn gather_chunks<'o>(
    order: &'o [u32],
    column: &crate::batch::StrColumn,
) -> std::slice::Chunks<'o, u32> {
    let per_row = column.data_len() / column.len().max(1) + 1;
    order.chunks((GATHER_BYTES / per_row).clamp(1, GATHER_ROWS))
}

/// Writes one property's rows, already in output order, into `<stem>.parquet`,
/// `<stem>-1.parquet`, … under `dir`, a row group at a time: a new file starts once the open
/// one has passed the target size. One open file at a time; memory is one gather chunk.
pub struct PropertyWriter {
    dir: PathBuf,
    stem: String,
    options: SinkOptions,
    schema: Arc<Type>,
    properties: Arc<WriterProperties>,
    open: Option<(SerializedFileWriter<File>, PathBuf, u64)>,
    /// Where closed files go to be synced; `None`: synced here, before `close` returns.
    syncer: Option<Syncer>,
    output: PropertyOutput,
    last_object: Option<i64>,
    ints: Vec<i64>,
    defs: Vec<i16>,
    strings: Vec<ByteArray>,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for PropertyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropertyWriter")
            .field("dir", &self.dir)
            .field("stem", &self.stem)
            .finish_non_exhaustive()
    }
}

impl PropertyWriter {
    pub fn new(dir: &Path, stem: &str, options: &SinkOptions) -> Self {
        PropertyWriter {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            options: options.clone(),
            schema: schema(),
            properties: writer_properties(options),
            open: None,
            syncer: None,
            output: PropertyOutput::default(),
            last_object: None,
            ints: Vec::new(),
            defs: Vec::new(),
            strings: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// Hands each closed file to `syncer` instead of syncing it before going on.
    pub fn with_syncer(mut self, syncer: Syncer) -> Self {
        self.syncer = Some(syncer);
        self
    }

    /// Writes with `properties` instead of skewer's (tests: files as other writers make them).
    #[cfg(test)]
    pub(crate) fn with_properties(mut self, properties: WriterProperties) -> Self {
        self.properties = Arc::new(properties);
        self
    }

    /// Rows per row group this writer is configured for.
    pub fn row_group_rows(&self) -> usize {
        self.options.row_group_rows
    }

    /// Writes `rows` in `order` (sorted, duplicates removed) as row groups.
    pub fn write(&mut self, rows: &Columns, order: &[u32]) -> Result<()> {
        for group in order.chunks(self.options.row_group_rows.max(1)) {
            self.write_group(rows, group)?;
        }
        Ok(())
    }

    /// Writes one row group of `rows` in `order`; starts a new file if none is open.
    pub fn write_group(&mut self, rows: &Columns, order: &[u32]) -> Result<()> {
        if order.is_empty() {
            return Ok(());
        }
        for &i in order {
            let o = rows.object_id[i as usize];
            if self.last_object != Some(o) {
                self.output.objects += 1;
                self.last_object = Some(o);
            }
        }
        if self.open.is_none() {
            self.open_file()?;
        }
        let (mut writer, path, written) = self.open.take().expect("opened above");
        let result = self.write_row_group(&mut writer, rows, order);
        if let Err(source) = result {
            return Err(Error::Parquet { path, source });
        }
        let written = written + order.len() as u64;
        if writer.bytes_written() as u64 >= self.options.target_file_bytes {
            self.close(writer, path, written)?;
        } else {
            self.open = Some((writer, path, written));
        }
        Ok(())
    }

    fn open_file(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let n = self.output.files.len();
        let path = self.dir.join(if n == 0 {
            format!("{}.parquet", self.stem)
        } else {
            format!("{}-{n}.parquet", self.stem)
        });
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let writer = SerializedFileWriter::new(file, self.schema.clone(), self.properties.clone())
            .map_err(|source| Error::Parquet {
                path: path.clone(),
                source,
            })?;
        self.open = Some((writer, path, 0));
        Ok(())
    }

    fn write_row_group(
        &mut self,
        writer: &mut SerializedFileWriter<File>,
        rows: &Columns,
        order: &[u32],
    ) -> parquet::errors::Result<()> {
        let mut rg = writer.next_row_group()?;
        for source in [&rows.object_id, &rows.timestamp] {
            let mut col = rg.next_column()?.expect("schema column");
            for chunk in order.chunks(GATHER_ROWS) {
                self.ints.clear();
                self.ints.extend(chunk.iter().map(|&i| source[i as usize]));
                col.typed::<Int64Type>()
                    .write_batch(&self.ints, None, None)?;
            }
            col.close()?;
        }
        for source in [
            &rows.value,
            &rows.source_type,
            &rows.source_id,
            &rows.source_label,
        ] {
            let mut col = rg.next_column()?.expect("schema column");
            for chunk in gather_chunks(order, source) {
                // One copy of the chunk's bytes into a shared buffer, then slices of it: no
                // allocation per value.
                self.bytes.clear();
                self.defs.clear();
                let mut ends = Vec::with_capacity(chunk.len());
                for &i in chunk {
                    match source.get(i as usize) {
                        Some(v) => {
                            self.bytes.extend_from_slice(v);
                            ends.push(self.bytes.len());
                            self.defs.push(1);
                        }
                        None => self.defs.push(0),
                    }
                }
                let shared = Bytes::from(std::mem::take(&mut self.bytes));
                self.strings.clear();
                let mut start = 0;
                for end in ends {
                    self.strings.push(ByteArray::from(shared.slice(start..end)));
                    start = end;
                }
                col.typed::<ByteArrayType>()
                    .write_batch(&self.strings, Some(&self.defs), None)?;
                self.strings.clear();
                // Take the buffer back for the next chunk when no slice still holds it.
                self.bytes = Vec::from(shared);
            }
            col.close()?;
        }
        let mut col = rg.next_column()?.expect("schema column");
        for chunk in order.chunks(GATHER_ROWS) {
            self.ints.clear();
            self.defs.clear();
            for &i in chunk {
                let i = i as usize;
                if let Some(user) = rows.updated_by.get(i) {
                    self.ints.push(user);
                    self.defs.push(1);
                } else {
                    self.defs.push(0);
                }
            }
            col.typed::<Int64Type>()
                .write_batch(&self.ints, Some(&self.defs), None)?;
        }
        col.close()?;
        rg.close()?;
        Ok(())
    }

    fn close(
        &mut self,
        writer: SerializedFileWriter<File>,
        path: PathBuf,
        rows: u64,
    ) -> Result<()> {
        let file = writer.into_inner().map_err(|source| Error::Parquet {
            path: path.clone(),
            source,
        })?;
        let bytes = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        // On stable storage before any manifest names it (the publish's promise).
        match &self.syncer {
            Some(syncer) => syncer.sync(file, path.clone())?,
            None => file.sync_all().map_err(|e| Error::io(&path, e))?,
        }
        self.output.rows += rows;
        self.output.bytes += bytes;
        self.output.files.push(WrittenFile { path, rows, bytes });
        Ok(())
    }

    /// Closes the open file; what was written.
    pub fn finish(mut self) -> Result<PropertyOutput> {
        if let Some((writer, path, rows)) = self.open.take() {
            self.close(writer, path, rows)?;
        }
        Ok(self.output)
    }

    /// As [`PropertyWriter::finish`], but writes one file without rows if there was none:
    /// a merge that deleted every row of a partition still replaces it, and the file (the
    /// schema, no row group) marks the partition as this run's for publish and recovery.
    pub fn finish_with_a_file(mut self) -> Result<PropertyOutput> {
        if self.open.is_none() && self.output.files.is_empty() {
            self.open_file()?;
        }
        self.finish()
    }
}

/// Syncs written files on threads of its own, so that the thread that wrote a file goes on
/// while the disk catches up: a run's output reaches stable storage alongside the work, not
/// after it. Every file handed over is synced once the threads have been joined.
#[derive(Clone, Debug)]
pub struct Syncer {
    files: crossbeam_channel::Sender<(File, PathBuf)>,
}

impl Syncer {
    /// Files waiting at most (each holds an open descriptor).
    const QUEUE: usize = 64;

    /// Starts `threads` syncing threads in `scope`. They end once every clone of the
    /// returned `Syncer` is dropped; each returns the first file it could not sync.
    pub fn start<'s, 'e>(
        scope: &'s std::thread::Scope<'s, 'e>,
        threads: usize,
    ) -> (Syncer, Vec<std::thread::ScopedJoinHandle<'s, Result<()>>>) {
        let (tx, rx) = crossbeam_channel::bounded::<(File, PathBuf)>(Self::QUEUE);
        let handles = (0..threads.max(1))
            .map(|_| {
                let rx = rx.clone();
                scope.spawn(move || {
                    let mut result = Ok(());
                    for (file, path) in rx {
                        if result.is_ok() {
                            result = file.sync_all().map_err(|e| Error::io(&path, e));
                        }
                    }
                    result
                })
            })
            .collect();
        (Syncer { files: tx }, handles)
    }

    /// Queues `file` to be synced (waits while the queue is full).
    fn sync(&self, file: File, path: PathBuf) -> Result<()> {
        // If the syncing threads are gone, sync here.
        if let Err(crossbeam_channel::SendError((file, path))) = self.files.send((file, path)) {
            file.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }
}

/// Writes `rows` in `order` under `dir` as `<stem>.parquet`, `<stem>-1.parquet`, ….
pub fn write_property(
    dir: &Path,
    stem: &str,
    rows: &Columns,
    order: &[u32],
    options: &SinkOptions,
) -> Result<PropertyOutput> {
    let mut writer = PropertyWriter::new(dir, stem, options);
    writer.write(rows, order)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Row;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    #[test]
    fn files_read_back_in_order_with_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Columns::default();
        for i in 0..10i64 {
            rows.push(&Row {
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
        let out = write_property(dir.path(), "part-r0", &rows, &order, &options).unwrap();
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
