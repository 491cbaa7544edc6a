//! Columnar rows in flight: what mappers produce, channels carry and reducers buffer.
//!
//! [`Columns`] holds version rows as parallel columns (the output schema's columns);
//! [`Rows`] adds the interned property id of each row, for batches that mix properties
//! (a reducer files rows per property and keeps only the `Columns`). Strings live in one byte
//! arena per column ([`StrColumn`]), so appending a row never allocates once the buffers have
//! grown, and a batch is a handful of `Vec`s however many rows it holds.
//!
//! Nulls cost nothing until they are mixed with values: a column that is all null so far
//! stores only its length, and one with no null so far stores no validity. Whole columns are
//! often null (Parquet dumps without sources, webhooks without a user), and a reducer holds
//! every row of a night, so this is most of what a row costs in memory.
//!
//! Invariant: every column of a `Columns` (and a `Rows`' `property`) has the same length.

/// A nullable string column: values end to end in `data`, `ends[i]` the end of row `i`.
///
/// Three states, by what has been pushed: all null (`ends` and `valid` empty, `len` counts
/// the nulls), no null (`ends` has `len` entries, `valid` empty), mixed (both have `len`).
#[derive(Clone, Debug, Default)]
pub struct StrColumn {
    len: usize,
    ends: Vec<u32>,
    data: Vec<u8>,
    valid: Vec<bool>,
}

impl PartialEq for StrColumn {
    /// Equal values, whatever the representation.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && (0..self.len).all(|i| self.get(i) == other.get(i))
    }
}

impl Eq for StrColumn {}

impl StrColumn {
    #[inline]
    pub fn push(&mut self, value: Option<&[u8]>) {
        match value {
            Some(v) => {
                self.data.extend_from_slice(v);
                self.finish();
            }
            None => self.push_nulls(1),
        }
    }

    /// Appends `n` nulls.
    #[inline]
    pub fn push_nulls(&mut self, n: usize) {
        if !self.ends.is_empty() {
            self.materialize_valid();
            self.valid.resize(self.len + n, false);
            let end = self.end();
            self.ends.resize(self.len + n, end);
        }
        self.len += n;
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
        self.materialize_ends();
        if !self.valid.is_empty() {
            self.valid.push(true);
        }
        self.ends.push(self.end());
        self.len += 1;
    }

    /// Leaves the all-null state: the nulls so far get (empty) spans and a validity.
    #[inline]
    fn materialize_ends(&mut self) {
        if self.ends.len() != self.len {
            // All null so far, so `data` holds at most the open value: the nulls end at 0.
            self.ends.resize(self.len, 0);
            self.valid.resize(self.len, false);
        }
    }

    /// Leaves the no-null state (call only once `ends` is materialized).
    #[inline]
    fn materialize_valid(&mut self) {
        if self.valid.len() != self.len {
            self.valid.resize(self.len, true);
        }
    }

    #[inline]
    fn end(&self) -> u32 {
        u32::try_from(self.data.len()).expect("a batch holds under 4 GiB of one string column")
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        debug_assert!(i < self.len);
        if self.ends.is_empty() || self.valid.get(i) == Some(&false) {
            return None;
        }
        Some(&self.data[self.span(i)])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every value is null.
    pub fn all_null(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of string data held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Drops rows from `len` on (and any unfinished value).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        let len = self.len;
        self.ends.truncate(len);
        self.valid.truncate(len);
        let end = self.ends.last().map_or(0, |&e| e as usize);
        self.data.truncate(end);
    }

    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.ends.capacity() * 4 + self.data.capacity() + self.valid.capacity()
    }

    /// Appends rows `idx` of `src`, column-wise (one pass per buffer, no per-row dispatch).
    pub fn append_indices(&mut self, src: &StrColumn, idx: &[u32]) {
        if src.all_null() {
            self.push_nulls(idx.len());
            return;
        }
        self.materialize_ends();
        self.ends.reserve(idx.len());
        // A record's versions of one property are neighbours in a batch, and their values
        // neighbours in its arena: each run of consecutive rows is one copy, not a copy per
        // value (most values are a few bytes, where the call costs more than the bytes).
        let mut k = 0;
        while k < idx.len() {
            let first = idx[k] as usize;
            let mut last = first;
            k += 1;
            while k < idx.len() && idx[k] as usize == last + 1 {
                last += 1;
                k += 1;
            }
            let from = src.span(first).start;
            let base = self.data.len();
            self.data
                .extend_from_slice(&src.data[from..src.ends[last] as usize]);
            self.ends.extend(src.ends[first..=last].iter().map(|&e| {
                u32::try_from(base + (e as usize - from))
                    .expect("a batch holds under 4 GiB of one string column")
            }));
        }
        let nulls = !src.valid.is_empty() && idx.iter().any(|&i| !src.valid[i as usize]);
        if nulls {
            self.materialize_valid();
            self.valid
                .extend(idx.iter().map(|&i| src.valid[i as usize]));
        } else if !self.valid.is_empty() {
            self.valid.resize(self.len + idx.len(), true);
        }
        self.len += idx.len();
    }

