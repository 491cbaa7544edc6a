use std::fs;

use planner::Plan;
use serde_json::Value;

use crate::util::{Run, skewer};

const SAMPLES: [(&str, &str); 3] = [
    ("contacts_zipf", "history/samples/contacts-zipf"),
    ("uniform", "history/samples/uniform"),
    ("one_half", "history/samples/one-half.json"),
];

fn ok(run: Run) -> String {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stderr, "", "a successful plan prints nothing on stderr");
    run.stdout
}

#[test]
fn table_snapshots() {
    for (name, path) in SAMPLES {
        let table = ok(skewer(["plan", "--history", path, "--reducers", "8"]));
        insta::assert_snapshot!(format!("plan_table_{name}"), table);
    }
    // Many reducers: loads are summarised rather than listed.
    let wide = ok(skewer([
        "plan",
        "--history",
        "history/samples/contacts-zipf",
        "-r",
        "64",
        "--top",
        "5",
    ]));
    insta::assert_snapshot!("plan_table_contacts_zipf_64_reducers", wide);
}

#[test]
fn json_snapshots_reload_as_plans() {
    for (name, path) in SAMPLES {
        let text = ok(skewer(["plan", "--history", path, "-r", "8", "--json"]));
        insta::assert_snapshot!(format!("plan_json_{name}"), text);

        let report: Value = serde_json::from_str(&text).unwrap();
        let plan: Plan = serde_json::from_value(report["plan"].clone()).unwrap();
        assert_eq!(
            report["digest"],
            plan.digest(),
            "{name}: the digest identifies the plan"
        );
        let predicted = &report["predicted"];
        let max_over_mean = predicted["max_over_mean"].as_f64().unwrap();
        assert!(max_over_mean <= 1.06, "{name}: {max_over_mean}");
        let properties = plan.properties().len() as u64;
        assert!(predicted["files"].as_u64().unwrap() <= properties + 8);
        assert_eq!(predicted["reducers"].as_array().unwrap().len(), 8);
    }
}

#[test]
fn same_history_same_output() {
    let args = [
        "plan",
        "--history",
        "history/samples/contacts-zipf",
        "-r",
        "7",
        "--json",
    ];
    assert_eq!(ok(skewer(args)).as_bytes(), ok(skewer(args)).as_bytes());
}

#[test]
fn window_and_split_change_the_plan() {
    let digest = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--history",
            "history/samples/contacts-zipf",
            "-r",
            "8",
            "--json",
        ];
        args.extend_from_slice(extra);
        let report: Value = serde_json::from_str(&ok(skewer(args))).unwrap();
        (
            report["digest"].as_str().unwrap().to_string(),
            report["predicted"]["max_over_mean"].as_f64().unwrap(),
        )
    };
    let (default, balanced) = digest(&[]);
    let (last_run, _) = digest(&["--window", "1"]);
    let (uniform, plumbee) = digest(&["--split", "uniform"]);
    assert_ne!(default, last_run);
    assert_ne!(default, uniform);
    assert!(
        balanced < plumbee,
        "weighted {balanced} vs uniform {plumbee}"
    );
}

/// Writes `files` (name, contents) into a fresh directory and plans from it (or from the one
/// file named by `target`).
fn plan_from(files: &[(&str, &[u8])], target: Option<&str>) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        fs::write(dir.path().join(name), body).unwrap();
    }
    let path = match target {
        Some(t) => dir.path().join(t),
        None => dir.path().to_path_buf(),
    };
    let run = skewer(["plan".as_ref(), "--history".as_ref(), path.as_os_str()]);
    (run, dir)
}

fn fails_with(run: &Run, code: i32, fragments: &[&str]) {
    assert_eq!(
        run.code, code,
        "expected {fragments:?}; stderr: {}",
        run.stderr
    );
    assert_eq!(run.stdout, "", "nothing on stdout when failing");
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    for f in fragments {
        assert!(run.stderr.contains(f), "expected {f:?} in: {}", run.stderr);
    }
}

const GOOD: &str = r#"{"schema_version": 1, "run_id": "r1", "started_at": "2026-11-20T02:00:00Z",
 "properties": {"email": {"rows": 10, "bytes": 100, "objects": 5}}}"#;

