//! `skewer inspect`: passes on a fresh dataset; fails, naming the problem, on an unsorted file,
//! a stray staging file and a file no manifest lists.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{gen_dump, skewer};

/// A fresh dataset from a small generated dump; returns (temp dir, dataset).
fn dataset() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump");
    let out = tmp.path().join("lake");
    gen_dump(&dump, 600, 40, &[]);
    let r = skewer([
        "run",
        "-i",
        dump.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-r",
        "2",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (tmp, out)
}

fn inspect(dataset: &Path) -> (i32, Value, String) {
    let r = skewer(["inspect", dataset.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_str(&r.stdout).expect("inspect --json prints JSON");
    (r.code, report, r.stderr)
}

/// The problems of one check.
fn problems(report: &Value, check: &str) -> Vec<String> {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no check {check}"));
    c["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// The largest data file.
fn largest_file(dataset: &Path) -> PathBuf {
    skewer::dataset::files(dataset)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
}

#[test]
fn a_fresh_dataset_passes_every_check() {
    let (_tmp, lake) = dataset();
    let (code, report, stderr) = inspect(&lake);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
    assert_eq!(report["properties"].as_array().unwrap().len(), 40);
    let rows: u64 = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(report["rows"].as_u64().unwrap(), rows);
    assert!(rows > 0);
    // The table too.
    let table = skewer(["inspect", lake.to_str().unwrap()]);
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains("ok   sort order"), "{}", table.stdout);
}

#[test]
fn an_unsorted_file_fails_the_sort_check() {
    let (_tmp, lake) = dataset();
    let path = largest_file(&lake);
    let rows = skewer::dataset::read_rows(&path).unwrap();
    assert!(rows.len() > 10);
    // The same rows, written backwards over the file.
    let reversed: Vec<u32> = (0..rows.len() as u32).rev().collect();
    let dir = path.parent().unwrap();
    let stem = path.file_stem().unwrap().to_str().unwrap();
    fs::remove_file(&path).unwrap();
    skewer::sink::write_property(dir, stem, &rows.cols, &reversed, &Default::default()).unwrap();
    assert!(path.exists());

    let (code, report, stderr) = inspect(&lake);
    assert_eq!(code, 1);
    assert!(stderr.contains("failed sort order"), "{stderr}");
    let found = problems(&report, "sort order");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(path.to_str().unwrap()) && found[0].contains("not sorted"),
        "{found:?}"
    );
}

#[test]
fn a_stray_staging_file_fails() {
    let (_tmp, lake) = dataset();
    let stray =
        lake.join("_skewer/staging/20261120T020000Z-dead/property_name=email/part-x.parquet");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, b"half a file").unwrap();
    let (code, report, _) = inspect(&lake);
    assert_eq!(code, 1);
    let found = problems(&report, "no stray files");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(stray.to_str().unwrap()), "{found:?}");
    assert!(problems(&report, "manifests match the files").is_empty());
}

#[test]
fn a_file_missing_from_the_manifest_fails_and_so_does_a_missing_file() {
    let (_tmp, lake) = dataset();
    let path = largest_file(&lake);
    let copy = path.with_file_name("part-copied-r9.parquet");
    fs::copy(&path, &copy).unwrap();
    let (code, report, _) = inspect(&lake);
    assert_eq!(code, 1);
    let found = problems(&report, "manifests match the files");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(copy.to_str().unwrap())
            && found[0].contains("not in any committed manifest"),
        "{found:?}"
    );

    fs::remove_file(&copy).unwrap();
    fs::remove_file(&path).unwrap();
    let (code, report, _) = inspect(&lake);
    assert_eq!(code, 1);
    let found = problems(&report, "manifests match the files");
    assert!(
        found.len() == 1 && found[0].contains("listed by run") && found[0].contains("missing"),
        "{found:?}"
    );
}

