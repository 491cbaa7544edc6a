//! Parquet column chunks decoded page by page, without the parquet crate's per-value `Bytes`.
//!
//! Takes a column chunk's pages (decompressed by the parquet crate's page reader). The
//! parquet crate's value reader hands out one refcounted `Bytes` per value (a clone of a
//! dictionary entry's, for dictionary pages): cloning, copying and dropping those was a tenth
//! of a merge's CPU and 5 % of a Parquet run's. Here values are located as spans (into the
//! dictionary page or the data page):
//!
//! - [`StrChunk`]: a flat string column (stored files, for the merge), copied into a
//!   [`StrColumn`]'s byte arena a batch at a time;
//! - [`LeafChunk`]: a leaf of any nesting (the dumps' version fields), whole records at a
//!   time into a [`LeafColumn`]: levels as stored, text as spans into the page buffers.
//!
//! What they read: `PLAIN` and dictionary (`PLAIN_DICTIONARY`, `RLE_DICTIONARY`) values, in v1
//! and v2 data pages, with `RLE` levels. Every other encoding is left to the generic reader
//! (each reader's `handles` says which chunks it takes). Every length, level and index read
//! from a page is checked: a cut or corrupted page is an error (a sentence, which the caller
//! places with the file, row group and column), never a panic or a wrong row.

use bytes::Bytes;
use parquet::basic::{Encoding, Type};
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::schema::types::ColumnDescriptor;

use crate::batch::StrColumn;

/// A dictionary page and the spans of its text entries (none for fixed-width entries, which
/// lie end to end).
type Dictionary = (Bytes, Vec<(u32, u32)>);

/// One string column chunk, read page by page.
pub struct StrChunk {
    pages: Box<dyn PageReader>,
    /// The column's maximum definition level (0: required, no levels in the pages).
    max_def: i16,
    /// The dictionary page and each entry's span in it.
    dict: Option<Dictionary>,
    page: Option<DataPage>,
    levels: Vec<u32>,
    valid: Vec<bool>,
    indices: Vec<u32>,
    spans: Vec<(u32, u32)>,
}

impl std::fmt::Debug for StrChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrChunk")
            .field("max_def", &self.max_def)
            .field("dictionary", &self.dict.as_ref().map(|(_, e)| e.len()))
            .field("page_rows_left", &self.page.as_ref().map(|p| p.left))
            .finish_non_exhaustive()
    }
}

/// The data page being read.
struct DataPage {
    buf: Bytes,
    /// Levels (rows) not read yet.
    left: usize,
    /// Definition levels, when the column has any.
    defs: Option<Hybrid>,
    values: Values,
}

enum Values {
    /// Length-prefixed values from byte `pos` on.
    Plain { pos: usize },
    /// Indices into the dictionary.
    Dict(Hybrid),
}

impl StrChunk {
    /// Whether this reader reads `chunk` (its encodings are all ones it knows; `BIT_PACKED`
    /// is listed by some writers for repetition levels a flat column never has).
    #[allow(deprecated)] // BIT_PACKED: named only to accept it in the list
    pub fn handles(chunk: &ColumnChunkMetaData) -> bool {
        chunk.column_descr().max_rep_level() == 0
            && chunk.encodings().all(|e| {
                matches!(
                    e,
                    Encoding::PLAIN
                        | Encoding::PLAIN_DICTIONARY
                        | Encoding::RLE_DICTIONARY
                        | Encoding::RLE
                        | Encoding::BIT_PACKED
                )
            })
    }

