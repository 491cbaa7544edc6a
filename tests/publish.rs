use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use skewer::generate::{GenConfig, generate};

use crate::util::{repo, skewer};

fn dump(out: &Path, seed: u64, objects: u64, properties: usize) {
    generate(&GenConfig {
        objects,
        properties,
        files: 2,
        seed,
        ..GenConfig::new(out)
    })
    .unwrap();
}

/// A data file's partition folder, relative to the dataset.
fn folder(dataset: &Path, file: &skewer::dataset::DataFile) -> String {
    let dir = file.path.parent().unwrap();
    dir.strip_prefix(dataset)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Partition folder (dataset-relative) → file names in it.
fn partitions(dataset: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in skewer::dataset::files(dataset).unwrap() {
        let dir = folder(dataset, &f);
        out.entry(dir)
            .or_default()
            .insert(f.path.file_name().unwrap().to_string_lossy().into_owned());
    }
    out
}

/// Partition → its rows, sorted: what a reader sees. (File bytes may differ between runs
/// that planned from different histories; the rows may not.)
fn contents(dataset: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in skewer::dataset::files(dataset).unwrap() {
        let dir = folder(dataset, &f);
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        let entry = out.entry(dir).or_default();
        for i in 0..rows.len() {
            entry.push(format!("{:?}", rows.row(i)));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn run_args<'a>(input: &'a Path, dataset: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        "-i",
        input.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
        "-r",
        "3",
    ]
}

/// Runs skewer with a fail point; it must die by abort.
fn crash(args: &[&str], point: &str, fallback: bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skewer"));
    cmd.args(args)
        .current_dir(repo())
        .env("SKEWER_FAIL_AT", point);
    if fallback {
        cmd.env("SKEWER_NO_EXCHANGE", "1");
    }
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "{point}: the run should have crashed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("SKEWER_FAIL_AT={point}")),
        "{point}: {stderr}"
    );
}

/// The run id of the newest manifest, if any.
fn manifest_run(dataset: &Path, not: &str) -> Option<String> {
    let mut runs: Vec<String> = fs::read_dir(dataset.join("_skewer/runs"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .filter(|r| r != not && !r.starts_with('.'))
        .collect();
    runs.sort();
    runs.pop()
}

#[test]
fn a_crash_at_any_publish_step_leaves_partitions_old_or_new_and_recovery_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    dump(&a, 1, 150, 30);
    dump(&b, 2, 120, 45); // the same 30 property names and 15 more

    // What a reader should end with: A, then B, without any crash.
    let clean = tmp.path().join("clean");
    for input in [&a, &b] {
        assert_eq!(skewer(run_args(input, &clean)).code, 0);
    }
    let want = contents(&clean);

    let cases = [
        ("staged", false),
        ("manifest", false),
        ("swap:1", false),
        ("swap:20", false),
        ("history", false),
        ("committed", false),
        ("swap:2", true),
        ("aside:3", true),
    ];
    for (point, fallback) in cases {
        let dataset = tmp.path().join(format!(
            "ds-{}{}",
            point.replace(':', "-"),
            if fallback { "-fb" } else { "" }
        ));
        let first = skewer(run_args(&a, &dataset));
        assert_eq!(first.code, 0, "{}", first.stderr);
        let run_a = manifest_run(&dataset, "").unwrap();
        let old = partitions(&dataset);

        crash(&run_args(&b, &dataset), point, fallback);
        let run_b = manifest_run(&dataset, &run_a);
        let after = partitions(&dataset);
        // Every partition is wholly A's (as before) or wholly B's.
        for (dir, files) in &after {
            let all_b = run_b
                .as_ref()
                .is_some_and(|r| files.iter().all(|f| f.starts_with(&format!("part-{r}-"))));
            assert!(
                old.get(dir) == Some(files) || all_b,
                "{point}: {dir} holds {files:?}"
            );
        }
        // No partition of A's vanished, except between the two renames of the fallback swap.
        let missing: Vec<_> = old.keys().filter(|d| !after.contains_key(*d)).collect();
        assert!(
            missing.is_empty() || point == "aside:3" && missing.len() == 1,
            "{point}: missing {missing:?}"
        );

        let recovered = skewer(["recover", dataset.to_str().unwrap()]);
        assert_eq!(recovered.code, 0, "{point}: {}", recovered.stderr);
        let published = run_b.is_some();
        let now = partitions(&dataset);
        if published {
            // Rolled forward: B's manifest is committed and every partition it lists is B's.
            let m = skewer::store::local::read_manifest(
                &skewer::layout::Layout::new(&dataset),
                run_b.as_deref().unwrap(),
            )
            .unwrap();
            assert_eq!(m.state, "committed", "{point}");
            for dir in &m.partitions {
                assert!(
                    now[dir]
                        .iter()
                        .all(|f| f.contains(run_b.as_deref().unwrap())),
                    "{point}: {dir}"
                );
            }
            assert!(
                dataset
                    .join("_skewer/history")
                    .join(format!("{}.json", run_b.as_deref().unwrap()))
                    .exists()
            );
        } else {
            assert_eq!(now, old, "{point}: nothing was published, so A stays");
            assert!(
                recovered.stdout.contains("removed the unpublished files"),
                "{}",
                recovered.stdout
            );
        }
        assert!(
            !dataset.join("_skewer/staging").exists() && !dataset.join("_skewer/replaced").exists()
        );

        // A final run ends where the clean sequence did.
        let last = skewer(run_args(&b, &dataset));
        assert_eq!(last.code, 0, "{point}: {}", last.stderr);
        assert_eq!(contents(&dataset), want, "{point}");
    }
}

#[test]
fn the_next_run_recovers_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dump(&input, 3, 100, 20);
    let dataset = tmp.path().join("ds");
    crash(&run_args(&input, &dataset), "swap:2", false);
    let run = skewer(run_args(&input, &dataset));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("recovered: finished the interrupted publish of run"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_second_run_on_a_locked_dataset_refuses_with_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dump(&input, 4, 20, 5);
    let dataset = tmp.path().join("ds");
    let layout = skewer::layout::Layout::new(&dataset);
    let held = skewer::store::local::lock(&layout, "nightly-1").unwrap();
    let second = skewer(run_args(&input, &dataset));
    assert_eq!(second.code, 1);
    assert!(
        second.stderr.contains("locked by run nightly-1"),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("_skewer/lock"), "{}", second.stderr);
    // A local lock dies with its process: removing the file is never the advice.
    assert!(
        second.stderr.contains("released when that process ends")
            && !second.stderr.contains("remove this"),
        "{}",
        second.stderr
    );
    drop(held);
    assert_eq!(skewer(run_args(&input, &dataset)).code, 0);
}

#[test]
fn too_many_bad_records_publish_nothing_and_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let mut lines = String::new();
    for i in 0..10 {
        if i % 3 == 0 {
            lines += "{\"vid\": \"not a number\"}\n";
        } else {
            lines += &format!(
                "{{\"vid\": {i}, \"properties\": {{\"a\": {{\"versions\": [{{\"value\": \"x\", \"timestamp\": 1}}]}}}}}}\n"
            );
        }
    }
    fs::write(input.join("d.ndjson"), lines).unwrap();
    let dataset = tmp.path().join("ds");
    let mut args = run_args(&input, &dataset);
    args.extend(["--max-bad-records", "3"]);
    let too_many = skewer(&args);
    assert_eq!(too_many.code, 3, "{}", too_many.stderr);
    assert!(
        too_many
            .stderr
            .contains("4 of 10 records (and versions) could not be read"),
        "{}",
        too_many.stderr
    );
    assert!(partitions(&dataset).is_empty(), "nothing published");
    assert!(
        !dataset.join("_skewer/runs").exists()
            || fs::read_dir(dataset.join("_skewer/runs")).unwrap().count() == 0
    );
    let rejects: Vec<_> = fs::read_dir(dataset.join("_skewer/rejects"))
        .unwrap()
        .collect();
    assert_eq!(rejects.len(), 1, "the rejects stay for diagnosis");

    for limit in ["4", "40%"] {
        let mut args = run_args(&input, &dataset);
        args.extend(["--max-bad-records", limit]);
        let ok = skewer(&args);
        assert_eq!(ok.code, 0, "{limit}: {}", ok.stderr);
    }
    assert_eq!(
        skewer(["run", "-i", "x", "-o", "y", "--max-bad-records", "lots"]).code,
        2
    );
}

#[test]
fn rerunning_the_same_input_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dump(&input, 5, 80, 25);
    let dataset = tmp.path().join("ds");
    assert_eq!(skewer(run_args(&input, &dataset)).code, 0);
    let once = contents(&dataset);
    assert_eq!(skewer(run_args(&input, &dataset)).code, 0);
    assert_eq!(contents(&dataset), once);
}

