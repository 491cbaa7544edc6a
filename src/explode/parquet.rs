//! Nested Parquet → version rows, by walking each leaf's definition and repetition levels.
//!
//! ARCHITECTURE.md (why the hot paths look as they do): Arrow's nested assembly rebuilds validity bitmaps and list offsets for every
//! column only for the explode to throw that structure away; reading each version leaf's
//! levels and values and walking them directly is ~2.3× faster in a sixth of the memory.
//! Only the version leaves are read (never the current `value`), page by page
//! ([`LeafChunk`]: levels from their runs, text as spans into the pages), or by the parquet
//! crate's column reader for encodings the page reader leaves to it.
//!
//! A [`Layout`] is found from the schema alone, generically (names and nesting vary between
//! writers: `list`/`element`, `array`, `bag`, two-level legacy lists):
//!
//! ```text
//!  STRUCT form   properties.<p>.…versions….<field>   one set of leaves per property p
//!  MAP form      properties.key_value.key            property names per map entry
//!                properties.key_value.value.…versions….<field>   shared by all properties
//!  object id     a top-level vid / canonical-vid / dealId / companyId / id / objectId,
//!                else properties.hs_object_id.value
//! ```
//!
//! Walking levels: a leaf holds one entry per slot. Repetition 0 starts a new object; in the
//! MAP form 1 starts a new map entry. A version exists where the definition level reaches
//! the version struct (`element_def`); its field is non-null where it reaches the leaf's
//! maximum. Every leaf of one property (or of the map) has the same slot structure, so their
//! entries align one for one.
//!
//! Rejects: an object whose id is missing or not a number is rejected whole (ids are read
//! first). A version without a timestamp of its own takes its property's
//! (`properties.<p>.timestamp`, STRUCT form: HubSpot's calculated properties); one without
//! either is rejected alone: versions are read property by property, so the object's other
//! properties may already be on their way.

use std::io::{BufReader, Read};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, FileReader, Length, RowGroupReader};
use parquet::file::serialized_reader::{SerializedFileReader, SerializedRowGroupReader};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use super::{MAX_VALUE_BYTES, PropertyIds, timestamp};
use crate::batch::Rows;
use crate::pages::{LeafChunk, LeafColumn};
use crate::source::{Handle, PreadFile, Reader};

/// What the Parquet explode reports besides rows.
pub trait ParquetSink {
    /// Rows of possibly many objects (each row routed by its own `object_id`).
    fn rows(&mut self, rows: &Rows);
    /// `n` records (objects) read whole (rejected ones are reported through `reject` instead).
    fn records(&mut self, n: u64);
    /// A whole record (object) rejected: `index` is its row in the row group.
    fn reject(&mut self, index: u64, reason: &str);
    /// `count` versions rejected (of record `index`, or of the whole row group).
    fn reject_versions(&mut self, index: u64, count: u64, reason: &str);
    /// A version of `property` of `object` was rejected alone: the rows given of that
    /// history are not all of it (an upsert must not replace the stored one with them).
    fn partial_history(&mut self, _property: u32, _object: i64) {}
}

/// The version fields skewer keeps, by the names any dialect gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Value,
    Timestamp,
    SourceType,
    SourceId,
    SourceLabel,
    UpdatedBy,
}

fn field(name: &str) -> Option<Field> {
    Some(match name {
        "value" => Field::Value,
        "timestamp" => Field::Timestamp,
        "source-type" | "source" | "sourceType" | "changeSource" => Field::SourceType,
        "source-id" | "sourceId" => Field::SourceId,
        "source-label" | "sourceLabel" => Field::SourceLabel,
        "updated-by-user-id" | "updatedByUserId" => Field::UpdatedBy,
        _ => return None,
    })
}

/// One leaf column to read.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub column: usize,
    max_def: i16,
    /// The definition level at which the version struct holding this leaf exists.
    element_def: i16,
    physical: Physical,
    /// Divisor turning the stored integer into milliseconds (timestamps).
    per_ms: i64,
}

impl Leaf {
    fn new(index: usize, d: &ColumnDescPtr) -> Self {
        let optional = d.self_type().get_basic_info().repetition() != Repetition::REQUIRED;
        let per_ms = match d.logical_type_ref() {
            Some(LogicalType::Timestamp(t)) => match t.unit {
                TimeUnit::MILLIS => 1,
                TimeUnit::MICROS => 1_000,
                TimeUnit::NANOS => 1_000_000,
            },
            // Older writers mark the unit only with a converted type.
            _ if d.converted_type() == ConvertedType::TIMESTAMP_MICROS => 1_000,
            _ => 1,
        };
        Leaf {
            column: index,
            max_def: d.max_def_level(),
            element_def: d.max_def_level() - i16::from(optional),
            physical: d.physical_type(),
            per_ms,
        }
    }
}

/// The leaves of one set of versions, by field (at most one leaf per field).
#[derive(Clone, Debug, Default)]
pub struct VersionLeaves {
    fields: Vec<(Field, Leaf)>,
    /// The property's own timestamp (`properties.<p>.timestamp`, STRUCT form), which a
    /// version without one takes (HubSpot's calculated properties).
    fallback: Option<Leaf>,
}

impl VersionLeaves {
    fn add(&mut self, f: Field, leaf: Leaf) {
        if !self.fields.iter().any(|(g, _)| *g == f) {
            self.fields.push((f, leaf));
        }
    }

    fn timestamp(&self) -> Option<&Leaf> {
        self.fields
            .iter()
            .find(|(f, _)| *f == Field::Timestamp)
            .map(|(_, l)| l)
    }
}

/// How properties are laid out in the file.
#[derive(Clone, Debug)]
pub enum Form {
    /// One group of leaves per property, named by the group.
    Struct(Vec<(String, VersionLeaves)>),
    /// One map: names from `key`, versions from shared leaves.
    Map {
        key: Leaf,
        /// Definition level at which a map entry exists.
        entry_def: i16,
        versions: VersionLeaves,
    },
}

/// What a file's schema says about where objects and versions are.
#[derive(Clone, Debug)]
pub struct Layout {
    pub id: Option<Leaf>,
    pub form: Form,
}

impl Layout {
    /// The sets of columns a row group's walk decodes in lockstep, in walk order.
    fn read_units(&self) -> Vec<Vec<usize>> {
        let leaves = |v: &VersionLeaves| {
            let fields = v.fields.iter().map(|(_, l)| l.column);
            fields.chain(v.fallback.iter().map(|l| l.column)).collect()
        };
        let mut units: Vec<Vec<usize>> = self.id.iter().map(|l| vec![l.column]).collect();
        match &self.form {
            Form::Struct(properties) => units.extend(properties.iter().map(|(_, v)| leaves(v))),
            Form::Map { key, versions, .. } => {
                let mut unit: Vec<usize> = leaves(versions);
                unit.push(key.column);
                units.push(unit);
            }
        }
        units
    }
}

const ID_COLUMNS: [&str; 6] = [
    "vid",
    "canonical-vid",
    "dealId",
    "companyId",
    "id",
    "objectId",
];

/// The version leaves of STRUCT property `name`, added (in schema order) when first met.
fn leaves_of<'a>(
    structs: &'a mut Vec<(String, VersionLeaves)>,
    name: &str,
) -> &'a mut VersionLeaves {
    let at = match structs.iter().position(|(n, _)| n == name) {
        Some(at) => at,
        None => {
            structs.push((name.to_string(), VersionLeaves::default()));
            structs.len() - 1
        }
    };
    &mut structs[at].1
}

