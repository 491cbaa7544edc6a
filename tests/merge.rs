use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use skewer::generate::{GenConfig, generate};
use skewer::run::{RunConfig, RunSummary, run};
use skewer::store::meta::Mode;

use crate::util::{repo, skewer};

/// A generated NDJSON dump of `objects` objects in `files` files; dumps with different seeds
/// share object ids and property names, with other histories.
fn dump(out: &Path, seed: u64, objects: u64, files: usize) -> Vec<PathBuf> {
    generate(&GenConfig {
        objects,
        properties: 40,
        files,
        seed,
        ..GenConfig::new(out)
    })
    .unwrap();
    let mut paths: Vec<PathBuf> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
}

fn config(inputs: &[&Path], output: &Path, mode: Mode) -> RunConfig {
    RunConfig {
        mappers: 2,
        split_bytes: 64 << 10,
        max_bad_records: skewer::run::BadRecordLimit::Count(0),
        memory_limit: 1 << 30,
        mode,
        ..RunConfig::new(inputs, output, 3)
    }
}

fn merge(inputs: &[&Path], output: &Path) -> RunSummary {
    run(&config(inputs, output, Mode::Merge)).unwrap()
}

/// Partition → its rows in file order, files in name order (a merged partition must be
/// sorted as written, so the order is compared too).
fn rows_by_partition(dataset: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in skewer::dataset::files(dataset).unwrap() {
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        let entry = out.entry(f.property.clone()).or_default();
        for i in 0..rows.len() {
            entry.push(format!("{:?}", rows.row(i)));
        }
    }
    out
}

/// Each partition's rows, sorted (for datasets whose partitions have several files).
pub(crate) fn sorted_rows(dataset: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = rows_by_partition(dataset);
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

/// Data file path (dataset-relative) → its bytes.
fn file_bytes(dataset: &Path) -> BTreeMap<String, Vec<u8>> {
    skewer::dataset::files(dataset)
        .unwrap()
        .into_iter()
        .map(|f| {
            let rel = f.path.strip_prefix(dataset).unwrap();
            (
                rel.to_string_lossy().into_owned(),
                fs::read(&f.path).unwrap(),
            )
        })
        .collect()
}

/// A base dump and three increments (another dump's histories of the same objects, new
/// objects, and a part of the base again), merged one at a time, hold exactly the rows of
/// one clean run over all of them; every merged partition is one sorted file.
#[test]
fn a_base_and_increments_merged_one_at_a_time_equal_one_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 300, 2);
    let other = dump(&tmp.path().join("other"), 2, 120, 1);
    let more = dump(&tmp.path().join("more"), 3, 400, 1);
    let increments = [&other[0], &more[0], &base[1]];

    let merged = tmp.path().join("merged");
    let first = merge(&[&base[0]], &merged);
    assert_eq!(first.manifest.counts.stored_rows_read, 0);
    let mut stored = first.manifest.counts.rows_written;
    for inc in increments {
        let s = merge(&[inc.as_path()], &merged);
        let c = &s.manifest.counts;
        assert!(c.stored_rows_read > 0 && c.stored_rows_read <= stored);
        assert_eq!(
            c.rows_exploded + c.stored_rows_read,
            c.rows_written + c.duplicates_dropped + c.rows_deleted
        );
        stored = stored - c.stored_rows_read + c.rows_written;
    }

    let clean = tmp.path().join("clean");
    let mut all: Vec<&Path> = base.iter().map(PathBuf::as_path).collect();
    all.extend(increments.iter().map(|p| p.as_path()));
    run(&config(&all, &clean, Mode::Overwrite)).unwrap();
    assert_eq!(sorted_rows(&merged), sorted_rows(&clean));
    let total: usize = rows_by_partition(&merged).values().map(Vec::len).sum();
    assert_eq!(total as u64, stored);

    // Merged partitions are single files, sorted by (object_id, timestamp) as written.
    let files = skewer::dataset::files(&merged).unwrap();
    let properties = rows_by_partition(&merged).len();
    assert_eq!(files.len(), properties);
    let check = skewer(["inspect", merged.to_str().unwrap()]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
}

