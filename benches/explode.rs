//! The explode hot loops, one mapper's work without routing: NDJSON records → version rows,
//! and nested Parquet row groups → version rows.
//!
//! `cargo bench --bench explode`. The input is a small `skewer gen` dump (2,000 v1 contacts ×
//! 1,280 properties, the field report's skew) made once in a temporary directory.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parquet::file::reader::FileReader;
use skewer::batch::Rows;
use skewer::explode::json::{JsonContext, JsonScratch, explode_slice};
use skewer::explode::parquet::{ParquetScratch, ParquetSink, explode_row_group, open};
use skewer::explode::{LocalIds, RecordSink};
use skewer::generate::{Format, GenConfig, generate};

const OBJECTS: u64 = 2_000;

/// Counts rows: the cheapest sink, so the figure is the explode alone.
#[derive(Default)]
struct Count {
    rows: u64,
}

impl RecordSink for Count {
    fn record(&mut self, _: u64, rows: &Rows, _: skewer::explode::Carried) {
        self.rows += rows.len() as u64;
    }
    fn reject(&mut self, index: u64, reason: &str) {
        panic!("record {index} rejected: {reason}");
    }
    fn event_without_version(&mut self) {}
    fn object_event(&mut self, _: skewer::explode::ObjectEvent) {}
    fn record_without_history(&mut self) {}
}

impl ParquetSink for Count {
    fn rows(&mut self, rows: &Rows) {
        self.rows += rows.len() as u64;
    }
    fn records(&mut self, _: u64) {}
    fn reject(&mut self, index: u64, reason: &str) {
        panic!("record {index} rejected: {reason}");
    }
    fn reject_versions(&mut self, index: u64, _: u64, reason: &str) {
        panic!("versions of record {index} rejected: {reason}");
    }
}

fn dump(dir: &Path, format: Format) -> (std::path::PathBuf, u64) {
    let mut g = GenConfig::new(dir);
    g.objects = OBJECTS;
    g.format = format;
    let expected = generate(&g).expect("generate the bench input");
    let file = std::fs::read_dir(dir)
        .expect("the generated dump")
        .map(|e| e.expect("a dump entry").path())
        .find(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('_'))
        })
        .expect("a generated file");
    (file, expected.rows)
}

fn explode(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("a temporary directory");

    let (path, rows) = dump(&tmp.path().join("ndjson"), Format::Ndjson);
    let text = std::fs::read(&path).expect("the NDJSON dump");
    let mut group = c.benchmark_group("explode");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    // The scanner for the common record, and serde_json's visitors that read the rest.
    for (name, fast) in [
        ("ndjson_v1_2000_objects", true),
        ("ndjson_v1_2000_objects_general", false),
    ] {
        group.bench_function(name, |b| {
            let (mut scratch, mut ids) = (JsonScratch::default(), LocalIds::default());
            b.iter(|| {
                let mut sink = Count::default();
                for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let mut ctx = JsonContext::new(&mut scratch, &mut ids, &mut sink);
                    if !fast {
                        ctx.general_only();
                    }
                    explode_slice(black_box(line), &mut ctx).expect("valid NDJSON");
                }
                assert_eq!(sink.rows, rows);
            })
        });
    }

    let (path, rows) = dump(&tmp.path().join("parquet"), Format::Parquet);
    let opened = open(skewer::source::LocalFile::open(&path).expect("the Parquet dump"))
        .expect("a nested dump");
    let groups = opened.reader.metadata().num_row_groups();
    group.throughput(Throughput::Bytes(
        std::fs::metadata(&path).expect("the Parquet dump").len(),
    ));
    group.bench_function("parquet_v1_2000_objects", |b| {
        let (mut scratch, mut ids) = (ParquetScratch::default(), LocalIds::default());
        b.iter(|| {
            let mut sink = Count::default();
            for g in 0..groups {
                explode_row_group(&opened, g, &mut ids, &mut sink, &mut scratch)
                    .expect("a readable row group");
            }
            assert_eq!(sink.rows, rows);
        })
    });
    group.finish();
}

criterion_group!(benches, explode);
criterion_main!(benches);
