//! Route: the mapper side of the partitioner.
//!
//! Takes each accepted record's rows from explode and hands them, batched per reducer, to a
//! [`Batches`] output (the reducers' bounded channels in a one-machine run; any transport
//! another driver brings): a row of object `o` and property `p` goes to
//! `plan.route(p).reducer(object_hash(o))`.
//!
//! ```text
//!   explode ──rows of one record──► Router ──Rows per reducer, flushed at batch_rows──► Batches(r)
//!                                     │ routes[p] (local copy, filled on first use)
//!                                     ▼
//!                               PropertyTable (shared: name ↔ id, plan routes; locked on a miss)
//! ```
//!
//! Property names are interned once per run in the shared [`PropertyTable`]; each mapper keeps
//! its own cache ([`MapperIds`]) so the lock is taken only the first time a mapper meets a
//! name. The object hash is computed once per record, not per row.
//!
//! Memory: per mapper, one open batch per reducer (at most `batch_rows` rows); per channel, a
//! bounded number of batches in flight. A full channel blocks the mapper (backpressure).

use std::sync::{Arc, Mutex, PoisonError};

use planner::{Plan, Route, object_hash};

use crate::batch::Rows;
use crate::explode::{PropertyIds, RecordSink};
use crate::rejects::Reject;

/// Batches a reducer's channel holds before mappers wait.
pub const CHANNEL_BATCHES: usize = 8;

/// Where a mapper's full batches go, by reducer: channels, a network exchange, memory.
pub trait Batches: Send {
    /// Hands `batch` on to reducer `reducer`; `false` if it can no longer take any (it
    /// failed), which stops the mapper early.
    fn send(&mut self, reducer: usize, batch: Rows) -> bool;
}

impl<B: Batches + ?Sized> Batches for &mut B {
    fn send(&mut self, reducer: usize, batch: Rows) -> bool {
        (**self).send(reducer, batch)
    }
}

/// One bounded channel per reducer (blocking when full: backpressure).
impl Batches for Vec<crossbeam_channel::Sender<Rows>> {
    fn send(&mut self, reducer: usize, batch: Rows) -> bool {
        self[reducer].send(batch).is_ok()
    }
}

/// Every batch kept in memory, per reducer (tests, small inputs, other drivers).
impl Batches for Vec<Vec<Rows>> {
    fn send(&mut self, reducer: usize, batch: Rows) -> bool {
        self[reducer].push(batch);
        true
    }
}

/// Every property name a run has met, its id and its route.
#[derive(Debug)]
pub struct PropertyTable {
    plan: Arc<Plan>,
    inner: Mutex<Names>,
}

#[derive(Debug, Default)]
struct Names {
    names: Vec<Arc<str>>,
    ids: hashbrown::HashMap<Arc<str>, u32>,
    /// Per id: where its rows go, or why they cannot be written.
    routes: Vec<Result<Route, Arc<str>>>,
}

impl PropertyTable {
    pub fn new(plan: Arc<Plan>) -> Self {
        PropertyTable {
            plan,
            inner: Mutex::default(),
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Names> {
        // A panicking mapper cannot leave the table half-updated (each update is one push).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id of `name`, interning it (and computing its route) the first time.
    pub fn intern(&self, name: &str) -> u32 {
        let mut t = self.lock();
        if let Some(&id) = t.ids.get(name) {
            return id;
        }
        let id = u32::try_from(t.names.len()).expect("fewer than 2^32 property names");
        let name: Arc<str> = Arc::from(name);
        let route = match crate::layout::unwritable(&name) {
            Some(reason) => Err(Arc::from(reason)),
            None => Ok(self.plan.route(&name)),
        };
        t.routes.push(route);
        t.names.push(name.clone());
        t.ids.insert(name, id);
        id
    }

    /// Where rows of property `id` go, or why they cannot be written.
    pub fn route(&self, id: u32) -> Result<Route, Arc<str>> {
        self.lock().routes[id as usize].clone()
    }

    pub fn name(&self, id: u32) -> Arc<str> {
        self.lock().names[id as usize].clone()
    }

    /// All names by id (a snapshot).
    pub fn names(&self) -> Vec<Arc<str>> {
        self.lock().names.clone()
    }
}

/// A mapper's property ids: a local cache in front of the shared table.
#[derive(Debug)]
pub struct MapperIds<'t> {
    table: &'t PropertyTable,
    cache: hashbrown::HashMap<Box<str>, u32>,
}

impl<'t> MapperIds<'t> {
    pub fn new(table: &'t PropertyTable) -> Self {
        MapperIds {
            table,
            cache: hashbrown::HashMap::new(),
        }
    }
}

impl PropertyIds for MapperIds<'_> {
    #[inline]
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.cache.get(name) {
            return id;
        }
        let id = self.table.intern(name);
        self.cache.insert(name.into(), id);
        id
    }

