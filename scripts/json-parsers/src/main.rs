//! skewer's NDJSON explode against a SIMD JSON parser on the same records, one core.
//!
//! `cargo run --release --manifest-path scripts/json-parsers/Cargo.toml -- FILE [MIB]`
//! reads the first MIB (default 256) MiB of an NDJSON dump of v1 contacts (`skewer gen`) and
//! times, three rounds each, interleaved:
//!
//! - `skewer`: the run's explode (the v1 scanner), every version into columns;
//! - `sonic-rs typed`: sonic-rs deserialising each record into borrowed structs (the parse a
//!   sonic-based explode would do before building any column);
//! - `sonic-rs dom`: sonic-rs parsing each record into its `Value`, then a walk of every
//!   version;
//! - `serde_json typed`: the same structs through serde_json, for scale.
//!
//! The parsers do less than skewer (no columns, no escapes decoded into the arena, no
//! timestamps checked): if they are not clearly faster, a parser swap cannot pay.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use serde::Deserialize;
use skewer::batch::Rows;
use skewer::explode::json::{JsonContext, JsonScratch, explode_slice};
use skewer::explode::{LocalIds, RecordSink};
use sonic_rs::{JsonContainerTrait, JsonValueTrait};

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

#[derive(Deserialize)]
struct Record<'a> {
    vid: i64,
    #[serde(borrow)]
    properties: HashMap<&'a str, Property<'a>>,
}

#[derive(Deserialize)]
struct Property<'a> {
    #[serde(borrow, default)]
    versions: Vec<Version<'a>>,
}

#[derive(Deserialize)]
struct Version<'a> {
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
    timestamp: i64,
    #[serde(borrow, rename = "source-type")]
    source_type: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "source-id")]
    source_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "source-label")]
    source_label: Option<Cow<'a, str>>,
    #[serde(default, rename = "updated-by-user-id")]
    updated_by: Option<i64>,
}

fn typed_rows(r: &Record<'_>) -> u64 {
    let mut n = 0;
    for p in r.properties.values() {
        for v in &p.versions {
            n += 1;
            black_box((
                &v.value,
                v.timestamp,
                &v.source_type,
                &v.source_id,
                &v.source_label,
                v.updated_by,
            ));
        }
    }
    black_box(r.vid);
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: json-parsers FILE [MIB]");
    let mib: usize = args.next().map_or(256, |m| m.parse().expect("MIB"));
    let mut text = std::fs::read(&path).expect("the NDJSON file");
    text.truncate(mib << 20);
    if let Some(end) = text.iter().rposition(|&b| b == b'\n') {
        text.truncate(end + 1);
    }
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mb = text.len() as f64 / f64::from(1 << 20);
    println!("{} records, {mb:.0} MiB of {path}", lines.len());

    let mut scratch = JsonScratch::default();
    let mut ids = LocalIds::default();
    let mut results: Vec<(&str, Vec<f64>, u64)> = Vec::new();
    let mut time = |name: &'static str, f: &mut dyn FnMut() -> u64| {
        let started = Instant::now();
        let rows = f();
        let s = started.elapsed().as_secs_f64();
        match results.iter_mut().find(|r| r.0 == name) {
            Some(r) => r.1.push(s),
            None => results.push((name, vec![s], rows)),
        }
    };
    for _ in 0..3 {
        time("skewer", &mut || {
            let mut sink = Count::default();
            for line in &lines {
                let mut ctx = JsonContext::new(&mut scratch, &mut ids, &mut sink);
                explode_slice(black_box(line), &mut ctx).expect("valid NDJSON");
            }
            sink.rows
        });
        time("sonic-rs typed", &mut || {
            let mut rows = 0;
            for line in &lines {
                let r: Record = sonic_rs::from_slice(black_box(line)).expect("valid JSON");
                rows += typed_rows(&r);
            }
            rows
        });
        time("sonic-rs dom", &mut || {
            let mut rows = 0;
            for line in &lines {
                let v: sonic_rs::Value = sonic_rs::from_slice(black_box(line)).expect("valid JSON");
                let props = v
                    .get("properties")
                    .and_then(|p| p.as_object())
                    .expect("properties");
                for (_, p) in props.iter() {
                    if let Some(versions) = p.get("versions").and_then(|v| v.as_array()) {
                        for ver in versions.iter() {
                            rows += 1;
                            black_box((ver.get("value"), ver.get("timestamp")));
                        }
                    }
                }
            }
            rows
        });
        time("serde_json typed", &mut || {
            let mut rows = 0;
            for line in &lines {
                let r: Record = serde_json::from_slice(black_box(line)).expect("valid JSON");
                rows += typed_rows(&r);
            }
            rows
        });
    }
    println!("| parser | MiB/s, median of 3 (min-max) | rows |");
    println!("|---|---|---|");
    for (name, mut secs, rows) in results {
        secs.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.0} ({:.0}-{:.0}) | {rows} |",
            mb / secs[1],
            mb / secs[2],
            mb / secs[0]
        );
    }
}