/// Finds the layout of a nested HubSpot dump, or says why the schema is not one.
pub fn layout(schema: &SchemaDescriptor) -> Result<Layout, String> {
    let mut ids: Vec<(usize, Leaf)> = Vec::new();
    let mut structs: Vec<(String, VersionLeaves)> = Vec::new();
    let mut map_key: Option<Leaf> = None;
    let mut map_versions = VersionLeaves::default();
    let mut map_entry_def = 0;
    let mut container = None;
    for (i, d) in schema.columns().iter().enumerate() {
        let parts = d.path().parts();
        if parts.len() == 1 && d.max_rep_level() == 0 {
            if let Some(rank) = ID_COLUMNS.iter().position(|c| *c == parts[0]) {
                ids.push((rank, Leaf::new(i, d)));
            }
            continue;
        }
        let top = parts[0].as_str();
        if top != "properties" && top != "propertiesWithHistory" || parts.len() < 3 {
            continue;
        }
        container.get_or_insert(top.to_string());
        let last = parts[parts.len() - 1].as_str();
        match d.max_rep_level() {
            0 if parts.len() == 3 && parts[1] == "hs_object_id" && last == "value" => {
                ids.push((ID_COLUMNS.len(), Leaf::new(i, d)));
            }
            0 if parts.len() == 3 && last == "timestamp" => {
                leaves_of(&mut structs, &parts[1]).fallback = Some(Leaf::new(i, d));
            }
            1 if parts.len() == 3 && last == "key" => {
                map_entry_def = d.max_def_level();
                map_key = Some(Leaf::new(i, d));
            }
            1 => {
                if let Some(f) = field(last) {
                    leaves_of(&mut structs, &parts[1]).add(f, Leaf::new(i, d));
                }
            }
            2 => {
                if let Some(f) = field(last) {
                    map_versions.add(f, Leaf::new(i, d));
                }
            }
            _ => {}
        }
    }
    // A property with a timestamp but no versions has nothing to explode.
    structs.retain(|(_, v)| !v.fields.is_empty());
    ids.sort_by_key(|(rank, _)| *rank);
    let id = ids.into_iter().next().map(|(_, l)| l);
    let form = match map_key {
        Some(key) => Form::Map {
            key,
            entry_def: map_entry_def,
            versions: map_versions,
        },
        None if !structs.is_empty() => Form::Struct(structs),
        None => {
            return Err(match container {
                Some(c) => format!("no version lists under {c:?} (expected <property>.versions[] with value and timestamp)"),
                None => "not a nested HubSpot dump: no top-level \"properties\" (or \"propertiesWithHistory\") group".into(),
            });
        }
    };
    Ok(Layout { id, form })
}

/// A leaf column of one row group: levels and values (read by [`LeafReader`]).
type Column = LeafColumn;

/// How a leaf's chunk is read: page by page into spans ([`LeafChunk`]) where its types and
/// encodings allow, by the parquet crate's generic reader otherwise.
enum LeafReader {
    // Both boxed: a few hundred bytes each, opened once per leaf and row group.
    Pages(Box<LeafChunk>),
    Generic(Box<ColumnReader>),
}

impl LeafReader {
    fn open(group: &dyn RowGroupReader, leaf: &Leaf) -> Result<LeafReader, ParquetError> {
        let chunk = group.metadata().column(leaf.column);
        if LeafChunk::handles(chunk) {
            let pages = group.get_column_page_reader(leaf.column)?;
            if let Some(reader) = LeafChunk::new(pages, chunk.column_descr()) {
                return Ok(LeafReader::Pages(Box::new(reader)));
            }
        }
        Ok(LeafReader::Generic(Box::new(
            group.get_column_reader(leaf.column)?,
        )))
    }

    /// Replaces `out` with the next `records` records of `leaf`.
    fn fill(
        &mut self,
        leaf: &Leaf,
        records: usize,
        out: &mut Column,
        bytes: &mut Vec<ByteArray>,
    ) -> Result<(), ParquetError> {
        let read = match self {
            LeafReader::Pages(chunk) => chunk
                .fill(records, out)
                .map_err(|e| ParquetError::General(format!("column {}: {e}", leaf.column)))?,
            LeafReader::Generic(reader) => generic_fill(reader, leaf, records, out, bytes)?,
        };
        if read != records {
            return Err(ParquetError::General(format!(
                "column {} holds {read} records where {records} were expected",
                leaf.column
            )));
        }
        Ok(())
    }
}

/// Reads the next `records` records of `leaf` with the parquet crate's reader: how many.
fn generic_fill(
    reader: &mut ColumnReader,
    leaf: &Leaf,
    records: usize,
    out: &mut Column,
    bytes: &mut Vec<ByteArray>,
) -> Result<usize, ParquetError> {
    out.clear();
    bytes.clear();
    let (def, rep) = (Some(&mut out.def), Some(&mut out.rep));
    let read = match reader {
        ColumnReader::ByteArrayColumnReader(r) => r.read_records(records, def, rep, bytes)?,
        ColumnReader::Int64ColumnReader(r) => r.read_records(records, def, rep, &mut out.ints)?,
        ColumnReader::Int32ColumnReader(r) => r.read_records(records, def, rep, &mut out.ints32)?,
        ColumnReader::DoubleColumnReader(r) => {
            r.read_records(records, def, rep, &mut out.floats)?
        }
        ColumnReader::FloatColumnReader(r) => {
            r.read_records(records, def, rep, &mut out.floats32)?
        }
        ColumnReader::BoolColumnReader(r) => r.read_records(records, def, rep, &mut out.bools)?,
        _ => {
            return Err(ParquetError::General(format!(
                "column {} has type {}, which skewer does not read",
                leaf.column, leaf.physical
            )));
        }
    };
    out.push_texts(bytes.iter().map(|b| b.data()));
    // A required leaf writes no levels: every slot is defined.
    if leaf.max_def == 0 {
        out.def.resize(read.2, 0);
    }
    let records = if out.rep.is_empty() {
        out.rep.resize(read.2, 0);
        read.0
    } else {
        // The reader counts a record once the level after it starts the next one, and a v1
        // page does not say whether it ends a record: the last record of a chunk whose pages
        // cut records (pyarrow's small pages do) is read whole but not counted. Every record
        // read starts with a 0, and the reader never starts one past those asked for.
        out.rep.iter().filter(|&&r| r == 0).count()
    };
    // Values are stored for defined slots only; a file that disagrees is corrupt, and
    // checking once here keeps every later index in bounds (the page reader decodes a value
    // for each defined slot, with equal levels, or fails).
    let defined = out.def.iter().filter(|&&d| d == leaf.max_def).count();
    let values = out.values();
    if defined != values || out.def.len() != out.rep.len() {
        return Err(ParquetError::General(format!(
            "column {} has {values} values for {defined} defined slots",
            leaf.column
        )));
    }
    Ok(records)
}

impl Column {
    /// Whether string value `k` is valid UTF-8 (non-string columns always are).
    fn valid_text(&self, physical: Physical, k: usize) -> bool {
        match physical {
            Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY => {
                std::str::from_utf8(self.text(k)).is_ok()
            }
            _ => true,
        }
    }

    /// Bytes of string value `k` (non-string columns are short).
    fn text_len(&self, physical: Physical, k: usize) -> usize {
        match physical {
            Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY => self.text(k).len(),
            _ => 0,
        }
    }

    /// Appends value `k` to `out` as text (numbers and booleans as their text).
    fn push_text(&self, physical: Physical, k: usize, out: &mut crate::batch::StrColumn) {
        match physical {
            Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY => out.push(Some(self.text(k))),
            Physical::INT64 => out.push_fmt(format_args!("{}", self.ints[k])),
            Physical::INT32 => out.push_fmt(format_args!("{}", self.ints32[k])),
            Physical::DOUBLE => out.push_fmt(format_args!("{}", self.floats[k])),
            Physical::FLOAT => out.push_fmt(format_args!("{}", self.floats32[k])),
            _ => out.push(Some(if self.bools[k] { b"true" } else { b"false" })),
        }
    }

