//! Seeded mutation fuzzing, within CI's budget: valid inputs of every kind, mutated byte by
//! byte, must never panic the reader, and every run over them completes with its counts
//! adding up. `SKEWER_FUZZ_ITERATIONS` scales the number of cases for longer local runs.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};

use skewer::explode::json::{JsonContext, JsonScratch, explode_slice};
use skewer::explode::{CollectSink, LocalIds};
use skewer::generate::{Format, GenConfig, generate};
use skewer::run::{BadRecordLimit, RunConfig, run};

use crate::reference::Rng;

fn iterations(default: u64) -> u64 {
    std::env::var("SKEWER_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SEEDS: &[&str] = &[
    r#"{"vid": 3000000001, "canonical-vid": 3000000001, "properties": {"email": {"value": "b@x.io", "versions": [{"value": "b@x.io", "source-type": "CRM_UI", "source-id": "userId:9", "updated-by-user-id": 9, "timestamp": 1700000000000}, {"value": null, "timestamp": "1690000000000"}]}}}"#,
    r#"{"portalId": 1, "dealId": 42, "properties": {"amount": {"value": "100", "versions": [{"name": "amount", "value": "100", "timestamp": 5, "source": "API", "sourceId": "x", "sourceVid": []}]}}}"#,
    r#"{"id": "5000000000", "properties": {"email": "b@x.io"}, "propertiesWithHistory": {"email": [{"value": "b\u00e9\n", "timestamp": "2026-11-20T10:00:00.000Z", "sourceType": "CRM_UI", "sourceLabel": "Jane"}]}}"#,
    r#"[{"eventId": 1, "subscriptionType": "contact.propertyChange", "objectId": 123, "propertyName": "email", "propertyValue": "a@b.c", "changeSource": "CRM", "occurredAt": 1700000000000}, {"objectId": 124, "subscriptionType": "contact.creation"}]"#,
    r#"{"contacts": [{"vid": 1, "properties": {"a": {"versions": [{"value": "x", "timestamp": 1}]}}}], "has-more": true, "vid-offset": 1}"#,
    r#"{"results": [{"id": "3", "propertiesWithHistory": {"a": [{"value": "y", "timestamp": 2}]}}], "paging": {"next": {"after": "3"}}}"#,
];

/// Bytes that matter to a JSON parser, and some that should never appear.
const INTERESTING: &[u8] = b"{}[]\":,\\ntu0123456789-.eE \t\n\x00\xff\xc3";

fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = INTERESTING[rng.below(INTERESTING.len() as u64) as usize],
            2 => bytes.insert(
                at,
                INTERESTING[rng.below(INTERESTING.len() as u64) as usize],
            ),
            3 => {
                let end = (at + 1 + rng.below(16) as usize).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.below(32) as usize).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() as u64) as usize;
                bytes.splice(to..to, copy);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

#[test]
fn mutated_json_never_panics_the_parser() {
    let mut rng = Rng(0x5eed);
    let mut read = 0u64;
    let n = iterations(30_000);
    for i in 0..n {
        let seed = SEEDS[(i % SEEDS.len() as u64) as usize];
        let bytes = mutate(&mut rng, seed.as_bytes().to_vec());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut scratch = JsonScratch::default();
            let mut ids = LocalIds::default();
            let mut sink = CollectSink::default();
            let mut ctx = JsonContext::new(&mut scratch, &mut ids, &mut sink);
            let result = explode_slice(&bytes, &mut ctx);
            // Every row the parser accepted is whole: a property and a real timestamp slot.
            for r in 0..sink.rows.len() {
                assert!((sink.rows.property[r] as usize) < ids.names.len());
            }
            (result.is_ok(), sink.records)
        }));
        match outcome {
            Ok((_, records)) => read += records,
            Err(_) => panic!(
                "the parser panicked on {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    assert!(
        read > n / 60,
        "some mutations stay readable ({read} records)"
    );
}

