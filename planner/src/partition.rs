//! The partitioner: (property, object_id) → reducer, pure and allocation-free.
//!
//! Any engine can route rows as skewer does from this page and a plan's JSON (`skewer plan
//! --json`: per property `start`, `len`, `offset`, `slots`, and the plan's `split`,
//! `reducers` and `spare_start`). All arithmetic is on unsigned 64-bit integers (128-bit for
//! one product), so every platform and process agrees.
//!
//! ```text
//!   h = object_hash(object_id) = fmix64(object_id as u64)          (two's complement bits)
//!
//!   split "weighted" (the default): the property owns [start, start + len) of a line of
//!   reducers × 2³² positions, and
//!       reducer = (start + ((h as u128 × len as u128) >> 64)) >> 32
//!   so each reducer the interval touches gets rows in proportion to its overlap (a property
//!   over 0.3 of reducer 3 and 0.7 of reducer 4 sends 30 % / 70 % of its objects there);
//!
//!   split "uniform" (Plumbee's): reducer = offset + h mod slots
//!
//!   a property absent from the plan (both splits):
//!       lo = spare_start if spare_start < reducers × 2³², else 0
//!       reducer = (lo + ((name_hash(name) as u128 × (reducers × 2³² − lo) as u128) >> 64)) >> 32
//! ```
//!
//! `fmix64` is MurmurHash3's 64-bit finalizer, `name_hash` FNV-1a 64 over the name's UTF-8
//! bytes followed by `fmix64` (both below, with their constants). `offset`/`slots` are the
//! reducers the weighted interval touches, widened outward to whole reducers: Plumbee's
//! `offset + hash % slots` spreads a property evenly over them, where the weighted split
//! follows the fractional share. Both routes of a property reach the same reducers.
//!
//! Invariants:
//! - The hashes are fixed (never `std`'s randomly seeded hasher); the golden values in the
//!   tests pin them, since changing them silently re-routes every dataset.
//! - The object hash is a bijection on 64 bits, so distinct ids never collide, and it does not
//!   depend on the property: a mapper hashes each record's id once and reuses it for every row.

/// Fixed-point positions per reducer on the plan line.
pub const UNIT: u64 = 1 << 32;

/// MurmurHash3's 64-bit finalizer (`fmix64`): a bijective mixer with full avalanche.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The hash that spreads a property's objects over its slots: `fmix64` of the id's two's
/// complement bits.
#[inline]
pub fn object_hash(object_id: i64) -> u64 {
    fmix64(object_id as u64)
}

/// The hash that places a property the plan has never seen: FNV-1a 64 over the name's UTF-8
/// bytes, then `fmix64` so that its high bits (which pick the reducer) are well mixed.
#[inline]
pub fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fmix64(h)
}

/// `⌊a × b / 2⁶⁴⌋`: scales a uniform 64-bit hash onto `[0, b)` without division or bias
/// beyond one part in 2⁶⁴ (Lemire's multiply-shift).
#[inline]
pub(crate) fn mul_hi(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) >> 64) as u64
}

/// Where one property's rows go. Copy it into a table indexed by interned property id;
/// [`Route::reducer`] is then a multiply, an add and a shift (weighted) or one remainder
/// (uniform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The weighted split: `[start, start + len)` of the plan line; `len == 0` pins every row
    /// to `start`'s reducer.
    Interval { start: u64, len: u64 },
    /// Plumbee's split: `offset + hash mod slots`.
    Modulo { offset: u32, slots: u32 },
}

impl Route {
    /// A route over `[start, start + len)` of the plan line.
    pub(crate) fn new(start: u64, len: u64) -> Self {
        Route::Interval { start, len }
    }

    /// Plumbee's route over reducers `offset..offset + slots` (`slots` at least 1).
    pub(crate) fn modulo(offset: u32, slots: u32) -> Self {
        Route::Modulo {
            offset,
            slots: slots.max(1),
        }
    }