    /// Appends `rows` rows: where `valid` is empty every row holds a value, else row `i` is
    /// null unless `valid[i]`; the values are `src[start..end]` for `spans`, one per value,
    /// in order. A decoder's batch goes into the arena in one pass, with no per-value call.
    pub fn extend_from_spans(
        &mut self,
        src: &[u8],
        spans: &[(u32, u32)],
        valid: &[bool],
        rows: usize,
    ) {
        debug_assert!(valid.is_empty() || valid.len() == rows);
        debug_assert_eq!(
            spans.len(),
            if valid.is_empty() {
                rows
            } else {
                valid.iter().filter(|&&v| v).count()
            }
        );
        if spans.is_empty() {
            self.push_nulls(rows);
            return;
        }
        self.materialize_ends();
        let bytes: usize = spans.iter().map(|&(s, e)| (e - s) as usize).sum();
        self.data.reserve(bytes);
        self.ends.reserve(rows);
        if spans.len() < rows {
            self.materialize_valid();
            self.valid.extend_from_slice(valid);
            let mut next = spans.iter();
            for &v in valid {
                if v {
                    let &(s, e) = next.next().expect("one span per value");
                    self.data.extend_from_slice(&src[s as usize..e as usize]);
                }
                self.ends.push(self.end());
            }
        } else {
            if !self.valid.is_empty() {
                self.valid.resize(self.len + rows, true);
            }
            for &(s, e) in spans {
                self.data.extend_from_slice(&src[s as usize..e as usize]);
                self.ends.push(self.end());
            }
        }
        self.len += rows;
    }

    #[inline]
    fn span(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }
}

/// A nullable `i64` column, with the same lazy states as [`StrColumn`]: all null (`values`
/// and `valid` empty), no null (`valid` empty), mixed.
#[derive(Clone, Debug, Default)]
pub struct IntColumn {
    len: usize,
    values: Vec<i64>,
    valid: Vec<bool>,
}

impl PartialEq for IntColumn {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && (0..self.len).all(|i| self.get(i) == other.get(i))
    }
}

impl Eq for IntColumn {}

impl IntColumn {
    #[inline]
    pub fn push(&mut self, value: Option<i64>) {
        match value {
            Some(v) => {
                self.materialize_values();
                if !self.valid.is_empty() {
                    self.valid.push(true);
                }
                self.values.push(v);
            }
            None => self.push_nulls(1),
        }
        self.len += 1;
    }

    /// Appends `n` nulls, except to `len` (the caller counts them).
    #[inline]
    fn push_nulls(&mut self, n: usize) {
        if !self.values.is_empty() {
            self.materialize_valid();
            self.valid.resize(self.len + n, false);
            self.values.resize(self.len + n, 0);
        }
    }

    /// Overwrites row `i`.
    #[inline]
    pub fn set(&mut self, i: usize, value: Option<i64>) {
        debug_assert!(i < self.len);
        match value {
            Some(v) => {
                self.materialize_values();
                self.values[i] = v;
                if !self.valid.is_empty() {
                    self.valid[i] = true;
                }
            }
            None if self.values.is_empty() => {}
            None => {
                self.materialize_valid();
                self.valid[i] = false;
            }
        }
    }

    #[inline]
    fn materialize_values(&mut self) {
        if self.values.len() != self.len {
            self.values.resize(self.len, 0);
            self.valid.resize(self.len, false);
        }
    }