    /// Value `k` as an integer (ids, user ids, timestamps); `None` if it is not one.
    fn int(&self, leaf: &Leaf, k: usize) -> Option<i64> {
        match leaf.physical {
            Physical::INT64 => Some(self.ints[k].div_euclid(leaf.per_ms)),
            Physical::INT32 => Some(i64::from(self.ints32[k])),
            Physical::BYTE_ARRAY => std::str::from_utf8(self.text(k)).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Value `k` as a timestamp in ms: integers (by their unit), or text (digits, ISO-8601).
    fn timestamp(&self, leaf: &Leaf, k: usize) -> Option<i64> {
        match leaf.physical {
            Physical::BYTE_ARRAY => timestamp::parse(self.text(k)),
            Physical::DOUBLE => timestamp::from_f64(self.floats[k]),
            _ => self.int(leaf, k),
        }
    }
}

/// Buffers reused across row groups (one per mapper).
#[derive(Debug, Default)]
pub struct ParquetScratch {
    ids: Vec<Option<i64>>,
    /// Per object of the chunk being walked, its property's own timestamp, if any.
    fallback: Vec<Option<i64>>,
    columns: Vec<Column>,
    keys: Column,
    /// The generic reader's text values, before they are copied into a column.
    generic: Vec<ByteArray>,
    rows: Rows,
}

/// Rows handed to the sink at a time.
const FLUSH_ROWS: usize = 16 * 1024;
/// ... or once their strings pass this.
const FLUSH_BYTES: usize = 8 << 20;

/// Bytes of whole column chunks fetched per read. One large read instead of
/// thousands of small ones saves 15–20 %; a window rather than the whole row group keeps a
/// mapper's read buffer small whatever the row group size.
const READ_WINDOW: u64 = 8 << 20;
/// Windows are at least this many of the source's preferred reads: from S3 (8 MiB reads,
/// each a request costing milliseconds) 32 MiB, so the heavy properties' units come whole,
/// not page by page.
const WINDOW_READS: u64 = 4;

/// A row group's column chunks, served from a window of prefetched bytes that moves forward
/// as the columns are decoded (in file order); reads outside it go to the file.
///
/// The window holds whole *read units*: the column chunks decoded in lockstep (a property's
/// leaves; a map's keys and versions), so interleaved page reads never evict each other.
struct RowGroupChunk {
    file: PreadFile,
    /// The read units' byte ranges, sorted and disjoint; empty if the metadata is not sane
    /// (then every read goes to the file).
    units: Vec<(u64, u64)>,
    /// (offset, bytes) of the window.
    window: Mutex<(u64, Bytes)>,
    /// Bytes fetched per read at most (see [`WINDOW_READS`]).
    window_limit: u64,
}

impl Length for RowGroupChunk {
    fn len(&self) -> u64 {
        self.file.len()
    }
}

/// Either a slice of the prefetched bytes or a positioned reader on the file.
enum ChunkRead {
    Memory(bytes::buf::Reader<Bytes>),
    File(BufReader<Reader>),
}

impl Read for ChunkRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ChunkRead::Memory(r) => r.read(buf),
            ChunkRead::File(r) => r.read(buf),
        }
    }
}

impl RowGroupChunk {
    /// `units` lists the columns read together; columns in no unit are never read.
    fn new(
        file: PreadFile,
        group: &parquet::file::metadata::RowGroupMetaData,
        units: &[Vec<usize>],
    ) -> Self {
        let mut ranges = unit_ranges(group, units).unwrap_or_default();
        ranges.sort_unstable();
        let sane = ranges.windows(2).all(|w| w[0].1 <= w[1].0)
            && ranges.last().is_none_or(|c| c.1 <= file.len());
        if !sane {
            ranges.clear();
        }
        let window_limit = READ_WINDOW.max(WINDOW_READS * file.source().read_size() as u64);
        RowGroupChunk {
            file,
            units: ranges,
            window: Mutex::new((0, Bytes::new())),
            window_limit,
        }
    }

    /// The window bytes from `start` on, holding at least `length` of them, fetching the
    /// window that begins with `start`'s read unit if need be; `None` to read directly (a
    /// unit larger than a window: its pages are large reads already).
    fn window_from(&self, start: u64, length: u64) -> Result<Option<Bytes>, ParquetError> {
        let end = start.checked_add(length);
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let slice = |(base, data): &(u64, Bytes)| {
            let last = base + data.len() as u64;
            match end {
                Some(end) if start >= *base && end <= last => {
                    Some(data.slice((start - base) as usize..))
                }
                _ => None,
            }
        };
        if let Some(bytes) = slice(&window) {
            return Ok(Some(bytes));
        }
        let Some(i) = self.units.partition_point(|c| c.0 <= start).checked_sub(1) else {
            return Ok(None);
        };
        let (first, mut last) = self.units[i];
        let limit = self.window_limit;
        if end.is_none_or(|end| end > last) || last - first > limit {
            return Ok(None);
        }
        for &(_, e) in &self.units[i + 1..] {
            if e - first > limit {
                break;
            }
            last = e;
        }
        *window = (first, self.file.get_bytes(first, (last - first) as usize)?);
        Ok(slice(&window))
    }
}

impl ChunkReader for RowGroupChunk {
    type T = ChunkRead;