    pub fn new(pages: Box<dyn PageReader>, max_def: i16) -> StrChunk {
        StrChunk {
            pages,
            max_def,
            dict: None,
            page: None,
            levels: Vec::new(),
            valid: Vec::new(),
            indices: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Appends up to `n` of the chunk's next rows to `out`; how many (fewer only where the
    /// chunk ends).
    pub fn read(&mut self, n: usize, out: &mut StrColumn) -> Result<usize, String> {
        let mut done = 0;
        while done < n {
            if self.page.as_ref().is_none_or(|p| p.left == 0) {
                if !self.next_data_page()? {
                    break;
                }
                continue;
            }
            let StrChunk {
                max_def,
                dict,
                page,
                levels,
                valid,
                indices,
                spans,
                ..
            } = self;
            let page = page.as_mut().expect("a data page is open");
            let k = (n - done).min(page.left);
            valid.clear();
            let present = match &mut page.defs {
                None => k,
                Some(defs) => {
                    levels.clear();
                    defs.read(&page.buf, levels, k)?;
                    let max = *max_def as u32;
                    if let Some(bad) = levels.iter().find(|&&l| l > max) {
                        return Err(format!(
                            "a definition level of {bad} where the column's most is {max}"
                        ));
                    }
                    valid.extend(levels.iter().map(|&l| l == max));
                    valid.iter().filter(|&&v| v).count()
                }
            };
            spans.clear();
            let src: &[u8] = match &mut page.values {
                Values::Plain { pos } => {
                    for _ in 0..present {
                        spans.push(plain_value(&page.buf, pos)?);
                    }
                    &page.buf
                }
                Values::Dict(ids) => {
                    let Some((dict_buf, entries)) = dict.as_ref() else {
                        return Err("a dictionary-encoded page without a dictionary page".into());
                    };
                    indices.clear();
                    ids.read(&page.buf, indices, present)?;
                    for &i in indices.iter() {
                        spans.push(*entries.get(i as usize).ok_or_else(|| {
                            format!(
                                "dictionary index {i} past the dictionary's {} entries",
                                entries.len()
                            )
                        })?);
                    }
                    dict_buf
                }
            };
            let rows = if present == k { &[][..] } else { &valid[..] };
            out.extend_from_spans(src, spans, rows, k);
            page.left -= k;
            done += k;
        }
        Ok(done)
    }

    /// Opens the next data page (reading a dictionary page on the way); false at the chunk's
    /// end.
    fn next_data_page(&mut self) -> Result<bool, String> {
        let dict = &mut self.dict;
        let parts = next_page(&mut *self.pages, 0, self.max_def, |buf, num_values| {
            let entries = text_dictionary(&buf, num_values)?;
            *dict = Some((buf, entries));
            Ok(())
        })?;
        let Some(page) = parts else {
            self.page = None;
            return Ok(false);
        };
        let defs =
            (self.max_def > 0).then(|| Hybrid::new(page.defs, bit_width(self.max_def as u32)));
        let values = match page.encoding {
            Encoding::PLAIN => Values::Plain { pos: page.values },
            Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY => {
                Values::Dict(dictionary_indices(&page.buf, page.values)?)
            }
            other => return Err(format!("a data page in {other}")),
        };
        self.page = Some(DataPage {
            buf: page.buf,
            left: page.levels,
            defs,
            values,
        });
        Ok(true)
    }
}

/// A data page's parts, located: the buffer and where its levels and values are in it.
struct PageParts {
    buf: Bytes,
    /// Levels (slots) in the page.
    levels: usize,
    encoding: Encoding,
    /// The repetition and definition levels' RLE / bit-packed hybrid data (empty where the
    /// column has none).
    reps: std::ops::Range<usize>,
    defs: std::ops::Range<usize>,
    /// Where the values start.
    values: usize,
}

/// Reads pages up to the next data page and locates its parts; a dictionary page on the way
/// goes to `dictionary` (its buffer and entry count), `None` at the chunk's end. Only `RLE`
/// levels are read: the deprecated `BIT_PACKED` is an error (callers' `handles` keep chunks
/// that list it away).
fn next_page(
    pages: &mut dyn PageReader,
    max_rep: i16,
    max_def: i16,
    mut dictionary: impl FnMut(Bytes, u32) -> Result<(), String>,
) -> Result<Option<PageParts>, String> {
    loop {
        let page = match pages.get_next_page() {
            Ok(Some(page)) => page,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        match page {
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                ..
            } => {
                if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                    return Err(format!("a dictionary page in {encoding}"));
                }
                dictionary(buf, num_values)?;
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                // v1: each level stream present is prefixed by its length.
                let mut pos = 0;
                let mut prefixed = |max: i16, encoding: Encoding, what: &str| {
                    if max == 0 {
                        return Ok(pos..pos);
                    }
                    if encoding != Encoding::RLE {
                        return Err(format!("{what} levels in {encoding}"));
                    }
                    let len = buf
                        .get(pos..pos + 4)
                        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                        .filter(|&len| len <= buf.len() - pos - 4)
                        .ok_or_else(|| format!("a data page cut in its {what} levels"))?;
                    pos += 4 + len;
                    Ok(pos - len..pos)
                };
                let reps = prefixed(max_rep, rep_level_encoding, "repetition")?;
                let defs = prefixed(max_def, def_level_encoding, "definition")?;
                return Ok(Some(PageParts {
                    values: pos,
                    buf,
                    levels: num_values as usize,
                    encoding,
                    reps,
                    defs,
                }));
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                let reps = 0..rep_levels_byte_len as usize;
                let defs = reps.end..reps.end + def_levels_byte_len as usize;
                if defs.end > buf.len() {
                    return Err("a data page cut in its levels".into());
                }
                return Ok(Some(PageParts {
                    values: defs.end,
                    buf,
                    levels: num_values as usize,
                    encoding,
                    reps,
                    defs,
                }));
            }
        }
    }
}

/// The spans of a `PLAIN` dictionary page's `n` byte-array entries.
fn text_dictionary(buf: &[u8], n: u32) -> Result<Vec<(u32, u32)>, String> {
    // Each entry takes at least its 4-byte length: a count past that is a lie.
    let mut entries = Vec::with_capacity((n as usize).min(buf.len() / 4));
    let mut pos = 0;
    for _ in 0..n {
        entries.push(plain_value(buf, &mut pos)?);
    }
    Ok(entries)
}

/// The dictionary indices of a page whose values start at `start`: a width byte, then the
/// hybrid runs.
fn dictionary_indices(buf: &[u8], start: usize) -> Result<Hybrid, String> {
    // A page of nulls only may end before the width byte: no index is read.
    let width = buf.get(start).copied().unwrap_or(0) as u32;
    if width > 32 {
        return Err(format!("dictionary indices {width} bits wide"));
    }
    Ok(Hybrid::new((start + 1).min(buf.len())..buf.len(), width))
}

/// Where a text value is: bytes `start..end` of [`LeafColumn::bufs`]`[buf]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    buf: u32,
    start: u32,
    end: u32,
}

