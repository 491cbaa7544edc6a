//! The map stage on its own: input splits → rows routed into per-reducer batches.
//!
//! A [`Mapper`] reads the splits it is given ([`crate::input`]), explodes their records
//! ([`crate::explode`]) and routes the rows by the plan ([`crate::route`]) into whatever
//! [`Batches`] output its driver brings: bounded channels to reducer threads in a one-machine
//! run, memory in tests, a network exchange elsewhere. It knows nothing of threads: a driver
//! runs as many as it likes, each with its own output, and gathers their [`Mapped`].
//!
//! Counts: `counts.records_met` is what the input stage met, counted apart from what explode
//! made of it, so that [`crate::run::account`] can check one against the other.

use crate::error::Result;
use crate::explode::ObjectEvent;
use crate::input::{self, InputFile, MapperScratch, Split};
use crate::rejects::Reject;
use crate::route::{Batches, MapCounts, MapperIds, PropertyTable, Router};

/// What one mapper did: its counts, the records it could not read, and the objects its
/// input's webhook events deleted or restored.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Mapped {
    pub counts: MapCounts,
    pub rejects: Vec<Reject>,
    pub events: Vec<ObjectEvent>,
    /// Histories an upsert must merge, not replace: a version of them was rejected.
    pub partial: Vec<(u32, i64)>,
}

/// One mapper: its property-id cache, its open batches and its reusable buffers.
#[derive(Debug)]
pub struct Mapper<'a> {
    files: &'a [InputFile],
    ids: MapperIds<'a>,
    router: Router<'a>,
    scratch: MapperScratch,
}

impl<'a> Mapper<'a> {
    /// A mapper over `files` routing by `table`'s plan into `out`, in batches of about
    /// `batch_rows` rows.
    pub fn new(
        files: &'a [InputFile],
        table: &'a PropertyTable,
        out: Box<dyn Batches + 'a>,
        batch_rows: usize,
    ) -> Mapper<'a> {
        Mapper {
            files,
            ids: MapperIds::new(table),
            router: Router::new(table, out, batch_rows),
            scratch: MapperScratch::default(),
        }
    }

    /// With `on`, sends beside the rows the `(property, object)` pairs the input carries as
    /// histories ([`crate::batch::Rows::histories`]), for an upsert.
    pub fn with_histories(mut self, on: bool) -> Self {
        self.router.histories = on;
        self
    }

    /// Reads one split (an index into the files given to [`Mapper::new`]) and routes its
    /// rows. `Err` for a loss that cannot be counted (see [`crate::input`]).
    pub fn map(&mut self, split: &Split) -> Result<()> {
        input::read_split(
            self.files,
            split,
            &mut self.scratch,
            &mut self.ids,
            &mut self.router,
        )
    }

    /// Its counts so far.
    pub fn counts(&self) -> &MapCounts {
        &self.router.counts
    }

    /// Whether its output stopped taking batches (a reducer failed): map no more.
    pub fn stopped(&self) -> bool {
        self.router.disconnected
    }

    /// Hands on the batches still open and gives what it counted.
    pub fn finish(mut self) -> Mapped {
        self.router.flush();
        Mapped {
            counts: self.router.counts,
            rejects: std::mem::take(&mut self.router.rejects),
            events: std::mem::take(&mut self.router.events),
            partial: std::mem::take(&mut self.router.partial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use planner::{History, PlanParams};
    use std::sync::Arc;

    #[test]
    fn a_mapper_runs_without_threads_or_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.ndjson");
        std::fs::write(
            &path,
            b"{\"id\": 1, \"properties\": {\"a\": {\"versions\": [{\"value\": \"x\", \"timestamp\": 5}]}}}\n\
              not json\n\
              {\"id\": 2, \"properties\": {\"a\": {\"versions\": [{\"value\": \"y\", \"timestamp\": 6}]}, \"b\": {\"versions\": [{\"value\": \"z\", \"timestamp\": 7}]}}}\n",
        )
        .unwrap();
        let files = input::discover(
            &[path.to_string_lossy().into_owned()],
            &crate::store::Stores::default(),
        )
        .unwrap();
        let plan = Arc::new(planner::plan(&History::default(), &PlanParams::new(2)).unwrap());
        let table = PropertyTable::new(plan);
        let mut out: Vec<Vec<crate::batch::Rows>> = vec![Vec::new(); 2];
        let mapped = {
            let mut mapper = Mapper::new(&files, &table, Box::new(&mut out), 4);
            for split in input::splits(&files, 1 << 20).unwrap() {
                mapper.map(&split).unwrap();
            }
            mapper.finish()
        };
        assert_eq!(mapped.counts.records_met, 3);
        assert_eq!(mapped.counts.records, 2);
        assert_eq!(mapped.counts.rejected, 1);
        assert_eq!(mapped.rejects.len(), 1);
        let rows: usize = out.iter().flatten().map(|b| b.len()).sum();
        assert_eq!(rows as u64, mapped.counts.rows);
        assert_eq!(rows, 3);
    }
}