    fn get_read(&self, start: u64) -> Result<ChunkRead, ParquetError> {
        use bytes::Buf;
        // At least one byte: a window ending exactly at `start` must not serve an empty read.
        Ok(match self.window_from(start, 1)? {
            Some(bytes) => ChunkRead::Memory(bytes.reader()),
            None => ChunkRead::File(self.file.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        match self.window_from(start, length as u64)? {
            Some(bytes) => Ok(bytes.slice(..length)),
            None => self.file.get_bytes(start, length),
        }
    }
}

/// The byte range each read unit spans in a row group, if its metadata is sane.
fn unit_ranges(
    group: &parquet::file::metadata::RowGroupMetaData,
    units: &[Vec<usize>],
) -> Option<Vec<(u64, u64)>> {
    let chunk = |i: usize| {
        let c = group.columns().get(i)?;
        let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
        let start = u64::try_from(start).ok()?;
        let len = u64::try_from(c.compressed_size()).ok()?;
        Some((start, start.checked_add(len)?))
    };
    units
        .iter()
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.iter().try_fold((u64::MAX, 0), |(s, e), &i| {
                let (a, b) = chunk(i)?;
                Some((s.min(a), e.max(b)))
            })
        })
        .collect()
}

/// A nested Parquet file opened for exploding: its footer, its layout, its bytes.
pub struct Opened {
    pub reader: SerializedFileReader<PreadFile>,
    pub layout: Layout,
    file: PreadFile,
    /// The columns decoded together, for [`RowGroupChunk`].
    units: Vec<Vec<usize>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Opens a file and reads its layout.
pub fn open(file: Handle) -> Result<Opened, String> {
    let file = PreadFile::new(file);
    let reader = SerializedFileReader::new(file.clone())
        .map_err(|e| format!("cannot read the Parquet footer: {e}"))?;
    let layout = layout(reader.metadata().file_metadata().schema_descr())?;
    Ok(Opened {
        reader,
        units: layout.read_units(),
        layout,
        file,
    })
}

thread_local! {
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic (the Parquet decoder meeting input it does not expect) into an
/// error: one corrupt file must not end the run. skewer's own invariants are checked before
/// publishing (rows must add up), so a bug caught here still cannot publish wrong data.
pub(crate) fn contain_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    CONTAINED.with(|c| c.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(false));
    result.map_err(|panic| {
        format!(
            "the Parquet decoder failed: {}",
            crate::error::panic_message(panic.as_ref())
        )
    })
}

/// Whether this thread is inside `contain_panic`, whose panics become rejects: a binary's
/// panic hook may keep quiet about them (the library installs no hook of its own).
pub fn panic_is_contained() -> bool {
    CONTAINED.with(|c| c.get())
}

/// The rows (objects) a file's footer says it holds, if the footer can be read.
pub fn footer_rows(file: Handle) -> Option<u64> {
    let read = contain_panic(|| SerializedFileReader::new(PreadFile::new(file)));
    let reader = read.ok()?.ok()?;
    let rows = reader.metadata().row_groups().iter().map(|g| g.num_rows());
    rows.map(|n| u64::try_from(n).ok()).sum()
}

/// Explodes row group `g`. `Err` is a read error (a corrupt page): rows before it were
/// delivered; the caller rejects the rest of the row group.
pub fn explode_row_group(
    opened: &Opened,
    g: usize,
    ids: &mut dyn PropertyIds,
    sink: &mut dyn ParquetSink,
    scratch: &mut ParquetScratch,
) -> Result<(), ParquetError> {
    let (meta, layout) = (opened.reader.metadata(), &opened.layout);
    let group_meta = meta.row_group(g);
    let chunk = RowGroupChunk::new(opened.file.clone(), group_meta, &opened.units);
    let group = SerializedRowGroupReader::new(
        Arc::new(chunk),
        group_meta,
        meta.page_index_for_row_group(g),
        Arc::new(ReaderProperties::builder().build()),
    )?;
    let group: &dyn RowGroupReader = &group;
    let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
    read_ids(group, layout, rows, scratch)?;
    let rejected = scratch.ids.iter().filter(|id| id.is_none()).count();
    sink.records((rows - rejected) as u64);
    for (i, id) in scratch.ids.iter().enumerate() {
        if id.is_none() {
            let reason = match &layout.id {
                None => {
                    "no object id column (vid, canonical-vid, dealId, companyId, id, objectId or properties.hs_object_id.value)"
                }
                Some(_) => "the object id is null or not a whole number",
            };
            sink.reject(i as u64, reason);
        }
    }
    match &layout.form {
        Form::Struct(properties) => {
            for (name, leaves) in properties {
                let property = ids.id(name);
                explode_versions(
                    group,
                    leaves,
                    rows,
                    Names::One(property),
                    ids,
                    sink,
                    scratch,
                )?;
            }
        }
        Form::Map {
            key,
            entry_def,
            versions,
        } => {
            let names = Names::Map {
                key,
                entry_def: *entry_def,
            };
            explode_versions(group, versions, rows, names, ids, sink, scratch)?;
        }
    }
    if !scratch.rows.is_empty() {
        sink.rows(&scratch.rows);
        scratch.rows.clear();
    }
    Ok(())
}

fn read_ids(
    group: &dyn RowGroupReader,
    layout: &Layout,
    rows: usize,
    scratch: &mut ParquetScratch,
) -> Result<(), ParquetError> {
    scratch.ids.clear();
    let Some(leaf) = &layout.id else {
        scratch.ids.resize(rows, None);
        return Ok(());
    };
    if scratch.columns.is_empty() {
        scratch.columns.push(Column::default());
    }
    let col = &mut scratch.columns[0];
    LeafReader::open(group, leaf)?.fill(leaf, rows, col, &mut scratch.generic)?;
    let mut k = 0;
    for i in 0..col.def.len() {
        if col.def[i] == leaf.max_def {
            // Ids are whole numbers whatever the column's unit annotation.
            let id = match leaf.physical {
                Physical::INT64 => Some(col.ints[k]),
                _ => col.int(leaf, k),
            };
            scratch.ids.push(id);
            k += 1;
        } else {
            scratch.ids.push(None);
        }
    }
    Ok(())
}

/// Where a walk gets property ids from.
enum Names<'a> {
    One(u32),
    /// Names come from the map's key leaf; an entry exists from `entry_def` on.
    Map {
        key: &'a Leaf,
        entry_def: i16,
    },
}

/// Objects read at a time from a property's leaves: bounds memory whatever the row group's
/// size (the heaviest property of a 2,048-object chunk is a few MiB).
const CHUNK_RECORDS: usize = 2048;

/// Walks one set of version leaves of a row group, emitting a row per version. The leaves
/// (and the map's keys) are read in lockstep, [`CHUNK_RECORDS`] objects at a time.
fn explode_versions(
    group: &dyn RowGroupReader,
    leaves: &VersionLeaves,
    rows: usize,
    names: Names<'_>,
    ids: &mut dyn PropertyIds,
    sink: &mut dyn ParquetSink,
    scratch: &mut ParquetScratch,
) -> Result<(), ParquetError> {
    let n = leaves.fields.len();
    while scratch.columns.len() < n + 2 {
        scratch.columns.push(Column::default());
    }
    let mut readers = Vec::with_capacity(n);
    for (_, leaf) in &leaves.fields {
        readers.push(LeafReader::open(group, leaf)?);
    }
    let mut fallback_reader = match &leaves.fallback {
        Some(leaf) => Some(LeafReader::open(group, leaf)?),
        None => None,
    };
    let mut key_reader = match &names {
        Names::Map { key, .. } => Some(LeafReader::open(group, key)?),
        Names::One(_) => None,
    };
    let mut keys = std::mem::take(&mut scratch.keys);
    let mut done = 0;
    let mut result = Ok(());
    while done < rows && result.is_ok() {
        let records = CHUNK_RECORDS.min(rows - done);
        result = (|| {
            for (i, (_, leaf)) in leaves.fields.iter().enumerate() {
                readers[i].fill(
                    leaf,
                    records,
                    &mut scratch.columns[i + 1],
                    &mut scratch.generic,
                )?;
            }
            if let (Some(r), Names::Map { key, .. }) = (&mut key_reader, &names) {
                r.fill(key, records, &mut keys, &mut scratch.generic)?;
            }
            scratch.fallback.clear();
            if let (Some(r), Some(leaf)) = (&mut fallback_reader, &leaves.fallback) {
                let col = &mut scratch.columns[n + 1];
                r.fill(leaf, records, col, &mut scratch.generic)?;
                let mut k = 0;
                for &def in &col.def {
                    let ts = (def == leaf.max_def).then(|| {
                        k += 1;
                        col.timestamp(leaf, k - 1)
                    });
                    scratch.fallback.push(ts.flatten());
                }
            }
            walk_chunk(leaves, done, &names, &keys, ids, sink, scratch)
        })();
        done += records;
    }
    scratch.keys = keys;
    result
}

/// Slots checked at once for holding nothing (see `walk_chunk`).
const SKIP_BLOCK: usize = 16;

/// Walks the chunk of leaves `scratch.columns[1..]` holds, whose first object is `base`.
/// Where a version's value, source type, source id and source label are: (leaf, value
/// index), `None` for a null.
type TextFields = [Option<(usize, usize)>; 4];

/// A version's fields at `slot`: its time, its user, and the (leaf, value index) of its
/// value and source fields (value, type, id, label), advancing each present leaf's cursor
/// (a leaf stores values for its non-null slots only).
#[inline]
fn take_fields(
    leaves: &VersionLeaves,
    columns: &[Column],
    slot: usize,
    cursor: &mut [usize],
) -> (Option<i64>, Option<i64>, TextFields) {
    let (mut ts, mut user) = (None, None);
    let mut strings: TextFields = [None; 4];
    for (i, (f, leaf)) in leaves.fields.iter().enumerate() {
        let col = &columns[i + 1];
        if col.def[slot] != leaf.max_def {
            continue;
        }
        let k = cursor[i + 1];
        cursor[i + 1] += 1;
        match f {
            Field::Timestamp => ts = col.timestamp(leaf, k),
            Field::UpdatedBy => user = col.int(leaf, k),
            Field::Value => strings[0] = Some((i, k)),
            Field::SourceType => strings[1] = Some((i, k)),
            Field::SourceId => strings[2] = Some((i, k)),
            Field::SourceLabel => strings[3] = Some((i, k)),
        }
    }
    (ts, user, strings)
}

/// Versions without a timestamp field cannot be placed: all of the chunk's are rejected,
/// counted once.
fn reject_untimed(
    leaves: &VersionLeaves,
    base: usize,
    sink: &mut dyn ParquetSink,
    scratch: &ParquetScratch,
) {
    let leaf = &leaves.fields[0].1;
    let versions = scratch.columns[1]
        .def
        .iter()
        .filter(|&&d| d >= leaf.element_def)
        .count() as u64;
    if versions > 0 {
        sink.reject_versions(base as u64, versions, "versions have no timestamp field");
    }
}

/// A version's time and property, or why it cannot be written: no time (or one out of
/// range), no property name, text that is not UTF-8 or longer than a value may be.
/// `strings` are the (leaf, value index) of its text fields.
#[inline]
fn check_version(
    ts: Option<i64>,
    property: Option<u32>,
    strings: &TextFields,
    columns: &[Column],
    leaves: &VersionLeaves,
) -> Result<(i64, u32), std::borrow::Cow<'static, str>> {
    let Some(ms) = ts else {
        return Err("a version has no timestamp, or one that is not a time".into());
    };
    timestamp::in_range(ms)?;
    let Some(property) = property else {
        return Err("a map key (property name) is not valid UTF-8".into());
    };
    let invalid_text = strings
        .iter()
        .flatten()
        .any(|&(i, k)| !columns[i + 1].valid_text(leaves.fields[i].1.physical, k));
    if invalid_text {
        return Err("a version's value or source is not valid UTF-8".into());
    }
    let longest = strings
        .iter()
        .flatten()
        .map(|&(i, k)| columns[i + 1].text_len(leaves.fields[i].1.physical, k))
        .max()
        .unwrap_or(0);
    if longest > MAX_VALUE_BYTES {
        return Err(format!(
            "a version's value is {}, more than the {} a value may hold",
            crate::units::format_bytes(longest as u64),
            crate::units::format_bytes(MAX_VALUE_BYTES as u64)
        )
        .into());
    }
    Ok((ms, property))
}

