//! The reduce side over timely dataflow: the mappers' batches enter timely workers, whose
//! exchange carries each one to the worker that owns its reducer.
//!
//! ```text
//!  mapper threads ─► bounded feed ─► W timely workers: input ─► exchange(reducer % W) ─► reduce
//!                   (backpressure)    (epochs; a worker stops feeding while its probe lags)
//! ```
//!
//! Takes the run's [`Job`] and the feed the mappers send `(reducer, rows)` into; gives each
//! reducer's rows ([`Received`]), for the same write phase as the one-machine driver
//! ([`super::threads`]). Reducer `r` lives on worker `r % W`. What a reducer holds, and so
//! every byte written, does not depend on which worker fed a batch or when: the output is the
//! same as over channels. This is what runs across processes once the workers span several
//! (issue 16); on one process it is a second driver, tested against the first.
//!
//! Bounded: the feed is a bounded channel (mappers block when the workers lag), and a worker
//! feeds at most [`LAG_EPOCHS`] epochs of [`EPOCH_BATCHES`] batches ahead of what its probe
//! has seen reduced.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandleVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Exchange, Operator, Probe};

use super::threads::{Job, Received, received};
use crate::batch::{Columns, Rows};
use crate::error::{Error, Result};
use crate::reduce::Reducer;
use crate::route::{Batches, PropertyTable};

/// Batches a worker feeds per epoch.
pub const EPOCH_BATCHES: u64 = 4;
/// Epochs a worker may feed ahead of what has been reduced.
pub const LAG_EPOCHS: u64 = 4;

/// The mappers' side of the feed. Property ids are this process's (the order its mappers
/// met the names in): a batch for a reducer on another process carries the names of the
/// properties it holds, and its ids index those names.
pub struct Feed<'a> {
    sender: Sender<Batch>,
    table: &'a PropertyTable,
    /// Per reducer: whether it lives on this process.
    local: Vec<bool>,
    /// The table's names, as last copied (ids only grow).
    names: Vec<Arc<str>>,
    /// Per id of this process: its place in the batch being sent (`u32::MAX`: none yet).
    place: Vec<u32>,
}

impl<'a> Feed<'a> {
    pub fn new(sender: Sender<Batch>, table: &'a PropertyTable, local: Vec<bool>) -> Self {
        Feed {
            sender,
            table,
            local,
            names: Vec::new(),
            place: Vec::new(),
        }
    }

    /// Rewrites `rows`' property ids as places in the names it returns.
    fn name_ids(&mut self, rows: &mut Rows) -> Vec<Arc<str>> {
        let top = rows
            .property
            .iter()
            .chain(rows.histories.iter().map(|h| &h.0))
            .max();
        if top.is_some_and(|&top| top as usize >= self.names.len()) {
            self.names = self.table.names();
        }
        self.place.resize(self.names.len(), u32::MAX);
        let mut carried: Vec<Arc<str>> = Vec::new();
        let mut used: Vec<u32> = Vec::new();
        let (place, names) = (&mut self.place, &self.names);
        let mut rename = |id: &mut u32| {
            let p = &mut place[*id as usize];
            if *p == u32::MAX {
                *p = carried.len() as u32;
                carried.push(names[*id as usize].clone());
                used.push(*id);
            }
            *id = *p;
        };
        rows.property.iter_mut().for_each(&mut rename);
        rows.histories.iter_mut().for_each(|h| rename(&mut h.0));
        for id in used {
            self.place[id as usize] = u32::MAX;
        }
        carried
    }
}

impl Batches for Feed<'_> {
    fn send(&mut self, reducer: usize, mut rows: Rows) -> bool {
        let names = match self.local.get(reducer) {
            Some(true) => Vec::new(),
            _ => self.name_ids(&mut rows),
        };
        let reducer = u32::try_from(reducer).expect("reducer indices fit u32");
        self.sender
            .send(Batch {
                reducer,
                rows,
                names,
            })
            .is_ok()
    }
}

/// A batch of rows for one reducer, as timely carries it (between processes, encoded as
/// the spill blocks are, with the rows' property ids, their names and an upsert's history
/// pairs).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub reducer: u32,
    pub rows: Rows,
    /// Empty: the ids are the receiving process's (the batch stayed on its process). Else
    /// the ids index these names (it came from another process).
    pub names: Vec<Arc<str>>,
}

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encode())
    }
}

fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    let n = u32::try_from(values.len()).expect("a batch holds under 4 G rows");
    out.extend_from_slice(&n.to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

impl Batch {
    /// The reducer, the names, the property ids, the history pairs, then the rows as a
    /// spill block.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.rows.heap_bytes() + 64);
        out.extend_from_slice(&self.reducer.to_le_bytes());
        let names = u32::try_from(self.names.len()).expect("under 4 G names");
        out.extend_from_slice(&names.to_le_bytes());
        for name in &self.names {
            let len = u32::try_from(name.len()).expect("a name under 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        put_u32s(&mut out, &self.rows.property);
        let pairs = u32::try_from(self.rows.histories.len()).expect("under 4 G pairs");
        out.extend_from_slice(&pairs.to_le_bytes());
        for &(p, o) in &self.rows.histories {
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&o.to_le_bytes());
        }
        self.rows.cols.encode(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Batch, String> {
        let mut at = Cursor { bytes, at: 0 };
        let reducer = at.u32()?;
        let count = at.u32()? as usize;
        let mut names = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let len = at.u32()? as usize;
            let name = std::str::from_utf8(at.take(len)?).map_err(|_| "a name not in UTF-8")?;
            names.push(Arc::from(name));
        }
        let n = at.u32()? as usize;
        let property: Vec<u32> = at
            .take(n.checked_mul(4).ok_or("too many rows")?)?
            .chunks_exact(4)
            .map(u32_at)
            .collect();
        let pairs = at.u32()? as usize;
        let histories: Vec<(u32, i64)> = at
            .take(pairs.checked_mul(12).ok_or("too many pairs")?)?
            .chunks_exact(12)
            .map(|c| {
                let object = i64::from_le_bytes(c[4..].try_into().expect("8 bytes"));
                (u32_at(&c[..4]), object)
            })
            .collect();
        let mut cols = Columns::default();
        cols.decode(at.rest()).map_err(|e| format!("{e:?}"))?;
        if cols.len() != n {
            return Err(format!("{n} property ids for {} rows", cols.len()));
        }
        // Only batches that cross processes are encoded, and those name their properties:
        // every id must index the names (ids without them would be read as the receiver's).
        let mut ids = property.iter().chain(histories.iter().map(|h| &h.0));
        if let Some(id) = ids.find(|&&id| id as usize >= names.len()) {
            return Err(format!("property {id} of a batch naming {}", names.len()));
        }
        Ok(Batch {
            reducer,
            rows: Rows {
                property,
                cols,
                histories,
            },
            names,
        })
    }
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// Reads an encoded batch front to back; a read past its end is an error, not a panic.
struct Cursor<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Cursor<'b> {
    fn take(&mut self, n: usize) -> std::result::Result<&'b [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("a batch cut at byte {}", self.at))?;
        let piece = &self.bytes[self.at..end];
        self.at = end;
        Ok(piece)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        self.take(4).map(u32_at)
    }

    fn rest(&mut self) -> &'b [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Batch, D::Error> {
        struct Bytes;
        impl Visitor<'_> for Bytes {
            type Value = Batch;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an encoded batch of rows")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Batch, E> {
                Batch::decode(v).map_err(E::custom)
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// What a timely worker gives back: its reducers (with when each got its first row), or
/// the first error one of them met.
type WorkerResult = std::result::Result<Vec<(u32, Reducer, Option<Instant>)>, Error>;

/// Where the timely workers run: `threads` of this process, and in a multi-process run the
/// other processes' workers, reached through `mesh`. Worker `w` of the run is thread
/// `w % threads` of process `w / threads`; reducer `r` lives on worker `r % workers`.
#[derive(Debug)]
pub struct Workers {
    pub threads: usize,
    /// This process's index.
    pub process: usize,
    /// A socket to every other process, in process order (this process's place empty), as
    /// [`crate::cluster::mesh`] connects them; empty: this process alone.
    pub mesh: Vec<Option<std::net::TcpStream>>,
}

impl Workers {
    /// `threads` workers on this process alone.
    pub fn local(threads: usize) -> Workers {
        Workers {
            threads: threads.max(1),
            process: 0,
            mesh: Vec::new(),
        }
    }

    /// Processes in the run.
    pub fn processes(&self) -> usize {
        self.mesh.len().max(1)
    }

    /// The process reducer `r` lives on.
    pub fn owner(&self, r: u32) -> usize {
        let workers = self.threads * self.processes();
        (r as usize % workers) / self.threads
    }

    /// Whether reducer `r` lives on this process.
    pub fn owns(&self, r: u32) -> bool {
        self.owner(r) == self.process
    }
}

/// Receives the mappers' batches from `fed` on the timely `workers`, each reducer on its
/// owning worker, until every mapper (of every process) is done; gives the rows of each
/// reducer this process owns, in reducer order.
pub(super) fn reduce(
    job: &Job<'_>,
    fed: Receiver<Batch>,
    workers: Workers,
) -> Result<Vec<Received>> {
    let reducers = job.table.plan().reducers();
    let budget = job.memory.reducer_budget;
    let spill_dir = job.spill_dir.to_path_buf();
    let table = job.table.clone();
    let work = move |worker: &mut timely::worker::Worker| {
        run_worker(worker, &fed, &table, reducers, budget, &spill_dir)
    };
    let owns: Vec<bool> = (0..reducers).map(|r| workers.owns(r)).collect();
    let guards = if workers.mesh.is_empty() {
        timely::execute(timely::Config::process(workers.threads), work)
    } else {
        use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
        use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
        let hooks = timely::communication::Hooks::default();
        let local =
            ProcessBuilder::new_typed_vector(workers.threads, hooks.refill.clone(), hooks.spill.clone());
        let (tcp, guard) = initialize_networking_from_sockets(
            local,
            workers.mesh,
            workers.process,
            workers.threads,
            hooks,
        )
        .map_err(|e| Error::Bug(format!("timely's exchange did not start: {e}")))?;
        let builders = tcp.into_iter().map(AllocatorBuilder::Tcp).collect();
        timely::execute::execute_from(builders, Box::new(guard), timely::WorkerConfig::default(), work)
    }
    .map_err(|e| Error::Bug(format!("timely did not start: {e}")))?;
    let mut by_reducer: Vec<Option<Received>> = (0..reducers).map(|_| None).collect();
    let mut first_error = None;
    for result in guards.join() {
        let owned = match result {
            Ok(Ok(owned)) => owned,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(panic) => {
                first_error.get_or_insert(Error::Bug(format!("a timely worker failed: {panic}")));
                continue;
            }
        };
        for (r, state, first_row) in owned {
            by_reducer[r as usize] = Some(received(job, r, state, first_row));
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    by_reducer
        .into_iter()
        .enumerate()
        .filter(|&(r, _)| owns[r])
        .map(|(r, got)| got.ok_or_else(|| Error::Bug(format!("no worker owned reducer {r}"))))
        .collect()
}

/// One timely worker: feeds what it receives into the dataflow, reduces what the exchange
/// brings its reducers.
fn run_worker(
    worker: &mut timely::worker::Worker,
    fed: &Receiver<Batch>,
    table: &Arc<PropertyTable>,
    reducers: u32,
    budget: usize,
    spill_dir: &std::path::Path,
) -> WorkerResult {
    let (me, peers) = (worker.index(), worker.peers());
    let owned: Rc<RefCell<Vec<Owned>>> = Rc::new(RefCell::new(
        (0..reducers)
            .filter(|&r| r as usize % peers == me)
            .map(|r| Owned {
                reducer: r,
                state: Reducer::new(budget, spill_dir.join(format!("r{r}"))),
                first_row: None,
            })
            .collect(),
    ));
    let failed: Rc<RefCell<Option<Error>>> = Rc::new(RefCell::new(None));
    let mut input = InputHandleVec::<u64, Batch>::new();
    let (state, error, table) = (owned.clone(), failed.clone(), table.clone());
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut input)
            .exchange(move |b: &Batch| u64::from(b.reducer) % peers as u64)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "reduce", |_, _| {
                move |input, _output| {
                    input.for_each(|_time, data| {
                        let mut owned = state.borrow_mut();
                        for mut batch in data.drain(..) {
                            if error.borrow().is_some() {
                                continue;
                            }
                            if !batch.names.is_empty() {
                                // From another process: its ids become this process's.
                                let ids: Vec<u32> =
                                    batch.names.iter().map(|n| table.intern(n)).collect();
                                for p in &mut batch.rows.property {
                                    *p = ids[*p as usize];
                                }
                                for h in &mut batch.rows.histories {
                                    h.0 = ids[h.0 as usize];
                                }
                            }
                            // Owned reducers are in reducer order, `peers` apart.
                            let mine = batch.reducer as usize % peers == me;
                            let found = owned.get_mut(batch.reducer as usize / peers);
                            let Some(o) = found.filter(|_| mine) else {
                                *error.borrow_mut() = Some(Error::Bug(format!(
                                    "reducer {} reached a worker that does not own it",
                                    batch.reducer
                                )));
                                continue;
                            };
                            o.first_row.get_or_insert_with(Instant::now);
                            // A full spill disk: the run fails; the feed keeps being drained
                            // so that the mappers do not block.
                            if let Err(e) = o.state.add(&batch.rows) {
                                *error.borrow_mut() = Some(e);
                            }
                        }
                    });
                }
            })
            .probe()
            .0
    });
    let mut sent = 0u64;
    loop {
        match fed.recv_timeout(Duration::from_millis(1)) {
            Ok(batch) => {
                input.send(batch);
                sent += 1;
                if sent.is_multiple_of(EPOCH_BATCHES) {
                    let next = input.time() + 1;
                    input.advance_to(next);
                    // Bounded: wait for the reduce to come within LAG_EPOCHS epochs.
                    let behind = next.saturating_sub(LAG_EPOCHS);
                    while probe.less_than(&behind) {
                        worker.step();
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        worker.step();
        if failed.borrow().is_some() {
            break;
        }
    }
    drop(input);
    while !probe.done() {
        worker.step();
    }
    if let Some(e) = failed.borrow_mut().take() {
        return Err(e);
    }
    let owned = std::mem::take(&mut *owned.borrow_mut());
    Ok(owned
        .into_iter()
        .map(|o| (o.reducer, o.state, o.first_row))
        .collect())
}

/// A reducer a worker owns.
struct Owned {
    reducer: u32,
    state: Reducer,
    /// When its first row arrived.
    first_row: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Row;

    /// A batch crosses the wire whole (rows, nulls, property ids, history pairs), and a cut
    /// or padded one is refused, not misread.
    #[test]
    fn a_batch_survives_the_wire_and_a_damaged_one_is_refused() {
        let mut rows = Rows::default();
        for i in 0..50i64 {
            let value = format!("v{i}");
            rows.push(
                (i % 7) as u32,
                &Row {
                    object_id: i / 2,
                    timestamp: 1_700_000_000_000 + i,
                    value: (i % 5 != 0).then_some(value.as_bytes()),
                    source_type: Some(b"CRM_UI"),
                    source_id: None,
                    source_label: (i % 3 == 0).then_some(&b"label"[..]),
                    updated_by_user_id: (i % 4 == 0).then_some(i),
                },
            );
        }
        rows.histories = vec![(3, 10), (6, 24)];
        assert!(
            Batch::decode(
                &Batch {
                    reducer: 1,
                    rows: rows.clone(),
                    names: Vec::new()
                }
                .encode()
            )
            .is_err(),
            "rows that name no properties"
        );
        let names = (0..7).map(|p| Arc::from(format!("prop_{p}"))).collect();
        let batch = Batch {
            reducer: 7,
            rows,
            names,
        };
        let bytes = batch.encode();
        let back = Batch::decode(&bytes).unwrap();
        assert_eq!(back.reducer, 7);
        assert_eq!(back.names, batch.names);
        assert_eq!(back.rows.property, batch.rows.property);
        assert_eq!(back.rows.histories, batch.rows.histories);
        assert!(back.rows.cols == batch.rows.cols);
        for cut in 0..bytes.len() {
            assert!(Batch::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Batch::decode(&padded).is_err(), "a trailing byte");
        let short = Batch {
            names: batch.names[..3].to_vec(),
            ..batch.clone()
        };
        let refused = Batch::decode(&short.encode()).unwrap_err();
        assert!(refused.contains("naming 3"), "{refused}");
    }

    /// A batch for another process names its properties, its ids become places in those
    /// names, and the next batch starts afresh; one for this process keeps its ids.
    #[test]
    fn a_batch_for_another_process_carries_its_names() {
        let params = planner::PlanParams::new(2);
        let plan = Arc::new(planner::plan(&planner::History::default(), &params).unwrap());
        let table = PropertyTable::new(plan);
        for name in ["a", "b", "c", "d"] {
            table.intern(name);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut feed = Feed::new(tx, &table, vec![true, false]);
        let row = Row {
            object_id: 1,
            timestamp: 2,
            value: None,
            source_type: None,
            source_id: None,
            source_label: None,
            updated_by_user_id: None,
        };
        let rows = |ids: &[u32]| {
            let mut rows = Rows::default();
            for &p in ids {
                rows.push(p, &row);
            }
            rows
        };
        assert!(feed.send(0, rows(&[3, 1, 3])));
        assert!(feed.send(1, rows(&[3, 1, 3])));
        assert!(feed.send(1, rows(&[2])));
        let local = rx.recv().unwrap();
        assert!(local.names.is_empty());
        assert_eq!(local.rows.property, vec![3, 1, 3]);
        let remote = rx.recv().unwrap();
        let names: Vec<&str> = remote.names.iter().map(|n| n.as_ref()).collect();
        assert_eq!(names, ["d", "b"]);
        assert_eq!(remote.rows.property, vec![0, 1, 0]);
        let next = rx.recv().unwrap();
        assert_eq!(next.names.len(), 1);
        assert_eq!(next.rows.property, vec![0]);
    }
}