    #[inline]
    fn materialize_valid(&mut self) {
        if self.valid.len() != self.len {
            self.valid.resize(self.len, true);
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<i64> {
        debug_assert!(i < self.len);
        if self.values.is_empty() || self.valid.get(i) == Some(&false) {
            return None;
        }
        Some(self.values[i])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        self.values.truncate(self.len);
        self.valid.truncate(self.len);
    }

    pub fn heap_bytes(&self) -> usize {
        self.values.capacity() * 8 + self.valid.capacity()
    }

    pub fn append_indices(&mut self, src: &IntColumn, idx: &[u32]) {
        if src.values.is_empty() {
            self.push_nulls(idx.len());
        } else {
            self.materialize_values();
            self.values
                .extend(idx.iter().map(|&i| src.values[i as usize]));
            let nulls = !src.valid.is_empty() && idx.iter().any(|&i| !src.valid[i as usize]);
            if nulls {
                self.materialize_valid();
                self.valid
                    .extend(idx.iter().map(|&i| src.valid[i as usize]));
            } else if !self.valid.is_empty() {
                self.valid.resize(self.len + idx.len(), true);
            }
        }
        self.len += idx.len();
    }
}

/// One version row, borrowed: the output columns of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    pub object_id: i64,
    pub timestamp: i64,
    pub value: Option<&'a [u8]>,
    pub source_type: Option<&'a [u8]>,
    pub source_id: Option<&'a [u8]>,
    pub source_label: Option<&'a [u8]>,
    pub updated_by_user_id: Option<i64>,
}

/// Version rows of one property (or of rows whose property is kept elsewhere), columnar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    pub object_id: Vec<i64>,
    pub timestamp: Vec<i64>,
    pub value: StrColumn,
    pub source_type: StrColumn,
    pub source_id: StrColumn,
    pub source_label: StrColumn,
    pub updated_by: IntColumn,
}

impl Columns {
    pub fn len(&self) -> usize {
        self.object_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.object_id.is_empty()
    }

    #[inline]
    pub fn push(&mut self, row: &Row<'_>) {
        self.object_id.push(row.object_id);
        self.timestamp.push(row.timestamp);
        self.value.push(row.value);
        self.source_type.push(row.source_type);
        self.source_id.push(row.source_id);
        self.source_label.push(row.source_label);
        self.updated_by.push(row.updated_by_user_id);
    }

    #[inline]
    pub fn row(&self, i: usize) -> Row<'_> {
        Row {
            object_id: self.object_id[i],
            timestamp: self.timestamp[i],
            value: self.value.get(i),
            source_type: self.source_type.get(i),
            source_id: self.source_id.get(i),
            source_label: self.source_label.get(i),
            updated_by_user_id: self.updated_by.get(i),
        }
    }

    /// Appends rows `idx` of `src` column by column: the way to move many rows at once (a
    /// batch's rows for one destination), with tight loops instead of a dispatch per row.
    pub fn append_indices(&mut self, src: &Columns, idx: &[u32]) {
        let gather =
            |to: &mut Vec<i64>, from: &[i64]| to.extend(idx.iter().map(|&i| from[i as usize]));
        gather(&mut self.object_id, &src.object_id);
        gather(&mut self.timestamp, &src.timestamp);
        self.updated_by.append_indices(&src.updated_by, idx);
        self.value.append_indices(&src.value, idx);
        self.source_type.append_indices(&src.source_type, idx);
        self.source_id.append_indices(&src.source_id, idx);
        self.source_label.append_indices(&src.source_label, idx);
    }

    pub fn truncate(&mut self, len: usize) {
        self.object_id.truncate(len);
        self.timestamp.truncate(len);
        self.value.truncate(len);
        self.source_type.truncate(len);
        self.source_id.truncate(len);
        self.source_label.truncate(len);
        self.updated_by.truncate(len);
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
        (self.object_id.capacity() + self.timestamp.capacity()) * 8
            + self.updated_by.heap_bytes()
            + self.value.heap_bytes()
            + self.source_type.heap_bytes()
            + self.source_id.heap_bytes()
            + self.source_label.heap_bytes()
    }
}

/// Version rows of any mix of properties: each row's property id beside its columns.
/// Dereferences to the [`Columns`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    pub property: Vec<u32>,
    pub cols: Columns,
    /// For an upsert: the `(property, object)` pairs whose whole history these rows carry
    /// (the stored history of each is replaced). Empty otherwise.
    pub histories: Vec<(u32, i64)>,
}

impl std::ops::Deref for Rows {
    type Target = Columns;

