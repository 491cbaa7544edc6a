//! JSON records of every dialect → version rows, in one pass and without per-row allocation.
//!
//! A JSON text (an NDJSON line, or a whole file) holds one or more top-level values. Each is a
//! record, an array of records, or an API page wrapping them (`{"results": [...]}`,
//! `{"contacts": [...], "has-more", "vid-offset"}`, `{"deals": [...]}`, `{"companies": [...]}`).
//! The dialect is recognised per record from its keys:
//!
//! | dialect | object id | versions |
//! |---|---|---|
//! | v1 contacts | `vid`, else `canonical-vid` | `properties.<p>.versions[]` |
//! | v1 deals / companies | `dealId` / `companyId` | `properties.<p>.versions[]` |
//! | v3 CRM | `id` (digits) | `propertiesWithHistory.<p>[]` (`properties` holds plain current values) |
//! | webhook event | `objectId` | the event itself: `propertyName`, `propertyValue`, `occurredAt` |
//!
//! and, failing a top-level id, `properties.hs_object_id` (its value). Webhook events that
//! are not property changes give no row; a deletion, privacy deletion, restore or merge
//! (by its `subscriptionType`) gives the sink an [`ObjectEvent`] per object it deletes or
//! restores (for a merge, its `mergedObjectIds`). Version fields of all
//! dialects map to the output columns by name (`source-type`/`source`/`sourceType`/
//! `changeSource` → `source_type`, …), so one version parser serves them all.
//!
//! serde visitors write each field straight into the [`RecordBuilder`]'s columns: keys are
//! matched without allocating, property names are interned as they are read, and a value's
//! unescaped text goes directly into its column's arena. A text that is one v1 record of the
//! usual shape (nearly every line of an API dump) is read first by a scanner of its own
//! (`fast`), which drives the same builder calls a quarter faster, and leaves anything else
//! to the visitors.
//!
//! Errors: a record whose content is wrong (a bad timestamp, a non-numeric id, a version that
//! is not an object) is consumed to its end and rejected alone ([`RecordSink::reject`]). A
//! syntax error stops the text it occurs in; [`explode_slice`] returns it with its position.

use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod fast;

use super::{
    MAX_VALUE_BYTES, ObjectChange, ObjectEvent, ObjectType, PropertyIds, RecordBuilder, RecordSink,
    StrField, timestamp,
};

/// Buffers the parser reuses from record to record (keep one per mapper).
#[derive(Debug, Default)]
pub struct JsonScratch {
    builder: RecordBuilder,
    /// A webhook event's fields, held until its object id is known.
    webhook: Webhook,
}

/// Where a streamed text's reader is, and where the record being read began, in bytes: the
/// reader refuses to go on past a record too long to hold ([`super::MAX_RECORD_BYTES`]).
#[derive(Debug, Default)]
pub struct StreamMark {
    pub pos: std::cell::Cell<u64>,
    pub record_start: std::cell::Cell<u64>,
}

/// What the parser needs across a JSON text. Cheap to make: one per text (NDJSON line).
pub struct JsonContext<'a> {
    builder: &'a mut RecordBuilder,
    webhook: &'a mut Webhook,
    pub ids: &'a mut dyn PropertyIds,
    pub sink: &'a mut dyn RecordSink,
    /// Records met so far in the current text (the index passed to `reject`).
    pub records: u64,
    /// Set once a top-level value has begun, to tell a clean end from a truncated value.
    started: bool,
    /// Stop after this many records (sampling); the text then ends early without an error.
    pub limit: Option<u64>,
    stopped: bool,
    /// For a streamed text: where each record starts is marked here.
    pub mark: Option<&'a StreamMark>,
    /// Whether a text may take the fast path ([`fast`]); off only to test it against the
    /// general parser.
    fast: bool,
}

impl fmt::Debug for JsonContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonContext")
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<'a> JsonContext<'a> {
    /// Reads every text with the general parser (benchmarks and tests of the fast path).
    #[doc(hidden)]
    pub fn general_only(&mut self) {
        self.fast = false;
    }

    pub fn new(
        scratch: &'a mut JsonScratch,
        ids: &'a mut dyn PropertyIds,
        sink: &'a mut dyn RecordSink,
    ) -> Self {
        JsonContext {
            builder: &mut scratch.builder,
            webhook: &mut scratch.webhook,
            ids,
            sink,
            records: 0,
            started: false,
            limit: None,
            stopped: false,
            mark: None,
            fast: true,
        }
    }
}

/// Explodes every top-level value in `bytes`. Returns the first syntax error, after which the
/// rest of `bytes` is not read; records before it have reached the sink.
pub fn explode_slice(bytes: &[u8], ctx: &mut JsonContext<'_>) -> Result<(), serde_json::Error> {
    // Checking the whole text once runs the validator's fast ASCII loop over long stretches;
    // from a `&str` the parser then skips its check of every string, most of them a few
    // bytes long, where the call costs more than the check (5 % of an NDJSON run's CPU).
    // A text that is not UTF-8 goes the checking way, which finds and reports the bad string.
    match std::str::from_utf8(bytes) {
        Ok(text) if ctx.fast && fast::explode_text(text, ctx) => Ok(()),
        Ok(text) => explode_values(&mut serde_json::Deserializer::from_str(text), ctx),
        Err(_) => explode_values(&mut serde_json::Deserializer::from_slice(bytes), ctx),
    }
}

/// [`explode_slice`] over a stream (a decompressing reader), for texts that are not NDJSON.
pub fn explode_reader(
    reader: impl Read,
    ctx: &mut JsonContext<'_>,
) -> Result<(), serde_json::Error> {
    explode_values(&mut serde_json::Deserializer::from_reader(reader), ctx)
}

fn explode_values<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    ctx: &mut JsonContext<'_>,
) -> Result<(), serde_json::Error> {
    loop {
        ctx.started = false;
        match Top(ctx).deserialize(&mut *de) {
            Ok(()) => {}
            Err(_) if ctx.stopped => return Ok(()),
            Err(e) if e.is_eof() && !ctx.started => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Keys matched on the transient `&str` (no allocation, even from a reader); any other key is
/// `Other`, or (with `digits:`) a key of digits alone is that variant.
macro_rules! keys {
    ($name:ident { $($variant:ident = $($s:literal)|+),* $(,)? } $(digits: $digits:ident)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum $name { $($variant,)* $($digits,)? Other }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string key")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        Ok(match s {
                            $($($s)|+ => $name::$variant,)*
                            $(_ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                                $name::$digits
                            })?
                            _ => $name::Other,
                        })
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

keys!(RecordKey {
    Page = "results" | "contacts" | "deals" | "companies",
    Vid = "vid",
    CanonicalVid = "canonical-vid",
    DealId = "dealId",
    CompanyId = "companyId",
    Id = "id",
    ObjectId = "objectId",
    Properties = "properties",
    History = "propertiesWithHistory",
    PropertyName = "propertyName",
    PropertyValue = "propertyValue",
    OccurredAt = "occurredAt",
    ChangeSource = "changeSource",
    SourceId = "sourceId",
    EventKind = "eventId" | "changeFlag",
    Subscription = "subscriptionType" | "eventType",
    MergedIds = "mergedObjectIds",
    PrimaryId = "primaryObjectId",
    NewId = "newObjectId",
    ObjectTypeId = "objectTypeId",
} digits: Keyed);

keys!(PropertyKey {
    Versions = "versions",
    Value = "value",
    Timestamp = "timestamp",
});

keys!(VersionKey {
    Value = "value",
    Timestamp = "timestamp",
    SourceType = "source-type" | "source" | "sourceType" | "changeSource",
    SourceId = "source-id" | "sourceId",
    SourceLabel = "source-label" | "sourceLabel",
    UpdatedBy = "updated-by-user-id" | "updatedByUserId",
});

/// The scalar visits a visitor does not expect, each handed to `self.$handler(what)` with
/// what was found ("a string", "a number", …).
macro_rules! unexpected_scalars {
    ($handler:ident: $($kind:ident),+) => { $(unexpected_scalars!(@ $handler $kind);)+ };
    (@ $h:ident str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { self.$h("a string") }
    };
    (@ $h:ident bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { self.$h("a boolean") }
    };
    (@ $h:ident i64) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { self.$h("a number") }
    };
    (@ $h:ident u64) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { self.$h("a number") }
    };
    (@ $h:ident f64) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { self.$h("a number") }
    };
    (@ $h:ident unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { self.$h("null") }
    };
}

