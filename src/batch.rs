//! Columnar rows in flight: what mappers produce, channels carry and reducers buffer.
//!
//! A [`Rows`] holds version rows as parallel columns (the DESIGN §4 output columns plus the
//! interned property id). Strings live in one byte arena per column ([`StrColumn`]), so
//! appending a row never allocates once the buffers have grown, and a batch is a handful of
//! `Vec`s however many rows it holds.
//!
//! Invariant: every column of a `Rows` has the same length.

/// A nullable string column: values end to end in `data`, `ends[i]` the end of row `i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StrColumn {
    ends: Vec<u32>,
    data: Vec<u8>,
    valid: Vec<bool>,
}

impl StrColumn {
    #[inline]
    pub fn push(&mut self, value: Option<&[u8]>) {
        match value {
            Some(v) => {
                self.data.extend_from_slice(v);
                self.valid.push(true);
            }
            None => self.valid.push(false),
        }
        self.ends.push(self.end());
    }

    /// Appends the bytes of an unfinished value; [`StrColumn::finish`] closes it. Lets a parser
    /// write a value in pieces (unescaped JSON, a number's digits) without a temporary.
    #[inline]
    pub fn extend_open(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// Appends a formatted value (a number's digits) without a temporary string.
    pub fn push_fmt(&mut self, args: std::fmt::Arguments<'_>) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = self.data.write_fmt(args);
        self.finish();
    }

    /// Closes the value begun by [`StrColumn::extend_open`] (possibly empty).
    #[inline]
    pub fn finish(&mut self) {
        self.valid.push(true);
        self.ends.push(self.end());
    }

    #[inline]
    fn end(&self) -> u32 {
        u32::try_from(self.data.len()).expect("a batch holds under 4 GiB of one string column")
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if !self.valid[i] {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.data[start..self.ends[i] as usize])
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of string data held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Drops rows from `len` on (and any unfinished value).
    pub fn truncate(&mut self, len: usize) {
        self.ends.truncate(len);
        self.valid.truncate(len);
        let end = if len == 0 {
            0
        } else {
            self.ends[len - 1] as usize
        };
        self.data.truncate(end);
    }

    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// The whole arena, for writers that slice values out of one shared buffer.
    pub fn into_parts(self) -> (Vec<u32>, Vec<u8>, Vec<bool>) {
        (self.ends, self.data, self.valid)
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.ends.capacity() * 4 + self.data.capacity() + self.valid.capacity()
    }

    /// Appends rows `idx` of `src`, column-wise (one pass per buffer, no per-row dispatch).
    pub fn append_indices(&mut self, src: &StrColumn, idx: &[u32]) {
        let bytes: usize = idx.iter().map(|&i| src.span(i as usize).len()).sum();
        self.data.reserve(bytes);
        self.ends.reserve(idx.len());
        for &i in idx {
            let span = src.span(i as usize);
            self.data.extend_from_slice(&src.data[span]);
            self.ends.push(self.end());
        }
        self.valid
            .extend(idx.iter().map(|&i| src.valid[i as usize]));
    }

    #[inline]
    fn span(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }
}

/// One version row, borrowed: what a mapper hands to a [`Rows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    pub property: u32,
    pub object_id: i64,
    pub timestamp: i64,
    pub value: Option<&'a [u8]>,
    pub source_type: Option<&'a [u8]>,
    pub source_id: Option<&'a [u8]>,
    pub source_label: Option<&'a [u8]>,
    pub updated_by_user_id: Option<i64>,
}

/// Version rows, columnar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    pub property: Vec<u32>,
    pub object_id: Vec<i64>,
    pub timestamp: Vec<i64>,
    pub value: StrColumn,
    pub source_type: StrColumn,
    pub source_id: StrColumn,
    pub source_label: StrColumn,
    pub updated_by: Vec<i64>,
    pub updated_by_valid: Vec<bool>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.object_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.object_id.is_empty()
    }

    #[inline]
    pub fn push(&mut self, row: &Row<'_>) {
        self.property.push(row.property);
        self.object_id.push(row.object_id);
        self.timestamp.push(row.timestamp);
        self.value.push(row.value);
        self.source_type.push(row.source_type);
        self.source_id.push(row.source_id);
        self.source_label.push(row.source_label);
        self.updated_by.push(row.updated_by_user_id.unwrap_or(0));
        self.updated_by_valid.push(row.updated_by_user_id.is_some());
    }

    #[inline]
    pub fn row(&self, i: usize) -> Row<'_> {
        Row {
            property: self.property[i],
            object_id: self.object_id[i],
            timestamp: self.timestamp[i],
            value: self.value.get(i),
            source_type: self.source_type.get(i),
            source_id: self.source_id.get(i),
            source_label: self.source_label.get(i),
            updated_by_user_id: self.updated_by_valid[i].then_some(self.updated_by[i]),
        }
    }

    /// Appends row `i` of `other`.
    #[inline]
    pub fn push_from(&mut self, other: &Rows, i: usize) {
        self.push(&other.row(i));
    }

    /// Appends rows `idx` of `src` column by column: the way to move many rows at once (a
    /// batch's rows for one destination), with tight loops instead of a dispatch per row.
    pub fn append_indices(&mut self, src: &Rows, idx: &[u32]) {
        let gather =
            |to: &mut Vec<i64>, from: &[i64]| to.extend(idx.iter().map(|&i| from[i as usize]));
        self.property
            .extend(idx.iter().map(|&i| src.property[i as usize]));
        gather(&mut self.object_id, &src.object_id);
        gather(&mut self.timestamp, &src.timestamp);
        gather(&mut self.updated_by, &src.updated_by);
        self.updated_by_valid
            .extend(idx.iter().map(|&i| src.updated_by_valid[i as usize]));
        self.value.append_indices(&src.value, idx);
        self.source_type.append_indices(&src.source_type, idx);
        self.source_id.append_indices(&src.source_id, idx);
        self.source_label.append_indices(&src.source_label, idx);
    }

    pub fn truncate(&mut self, len: usize) {
        self.property.truncate(len);
        self.object_id.truncate(len);
        self.timestamp.truncate(len);
        self.value.truncate(len);
        self.source_type.truncate(len);
        self.source_id.truncate(len);
        self.source_label.truncate(len);
        self.updated_by.truncate(len);
        self.updated_by_valid.truncate(len);
    }

    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Bytes of string data held (the part of a batch that varies with the input).
    pub fn data_bytes(&self) -> usize {
        self.value.data_len()
            + self.source_type.data_len()
            + self.source_id.data_len()
            + self.source_label.data_len()
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.property.capacity() * 4
            + (self.object_id.capacity() + self.timestamp.capacity() + self.updated_by.capacity())
                * 8
            + self.updated_by_valid.capacity()
            + self.value.heap_bytes()
            + self.source_type.heap_bytes()
            + self.source_id.heap_bytes()
            + self.source_label.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_keep_null_and_empty_apart() {
        let mut c = StrColumn::default();
        c.push(Some(b"abc"));
        c.push(None);
        c.push(Some(b""));
        c.extend_open(b"de");
        c.extend_open(b"f");
        c.finish();
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(0), Some(&b"abc"[..]));
        assert_eq!(c.get(1), None);
        assert_eq!(c.get(2), Some(&b""[..]));
        assert_eq!(c.get(3), Some(&b"def"[..]));
        c.truncate(2);
        assert_eq!(c.data_len(), 3);
        c.extend_open(b"zz");
        c.truncate(2); // drops the unfinished value too
        c.push(Some(b"x"));
        assert_eq!(c.get(2), Some(&b"x"[..]));
    }

    #[test]
    fn appending_by_indices_equals_pushing_row_by_row() {
        let mut src = Rows::default();
        for i in 0..10i64 {
            src.push(&Row {
                property: (i % 3) as u32,
                object_id: i,
                timestamp: -i,
                value: (i % 4 != 0).then_some(&b"abc"[..(i % 4) as usize]),
                source_type: (i % 2 == 0).then_some(b"T"),
                source_id: None,
                source_label: Some(b""),
                updated_by_user_id: (i % 5 == 0).then_some(i),
            });
        }
        let idx = [9u32, 0, 4, 4, 7];
        let (mut bulk, mut single) = (Rows::default(), Rows::default());
        bulk.append_indices(&src, &idx);
        for &i in &idx {
            single.push_from(&src, i as usize);
        }
        assert_eq!(bulk, single);
    }

    #[test]
    fn rows_round_trip() {
        let row = Row {
            property: 7,
            object_id: 3_000_000_001,
            timestamp: -5,
            value: Some(b"v"),
            source_type: None,
            source_id: Some(b""),
            source_label: None,
            updated_by_user_id: Some(42),
        };
        let mut rows = Rows::default();
        rows.push(&row);
        rows.push(&Row {
            updated_by_user_id: None,
            ..row
        });
        assert_eq!(rows.row(0), row);
        assert_eq!(rows.row(1).updated_by_user_id, None);
        let mut other = Rows::default();
        other.push_from(&rows, 1);
        assert_eq!(other.row(0), rows.row(1));
        rows.truncate(1);
        assert_eq!(rows.len(), 1);
    }
}