    fn name(&self, id: u32) -> String {
        self.table.name(id).to_string()
    }
}

/// What a mapper counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapCounts {
    /// Records accepted (exploded), including those without versions.
    pub records: u64,
    pub rejected: u64,
    pub events_without_version: u64,
    pub rows: u64,
    /// Versions rejected alone (Parquet input, where a record's other versions were kept).
    pub versions_rejected: u64,
    /// Records with property values but no version history (counted in `records` too).
    pub records_without_history: u64,
    /// Records met in the input, counted by the input stage independently of the outcome
    /// (`records + rejected` must equal it).
    pub records_met: u64,
}

/// Where the records being exploded come from, for rejects.
#[derive(Clone, Debug, Default)]
pub struct UnitLocation {
    pub file: Arc<str>,
    pub line: Option<u64>,
    pub offset: Option<u64>,
    pub row_group: Option<usize>,
}

/// A mapper's [`RecordSink`]: routes rows into per-reducer batches and sends full ones.
pub struct Router<'t> {
    table: &'t PropertyTable,
    /// Rows per batch: large enough to amortise the channel, small enough that every batch in
    /// flight fits the memory plan.
    batch_rows: usize,
    /// String bytes per batch: long values end a batch early, so that what is in flight stays
    /// within the memory plan whatever the values' sizes.
    batch_bytes: usize,
    routes: Vec<Option<Result<Route, Arc<str>>>>,
    batches: Vec<Rows>,
    out: Box<dyn Batches + 't>,
    pub counts: MapCounts,
    pub rejects: Vec<Reject>,
    /// Deletions and restores the input's webhook events carry, as met.
    pub events: Vec<crate::explode::ObjectEvent>,
    /// Its length when last compacted.
    events_compacted: usize,
    /// `(property, object)` histories sent with a version rejected (Parquet input, which
    /// rejects versions alone): an upsert merges them instead of replacing.
    pub partial: Vec<(u32, i64)>,
    /// Set by the input stage before each unit it explodes.
    pub location: UnitLocation,
    /// Set when a reducer has gone away (it failed): the mapper stops early.
    pub disconnected: bool,
    /// Per reducer, row indices of the chunk being routed (reused).
    pending: Vec<Vec<u32>>,
    /// Whether to send with the rows the `(property, object)` pairs carried as histories
    /// ([`Rows::histories`]): an upsert replaces those.
    pub histories: bool,
    /// Test hook (`SKEWER_FAIL_AT=lose-row`): count one row as routed but never send it, so
    /// that tests can see the run's own accounting catch a lost row.
    lose_a_row: bool,
}

impl std::fmt::Debug for Router<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// String bytes a batch of `batch_rows` rows may hold before it is sent.
pub fn batch_bytes(batch_rows: usize) -> usize {
    batch_rows.max(1) * 64
}

impl<'t> Router<'t> {
    /// A router for `table`'s plan handing batches of about `batch_rows` to `out`.
    pub fn new(table: &'t PropertyTable, out: Box<dyn Batches + 't>, batch_rows: usize) -> Self {
        let batches = (0..table.plan().reducers())
            .map(|_| Rows::default())
            .collect();
        Router {
            table,
            batch_rows: batch_rows.max(1),
            batch_bytes: batch_bytes(batch_rows),
            routes: Vec::new(),
            batches,
            out,
            counts: MapCounts::default(),
            rejects: Vec::new(),
            events: Vec::new(),
            events_compacted: 0,
            partial: Vec::new(),
            location: UnitLocation::default(),
            disconnected: false,
            pending: Vec::new(),
            histories: false,
            lose_a_row: std::env::var("SKEWER_FAIL_AT").is_ok_and(|p| p == "lose-row"),
        }
    }

