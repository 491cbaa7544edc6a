//! History (or a sample) + parameters → [`Plan`]: every property's interval on the reducer line.
//!
//! ```text
//!  expected rows, heaviest first          the line: R reducers × UNIT positions each
//!  page_views ████████████████            |0          |1          |2          |3     ░spare|
//!  email      ███████                     [page_views...........][email.][a][b]..[tail]░░░░░
//!  a, b, …    ▌ ▌ ▏▏▏                      heavy ones span reducers; light ones share one;
//!                                          the spare share at the end takes unseen properties
//! ```
//!
//! Each property's share of the seen capacity `R × (1 − spare)` is proportional to its
//! expected rows; shares are laid end to end, so every reducer's predicted load is the mean
//! (up to the spare share), however skewed the volumes. Small stays whole: a property below
//! [`WHOLE_BELOW`] of a reducer, or [`PlanParams::min_split_rows`] rows, that would straddle
//! two reducers starts on the next one instead, so all its rows meet in one reducer and one
//! file. The reducer before keeps the gap empty (it ends under its share, never over), and
//! every later interval moves up by the gap, into the spare share (at most half of it); once
//! that room is used, a property keeps only its larger part. The interval gives the property's
//! `offset` (first reducer) and `slots` (reducers touched). Properties the plan has never seen
//! are placed by [`crate::name_hash`] at one point of the spare range: all their rows meet in
//! one reducer and one file, on the reducers that hold the least seen load.
//!
//! Limits: rows divide among a property's reducers by object (all versions of one object meet
//! in one reducer), so the prediction assumes many objects per slot. A property with a handful
//! of objects but many rows cannot spread, whatever its slots; its realised load will be
//! lumpier than predicted.
//!
//! Invariants (checked again whenever a plan is decoded): intervals of properties with rows
//! lie in `[0, spare_start)`, in order, without overlap; `offset`/`slots` match the interval;
//! names are unique. A plan is a pure function of its inputs: same history and parameters,
//! same bytes, same digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::PlanError;
use crate::history::{History, Volume, Window};
use crate::partition::{Route, UNIT, mul_hi, name_hash, object_hash};

/// The serialised plan format this crate writes and reads.
pub const PLAN_FORMAT_VERSION: u32 = 2;
/// Most reducers a plan can have (keeps every line position below 2⁴⁸, exact in JSON numbers).
pub const MAX_REDUCERS: u32 = 1 << 16;
/// Default share of the reducers kept for properties the history has never seen.
pub const DEFAULT_SPARE: f64 = 0.05;
/// Largest spare share accepted: beyond half, the plan would mostly wait for unknown data.
pub const MAX_SPARE: f64 = 0.5;
/// Default size past which a reducer starts a new file for the same property.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 512 << 20;
/// Default load, in reducers' mean loads, a property must move to count as drifted.
pub const DEFAULT_DRIFT_THRESHOLD: f64 = 0.1;
/// Default rows below which a property is never cut over two reducers.
pub const DEFAULT_MIN_SPLIT_ROWS: u64 = 1_000;
/// A property expected to fill at most this much of one reducer (in [`UNIT`]s) is never cut
/// over two: cutting it would gain at most half of it (1/64 of a reducer) in balance, and
/// cost a second file.
pub const WHOLE_BELOW: u64 = UNIT / 32;

/// How a property's rows divide among the reducers its interval touches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// In proportion to the interval's overlap with each reducer (default).
    #[default]
    Weighted,
    /// Equally: literally Plumbee's `offset + hash % slots` (see `partition`).
    Uniform,
}

/// What the caller chooses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanParams {
    /// Reducers `R`, `1..=MAX_REDUCERS`.
    pub reducers: u32,
    /// Share of `R` reserved for unseen properties, `0..=MAX_SPARE`.
    pub spare: f64,
    /// A reducer splits one property's output into files of about this size.
    pub target_file_bytes: u64,
    /// Which history runs predict this one.
    pub window: Window,
    pub split: Split,
    /// Load, in reducers' mean loads, a property must move between the history's prediction
    /// and tonight's counts to be planned from the counts (see [`crate::plan_checked`]).
    pub drift_threshold: f64,
    /// A property with fewer expected rows than this stays whole on one reducer: nothing to
    /// balance is worth a second file (a nightly increment's properties are mostly this).
    pub min_split_rows: u64,
}