fn walk_chunk(
    leaves: &VersionLeaves,
    base: usize,
    names: &Names<'_>,
    keys: &Column,
    ids: &mut dyn PropertyIds,
    sink: &mut dyn ParquetSink,
    scratch: &mut ParquetScratch,
) -> Result<(), ParquetError> {
    let n = leaves.fields.len();
    let Some(ts_index) = leaves
        .fields
        .iter()
        .position(|(f, _)| *f == Field::Timestamp)
    else {
        reject_untimed(leaves, base, sink, scratch);
        return Ok(());
    };
    let ts_index = ts_index + 1;
    let element_def = leaves.fields[ts_index - 1].1.element_def;
    let slots = scratch.columns[ts_index].def.len();
    if let Some(bad) = (1..=n).find(|&i| scratch.columns[i].def.len() != slots) {
        return Err(ParquetError::General(format!(
            "version leaves of one property disagree on their structure ({} and {slots} slots)",
            scratch.columns[bad].def.len()
        )));
    }
    let ParquetScratch {
        ids: object_ids,
        fallback,
        columns,
        rows: out,
        ..
    } = scratch;
    // Per leaf, the next value to take (values are stored for non-null slots only).
    let mut cursor = vec![0usize; n + 1];
    let mut record = base;
    let mut entries = 0usize;
    let mut property = match names {
        Names::One(p) => Some(*p),
        Names::Map { .. } => None,
    };
    // Slots under this level are neither versions nor map entries: most of a sparse dump's
    // (one per object without the property), so they are skipped a block at a time.
    let skippable = match names {
        Names::One(_) => element_def,
        Names::Map { entry_def, .. } => element_def.min(*entry_def),
    };
    let (reps, defs) = (&columns[ts_index].rep, &columns[ts_index].def);
    let mut slot = 0;
    while slot < slots {
        if slot > 0 && slot + SKIP_BLOCK <= slots {
            // A whole block at once (the common case), else the empty slots before the first
            // that holds something: no slot is looked at twice.
            let block = &defs[slot..slot + SKIP_BLOCK];
            let empty = if block.iter().all(|&d| d < skippable) {
                SKIP_BLOCK
            } else {
                block.iter().take_while(|&&d| d < skippable).count()
            };
            if empty > 0 {
                record += reps[slot..slot + empty].iter().filter(|&&r| r == 0).count();
                slot += empty;
                continue;
            }
        }
        let at = slot;
        slot += 1;
        let (rep, def) = (reps[at], defs[at]);
        if rep == 0 && at > 0 {
            record += 1;
        }
        if let Names::Map { entry_def, .. } = names {
            // A map entry starts at repetition 0 or 1 where the entry exists; keys are required
            // within an entry, so the n-th existing entry has the n-th key.
            if rep <= 1 && def >= *entry_def {
                let key = if entries < keys.spans.len() {
                    keys.text(entries)
                } else {
                    b""
                };
                property = std::str::from_utf8(key).ok().map(|name| ids.id(name));
                entries += 1;
            }
        }
        if def < element_def {
            continue;
        }
        let (ts, user, strings) = take_fields(leaves, columns, at, &mut cursor);
        let Some(object) = object_ids.get(record).copied().flatten() else {
            continue; // the object was rejected whole
        };
        let at = record as u64;
        let ts = ts.or_else(|| fallback.get(record - base).copied().flatten());
        let (ms, property) = match check_version(ts, property, &strings, columns, leaves) {
            Ok(ok) => ok,
            Err(reason) => {
                sink.reject_versions(at, 1, &reason);
                if let Some(p) = property {
                    sink.partial_history(p, object);
                }
                continue;
            }
        };
        out.property.push(property);
        out.object_id.push(object);
        out.timestamp.push(ms);
        out.updated_by.push(user);
        let targets = [
            &mut out.cols.value,
            &mut out.cols.source_type,
            &mut out.cols.source_id,
            &mut out.cols.source_label,
        ];
        for (s, target) in strings.iter().zip(targets) {
            match *s {
                Some((i, k)) => columns[i + 1].push_text(leaves.fields[i].1.physical, k, target),
                None => target.push(None),
            }
        }
        if out.len() >= FLUSH_ROWS || out.data_bytes() >= FLUSH_BYTES {
            sink.rows(out);
            out.clear();
        }
    }
    Ok(())
}

