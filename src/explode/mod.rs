//! Explode: input records → one row per property version.
//!
//! Takes records from the input stage (JSON text of any dialect in [`json`], nested Parquet
//! row groups in [`parquet`]) and gives each accepted record's version rows, columnar, to a
//! [`RecordSink`], with property names interned to dense `u32` ids once through
//! [`PropertyIds`]. A record that cannot be read is rejected whole, with a reason.
//!
//! Parsers fill a [`RecordBuilder`] field by field in whatever order the input's keys come
//! (a version's `timestamp` may precede or follow its `value`; an object's id may come after
//! its properties), so nothing is buffered per row but the row itself, in reused columns.
//!
//! Invariants: a record's rows reach the sink only if the whole record was read; every row
//! has a timestamp; `""` and `null` values stay distinct.

pub mod json;
pub mod parquet;
pub mod timestamp;

use crate::batch::{Rows, StrColumn};

/// Interns property names to dense ids (ids are shared by every mapper of a run).
pub trait PropertyIds {
    fn id(&mut self, name: &str) -> u32;
    /// The name behind an id this table gave out (for messages; not on the hot path).
    fn name(&self, id: u32) -> String;
}

/// Where explode's output goes.
pub trait RecordSink {
    /// One record read whole (`index` as for `reject`): its rows (possibly none), with
    /// `object_id` filled, each property's versions together. The sink may still reject it
    /// (a property it cannot write).
    fn record(&mut self, index: u64, rows: &Rows, carried: Carried);
    /// One record that could not be read: `index` is its position in the unit being parsed
    /// (an NDJSON line holds one, a JSON array or page many), `reason` says why.
    fn reject(&mut self, index: u64, reason: &str);
    /// A webhook event that is not a property change (creation, deletion, merge): counted,
    /// not exploded.
    fn event_without_version(&mut self);
    /// What a deletion, privacy-deletion, restore or merge event says of an object's life
    /// (given just before the event is counted by [`RecordSink::event_without_version`]; a
    /// merge gives one per object merged away).
    fn object_event(&mut self, event: ObjectEvent);
    /// The record just given to [`RecordSink::record`] carried property values but not one
    /// version: a dump exported without histories. Counted, so that the run can say so.
    fn record_without_history(&mut self);
}

/// What a record's versions of a property are: the property's history (`versions`,
/// `propertiesWithHistory`, a nested Parquet list), or one change (a webhook event). An
/// upsert replaces the stored history of a property with the first kind, never the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    History,
    Change,
}

/// An object deleted or restored by a webhook event: a merge (`--mode merge`) drops the rows
/// of every object whose last such event is a deletion ([`crate::merge::deleted_objects`]).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectEvent {
    pub object_id: i64,
    /// The event's `occurredAt` (epoch ms); `i64::MIN` when it had none.
    pub occurred_at: i64,
    pub change: ObjectChange,
    /// The type its `subscriptionType` (or `objectTypeId`) names: ids are only unique
    /// within a type.
    pub object_type: ObjectType,
}

/// A CRM object type, as webhook events name it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum ObjectType {
    /// Not said.
    #[default]
    Unknown,
    Contact,
    Company,
    Deal,
    Ticket,
    /// Any other (custom objects, line items, …).
    Other,
}

impl ObjectType {
    /// From a `subscriptionType`'s first part (`contact` in `contact.deletion`); generic
    /// events (`object.…`) say it in `objectTypeId` instead.
    pub fn from_prefix(prefix: &str) -> ObjectType {
        match prefix {
            "contact" => ObjectType::Contact,
            "company" => ObjectType::Company,
            "deal" => ObjectType::Deal,
            "ticket" => ObjectType::Ticket,
            "object" | "" => ObjectType::Unknown,
            _ => ObjectType::Other,
        }
    }

    /// From an `objectTypeId` (`0-1` contacts, `0-2` companies, `0-3` deals, `0-5` tickets).
    pub fn from_type_id(id: &str) -> ObjectType {
        match id {
            "0-1" => ObjectType::Contact,
            "0-2" => ObjectType::Company,
            "0-3" => ObjectType::Deal,
            "0-5" => ObjectType::Ticket,
            "" => ObjectType::Unknown,
            _ => ObjectType::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Unknown => "unknown",
            ObjectType::Contact => "contact",
            ObjectType::Company => "company",
            ObjectType::Deal => "deal",
            ObjectType::Ticket => "ticket",
            ObjectType::Other => "other",
        }
    }
}