/// Tags open and close in order, and the root is an `<svg>`.
fn well_formed(svg: &str) -> bool {
    let mut stack = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('>') else {
            return false;
        };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return false;
            }
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    stack.is_empty() && svg.trim_start().starts_with("<svg")
}

#[test]
fn the_plan_and_run_pictures_have_one_bar_per_reducer() {
    let tmp = tempfile::tempdir().unwrap();
    let svg = tmp.path().join("plan.svg");
    let html = tmp.path().join("plan.html");
    let plan = skewer([
        "plan",
        "--history",
        "history/samples/contacts-zipf",
        "-r",
        "12",
        "--svg",
        svg.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let picture = fs::read_to_string(&svg).unwrap();
    assert!(well_formed(&picture));
    assert_eq!(picture.matches(r#"<g class="reducer""#).count(), 12);
    // The heaviest property spans several reducers and is drawn as a span.
    assert!(picture.contains("hs_analytics_num_page_views spans reducers"));
    assert!(fs::read_to_string(&html).unwrap().contains(&picture));

    let (_tmp, lake) = dataset();
    let run_svg = tmp.path().join("run.svg");
    let r = skewer([
        "inspect",
        lake.to_str().unwrap(),
        "--run",
        "latest",
        "--svg",
        run_svg.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let picture = fs::read_to_string(&run_svg).unwrap();
    assert!(well_formed(&picture));
    assert_eq!(picture.matches(r#"<g class="reducer""#).count(), 2);
    assert!(picture.contains("predicted</title>") || picture.contains(" predicted"));
    let missing = skewer([
        "inspect",
        lake.to_str().unwrap(),
        "--run",
        "nope",
        "--svg",
        "x.svg",
    ]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no run \"nope\""),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_crashed_runs_staging_is_a_stray_its_lock_note_is_not_and_a_live_runs_are_not() {
    let (_tmp, lake) = dataset();
    let staged = lake.join("_skewer/staging/r-crashed/property_name=email/part-x.parquet");
    fs::create_dir_all(staged.parent().unwrap()).unwrap();
    fs::write(&staged, b"half").unwrap();
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    // A process that does not exist on this host.
    let lock = |pid: u32| {
        format!(
            r#"{{"pid": {pid}, "host": "{host}", "process_start": 1, "since": "2026-11-20T02:00:00Z", "run_id": "r-crashed"}}"#
        )
    };
    fs::write(lake.join("_skewer/lock"), lock(u32::MAX - 7)).unwrap();
    let (code, report, _) = inspect(&lake);
    assert_eq!(code, 1);
    let found = problems(&report, "no stray files");
    // The lock is the operating system's and died with its process: its note is no stray.
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("r-crashed/property_name=email"))
    );

    // This test's own process stands in for a live run: its staging is work in progress.
    let me = std::process::id();
    let start = fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    let start: u64 = start[start.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    fs::write(
        lake.join("_skewer/lock"),
        lock(me).replace(
            "\"process_start\": 1",
            &format!("\"process_start\": {start}"),
        ),
    )
    .unwrap();
    let (code, report, stderr) = inspect(&lake);
    assert_eq!(code, 0, "{stderr} {report}");
}

/// A lock that is not a file (here a folder) cannot be read: `inspect` says so as a stray
/// and still checks the rest, rather than stopping.
#[test]
fn an_unreadable_lock_is_reported_not_fatal() {
    let (_tmp, out) = dataset();
    let lock = out.join("_skewer/lock");
    fs::remove_file(&lock).unwrap();
    fs::create_dir(&lock).unwrap();
    let (code, report, stderr) = inspect(&out);
    assert_eq!(code, 1, "{stderr}");
    let strays = problems(&report, "no stray files");
    assert!(
        strays
            .iter()
            .any(|p| p.contains("_skewer/lock") && p.contains("cannot be read")),
        "{strays:?}"
    );
    assert!(problems(&report, "schema").is_empty());
    assert!(report["files"].as_u64().unwrap() > 0);
}