    /// The reducer for an object whose [`object_hash`] is `object_hash`.
    #[inline]
    pub fn reducer(self, object_hash: u64) -> u32 {
        match self {
            Route::Interval { start, len } => ((start + mul_hi(object_hash, len)) / UNIT) as u32,
            Route::Modulo { offset, slots } => offset + (object_hash % u64::from(slots)) as u32,
        }
    }

    /// The interval `(start, len)` of the plan line this route spreads rows over (evenly over
    /// whole reducers for the uniform split).
    pub fn interval(self) -> (u64, u64) {
        match self {
            Route::Interval { start, len } => (start, len),
            Route::Modulo { offset, slots } => (u64::from(offset) * UNIT, u64::from(slots) * UNIT),
        }
    }

    /// The reducers this route can return, as a half-open range.
    pub fn reducers(self) -> std::ops::Range<u32> {
        match self {
            Route::Interval { start, len } => {
                let first = (start / UNIT) as u32;
                let last = if len == 0 {
                    first
                } else {
                    ((start + len - 1) / UNIT) as u32
                };
                first..last + 1
            }
            Route::Modulo { offset, slots } => offset..offset + slots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These values are part of the on-disk contract: a plan written by one version must route
    /// rows identically in another. If this test fails, the hash changed; do not update the
    /// constants unless every stored plan and dataset is meant to be re-routed.
    #[test]
    fn hashes_are_pinned() {
        assert_eq!(object_hash(0), 0);
        assert_eq!(object_hash(1), 0xb456_bcfc_34c2_cb2c);
        assert_eq!(object_hash(-1), 0x64b5_720b_4b82_5f21);
        assert_eq!(object_hash(3_000_000_001), 0x0e1e_9a39_c618_4246);
        assert_eq!(name_hash(""), 0xefd0_1f60_ba99_2926);
        assert_eq!(name_hash("email"), 0x4252_52f9_28c4_e0d9);
    }

    #[test]
    fn object_hash_is_a_bijection_on_a_sample() {
        let mut seen: Vec<u64> = (-50_000i64..50_000).map(object_hash).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn route_stays_inside_its_interval() {
        let r = Route::new(3 * UNIT + UNIT / 3, UNIT + UNIT / 2);
        assert_eq!(r.reducers(), 3..5);
        for h in [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            assert!(r.reducers().contains(&r.reducer(h)), "hash {h:#x}");
        }
        // The top of the hash range stays below the interval's end.
        assert_eq!(Route::new(0, 2 * UNIT).reducer(u64::MAX), 1);
        assert_eq!(Route::new(5 * UNIT + 7, 0).reducer(u64::MAX), 5);
    }

    #[test]
    fn the_uniform_split_is_literally_offset_plus_hash_mod_slots() {
        let r = Route::modulo(5, 3);
        for id in -1000i64..1000 {
            let h = object_hash(id);
            assert_eq!(r.reducer(h), 5 + (h % 3) as u32);
        }
        assert_eq!(r.reducers(), 5..8);
        assert_eq!(r.interval(), (5 * UNIT, 3 * UNIT));
    }

    #[test]
    fn the_weighted_split_is_the_documented_integer_formula() {
        let (start, len) = (3 * UNIT + 12_345, 2 * UNIT + 999);
        let r = Route::new(start, len);
        for id in -1000i64..1000 {
            let h = object_hash(id);
            let x = start + ((u128::from(h) * u128::from(len)) >> 64) as u64;
            assert_eq!(r.reducer(h), (x >> 32) as u32);
        }
    }

    #[test]
    fn weighted_split_follows_the_overlap() {
        // 0.3 of reducer 0 and 0.7 of reducer 1.
        let unit = UNIT as f64;
        let r = Route::new((0.7 * unit) as u64, unit as u64);
        let n = 100_000;
        let on_first = (0..n).filter(|&i| r.reducer(object_hash(i)) == 0).count();
        let share = on_first as f64 / n as f64;
        assert!((share - 0.3).abs() < 0.01, "share on reducer 0: {share}");
    }
}