impl ObjectEvent {
    /// Keeps each object's last event (by time; at one moment a restore follows the
    /// deletion it undoes), sorted by object: what decides whether it is deleted, so
    /// events can be compacted as they come without changing the outcome.
    pub fn keep_last(events: &mut Vec<ObjectEvent>) {
        events.sort_unstable();
        // Sorted by (object, time, change): each object's last is the one before the next.
        let mut keep = 0;
        for i in 0..events.len() {
            if events
                .get(i + 1)
                .is_none_or(|n| n.object_id != events[i].object_id)
            {
                events[keep] = events[i];
                keep += 1;
            }
        }
        events.truncate(keep);
    }
}

/// What happened to the object. Ordered so that, at the same moment, a restore follows the
/// deletion it undoes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ObjectChange {
    /// Deleted (`*.deletion`, `*.privacyDeletion`), or merged into another (`*.merge`).
    Deleted,
    /// Brought back (`*.restore`).
    Restored,
}

/// The most bytes one property value may hold; a longer one rejects its record.
///
/// HubSpot caps a property value at 65,536 characters (at most 256 KiB of UTF-8): four
/// times that leaves room for other producers while keeping one value from filling the
/// memory a run is given.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The most bytes one record may hold: an NDJSON line, or one object's rows. A longer one is
/// rejected (an NDJSON line without being read into memory).
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// The string columns of a version row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrField {
    Value,
    SourceType,
    SourceId,
    SourceLabel,
}

impl StrField {
    /// The output column's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            StrField::Value => "value",
            StrField::SourceType => "source_type",
            StrField::SourceId => "source_id",
            StrField::SourceLabel => "source_label",
        }
    }
}

/// Builds one record's rows. Reused across records: [`RecordBuilder::begin`] clears it.
#[derive(Debug, Default)]
pub struct RecordBuilder {
    rows: Rows,
    /// The open version's row index, if one is open.
    open: Option<usize>,
    timestamp_set: bool,
    /// Rows of the open property whose version had no timestamp of its own: they take the
    /// property's (HubSpot's calculated properties), which may come after the versions.
    untimed: Vec<usize>,
    /// Property values met (a current value, not a version), to tell a record exported
    /// without histories from one that simply has no properties.
    values: u32,
    /// The record is one change (a webhook event), not histories.
    change: bool,
    error: Option<String>,
}

impl RecordBuilder {
    /// Starts a new record, dropping whatever the last one held.
    pub fn begin(&mut self) {
        self.rows.clear();
        self.open = None;
        self.untimed.clear();
        self.values = 0;
        self.change = false;
        self.error = None;
    }

    /// Marks the record as one change (a webhook event) rather than histories.
    pub fn mark_change(&mut self) {
        self.change = true;
    }

    /// Notes a property's current value (as opposed to a version).
    pub fn note_value(&mut self) {
        self.values = self.values.saturating_add(1);
    }

