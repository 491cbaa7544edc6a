//! Reduce: a reducer's rows → per-property rows in output order, exact duplicates removed.
//!
//! Takes the batches routed to one reducer (any mix of properties, in whatever order the
//! mappers delivered them) and keeps them per property. At the end each property is sorted
//! by the whole row, `(object_id, timestamp, value, source_type, source_id, source_label,
//! updated_by_user_id)` with nulls first, and rows equal in every column are dropped.
//!
//! Sorting by the whole row, not just the sort key, is what makes output independent of
//! arrival order: parallel mappers deliver rows in a different order every run, yet the same
//! input always gives the same files, byte for byte.
//!
//! Memory: every row routed to this reducer, columnar (spilling past a budget is the next
//! step), plus a `u32` permutation per property while it is sorted.

use std::cmp::Ordering;

use crate::batch::{Rows, StrColumn};

/// One reducer's rows, per property id.
#[derive(Debug, Default)]
pub struct Reducer {
    by_property: Vec<Rows>,
    rows: u64,
}

impl Reducer {
    /// Files a batch's rows under their properties.
    pub fn add(&mut self, batch: &Rows) {
        for i in 0..batch.len() {
            let p = batch.property[i] as usize;
            if p >= self.by_property.len() {
                self.by_property.resize_with(p + 1, Rows::default);
            }
            self.by_property[p].push_from(batch, i);
        }
        self.rows += batch.len() as u64;
    }

    /// Rows received so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The properties that received rows, with their rows (taken out of the reducer).
    pub fn take_properties(&mut self) -> Vec<(u32, Rows)> {
        std::mem::take(&mut self.by_property)
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(p, rows)| (p as u32, rows))
            .collect()
    }
}

/// The output order of `rows` with exact duplicates removed, and how many were removed.
pub fn sort_dedupe(rows: &Rows) -> (Vec<u32>, u64) {
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| compare(rows, a as usize, b as usize));
    let before = order.len();
    order.dedup_by(|a, b| compare(rows, *a as usize, *b as usize) == Ordering::Equal);
    let duplicates = (before - order.len()) as u64;
    (order, duplicates)
}

/// The whole-row order (nulls first). `Equal` means the rows are identical.
fn compare(rows: &Rows, a: usize, b: usize) -> Ordering {
    rows.object_id[a]
        .cmp(&rows.object_id[b])
        .then_with(|| rows.timestamp[a].cmp(&rows.timestamp[b]))
        .then_with(|| compare_str(&rows.value, a, b))
        .then_with(|| compare_str(&rows.source_type, a, b))
        .then_with(|| compare_str(&rows.source_id, a, b))
        .then_with(|| compare_str(&rows.source_label, a, b))
        .then_with(|| {
            let key = |i: usize| rows.updated_by_valid[i].then_some(rows.updated_by[i]);
            key(a).cmp(&key(b))
        })
}

#[inline]
fn compare_str(col: &StrColumn, a: usize, b: usize) -> Ordering {
    // `Option`'s order puts `None` first: nulls first, as the files' sorting_columns say.
    col.get(a).cmp(&col.get(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Row;

    fn row(object_id: i64, timestamp: i64, value: Option<&'static [u8]>) -> Row<'static> {
        Row {
            property: 0,
            object_id,
            timestamp,
            value,
            source_type: None,
            source_id: None,
            source_label: None,
            updated_by_user_id: None,
        }
    }

    #[test]
    fn sorts_by_the_whole_row_and_drops_exact_duplicates() {
        let mut rows = Rows::default();
        for r in [
            row(2, 1, Some(b"b")),
            row(1, 5, Some(b"x")),
            row(2, 1, Some(b"a")),
            row(2, 1, None),
            row(1, 5, Some(b"x")),
            row(2, 1, Some(b"a")),
            row(1, -3, Some(b"")),
        ] {
            rows.push(&r);
        }
        let mut differs_in_source = row(1, 5, Some(b"x"));
        differs_in_source.source_type = Some(b"API");
        rows.push(&differs_in_source);

        let (order, duplicates) = sort_dedupe(&rows);
        assert_eq!(duplicates, 2);
        let got: Vec<_> = order
            .iter()
            .map(|&i| {
                let r = rows.row(i as usize);
                (r.object_id, r.timestamp, r.value, r.source_type)
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, -3, Some(&b""[..]), None),
                (1, 5, Some(&b"x"[..]), None),
                (1, 5, Some(&b"x"[..]), Some(&b"API"[..])),
                (2, 1, None, None),
                (2, 1, Some(&b"a"[..]), None),
                (2, 1, Some(&b"b"[..]), None),
            ]
        );
    }

    #[test]
    fn reducer_files_rows_by_property() {
        let mut batch = Rows::default();
        for (p, o) in [(3, 1), (0, 2), (3, 3)] {
            batch.push(&Row {
                property: p,
                ..row(o, 0, None)
            });
        }
        let mut r = Reducer::default();
        r.add(&batch);
        r.add(&batch);
        assert_eq!(r.rows(), 6);
        let props = r.take_properties();
        let sizes: Vec<(u32, usize)> = props.iter().map(|(p, rows)| (*p, rows.len())).collect();
        assert_eq!(sizes, [(0, 2), (3, 4)]);
    }
}