/// Versions and bytes per property from the footer alone (STRUCT form): the planner's exact
/// input for this file (exact from level histograms; from value and null counts where a
/// writer left them out, close), read in microseconds. `None` for the MAP form, whose
/// properties share their leaves.
pub fn footer_volumes(opened: &Opened) -> Option<Vec<(String, u64, u64)>> {
    let (reader, layout) = (&opened.reader, &opened.layout);
    let Form::Struct(properties) = &layout.form else {
        return None;
    };
    let meta = reader.metadata();
    let mut out = Vec::with_capacity(properties.len());
    for (name, leaves) in properties {
        let Some(ts) = leaves.timestamp() else {
            continue;
        };
        let (mut versions, mut bytes) = (0u64, 0u64);
        for g in meta.row_groups() {
            let chunk = g.column(ts.column);
            // Saturating: a footer is untrusted input like the rest of the file.
            let n = match chunk.definition_level_histogram() {
                // Exact: slots whose level reaches the version struct.
                Some(h) => h
                    .values()
                    .iter()
                    .skip(ts.element_def as usize)
                    .fold(0u64, |n, &c| n.saturating_add(c.max(0) as u64)),
                // Close: slots with a non-null timestamp.
                None => {
                    let nulls = chunk
                        .statistics()
                        .and_then(|s| s.null_count_opt())
                        .unwrap_or(0);
                    (chunk.num_values().max(0) as u64).saturating_sub(nulls)
                }
            };
            versions = versions.saturating_add(n);
            for (_, leaf) in &leaves.fields {
                let size = g.column(leaf.column).uncompressed_size().max(0) as u64;
                bytes = bytes.saturating_add(size);
            }
        }
        out.push((name.clone(), versions, bytes));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::basic::Encoding;
    use parquet::schema::parser::parse_message_type;

    fn layout_of(schema: &str) -> Result<Layout, String> {
        let t = parse_message_type(schema).unwrap();
        layout(&SchemaDescriptor::new(std::sync::Arc::new(t)))
    }

    #[test]
    fn finds_struct_map_and_legacy_layouts() {
        let l = layout_of(
            "message m { required int64 vid; optional group properties {
               optional group email { optional binary value (STRING);
                 optional group versions (LIST) { repeated group list { optional group element {
                   optional binary value (STRING); optional int64 timestamp; } } } }
               optional group hs_object_id { optional binary value (STRING); } } }",
        )
        .unwrap();
        assert_eq!(l.id.as_ref().unwrap().column, 0);
        let Form::Struct(props) = &l.form else {
            panic!("struct")
        };
        assert_eq!(props.len(), 1);
        assert_eq!(props[0].0, "email");
        let ts = props[0].1.timestamp().unwrap();
        assert_eq!((ts.max_def, ts.element_def), (6, 5));

        // Legacy two-level list, id only inside properties.
        let l = layout_of(
            "message m { optional group properties { optional group email {
               repeated group versions { required binary value (UTF8); required int64 timestamp; } }
               optional group hs_object_id { optional binary value (UTF8); } } }",
        )
        .unwrap();
        assert_eq!(l.id.unwrap().column, 2);
        let Form::Struct(props) = &l.form else {
            panic!("struct")
        };
        let ts = props[0].1.timestamp().unwrap();
        assert_eq!((ts.max_def, ts.element_def), (3, 3));

        let l = layout_of(
            "message m { required binary id (STRING); optional group properties (MAP) {
               repeated group key_value { required binary key (STRING); optional group value {
                 optional group versions (LIST) { repeated group list { optional group element {
                   optional binary value (STRING); optional int64 timestamp (TIMESTAMP(MICROS,true)); } } } } } } }",
        )
        .unwrap();
        let Form::Map {
            entry_def,
            versions,
            ..
        } = &l.form
        else {
            panic!("map")
        };
        assert_eq!(*entry_def, 2);
        assert_eq!(versions.timestamp().unwrap().per_ms, 1000);
    }

    #[derive(Default)]
    struct Collect {
        rows: Rows,
        records: u64,
        rejects: Vec<(u64, u64, String)>,
    }

    impl ParquetSink for Collect {
        fn rows(&mut self, rows: &Rows) {
            for i in 0..rows.len() {
                self.rows.push_from(rows, i);
            }
        }
        fn records(&mut self, n: u64) {
            self.records += n;
        }
        fn reject(&mut self, index: u64, reason: &str) {
            self.rejects.push((index, 0, reason.into()));
        }
        fn reject_versions(&mut self, index: u64, count: u64, reason: &str) {
            self.rejects.push((index, count, reason.into()));
        }
    }

    /// A Parquet writer of `schema` (message type text) to `f.parquet` in a new folder.
    fn file_writer(
        schema: &str,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        parquet::file::writer::SerializedFileWriter<std::fs::File>,
    ) {
        let schema = parse_message_type(schema).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let w = parquet::file::writer::SerializedFileWriter::new(
            std::fs::File::create(&path).unwrap(),
            std::sync::Arc::new(schema),
            Default::default(),
        )
        .unwrap();
        (dir, path, w)
    }

    /// A file from another writer: a legacy two-level list, string ids (one null), microsecond
    /// timestamps (one null), an integer `value` column.
    #[test]
    fn reads_another_writers_shape_and_rejects_precisely() {
        use parquet::data_type::{ByteArrayType, Int64Type};
        let (_dir, path, mut w) = file_writer(
            "message m { optional binary id (STRING); optional group properties {
               optional group views { repeated group versions {
                 optional int64 value; optional int64 timestamp (TIMESTAMP(MICROS,true)); } } } }",
        );
        let mut rg = w.next_row_group().unwrap();
        // Three objects: "10" with versions (7 @ 1000 µs, 8 @ null), null id with one version,
        // "12" with no versions (the group is there, the list empty).
        let mut c = rg.next_column().unwrap().unwrap();
        let ids = [ByteArray::from("10"), ByteArray::from("12")];
        c.typed::<ByteArrayType>()
            .write_batch(&ids, Some(&[1, 0, 1]), None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int64Type>()
            .write_batch(&[7, 8, 9], Some(&[4, 4, 4, 2]), Some(&[0, 1, 0, 0]))
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int64Type>()
            .write_batch(
                &[1_000_000, 5_000],
                Some(&[4, 3, 4, 2]),
                Some(&[0, 1, 0, 0]),
            )
            .unwrap();
        c.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();

        let opened = open(crate::source::LocalFile::open(&path).unwrap()).unwrap();
        let mut ids = crate::explode::LocalIds::default();
        let mut sink = Collect::default();
        explode_row_group(
            &opened,
            0,
            &mut ids,
            &mut sink,
            &mut ParquetScratch::default(),
        )
        .unwrap();
        assert_eq!(sink.records, 2);
        assert_eq!(sink.rows.len(), 1);
        let r = sink.rows.row(0);
        assert_eq!(
            (r.object_id, r.timestamp, r.value),
            (10, 1_000, Some(&b"7"[..]))
        );
        assert_eq!(sink.rejects.len(), 2);
        assert_eq!((sink.rejects[0].0, sink.rejects[0].1), (1, 0)); // the object without an id
        assert_eq!((sink.rejects[1].0, sink.rejects[1].1), (0, 1)); // object 10's untimed version
        assert_eq!(ids.names, ["views"]);
    }

    #[test]
    fn a_version_without_a_timestamp_takes_its_propertys() {
        use parquet::data_type::Int64Type;
        // v1 deals as a nested dump: `num_associated_contacts` is calculated, its versions
        // carry no timestamp of their own, the property does.
        let (_dir, path, mut w) = file_writer(
            "message m { required int64 dealId; optional group properties {
               optional group num_associated_contacts { optional int64 timestamp;
                 repeated group versions { optional int64 value; optional int64 timestamp; } }
               optional group lonely { optional int64 timestamp; } } }",
        );
        let mut rg = w.next_row_group().unwrap();
        let mut int = |values: &[i64], def: Option<&[i16]>, rep: Option<&[i16]>| {
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<Int64Type>()
                .write_batch(values, def, rep)
                .unwrap();
            c.close().unwrap();
        };
        // Deals 1 (property time 50; versions untimed, and timed 60) and 2 (no property time).
        int(&[1, 2], None, None);
        int(&[50], Some(&[3, 2]), None);
        int(&[7, 8, 9], Some(&[4, 4, 4]), Some(&[0, 1, 0]));
        int(&[60], Some(&[3, 4, 3]), Some(&[0, 1, 0]));
        int(&[], Some(&[2, 2]), None);
        rg.close().unwrap();
        w.close().unwrap();

        let opened = open(crate::source::LocalFile::open(&path).unwrap()).unwrap();
        let mut ids = crate::explode::LocalIds::default();
        let mut sink = Collect::default();
        let mut scratch = ParquetScratch::default();
        explode_row_group(&opened, 0, &mut ids, &mut sink, &mut scratch).unwrap();
        let got: Vec<(i64, i64)> = (0..sink.rows.len())
            .map(|i| (sink.rows.row(i).object_id, sink.rows.row(i).timestamp))
            .collect();
        assert_eq!(got, [(1, 50), (1, 60)]);
        // Deal 2's version has no time of its own and its property none: rejected alone.
        assert_eq!(sink.rejects.len(), 1);
        assert_eq!((sink.rejects[0].0, sink.rejects[0].1), (1, 1));
        assert_eq!(ids.names, ["num_associated_contacts"]);
    }

    #[test]
    fn explains_schemas_that_are_not_dumps() {
        let e = layout_of("message m { required int64 a; }").unwrap_err();
        assert!(e.contains("no top-level \"properties\""), "{e}");
        let e = layout_of("message m { optional group properties { optional group p { optional binary value; } } }").unwrap_err();
        assert!(e.contains("no version lists"), "{e}");
    }

    /// A seeded generator of a file whose leaves have every type, nesting and encoding the
    /// page reader takes: levels of 3,000 records, each leaf with its own nulls.
    fn leaf_file(seed: u64, props: parquet::file::properties::WriterProperties) -> Bytes {
        use parquet::data_type::*;
        let schema = parse_message_type(
            "message m { required int64 id; optional binary flat (STRING);
               optional group versions (LIST) { repeated group list { optional group element {
                 optional binary text (STRING); optional int64 i64; optional int32 i32;
                 optional double f64; optional float f32; optional boolean b;
                 required int64 req; } } } }",
        )
        .unwrap();
        let mut state = seed | 1;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut buf = Vec::new();
        let mut w = parquet::file::writer::SerializedFileWriter::new(
            &mut buf,
            Arc::new(schema),
            Arc::new(props),
        )
        .unwrap();
        for _group in 0..2 {
            let mut rg = w.next_row_group().unwrap();
            let records = 3000;
            let mut column = 0;
            while let Some(mut c) = rg.next_column().unwrap() {
                let (max_def, max_rep) = match column {
                    0 => (0, 0),
                    1 => (1, 0),
                    8 => (3, 1),
                    _ => (4, 1),
                };
                column += 1;
                let (mut def, mut rep) = (Vec::new(), Vec::new());
                for _ in 0..records {
                    if max_rep == 0 {
                        def.push(if max_def == 0 || next(5) > 0 {
                            max_def
                        } else {
                            0
                        });
                        rep.push(0);
                        continue;
                    }
                    // A null list, an empty one, or up to 12 versions (some long histories).
                    let slots = match next(10) {
                        0 => 0,
                        1 => 1,
                        9 => 1 + next(200) as usize,
                        _ => 1 + next(12) as usize,
                    };
                    if slots == 0 {
                        def.push(0);
                        rep.push(0);
                        continue;
                    }
                    let empty = next(9) == 0;
                    for s in 0..slots {
                        rep.push(i16::from(s > 0));
                        def.push(match (empty, next(8)) {
                            (true, _) => 1,
                            (_, 0) => 2,
                            (_, 1) if max_def == 4 => 3,
                            _ => max_def,
                        });
                        if empty {
                            break;
                        }
                    }
                }
                let defined = def.iter().filter(|&&d| d == max_def).count();
                let (d, r) = (
                    (max_def > 0).then_some(&def[..]),
                    (max_rep > 0).then_some(&rep[..]),
                );
                let words = [
                    "",
                    "a",
                    "yes",
                    "subscriber",
                    "lead",
                    "a much longer value ~~~",
                ];
                match column - 1 {
                    1 | 2 => {
                        let v: Vec<ByteArray> = (0..defined)
                            .map(|i| match next(4) {
                                0 => ByteArray::from(
                                    format!("unique {i} {}", next(1 << 40)).into_bytes(),
                                ),
                                _ => ByteArray::from(words[next(6) as usize]),
                            })
                            .collect();
                        c.typed::<ByteArrayType>().write_batch(&v, d, r).unwrap();
                    }
                    4 => {
                        let v: Vec<i32> = (0..defined).map(|_| next(100) as i32 - 50).collect();
                        c.typed::<Int32Type>().write_batch(&v, d, r).unwrap();
                    }
                    5 => {
                        let v: Vec<f64> = (0..defined).map(|_| next(1000) as f64 / 8.0).collect();
                        c.typed::<DoubleType>().write_batch(&v, d, r).unwrap();
                    }
                    6 => {
                        let v: Vec<f32> = (0..defined).map(|_| next(50) as f32 * 0.5).collect();
                        c.typed::<FloatType>().write_batch(&v, d, r).unwrap();
                    }
                    7 => {
                        let v: Vec<bool> = (0..defined).map(|_| next(3) == 0).collect();
                        c.typed::<BoolType>().write_batch(&v, d, r).unwrap();
                    }
                    _ => {
                        let v: Vec<i64> = (0..defined)
                            .map(|_| 1_600_000_000_000 + next(1 << 20) as i64)
                            .collect();
                        c.typed::<Int64Type>().write_batch(&v, d, r).unwrap();
                    }
                }
                c.close().unwrap();
            }
            rg.close().unwrap();
        }
        w.close().unwrap();
        Bytes::from(buf)
    }

    /// Every value of a column as text, for comparing two reads of it.
    fn rendered(col: &Column) -> Vec<String> {
        let mut out: Vec<String> = (0..col.spans.len())
            .map(|k| String::from_utf8_lossy(col.text(k)).into_owned())
            .collect();
        out.extend(col.ints.iter().map(|v| v.to_string()));
        out.extend(col.ints32.iter().map(|v| v.to_string()));
        out.extend(col.floats.iter().map(|v| v.to_string()));
        out.extend(col.floats32.iter().map(|v| v.to_string()));
        out.extend(col.bools.iter().map(|v| v.to_string()));
        out
    }

    #[test]
    fn the_page_reader_reads_every_leaf_as_the_generic_reader_does() {
        use parquet::file::properties::{WriterProperties, WriterVersion};
        let mut cases = 0;
        for (seed, dictionary, version, page_rows) in [
            (1, true, WriterVersion::PARQUET_1_0, 20_000),
            (2, false, WriterVersion::PARQUET_1_0, 20_000),
            (3, true, WriterVersion::PARQUET_2_0, 20_000),
            (4, false, WriterVersion::PARQUET_2_0, 64),
            (5, true, WriterVersion::PARQUET_1_0, 7),
            (6, false, WriterVersion::PARQUET_1_0, 100),
        ] {
            let props = WriterProperties::builder()
                .set_dictionary_enabled(dictionary)
                .set_writer_version(version)
                .set_data_page_row_count_limit(page_rows)
                .set_write_batch_size(page_rows.min(1024))
                // A small dictionary limit: some chunks fall back to plain pages midway.
                .set_dictionary_page_size_limit(if seed == 5 { 256 } else { 1 << 20 })
                .build();
            let file = leaf_file(seed, props);
            let reader = SerializedFileReader::new(file).unwrap();
            let mut chunk_sizes = seed;
            for g in 0..reader.num_row_groups() {
                let group = reader.get_row_group(g).unwrap();
                let schema = reader.metadata().file_metadata().schema_descr();
                for column in 0..schema.num_columns() {
                    let leaf = Leaf::new(column, &schema.column(column));
                    let mut pages = LeafReader::open(&*group, &leaf).unwrap();
                    // parquet-rs writes v2 chunks without a dictionary in DELTA encodings,
                    // which stay with the generic reader.
                    let delta = group.metadata().column(column).encodings().any(|e| {
                        matches!(
                            e,
                            Encoding::DELTA_BINARY_PACKED | Encoding::DELTA_BYTE_ARRAY
                        )
                    });
                    assert_eq!(
                        matches!(pages, LeafReader::Pages(_)),
                        !delta,
                        "seed {seed} column {column}"
                    );
                    let mut generic =
                        LeafReader::Generic(Box::new(group.get_column_reader(column).unwrap()));
                    let (mut a, mut b, mut scratch) =
                        (Column::default(), Column::default(), Vec::new());
                    let mut done = 0;
                    while done < 3000 {
                        // Uneven pieces: records end inside pages and level blocks.
                        chunk_sizes = chunk_sizes * 31 % 997;
                        let n = (1 + chunk_sizes as usize % 300).min(3000 - done);
                        pages.fill(&leaf, n, &mut a, &mut scratch).unwrap();
                        generic.fill(&leaf, n, &mut b, &mut scratch).unwrap();
                        assert_eq!(a.def, b.def, "seed {seed} column {column} at {done}");
                        assert_eq!(a.rep, b.rep, "seed {seed} column {column} at {done}");
                        assert_eq!(rendered(&a), rendered(&b), "seed {seed} column {column}");
                        done += n;
                        cases += 1;
                    }
                    // Past the chunk's end: no records, an error.
                    assert!(pages.fill(&leaf, 1, &mut a, &mut scratch).is_err());
                }
            }
        }
        assert!(cases > 1000, "{cases}");
    }

    /// Pages served from memory, so that a test can cut and corrupt them.
    struct Pages(std::vec::IntoIter<parquet::column::page::Page>);

    impl Iterator for Pages {
        type Item = parquet::errors::Result<parquet::column::page::Page>;
        fn next(&mut self) -> Option<Self::Item> {
            self.0.next().map(Ok)
        }
    }

    impl parquet::column::page::PageReader for Pages {
        fn get_next_page(
            &mut self,
        ) -> parquet::errors::Result<Option<parquet::column::page::Page>> {
            Ok(self.0.next())
        }
        fn peek_next_page(
            &mut self,
        ) -> parquet::errors::Result<Option<parquet::column::page::PageMetadata>> {
            Ok(None)
        }
        fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
            self.0.next();
            Ok(())
        }
    }

    #[test]
    fn cut_and_corrupted_pages_are_errors_not_panics() {
        use parquet::column::page::Page;
        use parquet::file::properties::{WriterProperties, WriterVersion};
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let props = WriterProperties::builder()
                .set_writer_version(version)
                .set_data_page_row_count_limit(50)
                .build();
            let reader = SerializedFileReader::new(leaf_file(9, props)).unwrap();
            let group = reader.get_row_group(0).unwrap();
            let schema = reader.metadata().file_metadata().schema_descr();
            let mut errors = 0;
            for column in 0..schema.num_columns() {
                let descr = schema.column(column);
                let pages: Vec<Page> = group
                    .get_column_page_reader(column)
                    .unwrap()
                    .map(|p| p.unwrap())
                    .collect();
                // The buffer with `f` applied, as a page like `page`.
                let with = |page: &Page, f: &dyn Fn(&mut Vec<u8>)| {
                    let mut page = page.clone();
                    let buf = match &mut page {
                        Page::DataPage { buf, .. }
                        | Page::DataPageV2 { buf, .. }
                        | Page::DictionaryPage { buf, .. } => buf,
                    };
                    let mut bytes = buf.to_vec();
                    f(&mut bytes);
                    *buf = Bytes::from(bytes);
                    page
                };
                for (i, page) in pages.iter().enumerate().take(4) {
                    let len = page.buffer().len();
                    let cuts = (0..len).step_by(len / 40 + 1);
                    let flips = (0..len).step_by(len / 25 + 1);
                    let variants = cuts
                        .map(|cut| with(page, &move |b| b.truncate(cut)))
                        .chain(flips.map(|at| with(page, &move |b| b[at] ^= 0xa5)));
                    for bad in variants {
                        let mut all = pages.clone();
                        all[i] = bad;
                        let mut chunk =
                            LeafChunk::new(Box::new(Pages(all.into_iter())), &descr).unwrap();
                        let mut out = Column::default();
                        // Read to the end: whatever it gives, it never panics and holds a
                        // value for each defined slot.
                        loop {
                            match chunk.fill(37, &mut out) {
                                Ok(0) => break,
                                Ok(_) => {
                                    let defined = out
                                        .def
                                        .iter()
                                        .filter(|&&d| d == descr.max_def_level())
                                        .count();
                                    let _ = rendered(&out);
                                    assert_eq!(out.values(), defined);
                                    assert_eq!(out.def.len(), out.rep.len());
                                }
                                Err(_) => {
                                    errors += 1;
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            assert!(errors > 50, "cut pages must be caught: {errors}");
        }
    }

    /// A v1 data page of `levels` slots over `buf`.
    fn page_v1(buf: Vec<u8>, levels: u32, encoding: Encoding) -> parquet::column::page::Page {
        parquet::column::page::Page::DataPage {
            buf: Bytes::from(buf),
            num_values: levels,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        }
    }

    /// A repeated run of `count` × `value` (one byte), in the hybrid encoding.
    fn run_of(count: u64, value: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut header = count << 1;
        loop {
            let b = (header & 0x7f) as u8;
            header >>= 7;
            if header == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.push(value);
        out
    }

    /// Hostile page headers and runs (a few bytes can claim billions of slots): refused
    /// without the allocation they ask for; a run's value past its bit width is an error.
    #[test]
    fn pages_claiming_more_than_they_hold_are_refused_cheaply() {
        let schema = SchemaDescriptor::new(Arc::new(
            parse_message_type(
                "message m { required int64 id; repeated int64 r; required boolean b; }",
            )
            .unwrap(),
        ));
        let chunk = |pages: Vec<parquet::column::page::Page>, column: usize| {
            LeafChunk::new(Box::new(Pages(pages.into_iter())), &schema.column(column)).unwrap()
        };
        // A required column: 100 M values claimed, none there.
        let mut c = chunk(vec![page_v1(Vec::new(), 100_000_000, Encoding::PLAIN)], 0);
        let mut out = Column::default();
        assert!(c.fill(200_000_000, &mut out).is_err());
        assert!(out.rep.capacity() < 1 << 20, "{}", out.rep.capacity());

        // One record of 200 M slots in two 20-byte pages: a run of repetition levels 1.
        let n = 100_000_000u64;
        let prefixed = |levels: Vec<u8>| {
            let mut b = (levels.len() as u32).to_le_bytes().to_vec();
            b.extend(levels);
            b
        };
        let mut first = prefixed([run_of(1, 0), run_of(n - 1, 1)].concat());
        first.extend(prefixed(run_of(n, 0)));
        let mut second = prefixed(run_of(n, 1));
        second.extend(prefixed(run_of(n, 0)));
        let pages = vec![
            page_v1(first, n as u32, Encoding::PLAIN),
            page_v1(second, n as u32, Encoding::PLAIN),
        ];
        let mut c = chunk(pages, 1);
        let e = c.fill(1, &mut out).unwrap_err();
        assert!(e.contains("too large"), "{e}");

        // An RLE boolean run whose value (2) does not fit its one bit.
        let mut c = chunk(
            vec![page_v1(vec![2, 0, 0, 0, 3 << 1, 2], 3, Encoding::RLE)],
            2,
        );
        let e = c.fill(3, &mut out).unwrap_err();
        assert!(e.contains("wider than"), "{e}");
    }
}