    fn deref(&self) -> &Columns {
        &self.cols
    }
}

impl std::ops::DerefMut for Rows {
    fn deref_mut(&mut self) -> &mut Columns {
        &mut self.cols
    }
}

impl Rows {
    #[inline]
    pub fn push(&mut self, property: u32, row: &Row<'_>) {
        self.property.push(property);
        self.cols.push(row);
    }

    /// Appends row `i` of `other`.
    #[inline]
    pub fn push_from(&mut self, other: &Rows, i: usize) {
        self.push(other.property[i], &other.row(i));
    }

    /// Appends rows `idx` of `src` (see [`Columns::append_indices`]).
    pub fn append_indices(&mut self, src: &Rows, idx: &[u32]) {
        self.property
            .extend(idx.iter().map(|&i| src.property[i as usize]));
        self.cols.append_indices(&src.cols, idx);
    }

    pub fn truncate(&mut self, len: usize) {
        self.property.truncate(len);
        self.cols.truncate(len);
    }

    pub fn clear(&mut self) {
        self.truncate(0);
        self.histories.clear();
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.property.capacity() * 4 + self.cols.heap_bytes() + self.histories.capacity() * 16
    }
}

// ---------------------------------------------------------------------------------------
// Block codec: a `Columns` as raw little-endian arrays, for spill files. Columns are written
// whole (a memcpy-like loop each) and read back whole, so spilling costs a few passes over
// memory rather than a dispatch per row and field.
//
//   u32 rows | object_id i64 × rows | timestamp i64 × rows | updated_by | 4 × string column
//   updated_by:    state u8 (0 all null, 1 no null, 2 mixed) | values i64 × rows if state > 0
//                  | validity u8 × rows if state 2
//   string column: state u8 | ends u32 × rows if state > 0 | data (its length is the last end)
//                  | validity u8 × rows if state 2
// ---------------------------------------------------------------------------------------

/// A spill block that does not decode (a truncated or corrupt spill file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadBlock;

fn put_i64s(out: &mut Vec<u8>, values: &[i64]) {
    out.reserve(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_flags(out: &mut Vec<u8>, flags: &[bool]) {
    out.extend(flags.iter().map(|&b| u8::from(b)));
}

/// A lazy column's state in a block: 0 all null, 1 no null, 2 mixed.
fn lazy_state(no_values: bool, no_validity: bool) -> u8 {
    match (no_values, no_validity) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    }
}

/// Reads a block front to back.
struct Take<'a>(&'a [u8]);

impl<'a> Take<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], BadBlock> {
        if n > self.0.len() {
            return Err(BadBlock);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// A column's [`lazy_state`].
    fn state(&mut self) -> Result<u8, BadBlock> {
        match self.bytes(1)?[0] {
            state @ 0..=2 => Ok(state),
            _ => Err(BadBlock),
        }
    }

    fn u32(&mut self) -> Result<u32, BadBlock> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64s(&mut self, n: usize, to: &mut Vec<i64>) -> Result<(), BadBlock> {
        let b = self.bytes(n.checked_mul(8).ok_or(BadBlock)?)?;
        to.extend(
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("chunks_exact gives 8 bytes"))),
        );
        Ok(())
    }

    fn flags(&mut self, n: usize, to: &mut Vec<bool>) -> Result<(), BadBlock> {
        let b = self.bytes(n)?;
        if b.iter().any(|&f| f > 1) {
            return Err(BadBlock);
        }
        to.extend(b.iter().map(|&f| f == 1));
        Ok(())
    }
}

impl StrColumn {
    fn encode(&self, out: &mut Vec<u8>) {
        let state = lazy_state(self.ends.is_empty(), self.valid.is_empty());
        out.push(state);
        if state > 0 {
            out.reserve(self.ends.len() * 4 + self.data.len());
            for e in &self.ends {
                out.extend_from_slice(&e.to_le_bytes());
            }
            out.extend_from_slice(&self.data);
        }
        if state == 2 {
            put_flags(out, &self.valid);
        }
    }