    /// Marks the record unreadable; the first reason is kept.
    pub fn fail(&mut self, reason: impl FnOnce() -> String) {
        if self.error.is_none() {
            self.error = Some(reason());
        }
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Opens a version row of property `property`; fields not set before
    /// [`RecordBuilder::end_version`] are null.
    pub fn begin_version(&mut self, property: u32) {
        debug_assert!(self.open.is_none(), "versions do not nest");
        let row = self.rows.len();
        self.rows.property.push(property);
        self.rows.object_id.push(0);
        self.rows.timestamp.push(0);
        self.rows.updated_by.push(None);
        self.open = Some(row);
        self.timestamp_set = false;
    }

    fn open_row(&self) -> usize {
        self.open.expect("a version is open")
    }

    /// The column for `field`, positioned so that the next value written becomes the open
    /// row's (a repeated key overwrites the earlier value: last one wins).
    pub fn str_column(&mut self, field: StrField) -> &mut StrColumn {
        let row = self.open_row();
        let col = match field {
            StrField::Value => &mut self.rows.value,
            StrField::SourceType => &mut self.rows.source_type,
            StrField::SourceId => &mut self.rows.source_id,
            StrField::SourceLabel => &mut self.rows.source_label,
        };
        col.truncate(row);
        col
    }

    pub fn set_timestamp(&mut self, ms: i64) {
        let row = self.open_row();
        self.rows.timestamp[row] = ms;
        self.timestamp_set = true;
    }

    pub fn set_updated_by(&mut self, user: Option<i64>) {
        let row = self.open_row();
        self.rows.updated_by.set(row, user);
    }

    /// Closes the open version. One without a timestamp waits for its property's
    /// ([`RecordBuilder::end_property`]). A record that grows past [`MAX_RECORD_BYTES`] fails
    /// and stops holding rows.
    pub fn end_version(&mut self) {
        let row = self.open_row();
        for col in [
            &mut self.rows.cols.value,
            &mut self.rows.cols.source_type,
            &mut self.rows.cols.source_id,
            &mut self.rows.cols.source_label,
        ] {
            if col.len() == row {
                col.push(None);
            }
        }
        self.open = None;
        if !self.timestamp_set {
            self.untimed.push(row);
        }
        // Rows cost their strings plus about 48 bytes of fixed columns.
        if self.rows.data_bytes() + self.rows.len() * 48 > MAX_RECORD_BYTES {
            self.fail(|| {
                format!(
                    "the record holds more than {} of versions, the most one record may hold",
                    crate::units::format_bytes(MAX_RECORD_BYTES as u64)
                )
            });
        }
        if self.error.is_some() {
            // A failed record is rejected whole: keep no rows, so memory stays bounded.
            self.rows.clear();
            self.untimed.clear();
        }
    }

    /// Closes a property's versions: those without a timestamp of their own take the
    /// property's (`fallback`), or fail the record if it has none.
    pub fn end_property(
        &mut self,
        fallback: Option<&Result<i64, String>>,
        property_name: impl FnOnce() -> String,
    ) {
        if self.untimed.is_empty() {
            return;
        }
        match fallback {
            Some(Ok(ms)) => {
                for &row in &self.untimed {
                    self.rows.timestamp[row] = *ms;
                }
            }
            Some(Err(e)) => self.fail(|| {
                format!(
                    "a version of property {:?} has no timestamp, and the property's timestamp {e}",
                    property_name()
                )
            }),
            None => self.fail(|| {
                format!(
                    "a version of property {:?} has no timestamp (nor has the property)",
                    property_name()
                )
            }),
        }
        self.untimed.clear();
    }

    /// Abandons an open version (its record has already failed).
    pub fn abandon_version(&mut self) {
        if let Some(row) = self.open.take() {
            self.rows.truncate(row);
        }
    }

    /// Finishes the record: with its object id, hands the rows to `sink`, or rejects it.
    pub fn finish(
        &mut self,
        object_id: Result<i64, String>,
        index: u64,
        sink: &mut dyn RecordSink,
    ) {
        self.abandon_version();
        if !self.untimed.is_empty() {
            // A dialect whose versions have no property around them.
            self.untimed.clear();
            self.fail(|| "a version has no timestamp".into());
        }
        if let Some(reason) = self.error.take() {
            sink.reject(index, &reason);
            return;
        }
        match object_id {
            Ok(id) => {
                self.rows.object_id.fill(id);
                let carried = if self.change {
                    Carried::Change
                } else {
                    Carried::History
                };
                sink.record(index, &self.rows, carried);
                if self.rows.is_empty() && self.values > 0 {
                    sink.record_without_history();
                }
            }
            Err(reason) => sink.reject(index, &reason),
        }
    }

    /// The rows built so far (for tests and for sinks that inspect records).
    pub fn rows(&self) -> &Rows {
        &self.rows
    }
}

/// A [`RecordSink`] that keeps everything: for tests and small inputs.
#[derive(Debug, Default)]
pub struct CollectSink {
    pub rows: Rows,
    pub records: u64,
    pub rejects: Vec<(u64, String)>,
    pub events_without_version: u64,
    pub records_without_history: u64,
    pub object_events: Vec<ObjectEvent>,
}

impl RecordSink for CollectSink {
    fn record(&mut self, _: u64, rows: &Rows, _: Carried) {
        self.records += 1;
        for i in 0..rows.len() {
            self.rows.push_from(rows, i);
        }
    }