/// One top-level value: a record, an array of them, or a page.
struct Top<'c, 'a>(&'c mut JsonContext<'a>);

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.started = true;
        object(map, self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.started = true;
        records(seq, self.0)
    }

    unexpected_scalars!(not_a_record: str, bool, i64, u64, f64, unit);
}

impl Top<'_, '_> {
    fn not_a_record<E>(self, what: &str) -> Result<(), E> {
        let ctx = self.0;
        ctx.started = true;
        let index = ctx.records;
        ctx.records += 1;
        ctx.sink.reject(
            index,
            &format!("expected a JSON object (a record), found {what}"),
        );
        Ok(())
    }
}

/// Records in an array (top-level, or a page's `results`).
fn records<'de, A: SeqAccess<'de>>(mut seq: A, ctx: &mut JsonContext<'_>) -> Result<(), A::Error> {
    while seq.next_element_seed(Top(&mut *ctx))?.is_some() {}
    Ok(())
}

/// Which id key a record offered; the lowest rank wins when a record has several.
#[derive(Default)]
struct ObjectIds {
    best: Option<(u8, Result<i64, String>)>,
    hs_object_id: Option<Result<i64, String>>,
}

impl ObjectIds {
    fn offer(&mut self, rank: u8, id: Result<i64, String>) {
        if self.best.as_ref().is_none_or(|(r, _)| rank < *r) {
            self.best = Some((rank, id));
        }
    }

    fn resolve(self) -> Result<i64, String> {
        match (self.best, self.hs_object_id) {
            (Some((_, id)), _) => id,
            (None, Some(id)) => id,
            (None, None) => Err(
                "no object id (vid, canonical-vid, dealId, companyId, id, objectId or \
                 properties.hs_object_id)"
                    .into(),
            ),
        }
    }
}

/// A webhook event's fields, reused across records.
#[derive(Debug, Default)]
struct Webhook {
    property: Option<u32>,
    value: crate::batch::StrColumn,
    source_type: crate::batch::StrColumn,
    source_id: crate::batch::StrColumn,
    occurred_at: Option<Result<i64, String>>,
    is_event: bool,
    /// What `subscriptionType` says the event is, and of which type of object.
    kind: EventKind,
    object_type: ObjectType,
    /// A merge's `mergedObjectIds` (`None`: absent), its `primaryObjectId`, `newObjectId`.
    merged: Option<Soft<()>>,
    merged_ids: Vec<i64>,
    primary: Option<Soft<i64>>,
    new_object: Option<Soft<i64>>,
}

impl Webhook {
    fn clear(&mut self) {
        self.property = None;
        self.value.clear();
        self.source_type.clear();
        self.source_id.clear();
        self.occurred_at = None;
        self.is_event = false;
        self.kind = EventKind::Other;
        self.object_type = ObjectType::Unknown;
        self.merged = None;
        self.merged_ids.clear();
        self.primary = None;
        self.new_object = None;
    }
}

/// The kinds of webhook event that change an object's life, from the last part of the
/// `subscriptionType` (`contact.deletion`, `object.privacyDeletion`, `deal.merge`, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum EventKind {
    Deletion,
    Restore,
    Merge,
    /// Creation, property change, association change, or no type at all.
    #[default]
    Other,
}

fn event_kind(subscription: &str) -> (EventKind, ObjectType) {
    let (prefix, last) = subscription.rsplit_once('.').unwrap_or(("", subscription));
    (event_kind_of(last), ObjectType::from_prefix(prefix))
}

fn event_kind_of(last: &str) -> EventKind {
    if last.eq_ignore_ascii_case("deletion") || last.eq_ignore_ascii_case("privacyDeletion") {
        EventKind::Deletion
    } else if last.eq_ignore_ascii_case("restore") {
        EventKind::Restore
    } else if last.eq_ignore_ascii_case("merge") {
        EventKind::Merge
    } else {
        EventKind::Other
    }
}