/// A merge that touches one property rewrites that partition alone: every other file keeps
/// its bytes; merging the same input again changes no row.
#[test]
fn a_merge_touches_only_its_partitions_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 200, 1);
    let dataset = tmp.path().join("ds");
    run(&config(&[&base[0]], &dataset, Mode::Overwrite)).unwrap();
    let before = file_bytes(&dataset);
    let rows_before = rows_by_partition(&dataset);
    let (property, rows) = rows_before.iter().next().unwrap();

    // One new version of one object's property, and one version it already has.
    let object = skewer::dataset::read_rows(
        &skewer::dataset::files(&dataset)
            .unwrap()
            .into_iter()
            .find(|f| &f.property == property)
            .unwrap()
            .path,
    )
    .unwrap();
    let (id, ts) = (object.object_id[0], object.timestamp[0]);
    let value = object
        .value
        .get(0)
        .map(|v| String::from_utf8(v.to_vec()).unwrap());
    let source = object
        .source_type
        .get(0)
        .map(|v| String::from_utf8(v.to_vec()).unwrap());
    let old = serde_json::json!({
        "value": value, "timestamp": ts, "source-type": source,
        "source-id": object.source_id.get(0).map(|v| String::from_utf8(v.to_vec()).unwrap()),
        "source-label": object.source_label.get(0).map(|v| String::from_utf8(v.to_vec()).unwrap()),
        "updated-by-user-id": object.updated_by.get(0),
    });
    let record = serde_json::json!({
        "vid": id,
        "properties": { property: {
            "value": "merged in",
            "versions": [
                {"value": "merged in", "timestamp": ts + 1, "source-type": "API"},
                old,
            ],
        }},
    });
    let inc = tmp.path().join("inc.ndjson");
    fs::write(&inc, format!("{record}\n")).unwrap();

    let s = merge(&[&inc], &dataset);
    let c = &s.manifest.counts;
    assert_eq!(c.rows_exploded, 2);
    assert_eq!(c.stored_rows_read, rows.len() as u64);
    assert_eq!(c.rows_written, rows.len() as u64 + 1);
    assert_eq!(c.duplicates_dropped, 1);
    assert_eq!(s.manifest.partitions.len(), 1);
    let read_back: u64 = s.manifest.reducers.iter().map(|r| r.stored_rows).sum();
    assert_eq!(read_back, rows.len() as u64);

    // The history keeps the input's rows and those read back apart; `plan` shows both, and
    // lays out both.
    let record: planner::RunRecord = serde_json::from_slice(
        &fs::read(
            dataset
                .join("_skewer/history")
                .join(format!("{}.json", s.manifest.run_id)),
        )
        .unwrap(),
    )
    .unwrap();
    let v = record.properties[property.as_str()];
    assert_eq!((v.rows, v.stored_rows), (2, rows.len() as u64));
    assert_eq!(
        record.reducers.iter().map(|r| r.stored_rows).sum::<u64>(),
        rows.len() as u64
    );
    let history = dataset.join("_skewer/history");
    let plan = skewer(["plan", "--history", history.to_str().unwrap(), "-r", "3"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout.contains("read back") && plan.stdout.contains("read back by merges"),
        "{}",
        plan.stdout
    );

    let after = file_bytes(&dataset);
    let prefix = format!("property_name={property}/");
    let untouched = |m: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        m.iter()
            .filter(|(k, _)| !k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(untouched(&before), untouched(&after));
    let merged_rows = rows_by_partition(&dataset);
    assert_eq!(merged_rows[property].len(), rows.len() + 1);
    let needle = format!("value: {:?}", Some(&b"merged in"[..]));
    assert!(merged_rows[property].iter().any(|r| r.contains(&needle)));

    // Again: nothing new; the partition is rewritten with the same rows.
    let again = merge(&[&inc], &dataset);
    assert_eq!(again.manifest.counts.duplicates_dropped, 2);
    assert_eq!(rows_by_partition(&dataset), merged_rows);
    assert_eq!(untouched(&file_bytes(&dataset)), untouched(&before));
}

/// A stored file that cannot be merged (not Parquet, or not sorted) fails the merge naming
/// it; nothing is published and the dataset keeps every byte.
#[test]
fn a_bad_stored_file_fails_the_merge_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 100, 1);
    let dataset = tmp.path().join("ds");
    run(&config(&[&base[0]], &dataset, Mode::Overwrite)).unwrap();
    let partition = fs::read_dir(&dataset)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("property_name=")
        })
        .unwrap();
    let stray = partition.join("notes.txt");
    fs::write(&stray, b"kept by hand").unwrap();
    let before = file_bytes(&dataset);
    let runs_before = fs::read_dir(dataset.join("_skewer/runs")).unwrap().count();

    let err = run(&config(&[&base[0]], &dataset, Mode::Merge))
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(file_bytes(&dataset), before);
    assert_eq!(
        fs::read_dir(dataset.join("_skewer/runs")).unwrap().count(),
        runs_before
    );
    assert_eq!(fs::read(&stray).unwrap(), b"kept by hand");

    // A data file whose rows are out of order is named with its row group.
    fs::remove_file(&stray).unwrap();
    let file = fs::read_dir(&partition)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rows = skewer::dataset::read_rows(&file).unwrap();
    if rows.len() > 1 {
        let mut reversed: Vec<u32> = (0..rows.len() as u32).collect();
        reversed.reverse();
        let sink = skewer::sink::SinkOptions::default();
        let tmp_out = tmp.path().join("unsorted");
        let mut w = skewer::sink::PropertyWriter::new(&tmp_out, "part-x", &sink);
        w.write(&rows.cols, &reversed).unwrap();
        let written = w.finish().unwrap();
        fs::copy(&written.files[0].path, &file).unwrap();
        let err = run(&config(&[&base[0]], &dataset, Mode::Merge))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not sorted") && err.contains("row group 0"),
            "{err}"
        );
    }
}