impl PlanParams {
    /// Defaults for everything but the reducer count.
    pub fn new(reducers: u32) -> Self {
        PlanParams {
            reducers,
            spare: DEFAULT_SPARE,
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            window: Window::default(),
            split: Split::default(),
            drift_threshold: DEFAULT_DRIFT_THRESHOLD,
            min_split_rows: DEFAULT_MIN_SPLIT_ROWS,
        }
    }

    pub fn validate(&self) -> Result<(), PlanError> {
        check_common(self.reducers, self.spare, self.target_file_bytes)?;
        if !(self.drift_threshold.is_finite() && self.drift_threshold > 0.0) {
            return Err(PlanError::InvalidParams(format!(
                "the drift threshold must be a positive share of a reducer's load, got {}",
                self.drift_threshold
            )));
        }
        self.window.validate()
    }
}

fn check_common(reducers: u32, spare: f64, target_file_bytes: u64) -> Result<(), PlanError> {
    if reducers == 0 || reducers > MAX_REDUCERS {
        return Err(PlanError::InvalidParams(format!(
            "reducers must be between 1 and {MAX_REDUCERS}, got {reducers}"
        )));
    }
    if !(0.0..=MAX_SPARE).contains(&spare) {
        return Err(PlanError::InvalidParams(format!(
            "the spare share must be between 0 and {MAX_SPARE}, got {spare}"
        )));
    }
    if target_file_bytes == 0 {
        return Err(PlanError::InvalidParams(
            "the target file size must be positive".into(),
        ));
    }
    Ok(())
}

/// Where the expected volumes came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// No history and no sample: every property is unseen.
    Empty,
    /// A window of past runs (ids oldest first).
    History { runs: Vec<String>, window: Window },
    /// A sample of this input, scaled up to the whole.
    Sample {
        sampled_records: u64,
        estimated_records: u64,
    },
    /// A window of past runs checked against tonight's counts ([`crate::plan_checked`]):
    /// `planned_from_input` properties took tonight's volumes (all of them when `exact`).
    Checked {
        runs: Vec<String>,
        window: Window,
        estimated_records: u64,
        exact: bool,
        planned_from_input: u64,
    },
}

/// Volumes counted on a sample of the input: the cold start when there is no history (as
/// Spark's range partitioner and Hadoop's `InputSampler` do). A sample of the whole input
/// (`sampled_records == estimated_records`, e.g. counts from Parquet footers) is exact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Records the counts were taken from.
    pub sampled_records: u64,
    /// Records estimated in the whole input.
    pub estimated_records: u64,
    pub properties: BTreeMap<String, Volume>,
}

/// One property's place in the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertySlot {
    pub name: String,
    /// Expected rows, bytes and objects (the basis' prediction).
    pub rows: u64,
    pub bytes: u64,
    pub objects: u64,
    /// Expected rows read back from the stored partition (a merge): laid out with `rows`.
    pub stored_rows: u64,
    /// The interval `[start, start + len)` on the line, in [`UNIT`]s per reducer.
    pub start: u64,
    pub len: u64,
    /// First reducer the interval touches.
    pub offset: u32,
    /// Reducers the interval touches.
    pub slots: u32,
}

impl PropertySlot {
    /// The share of one reducer this property is expected to fill (`len / UNIT`).
    pub fn share(&self) -> f64 {
        self.len as f64 / UNIT as f64
    }
}

/// The serialised form; `Plan` adds a lookup index over it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PlanData {
    version: u32,
    reducers: u32,
    spare: f64,
    /// Where the spare range begins; `reducers × UNIT` when there is none.
    spare_start: u64,
    split: Split,
    target_file_bytes: u64,
    basis: Basis,
    /// In line order: heaviest first.
    properties: Vec<PropertySlot>,
}