/// An object: a record, or a page of records.
fn object<'de, A: MapAccess<'de>>(mut map: A, ctx: &mut JsonContext<'_>) -> Result<(), A::Error> {
    if let Some(mark) = ctx.mark {
        mark.record_start.set(mark.pos.get());
    }
    ctx.builder.begin();
    ctx.webhook.clear();
    let mut ids = ObjectIds::default();
    let mut page = false;
    while let Some(key) = map.next_key::<RecordKey>()? {
        match key {
            RecordKey::Page => {
                page |= map.next_value_seed(Page(&mut *ctx))?;
            }
            RecordKey::Vid => ids.offer(0, map.next_value_seed(IdSeed)?),
            RecordKey::CanonicalVid => ids.offer(1, map.next_value_seed(IdSeed)?),
            RecordKey::DealId => ids.offer(2, map.next_value_seed(IdSeed)?),
            RecordKey::CompanyId => ids.offer(3, map.next_value_seed(IdSeed)?),
            RecordKey::Id => ids.offer(4, map.next_value_seed(IdSeed)?),
            RecordKey::ObjectId => ids.offer(5, map.next_value_seed(IdSeed)?),
            RecordKey::Properties => {
                map.next_value_seed(Properties {
                    ctx: &mut *ctx,
                    ids: &mut ids,
                })?;
            }
            RecordKey::History => map.next_value_seed(History(&mut *ctx))?,
            RecordKey::PropertyName => {
                ctx.webhook.property = map.next_value_seed(NameSeed(&mut *ctx.ids))?;
                ctx.webhook.is_event = true;
            }
            RecordKey::PropertyValue => {
                ctx.webhook.value.clear();
                if let Err(e) = map.next_value_seed(Text(&mut ctx.webhook.value, true))? {
                    ctx.builder.fail(|| format!("propertyValue: {e}"));
                }
            }
            RecordKey::OccurredAt => {
                ctx.webhook.occurred_at = Some(map.next_value_seed(TimestampSeed)?);
                ctx.webhook.is_event = true;
            }
            RecordKey::ChangeSource => {
                ctx.webhook.source_type.clear();
                if let Err(e) = map.next_value_seed(Text(&mut ctx.webhook.source_type, false))? {
                    ctx.builder.fail(|| format!("changeSource: {e}"));
                }
            }
            RecordKey::SourceId => {
                ctx.webhook.source_id.clear();
                if let Err(e) = map.next_value_seed(Text(&mut ctx.webhook.source_id, false))? {
                    ctx.builder.fail(|| format!("sourceId: {e}"));
                }
            }
            RecordKey::EventKind => {
                map.next_value::<IgnoredAny>()?;
                ctx.webhook.is_event = true;
            }
            RecordKey::Subscription => {
                let (kind, object_type) = map.next_value_seed(KindSeed)?.unwrap_or_default();
                ctx.webhook.kind = kind;
                // A generic event's objectTypeId (before or after) says the type instead.
                if object_type != ObjectType::Unknown {
                    ctx.webhook.object_type = object_type;
                }
                ctx.webhook.is_event = true;
            }
            RecordKey::ObjectTypeId => {
                let object_type = map.next_value_seed(TypeIdSeed)?.unwrap_or_default();
                if object_type != ObjectType::Unknown {
                    ctx.webhook.object_type = object_type;
                }
            }
            RecordKey::MergedIds => {
                ctx.webhook.merged_ids.clear();
                ctx.webhook.merged =
                    Some(map.next_value_seed(IdList(&mut ctx.webhook.merged_ids))?);
            }
            RecordKey::PrimaryId => ctx.webhook.primary = Some(map.next_value_seed(IdSeed)?),
            RecordKey::NewId => ctx.webhook.new_object = Some(map.next_value_seed(IdSeed)?),
            // v1 batch reads answer `{"<vid>": {contact}, …}`: records keyed by their id.
            RecordKey::Keyed => {
                page |= map.next_value_seed(Keyed(&mut *ctx))?;
            }
            RecordKey::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    if page {
        // A page wraps records; it is not one itself.
        return Ok(());
    }
    let index = ctx.records;
    ctx.records += 1;
    if ctx.webhook.is_event {
        match ctx.webhook.property {
            Some(property) => webhook_version(ctx, property),
            // Creations, deletions, merges, association changes (which carry no objectId).
            None => {
                lifecycle_event(ctx, ids, index);
                return Ok(());
            }
        }
    }
    ctx.builder.finish(ids.resolve(), index, &mut *ctx.sink);
    if ctx.limit.is_some_and(|limit| ctx.records >= limit) {
        ctx.stopped = true;
        return Err(de::Error::custom("record limit reached"));
    }
    Ok(())
}

/// A webhook event that is not a property change: counted; a deletion, restore or merge also
/// tells the sink which objects it deleted or restored. One whose ids cannot be read is
/// rejected: the objects it would delete are unknown.
fn lifecycle_event(ctx: &mut JsonContext<'_>, ids: ObjectIds, index: u64) {
    let w = &*ctx.webhook;
    let change = match w.kind {
        EventKind::Deletion | EventKind::Merge => ObjectChange::Deleted,
        EventKind::Restore => ObjectChange::Restored,
        EventKind::Other => return ctx.sink.event_without_version(),
    };
    let occurred_at = match &w.occurred_at {
        Some(Ok(ms)) => *ms,
        Some(Err(e)) => return ctx.sink.reject(index, &format!("occurredAt: {e}")),
        None => i64::MIN,
    };
    let object_type = w.object_type;
    let event = |object_id| ObjectEvent {
        object_id,
        occurred_at,
        change,
        object_type,
    };
    if w.kind != EventKind::Merge {
        match ids.resolve() {
            Ok(id) => ctx.sink.object_event(event(id)),
            Err(e) => {
                return ctx
                    .sink
                    .reject(index, &format!("a deletion or restore event: {e}"));
            }
        }
        return ctx.sink.event_without_version();
    }
    // A merge deletes the objects merged away; when it made a new object, the primary too.
    let primary = match (&w.primary, &w.new_object) {
        (Some(Ok(primary)), Some(Ok(new))) if primary != new => Some(*primary),
        (Some(Err(e)), _) => return ctx.sink.reject(index, &format!("primaryObjectId: {e}")),
        (_, Some(Err(e))) => return ctx.sink.reject(index, &format!("newObjectId: {e}")),
        _ => None,
    };
    match &w.merged {
        Some(Ok(())) => {}
        Some(Err(e)) => return ctx.sink.reject(index, &format!("mergedObjectIds: {e}")),
        None => {
            return ctx.sink.reject(
                index,
                "a merge event without mergedObjectIds: the objects merged away are unknown",
            );
        }
    }
    for &id in w.merged_ids.iter().chain(&primary) {
        ctx.sink.object_event(event(id));
    }
    ctx.sink.event_without_version();
}

/// A webhook property change: one version built from the event's fields.
fn webhook_version(ctx: &mut JsonContext<'_>, property: u32) {
    let b = &mut *ctx.builder;
    let w = &*ctx.webhook;
    b.begin_version(property);
    for (field, col) in [
        (StrField::Value, &w.value),
        (StrField::SourceType, &w.source_type),
        (StrField::SourceId, &w.source_id),
    ] {
        if !col.is_empty() {
            b.str_column(field).push(col.get(0));
        }
    }
    match &w.occurred_at {
        Some(Ok(ms)) => b.set_timestamp(*ms),
        Some(Err(e)) => b.fail(|| format!("occurredAt: {e}")),
        None => {}
    }
    b.end_version();
    b.mark_change();
    let ids = &*ctx.ids;
    b.end_property(None, || ids.name(property));
}

/// The value of a key of digits: a record (an object) in a v1 batch read's map of records by
/// id; returns whether it was one.
struct Keyed<'c, 'a>(&'c mut JsonContext<'a>);

impl<'de> DeserializeSeed<'de> for Keyed<'_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl Keyed<'_, '_> {
    fn not_a_record<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
}

impl<'de> Visitor<'de> for Keyed<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        object(map, self.0)?;
        // The record used the builder; the map around it is not a record itself.
        self.0.builder.begin();
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    unexpected_scalars!(not_a_record: str, bool, i64, u64, f64, unit);
}

/// A page key's value: records if it is an array; returns whether it was.
struct Page<'c, 'a>(&'c mut JsonContext<'a>);

impl<'de> DeserializeSeed<'de> for Page<'_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl Page<'_, '_> {
    /// Anything but an array under a page key is just another field.
    fn not_records<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
}

impl<'de> Visitor<'de> for Page<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        records(seq, self.0)?;
        // The page's own builder state was used by its records; start the page afresh.
        self.0.builder.begin();
        Ok(true)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    unexpected_scalars!(not_records: str, bool, i64, u64, f64, unit);
}

/// `properties`: v1 `{name: {value, versions}}`, or v3 `{name: current value}` (ignored but
/// for `hs_object_id`), or `{name: [versions]}`.
struct Properties<'c, 'a, 'i> {
    ctx: &'c mut JsonContext<'a>,
    ids: &'i mut ObjectIds,
}

impl<'de> DeserializeSeed<'de> for Properties<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Properties<'_, '_, '_> {
    fn fail<E>(self, what: &str) -> Result<(), E> {
        self.ctx
            .builder
            .fail(|| format!("properties is {what}, not an object"));
        Ok(())
    }
}

impl<'de> Visitor<'de> for Properties<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of properties")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        while let Some((property, is_id)) = map.next_key_seed(PropertyName(&mut *ctx.ids))? {
            let id = map.next_value_seed(PropertyValue {
                ctx: &mut *ctx,
                property,
                capture_id: is_id,
            })?;
            if let Some(id) = id {
                self.ids.hs_object_id = Some(id);
            }
        }
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.fail("an array")
    }

    unexpected_scalars!(fail: str, bool, i64, u64, f64);
}

/// A property name as a map key: interned on the spot. Also says whether it is
/// `hs_object_id`, whose value doubles as the object id.
struct PropertyName<'c>(&'c mut dyn PropertyIds);

