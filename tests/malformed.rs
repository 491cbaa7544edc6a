use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::Value;
use skewer::generate::{Format, GenConfig, generate};

use crate::reference::explode_ndjson;
use crate::util::skewer;

const GOOD: &str = r#"{"vid": 3000000001, "properties": {"email": {"versions": [{"value": "a@x.io", "timestamp": 1700000000000, "source-type": "FORM"}]}}}"#;

fn good(vid: u64, property: &str) -> String {
    GOOD.replace("3000000001", &vid.to_string())
        .replace("\"email\"", &serde_json::to_string(property).unwrap())
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir.join(name), bytes).unwrap();
}

fn small_parquet(dir: &Path) -> Vec<u8> {
    let out = dir.join("gen");
    generate(&GenConfig {
        objects: 200,
        properties: 12,
        format: Format::Parquet,
        row_group_objects: 50,
        seed: 9,
        threads: 1,
        ..GenConfig::new(&out)
    })
    .unwrap();
    fs::read(out.join("contacts-00000.parquet")).unwrap()
}

/// One file per kind of bad input, beside good records; the run must read every good record,
/// reject every bad one with its place and reason, and never panic.
#[test]
fn a_corpus_of_malformed_inputs_is_rejected_precisely() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let mut good_lines = Vec::new();
    let mut line = |vid: u64, p: &str| {
        let l = good(vid, p);
        good_lines.push(l.clone());
        l
    };

    write(
        &input,
        "good.ndjson",
        format!("{}\n{}\n", line(1, "email"), line(2, "phone")),
    );
    write(
        &input,
        "invalid_json.ndjson",
        format!(
            "{}\n{{\"vid\": 1, \"properties\": {{\nnot json at all\n{}\n",
            line(3, "email"),
            line(4, "email")
        ),
    );
    write(
        &input,
        "wrong_types.ndjson",
        [
            r#"{"vid": 5, "properties": ["email"]}"#,
            r#"{"vid": 6, "properties": {"email": {"versions": "none"}}}"#,
            r#"{"vid": 7, "properties": {"email": {"versions": [{"value": "x", "timestamp": true}]}}}"#,
            r#"{"vid": 8, "properties": {"email": {"versions": [{"value": {"a": 1}, "timestamp": 1}]}}}"#,
        ]
        .join("\n"),
    );
    write(
        &input,
        "ids.ndjson",
        [
            r#"{"properties": {"email": {"versions": [{"value": "x", "timestamp": 1}]}}}"#,
            r#"{"vid": "abc", "properties": {}}"#,
            r#"{"vid": 18446744073709551615, "properties": {}}"#,
            r#"{"vid": 1.5, "properties": {}}"#,
            r#"{"vid": null, "properties": {}}"#,
        ]
        .join("\n"),
    );
    write(
        &input,
        "timestamps.ndjson",
        [
            r#"{"vid": 9, "properties": {"email": {"versions": [{"value": "x", "timestamp": "soon"}]}}}"#,
            r#"{"vid": 10, "properties": {"email": {"versions": [{"value": "x"}]}}}"#,
            r#"{"vid": 11, "properties": {"email": {"versions": [{"value": "x", "timestamp": null}]}}}"#,
        ]
        .join("\n"),
    );
    // A 50 MB line is a valid record: read, not rejected.
    let huge = "x".repeat(50 << 20);
    write(
        &input,
        "long_line.ndjson",
        format!(
            r#"{{"vid": 12, "properties": {{"notes": {{"versions": [{{"value": "{huge}", "timestamp": 1}}]}}}}}}"#
        ),
    );
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    write(
        &input,
        "deep.ndjson",
        format!(
            "{{\"vid\": 13, \"properties\": {{\"email\": {{\"versions\": [{}]}}}}}}\n{{\"vid\": 14, \"x\": {}, \"properties\": {{}}}}\n",
            deep(50_000),
            deep(50_000)
        ),
    );
    let mut bad_utf8 = line(15, "email").into_bytes();
    let at = bad_utf8.windows(6).position(|w| w == b"a@x.io").unwrap();
    bad_utf8[at] = 0xff;
    write(&input, "invalid_utf8.ndjson", bad_utf8);
    let long_name = "n".repeat(300);
    write(
        &input,
        "names.ndjson",
        [
            line(16, "a/b"),
            line(17, ".."),
            line(18, "x=y"),
            line(19, "nul\u{0}byte"),
            good(20, &long_name),
        ]
        .join("\n"),
    );
    write(&input, "empty.json", "");

    let parquet = small_parquet(tmp.path());
    write(&input, "truncated.parquet", &parquet[..parquet.len() / 2]);
    let mut corrupt = parquet.clone();
    for i in (200..corrupt.len() / 2).step_by(97) {
        corrupt[i] ^= 0x5a;
    }
    write(&input, "corrupt.parquet", corrupt);
    write(&input, "fine.parquet", &parquet);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for vid in 21..400 {
        gz.write_all(format!("{}\n", good(vid, "email")).as_bytes())
            .unwrap();
    }
    let gz = gz.finish().unwrap();
    write(&input, "truncated.ndjson.gz", &gz[..gz.len() * 2 / 3]);
    write(
        &input,
        "garbage.zst",
        [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8],
    );

    let dataset = tmp.path().join("ds");
    let run = skewer([
        "run",
        "-i",
        input.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
        "-r",
        "2",
        "--max-bad-records",
        "100%",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let counts = &report["manifest"]["counts"];
    assert_eq!(
        counts["records_read"].as_u64().unwrap(),
        counts["records_rejected"].as_u64().unwrap() + counts["records_exploded"].as_u64().unwrap()
    );

    let rejects_dir = dataset.join("_skewer/rejects");
    let rejects_file = fs::read_dir(&rejects_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rejects: Vec<Value> = fs::read_to_string(rejects_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |file: &str, line: Option<u64>, reason: &str| {
        rejects.iter().any(|r| {
            r["file"].as_str().unwrap().ends_with(file)
                && line.is_none_or(|l| r["line"] == l)
                && r["reason"].as_str().unwrap().contains(reason)
        })
    };
    let expected: &[(&str, Option<u64>, &str)] = &[
        ("invalid_json.ndjson", Some(2), "invalid JSON"),
        ("invalid_json.ndjson", Some(3), "invalid JSON"),
        ("wrong_types.ndjson", Some(1), "properties is an array"),
        ("wrong_types.ndjson", Some(2), "are a string, not an array"),
        ("wrong_types.ndjson", Some(3), "timestamp is a boolean"),
        ("wrong_types.ndjson", Some(4), "is an object"),
        ("ids.ndjson", Some(1), "no object id"),
        ("ids.ndjson", Some(2), "\"abc\" is not a whole number"),
        ("ids.ndjson", Some(3), "beyond the 64-bit signed range"),
        ("ids.ndjson", Some(4), "not a whole number"),
        ("ids.ndjson", Some(5), "object id is null"),
        (
            "timestamps.ndjson",
            Some(1),
            "\"soon\" is not epoch milliseconds",
        ),
        ("timestamps.ndjson", Some(2), "has no timestamp"),
        ("timestamps.ndjson", Some(3), "timestamp is null"),
        ("deep.ndjson", Some(1), "is an array, not an object"),
        ("invalid_utf8.ndjson", Some(1), "invalid unicode"),
        ("names.ndjson", Some(5), "too long for a folder"),
        ("empty.json", None, "the file is empty"),
        ("truncated.parquet", None, "Parquet"),
        ("corrupt.parquet", None, ""),
        ("truncated.ndjson.gz", None, "cannot decompress"),
        ("garbage.zst", None, ""),
    ];
    for (file, line, reason) in expected {
        assert!(
            has(file, *line, reason),
            "no reject for {file}:{line:?} ({reason}) in {rejects:#?}"
        );
    }
    assert!(
        !rejects
            .iter()
            .any(|r| r["file"].as_str().unwrap().ends_with("good.ndjson"))
    );
    assert!(
        !rejects
            .iter()
            .any(|r| r["file"].as_str().unwrap().ends_with("fine.parquet"))
    );
    assert!(
        !rejects
            .iter()
            .any(|r| r["file"].as_str().unwrap().ends_with("long_line.ndjson"))
    );

    // Every good record's rows are in the dataset.
    let properties: Vec<String> = skewer::dataset::files(&dataset)
        .unwrap()
        .into_iter()
        .map(|f| f.property)
        .collect();
    for name in [
        "email",
        "phone",
        "notes",
        "a/b",
        "..",
        "x=y",
        "nul\u{0}byte",
    ] {
        assert!(
            properties.iter().any(|p| p == name),
            "{name:?} missing from {properties:?}"
        );
    }
    let rows = skewer::checksum::dataset(&dataset).unwrap().rows;
    let good_rows = explode_ndjson(&good_lines.join("\n")).len() as u64 - 1; // the long name's
    assert!(
        rows >= good_rows + 1 + 300,
        "{rows} rows: good lines, the 50 MB value, Parquet, gzip prefix"
    );
}