fn small_input(out: &std::path::Path, format: Format) -> Vec<u8> {
    generate(&GenConfig {
        objects: 40,
        properties: 6,
        format,
        parquet_sources: true,
        row_group_objects: 10,
        seed: 11,
        threads: 1,
        ..GenConfig::new(out)
    })
    .unwrap();
    let ext = if format == Format::Parquet {
        "parquet"
    } else {
        "ndjson"
    };
    fs::read(out.join(format!("contacts-00000.{ext}"))).unwrap()
}

/// Rows of a Parquet file's row groups, as its footer says.
fn footer_rows(bytes: &[u8]) -> u64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bytes = bytes::Bytes::copy_from_slice(bytes);
    let read = std::panic::catch_unwind(|| SerializedFileReader::new(bytes).ok());
    read.ok().flatten().map_or(0, |r| {
        r.metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as u64)
            .sum()
    })
}

fn config(input: &std::path::Path, output: &std::path::Path) -> RunConfig {
    RunConfig {
        mappers: 1,
        split_bytes: 4096,
        max_bad_records: BadRecordLimit::Percent(100.0),
        memory_limit: 1 << 30,
        ..RunConfig::new(&[input], output, 2)
    }
}

/// Whole runs over mutated NDJSON files and nested Parquet files never panic: each either
/// completes, with every line or object of its input counted once and the rows it reports
/// in its files, or, where the damage hides how many records were lost (a cut or corrupt
/// Parquet footer), stops naming the file and publishes nothing.
#[test]
fn runs_over_mutated_files_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let ndjson = small_input(&tmp.path().join("n"), Format::Ndjson);
    let parquet = small_input(&tmp.path().join("p"), Format::Parquet);
    let mut rng = Rng(0xf022);
    for i in 0..iterations(300) {
        let (name, base) = if i % 2 == 0 {
            ("f.parquet", &parquet)
        } else {
            ("f.ndjson", &ndjson)
        };
        let mut bytes = base.clone();
        if name.ends_with(".parquet") {
            // Corrupt pages, headers or the footer, now and then cut the file short.
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            if rng.below(10) == 0 {
                let keep = rng.below(bytes.len() as u64) as usize;
                bytes.truncate(keep);
            }
        } else {
            // Mutate some lines, keep the others good.
            let text = String::from_utf8(bytes).unwrap();
            let mut out = Vec::new();
            for line in text.lines() {
                let line = line.as_bytes().to_vec();
                out.extend(if rng.below(3) == 0 {
                    mutate(&mut rng, line)
                } else {
                    line
                });
                out.push(b'\n');
            }
            bytes = out;
        }
        let case = tmp.path().join(format!("case-{i}"));
        let input = case.join("in");
        fs::create_dir_all(&input).unwrap();
        fs::write(input.join(name), &bytes).unwrap();
        let out = case.join("out");
        match run(&config(&input, &out)) {
            Ok(summary) => {
                let c = summary.manifest.counts;
                if name.ends_with(".ndjson") {
                    let lines = bytes
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.trim_ascii().is_empty())
                        .count() as u64;
                    // A line is one record, or more if mutation joined objects on it.
                    assert!(c.records_read >= lines, "case {i}: {c:?}, {lines} lines");
                } else {
                    // Every row the footer's row groups hold, even where the footer was hit.
                    assert_eq!(c.records_read, footer_rows(&bytes), "case {i}: {c:?}");
                }
                let written = skewer::checksum::dataset(&out).map_or(0, |s| s.rows);
                assert_eq!(written, c.rows_written, "case {i}");
            }
            Err(skewer::Error::Input { path, reason }) => {
                assert!(path.ends_with(name), "case {i}: {path:?}: {reason}");
                assert!(
                    skewer::dataset::files(&out).unwrap_or_default().is_empty(),
                    "case {i}: a failed run published"
                );
            }
            Err(e) => panic!("case {i} ({name}): the run failed: {e}"),
        }
        fs::remove_dir_all(&case).unwrap();
    }
}