#[test]
fn bad_history_files_are_named_with_line_and_column() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "syntax",
            "{\"schema_version\": 1,\n \"run_id\": \"r\",\n \"properties\": {,}}",
            &["syntax.json:3:17:", "key must be a string"],
        ),
        (
            "wrong_type",
            "{\"schema_version\": 1, \"run_id\": \"r\", \"started_at\": \"2026-11-20T02:00:00Z\",\n \"properties\": {\"email\": {\"rows\": \"many\", \"bytes\": 1, \"objects\": 1}}}",
            &[
                "wrong_type.json:2:40:",
                "invalid type: string \"many\", expected u64",
            ],
        ),
        (
            "negative",
            "{\"schema_version\": 1, \"run_id\": \"r\", \"started_at\": \"2026-11-20T02:00:00Z\",\n \"properties\": {\"email\": {\"rows\": -5, \"bytes\": 1, \"objects\": 1}}}",
            &[
                "negative.json:2:",
                "invalid value: integer `-5`, expected u64",
            ],
        ),
        (
            "missing_field",
            "{\"schema_version\": 1, \"run_id\": \"r\", \"started_at\": \"2026-11-20T02:00:00Z\",\n \"properties\": {\"email\": {\"bytes\": 1, \"objects\": 1}}}",
            &["missing_field.json:2:", "missing field `rows`"],
        ),
        (
            "newer",
            "{\"schema_version\": 2, \"run_id\": \"r9\", \"layout\": [1, 2]}",
            &["newer.json: run \"r9\": schema_version is 2, this skewer reads 1"],
        ),
        (
            "unversioned",
            "{\"run_id\": \"r\", \"properties\": {}}",
            &["unversioned.json: run \"r\" has no schema_version"],
        ),
        (
            "bad_time",
            "{\"schema_version\": 1, \"run_id\": \"r\", \"started_at\": \"yesterday\", \"properties\": {}}",
            &["bad_time.json: run \"r\": started_at \"yesterday\" is not an ISO-8601 time"],
        ),
        (
            "empty_name",
            "{\"schema_version\": 1, \"run_id\": \"r\", \"started_at\": \"2026-11-20T02:00:00Z\", \"properties\": {\"\": {\"rows\": 1, \"bytes\": 1, \"objects\": 1}}}",
            &["empty_name.json: run \"r\": a property has an empty name"],
        ),
        ("blank", "  \n", &["blank.json: the file is empty"]),
        ("scalar", "42", &["scalar.json: not a history record"]),
        (
            "truncated",
            &GOOD[..GOOD.len() - 10],
            &["truncated.json:2:", "EOF while parsing"],
        ),
        (
            "array_item",
            "[{\"schema_version\": 1}, {\"run_id\": \"x\"}]",
            &["array_item.json: run \"x\" has no schema_version"],
        ),
        (
            "empty_array",
            "[]",
            &["empty_array.json: no history runs found"],
        ),
    ];
    for (name, body, fragments) in cases {
        let file = format!("{name}.json");
        let (run, _dir) = plan_from(&[(&file, body.as_bytes())], Some(&file));
        fails_with(&run, 1, fragments);
        // The same file inside a directory gives the same error (an empty array beside a
        // good record is merely a file with no runs).
        if *name != "empty_array" {
            let files = [
                ("good.json", GOOD.as_bytes()),
                (file.as_str(), body.as_bytes()),
            ];
            let (run, _dir) = plan_from(&files, None);
            fails_with(&run, 1, fragments);
        }
    }
}

#[test]
fn invalid_utf8_is_a_named_error() {
    let mut body = GOOD.as_bytes().to_vec();
    let at = body.windows(5).position(|w| w == b"email").unwrap();
    body[at] = 0xff;
    let (run, _dir) = plan_from(&[("latin1.json", &body)], Some("latin1.json"));
    fails_with(&run, 1, &["latin1.json:2:", "invalid unicode"]);
}