/// A leaf column's slots for some records, as read: the levels as stored, and the values of
/// the defined slots, in order, by physical type. Text is held as spans into the page
/// buffers that hold it: no value is copied or reference-counted on its way to the explode.
#[derive(Debug, Default)]
pub struct LeafColumn {
    pub def: Vec<i16>,
    /// Repetition levels (zeros for a column without them: every slot starts a record).
    pub rep: Vec<i16>,
    pub bufs: Vec<Bytes>,
    pub spans: Vec<Span>,
    pub ints: Vec<i64>,
    pub ints32: Vec<i32>,
    pub floats: Vec<f64>,
    pub floats32: Vec<f32>,
    pub bools: Vec<bool>,
}

impl LeafColumn {
    pub fn clear(&mut self) {
        self.def.clear();
        self.rep.clear();
        self.bufs.clear();
        self.spans.clear();
        self.ints.clear();
        self.ints32.clear();
        self.floats.clear();
        self.floats32.clear();
        self.bools.clear();
    }

    /// Text value `k`.
    #[inline]
    pub fn text(&self, k: usize) -> &[u8] {
        let s = self.spans[k];
        &self.bufs[s.buf as usize][s.start as usize..s.end as usize]
    }

    /// Values held, of every type.
    pub fn values(&self) -> usize {
        self.spans.len()
            + self.ints.len()
            + self.ints32.len()
            + self.floats.len()
            + self.floats32.len()
            + self.bools.len()
    }

    /// Appends text values another reader decoded (copied into buffers of their own, each
    /// under 4 GiB so that spans stay `u32`).
    pub fn push_texts<'a>(&mut self, values: impl IntoIterator<Item = &'a [u8]>) {
        let mut arena = Vec::new();
        for v in values {
            if arena.len() + v.len() > u32::MAX as usize {
                self.bufs.push(Bytes::from(std::mem::take(&mut arena)));
            }
            let start = arena.len() as u32;
            arena.extend_from_slice(v);
            let span = Span {
                buf: self.bufs.len() as u32,
                start,
                end: arena.len() as u32,
            };
            self.spans.push(span);
        }
        self.bufs.push(Bytes::from(arena));
    }
}

/// The physical types [`LeafChunk`] decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Int64,
    Int32,
    Double,
    Float,
    Bool,
}

impl Kind {
    fn of(physical: Type) -> Option<Kind> {
        Some(match physical {
            Type::BYTE_ARRAY => Kind::Text,
            Type::INT64 => Kind::Int64,
            Type::INT32 => Kind::Int32,
            Type::DOUBLE => Kind::Double,
            Type::FLOAT => Kind::Float,
            Type::BOOLEAN => Kind::Bool,
            _ => return None,
        })
    }
}

/// A fixed-width value type: its width in a `PLAIN` page and the vector it goes to.
trait Fixed: Sized + Copy {
    const WIDTH: usize;
    fn from_le(bytes: &[u8]) -> Self;
    fn out(col: &mut LeafColumn) -> &mut Vec<Self>;
}

macro_rules! fixed {
    ($t:ty, $width:literal, $field:ident) => {
        impl Fixed for $t {
            const WIDTH: usize = $width;
            #[inline]
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("a value's width"))
            }
            fn out(col: &mut LeafColumn) -> &mut Vec<Self> {
                &mut col.$field
            }
        }
    };
}
fixed!(i64, 8, ints);
fixed!(i32, 4, ints32);
fixed!(f64, 8, floats);
fixed!(f32, 4, floats32);

/// Where the next value of the open page is.
enum Cursor {
    /// `PLAIN` values from byte `pos` on.
    Plain { pos: usize },
    /// `PLAIN` booleans, one bit each, from bit `bit` on.
    Bits { bit: usize },
    /// Indices into the dictionary.
    Dict(Hybrid),
    /// `RLE` booleans.
    Bools(Hybrid),
}

/// The open data page of a [`LeafChunk`].
struct LeafPage {
    buf: Bytes,
    /// Levels not decoded yet.
    left: usize,
    reps: Option<Hybrid>,
    defs: Option<Hybrid>,
    values: Cursor,
    /// The page's index in the output's `bufs`, once a value of this fill points into it.
    out: Option<u32>,
}

/// Levels taken (and their values decoded) at a time.
const LEVEL_STEP: usize = 1 << 16;
/// Slots one fill may hold: 2,048 objects' versions of one property are far fewer; a page
/// whose runs claim more (a few bytes can) is refused rather than allocated.
const MAX_FILL_LEVELS: usize = 1 << 26;