impl<'de> DeserializeSeed<'de> for PropertyName<'_> {
    type Value = (u32, bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(u32, bool), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for PropertyName<'_> {
    type Value = (u32, bool);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<(u32, bool), E> {
        Ok((self.0.id(name), name == "hs_object_id"))
    }
}

/// A webhook's `propertyName`: interned; `null` is no property.
struct NameSeed<'c>(&'c mut dyn PropertyIds);

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = Option<u32>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = Option<u32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Option<u32>, E> {
        Ok(Some(self.0.id(name)))
    }
    fn visit_unit<E>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }
}

/// One property's value under `properties`. Returns the object id it carries, if it is
/// `hs_object_id`.
struct PropertyValue<'c, 'a> {
    ctx: &'c mut JsonContext<'a>,
    property: u32,
    capture_id: bool,
}

type MaybeId = Option<Result<i64, String>>;

impl<'de> DeserializeSeed<'de> for PropertyValue<'_, '_> {
    type Value = MaybeId;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MaybeId, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PropertyValue<'_, '_> {
    type Value = MaybeId;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeId, A::Error> {
        let mut id = None;
        // The property's own timestamp, for versions without one (it may follow them).
        let mut timestamp = None;
        let (mut value, mut versions) = (false, false);
        while let Some(key) = map.next_key::<PropertyKey>()? {
            match key {
                PropertyKey::Versions => {
                    versions = true;
                    map.next_value_seed(Versions {
                        ctx: &mut *self.ctx,
                        property: self.property,
                    })?
                }
                PropertyKey::Value if self.capture_id => id = Some(map.next_value_seed(IdSeed)?),
                PropertyKey::Value => {
                    value |= map.next_value::<Option<IgnoredAny>>()?.is_some();
                }
                PropertyKey::Timestamp => timestamp = Some(map.next_value_seed(TimestampSeed)?),
                PropertyKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if value && !versions {
            self.ctx.builder.note_value();
        }
        let (ids, property) = (&*self.ctx.ids, self.property);
        self.ctx
            .builder
            .end_property(timestamp.as_ref(), || ids.name(property));
        Ok(id)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MaybeId, A::Error> {
        let ctx = self.ctx;
        Versions {
            ctx: &mut *ctx,
            property: self.property,
        }
        .visit_seq(seq)?;
        let (ids, property) = (&*ctx.ids, self.property);
        ctx.builder.end_property(None, || ids.name(property));
        Ok(None)
    }
    // v3 `properties` hold current values: only hs_object_id's is used (as the id).
    fn visit_str<E: de::Error>(self, v: &str) -> Result<MaybeId, E> {
        Ok(self.current_value(|| parse_id_text(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MaybeId, E> {
        Ok(self.current_value(|| Ok(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MaybeId, E> {
        Ok(self.current_value(|| id_from_u64(v)))
    }
    fn visit_f64<E>(self, _: f64) -> Result<MaybeId, E> {
        Ok(self.current_value(|| Err("object id is not a whole number".into())))
    }
    fn visit_bool<E>(self, _: bool) -> Result<MaybeId, E> {
        Ok(self.current_value(|| Err("object id is a boolean".into())))
    }
    fn visit_unit<E>(self) -> Result<MaybeId, E> {
        Ok(None)
    }
}

impl PropertyValue<'_, '_> {
    /// A v3 current value: the object id if this is `hs_object_id`, else noted (a record of
    /// current values only was exported without histories).
    fn current_value(self, id: impl FnOnce() -> Soft<i64>) -> MaybeId {
        if self.capture_id {
            return Some(id());
        }
        self.ctx.builder.note_value();
        None
    }
}

/// `propertiesWithHistory`: `{name: [versions]}`.
struct History<'c, 'a>(&'c mut JsonContext<'a>);

impl<'de> DeserializeSeed<'de> for History<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for History<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of version arrays")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.0;
        while let Some((property, _)) = map.next_key_seed(PropertyName(&mut *ctx.ids))? {
            map.next_value_seed(Versions {
                ctx: &mut *ctx,
                property,
            })?;
            let ids = &*ctx.ids;
            ctx.builder.end_property(None, || ids.name(property));
        }
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.0
            .builder
            .fail(|| "propertiesWithHistory is an array, not an object".into());
        Ok(())
    }
}

/// A property's versions: an array of version objects (`null`: none).
struct Versions<'c, 'a> {
    ctx: &'c mut JsonContext<'a>,
    property: u32,
}

impl<'de> DeserializeSeed<'de> for Versions<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Versions<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of versions")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Version {
                ctx: &mut *self.ctx,
                property: self.property,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.fail("an object")
    }

    unexpected_scalars!(fail: str, bool, i64, u64, f64);
}

impl Versions<'_, '_> {
    fn fail<E>(self, what: &str) -> Result<(), E> {
        let ids = &*self.ctx.ids;
        let property = self.property;
        self.ctx.builder.fail(|| {
            format!(
                "the versions of property {:?} are {what}, not an array",
                ids.name(property)
            )
        });
        Ok(())
    }
}

/// One version object → one row.
struct Version<'c, 'a> {
    ctx: &'c mut JsonContext<'a>,
    property: u32,
}

impl<'de> DeserializeSeed<'de> for Version<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Version<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a version object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let b = &mut *ctx.builder;
        b.begin_version(self.property);
        while let Some(key) = map.next_key::<VersionKey>()? {
            let field = match key {
                VersionKey::Value => StrField::Value,
                VersionKey::SourceType => StrField::SourceType,
                VersionKey::SourceId => StrField::SourceId,
                VersionKey::SourceLabel => StrField::SourceLabel,
                VersionKey::Timestamp => {
                    match map.next_value_seed(TimestampSeed)? {
                        Ok(ms) => b.set_timestamp(ms),
                        Err(e) => {
                            b.fail(|| format!("{}: timestamp {e}", quoted(ctx.ids, self.property)))
                        }
                    }
                    continue;
                }
                VersionKey::UpdatedBy => {
                    match map.next_value_seed(UserSeed)? {
                        Ok(user) => b.set_updated_by(user),
                        Err(e) => b.fail(|| {
                            format!("{}: updated-by-user-id {e}", quoted(ctx.ids, self.property))
                        }),
                    }
                    continue;
                }
                VersionKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let exact = field == StrField::Value;
            if let Err(e) = map.next_value_seed(Text(b.str_column(field), exact))? {
                b.fail(|| format!("{}: {} {e}", quoted(ctx.ids, self.property), field.name()));
            }
        }
        b.end_version();
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.fail("an array")
    }

    unexpected_scalars!(fail: str, bool, i64, u64, f64, unit);
}

impl Version<'_, '_> {
    fn fail<E>(self, what: &str) -> Result<(), E> {
        let ids = &*self.ctx.ids;
        let property = self.property;
        self.ctx.builder.fail(|| {
            format!(
                "a version of property {:?} is {what}, not an object",
                ids.name(property)
            )
        });
        Ok(())
    }
}

fn quoted(ids: &dyn PropertyIds, property: u32) -> String {
    format!("property {:?}", ids.name(property))
}

/// serde_json's name for a raw value: a seed that asks for it by this name is handed the
/// value's JSON text as it stands in the input (borrowed from a slice, without copying).
const RAW_VALUE: &str = "$serde_json::private::RawValue";

type Soft<T> = Result<T, String>;

/// Reads a value's raw JSON text: serde_json hands it over as a one-entry map.
struct Raw<F>(F);

impl<'de, T, F: FnOnce(&str) -> T> DeserializeSeed<'de> for Raw<F> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_newtype_struct(RAW_VALUE, self)
    }
}

impl<'de, T, F: FnOnce(&str) -> T> Visitor<'de> for Raw<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        map.next_key::<IgnoredAny>()?;
        map.next_value_seed(RawText(self.0))
    }
}

/// The raw text inside [`Raw`]'s map: a string (borrowed from a slice, owned from a reader).
struct RawText<F>(F);

impl<'de, T, F: FnOnce(&str) -> T> DeserializeSeed<'de> for RawText<F> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_str(self)
    }
}

impl<T, F: FnOnce(&str) -> T> Visitor<'_> for RawText<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("raw JSON text")
    }
    fn visit_str<E: de::Error>(self, raw: &str) -> Result<T, E> {
        Ok((self.0)(raw))
    }
}

