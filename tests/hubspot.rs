//! Real HubSpot payload shapes (`tests/fixtures/hubspot/`, made by us in the shapes HubSpot's
//! APIs and webhooks deliver): each file through the real binary, every row compared with
//! `expected.json`, which `make_expected.py` computes from the fixtures by the mapping rules
//! alone (it does not read skewer's code).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::{repo, skewer};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/hubspot")
}

/// Runs skewer on one file; returns the run's JSON report and the dataset's rows, as the
/// expected rows are written, sorted.
fn run_on(file: &Path, dataset: &Path) -> (Value, Vec<Value>) {
    let run = skewer([
        "run",
        "-i",
        file.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
        "--max-bad-records",
        "0",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}: {}", file.display(), run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
    let mut rows = Vec::new();
    for f in skewer::dataset::files(dataset).unwrap() {
        let r = skewer::dataset::read_rows(&f.path).unwrap();
        for i in 0..r.len() {
            let row = r.row(i);
            rows.push(json!({
                "object_id": row.object_id,
                "property": f.property,
                "timestamp_ms": row.timestamp,
                "value": text(row.value),
                "source_type": text(row.source_type),
                "source_id": text(row.source_id),
                "source_label": text(row.source_label),
                "updated_by_user_id": row.updated_by_user_id,
            }));
        }
    }
    rows.sort_by_key(|r| r.to_string());
    (report, rows)
}

#[test]
fn every_documented_shape_explodes_to_its_expected_rows() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 9, "{:?}", files.keys());
    let tmp = tempfile::tempdir().unwrap();
    for (name, want) in files {
        let (report, got) = run_on(&fixtures().join(name), &tmp.path().join(name));
        let counts = &report["manifest"]["counts"];
        let want_counts = &want["counts"];
        assert_eq!(counts["records_read"], want_counts["records"], "{name}");
        assert_eq!(counts["records_rejected"], 0, "{name}");
        assert_eq!(
            counts["events_without_version"], want_counts["events_without_version"],
            "{name}"
        );
        assert_eq!(counts["rows_written"], want_counts["rows"], "{name}");
        assert_eq!(
            counts["duplicates_dropped"], want_counts["duplicates_dropped"],
            "{name}"
        );
        let mut want_rows: Vec<Value> = want["rows"].as_array().unwrap().clone();
        want_rows.sort_by_key(|r| r.to_string());
        assert_eq!(got, want_rows, "{name}");
    }
}

/// Real shapes the design did not name, read as a data engineer would expect.
#[test]
fn shapes_beyond_the_documented_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let odd = fixtures().join("_unspecified");

    // `/contacts/v1/contact/vids/batch/`: a map of contacts by vid.
    let (report, rows) = run_on(
        &odd.join("v1-contacts-batch-by-vid.json"),
        &tmp.path().join("batch"),
    );
    let mut objects: Vec<i64> = rows
        .iter()
        .map(|r| r["object_id"].as_i64().unwrap())
        .collect();
    objects.dedup();
    assert!(objects.contains(&90_210_451) && objects.contains(&90_198_877));
    assert_eq!(report["manifest"]["counts"]["records_rejected"], 0);

    // A version without a `value` key is a version whose value is null (not "").
    let (_, rows) = run_on(
        &odd.join("v2-company-version-without-value.json"),
        &tmp.path().join("novalue"),
    );
    let by_time: BTreeMap<i64, &Value> = rows
        .iter()
        .map(|r| (r["timestamp_ms"].as_i64().unwrap(), &r["value"]))
        .collect();
    assert_eq!(by_time[&1_716_400_000_640], &Value::Null);
    assert_eq!(by_time[&1_714_039_230_118], "LOGISTICS_AND_SUPPLY_CHAIN");

    // HubSpot's own webhook example names the subscription `eventType`.
    let (report, rows) = run_on(
        &odd.join("webhooks-eventType-key.json"),
        &tmp.path().join("eventtype"),
    );
    let counts = &report["manifest"]["counts"];
    assert_eq!(counts["events_without_version"], 1);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["value"], "subscriber");
}