/// A leaf column chunk of any nesting, read whole records at a time into a [`LeafColumn`].
///
/// What it reads: `BYTE_ARRAY`, `INT64`, `INT32`, `DOUBLE`, `FLOAT` and `BOOLEAN` leaves in
/// `PLAIN` or dictionary encoding (booleans also `RLE`), v1 and v2 data pages, `RLE` levels;
/// [`LeafChunk::handles`] says which chunks, the rest are left to the generic reader.
/// Records may span pages. Every level, index and length is checked as [`StrChunk`] checks
/// them: a corrupt page is an error, never a panic or a wrong row.
pub struct LeafChunk {
    pages: Box<dyn PageReader>,
    kind: Kind,
    max_def: i16,
    max_rep: i16,
    /// The dictionary page: text entries' spans, or fixed-width entries end to end.
    dict: Option<Dictionary>,
    /// The dictionary's index in the output's `bufs` for this fill.
    dict_out: Option<u32>,
    page: Option<LeafPage>,
    /// Whether a slot was taken (the chunk's first must start a record).
    started: bool,
    indices: Vec<u32>,
}

impl std::fmt::Debug for LeafChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafChunk")
            .field("kind", &self.kind)
            .field("max_def", &self.max_def)
            .field("max_rep", &self.max_rep)
            .finish_non_exhaustive()
    }
}

impl LeafChunk {
    /// Whether this reader reads `chunk`: a type it decodes, and encodings it knows
    /// (`BIT_PACKED`, deprecated, is accepted in the list only where the column lacks one of
    /// the two levels, for which some writers list it).
    #[allow(deprecated)] // BIT_PACKED: named only to accept it in the list
    pub fn handles(chunk: &ColumnChunkMetaData) -> bool {
        let d = chunk.column_descr();
        let one_level = d.max_rep_level() == 0 || d.max_def_level() == 0;
        Kind::of(d.physical_type()).is_some()
            && chunk.encodings().all(|e| match e {
                Encoding::PLAIN
                | Encoding::PLAIN_DICTIONARY
                | Encoding::RLE_DICTIONARY
                | Encoding::RLE => true,
                Encoding::BIT_PACKED => one_level,
                _ => false,
            })
    }

    /// A reader of the chunk `pages` reads, whose column is described by `descr`; `None`
    /// for a physical type it does not decode.
    pub fn new(pages: Box<dyn PageReader>, descr: &ColumnDescriptor) -> Option<LeafChunk> {
        Some(LeafChunk {
            pages,
            kind: Kind::of(descr.physical_type())?,
            max_def: descr.max_def_level(),
            max_rep: descr.max_rep_level(),
            dict: None,
            dict_out: None,
            page: None,
            started: false,
            indices: Vec::new(),
        })
    }

    /// Replaces `out` with the chunk's next `records` records (fewer only where the chunk
    /// ends); how many records it holds.
    ///
    /// Levels go straight from the pages' runs into `out`: a run of empty objects (one
    /// level each, most of a sparse dump's slots) costs a fill, not a loop.
    pub fn fill(&mut self, records: usize, out: &mut LeafColumn) -> Result<usize, String> {
        out.clear();
        self.dict_out = None;
        if let Some(page) = &mut self.page {
            page.out = None;
        }
        let (max_def, max_rep) = (self.max_def as u32, self.max_rep as u32);
        let mut need = records;
        loop {
            let Some(page) = self.page.as_mut().filter(|p| p.left > 0) else {
                if self.next_data_page()? {
                    continue;
                }
                break;
            };
            // Levels are taken a step at a time, each step's values decoded before the next:
            // a page claiming more levels than it holds fails early, not after a huge fill.
            let room = MAX_FILL_LEVELS - out.rep.len();
            if room == 0 {
                return Err(format!(
                    "more than {MAX_FILL_LEVELS} slots in {records} records: a record too large to read"
                ));
            }
            let limit = page.left.min(LEVEL_STEP).min(room);
            let before = out.rep.len();
            let taken = match &mut page.reps {
                Some(reps) => {
                    reps.take_records(&page.buf, &mut out.rep, &mut need, limit, max_rep)?
                }
                None => {
                    let k = need.min(limit);
                    need -= k;
                    out.rep.resize(before + k, 0);
                    k
                }
            };
            if taken == 0 {
                break;
            }
            if !self.started && out.rep[before] != 0 {
                return Err("a column chunk starts inside a record".into());
            }
            self.started = true;
            let present = match &mut page.defs {
                Some(defs) => defs.read_levels(&page.buf, &mut out.def, taken, max_def)?,
                None => {
                    out.def.resize(out.def.len() + taken, 0);
                    taken
                }
            };
            page.left -= taken;
            self.values(present, out)?;
            if need == 0 && taken < limit {
                // Stopped short of the limit: the next level starts a record not asked for.
                break;
            }
        }
        Ok(records - need)
    }

