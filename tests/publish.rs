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
            let m = skewer::commit::read_manifest(
                &skewer::commit::Layout::new(&dataset),
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
    let layout = skewer::commit::Layout::new(&dataset);
    let held = skewer::commit::lock(&layout, "nightly-1").unwrap();
    let second = skewer(run_args(&input, &dataset));
    assert_eq!(second.code, 1);
    assert!(
        second.stderr.contains("locked by run nightly-1"),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("_skewer/lock"), "{}", second.stderr);
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