    /// Replaces the contents with `rows` rows decoded from `input`.
    fn decode(&mut self, rows: usize, input: &mut Take<'_>) -> Result<(), BadBlock> {
        self.ends.clear();
        self.data.clear();
        self.valid.clear();
        self.len = rows;
        let state = input.state()?;
        if state > 0 {
            let ends = input.bytes(rows.checked_mul(4).ok_or(BadBlock)?)?;
            self.ends.extend(
                ends.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            // Ends must rise (or stay) so that every span is a valid slice of `data`.
            if self.ends.windows(2).any(|w| w[0] > w[1]) {
                return Err(BadBlock);
            }
            let len = self.ends.last().map_or(0, |&e| e as usize);
            self.data.extend_from_slice(input.bytes(len)?);
        }
        if state == 2 {
            input.flags(rows, &mut self.valid)?;
        }
        Ok(())
    }
}

impl IntColumn {
    fn encode(&self, out: &mut Vec<u8>) {
        let state = lazy_state(self.values.is_empty(), self.valid.is_empty());
        out.push(state);
        if state > 0 {
            put_i64s(out, &self.values);
        }
        if state == 2 {
            put_flags(out, &self.valid);
        }
    }

    fn decode(&mut self, rows: usize, input: &mut Take<'_>) -> Result<(), BadBlock> {
        self.values.clear();
        self.valid.clear();
        self.len = rows;
        let state = input.state()?;
        if state > 0 {
            input.i64s(rows, &mut self.values)?;
        }
        if state == 2 {
            input.flags(rows, &mut self.valid)?;
        }
        Ok(())
    }
}

impl Columns {
    /// Appends the block encoding of every row to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let rows = u32::try_from(self.len()).expect("a spill block holds under 4 G rows");
        out.extend_from_slice(&rows.to_le_bytes());
        put_i64s(out, &self.object_id);
        put_i64s(out, &self.timestamp);
        self.updated_by.encode(out);
        for c in [
            &self.value,
            &self.source_type,
            &self.source_id,
            &self.source_label,
        ] {
            c.encode(out);
        }
    }

    /// Replaces the contents with the block in `bytes` (all of it: trailing bytes are an
    /// error). On error the contents are unspecified but consistent enough to drop.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<(), BadBlock> {
        let mut input = Take(bytes);
        let rows = input.u32()? as usize;
        self.object_id.clear();
        self.timestamp.clear();
        input.i64s(rows, &mut self.object_id)?;
        input.i64s(rows, &mut self.timestamp)?;
        self.updated_by.decode(rows, &mut input)?;
        for c in [
            &mut self.value,
            &mut self.source_type,
            &mut self.source_id,
            &mut self.source_label,
        ] {
            c.decode(rows, &mut input)?;
        }
        if input.0.is_empty() {
            Ok(())
        } else {
            Err(BadBlock)
        }
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