/// A publish that fails part way (a rename refused, a disk full) says how far it got and what
/// to run; `recover` then finishes it. One whose commit mark alone fails is published: it
/// says so, exits 0, and the next recover marks it.
#[test]
fn a_publish_that_fails_part_way_says_where_it_stopped_and_recover_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    dump(&a, 1, 80, 20);
    dump(&b, 2, 60, 30);
    let clean = tmp.path().join("clean");
    for input in [&a, &b] {
        assert_eq!(skewer(run_args(input, &clean)).code, 0);
    }
    let want = contents(&clean);

    let dataset = tmp.path().join("ds");
    assert_eq!(skewer(run_args(&a, &dataset)).code, 0);
    let run_a = manifest_run(&dataset, "").unwrap();
    let failed = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(run_args(&b, &dataset))
        .env("SKEWER_FAIL_AT", "error:swap:3")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("stopped after 2 of 30 partitions")
            && stderr.contains("readers now see 2 of the run's 30 partitions new")
            && stderr.contains("says \"publishing\"")
            && stderr.contains(&format!("skewer recover {}", dataset.display())),
        "{stderr}"
    );
    let run_b = manifest_run(&dataset, &run_a).unwrap();
    let recovered = skewer(["recover", dataset.to_str().unwrap()]);
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    assert!(recovered.stdout.contains(&run_b), "{}", recovered.stdout);
    assert_eq!(contents(&dataset), want);

    // The commit mark alone fails: published all the same.
    let dataset = tmp.path().join("ds2");
    assert_eq!(skewer(run_args(&a, &dataset)).code, 0);
    let run_a = manifest_run(&dataset, "").unwrap();
    let marked = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(run_args(&b, &dataset))
        .env("SKEWER_FAIL_AT", "error:commit")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&marked.stdout);
    assert_eq!(marked.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "warning: the run is published, but its manifest could not be marked committed"
        ),
        "{stdout}"
    );
    assert_eq!(contents(&dataset), want);
    let run_b = manifest_run(&dataset, &run_a).unwrap();
    let layout = skewer::layout::Layout::new(&dataset);
    let state = || {
        skewer::store::local::read_manifest(&layout, &run_b)
            .unwrap()
            .state
    };
    assert_eq!(state(), "publishing");
    assert_eq!(skewer(["recover", dataset.to_str().unwrap()]).code, 0);
    assert_eq!(state(), "committed");
    assert_eq!(contents(&dataset), want);
}