/// A string-ish value into a column: strings as they are (unescaped), booleans as
/// `true`/`false`, `null` as null, numbers as their text. With `exact` (a version's value), a
/// number's text is as written, digit for digit (`1.50` stays `1.50`, a 30-digit integer stays
/// whole); without (source fields, where numbers are rare), as parsed. Objects, arrays and
/// values over [`MAX_VALUE_BYTES`] are `Err`, after being consumed.
struct Text<'c>(&'c mut crate::batch::StrColumn, bool);

impl<'de> DeserializeSeed<'de> for Text<'_> {
    type Value = Soft<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Soft<()>, D::Error> {
        if self.1 {
            let col = self.0;
            // The raw text costs an extra scan of each string: only where digits matter.
            return Raw(|raw: &str| text_into(raw, col)).deserialize(d);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text<'_> {
    type Value = Soft<()>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, v: &str) -> Result<Soft<()>, E> {
        if v.len() > MAX_VALUE_BYTES {
            return Ok(too_long(v.len()));
        }
        self.0.push(Some(v.as_bytes()));
        Ok(Ok(()))
    }
    fn visit_unit<E>(self) -> Result<Soft<()>, E> {
        self.0.push(None);
        Ok(Ok(()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Soft<()>, E> {
        self.0.push(Some(if v { b"true" } else { b"false" }));
        Ok(Ok(()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Soft<()>, E> {
        self.0.push_fmt(format_args!("{v}"));
        Ok(Ok(()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Soft<()>, E> {
        self.0.push_fmt(format_args!("{v}"));
        Ok(Ok(()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Soft<()>, E> {
        self.0.push_fmt(format_args!("{v}"));
        Ok(Ok(()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Soft<()>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err("is an object, not a string".into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Soft<()>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("is an array, not a string".into()))
    }
}

fn too_long(n: usize) -> Soft<()> {
    Err(format!(
        "is {}, more than the {} a value may hold",
        crate::units::format_bytes(n as u64),
        crate::units::format_bytes(MAX_VALUE_BYTES as u64)
    ))
}

fn text_into(raw: &str, col: &mut crate::batch::StrColumn) -> Soft<()> {
    match raw.as_bytes().first() {
        Some(b'"') => {
            // serde_json has checked the string; only its escapes are left to undo.
            let inner = &raw[1..raw.len() - 1];
            if inner.len() > MAX_VALUE_BYTES {
                return too_long(inner.len());
            }
            if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
                col.push(Some(inner.as_bytes()));
                return Ok(());
            }
            let unescaped = unescape(inner, col);
            if unescaped.is_err() {
                // Drop the half-written value.
                col.truncate(col.len());
            }
            unescaped
        }
        Some(b'n') => {
            col.push(None);
            Ok(())
        }
        Some(b'{') => Err("is an object, not a string".into()),
        Some(b'[') => Err("is an array, not a string".into()),
        // A number (its text, as written) or true/false.
        _ if raw.len() > MAX_VALUE_BYTES => too_long(raw.len()),
        _ => {
            col.push(Some(raw.as_bytes()));
            Ok(())
        }
    }
}

/// Writes the JSON string body `inner` (escapes valid: serde_json checked them) into `col`.
fn unescape(inner: &str, col: &mut crate::batch::StrColumn) -> Soft<()> {
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let Some(k) = memchr::memchr(b'\\', &b[i..]) else {
            col.extend_open(&b[i..]);
            break;
        };
        col.extend_open(&b[i..i + k]);
        i += k + 1;
        let Some(&e) = b.get(i) else {
            return Err("ends in a lone backslash".into());
        };
        i += 1;
        let byte = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = hex4(b, i)?;
                i += 4;
                let c = match unit {
                    0xd800..=0xdbff => {
                        let low = (b.get(i..i + 2) == Some(b"\\u"))
                            .then(|| hex4(b, i + 2).ok())
                            .flatten()
                            .filter(|l| (0xdc00..=0xdfff).contains(l));
                        let Some(low) = low else {
                            return Err(format!("holds a lone UTF-16 surrogate \\u{unit:04x}"));
                        };
                        i += 6;
                        char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
                    }
                    _ => char::from_u32(unit),
                };
                let Some(c) = c else {
                    return Err(format!("holds a lone UTF-16 surrogate \\u{unit:04x}"));
                };
                col.extend_open(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            other => return Err(format!("has an unknown escape \\{}", other as char)),
        };
        col.extend_open(&[byte]);
    }
    col.finish();
    Ok(())
}

fn hex4(b: &[u8], at: usize) -> Soft<u32> {
    b.get(at..at + 4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| "has a malformed \\u escape".into())
}

/// Defines a seed that reads a scalar leniently into `Soft<T>`: objects and arrays are
/// consumed and reported as soft errors.
macro_rules! scalar_seed {
    ($name:ident -> $t:ty, $expect:literal, {
        i64: $i:expr, u64: $u:expr, f64: $f:expr, str: $s:expr, null: $n:expr, bool: $b:expr $(,)?
    }) => {
        struct $name;
        impl<'de> DeserializeSeed<'de> for $name {
            type Value = Soft<$t>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Soft<$t>, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for $name {
            type Value = Soft<$t>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($expect)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Soft<$t>, E> {
                Ok($i(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Soft<$t>, E> {
                Ok($u(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Soft<$t>, E> {
                Ok($f(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Soft<$t>, E> {
                Ok($s(v))
            }
            fn visit_unit<E>(self) -> Result<Soft<$t>, E> {
                Ok($n)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Soft<$t>, E> {
                Ok($b(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Soft<$t>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Err("is an object".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Soft<$t>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Err("is an array".into()))
            }
        }
    };
}

fn id_from_u64(v: u64) -> Soft<i64> {
    i64::try_from(v).map_err(|_| format!("object id {v} is beyond the 64-bit signed range"))
}

fn parse_id_text(v: &str) -> Soft<i64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("object id {v:?} is not a whole number"));
    }
    v.parse()
        .map_err(|_| format!("object id {v:?} is beyond the 64-bit signed range"))
}

/// An object id from its JSON text as written: digits (or a string of digits). Anything else
/// is named as it was written (`1e3` is not reported as `1000`).
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = Soft<i64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Soft<i64>, D::Error> {
        Raw(raw_id).deserialize(d)
    }
}

fn raw_id(raw: &str) -> Soft<i64> {
    let shown = || crate::units::clip(raw, 40);
    match raw.as_bytes().first() {
        Some(b'"') => {
            let inner = &raw[1..raw.len() - 1];
            if inner.contains('\\') {
                return Err(format!("object id {} is not a whole number", shown()));
            }
            parse_id_text(inner)
        }
        Some(b'n') => Err("object id is null".into()),
        Some(b't' | b'f') => Err("object id is a boolean".into()),
        Some(b'{') => Err("object id is an object".into()),
        Some(b'[') => Err("object id is an array".into()),
        _ => {
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "object id {} is not a whole number written in digits",
                    shown()
                ));
            }
            raw.parse()
                .map_err(|_| format!("object id {} is beyond the 64-bit signed range", shown()))
        }
    }
}

scalar_seed!(KindSeed -> (EventKind, ObjectType), "an event type", {
    i64: |_| Ok(Default::default()),
    u64: |_| Ok(Default::default()),
    f64: |_| Ok(Default::default()),
    str: |v: &str| Ok(event_kind(v)),
    null: Ok(Default::default()),
    bool: |_| Ok(Default::default()),
});

scalar_seed!(TypeIdSeed -> ObjectType, "an object type id", {
    i64: |_| Ok(ObjectType::Other),
    u64: |_| Ok(ObjectType::Other),
    f64: |_| Ok(ObjectType::Other),
    str: |v: &str| Ok(ObjectType::from_type_id(v)),
    null: Ok(ObjectType::Unknown),
    bool: |_| Ok(ObjectType::Other),
});

/// The most ids one merge event may name: HubSpot merges a handful of records at a time.
const MAX_MERGED_IDS: usize = 10_000;

/// A merge event's `mergedObjectIds` into a list; `Err` (the whole value read) unless it is
/// an array of object ids.
struct IdList<'c>(&'c mut Vec<i64>);

impl<'de> DeserializeSeed<'de> for IdList<'_> {
    type Value = Soft<()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Soft<()>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdList<'_> {
    type Value = Soft<()>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of object ids")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Soft<()>, A::Error> {
        let mut bad = None;
        while let Some(id) = seq.next_element_seed(IdSeed)? {
            match id {
                Ok(_) if self.0.len() >= MAX_MERGED_IDS => {
                    bad.get_or_insert(format!(
                        "more than {MAX_MERGED_IDS} ids: not a merge of CRM records"
                    ));
                }
                Ok(id) => self.0.push(id),
                Err(e) => {
                    bad.get_or_insert(e);
                }
            }
        }
        if self.0.capacity() > MAX_MERGED_IDS {
            // One huge list must not keep its buffer for the rest of the input.
            self.0.shrink_to(MAX_MERGED_IDS);
        }
        Ok(bad.map_or(Ok(()), Err))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Soft<()>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.not_a_list("an object")
    }
    unexpected_scalars!(not_a_list: str, bool, i64, u64, f64, unit);
}

impl IdList<'_> {
    fn not_a_list<E>(self, what: &str) -> Result<Soft<()>, E> {
        Ok(Err(format!(
            "expected an array of object ids, found {what}"
        )))
    }
}

scalar_seed!(TimestampSeed -> i64, "a timestamp", {
    i64: timestamp::in_range,
    u64: |v: u64| i64::try_from(v).map_err(|_| format!("{v} is out of range")).and_then(timestamp::in_range),
    f64: |v: f64| timestamp::from_f64(v)
        .ok_or_else(|| format!("{v} is not whole milliseconds"))
        .and_then(timestamp::in_range),
    str: |v: &str| timestamp::parse(v.as_bytes())
        .ok_or_else(|| format!("{:?} is not epoch milliseconds or an ISO-8601 time", crate::units::clip(v, 40)))
        .and_then(timestamp::in_range),
    null: Err("is null".into()),
    bool: |_| Err("is a boolean".into()),
});

scalar_seed!(UserSeed -> Option<i64>, "a user id", {
    i64: |v| Ok(Some(v)),
    u64: |v: u64| i64::try_from(v).map(Some).map_err(|_| format!("{v} is out of range")),
    f64: |v: f64| Err(format!("{v} is not a whole number")),
    str: |v: &str| if v.is_empty() {
        Ok(None)
    } else {
        v.parse().map(Some).map_err(|_| format!("{v:?} is not a number"))
    },
    null: Ok(None),
    bool: |_| Err("is a boolean".into()),
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explode::{CollectSink, LocalIds};

    struct Out {
        sink: CollectSink,
        ids: LocalIds,
        error: Option<String>,
    }

    fn explode(text: &str) -> Out {
        let mut scratch = JsonScratch::default();
        let mut ids = LocalIds::default();
        let mut sink = CollectSink::default();
        let mut ctx = JsonContext::new(&mut scratch, &mut ids, &mut sink);
        let error = explode_slice(text.as_bytes(), &mut ctx)
            .err()
            .map(|e| e.to_string());
        Out { sink, ids, error }
    }

    /// (property, object, timestamp, value, source_type, source_id, source_label, user)
    type Flat = (
        String,
        i64,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );

    fn rows(out: &Out) -> Vec<Flat> {
        let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        (0..out.sink.rows.len())
            .map(|i| {
                let r = out.sink.rows.row(i);
                (
                    out.ids.names[out.sink.rows.property[i] as usize].clone(),
                    r.object_id,
                    r.timestamp,
                    s(r.value),
                    s(r.source_type),
                    s(r.source_id),
                    s(r.source_label),
                    r.updated_by_user_id,
                )
            })
            .collect()
    }

    #[test]
    fn v1_contact() {
        let out = explode(
            r#"{"vid": 3000000001, "canonical-vid": 3000000001, "portal-id": 62515,
                "properties": {
                  "email": {"value": "b@x.io", "versions": [
                     {"value": "b@x.io", "source-type": "CRM_UI", "source-id": "userId:9",
                      "source-label": null, "updated-by-user-id": 9, "timestamp": 1700000000000,
                      "selected": false},
                     {"value": "a@x.io", "timestamp": "1690000000000", "source-type": "FORM"}]},
                  "lifecyclestage": {"value": "", "versions": [{"value": "", "timestamp": 0}]},
                  "notes": {"value": null, "versions": []}
                }}"#,
        );
        assert_eq!(out.error, None);
        assert_eq!(out.sink.records, 1);
        let r = rows(&out);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            (
                "email".into(),
                3_000_000_001,
                1_700_000_000_000,
                Some("b@x.io".into()),
                Some("CRM_UI".into()),
                Some("userId:9".into()),
                None,
                Some(9)
            )
        );
        assert_eq!(r[1].2, 1_690_000_000_000);
        assert_eq!(r[1].7, None);
        assert_eq!(
            (r[2].0.as_str(), r[2].2, r[2].3.as_deref()),
            ("lifecyclestage", 0, Some(""))
        );
    }

    #[test]
    fn v1_deals_and_companies() {
        let out = explode(
            r#"{"portalId": 62515, "dealId": 42, "isDeleted": false, "properties": {
                 "amount": {"value": "100", "timestamp": 5, "source": "API", "sourceId": null,
                   "versions": [{"name": "amount", "value": "100", "timestamp": 5, "source": "API",
                                 "sourceId": "x", "sourceVid": [], "requestId": "r"}]}}}
               {"portalId": 1, "companyId": 7, "properties": {"name": {"versions": [
                 {"name": "name", "value": "Acme", "timestamp": 9, "source": "CRM_UI"}]}}}"#,
        );
        assert_eq!(out.error, None);
        let r = rows(&out);
        assert_eq!(
            r[0],
            (
                "amount".into(),
                42,
                5,
                Some("100".into()),
                Some("API".into()),
                Some("x".into()),
                None,
                None
            )
        );
        assert_eq!((r[1].1, r[1].3.as_deref()), (7, Some("Acme")));
    }

    #[test]
    fn v3_object_ignores_current_values() {
        let out = explode(
            r#"{"id": "5000000000", "properties": {"email": "b@x.io", "hs_object_id": "5000000000"},
                "propertiesWithHistory": {"email": [
                  {"value": "b@x.io", "timestamp": "2026-11-20T10:00:00.000Z", "sourceType": "CRM_UI",
                   "sourceId": "userId:1", "sourceLabel": "Jane", "updatedByUserId": 1},
                  {"value": "a@x.io", "timestamp": "2026-11-19T08:00:00Z", "sourceType": "FORM"}]},
                "createdAt": "2026-01-01T00:00:00Z", "archived": false}"#,
        );
        assert_eq!(out.error, None);
        let r = rows(&out);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].1, 5_000_000_000);
        assert_eq!(r[0].2, 1_795_168_800_000);
        assert_eq!((r[0].6.as_deref(), r[0].7), (Some("Jane"), Some(1)));
    }

    #[test]
    fn webhooks_and_non_property_events() {
        let out = explode(
            r#"[{"eventId": 1, "subscriptionType": "contact.propertyChange", "portalId": 9,
                 "objectId": 123, "propertyName": "email", "propertyValue": "a@b.c",
                 "changeSource": "CRM", "sourceId": "userId:5", "occurredAt": 1700000000000},
                {"eventId": 2, "subscriptionType": "contact.creation", "objectId": 124,
                 "occurredAt": 1700000000001},
                {"eventId": 3, "subscriptionType": "contact.propertyChange", "objectId": 125,
                 "propertyName": "phone", "propertyValue": null, "occurredAt": "1700000000002"}]"#,
        );
        assert_eq!(out.error, None);
        assert_eq!(out.sink.events_without_version, 1);
        let r = rows(&out);
        assert_eq!(
            r[0],
            (
                "email".into(),
                123,
                1_700_000_000_000,
                Some("a@b.c".into()),
                Some("CRM".into()),
                Some("userId:5".into()),
                None,
                None
            )
        );
        assert_eq!((r[1].1, r[1].3.clone()), (125, None));
    }

    #[test]
    fn deletion_restore_and_merge_events_name_the_objects_they_change() {
        use crate::explode::ObjectChange::{Deleted, Restored};
        let out = explode(
            r#"{"subscriptionType": "contact.deletion", "objectId": 1, "occurredAt": 10, "changeFlag": "DELETED"}
               {"subscriptionType": "contact.privacyDeletion", "objectId": "2", "occurredAt": 11}
               {"subscriptionType": "object.restore", "objectTypeId": "0-1", "objectId": 1, "occurredAt": "1970-01-01T00:00:00.020Z"}
               {"subscriptionType": "contact.merge", "objectId": 3, "primaryObjectId": 3,
                "mergedObjectIds": [4, "5"], "newObjectId": 3, "occurredAt": 12}
               {"subscriptionType": "deal.merge", "primaryObjectId": 6, "mergedObjectIds": [7],
                "newObjectId": 8}
               {"subscriptionType": "contact.creation", "objectId": 9, "occurredAt": 13}
               {"eventType": "company.deletion", "objectId": 10}"#,
        );
        assert_eq!(out.error, None);
        assert!(out.sink.rejects.is_empty(), "{:?}", out.sink.rejects);
        assert_eq!(out.sink.events_without_version, 7);
        assert_eq!(out.sink.records, 0);
        let events: Vec<(i64, i64, ObjectChange)> = out
            .sink
            .object_events
            .iter()
            .map(|e| (e.object_id, e.occurred_at, e.change))
            .collect();
        assert_eq!(
            events,
            [
                (1, 10, Deleted),
                (2, 11, Deleted),
                (1, 20, Restored),
                (4, 12, Deleted),
                (5, 12, Deleted),
                // A merge into a new object deletes the primary too.
                (7, i64::MIN, Deleted),
                (6, i64::MIN, Deleted),
                (10, i64::MIN, Deleted),
            ]
        );
        use crate::explode::ObjectType::{Company, Contact, Deal};
        let types: Vec<_> = out
            .sink
            .object_events
            .iter()
            .map(|e| e.object_type)
            .collect();
        assert_eq!(
            types,
            [
                Contact, Contact, Contact, Contact, Contact, Deal, Deal, Company
            ]
        );
    }

    #[test]
    fn a_merge_of_too_many_ids_is_rejected() {
        let ids: Vec<String> = (0..10_001).map(|i| i.to_string()).collect();
        let text = format!(
            r#"{{"subscriptionType": "contact.merge", "mergedObjectIds": [{}]}}"#,
            ids.join(",")
        );
        let out = explode(&text);
        assert!(out.sink.object_events.is_empty());
        assert_eq!(out.sink.rejects.len(), 1);
        assert!(
            out.sink.rejects[0].1.contains("more than 10000 ids"),
            "{:?}",
            out.sink.rejects
        );
    }

    #[test]
    fn an_event_whose_objects_are_unknown_is_rejected() {
        let out = explode(
            r#"{"subscriptionType": "contact.merge", "objectId": 3, "primaryObjectId": 3}
               {"subscriptionType": "contact.merge", "mergedObjectIds": "4,5"}
               {"subscriptionType": "contact.merge", "mergedObjectIds": [4, "x"]}
               {"subscriptionType": "contact.merge", "mergedObjectIds": [4], "primaryObjectId": null}
               {"subscriptionType": "contact.deletion", "occurredAt": 5}
               {"subscriptionType": "contact.deletion", "objectId": 5, "occurredAt": "soon"}"#,
        );
        assert_eq!(out.error, None);
        assert!(out.sink.object_events.is_empty());
        assert_eq!(out.sink.events_without_version, 0);
        let reasons: Vec<&str> = out.sink.rejects.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(reasons.len(), 6, "{reasons:?}");
        assert!(
            reasons[0].contains("without mergedObjectIds"),
            "{}",
            reasons[0]
        );
        assert!(reasons[1].contains("found a string"), "{}", reasons[1]);
        assert!(reasons[2].contains("\"x\""), "{}", reasons[2]);
        assert!(reasons[3].starts_with("primaryObjectId"), "{}", reasons[3]);
        assert!(reasons[4].contains("no object id"), "{}", reasons[4]);
        assert!(reasons[5].starts_with("occurredAt"), "{}", reasons[5]);
    }

    #[test]
    fn pages_of_records() {
        let out = explode(
            r#"{"contacts": [{"vid": 1, "properties": {"a": {"versions": [{"value": "x", "timestamp": 1}]}}},
                             {"vid": 2, "properties": {}}],
                "has-more": true, "vid-offset": 2}
               {"results": [{"id": "3", "propertiesWithHistory": {"a": [{"value": "y", "timestamp": 2}]}}],
                "paging": {"next": {"after": "3"}}}
               {"deals": [{"dealId": 4, "properties": {"a": {"versions": [{"value": "z", "timestamp": 3}]}}}]}"#,
        );
        assert_eq!(out.error, None);
        assert_eq!(out.sink.records, 4);
        let objects: Vec<i64> = rows(&out).iter().map(|r| r.1).collect();
        assert_eq!(objects, [1, 3, 4]);
    }

    #[test]
    fn id_fallbacks_and_priorities() {
        let out = explode(
            r#"{"properties": {"hs_object_id": {"value": "77", "versions": [{"value": "77", "timestamp": 1}]}}}
               {"canonical-vid": 8, "vid": 9, "properties": {}}
               {"properties": {"hs_object_id": "78"}, "propertiesWithHistory": {"a": [{"value": "v", "timestamp": 1}]}}"#,
        );
        assert_eq!(out.error, None);
        let objects: Vec<i64> = rows(&out).iter().map(|r| r.1).collect();
        assert_eq!(objects, [77, 78]);
        assert_eq!(out.sink.records, 3);
    }

    #[test]
    fn bad_records_are_rejected_alone() {
        let out = explode(
            r#"[{"vid": "abc", "properties": {}},
                {"vid": 18446744073709551615, "properties": {}},
                {"vid": 1, "properties": {"a": {"versions": [{"value": "x", "timestamp": "soon"}]}}},
                {"vid": 2, "properties": {"a": {"versions": [{"value": "x"}]}}},
                {"vid": 3, "properties": {"a": {"versions": [{"value": {"nested": 1}, "timestamp": 1}]}}},
                {"vid": 4, "properties": {"a": {"versions": "none"}}},
                {"properties": {"a": {"versions": [{"value": "x", "timestamp": 1}]}}},
                {"vid": 5, "properties": {"a": {"versions": [{"value": "ok", "timestamp": 1}]}}},
                42,
                {"vid": 6, "properties": {"a": {"versions": [7]}}},
                {"vid": 7, "properties": {"a": {"versions": [{"timestamp": 1, "updated-by-user-id": "bob"}]}}}]"#,
        );
        assert_eq!(out.error, None);
        assert_eq!(out.sink.records, 1);
        assert_eq!(rows(&out).len(), 1);
        let reasons: Vec<&str> = out.sink.rejects.iter().map(|(_, r)| r.as_str()).collect();
        let expect = [
            "object id \"abc\" is not a whole number",
            "beyond the 64-bit signed range",
            "timestamp \"soon\" is not epoch milliseconds",
            "has no timestamp",
            "value is an object",
            "are a string, not an array",
            "no object id",
            "expected a JSON object (a record), found a number",
            "is a number, not an object",
            "updated-by-user-id \"bob\" is not a number",
        ];
        assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
        for (got, want) in reasons.iter().zip(expect) {
            assert!(got.contains(want), "{got:?} should contain {want:?}");
        }
        let indices: Vec<u64> = out.sink.rejects.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]);
    }

    #[test]
    fn syntax_errors_stop_the_text_with_a_position() {
        let out = explode("{\"vid\": 1, \"properties\": {}}\n{\"vid\": 2,, }");
        assert_eq!(out.sink.records, 1);
        let err = out.error.unwrap();
        assert!(err.contains("line 2 column 11"), "{err}");
        let out = explode("{\"vid\": 1, \"properties\": {\"a\": ");
        assert!(out.error.unwrap().contains("EOF"));
        assert_eq!(out.sink.records, 0);
        let out = explode("  \n ");
        assert_eq!((out.error, out.sink.records), (None, 0));
    }

    #[test]
    fn escapes_numbers_and_unicode_values() {
        let out = explode(
            r#"{"vid": 1, "properties": {"a\/b": {"versions": [
                {"value": "line\nbreak \u00e9 \ud83d\ude00", "timestamp": 1},
                {"value": 12.5, "timestamp": 2}, {"value": true, "timestamp": 3},
                {"value": -7, "timestamp": 4.0}]}}}"#,
        );
        assert_eq!(out.error, None);
        let r = rows(&out);
        assert_eq!(r[0].0, "a/b");
        assert_eq!(r[0].3.as_deref(), Some("line\nbreak é 😀"));
        let values: Vec<_> = r.iter().skip(1).map(|r| r.3.clone().unwrap()).collect();
        assert_eq!(values, ["12.5", "true", "-7"]);
        assert_eq!(r[3].2, 4);
    }
    #[test]
    fn numbers_keep_their_digits_and_ids_are_named_as_written() {
        let out = explode(
            r#"{"vid": 1, "properties": {"n": {"versions": [
                {"value": 12345678901234567890123, "timestamp": 1},
                {"value": 1.50, "timestamp": 2}, {"value": -0.0, "timestamp": 3},
                {"value": 1e-400, "timestamp": 4}, {"value": "tab\tand \"q\" \u00e9\ud83d\ude00", "timestamp": 5}]}}}
               {"vid": 1e3, "properties": {}}
               {"vid": 2, "properties": {"n": {"versions": [{"value": 1, "timestamp": 9223372036854775806}]}}}
               {"vid": 3, "properties": {"n": {"versions": [{"value": "\ud800", "timestamp": 1}]}}}"#,
        );
        assert_eq!(out.error, None);
        let values: Vec<_> = rows(&out).iter().map(|r| r.3.clone().unwrap()).collect();
        assert_eq!(
            values,
            [
                "12345678901234567890123",
                "1.50",
                "-0.0",
                "1e-400",
                "tab\tand \"q\" é😀"
            ]
        );
        let reasons: Vec<&str> = out.sink.rejects.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons[0].contains("object id 1e3 is not a whole number"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("outside 0001-01-01 to 9999-12-31"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("lone UTF-16 surrogate"), "{reasons:?}");
    }

    #[test]
    fn a_value_over_the_maximum_rejects_its_record() {
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        let out = explode(&format!(
            r#"{{"vid": 1, "properties": {{"n": {{"versions": [{{"value": "{big}", "timestamp": 1}}]}}}}}}
               {{"vid": 2, "properties": {{"n": {{"versions": [{{"value": "{}", "timestamp": 1}}]}}}}}}"#,
            &big[1..]
        ));
        assert_eq!(out.sink.records, 1);
        assert!(
            out.sink.rejects[0]
                .1
                .contains("more than the 1.0 MiB a value may hold")
        );
    }

    #[test]
    fn records_of_current_values_only_are_counted_as_without_history() {
        let out = explode(
            r#"{"id": "1", "properties": {"email": "a@b.c", "hs_object_id": "1"}}
               {"vid": 2, "properties": {"email": {"value": "a@b.c"}}}
               {"vid": 3, "properties": {"email": {"value": "a@b.c", "versions": []}}}
               {"vid": 4, "properties": {}}"#,
        );
        assert_eq!(out.sink.records, 4);
        assert_eq!(out.sink.records_without_history, 2);
    }

    #[test]
    fn a_record_limit_ends_the_text_quietly() {
        let mut scratch = JsonScratch::default();
        let mut ids = LocalIds::default();
        let mut sink = CollectSink::default();
        let mut ctx = JsonContext::new(&mut scratch, &mut ids, &mut sink);
        ctx.limit = Some(2);
        let text = r#"[{"vid": 1}, {"vid": 2}, {"vid": 3}, {"vid": "#;
        assert!(explode_slice(text.as_bytes(), &mut ctx).is_ok());
        assert_eq!(sink.records, 2);
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        // Ignored fields are skipped iteratively, at any depth.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let out = explode(&format!(
            "{{\"vid\": 1, \"x\": {}, \"properties\": {{}}}}",
            deep(100_000)
        ));
        assert_eq!((out.error, out.sink.records), (None, 1));
        // Where a version must be, nesting rejects the record.
        let out = explode(&format!(
            "{{\"vid\": 2, \"properties\": {{\"a\": {{\"versions\": [{}]}}}}}}",
            deep(100_000)
        ));
        assert_eq!(out.error, None);
        assert!(out.sink.rejects[0].1.contains("is an array, not an object"));
    }
}