    #[inline]
    fn route(&mut self, property: u32) -> Result<Route, &str> {
        let i = property as usize;
        if i >= self.routes.len() {
            self.routes.resize(i + 1, None);
        }
        if self.routes[i].is_none() {
            self.routes[i] = Some(self.table.route(property));
        }
        match self.routes[i].as_ref().expect("filled above") {
            Ok(r) => Ok(*r),
            Err(reason) => Err(reason),
        }
    }

    #[inline]
    fn full(&self, reducer: usize) -> bool {
        let b = &self.batches[reducer];
        b.len() >= self.batch_rows || b.data_bytes() >= self.batch_bytes
    }

    fn send(&mut self, reducer: usize) {
        let full = std::mem::take(&mut self.batches[reducer]);
        if !self.out.send(reducer, full) {
            self.disconnected = true;
        }
    }

    /// Sends every open batch; call once the mapper's input is done.
    pub fn flush(&mut self) {
        for r in 0..self.batches.len() {
            if !self.batches[r].is_empty() {
                self.send(r);
            }
        }
    }
}

impl Router<'_> {
    /// `count` whole records rejected at once (a damaged Parquet row group, a file that is
    /// not a dump), with one line in the rejects.
    pub fn reject_records(&mut self, count: u64, reason: &str) {
        self.counts.rejected += count;
        self.push_reject(0, reason);
    }

    fn push_reject(&mut self, index: u64, reason: &str) {
        self.rejects.push(Reject {
            file: self.location.file.clone(),
            line: self.location.line,
            offset: self.location.offset,
            row_group: self.location.row_group,
            record: index,
            reason: reason.to_string(),
        });
    }
}

impl crate::explode::parquet::ParquetSink for Router<'_> {
    fn rows(&mut self, rows: &Rows) {
        // Group the rows' indices by reducer, then move each group column by column.
        let mut pending = std::mem::take(&mut self.pending);
        pending.resize_with(self.batches.len(), Vec::new);
        // Rows moved at a time: a batch's worth, fewer where values are long, so that a batch
        // ends near `batch_bytes` whatever the values' sizes.
        let per_row = rows.data_bytes() / rows.len().max(1) + 1;
        let chunk_rows = (self.batch_bytes / per_row).clamp(1, self.batch_rows);
        for i in 0..rows.len() {
            match self.route(rows.property[i]) {
                Ok(route) => {
                    let r = route.reducer(object_hash(rows.object_id[i])) as usize;
                    pending[r].push(i as u32);
                    // Nested Parquet versions are histories; an object's come together.
                    let (p, o) = (rows.property[i], rows.object_id[i]);
                    if self.histories
                        && (i == 0 || (rows.property[i - 1], rows.object_id[i - 1]) != (p, o))
                    {
                        self.batches[r].histories.push((p, o));
                    }
                }
                Err(reason) => {
                    let reason = reason.to_string();
                    crate::explode::parquet::ParquetSink::reject_versions(self, 0, 1, &reason);
                }
            }
        }
        for (r, idx) in pending.iter_mut().enumerate() {
            if idx.is_empty() {
                continue;
            }
            self.counts.rows += idx.len() as u64;
            for chunk in idx.chunks(chunk_rows) {
                self.batches[r].append_indices(rows, chunk);
                if self.full(r) {
                    self.send(r);
                }
            }
            idx.clear();
        }
        self.pending = pending;
    }

    fn records(&mut self, n: u64) {
        self.counts.records += n;
    }

    fn reject(&mut self, index: u64, reason: &str) {
        self.counts.rejected += 1;
        self.push_reject(index, reason);
    }

    fn partial_history(&mut self, property: u32, object: i64) {
        if self.histories {
            self.partial.push((property, object));
        }
    }

    fn reject_versions(&mut self, index: u64, count: u64, reason: &str) {
        self.counts.versions_rejected += count;
        let reason = if count == 1 {
            reason.to_string()
        } else {
            format!("{count} versions: {reason}")
        };
        self.push_reject(index, &reason);
    }
}