    /// A column and a plain `Vec<Option<…>>` fed the same random pushes, truncations and
    /// gathers agree at every step, whichever lazy state the column passes through.
    #[test]
    fn lazy_columns_match_a_vec_of_options() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let (mut s, mut s_ref) = (StrColumn::default(), Vec::<Option<Vec<u8>>>::new());
            let (mut n, mut n_ref) = (IntColumn::default(), Vec::<Option<i64>>::new());
            // Per round, how likely a null is: 0 (never) … 4 (always).
            let null_bias = next() % 5;
            for _ in 0..(next() % 40) {
                let r = next();
                let null = r % 4 < null_bias;
                match (r >> 8) % 8 {
                    0 => {
                        let len = (next() % 3) as usize;
                        s.truncate(len);
                        s_ref.truncate(len);
                        n.truncate(len);
                        n_ref.truncate(len);
                    }
                    1 if !n_ref.is_empty() => {
                        let i = (next() as usize) % n_ref.len();
                        let v = (!null).then_some(r as i64);
                        n.set(i, v);
                        n_ref[i] = v;
                    }
                    2 if !s_ref.is_empty() => {
                        let len = s_ref.len() as u64;
                        // Scattered rows, or runs of neighbours (copied a run at a time).
                        let idx: Vec<u32> = if next() % 2 == 0 {
                            (0..next() % 5).map(|_| (next() % len) as u32).collect()
                        } else {
                            let from = next() % len;
                            let mut run: Vec<u32> = (from..from + next() % (len - from + 1))
                                .map(|i| i as u32)
                                .collect();
                            run.extend((from..len).take((next() % 3) as usize).map(|i| i as u32));
                            run
                        };
                        let (s2, n2) = (s.clone(), n.clone());
                        s.append_indices(&s2, &idx);
                        n.append_indices(&n2, &idx);
                        for &i in &idx {
                            s_ref.push(s_ref[i as usize].clone());
                            n_ref.push(n_ref[i as usize]);
                        }
                    }
                    _ => {
                        let v = (!null).then(|| vec![b'a'; (r >> 20) as usize % 4]);
                        s.push(v.as_deref());
                        s_ref.push(v);
                        let v = (!null).then_some(r as i64);
                        n.push(v);
                        n_ref.push(v);
                    }
                }
                assert_eq!(s.len(), s_ref.len());
                for (i, v) in s_ref.iter().enumerate() {
                    assert_eq!(s.get(i), v.as_deref());
                }
                assert_eq!(n.len(), n_ref.len());
                for (i, v) in n_ref.iter().enumerate() {
                    assert_eq!(n.get(i), *v);
                }
            }
        }
    }

    #[test]
    fn all_null_columns_hold_no_buffers() {
        let mut rows = Columns::default();
        for i in 0..1000 {
            rows.push(&Row {
                object_id: i,
                timestamp: i,
                value: Some(b"v"),
                source_type: None,
                source_id: None,
                source_label: None,
                updated_by_user_id: None,
            });
        }
        assert_eq!(
            rows.source_id.heap_bytes() + rows.updated_by.heap_bytes(),
            0
        );
        assert!(rows.value.valid.is_empty());
    }

    #[test]
    fn appending_by_indices_equals_pushing_row_by_row() {
        let mut src = Rows::default();
        for i in 0..10i64 {
            src.push(
                (i % 3) as u32,
                &Row {
                    object_id: i,
                    timestamp: -i,
                    value: (i % 4 != 0).then_some(&b"abc"[..(i % 4) as usize]),
                    source_type: (i % 2 == 0).then_some(b"T"),
                    source_id: None,
                    source_label: Some(b""),
                    updated_by_user_id: (i % 5 == 0).then_some(i),
                },
            );
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
            object_id: 3_000_000_001,
            timestamp: -5,
            value: Some(b"v"),
            source_type: None,
            source_id: Some(b""),
            source_label: None,
            updated_by_user_id: Some(42),
        };
        let mut rows = Rows::default();
        rows.push(7, &row);
        rows.push(
            8,
            &Row {
                updated_by_user_id: None,
                ..row
            },
        );
        assert_eq!(rows.row(0), row);
        assert_eq!(rows.row(1).updated_by_user_id, None);
        let mut other = Rows::default();
        other.push_from(&rows, 1);
        assert_eq!(other.row(0), rows.row(1));
        assert_eq!(other.property, [8]);
        rows.truncate(1);
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn block_codec_round_trips_every_column_state() {
        let mut seed = 11u64;
        let mut next = || {
            seed = planner::fmix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
            seed
        };
        let strings: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"a\n\0"), Some("ü".as_bytes())];
        for case in 0..64u32 {
            // Per column: always null, never null, or mixed (case's bits pick).
            let pick = |col: u32, r: u64| -> usize {
                match (case >> (col * 2)) & 3 {
                    0 => 0,
                    1 => 1 + (r % 3) as usize,
                    _ => (r % 4) as usize,
                }
            };
            let mut cols = Columns::default();
            for _ in 0..(next() % 40) {
                cols.push(&Row {
                    object_id: next() as i64,
                    timestamp: next() as i64,
                    value: strings[pick(0, next())],
                    source_type: strings[pick(1, next())],
                    source_id: strings[pick(2, next())],
                    source_label: strings[(next() % 4) as usize],
                    updated_by_user_id: [None, Some(-1), Some(i64::MAX)][pick(1, next()) % 3],
                });
            }
            let mut bytes = Vec::new();
            cols.encode(&mut bytes);
            // Whatever a reused block held before is replaced.
            let mut back = Columns::default();
            back.push(&Row {
                object_id: 1,
                timestamp: 2,
                value: Some(b"old"),
                source_type: None,
                source_id: Some(b"x"),
                source_label: None,
                updated_by_user_id: Some(3),
            });
            back.decode(&bytes).unwrap();
            assert_eq!(back, cols, "case {case}");
            // Anything cut short is an error, not a panic.
            for cut in 0..bytes.len() {
                assert_eq!(
                    back.decode(&bytes[..cut]),
                    Err(BadBlock),
                    "case {case} cut {cut}"
                );
            }
        }
    }
}
