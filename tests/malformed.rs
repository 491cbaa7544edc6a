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
    // A 50 MB line of values under the 1 MiB maximum is a valid record: read, not rejected;
    // a value past the maximum rejects its record.
    let big = "x".repeat(1 << 19);
    let versions: Vec<String> = (0..100)
        .map(|t| format!(r#"{{"value": "{big}", "timestamp": {t}}}"#))
        .collect();
    write(
        &input,
        "long_line.ndjson",
        format!(
            "{{\"vid\": 12, \"properties\": {{\"notes\": {{\"versions\": [{}]}}}}}}\n{}\n",
            versions.join(", "),
            good(22, "email").replace("a@x.io", &"y".repeat((1 << 20) + 1))
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
            good(21, ""),
            good(22, "__HIVE_DEFAULT_PARTITION__"),
        ]
        .join("\n"),
    );
    write(&input, "empty.json", "");

    let parquet = small_parquet(tmp.path());
    let mut corrupt = parquet.clone();
    for i in (200..corrupt.len() / 2).step_by(97) {
        corrupt[i] ^= 0x5a;
    }
    write(&input, "corrupt.parquet", corrupt);
    write(&input, "fine.parquet", &parquet);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for vid in 23..400 {
        gz.write_all(format!("{}\n", good(vid, "email")).as_bytes())
            .unwrap();
    }
    let mut gz = gz.finish().unwrap();
    // Zero padding after the stream, as some writers leave: not a record, not an error.
    gz.extend([0u8; 512]);
    write(&input, "padded.ndjson.gz", &gz);

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
    let count = |k: &str| counts[k].as_u64().unwrap();

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
        ("names.ndjson", Some(6), "empty name"),
        ("names.ndjson", Some(7), "read as a null partition"),
        (
            "long_line.ndjson",
            Some(2),
            "more than the 1.0 MiB a value may hold",
        ),
        ("corrupt.parquet", None, "counted as rejected"),
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
    for clean in ["padded.ndjson.gz", "empty.json"] {
        assert!(
            !rejects
                .iter()
                .any(|r| r["file"].as_str().unwrap().ends_with(clean)),
            "{clean}"
        );
    }

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
    // Counts checked against what the corpus holds, not against each other: every record
    // met (a line, an object of a page, a Parquet row) is counted once.
    let lines = 2 + 4 + 4 + 5 + 3 + 2 + 2 + 1 + 7;
    let parquet_rows = 200 + 200;
    let gz_records = 400 - 23;
    assert_eq!(count("records_read"), lines + parquet_rows + gz_records);
    // 20 bad lines, and the damaged row groups of corrupt.parquet, 50 records each.
    let parquet_rejected = count("records_rejected") - 20;
    assert!(
        parquet_rejected > 0 && parquet_rejected % 50 == 0,
        "{counts}"
    );
    let rows = skewer::checksum::dataset(&dataset).unwrap().rows;
    assert_eq!(rows, count("rows_written"));
    // The good lines (less the one whose UTF-8 was then broken), the long line's 100.
    let good_rows = explode_ndjson(&good_lines.join("\n")).len() as u64 - 1;
    assert!(rows >= good_rows + 100 + gz_records, "{rows} rows");
}

/// Losses whose size cannot be known stop the run with the file and the place, and publish
/// nothing: a cut Parquet file, a cut gzip stream, a corrupt zstd stream, a JSON text cut in
/// half, a file in a format skewer does not read, a pipe.
#[test]
fn inputs_whose_loss_cannot_be_counted_stop_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let parquet = small_parquet(tmp.path());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for vid in 1..400 {
        gz.write_all(format!("{}\n", good(vid, "email")).as_bytes())
            .unwrap();
    }
    let gz = gz.finish().unwrap();
    let array = format!(
        "[{}]",
        (1..100)
            .map(|v| good(v, "email"))
            .collect::<Vec<_>>()
            .join(",\n")
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "cut.parquet",
            parquet[..parquet.len() / 2].to_vec(),
            "the file is cut or is not Parquet",
        ),
        (
            "cut.ndjson.gz",
            gz[..gz.len() / 10].to_vec(),
            "cannot decompress",
        ),
        (
            "garbage.zst",
            vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8],
            "cannot decompress",
        ),
        (
            "cut.json",
            array.as_bytes()[..array.len() / 2].to_vec(),
            "the JSON text ends early (the file is cut?) at line",
        ),
        (
            "dump.json.xz",
            vec![0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4],
            "is xz-compressed, which skewer does not read",
        ),
    ];
    for (name, bytes, want) in cases {
        let input = tmp.path().join(format!("in-{name}"));
        fs::create_dir_all(&input).unwrap();
        write(&input, "good.ndjson", good(1, "email") + "\n");
        write(&input, name, &bytes);
        let dataset = tmp.path().join(format!("ds-{name}"));
        let run = skewer([
            "run",
            "-i",
            input.to_str().unwrap(),
            "-o",
            dataset.to_str().unwrap(),
            "--max-bad-records",
            "100%",
        ]);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(name) && run.stderr.contains(want),
            "{name}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("published nothing"), "{}", run.stderr);
        assert!(
            skewer::dataset::files(&dataset)
                .unwrap_or_default()
                .is_empty(),
            "{name}: nothing published"
        );
    }

    // A pipe cannot be read more than once: refused, not read as empty.
    let fifo = tmp.path().join("fifo.ndjson");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let run = skewer([
        "run",
        "-i",
        fifo.to_str().unwrap(),
        "-o",
        tmp.path().join("ds-fifo").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("is not a regular file"),
        "{}",
        run.stderr
    );
}

/// A byte-order mark, or a damaged first line, no longer makes an NDJSON file one broken
/// text: the other lines are read, the bad one is one reject.
#[test]
fn a_bom_or_a_bad_first_line_costs_at_most_that_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let body: String = (1..=3).map(|v| good(v, "email") + "\n").collect();
    write(&input, "bom.ndjson", format!("\u{feff}{body}"));
    write(
        &input,
        "bad-first.ndjson",
        format!("{{\"vid\": 9, \"properties\": {{\n{body}"),
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("not json at all\n{body}").as_bytes())
        .unwrap();
    write(&input, "bad-first.ndjson.gz", gz.finish().unwrap());
    let dataset = tmp.path().join("ds");
    let run = skewer([
        "run",
        "-i",
        input.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
        "--max-bad-records",
        "100%",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let counts = &report["manifest"]["counts"];
    assert_eq!(counts["records_read"], 11, "{counts}");
    assert_eq!(counts["records_rejected"], 2, "{counts}");
    assert_eq!(counts["rows_written"], 3, "{counts}"); // 3 objects, deduplicated across files
    assert_eq!(counts["duplicates_dropped"], 6, "{counts}");
}

/// A dump exported without histories (current values only) is not silently empty: the
/// run says so and counts the records.
#[test]
fn values_without_histories_are_counted_and_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let lines: String = (1..=5)
        .map(|i| {
            format!(
                "{{\"id\": \"{i}\", \"properties\": {{\"email\": \"u{i}@x.io\", \"hs_object_id\": \"{i}\"}}}}\n"
            )
        })
        .collect();
    write(&input, "current.ndjson", lines);
    let dataset = tmp.path().join("ds");
    let args = [
        "run",
        "-i",
        input.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
    ];
    let run = skewer(args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("warning: 5 of 5 records carry property values but no version history"),
        "{}",
        run.stdout
    );
    let json = skewer(args.iter().copied().chain(["--json"]));
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["manifest"]["counts"]["records_without_history"], 5);
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1);
}