#[test]
fn duplicate_runs_name_both_files() {
    let (run, _dir) = plan_from(
        &[("a.json", GOOD.as_bytes()), ("b.json", GOOD.as_bytes())],
        None,
    );
    fails_with(&run, 1, &["b.json: run \"r1\" appears also in ", "a.json"]);
    let twice = format!("[{GOOD}, {GOOD}]");
    let (run, _dir) = plan_from(&[("c.json", twice.as_bytes())], Some("c.json"));
    fails_with(&run, 1, &["c.json: run \"r1\" appears twice in this file"]);
}

#[test]
fn directories_skip_in_progress_files_and_report_broken_ones() {
    let (run, _dir) = plan_from(
        &[
            ("README.md", b"not a run"),
            (".r2.json.tmp", b"{half written"),
            ("_r3.json", b"{half written"),
            (".hidden.json", b"{"),
        ],
        None,
    );
    fails_with(&run, 1, &["no history runs found"]);

    let (run, dir) = plan_from(&[("r1.json", GOOD.as_bytes()), ("notes.txt", b"x")], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("the last of 1 runs"), "{}", run.stdout);

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("r2.json")).unwrap();
        let run = skewer([
            "plan".as_ref(),
            "--history".as_ref(),
            dir.path().as_os_str(),
        ]);
        fails_with(&run, 1, &["r2.json: No such file or directory"]);
    }
}

#[test]
fn missing_history_is_bad_input() {
    let run = skewer(["plan", "--history", "no/such/history"]);
    fails_with(&run, 1, &["no/such/history: No such file or directory"]);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["plan"][..],
        &[
            "plan",
            "--history",
            "history/samples/uniform",
            "--reducers",
            "0",
        ],
        &[
            "plan",
            "--history",
            "history/samples/uniform",
            "--spare",
            "0.9",
        ],
        &[
            "plan",
            "--history",
            "history/samples/uniform",
            "--window",
            "0",
        ],
        &[
            "plan",
            "--history",
            "history/samples/uniform",
            "--target-file-size",
            "big",
        ],
        &["plan", "--history", "history/samples/uniform", "--bogus"],
        &["frobnicate"],
    ] {
        let run = skewer(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("error:"), "{}", run.stderr);
    }
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args([
            "plan",
            "--history",
            "history/samples/contacts-zipf",
            "--json",
            "-r",
            "8",
        ])
        .current_dir(crate::util::repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // close the read end before skewer writes
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn sample_files_are_what_the_readme_says() {
    let dir = crate::util::repo().join("history/samples/contacts-zipf");
    let runs = fs::read_dir(&dir).unwrap().count();
    assert_eq!(runs, 7);
    let loaded = skewer::history::load(&dir).unwrap();
    let last = loaded.history.runs().last().unwrap();
    let mut rows: Vec<u64> = last.properties.values().map(|v| v.rows).collect();
    rows.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = rows.iter().sum();
    let top20: u64 = rows[..20].iter().sum();
    assert!(rows.len() >= 1280);
    assert!((0.85..0.95).contains(&(top20 as f64 / total as f64)));
    let half =
        skewer::history::load(&crate::util::repo().join("history/samples/one-half.json")).unwrap();
    for run in half.history.runs() {
        let max = run.properties.values().map(|v| v.rows).max().unwrap();
        let sum: u64 = run.properties.values().map(|v| v.rows).sum();
        assert!((0.45..0.55).contains(&(max as f64 / sum as f64)));
    }
}

#[test]
fn history_show_lists_runs_and_trends() {
    let r = skewer([
        "history",
        "show",
        "history/samples/contacts-zipf",
        "--json",
        "--top",
        "3",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 7);
    assert_eq!(v["runs"][6]["properties"], 1282);
    let trends = v["trends"].as_array().unwrap();
    assert_eq!(trends.len(), 3);
    assert_eq!(trends[0]["property"], "hs_analytics_num_page_views");
    assert_eq!(trends[0]["rows"].as_array().unwrap().len(), 7);
    let table = skewer([
        "history",
        "show",
        "history/samples/contacts-zipf",
        "--window",
        "3",
    ]);
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("over the last 3 runs"),
        "{}",
        table.stdout
    );
    let missing = skewer(["history", "show", "no/such/dataset"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no/such/dataset"),
        "{}",
        missing.stderr
    );
}