/// A plan: what every reducer is expected to receive. Build it with [`plan`] or
/// [`plan_from_sample`]; route rows with [`Plan::route`]; ship it as JSON (through serde) or
/// with [`Plan::to_bincode`].
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    data: PlanData,
    /// Indices into `data.properties`, sorted by name, for allocation-free lookup.
    by_name: Vec<u32>,
}

/// Plans the next run from a window of `history`. An empty history gives a plan in which every
/// property is unseen (use [`plan_from_sample`] to do better).
pub fn plan(history: &History, params: &PlanParams) -> Result<Plan, PlanError> {
    params.validate()?;
    let expected = history.expect(params.window)?;
    let basis = if expected.runs.is_empty() {
        Basis::Empty
    } else {
        Basis::History {
            runs: expected.runs,
            window: params.window,
        }
    };
    Ok(layout(expected.volumes, basis, params))
}

/// Plans a run with no history from volumes counted on a sample of its input, scaled by
/// `estimated_records / sampled_records`. Properties too rare to appear in the sample are
/// unseen and go to the spare share. `params.window` is not used.
pub fn plan_from_sample(sample: &Sample, params: &PlanParams) -> Result<Plan, PlanError> {
    params.validate()?;
    if sample.sampled_records > sample.estimated_records {
        return Err(PlanError::InvalidParams(format!(
            "a sample of {} records cannot come from an input of {}",
            sample.sampled_records, sample.estimated_records
        )));
    }
    if sample.sampled_records == 0 {
        return Ok(layout(BTreeMap::new(), Basis::Empty, params));
    }
    let scale = |x: u64| {
        let scaled = u128::from(x) * u128::from(sample.estimated_records)
            / u128::from(sample.sampled_records);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    };
    let volumes = sample
        .properties
        .iter()
        .map(|(name, v)| {
            let v = Volume {
                rows: scale(v.rows),
                bytes: scale(v.bytes),
                objects: scale(v.objects),
                stored_rows: scale(v.stored_rows),
            };
            (name.clone(), v)
        })
        .collect();
    let basis = Basis::Sample {
        sampled_records: sample.sampled_records,
        estimated_records: sample.estimated_records,
    };
    Ok(layout(volumes, basis, params))
}

/// Lays the properties end to end over the seen capacity; a small one that would straddle
/// two reducers is kept whole ([`keep_whole`]). `params` is valid.
pub(crate) fn layout(volumes: BTreeMap<String, Volume>, basis: Basis, params: &PlanParams) -> Plan {
    let mut props: Vec<(String, Volume)> = volumes.into_iter().collect();
    // Heaviest first; the sort is stable, so equal volumes stay in name order. A merge's
    // work is its input rows and the stored rows it reads back: both are laid out.
    props.sort_by_key(|(_, v)| std::cmp::Reverse(v.work()));

    let line_end = line_end(params.reducers);
    let capacity = if props.is_empty() {
        0
    } else {
        // Deterministic: one IEEE multiply and round, the same on every platform.
        line_end - (params.spare * line_end as f64).round() as u64
    };
    // If no property has rows, spread them by count rather than pile them on reducer 0.
    let by_count = props.iter().all(|(_, v)| v.work() == 0);
    let weight = |v: &Volume| if by_count { 1 } else { u128::from(v.work()) };
    let total: u128 = props.iter().map(|(_, v)| weight(v)).sum();

    let mut cumulative = 0u128;
    // Positions left empty so far by small properties moved off a boundary: every later
    // interval moves up by it, and the seen range ends there.
    let mut shift = 0u64;
    let properties: Vec<PropertySlot> = props
        .into_iter()
        .map(|(name, v)| {
            let start = (cumulative * u128::from(capacity) / total) as u64;
            cumulative += weight(&v);
            let end = (cumulative * u128::from(capacity) / total) as u64;
            let (start, len) = if end > start {
                (start + shift, end - start)
            } else {
                // No rows expected: a point, kept inside the seen range.
                (start.min(capacity - 1) + shift, 0)
            };
            let small = len <= WHOLE_BELOW || v.work() < params.min_split_rows;
            let (start, len) = if small && len > 0 {
                // At most half the spare share: the rest stays for unseen properties.
                keep_whole(start, len, &mut shift, (line_end - capacity) / 2)
            } else {
                (start, len)
            };
            let touched = Route::new(start, len).reducers();
            PropertySlot {
                name,
                rows: v.rows,
                bytes: v.bytes,
                objects: v.objects,
                stored_rows: v.stored_rows,
                start,
                len,
                offset: touched.start,
                slots: touched.end - touched.start,
            }
        })
        .collect();

    let data = PlanData {
        version: PLAN_FORMAT_VERSION,
        reducers: params.reducers,
        spare: params.spare,
        spare_start: capacity + shift,
        split: params.split,
        target_file_bytes: params.target_file_bytes,
        basis,
        properties,
    };
    Plan::from_data(data).expect("layout produces a valid plan")
}

