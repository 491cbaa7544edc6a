//! String columns of a Parquet column chunk decoded page by page straight into a
//! [`StrColumn`]'s byte arena.
//!
//! Takes a column chunk's pages (decompressed by the parquet crate's page reader); gives its
//! rows, a batch at a time. The parquet crate's value reader hands out one refcounted `Bytes`
//! per value (a clone of a dictionary entry's, for dictionary pages): cloning, copying and
//! dropping those was a tenth of a merge's CPU. Here a batch's values are located as spans
//! (into the dictionary page or the data page) and copied into the arena in one pass.
//!
//! What it reads: `PLAIN` and dictionary (`PLAIN_DICTIONARY`, `RLE_DICTIONARY`) values, in v1
//! and v2 data pages, with `RLE` definition levels; a column without repetition. Every other
//! encoding is left to the generic reader ([`StrChunk::handles`] says which chunks this one
//! takes). Every length, level and index read from a page is checked: a cut or corrupted
//! page is an error (a sentence, which the caller places with the file, row group and
//! column), never a panic or a wrong row.

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::ColumnChunkMetaData;

use crate::batch::StrColumn;

/// One string column chunk, read page by page.
pub struct StrChunk {
    pages: Box<dyn PageReader>,
    /// The column's maximum definition level (0: required, no levels in the pages).
    max_def: i16,
    /// The dictionary page and each entry's span in it.
    dict: Option<(Bytes, Vec<(u32, u32)>)>,
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
        loop {
            let page = match self.pages.get_next_page() {
                Ok(Some(page)) => page,
                Ok(None) => {
                    self.page = None;
                    return Ok(false);
                }
                Err(e) => return Err(e.to_string()),
            };
            let (buf, num_values, encoding, levels) = match page {
                Page::DictionaryPage {
                    buf,
                    num_values,
                    encoding,
                    ..
                } => {
                    if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                        return Err(format!("a dictionary page in {encoding}"));
                    }
                    let mut entries = Vec::with_capacity((num_values as usize).min(buf.len()));
                    let mut pos = 0;
                    for _ in 0..num_values {
                        entries.push(plain_value(&buf, &mut pos)?);
                    }
                    self.dict = Some((buf, entries));
                    continue;
                }
                Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    def_level_encoding,
                    ..
                } => {
                    let levels = if self.max_def == 0 {
                        0..0
                    } else if def_level_encoding != Encoding::RLE {
                        return Err(format!("definition levels in {def_level_encoding}"));
                    } else {
                        let len = buf
                            .get(..4)
                            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                            .filter(|&len| len <= buf.len() - 4)
                            .ok_or("a data page cut in its definition levels")?;
                        4..4 + len
                    };
                    (buf, num_values, encoding, levels)
                }
                Page::DataPageV2 {
                    buf,
                    num_values,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                } => {
                    let start = rep_levels_byte_len as usize;
                    let end = start + def_levels_byte_len as usize;
                    if end > buf.len() {
                        return Err("a data page cut in its levels".into());
                    }
                    (buf, num_values, encoding, start..end)
                }
            };
            let defs = (self.max_def > 0)
                .then(|| Hybrid::new(levels.clone(), bit_width(self.max_def as u32)));
            let start = levels.end;
            let values = match encoding {
                Encoding::PLAIN => Values::Plain { pos: start },
                Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY => {
                    // A page of nulls only may end before the width byte: no index is read.
                    let width = buf.get(start).copied().unwrap_or(0) as u32;
                    if width > 32 {
                        return Err(format!("dictionary indices {width} bits wide"));
                    }
                    Values::Dict(Hybrid::new((start + 1).min(buf.len())..buf.len(), width))
                }
                other => return Err(format!("a data page in {other}")),
            };
            self.page = Some(DataPage {
                buf,
                left: num_values as usize,
                defs,
                values,
            });
            return Ok(true);
        }
    }
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
                    let (width, mask) = (self.width as usize, (1u64 << self.width) - 1);
                    for _ in 0..k {
                        let byte = *bit / 8;
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
                        out.push(((word >> (*bit % 8)) & mask) as u32);
                        *bit += width;
                    }
                    *left -= k;
                    n -= k;
                }
            }
        }
        Ok(())
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
            self.run = Run::Repeat {
                value: u32::from_le_bytes(b),
                left: count,
            };
        }
        Ok(())
    }
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
