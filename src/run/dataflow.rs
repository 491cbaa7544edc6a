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
use crate::route::Batches;

/// Batches a worker feeds per epoch.
pub const EPOCH_BATCHES: u64 = 4;
/// Epochs a worker may feed ahead of what has been reduced.
pub const LAG_EPOCHS: u64 = 4;

/// The mappers' side of the feed.
pub struct Feed(pub Sender<Batch>);

impl Batches for Feed {
    fn send(&mut self, reducer: usize, rows: Rows) -> bool {
        let reducer = u32::try_from(reducer).expect("reducer indices fit u32");
        self.0.send(Batch { reducer, rows }).is_ok()
    }
}

/// A batch of rows for one reducer, as timely carries it (between processes, encoded as
/// the spill blocks are, with the rows' property ids and an upsert's history pairs).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub reducer: u32,
    pub rows: Rows,
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
    /// The reducer, the property ids, the history pairs, then the rows as a spill block.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.rows.heap_bytes() + 64);
        out.extend_from_slice(&self.reducer.to_le_bytes());
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
        let mut at = 0usize;
        let mut take = |n: usize| -> std::result::Result<&[u8], String> {
            let end = at.checked_add(n).filter(|&e| e <= bytes.len());
            let end = end.ok_or_else(|| format!("a batch cut at byte {at}"))?;
            let piece = &bytes[at..end];
            at = end;
            Ok(piece)
        };
        let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let reducer = u32_at(take(4)?);
        let n = u32_at(take(4)?) as usize;
        let property = take(n.checked_mul(4).ok_or("too many rows")?)?
            .chunks_exact(4)
            .map(u32_at)
            .collect();
        let pairs = u32_at(take(4)?) as usize;
        let histories = take(pairs.checked_mul(12).ok_or("too many pairs")?)?
            .chunks_exact(12)
            .map(|c| {
                let object = i64::from_le_bytes(c[4..].try_into().expect("8 bytes"));
                (u32_at(&c[..4]), object)
            })
            .collect();
        let rest = take(bytes.len() - 4 - 4 - 4 * n - 4 - 12 * pairs)?;
        let mut cols = Columns::default();
        cols.decode(rest).map_err(|e| format!("{e:?}"))?;
        if cols.len() != n {
            return Err(format!("{n} property ids for {} rows", cols.len()));
        }
        Ok(Batch {
            reducer,
            rows: Rows {
                property,
                cols,
                histories,
            },
        })
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

/// Receives the mappers' batches from `fed` on `workers` timely workers, each reducer on
/// its owning worker, until every mapper is done; gives each reducer's rows, in reducer
/// order.
pub(super) fn reduce(job: &Job<'_>, fed: Receiver<Batch>, workers: usize) -> Result<Vec<Received>> {
    let reducers = job.table.plan().reducers();
    let budget = job.memory.reducer_budget;
    let spill_dir = job.spill_dir.to_path_buf();
    let workers = workers.max(1);
    let config = timely::Config::process(workers);
    let guards = timely::execute(config, move |worker| {
        run_worker(worker, &fed, reducers, budget, &spill_dir)
    })
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
        .map(|(r, got)| got.ok_or_else(|| Error::Bug(format!("no worker owned reducer {r}"))))
        .collect()
}

/// One timely worker: feeds what it receives into the dataflow, reduces what the exchange
/// brings its reducers.
fn run_worker(
    worker: &mut timely::worker::Worker,
    fed: &Receiver<Batch>,
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
    let (state, error) = (owned.clone(), failed.clone());
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut input)
            .exchange(move |b: &Batch| u64::from(b.reducer) % peers as u64)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "reduce", |_, _| {
                move |input, _output| {
                    input.for_each(|_time, data| {
                        let mut owned = state.borrow_mut();
                        for batch in data.drain(..) {
                            if error.borrow().is_some() {
                                continue;
                            }
                            // Owned reducers are in reducer order, `peers` apart.
                            let Some(o) = owned.get_mut(batch.reducer as usize / peers) else {
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
        let batch = Batch { reducer: 7, rows };
        let bytes = batch.encode();
        let back = Batch::decode(&bytes).unwrap();
        assert_eq!(back.reducer, 7);
        assert_eq!(back.rows.property, batch.rows.property);
        assert_eq!(back.rows.histories, batch.rows.histories);
        assert!(back.rows.cols == batch.rows.cols);
        for cut in 0..bytes.len() {
            assert!(Batch::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Batch::decode(&padded).is_err(), "a trailing byte");
    }
}