    /// Opens the next data page (reading a dictionary page on the way); false at the end.
    fn next_data_page(&mut self) -> Result<bool, String> {
        let kind = self.kind;
        let (dict, dict_out) = (&mut self.dict, &mut self.dict_out);
        let parts = next_page(&mut *self.pages, self.max_rep, self.max_def, |buf, n| {
            let entries = match kind {
                Kind::Text => text_dictionary(&buf, n)?,
                Kind::Bool => return Err("a dictionary page for booleans".into()),
                _ => Vec::new(),
            };
            *dict = Some((buf, entries));
            *dict_out = None;
            Ok(())
        })?;
        let Some(page) = parts else {
            self.page = None;
            return Ok(false);
        };
        let hybrid = |range: std::ops::Range<usize>, max: i16| {
            (max > 0).then(|| Hybrid::new(range, bit_width(max as u32)))
        };
        let values = match (page.encoding, self.kind) {
            (Encoding::PLAIN, Kind::Bool) => Cursor::Bits {
                bit: page.values * 8,
            },
            (Encoding::PLAIN, _) => Cursor::Plain { pos: page.values },
            (Encoding::RLE, Kind::Bool) => {
                // A 4-byte length, then width-1 runs.
                let start = page.values + 4;
                let len = page
                    .buf
                    .get(page.values..start)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                    .ok_or("a data page cut before its values")?;
                let end = start.saturating_add(len).min(page.buf.len());
                Cursor::Bools(Hybrid::new(start..end, 1))
            }
            (Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY, kind) if kind != Kind::Bool => {
                Cursor::Dict(dictionary_indices(&page.buf, page.values)?)
            }
            (other, _) => return Err(format!("a data page in {other}")),
        };
        self.page = Some(LeafPage {
            buf: page.buf,
            left: page.levels,
            reps: hybrid(page.reps, self.max_rep),
            defs: hybrid(page.defs, self.max_def),
            values,
            out: None,
        });
        Ok(true)
    }

    /// Decodes the open page's next `n` values into `out`.
    fn values(&mut self, n: usize, out: &mut LeafColumn) -> Result<(), String> {
        if n == 0 {
            return Ok(());
        }
        match self.kind {
            Kind::Text => self.texts(n, out),
            Kind::Int64 => self.fixed::<i64>(n, out),
            Kind::Int32 => self.fixed::<i32>(n, out),
            Kind::Double => self.fixed::<f64>(n, out),
            Kind::Float => self.fixed::<f32>(n, out),
            Kind::Bool => self.booleans(n, out),
        }
    }

    fn texts(&mut self, n: usize, out: &mut LeafColumn) -> Result<(), String> {
        let LeafChunk {
            page,
            dict,
            dict_out,
            indices,
            ..
        } = self;
        let page = page.as_mut().expect("values follow their levels' page");
        match &mut page.values {
            Cursor::Plain { pos } => {
                let at = *page.out.get_or_insert_with(|| {
                    out.bufs.push(page.buf.clone());
                    out.bufs.len() as u32 - 1
                });
                for _ in 0..n {
                    let (start, end) = plain_value(&page.buf, pos)?;
                    out.spans.push(Span {
                        buf: at,
                        start,
                        end,
                    });
                }
            }
            Cursor::Dict(ids) => {
                let (buf, entries) = dictionary_of(ids, &page.buf, dict, indices, n)?;
                let at = *dict_out.get_or_insert_with(|| {
                    out.bufs.push(buf.clone());
                    out.bufs.len() as u32 - 1
                });
                for &i in indices.iter() {
                    let &(start, end) = entries.get(i as usize).ok_or_else(|| {
                        format!(
                            "dictionary index {i} past the dictionary's {} entries",
                            entries.len()
                        )
                    })?;
                    out.spans.push(Span {
                        buf: at,
                        start,
                        end,
                    });
                }
            }
            Cursor::Bits { .. } | Cursor::Bools(_) => unreachable!("only booleans read bits"),
        }
        Ok(())
    }

    fn fixed<T: Fixed>(&mut self, n: usize, out: &mut LeafColumn) -> Result<(), String> {
        let LeafChunk {
            page,
            dict,
            indices,
            ..
        } = self;
        let page = page.as_mut().expect("values follow their levels' page");
        let w = T::WIDTH;
        match &mut page.values {
            Cursor::Plain { pos } => {
                let src = page
                    .buf
                    .get(*pos..)
                    .and_then(|rest| rest.get(..n * w))
                    .ok_or("a page cut inside its values")?;
                T::out(out).extend(src.chunks_exact(w).map(T::from_le));
                *pos += n * w;
            }
            Cursor::Dict(ids) => {
                let (dict, _) = dictionary_of(ids, &page.buf, dict, indices, n)?;
                let entries = dict.len() / w;
                let values = T::out(out);
                values.reserve(n);
                for &i in indices.iter() {
                    let i = i as usize;
                    if i >= entries {
                        return Err(format!(
                            "dictionary index {i} past the dictionary's {entries} entries"
                        ));
                    }
                    values.push(T::from_le(&dict[i * w..i * w + w]));
                }
            }
            Cursor::Bits { .. } | Cursor::Bools(_) => unreachable!("only booleans read bits"),
        }
        Ok(())
    }