/// Where a small property's interval `[start, start + len)` goes so that it touches one
/// reducer. Inside one already: where it is. Else, when it fits in a reducer and `room` (the
/// part of the spare share the layout may take) still holds the gap, it starts on the
/// next reducer and `shift` grows by the gap: the reducer before ends under its share rather
/// than over it. Else it keeps its larger part ([`whole`]).
fn keep_whole(start: u64, len: u64, shift: &mut u64, room: u64) -> (u64, u64) {
    let next = (start / UNIT + 1) * UNIT;
    if start + len <= next {
        return (start, len);
    }
    let gap = next - start;
    if len <= UNIT && *shift + gap <= room {
        *shift += gap;
        return (next, len);
    }
    whole(start, len)
}

/// The part of `[start, start + len)` on the reducer it overlaps most (the first of equals):
/// the whole property goes there. The rest of the interval stays empty, so no other
/// property moves; the predicted loads ([`Plan::stats`]) follow the rows, not the lengths.
fn whole(start: u64, len: u64) -> (u64, u64) {
    let end = start + len;
    let (first, last) = (start / UNIT, end.saturating_sub(1) / UNIT);
    if len == 0 || first == last {
        return (start, len);
    }
    (first..=last)
        .map(|r| {
            let lo = start.max(r * UNIT);
            (lo, end.min((r + 1) * UNIT) - lo)
        })
        .fold(
            (start, 0),
            |best, part| if part.1 > best.1 { part } else { best },
        )
}

fn line_end(reducers: u32) -> u64 {
    u64::from(reducers) * UNIT
}

/// bincode's compact varint encoding, with a cap so a corrupt length cannot allocate wildly.
fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 1 << 30 }>()
}

impl Plan {
    fn from_data(data: PlanData) -> Result<Plan, PlanError> {
        let bad = |msg: String| Err(PlanError::BadPlan(msg));
        if data.version != PLAN_FORMAT_VERSION {
            return bad(format!(
                "format version {} (this skewer reads {PLAN_FORMAT_VERSION})",
                data.version
            ));
        }
        check_common(data.reducers, data.spare, data.target_file_bytes)
            .map_err(|e| PlanError::BadPlan(e.to_string()))?;
        let line_end = line_end(data.reducers);
        if data.spare_start > line_end {
            return bad(format!(
                "spare range starts past the line's end ({line_end})"
            ));
        }
        let mut prev_end = 0u64;
        for p in &data.properties {
            let end = p.start.saturating_add(p.len);
            let inside = if p.len == 0 {
                p.start < data.spare_start
            } else {
                p.start >= prev_end && end <= data.spare_start
            };
            if !inside {
                return bad(format!(
                    "property {:?}: interval [{}, {end}) overlaps another or leaves [0, {})",
                    p.name, p.start, data.spare_start
                ));
            }
            let touched = Route::new(p.start, p.len).reducers();
            if (p.offset, p.slots) != (touched.start, touched.end - touched.start) {
                return bad(format!(
                    "property {:?}: offset {} and slots {} do not match its interval",
                    p.name, p.offset, p.slots
                ));
            }
            if p.len > 0 {
                prev_end = end;
            }
        }
        let mut by_name: Vec<u32> = (0..data.properties.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| {
            data.properties[a as usize]
                .name
                .cmp(&data.properties[b as usize].name)
        });
        for w in by_name.windows(2) {
            let name = &data.properties[w[0] as usize].name;
            if *name == data.properties[w[1] as usize].name {
                return bad(format!("property {name:?} appears twice"));
            }
        }
        Ok(Plan { data, by_name })
    }

