//! An order-independent checksum of version rows: proves a run lost and invented nothing.
//!
//! Each row hashes to 64 bits over (property, object_id, timestamp, value, source_type,
//! source_id, source_label, updated_by_user_id), with `null` and `""` distinct; the checksum
//! is the count and the wrapping sum of those hashes. Sums do not care about order, so the
//! generator (which knows every row it wrote) and a dataset read back in any order agree
//! exactly when they hold the same multiset of rows.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch::Row;
use crate::error::Result;

/// A multiset of rows, summarised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub rows: u64,
    /// Wrapping sum of row hashes, as 16 hex digits.
    #[serde(with = "hex")]
    pub sum: u64,
}

mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

impl Checksum {
    pub fn add(&mut self, property: &str, row: &Row<'_>) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(row_hash(property, row));
    }

    pub fn merge(&mut self, other: Checksum) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

/// FNV-1a over the row's fields, each length-prefixed or null-tagged, then `fmix64`.
pub fn row_hash(property: &str, row: &Row<'_>) -> u64 {
    let mut h = Fnv::default();
    h.bytes(property.as_bytes());
    h.write(&row.object_id.to_le_bytes());
    h.write(&row.timestamp.to_le_bytes());
    for s in [row.value, row.source_type, row.source_id, row.source_label] {
        match s {
            Some(b) => h.bytes(b),
            None => h.write(&[0xff]),
        }
    }
    match row.updated_by_user_id {
        Some(u) => {
            h.write(&[1]);
            h.write(&u.to_le_bytes());
        }
        None => h.write(&[0xff]),
    }
    planner::fmix64(h.0)
}

/// FNV-1a over length-prefixed fields: a stable digest (not a cryptographic one) of what
/// several processes must agree on.
#[derive(Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Adds one field (its length first, so that fields cannot run into each other).
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.write(&[1]);
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    /// The digest of the fields added.
    pub fn finish(&self) -> u64 {
        planner::fmix64(self.0)
    }
}

/// The checksum of every row in a dataset (all partitions).
pub fn dataset(dir: &Path) -> Result<Checksum> {
    let mut sum = Checksum::default();
    for file in crate::dataset::files(dir)? {
        let rows = crate::dataset::read_rows(&file.path)?;
        for i in 0..rows.len() {
            sum.add(&file.property, &rows.row(i));
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: Option<&'static [u8]>) -> Row<'static> {
        Row {
            object_id: 1,
            timestamp: 2,
            value,
            source_type: None,
            source_id: None,
            source_label: None,
            updated_by_user_id: None,
        }
    }

    #[test]
    fn null_empty_and_fields_are_distinct_and_order_does_not_matter() {
        let (a, b, c) = (row(None), row(Some(b"")), row(Some(b"x")));
        let hashes = [
            row_hash("p", &a),
            row_hash("p", &b),
            row_hash("p", &c),
            row_hash("q", &a),
        ];
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j]);
            }
        }
        // A value moved into the next field is a different row.
        let moved = Row {
            value: None,
            source_type: Some(b"x"),
            ..c
        };
        assert_ne!(row_hash("p", &moved), row_hash("p", &c));

        let (mut one, mut two) = (Checksum::default(), Checksum::default());
        for r in [&a, &b, &c] {
            one.add("p", r);
        }
        for r in [&c, &a, &b] {
            two.add("p", r);
        }
        assert_eq!(one, two);
        let json = serde_json::to_string(&one).unwrap();
        assert_eq!(serde_json::from_str::<Checksum>(&json).unwrap(), one);
    }
}