    fn reject(&mut self, index: u64, reason: &str) {
        self.rejects.push((index, reason.to_string()));
    }

    fn event_without_version(&mut self) {
        self.events_without_version += 1;
    }

    fn object_event(&mut self, event: ObjectEvent) {
        self.object_events.push(event);
    }

    fn record_without_history(&mut self) {
        self.records_without_history += 1;
    }
}

/// A [`PropertyIds`] over a plain map: for tests and single-threaded use.
#[derive(Debug, Default)]
pub struct LocalIds {
    pub names: Vec<String>,
    ids: hashbrown::HashMap<String, u32>,
}

impl PropertyIds for LocalIds {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    fn name(&self, id: u32) -> String {
        self.names[id as usize].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_fills_missing_fields_and_lets_the_last_key_win() {
        let mut b = RecordBuilder::default();
        let mut sink = CollectSink::default();
        b.begin();
        b.begin_version(3);
        b.str_column(StrField::Value).push(Some(b"first"));
        b.set_timestamp(10);
        b.str_column(StrField::Value).push(Some(b"second"));
        b.end_version();
        b.end_property(None, || "p".into());
        b.begin_version(4);
        b.set_timestamp(0);
        b.set_updated_by(Some(7));
        b.end_version();
        b.end_property(None, || "q".into());
        b.finish(Ok(99), 0, &mut sink);
        assert_eq!(sink.records, 1);
        let r0 = sink.rows.row(0);
        assert_eq!(
            (sink.rows.property[0], r0.object_id, r0.timestamp),
            (3, 99, 10)
        );
        assert_eq!(r0.value, Some(&b"second"[..]));
        assert_eq!(r0.source_type, None);
        let r1 = sink.rows.row(1);
        assert_eq!((r1.value, r1.updated_by_user_id), (None, Some(7)));
    }

    #[test]
    fn a_version_without_timestamp_takes_its_propertys_or_rejects_the_record() {
        let mut b = RecordBuilder::default();
        let mut sink = CollectSink::default();
        b.begin();
        b.begin_version(0);
        b.set_timestamp(1);
        b.end_version();
        b.end_property(None, || "ok".into());
        // HubSpot's calculated properties: the timestamp is the property's, after the versions.
        b.begin_version(1);
        b.end_version();
        b.end_property(Some(&Ok(0)), || "num_associated_contacts".into());
        b.finish(Ok(1), 4, &mut sink);
        assert_eq!(sink.records, 1);
        assert_eq!(sink.rows.timestamp, [1, 0]);

        b.begin();
        b.begin_version(1);
        b.end_version();
        b.end_property(None, || "email".into());
        b.finish(Ok(1), 5, &mut sink);
        assert_eq!(sink.records, 1);
        assert_eq!(
            sink.rejects,
            [(
                5,
                "a version of property \"email\" has no timestamp (nor has the property)"
                    .to_string()
            )]
        );

        // The builder is clean for the next record.
        b.begin();
        b.finish(Err("no object id".into()), 6, &mut sink);
        assert_eq!(sink.rejects[1].1, "no object id");
    }

    #[test]
    fn a_record_past_the_size_limit_is_rejected_and_holds_no_rows() {
        let mut b = RecordBuilder::default();
        let mut sink = CollectSink::default();
        b.begin();
        let value = vec![b'x'; MAX_VALUE_BYTES];
        for _ in 0..(MAX_RECORD_BYTES / MAX_VALUE_BYTES + 1) {
            b.begin_version(0);
            b.set_timestamp(1);
            b.str_column(StrField::Value).push(Some(&value));
            b.end_version();
            assert!(b.rows().data_bytes() <= MAX_RECORD_BYTES);
        }
        b.end_property(None, || "notes".into());
        b.finish(Ok(1), 0, &mut sink);
        assert_eq!(sink.records, 0);
        assert!(sink.rejects[0].1.contains("the most one record may hold"));
    }

    #[test]
    fn values_without_versions_are_told_apart_from_an_empty_record() {
        let mut b = RecordBuilder::default();
        let mut sink = CollectSink::default();
        b.begin();
        b.finish(Ok(1), 0, &mut sink);
        b.begin();
        b.note_value();
        b.finish(Ok(2), 1, &mut sink);
        assert_eq!((sink.records, sink.records_without_history), (2, 1));
    }
}