    pub fn reducers(&self) -> u32 {
        self.data.reducers
    }

    /// The spare share the plan was made with.
    pub fn spare(&self) -> f64 {
        self.data.spare
    }

    /// Where the spare range begins on the line (`reducers × UNIT` when there is none).
    pub fn spare_start(&self) -> u64 {
        self.data.spare_start
    }

    pub fn split(&self) -> Split {
        self.data.split
    }

    pub fn target_file_bytes(&self) -> u64 {
        self.data.target_file_bytes
    }

    pub fn basis(&self) -> &Basis {
        &self.data.basis
    }

    /// The seen properties in line order: heaviest first.
    pub fn properties(&self) -> &[PropertySlot] {
        &self.data.properties
    }

    /// The seen property named `name`.
    pub fn get(&self, name: &str) -> Option<&PropertySlot> {
        self.by_name
            .binary_search_by(|&i| self.data.properties[i as usize].name.as_str().cmp(name))
            .ok()
            .map(|i| &self.data.properties[self.by_name[i] as usize])
    }

    /// The route of `property`: its slots if the plan has seen it, else one point of the spare
    /// range chosen by [`name_hash`]. Look it up once per property, not per row.
    pub fn route(&self, property: &str) -> Route {
        match self.get(property) {
            Some(slot) => self.slot_route(slot),
            None => self.unseen_route(property),
        }
    }

    /// The route of one of this plan's slots under its split.
    pub fn slot_route(&self, slot: &PropertySlot) -> Route {
        match self.data.split {
            Split::Weighted => Route::new(slot.start, slot.len),
            Split::Uniform => Route::modulo(slot.offset, slot.slots),
        }
    }

    /// Where a property absent from the plan goes: one reducer of the spare range (or of the
    /// whole line when the plan has no spare range), picked by a hash of its name.
    pub fn unseen_route(&self, property: &str) -> Route {
        let end = line_end(self.data.reducers);
        let lo = if self.data.spare_start < end {
            self.data.spare_start
        } else {
            0
        };
        Route::new(lo + mul_hi(name_hash(property), end - lo), 0)
    }

