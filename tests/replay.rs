//! `skewer replay`: each date its own run and partition; missing and failing dates reported,
//! the others committed; a second replay is a no-op; `--force` redoes.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::{gen_dump, skewer};

fn dates(run: &crate::util::Run) -> Vec<(String, String)> {
    let v: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    v["dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn committed_runs(lake: &Path) -> Vec<String> {
    let mut runs: Vec<String> = fs::read_dir(lake.join("_skewer/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    runs.sort();
    runs
}

#[test]
fn a_replay_commits_each_date_skips_missing_ones_and_reports_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    for (day, seed) in [("01", "1"), ("03", "3"), ("05", "5")] {
        gen_dump(
            &raw.join(format!("dt=2026-10-{day}")),
            300,
            30,
            &["--seed", seed],
        );
    }
    // 2026-10-02 has no dump; 2026-10-04's records are all bad.
    fs::create_dir_all(raw.join("dt=2026-10-04")).unwrap();
    fs::write(
        raw.join("dt=2026-10-04/contacts.ndjson"),
        "not json\n{\"vid\": 1, \"properties\": {\"a\": {\"versions\": [{\"value\": \"x\"}]}}}\n",
    )
    .unwrap();
    let lake = tmp.path().join("lake");
    let input = format!("{}/dt={{date}}/", raw.display());
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "replay",
            "--input",
            &input,
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-05",
            "--output",
            lake.to_str().unwrap(),
            "-r",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        skewer(args)
    };

    let first = replay(&[]);
    assert_eq!(
        first.code, 1,
        "a failed date fails the replay: {}",
        first.stderr
    );
    assert!(first.stderr.contains("2026-10-04"), "{}", first.stderr);
    let want = [
        ("2026-10-01", "committed"),
        ("2026-10-02", "missing"),
        ("2026-10-03", "committed"),
        ("2026-10-04", "failed"),
        ("2026-10-05", "committed"),
    ];
    let got = dates(&first);
    assert_eq!(
        got.iter()
            .map(|(d, s)| (d.as_str(), s.as_str()))
            .collect::<Vec<_>>(),
        want
    );
    let v: Value = serde_json::from_str(&first.stdout).unwrap();
    assert!(
        v["dates"][1]["input"]
            .as_str()
            .unwrap()
            .contains("dt=2026-10-02")
    );
    assert!(
        v["dates"][3]["reason"]
            .as_str()
            .unwrap()
            .contains("max-bad-records")
    );
    // Each date in its own partition, each dump's rows exactly.
    for (day, seed_dir) in [
        ("01", "dt=2026-10-01"),
        ("03", "dt=2026-10-03"),
        ("05", "dt=2026-10-05"),
    ] {
        let part = lake.join(format!("dt=2026-10-{day}"));
        assert!(part.is_dir(), "{}", part.display());
        let check = skewer([
            "checksum",
            part.to_str().unwrap(),
            "--expected",
            raw.join(seed_dir).to_str().unwrap(),
        ]);
        assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    }
    assert!(!lake.join("dt=2026-10-02").exists() && !lake.join("dt=2026-10-04").exists());
    let runs = committed_runs(&lake);
    assert_eq!(runs.len(), 3);
    // A later date was planned from the history of the earlier ones.
    let last: Value =
        serde_json::from_slice(&fs::read(lake.join("_skewer/runs").join(&runs[2])).unwrap())
            .unwrap();
    assert_eq!(last["partition"], "dt=2026-10-05");
    assert_eq!(
        last["plan"]["basis"]["checked"]["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Again: nothing to do but the failing date.
    let second = replay(&[]);
    assert_eq!(second.code, 1);
    let statuses: Vec<String> = dates(&second).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        statuses,
        ["skipped", "missing", "skipped", "failed", "skipped"]
    );
    assert_eq!(committed_runs(&lake), runs);
    let inspect = skewer(["inspect", lake.to_str().unwrap()]);
    assert_eq!(inspect.code, 0, "{}{}", inspect.stdout, inspect.stderr);

    // --force redoes the committed dates, each replacing only its own partition.
    let forced = replay(&["--force", "--max-bad-records", "100%"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let statuses: Vec<String> = dates(&forced).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        statuses,
        [
            "committed",
            "missing",
            "committed",
            "committed",
            "committed"
        ]
    );
    assert_eq!(committed_runs(&lake).len(), 7);
    let inspect = skewer(["inspect", lake.to_str().unwrap()]);
    assert_eq!(inspect.code, 0, "{}{}", inspect.stdout, inspect.stderr);
    for day in ["01", "03", "05"] {
        let check = skewer([
            "checksum",
            lake.join(format!("dt=2026-10-{day}")).to_str().unwrap(),
            "--expected",
            raw.join(format!("dt=2026-10-{day}")).to_str().unwrap(),
        ]);
        assert_eq!(check.code, 0, "{day}: {}{}", check.stdout, check.stderr);
    }
}

#[test]
fn replay_needs_a_date_in_its_input_and_a_sane_range() {
    let r = skewer([
        "replay",
        "--input",
        "raw/",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-02",
        "--output",
        "x",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("{date}"), "{}", r.stderr);
    let r = skewer([
        "replay",
        "--input",
        "raw/{date}",
        "--from",
        "2026-10-05",
        "--to",
        "2026-10-02",
        "--output",
        "x",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("after --to"), "{}", r.stderr);
    let r = skewer([
        "replay",
        "--input",
        "raw/{date}",
        "--from",
        "2026-02-30",
        "--to",
        "2026-10-02",
        "--output",
        "x",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a date"), "{}", r.stderr);
}