/// A merge killed at any step of its publish leaves each partition wholly old or wholly
/// merged; `recover` then completes or undoes it.
#[test]
fn a_merge_killed_while_publishing_is_old_or_new_after_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 150, 1);
    let inc = dump(&tmp.path().join("inc"), 2, 80, 1);
    let merged = tmp.path().join("merged");
    run(&config(&[&base[0]], &merged, Mode::Overwrite)).unwrap();
    let old = sorted_rows(&merged);
    merge(&[&inc[0]], &merged);
    let new = sorted_rows(&merged);
    assert_ne!(old, new);

    for point in [
        "staged",
        "manifest",
        "swap:1",
        "swap:3",
        "history",
        "committed",
    ] {
        let dataset = tmp.path().join(format!("ds-{}", point.replace(':', "-")));
        run(&config(&[&base[0]], &dataset, Mode::Overwrite)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_skewer"))
            .args(["run", "--mode", "merge", "-r", "3", "-q", "-i"])
            .arg(&inc[0])
            .arg("-o")
            .arg(&dataset)
            .current_dir(repo())
            .env("SKEWER_FAIL_AT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: should have crashed");
        let r = skewer(["recover", dataset.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{point}: {}", r.stderr);
        let now = sorted_rows(&dataset);
        for (property, rows) in &now {
            assert!(
                Some(rows) == old.get(property) || Some(rows) == new.get(property),
                "{point}: {property} is neither old nor merged"
            );
        }
        let after_point = !matches!(point, "staged" | "manifest");
        if after_point {
            assert_eq!(now, new, "{point}: a published merge is completed");
        }
    }
}

/// `--delete-objects`: the objects' rows go from every partition, those the input touches
/// and those it does not; an id with no rows is counted, not an error; the counts are in
/// the summary and the manifest.
#[test]
fn deleted_objects_leave_every_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 200, 1);
    let inc = dump(&tmp.path().join("inc"), 2, 20, 1);
    let dataset = tmp.path().join("ds");
    run(&config(&[&base[0]], &dataset, Mode::Overwrite)).unwrap();

    let mut ids = std::collections::BTreeSet::new();
    let mut per_object: BTreeMap<i64, u64> = BTreeMap::new();
    for f in skewer::dataset::files(&dataset).unwrap() {
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        for &id in &rows.object_id {
            *per_object.entry(id).or_default() += 1;
        }
    }
    // Two objects the increment also carries (low ids), one it does not, one never stored.
    let known: Vec<i64> = per_object.keys().copied().collect();
    ids.extend([known[0], known[1], known[150], 1]);
    let list = tmp.path().join("deleted.txt");
    let text: String = ids.iter().map(|i| format!("{i}\n")).collect();
    fs::write(&list, format!("# gone today\n{text}")).unwrap();

    let json = run_json(
        "merge",
        &inc[0],
        &dataset,
        &["--delete-objects", list.to_str().unwrap()],
    );
    let counts = &json["manifest"]["counts"];
    assert_eq!(counts["objects_to_delete"], 4);
    assert_eq!(counts["objects_deleted"], 3);

    let mut left = 0;
    for f in skewer::dataset::files(&dataset).unwrap() {
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        left += rows.object_id.iter().filter(|id| ids.contains(id)).count();
    }
    assert_eq!(left, 0, "deleted objects' rows remain");
    let stored_rows: u64 = [known[0], known[1], known[150]]
        .iter()
        .map(|id| per_object[id])
        .sum();
    // The increment's own rows of the deleted objects go too.
    assert!(counts["rows_deleted"].as_u64().unwrap() >= stored_rows);

    let with_list = |mode: &[&str]| {
        let mut args = vec!["run", "-q", "-i", inc[0].to_str().unwrap()];
        args.extend(["-o", dataset.to_str().unwrap()]);
        args.extend(["--delete-objects", list.to_str().unwrap()]);
        args.extend(mode);
        skewer(args)
    };
    // Without a merge, deleting is refused before anything is read.
    let refused = with_list(&[]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("--mode merge"),
        "{}",
        refused.stderr
    );
    // A bad id names the file and line.
    fs::write(&list, "12\nnot-an-id\n").unwrap();
    let bad = with_list(&["--mode", "merge"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("deleted.txt") && bad.stderr.contains("line 2"),
        "{}",
        bad.stderr
    );
}

/// `skewer run --mode <mode> --json -q -r 3 -i <input> -o <dataset>` (and `extra`): its
/// `--json` report; the run must succeed.
fn run_json(mode: &str, input: &Path, dataset: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", "--mode", mode, "--json", "-q", "-r", "3"];
    args.extend([
        "-i",
        input.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
    ]);
    args.extend(extra);
    let out = skewer(args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// The input's webhook events delete objects too: deletions, privacy deletions and the
/// objects a merge took away (with the primary, when the merge made a new object); an
/// object's last event decides, so a restore after a deletion keeps it. Without a merge the
/// events change nothing, and the run says so.
#[test]
fn deletion_and_merge_events_in_the_input_delete_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 200, 1);
    let dataset = tmp.path().join("ds");
    run(&config(&[&base[0]], &dataset, Mode::Overwrite)).unwrap();
    let mut per_object: BTreeMap<i64, u64> = BTreeMap::new();
    for f in skewer::dataset::files(&dataset).unwrap() {
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        for &id in &rows.object_id {
            *per_object.entry(id).or_default() += 1;
        }
    }
    let k: Vec<i64> = per_object.keys().copied().collect();
    let events = tmp.path().join("events.ndjson");
    let lines = [
        format!(
            r#"{{"subscriptionType": "contact.propertyChange", "objectId": {}, "propertyName": "from_webhook", "propertyValue": "x", "occurredAt": 1000}}"#,
            k[2]
        ),
        format!(
            r#"{{"subscriptionType": "contact.deletion", "objectId": {}, "occurredAt": 1000}}"#,
            k[0]
        ),
        format!(
            r#"{{"subscriptionType": "contact.privacyDeletion", "objectId": {}, "occurredAt": 1000}}"#,
            k[1]
        ),
        format!(
            r#"{{"subscriptionType": "contact.merge", "objectId": {0}, "primaryObjectId": {0}, "mergedObjectIds": [{1}, {2}], "newObjectId": {0}, "occurredAt": 1000}}"#,
            k[3], k[4], k[5]
        ),
        format!(
            r#"{{"subscriptionType": "contact.merge", "objectId": {0}, "primaryObjectId": {0}, "mergedObjectIds": [{1}], "newObjectId": 9000000, "occurredAt": 1000}}"#,
            k[6], k[7]
        ),
        // Restored after its deletion: kept. Deleted after its restore: gone.
        format!(
            r#"{{"subscriptionType": "contact.restore", "objectId": {}, "occurredAt": 2000}}"#,
            k[8]
        ),
        format!(
            r#"{{"subscriptionType": "contact.deletion", "objectId": {}, "occurredAt": 1000}}"#,
            k[8]
        ),
        format!(
            r#"{{"subscriptionType": "contact.deletion", "objectId": {}, "occurredAt": 2000}}"#,
            k[9]
        ),
        format!(
            r#"{{"subscriptionType": "contact.restore", "objectId": {}, "occurredAt": 1000}}"#,
            k[9]
        ),
        r#"{"subscriptionType": "contact.deletion", "objectId": 424242, "occurredAt": 1000}"#
            .to_string(),
    ];
    fs::write(&events, lines.join("\n")).unwrap();
    let gone: std::collections::BTreeSet<i64> = [k[0], k[1], k[4], k[5], k[6], k[7], k[9]].into();
    // A partition only a deleted object has: the merge must empty it, not leave it.
    let solo = tmp.path().join("solo.ndjson");
    fs::write(
        &solo,
        format!(r#"{{"vid": {}, "properties": {{"solo": {{"versions": [{{"value": "x", "timestamp": 1}}]}}}}}}"#, k[0]),
    )
    .unwrap();
    merge(&[&solo], &dataset);
    *per_object.get_mut(&k[0]).unwrap() += 1;

    let before = sorted_rows(&dataset);
    let kept = tmp.path().join("kept");
    let out = skewer([
        "run",
        "-q",
        "-r",
        "3",
        "-i",
        events.to_str().unwrap(),
        "-o",
        kept.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("delete or merge away 8 objects")
            && out.stdout.contains("--mode merge"),
        "{}",
        out.stdout
    );

    let json = run_json("merge", &events, &dataset, &[]);
    let counts = &json["manifest"]["counts"];
    assert_eq!(counts["objects_to_delete"], 8);
    assert_eq!(counts["objects_deleted"], 7);
    assert_eq!(counts["events_without_version"], 9);
    let stored: u64 = gone.iter().map(|id| per_object[id]).sum();
    assert_eq!(counts["rows_deleted"], stored);

    // Exactly the deleted objects' rows went, and the property change came in.
    let after = sorted_rows(&dataset);
    let mut want = before.clone();
    for rows in want.values_mut() {
        rows.retain(|r| {
            !gone
                .iter()
                .any(|id| r.contains(&format!("object_id: {id},")))
        });
    }
    want.retain(|_, rows| !rows.is_empty());
    let mut after_without_new = after.clone();
    let added = after_without_new.remove("from_webhook").unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(after_without_new.remove("solo"), Some(Vec::new()));
    assert_eq!(after_without_new, want);
    let inspect = skewer(["inspect", dataset.to_str().unwrap()]);
    assert_eq!(inspect.code, 0, "{}{}", inspect.stdout, inspect.stderr);

    // Deletions of two object types: ids may collide across types, so the merge is refused.
    let mixed = tmp.path().join("mixed.ndjson");
    fs::write(
        &mixed,
        format!(
            "{{\"subscriptionType\": \"contact.deletion\", \"objectId\": {}}}\n\
             {{\"subscriptionType\": \"company.deletion\", \"objectId\": {}}}\n",
            k[2], k[3]
        ),
    )
    .unwrap();
    let refused = skewer([
        "run",
        "--mode",
        "merge",
        "-q",
        "-i",
        mixed.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("several types (contact, company)"),
        "{}",
        refused.stderr
    );
    assert_eq!(sorted_rows(&dataset), after);
}

/// (property, object) → its rows (as `Row`'s debug text), in file order.
fn rows_by_pair(dataset: &Path) -> BTreeMap<(String, i64), Vec<String>> {
    let mut out: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
    for f in skewer::dataset::files(dataset).unwrap() {
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        for i in 0..rows.len() {
            out.entry((f.property.clone(), rows.object_id[i]))
                .or_default()
                .push(format!("{:?}", rows.row(i)));
        }
    }
    out
}

/// `--mode upsert`: where the input carries an object's property with its history (v1
/// `versions`, v3 `propertiesWithHistory`), that history replaces the stored one, shortened or
/// not; a webhook change adds one version; a current value alone replaces nothing; every
/// other (object, property) keeps its rows; deletes apply as in a merge.
#[test]
fn an_upsert_replaces_the_histories_the_input_carries() {
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 200, 1);
    let dataset = tmp.path().join("ds");
    run(&config(&[&base[0]], &dataset, Mode::Overwrite)).unwrap();
    let before = rows_by_pair(&dataset);
    // Pairs with at least two stored versions: (property, object).
    let long: Vec<&(String, i64)> = before
        .iter()
        .filter(|(_, rows)| rows.len() >= 2)
        .map(|(k, _)| k)
        .collect();
    let (a, b, c, d) = (long[0], long[5], long[10], long[15]);
    assert!(a.1 != b.1 && [a.1, b.1].iter().all(|&o| o != c.1 && o != d.1));
    let input = tmp.path().join("upsert.ndjson");
    let lines = [
        // v1: a's history shortened to one new version.
        format!(
            r#"{{"vid": {}, "properties": {{"{}": {{"value": "short", "versions": [{{"value": "short", "timestamp": 5}}]}}}}}}"#,
            a.1, a.0
        ),
        // v3: b's history with two versions, and c's property as a current value only.
        format!(
            r#"{{"id": "{}", "properties": {{"{}": "cur"}}, "propertiesWithHistory": {{"{}": [{{"value": "v1", "timestamp": "1970-01-01T00:00:00.001Z"}}, {{"value": "v2", "timestamp": 2}}]}}}}"#,
            b.1, c.0, b.0
        ),
        format!(r#"{{"id": "{}", "properties": {{"{}": "cur"}}}}"#, c.1, c.0),
        // A webhook change of d: one version more.
        format!(
            r#"{{"subscriptionType": "contact.propertyChange", "objectId": {}, "propertyName": "{}", "propertyValue": "hooked", "occurredAt": 7}}"#,
            d.1, d.0
        ),
    ];
    fs::write(&input, lines.join("\n")).unwrap();
    let json = run_json("upsert", &input, &dataset, &[]);
    let counts = &json["manifest"]["counts"];
    assert_eq!(json["manifest"]["mode"], "upsert");
    assert_eq!(
        counts["rows_replaced"],
        (before[a].len() + before[b].len()) as u64,
        "{counts}"
    );
    assert_eq!(counts["records_without_history"], 1);

    let after = rows_by_pair(&dataset);
    let holds = |k: &(String, i64), value: &str| {
        let text = format!("value: Some({:?})", value.as_bytes());
        after[k].iter().any(|r| r.contains(&text))
    };
    assert_eq!(after[a].len(), 1);
    assert!(holds(a, "short"), "{:?}", after[a]);
    assert!(holds(b, "v1") && holds(b, "v2"), "{:?}", after[b]);
    assert_eq!(after[b].len(), 2);
    assert_eq!(
        after[c], before[c],
        "a current value alone replaces nothing"
    );
    assert_eq!(after[d].len(), before[d].len() + 1);
    assert!(holds(d, "hooked"), "{:?}", after[d]);
    // Every other pair is as it was.
    let mut rest = after.clone();
    let mut was = before.clone();
    for k in [a, b, d] {
        rest.remove(k);
        was.remove(k);
    }
    assert_eq!(rest, was);

    // Upserting the same input again changes no row.
    let again = skewer([
        "run",
        "--mode",
        "upsert",
        "-q",
        "-r",
        "2",
        "-i",
        input.to_str().unwrap(),
        "-o",
        dataset.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("stored rows replaced"),
        "{}",
        again.stdout
    );
    assert_eq!(rows_by_pair(&dataset), after);
}

/// An upsert of a whole dump of other histories, from NDJSON (v3) and from nested Parquet:
/// each (property, object) the dump carries holds exactly the dump's rows, every other one
/// its stored rows.
#[test]
fn an_upsert_of_a_dump_in_every_format_takes_its_histories() {
    use skewer::generate::{Dialect, Format};
    let tmp = tempfile::tempdir().unwrap();
    let base = dump(&tmp.path().join("base"), 1, 150, 1);
    for (name, format, dialect) in [
        ("ndjson", Format::Ndjson, Dialect::V3),
        ("parquet", Format::Parquet, Dialect::V1),
    ] {
        let dataset = tmp.path().join(format!("ds-{name}"));
        run(&config(&[&base[0]], &dataset, Mode::Overwrite)).unwrap();
        let before = rows_by_pair(&dataset);
        let inc_dir = tmp.path().join(format!("inc-{name}"));
        generate(&GenConfig {
            objects: 30,
            properties: 40,
            files: 1,
            seed: 7,
            format,
            dialect,
            ..GenConfig::new(&inc_dir)
        })
        .unwrap();
        let alone = tmp.path().join(format!("alone-{name}"));
        run(&config(&[&inc_dir], &alone, Mode::Overwrite)).unwrap();
        let mut want = before.clone();
        want.extend(rows_by_pair(&alone));

        let summary = run(&config(&[&inc_dir], &dataset, Mode::Upsert)).unwrap();
        let c = summary.manifest.counts;
        assert!(c.rows_replaced > 0, "{name}: {c:?}");
        assert_eq!(rows_by_pair(&dataset), want, "{name}");
        for f in skewer::dataset::files(&dataset).unwrap() {
            let files = skewer::dataset::files(&dataset).unwrap();
            let n = files.iter().filter(|g| g.property == f.property).count();
            assert_eq!(n, 1, "{name}: {} has {n} files", f.property);
        }
    }
}

/// Asserts two datasets' rows are the same, naming the first partition that differs and a
/// few of the rows only one side has.
fn same_rows(a: &BTreeMap<String, Vec<String>>, b: &BTreeMap<String, Vec<String>>, what: &str) {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (x, y) = (a.get(name), b.get(name));
        if x == y {
            continue;
        }
        let (x, y) = (
            x.cloned().unwrap_or_default(),
            y.cloned().unwrap_or_default(),
        );
        let only = |p: &[String], q: &[String]| -> Vec<String> {
            p.iter()
                .filter(|r| !q.contains(r))
                .take(3)
                .cloned()
                .collect()
        };
        panic!(
            "{what}: partition {name}: {} rows against {}; only in the first: {:?}; only in the \
             second: {:?}",
            x.len(),
            y.len(),
            only(&x, &y),
            only(&y, &x)
        );
    }
}

/// The generator's own series (`skewer gen --increments`): its base and increments merged
/// one at a time, or upserted, hold exactly the rows of one clean run over its final state,
/// in every dialect and format it writes; its id files list exactly the objects deleted.
#[test]
fn the_generators_increments_merged_in_order_equal_its_final_state() {
    use skewer::generate::{Dialect, Format};
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("v1", Dialect::V1, Format::Ndjson, false, Mode::Merge),
        ("v3", Dialect::V3, Format::Ndjson, false, Mode::Upsert),
        (
            "deals",
            Dialect::V1Deals,
            Format::Ndjson,
            false,
            Mode::Merge,
        ),
        ("parquet", Dialect::V1, Format::Parquet, false, Mode::Merge),
        (
            "parquet-sources",
            Dialect::V1,
            Format::Parquet,
            true,
            Mode::Upsert,
        ),
    ];
    for (name, dialect, format, parquet_sources, mode) in cases {
        let out = tmp.path().join(name);
        let key = generate(&GenConfig {
            objects: 400,
            properties: 40,
            dialect,
            format,
            parquet_sources,
            files: 2,
            seed: 11,
            increments: 3,
            change_rate: 0.05,
            delete_rate: 0.02,
            ..GenConfig::new(&out)
        })
        .unwrap();
        let merged = tmp.path().join(format!("{name}-merged"));
        run(&config(&[&out.join("base")], &merged, Mode::Overwrite)).unwrap();
        let mut deleted = 0;
        for k in 1..=3 {
            let inc = out.join(format!("inc-{k:03}"));
            let s = run(&config(&[&inc], &merged, mode))
                .unwrap_or_else(|e| panic!("{name} inc {k}: {e}"));
            let c = s.manifest.counts;
            let want = skewer::generate::read_expected(&inc).unwrap();
            assert_eq!(c.records_read, want.records, "{name} inc {k}");
            assert_eq!(c.rows_exploded, want.rows, "{name} inc {k}");
            assert_eq!(c.objects_deleted, c.objects_to_delete, "{name} inc {k}");
            deleted += c.objects_to_delete;
        }
        assert!(deleted > 0, "{name}: no deletions");
        let clean = tmp.path().join(format!("{name}-clean"));
        let s = run(&config(&[&out.join("final")], &clean, Mode::Overwrite)).unwrap();
        assert_eq!(s.manifest.counts.rows_written, key.rows, "{name}");
        same_rows(&sorted_rows(&merged), &sorted_rows(&clean), name);

        // The id files: exactly the base and new objects missing from the final state.
        let mut listed = std::collections::BTreeSet::new();
        for k in 1..=3 {
            let text =
                fs::read_to_string(out.join(format!("inc-{k:03}")).join("_deleted-objects.txt"))
                    .unwrap();
            listed.extend(
                text.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(|l| l.parse::<i64>().unwrap()),
            );
        }
        let objects = |dataset: &Path| -> std::collections::BTreeSet<i64> {
            let mut ids = std::collections::BTreeSet::new();
            for f in skewer::dataset::files(dataset).unwrap() {
                ids.extend(
                    skewer::dataset::read_rows(&f.path)
                        .unwrap()
                        .object_id
                        .iter()
                        .copied(),
                );
            }
            ids
        };
        let kept = objects(&clean);
        assert!(listed.iter().all(|id| !kept.contains(id)), "{name}");
        assert_eq!(listed.len() as u64, deleted, "{name}");
    }
}

/// `replay --mode merge`: each date's dump merged in date order into one dataset, the same
/// rows as one clean run over every date; a second replay skips the dates merged before.
#[test]
fn a_replay_merges_every_date_into_one_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let mut all = Vec::new();
    for (day, seed) in [("2026-03-01", 1), ("2026-03-02", 2), ("2026-03-03", 3)] {
        let files = dump(&raw.join(format!("dt={day}")), seed, 60 + seed * 30, 1);
        all.extend(files);
    }
    let lake = tmp.path().join("lake");
    let input = format!("{}/dt={{date}}/", raw.display());
    let args = [
        "replay",
        "--mode",
        "merge",
        "--input",
        &input,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-03",
        "--output",
        lake.to_str().unwrap(),
        "-r",
        "2",
        "--json",
    ];
    let r = skewer(args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("\"committed\"").count(), 3, "{}", r.stdout);

    let clean = tmp.path().join("clean");
    let inputs: Vec<&Path> = all.iter().map(PathBuf::as_path).collect();
    run(&config(&inputs, &clean, Mode::Overwrite)).unwrap();
    assert_eq!(sorted_rows(&lake), sorted_rows(&clean));
    assert!(
        skewer::dataset::files(&lake)
            .unwrap()
            .iter()
            .all(|f| f.partitions.is_empty())
    );

    let again = skewer(args);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.stdout.matches("\"skipped\"").count(),
        3,
        "{}",
        again.stdout
    );
}