    /// The canonical binary form shipped to workers.
    pub fn to_bincode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(&self.data, bincode_config()).expect("a plan always encodes")
    }

    /// Decodes and validates a plan from [`Plan::to_bincode`]'s bytes.
    pub fn from_bincode(bytes: &[u8]) -> Result<Plan, PlanError> {
        let (data, used): (PlanData, usize) =
            bincode::serde::decode_from_slice(bytes, bincode_config())
                .map_err(|e| PlanError::Decode(e.to_string()))?;
        if used != bytes.len() {
            return Err(PlanError::Decode(format!(
                "{} trailing bytes after the plan",
                bytes.len() - used
            )));
        }
        Plan::from_data(data)
    }

    /// SHA-256 of the canonical binary form, in hex: identifies the plan across processes.
    pub fn digest(&self) -> String {
        let hash = Sha256::digest(self.to_bincode());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The partitioner in one call: which reducer receives `property`'s rows of `object_id`.
/// Allocation-free; in a hot loop prefer a [`Route`] table and a hash computed once per object.
pub fn reducer(plan: &Plan, property: &str, object_id: i64) -> u32 {
    plan.route(property).reducer(object_hash(object_id))
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let data = PlanData::deserialize(d)?;
        Plan::from_data(data).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::RunRecord;

    fn volumes(rows: &[(&str, u64)]) -> BTreeMap<String, Volume> {
        rows.iter()
            .map(|&(n, r)| {
                let v = Volume {
                    rows: r,
                    bytes: r * 20,
                    objects: r / 3,
                    ..Default::default()
                };
                (n.to_string(), v)
            })
            .collect()
    }

    fn history(rows: &[(&str, u64)]) -> History {
        History::new(vec![RunRecord {
            schema_version: 1,
            run_id: "r1".into(),
            started_at: "2026-11-20T02:00:00Z".into(),
            dataset: None,
            partition: None,
            properties: volumes(rows),
            reducers: vec![],
        }])
        .unwrap()
    }

    /// A merge's rows read back are work too: a property with few new rows and a large
    /// stored partition is laid out by both, and the predicted loads count them.
    #[test]
    fn rows_read_back_are_laid_out_with_the_inputs() {
        let mut h = volumes(&[("big_store", 100), ("many_new", 600)]);
        h.get_mut("big_store").unwrap().stored_rows = 1_100;
        let history = History::new(vec![RunRecord {
            schema_version: 1,
            run_id: "r1".into(),
            started_at: "2026-11-20T02:00:00Z".into(),
            dataset: None,
            partition: None,
            properties: h,
            reducers: vec![],
        }])
        .unwrap();
        let mut params = PlanParams::new(3);
        params.spare = 0.0;
        params.min_split_rows = 0;
        let p = plan(&history, &params).unwrap();
        let names: Vec<_> = p.properties().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["big_store", "many_new"]);
        let big = p.get("big_store").unwrap();
        assert_eq!((big.rows, big.stored_rows), (100, 1_100));
        assert!((big.share() - 2.0).abs() < 1e-9, "{}", big.share());
        let stats = p.stats();
        assert_eq!(stats.rows, 1_800);
    }

    #[test]
    fn heavy_spans_light_share() {
        let h = history(&[("heavy", 600), ("mid", 300), ("a", 50), ("b", 50)]);
        let mut params = PlanParams::new(4);
        params.spare = 0.0;
        params.min_split_rows = 0;
        let p = plan(&h, &params).unwrap();
        let names: Vec<_> = p.properties().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["heavy", "mid", "a", "b"]);
        let heavy = p.get("heavy").unwrap();
        assert_eq!((heavy.offset, heavy.slots), (0, 3)); // [0, 2.4)
        assert!((heavy.share() - 2.4).abs() < 1e-9);
        let mid = p.get("mid").unwrap();
        assert_eq!((mid.offset, mid.slots), (2, 2)); // [2.4, 3.6)
        let a = p.get("a").unwrap();
        assert_eq!((a.offset, a.slots), (3, 1)); // [3.6, 3.8)
        assert_eq!(p.spare_start(), 4 * UNIT);
    }

    #[test]
    fn unseen_properties_go_whole_to_the_spare_range() {
        let p = plan(&history(&[("x", 1000)]), &PlanParams::new(10)).unwrap();
        // spare 0.05 of 10 reducers = [9.5, 10): reducer 9.
        assert_eq!(p.spare_start(), 19 * UNIT / 2);
        for name in ["brand_new", "another", "hs_new_prop", ""] {
            let route = p.route(name);
            assert_eq!(route.reducers(), 9..10, "{name}");
            assert_eq!(reducer(&p, name, 12345), 9);
        }
        // No spare: unseen names spread over the whole line, still one reducer each.
        let mut params = PlanParams::new(10);
        params.spare = 0.0;
        params.min_split_rows = 0;
        let p = plan(&history(&[("x", 1000)]), &params).unwrap();
        let mut hit: Vec<u32> = (0..200)
            .map(|i| p.route(&format!("new_{i}")).reducers())
            .inspect(|r| assert_eq!(r.len(), 1))
            .map(|r| r.start)
            .collect();
        hit.sort_unstable();
        hit.dedup();
        assert_eq!(hit.len(), 10);
    }

    #[test]
    fn empty_history_makes_everything_unseen() {
        let p = plan(&History::default(), &PlanParams::new(3)).unwrap();
        assert_eq!(p.basis(), &Basis::Empty);
        assert!(p.properties().is_empty());
        assert_eq!(p.spare_start(), 0);
        assert!(p.route("email").reducer(7) < 3);
    }

    #[test]
    fn zero_row_properties_stay_in_range() {
        let p = plan(&history(&[("a", 0), ("b", 0)]), &PlanParams::new(2)).unwrap();
        // No rows anywhere: spread by count, and each stays whole.
        assert_eq!(p.get("a").unwrap().offset, 0);
        let b = p.get("b").unwrap(); // [0.95, 1.9): moved to the next reducer, [1, 1.95)
        assert_eq!((b.start, b.offset, b.slots), (UNIT, 1, 1));
        let p = plan(&history(&[("a", 10), ("z", 0)]), &PlanParams::new(2)).unwrap();
        let z = p.get("z").unwrap();
        assert_eq!((z.len, z.offset, z.slots), (0, 1, 1));
        assert!(p.route("z").reducer(u64::MAX) < 2);
    }

    /// Small stays whole: a property too small to be worth two files touches one reducer
    /// (moved past the boundary, or its larger part kept); a large one still spreads.
    #[test]
    fn small_properties_are_never_cut_in_two() {
        let h = history(&[
            ("heavy", 1_000_000),
            ("mid", 500_000),
            ("small", 40_000),
            ("tiny", 3),
        ]);
        let mut params = PlanParams::new(3);
        params.spare = 0.0;
        let p = plan(&h, &params).unwrap();
        // heavy [0, 1.93), mid [1.93, 2.90) spread; small [2.90, 2.9997) is under a
        // 32nd of a reducer and straddles nothing; nothing is cut below min_split_rows.
        assert_eq!(p.get("heavy").unwrap().slots, 2);
        assert_eq!(p.get("mid").unwrap().slots, 2);
        for slot in p.properties() {
            if slot.len <= WHOLE_BELOW || slot.rows < params.min_split_rows {
                assert_eq!(slot.slots, 1, "{}", slot.name);
            }
        }
        // Three contacts' worth: every property under min_split_rows, all whole, however the
        // shares fall; the predicted loads still count every row.
        let h = history(&[("a", 5), ("b", 3), ("c", 3), ("d", 2)]);
        let p = plan(&h, &PlanParams::new(4)).unwrap();
        assert!(p.properties().iter().all(|s| s.slots == 1));
        assert_eq!(p.stats().rows, 13);
        assert_eq!(p.stats().files_per_property, 1.0);
        // The same volumes with the floor off spread as before.
        params.reducers = 4;
        params.min_split_rows = 0;
        let p = plan(&h, &params).unwrap();
        assert!(p.properties().iter().any(|s| s.slots > 1));
        // A small property straddling a boundary starts on the next reducer while the spare
        // share has room for the gap, and keeps its larger side after that.
        let mut shift = 0;
        assert_eq!(keep_whole(UNIT - 10, 30, &mut shift, 25), (UNIT, 30));
        assert_eq!(shift, 10);
        assert_eq!(
            keep_whole(2 * UNIT - 20, 30, &mut shift, 25),
            (2 * UNIT - 20, 20)
        );
        assert_eq!(shift, 10);
        assert_eq!(keep_whole(5, 10, &mut shift, 25), (5, 10));
        assert_eq!(
            keep_whole(UNIT - 1, UNIT + 2, &mut shift, u64::MAX),
            (UNIT, UNIT)
        );
        assert_eq!(shift, 10);
        assert_eq!(whole(UNIT - 10, 30), (UNIT, 20));
        assert_eq!(whole(UNIT - 20, 30), (UNIT - 20, 20));
        assert_eq!(whole(UNIT - 15, 30), (UNIT - 15, 15));
        assert_eq!(whole(5, 10), (5, 10));
        assert_eq!(whole(UNIT - 1, UNIT + 2), (UNIT, UNIT));
    }

    #[test]
    fn uniform_split_is_plumbee() {
        let h = history(&[("heavy", 600), ("mid", 300), ("a", 100)]);
        let mut params = PlanParams::new(4);
        params.spare = 0.0;
        params.min_split_rows = 0;
        params.split = Split::Uniform;
        let p = plan(&h, &params).unwrap();
        let mid = p.get("mid").unwrap(); // [2.4, 3.6): reducers 2 and 3, 50/50
        let n = 20_000;
        let on_2 = (0..n).filter(|&o| reducer(&p, "mid", o) == 2).count();
        assert!((on_2 as f64 / n as f64 - 0.5).abs() < 0.02, "{on_2}");
        assert_eq!(p.slot_route(mid).reducers(), 2..4);
    }

    #[test]
    fn sample_plans_scale_and_validate() {
        let sample = Sample {
            sampled_records: 100,
            estimated_records: 1000,
            properties: volumes(&[("email", 40), ("rare", 1)]),
        };
        let p = plan_from_sample(&sample, &PlanParams::new(4)).unwrap();
        assert_eq!(p.get("email").unwrap().rows, 400);
        assert_eq!(p.get("rare").unwrap().bytes, 200);
        assert!(matches!(p.basis(), Basis::Sample { .. }));
        let bad = Sample {
            sampled_records: 10,
            estimated_records: 5,
            ..Sample::default()
        };
        assert!(plan_from_sample(&bad, &PlanParams::new(4)).is_err());
        let empty = plan_from_sample(&Sample::default(), &PlanParams::new(4)).unwrap();
        assert_eq!(empty.basis(), &Basis::Empty);
    }

    #[test]
    fn parameters_are_checked() {
        let h = history(&[("a", 1)]);
        let mut p = PlanParams::new(0);
        assert!(plan(&h, &p).is_err());
        p.reducers = MAX_REDUCERS + 1;
        assert!(plan(&h, &p).is_err());
        p.reducers = MAX_REDUCERS;
        assert!(plan(&h, &p).is_ok());
        for spare in [-0.1, 0.51, f64::NAN] {
            let mut p = PlanParams::new(4);
            p.spare = spare;
            assert!(plan(&h, &p).is_err(), "{spare}");
        }
        let mut p = PlanParams::new(4);
        p.target_file_bytes = 0;
        assert!(plan(&h, &p).is_err());
    }

    #[test]
    fn bincode_round_trip_and_tamper_detection() {
        let h = history(&[("heavy", 600), ("mid", 300), ("a", 100)]);
        let p = plan(&h, &PlanParams::new(4)).unwrap();
        let bytes = p.to_bincode();
        let back = Plan::from_bincode(&bytes).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.digest(), p.digest());
        assert_eq!(p.digest().len(), 64);

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Plan::from_bincode(&trailing),
            Err(PlanError::Decode(_))
        ));
        assert!(Plan::from_bincode(&bytes[..bytes.len() / 2]).is_err());
        assert!(Plan::from_bincode(&[]).is_err());

        let mut data = p.data.clone();
        data.properties[1].offset += 1;
        assert!(matches!(Plan::from_data(data), Err(PlanError::BadPlan(_))));
        let mut data = p.data.clone();
        data.properties[2].name = "heavy".into();
        assert!(Plan::from_data(data).is_err());
        let mut data = p.data.clone();
        data.properties[0].len = data.spare_start + 1;
        assert!(Plan::from_data(data).is_err());
    }

    #[test]
    fn json_round_trip() {
        let p = plan(&history(&[("x", 5), ("y", 3)]), &PlanParams::new(3)).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let tampered = json.replace("\"version\":2", "\"version\":9");
        let err = serde_json::from_str::<Plan>(&tampered).unwrap_err();
        assert!(err.to_string().contains("format version 9"), "{err}");
    }
}