    fn booleans(&mut self, n: usize, out: &mut LeafColumn) -> Result<(), String> {
        let page = self
            .page
            .as_mut()
            .expect("values follow their levels' page");
        match &mut page.values {
            Cursor::Bits { bit } => {
                if (*bit + n).div_ceil(8) > page.buf.len() {
                    return Err("a page cut inside its values".into());
                }
                out.bools
                    .extend((*bit..*bit + n).map(|b| page.buf[b / 8] >> (b % 8) & 1 == 1));
                *bit += n;
            }
            Cursor::Bools(runs) => {
                self.indices.clear();
                runs.read(&page.buf, &mut self.indices, n)?;
                out.bools.extend(self.indices.iter().map(|&v| v == 1));
            }
            Cursor::Plain { .. } | Cursor::Dict(_) => {
                unreachable!("booleans are bits or runs")
            }
        }
        Ok(())
    }
}

/// A dictionary-encoded page's next `n` indices, read into `indices`, and the dictionary
/// they index.
fn dictionary_of<'a>(
    ids: &mut Hybrid,
    page: &[u8],
    dict: &'a Option<Dictionary>,
    indices: &mut Vec<u32>,
    n: usize,
) -> Result<&'a Dictionary, String> {
    let dict = dict
        .as_ref()
        .ok_or("a dictionary-encoded page without a dictionary page")?;
    indices.clear();
    ids.read(page, indices, n)?;
    Ok(dict)
}

/// A `PLAIN` byte array at `*pos` (a 4-byte little-endian length, then the bytes): its span;
/// `*pos` moves past it.
#[inline]
fn plain_value(buf: &[u8], pos: &mut usize) -> Result<(u32, u32), String> {
    let cut = || "a page cut inside a value".to_string();
    let len = buf
        .get(*pos..*pos + 4)
        .ok_or_else(cut)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)?;
    let start = *pos + 4;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(cut)?;
    *pos = end;
    // A page is under 2 GiB (its header says so in an i32): spans fit in u32.
    Ok((start as u32, end as u32))
}

/// Bits needed to hold every value up to `max`.
fn bit_width(max: u32) -> u32 {
    32 - max.leading_zeros()
}

/// A decoder of Parquet's RLE / bit-packed hybrid encoding over `buf[range]`: runs of one
/// repeated value, and groups of 8 values of `width` bits packed end to end.
struct Hybrid {
    /// The next run's header.
    pos: usize,
    end: usize,
    width: u32,
    run: Run,
}

#[derive(Clone, Copy)]
enum Run {
    Repeat {
        value: u32,
        left: usize,
    },
    /// `bit`: where the next value starts, in bits from the buffer's start.
    Packed {
        bit: usize,
        left: usize,
    },
}

impl Hybrid {
    fn new(range: std::ops::Range<usize>, width: u32) -> Hybrid {
        Hybrid {
            pos: range.start,
            end: range.end,
            width,
            run: Run::Repeat { value: 0, left: 0 },
        }
    }

    /// Appends the next `n` values to `out`.
    fn read(&mut self, buf: &[u8], out: &mut Vec<u32>, mut n: usize) -> Result<(), String> {
        out.reserve(n);
        while n > 0 {
            match &mut self.run {
                Run::Repeat { left: 0, .. } | Run::Packed { left: 0, .. } => self.next_run(buf)?,
                Run::Repeat { value, left } => {
                    let k = n.min(*left);
                    out.extend(std::iter::repeat_n(*value, k));
                    *left -= k;
                    n -= k;
                }
                Run::Packed { bit, left } => {
                    let k = n.min(*left);
                    for _ in 0..k {
                        out.push(unpack(buf, *bit, self.width));
                        *bit += self.width as usize;
                    }
                    *left -= k;
                    n -= k;
                }
            }
        }
        Ok(())
    }

    /// Repetition levels of whole records: appends levels to `out` until `*need` records have
    /// started and the next level (a 0) would start another, or `limit` levels were taken;
    /// how many it took. Each 0 taken starts a record and counts off `*need`.
    fn take_records(
        &mut self,
        buf: &[u8],
        out: &mut Vec<i16>,
        need: &mut usize,
        limit: usize,
        max: u32,
    ) -> Result<usize, String> {
        let mut taken = 0;
        while taken < limit {
            match &mut self.run {
                Run::Repeat { left: 0, .. } | Run::Packed { left: 0, .. } => self.next_run(buf)?,
                Run::Repeat { value, left } => {
                    let v = level(*value, max)?;
                    let k = if v == 0 { (*left).min(*need) } else { *left };
                    let k = k.min(limit - taken);
                    if k == 0 {
                        break;
                    }
                    if v == 0 {
                        *need -= k;
                    }
                    out.extend(std::iter::repeat_n(v, k));
                    *left -= k;
                    taken += k;
                }
                Run::Packed { bit, left } => {
                    let n = (*left).min(limit - taken);
                    let mut k = 0;
                    while k < n {
                        let v = level(unpack(buf, *bit, self.width), max)?;
                        if v == 0 {
                            if *need == 0 {
                                break;
                            }
                            *need -= 1;
                        }
                        out.push(v);
                        *bit += self.width as usize;
                        k += 1;
                    }
                    *left -= k;
                    taken += k;
                    if k < n {
                        break;
                    }
                }
            }
        }
        Ok(taken)
    }