/// Append mode is crash-safe too: after a crash at any step each partition holds what it
/// held, or that plus the new run's files, and recovery completes the append.
#[test]
fn a_crash_at_any_step_of_an_append_leaves_partitions_old_or_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    dump(&a, 1, 60, 12);
    dump(&b, 2, 50, 16);
    let append = |input: &Path, dataset: &Path| -> Vec<String> {
        let mut args: Vec<String> = run_args(input, dataset)
            .into_iter()
            .map(String::from)
            .collect();
        args.extend(["--mode".into(), "append".into()]);
        args
    };
    let clean = tmp.path().join("clean");
    for input in [&a, &b] {
        assert_eq!(skewer(append(input, &clean)).code, 0);
    }
    let want = contents(&clean);

    for (point, fallback) in [
        ("staged", false),
        ("manifest", false),
        ("swap:1", false),
        ("swap:7", false),
        ("history", false),
        ("committed", false),
        ("aside:2", true),
    ] {
        let dataset = tmp.path().join(format!("ds-{}", point.replace(':', "-")));
        assert_eq!(skewer(append(&a, &dataset)).code, 0);
        let run_a = manifest_run(&dataset, "").unwrap();
        let old = partitions(&dataset);
        let args = append(&b, &dataset);
        crash(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            point,
            fallback,
        );
        let run_b = manifest_run(&dataset, &run_a);
        for (dir, files) in partitions(&dataset) {
            let before = old.get(&dir).cloned().unwrap_or_default();
            let added: Vec<_> = files.difference(&before).collect();
            // Old, or old plus only B's files: never a partition that lost A's.
            assert!(before.is_subset(&files), "{point}: {dir} lost files");
            assert!(
                added.is_empty()
                    || run_b
                        .as_ref()
                        .is_some_and(|r| added.iter().all(|f| f.contains(r.as_str()))),
                "{point}: {dir} gained {added:?}"
            );
        }
        let recovered = skewer(["recover", dataset.to_str().unwrap()]);
        assert_eq!(recovered.code, 0, "{point}: {}", recovered.stderr);
        if run_b.is_none() {
            // Nothing was published: append again.
            assert_eq!(skewer(append(&b, &dataset)).code, 0);
        }
        assert_eq!(contents(&dataset), want, "{point}");
    }
}