impl RecordSink for Router<'_> {
    fn record(&mut self, index: u64, rows: &Rows, carried: crate::explode::Carried) {
        // A record is read whole or rejected whole: check every row can be written first.
        for i in 0..rows.len() {
            if let Err(reason) = self.route(rows.property[i]) {
                let reason = reason.to_string();
                RecordSink::reject(self, index, &reason);
                return;
            }
        }
        self.counts.records += 1;
        self.counts.rows += rows.len() as u64;
        if rows.is_empty() {
            return;
        }
        // A record is one object: hash its id once for all its rows.
        let hash = object_hash(rows.object_id[0]);
        let histories = self.histories && carried == crate::explode::Carried::History;
        for i in 0..rows.len() {
            if self.lose_a_row {
                self.lose_a_row = false;
                continue;
            }
            let Ok(route) = self.route(rows.property[i]) else {
                continue; // checked above
            };
            let reducer = route.reducer(hash) as usize;
            // A record's versions of a property come together.
            if histories && (i == 0 || rows.property[i - 1] != rows.property[i]) {
                self.batches[reducer]
                    .histories
                    .push((rows.property[i], rows.object_id[i]));
            }
            self.batches[reducer].push_from(rows, i);
            if self.full(reducer) {
                self.send(reducer);
            }
        }
    }

    fn reject(&mut self, index: u64, reason: &str) {
        self.counts.rejected += 1;
        self.push_reject(index, reason);
    }

    fn event_without_version(&mut self) {
        self.counts.events_without_version += 1;
    }

    fn object_event(&mut self, event: crate::explode::ObjectEvent) {
        self.events.push(event);
        // Only each object's last event matters: a stream of events about the same objects
        // holds one each (amortised: compacted each time the list doubles).
        if self.events.len() >= self.events_compacted.max(4096) * 2 {
            crate::explode::ObjectEvent::keep_last(&mut self.events);
            self.events_compacted = self.events.len();
        }
    }

    fn record_without_history(&mut self) {
        self.counts.records_without_history += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Row;
    use planner::{History, PlanParams};

    /// Events are compacted as they come (each object's last), with the same outcome as
    /// keeping them all.
    #[test]
    fn a_stream_of_events_keeps_each_objects_last() {
        use crate::explode::{ObjectChange, ObjectEvent, ObjectType, RecordSink};
        let plan = Arc::new(planner::plan(&History::default(), &PlanParams::new(2)).unwrap());
        let table = PropertyTable::new(plan);
        let mut out: Vec<Vec<Rows>> = vec![Vec::new(); 2];
        let mut router = Router::new(&table, Box::new(&mut out), 64);
        let mut all = Vec::new();
        for i in 0..30_000i64 {
            let e = ObjectEvent {
                object_id: i % 97,
                occurred_at: (i * 7919) % 1000,
                change: if i % 3 == 0 {
                    ObjectChange::Restored
                } else {
                    ObjectChange::Deleted
                },
                object_type: ObjectType::Contact,
            };
            all.push(e);
            router.object_event(e);
        }
        assert!(router.events.len() < 10_000, "{}", router.events.len());
        let mut kept = router.events.clone();
        ObjectEvent::keep_last(&mut kept);
        ObjectEvent::keep_last(&mut all);
        assert_eq!(kept, all);
        assert_eq!(all.len(), 97);
    }

    #[test]
    fn rows_reach_the_reducer_the_plan_names() {
        let plan = Arc::new(planner::plan(&History::default(), &PlanParams::new(3)).unwrap());
        let table = PropertyTable::new(plan.clone());
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..3)
            .map(|_| crossbeam_channel::bounded(CHANNEL_BATCHES))
            .unzip();
        let mut ids = MapperIds::new(&table);
        let mut router = Router::new(&table, Box::new(senders), 8192);
        let email = ids.id("email");
        assert_eq!(ids.id("email"), email);
        let phone = ids.id("phone");

        let mut rows = Rows::default();
        for (p, ts) in [(email, 1), (phone, 2), (email, 3)] {
            rows.push(
                p,
                &Row {
                    object_id: 77,
                    timestamp: ts,
                    value: Some(b"v"),
                    source_type: None,
                    source_id: None,
                    source_label: None,
                    updated_by_user_id: None,
                },
            );
        }
        router.record(0, &rows, crate::explode::Carried::History);
        router.reject(4, "bad");
        router.flush();
        drop(router);

        let mut got = 0;
        for (r, rx) in receivers.iter().enumerate() {
            for batch in rx.try_iter() {
                for i in 0..batch.len() {
                    let name = table.name(batch.property[i]);
                    assert_eq!(planner::reducer(&plan, &name, 77), r as u32);
                    got += 1;
                }
            }
        }
        assert_eq!(got, 3);
        assert_eq!(table.names().len(), 2);
    }
}