    /// Appends the next `n` levels to `out`, each checked against `max`; how many are `max`
    /// (a definition level's defined slots, which hold values).
    fn read_levels(
        &mut self,
        buf: &[u8],
        out: &mut Vec<i16>,
        mut n: usize,
        max: u32,
    ) -> Result<usize, String> {
        out.reserve(n);
        let mut at_max = 0;
        while n > 0 {
            match &mut self.run {
                Run::Repeat { left: 0, .. } | Run::Packed { left: 0, .. } => self.next_run(buf)?,
                Run::Repeat { value, left } => {
                    let v = level(*value, max)?;
                    let k = n.min(*left);
                    out.extend(std::iter::repeat_n(v, k));
                    if *value == max {
                        at_max += k;
                    }
                    *left -= k;
                    n -= k;
                }
                Run::Packed { bit, left } => {
                    let k = n.min(*left);
                    for _ in 0..k {
                        let v = unpack(buf, *bit, self.width);
                        out.push(level(v, max)?);
                        at_max += usize::from(v == max);
                        *bit += self.width as usize;
                    }
                    *left -= k;
                    n -= k;
                }
            }
        }
        Ok(at_max)
    }

    /// Reads the next run's header (and a repeated run's value).
    fn next_run(&mut self, buf: &[u8]) -> Result<(), String> {
        let cut = || "levels or dictionary indices end early".to_string();
        let mut header: u64 = 0;
        let mut shift = 0;
        loop {
            if self.pos >= self.end || shift > 35 {
                return Err(cut());
            }
            let b = buf[self.pos];
            self.pos += 1;
            header |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let count = (header >> 1) as usize;
        if header & 1 == 1 {
            // `count` groups of 8 values; the last group of a page may be cut short of its
            // padding, so only the values whose bits are all there count.
            let bytes = count * self.width as usize;
            let have = bytes.min(self.end - self.pos);
            let values = if self.width == 0 {
                count * 8
            } else {
                have * 8 / self.width as usize
            };
            self.run = Run::Packed {
                bit: self.pos * 8,
                left: values.min(count * 8),
            };
            self.pos += have;
        } else {
            let bytes = self.width.div_ceil(8) as usize;
            let raw = buf
                .get(self.pos..self.pos + bytes)
                .filter(|_| self.pos + bytes <= self.end);
            let raw = raw.ok_or_else(cut)?;
            let mut b = [0u8; 4];
            b[..bytes].copy_from_slice(raw);
            self.pos += bytes;
            let value = u32::from_le_bytes(b);
            if self.width < 32 && value >> self.width != 0 {
                return Err(format!(
                    "a run's value {value} is wider than its {} bits",
                    self.width
                ));
            }
            self.run = Run::Repeat { value, left: count };
        }
        Ok(())
    }
}

/// The `width`-bit value at bit `bit` of `buf` (bits past its end read as zeros).
#[inline]
fn unpack(buf: &[u8], bit: usize, width: u32) -> u32 {
    let byte = bit / 8;
    let word = match buf.get(byte..byte + 8) {
        Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
        None => {
            // Near the buffer's end: the bytes there are, zero-padded.
            let mut b = [0u8; 8];
            let tail = &buf[byte.min(buf.len())..];
            b[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(b)
        }
    };
    ((word >> (bit % 8)) & ((1u64 << width) - 1)) as u32
}

/// A level checked against the column's most.
#[inline]
fn level(value: u32, max: u32) -> Result<i16, String> {
    if value > max {
        return Err(format!(
            "a level of {value} where the column's most is {max}"
        ));
    }
    Ok(value as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A naive encoder of the hybrid format: `runs` of (repeat?, values).
    fn encode(width: u32, runs: &[(bool, Vec<u32>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let varint = |out: &mut Vec<u8>, mut v: u64| loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        for (repeat, values) in runs {
            if *repeat {
                varint(&mut out, (values.len() as u64) << 1);
                let bytes = width.div_ceil(8) as usize;
                out.extend_from_slice(&values[0].to_le_bytes()[..bytes]);
            } else {
                let groups = values.len().div_ceil(8);
                varint(&mut out, ((groups as u64) << 1) | 1);
                let mut bits = vec![false; groups * 8 * width as usize];
                for (i, v) in values.iter().enumerate() {
                    for b in 0..width as usize {
                        bits[i * width as usize + b] = (v >> b) & 1 == 1;
                    }
                }
                for chunk in bits.chunks(8) {
                    out.push(chunk.iter().rev().fold(0u8, |a, &b| (a << 1) | b as u8));
                }
            }
        }
        out
    }

    #[test]
    fn the_hybrid_decoder_reads_runs_of_every_width_against_a_naive_encoder() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for width in 0..=32u32 {
            let max = if width == 32 {
                u32::MAX as u64
            } else {
                (1u64 << width) - 1
            };
            let mut runs = Vec::new();
            let mut want = Vec::new();
            for _ in 0..20 {
                let len = 1 + (next() % 40) as usize;
                let repeat = next() % 2 == 0;
                let values: Vec<u32> = if repeat {
                    vec![(next() % (max + 1)) as u32; len]
                } else {
                    let groups = len.div_ceil(8) * 8;
                    (0..groups).map(|_| (next() % (max + 1)) as u32).collect()
                };
                want.extend_from_slice(&values);
                runs.push((repeat, values));
            }
            let buf = encode(width, &runs);
            let mut h = Hybrid::new(0..buf.len(), width);
            let mut got = Vec::new();
            // Read in uneven pieces, across runs.
            let mut left = want.len();
            while left > 0 {
                let k = left.min(1 + (next() % 13) as usize);
                h.read(&buf, &mut got, k).unwrap();
                left -= k;
            }
            assert_eq!(got, want, "width {width}");
            assert!(
                h.read(&buf, &mut got, 1).is_err(),
                "width {width}: past the end"
            );
        }
    }

    #[test]
    fn records_are_cut_where_the_naive_scan_cuts_them() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for case in 0..300 {
            let max = 1 + next(3) as u32;
            let width = bit_width(max);
            let mut runs = Vec::new();
            let mut levels = Vec::new();
            for _ in 0..1 + next(12) {
                let len = 1 + next(30) as usize;
                let repeat = next(2) == 0;
                let values: Vec<u32> = if repeat {
                    vec![next(u64::from(max) + 1) as u32; len]
                } else {
                    (0..len.div_ceil(8) * 8)
                        .map(|_| next(u64::from(max) + 1) as u32)
                        .collect()
                };
                levels.extend_from_slice(&values);
                runs.push((repeat, values));
            }
            let buf = encode(width, &runs);
            let mut h = Hybrid::new(0..buf.len(), width);
            let mut got = Vec::new();
            let mut at = 0;
            while at < levels.len() {
                let (want, limit) = (next(6) as usize, 1 + next(40) as usize);
                let limit = limit.min(levels.len() - at);
                // Naive: take levels while under the limit, stopping before a 0 once `want`
                // records have started.
                let (mut need, mut end) = (want, at);
                while end < at + limit {
                    if levels[end] == 0 {
                        if need == 0 {
                            break;
                        }
                        need -= 1;
                    }
                    end += 1;
                }
                let mut left = want;
                let taken = h
                    .take_records(&buf, &mut got, &mut left, limit, max)
                    .unwrap();
                assert_eq!((taken, left), (end - at, need), "case {case} at {at}");
                at = end;
                if taken == 0 {
                    // Nothing wanted at a record start: take one record to move on.
                    let mut one = 1;
                    at += h.take_records(&buf, &mut got, &mut one, 1, max).unwrap();
                }
            }
            let want: Vec<i16> = levels.iter().map(|&l| l as i16).collect();
            assert_eq!(got, want, "case {case}");
            // The same data as definition levels: every level, and how many are the most.
            let mut h = Hybrid::new(0..buf.len(), width);
            let mut defs = Vec::new();
            let at_max = h.read_levels(&buf, &mut defs, levels.len(), max).unwrap();
            assert_eq!(defs, want);
            assert_eq!(at_max, levels.iter().filter(|&&l| l == max).count());
            // A level past the column's most is an error.
            if let Some(&top) = levels.iter().max().filter(|&&t| t > 0) {
                let mut h = Hybrid::new(0..buf.len(), width);
                let e = h.read_levels(&buf, &mut Vec::new(), levels.len(), top - 1);
                assert!(e.is_err(), "case {case}");
            }
        }
    }

    #[test]
    fn cut_hybrid_data_is_an_error_not_a_panic() {
        let buf = encode(7, &[(false, (0..64).collect()), (true, vec![5; 10])]);
        for cut in 0..buf.len() {
            let mut h = Hybrid::new(0..cut, 7);
            let mut out = Vec::new();
            // Whatever the cut, reading all 74 values fails, and never panics.
            assert!(h.read(&buf[..cut], &mut out, 74).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn plain_values_are_bounds_checked() {
        let mut buf = 3u32.to_le_bytes().to_vec();
        buf.extend_from_slice(b"abc");
        let mut pos = 0;
        assert_eq!(plain_value(&buf, &mut pos), Ok((4, 7)));
        assert!(plain_value(&buf, &mut pos).is_err());
        let mut pos = 0;
        assert!(plain_value(&buf[..6], &mut pos).is_err());
        let huge = u32::MAX.to_le_bytes();
        assert!(plain_value(&huge, &mut 0).is_err());
    }
}