/// Many runs started at the same moment on one dataset: each commits alone or is refused
/// with the lock's owner, and the dataset ends as exactly one run wrote it.
#[test]
fn runs_started_together_never_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs: Vec<_> = (0..8)
        .map(|i| {
            let dir = tmp.path().join(format!("in-{i}"));
            // Same property names, different values: any mix would show.
            dump(&dir, 100 + i, 60, 15);
            dir
        })
        .collect();
    let dataset = tmp.path().join("ds");
    for round in 0..3 {
        let children: Vec<_> = inputs
            .iter()
            .map(|input| {
                Command::new(env!("CARGO_BIN_EXE_skewer"))
                    .args(run_args(input, &dataset))
                    .args(["--json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut committed = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                    committed.push(v["manifest"]["run_id"].as_str().unwrap().to_string());
                }
                Some(1) => assert!(stderr.contains("the dataset is locked by"), "{stderr}"),
                other => panic!("round {round}: exit {other:?}: {stderr}"),
            }
        }
        assert!(!committed.is_empty(), "round {round}");
        // Every partition is one run's whole output, and that run is the last to commit.
        committed.sort();
        let last = committed.last().unwrap();
        for (dir, files) in partitions(&dataset) {
            assert!(
                files
                    .iter()
                    .all(|f| f.starts_with(&format!("part-{last}-"))),
                "round {round}: {dir} holds {files:?}, committed {committed:?}"
            );
        }
        let inspect = skewer(["inspect", dataset.to_str().unwrap()]);
        assert_eq!(inspect.code, 0, "{}{}", inspect.stdout, inspect.stderr);
    }
}

/// The run's own accounting catches a row lost between the stages: it fails as a bug and
/// publishes nothing.
#[test]
fn a_row_lost_between_stages_fails_the_run_unpublished() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dump(&input, 6, 40, 10);
    let dataset = tmp.path().join("ds");
    let out = Command::new(env!("CARGO_BIN_EXE_skewer"))
        .args(run_args(&input, &dataset))
        .env("SKEWER_FAIL_AT", "lose-row")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a bug in skewer") && stderr.contains("rows do not add up"),
        "{stderr}"
    );
    assert!(partitions(&dataset).is_empty());
    assert!(manifest_run(&dataset, "").is_none());
}

/// What skewer reads back from `_skewer/` is checked before it is used: a hand-edited
/// manifest, history record or lock note is named, never followed outside the dataset.
#[test]
fn hand_edited_metadata_is_refused_by_name_and_nothing_outside_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dump(&input, 7, 30, 8);
    let dataset = tmp.path().join("lake/ds");
    assert_eq!(skewer(run_args(&input, &dataset)).code, 0);
    let run = manifest_run(&dataset, "").unwrap();
    let victim = tmp.path().join("victim");
    fs::create_dir_all(victim.join("property_name=a")).unwrap();
    fs::write(victim.join("property_name=a/keep.txt"), "keep").unwrap();

    // A manifest left "publishing" whose run id climbs out of the dataset.
    let manifest_path = dataset.join(format!("_skewer/runs/{run}.json"));
    let original = fs::read_to_string(&manifest_path).unwrap();
    let evil = original.replace("\"committed\"", "\"publishing\"").replace(
        &format!("\"run_id\": \"{run}\""),
        "\"run_id\": \"../../../victim\"",
    );
    fs::write(&manifest_path, evil).unwrap();
    for args in [
        vec!["recover", dataset.to_str().unwrap()],
        run_args(&input, &dataset),
    ] {
        let refused = skewer(&args);
        assert_eq!(refused.code, 1, "{}", refused.stderr);
        assert!(
            refused.stderr.contains(&format!("{run}.json"))
                && refused.stderr.contains("edited or damaged"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(
        fs::read_to_string(victim.join("property_name=a/keep.txt")).unwrap(),
        "keep"
    );
    fs::write(&manifest_path, original).unwrap();

    // A history record cut short: named with its line and column by run, plan and show.
    let history = dataset.join(format!("_skewer/history/{run}.json"));
    let text = fs::read_to_string(&history).unwrap();
    fs::write(&history, &text[..text.len() / 2]).unwrap();
    for args in [
        run_args(&input, &dataset),
        vec!["plan", "--history", history.to_str().unwrap()],
        vec!["history", "show", dataset.to_str().unwrap()],
    ] {
        let refused = skewer(&args);
        assert_ne!(refused.code, 0, "{args:?}");
        assert!(
            refused.stderr.contains(&format!("{run}.json:")),
            "{args:?}: {}",
            refused.stderr
        );
    }
    fs::write(&history, text).unwrap();

    // A lock note of garbage is no lock; a lock path that is a folder is named as such.
    fs::write(dataset.join("_skewer/lock"), "\u{0}garbage{").unwrap();
    assert_eq!(skewer(run_args(&input, &dataset)).code, 0);
    fs::remove_file(dataset.join("_skewer/lock")).unwrap();
    fs::create_dir_all(dataset.join("_skewer/lock/inside")).unwrap();
    let refused = skewer(run_args(&input, &dataset));
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("is a directory, not skewer's lock file"),
        "{}",
        refused.stderr
    );
}
