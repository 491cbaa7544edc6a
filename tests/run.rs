use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use skewer::generate::{Dialect, Format, GenConfig, generate, read_expected};
use skewer::run::{PlanSource, RunConfig, RunSummary, run};
use skewer::store::meta::Mode;

use crate::reference::{Flat, Rng, explode_ndjson, explode_parquet, explode_record, random_record};
use crate::util::skewer as skewer_bin;

fn gen_config(out: &Path, dialect: Dialect, format: Format) -> GenConfig {
    GenConfig {
        objects: 300,
        properties: 80,
        dialect,
        format,
        files: 3,
        seed: 7,
        ..GenConfig::new(out)
    }
}

fn run_config(inputs: &[&Path], output: &Path, reducers: u32) -> RunConfig {
    RunConfig {
        mappers: 2,
        // Small splits, so even test inputs are read by several mappers in parallel.
        split_bytes: 64 << 10,
        max_bad_records: skewer::run::BadRecordLimit::Count(0),
        memory_limit: 1 << 30,
        ..RunConfig::new(inputs, output, reducers)
    }
}

/// Every row of a dataset as plain data, sorted.
fn dataset_rows(dir: &Path) -> Vec<Flat> {
    let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
    let mut out = Vec::new();
    for f in skewer::dataset::files(dir).unwrap() {
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        for i in 0..rows.len() {
            let r = rows.row(i);
            out.push((
                f.property.clone(),
                r.object_id,
                r.timestamp,
                s(r.value),
                s(r.source_type),
                s(r.source_id),
                s(r.source_label),
                r.updated_by_user_id,
            ));
        }
    }
    out.sort();
    out
}

fn sorted_unique(mut rows: Vec<Flat>) -> Vec<Flat> {
    rows.sort();
    rows.dedup();
    rows
}

fn input_text(dir: &Path) -> String {
    let mut text = String::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths {
        if !p.file_name().unwrap().to_string_lossy().starts_with('_') {
            text += &fs::read_to_string(p).unwrap();
        }
    }
    text
}

/// pyarrow's small pages cut version lists across data pages (`tests/fixtures/parquet/`):
/// every row comes out, none rejected, as the generator counted them before the rewrite.
#[test]
fn a_pyarrow_file_whose_records_cross_pages_explodes_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let input =
        crate::util::repo().join("tests/fixtures/parquet/pyarrow-records-across-pages.parquet");
    let output = tmp.path().join("out");
    let summary = run(&run_config(&[&input], &output, 2)).unwrap();
    let c = summary.manifest.counts;
    assert_eq!((c.records_read, c.records_rejected), (12, 0));
    assert_eq!(c.rows_written, 1653);
    let sum = skewer::checksum::dataset(&output).unwrap();
    assert_eq!(
        (sum.rows, format!("{:016x}", sum.sum)),
        (1653, "4052a60e0ac1815d".into())
    );
}

#[test]
fn every_dialect_round_trips_with_the_generators_checksum() {
    for dialect in [Dialect::V1, Dialect::V1Deals, Dialect::V3] {
        for gzip in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let input = tmp.path().join("in");
            let output = tmp.path().join("out");
            let mut g = gen_config(&input, dialect, Format::Ndjson);
            g.gzip = gzip;
            let expected = generate(&g).unwrap();
            assert!(
                expected.rows > 10_000,
                "{dialect:?}: a meaningful input ({} rows)",
                expected.rows
            );

            let summary = run(&run_config(&[&input], &output, 3)).unwrap();
            let c = summary.manifest.counts;
            let ctx = format!("{dialect:?} gzip={gzip}");
            assert_eq!(c.records_read, expected.records, "{ctx}");
            assert_eq!(c.records_rejected, 0, "{ctx}");
            assert_eq!(c.rows_written, expected.rows, "{ctx}");
            assert_eq!(
                skewer::checksum::dataset(&output).unwrap(),
                expected.checksum,
                "{ctx}"
            );
            assert_eq!(read_expected(&input).unwrap(), expected);

            if !gzip {
                // And the same rows as the naive reference explode of the same text.
                let want = sorted_unique(explode_ndjson(&input_text(&input)));
                assert_eq!(dataset_rows(&output), want, "{ctx}");
            }
        }
    }
}

#[test]
fn nested_parquet_struct_and_map_round_trip() {
    for (dialect, map, sources) in [
        (Dialect::V1, false, false),
        (Dialect::V1, true, true),
        (Dialect::V1Deals, false, true),
        (Dialect::V3, true, false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("in");
        let output = tmp.path().join("out");
        let mut g = gen_config(&input, dialect, Format::Parquet);
        g.parquet_map = map;
        g.parquet_sources = sources;
        g.objects = 2_000;
        g.row_group_objects = 300; // several row groups per file, each a split
        g.files = 2;
        let expected = generate(&g).unwrap();
        let summary = run(&run_config(&[&input], &output, 3)).unwrap();
        let ctx = format!("{dialect:?} map={map} sources={sources}");
        let c = summary.manifest.counts;
        assert_eq!(
            (c.records_read, c.records_rejected),
            (expected.records, 0),
            "{ctx}"
        );
        assert_eq!(c.rows_written, expected.rows, "{ctx}");
        assert_eq!(
            skewer::checksum::dataset(&output).unwrap(),
            expected.checksum,
            "{ctx}"
        );
        // Without history the plan came from the footers (or the first row group): balanced.
        assert!(
            summary.actual_max_over_mean < 1.15,
            "{ctx}: {}",
            summary.actual_max_over_mean
        );

        // And the same rows as the parquet crate's own record assembly gives.
        let mut want = Vec::new();
        for f in fs::read_dir(&input).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "parquet") {
                want.extend(explode_parquet(&path));
            }
        }
        assert_eq!(dataset_rows(&output), sorted_unique(want), "{ctx}");
    }
}

/// Leaves are read a chunk of objects at a time: row groups spanning several chunks (and a
/// map whose keys are chunked alongside) read exactly the same.
#[test]
fn parquet_row_groups_larger_than_a_read_chunk() {
    for map in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("in");
        let output = tmp.path().join("out");
        let mut g = gen_config(&input, Dialect::V1, Format::Parquet);
        g.objects = 5_000;
        g.properties = 40;
        g.files = 1;
        g.row_group_objects = 5_000; // chunks of 2,048, 2,048 and 904 objects
        g.parquet_map = map;
        g.parquet_sources = true;
        let expected = generate(&g).unwrap();
        let summary = run(&run_config(&[&input], &output, 2)).unwrap();
        assert_eq!(
            summary.manifest.counts.rows_written, expected.rows,
            "map={map}"
        );
        assert_eq!(
            skewer::checksum::dataset(&output).unwrap(),
            expected.checksum,
            "map={map}"
        );
    }
}

#[test]
fn random_records_in_every_container_match_the_naive_explode() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let mut rng = Rng(20261121);
    let mut records = Vec::new();
    for i in 0..600 {
        // Repeat some objects across records and files, and some whole records: duplicates
        // must be dropped, and an object's versions may arrive from several places.
        let object = 3_000_000_000 + (i % 450) as i64;
        records.push(random_record(&mut rng, i % 3, object));
        if i % 50 == 0 {
            records.push(records[records.len() - 1].clone());
        }
    }
    let chunk = records.len() / 5;
    let parts: Vec<&[serde_json::Value]> = records.chunks(chunk).collect();
    let ndjson =
        |rs: &[serde_json::Value]| rs.iter().map(|r| r.to_string() + "\n").collect::<String>();
    fs::write(input.join("a.ndjson"), ndjson(parts[0])).unwrap();
    fs::write(
        input.join("b.json"),
        serde_json::to_string_pretty(&parts[1]).unwrap(),
    )
    .unwrap();
    let page = serde_json::json!({"contacts": parts[2], "has-more": false, "vid-offset": 0});
    fs::write(input.join("c.json"), page.to_string()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(ndjson(parts[3]).as_bytes()).unwrap();
    fs::write(input.join("d.ndjson.gz"), gz.finish().unwrap()).unwrap();
    let results = serde_json::json!({"results": parts[4..].concat(), "paging": null});
    fs::write(
        input.join("e.json.zst"),
        zstd::encode_all(results.to_string().as_bytes(), 3).unwrap(),
    )
    .unwrap();

    let output = tmp.path().join("out");
    let summary = run(&run_config(&[&input], &output, 4)).unwrap();
    let want = sorted_unique(records.iter().flat_map(explode_record).collect());
    let got = dataset_rows(&output);
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let c = summary.manifest.counts;
    assert_eq!(c.records_read, records.len() as u64);
    // Against the reference explode, not against the run's own other counts.
    let exploded: usize = records.iter().map(|r| explode_record(r).len()).sum();
    assert_eq!(c.rows_exploded, exploded as u64);
    assert_eq!(c.rows_written, want.len() as u64);
    assert!(
        c.duplicates_dropped > 0,
        "the repeated records were dropped as duplicates"
    );
}

#[test]
fn output_files_have_the_schema_sorted_rows_and_one_property_each() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let names = [
        "a/b",
        "x=y",
        "..",
        ".",
        "ünïcødé 🚀",
        "50%",
        "tab\there",
        "plain",
        "q?#*",
        "NULL",
    ];
    let mut lines = String::new();
    for (i, name) in names.iter().enumerate() {
        for o in 0..20 {
            let record = serde_json::json!({"vid": 3_000_000_000i64 + (o * 7919) % 20, "properties": {
                *name: {"versions": [
                    {"value": format!("v{i}-{o}"), "timestamp": 1_700_000_000_000i64 - o},
                    {"value": null, "timestamp": 5},
                    {"value": "", "timestamp": 5}]}}});
            lines += &(record.to_string() + "\n");
        }
    }
    fs::write(input.join("names.ndjson"), lines).unwrap();
    let output = tmp.path().join("out");
    run(&run_config(&[&input], &output, 3)).unwrap();

    let files = skewer::dataset::files(&output).unwrap();
    let mut seen: Vec<&str> = files.iter().map(|f| f.property.as_str()).collect();
    seen.sort();
    seen.dedup();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(
        seen, want,
        "every name round-trips through its escaped folder"
    );

    let schema = parquet::schema::parser::parse_message_type(skewer::sink::SCHEMA).unwrap();
    for f in &files {
        // The folder is directly under the dataset and named by the property alone.
        let folder = f.path.parent().unwrap();
        assert_eq!(folder.parent().unwrap(), output);
        let reader = SerializedFileReader::new(fs::File::open(&f.path).unwrap()).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().schema_descr().root_schema(), &schema);
        for g in meta.row_groups() {
            assert_eq!(g.sorting_columns().map(|s| s.len()), Some(3));
            assert!(g.column(0).statistics().is_some());
            assert_eq!(
                g.column(0).compression(),
                parquet::basic::Compression::ZSTD(Default::default())
            );
        }
        let rows = skewer::dataset::read_rows(&f.path).unwrap();
        for i in 1..rows.len() {
            let key = |j: usize| (rows.object_id[j], rows.timestamp[j], rows.value.get(j));
            assert!(
                key(i - 1) <= key(i),
                "{}: rows {} and {i} out of order",
                f.path.display(),
                i - 1
            );
        }
    }
}

/// Files by dataset-relative path (with `run_id`, if given, replaced by `RUN`), and contents.
pub(crate) fn files_by_content_name(dir: &Path, run_id: Option<&str>) -> BTreeMap<String, Vec<u8>> {
    skewer::dataset::files(dir)
        .unwrap()
        .into_iter()
        .map(|f| {
            let mut rel = f
                .path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if let Some(id) = run_id {
                rel = rel.replace(id, "RUN");
            }
            (rel, fs::read(&f.path).unwrap())
        })
        .collect()
}

#[test]
fn same_input_and_plan_give_byte_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&gen_config(&input, Dialect::V1, Format::Ndjson)).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let first = run(&run_config(&[&input], &a, 3)).unwrap();
    let second = run(&run_config(&[&input], &b, 3)).unwrap();
    assert_eq!(first.manifest.plan.digest, second.manifest.plan.digest);
    let (fa, fb) = (
        files_by_content_name(&a, Some(&first.manifest.run_id)),
        files_by_content_name(&b, Some(&second.manifest.run_id)),
    );
    assert!(fa.len() > 50);
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(fb[name] == *bytes, "{name} differs between runs");
    }
}

/// The exchange multi-process runs are built on, timely dataflow's, carries the batches to
/// the same reducers: on any number of workers, spilling or not, the files are the bytes the
/// channels give.
#[test]
fn the_timely_exchange_writes_the_channels_bytes() {
    use skewer::run::Exchange;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let mut g = gen_config(&input, Dialect::V3, Format::Ndjson);
    g.objects = 4_000;
    g.properties = 200;
    let expected = generate(&g).unwrap();
    let base_dir = tmp.path().join("channels");
    let base = run(&run_config(&[&input], &base_dir, 5)).unwrap();
    let want = files_by_content_name(&base_dir, Some(&base.manifest.run_id));
    assert!(want.len() > 50);
    for (workers, tight) in [(1, false), (3, false), (2, true)] {
        let out = tmp.path().join(format!("timely-{workers}-{tight}"));
        let mut config = run_config(&[&input], &out, 5);
        config.exchange = Exchange::Timely { workers };
        if tight {
            config.memory_limit = skewer::run::MemoryPlan::minimum(config.mappers, 5);
        }
        let ran = run(&config).unwrap();
        assert_eq!(
            ran.manifest.counts, base.manifest.counts,
            "{workers} workers"
        );
        assert_eq!(ran.manifest.plan.digest, base.manifest.plan.digest);
        assert_eq!(
            tight,
            ran.spilled_bytes > 0,
            "{workers} workers, tight {tight}"
        );
        assert_eq!(skewer::checksum::dataset(&out).unwrap(), expected.checksum);
        let got = files_by_content_name(&out, Some(&ran.manifest.run_id));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (name, bytes) in &want {
            assert!(
                got[name] == *bytes,
                "{name} differs over timely ({workers} workers)"
            );
        }
    }
}

/// The map and reduce stages on their own, as another driver (a merge, another process)
/// would call them: no threads, no channels. Same plan, same files as `run`.
#[test]
fn the_stages_called_without_threads_write_the_runs_files() {
    use skewer::reduce::{Reducer, Staging};
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&gen_config(&input, Dialect::V3, Format::Ndjson)).unwrap();
    let by_run = tmp.path().join("run");
    let ran = run(&run_config(&[&input], &by_run, 3)).unwrap();

    let plan = std::sync::Arc::new(ran_plan(&by_run));
    assert_eq!(plan.digest(), ran.manifest.plan.digest);
    let stores = skewer::store::Stores::default();
    let files = skewer::input::discover(&[input.to_string_lossy().into_owned()], &stores).unwrap();
    let table = skewer::route::PropertyTable::new(plan.clone());
    let mut batches: Vec<Vec<skewer::batch::Rows>> = vec![Vec::new(); 3];
    let mut mapper = skewer::map::Mapper::new(&files, &table, Box::new(&mut batches), 1000);
    // One mapper, splits in reverse: arrival order must not matter.
    for split in skewer::input::splits(&files, 64 << 10)
        .unwrap()
        .iter()
        .rev()
    {
        mapper.map(split).unwrap();
    }
    let mapped = mapper.finish();
    assert_eq!(mapped.counts.records_met, ran.manifest.counts.records_read);

    let by_hand = tmp.path().join("hand");
    let sink = skewer::sink::SinkOptions::default();
    let staging = Staging {
        root: &by_hand,
        prefix: "part-RUN",
        sink: &sink,
        syncer: None,
        existing: Default::default(),
    };
    let names = table.names();
    let mut written = 0;
    for (r, batches) in batches.into_iter().enumerate() {
        let mut reducer = Reducer::new(1 << 30, tmp.path().join(format!("spill{r}")));
        for b in &batches {
            reducer.add(b).unwrap();
        }
        let reduced = reducer.write_all(r as u32, &names, &staging).unwrap();
        written += reduced.properties.iter().map(|p| p.1.rows).sum::<u64>();
    }
    assert_eq!(written, ran.manifest.counts.rows_written);
    let (a, b) = (
        files_by_content_name(&by_run, Some(&ran.manifest.run_id)),
        files_by_content_name(&by_hand, None),
    );
    assert!(a.len() > 50);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(b[name] == *bytes, "{name} differs from the run's");
    }
}

/// The plan a dataset's first run made from a sample, made again from the same input.
fn ran_plan(dataset: &Path) -> planner::Plan {
    let manifest = skewer::store::Stores::default();
    let store = skewer::store::open_existing(
        &skewer::store::Location::Local(dataset.to_path_buf()),
        &manifest,
    )
    .unwrap();
    let m = skewer::store::Dataset::manifests(&*store)
        .unwrap()
        .pop()
        .unwrap();
    let files = skewer::input::discover(
        &m.inputs.iter().map(|i| i.path.clone()).collect::<Vec<_>>(),
        &skewer::store::Stores::default(),
    )
    .unwrap();
    let splits = skewer::input::splits(&files, 64 << 10).unwrap();
    skewer::run::plan_from_sample(&files, &splits, &planner::PlanParams::new(3))
        .unwrap()
        .0
}

#[test]
fn spilling_to_disk_changes_nothing_in_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let mut g = gen_config(&input, Dialect::V1, Format::Ndjson);
    g.objects = 4_000;
    g.properties = 200;
    let expected = generate(&g).unwrap();
    let (big, small) = (tmp.path().join("big"), tmp.path().join("small"));
    let roomy = run(&run_config(&[&input], &big, 3)).unwrap();
    let mut tight = run_config(&[&input], &small, 3);
    tight.memory_limit = skewer::run::MemoryPlan::minimum(tight.mappers, 3);
    let spilled = run(&tight).unwrap();
    assert_eq!(roomy.spilled_bytes, 0);
    assert!(
        spilled.spilled_bytes > 0,
        "the tight run should have spilled"
    );
    assert_eq!(spilled.manifest.counts, roomy.manifest.counts);
    assert_eq!(
        skewer::checksum::dataset(&small).unwrap(),
        expected.checksum
    );
    let (a, b) = (
        files_by_content_name(&big, Some(&roomy.manifest.run_id)),
        files_by_content_name(&small, Some(&spilled.manifest.run_id)),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            b[name] == *bytes,
            "{name} differs between the in-memory and the spilled run"
        );
    }
    assert!(
        !small.join("_skewer/staging").exists(),
        "spill files are gone"
    );
}

#[test]
fn the_second_run_plans_from_the_first_runs_history() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let mut g = gen_config(&input, Dialect::V1, Format::Ndjson);
    g.objects = 12_000;
    g.properties = 1280;
    g.files = 4;
    let expected = generate(&g).unwrap();
    let output = tmp.path().join("out");
    let config = run_config(&[&input], &output, 4);

    let first = run(&config).unwrap();
    assert!(matches!(first.plan_source, PlanSource::Sample { .. }));
    let second: RunSummary = run(&config).unwrap();
    assert_eq!(
        second.plan_source,
        PlanSource::History {
            dir: skewer::store::Location::Local(output.join("_skewer/history")),
            runs: 1
        }
    );
    assert_eq!(second.manifest.counts.rows_written, expected.rows);
    assert!(
        second.files_per_property <= 1.1,
        "files per property {}",
        second.files_per_property
    );
    assert!(
        second.actual_max_over_mean <= 1.15,
        "actual max/mean load {}",
        second.actual_max_over_mean
    );
    assert!(
        !second.manifest.replaced.is_empty(),
        "the second run replaced the first's partitions"
    );
    assert_eq!(
        skewer::checksum::dataset(&output).unwrap(),
        expected.checksum
    );
}

#[test]
fn partitions_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let mut g = gen_config(&input, Dialect::V3, Format::Ndjson);
    g.objects = 60;
    g.properties = 12;
    let expected = generate(&g).unwrap();
    let output = tmp.path().join("out");
    let mut config = run_config(&[&input], &output, 2);
    for dt in ["2026-11-20", "2026-11-21"] {
        config.partition = Some(format!("dt={dt}"));
        run(&config).unwrap();
    }
    let partitions: std::collections::BTreeSet<Vec<String>> = skewer::dataset::files(&output)
        .unwrap()
        .into_iter()
        .map(|f| f.partitions)
        .collect();
    assert_eq!(partitions.len(), 2);
    let before = files_by_content_name(&output, None);

    // Overwriting one date leaves the other untouched, byte for byte.
    config.partition = Some("dt=2026-11-21".into());
    run(&config).unwrap();
    let after = files_by_content_name(&output, None);
    for (name, bytes) in &before {
        if name.starts_with("dt=2026-11-20/") {
            assert_eq!(after.get(name), Some(bytes), "{name}");
        } else {
            assert!(!after.contains_key(name), "{name} was replaced");
        }
    }
    // Append adds a second copy of the rows beside the first.
    config.mode = Mode::Append;
    run(&config).unwrap();
    let rows = dataset_rows(&output);
    assert_eq!(rows.len() as u64, 3 * expected.rows);
}

#[test]
fn the_binary_runs_gen_and_run_and_prints_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let output = tmp.path().join("out");
    let g = skewer_bin([
        "gen",
        "--objects",
        "200",
        "--properties",
        "40",
        "--dialect",
        "v1-deals",
        "--files",
        "2",
        "--out",
        input.to_str().unwrap(),
    ]);
    assert_eq!(g.code, 0, "{}", g.stderr);
    assert!(g.stdout.contains("wrote 200 objects"), "{}", g.stdout);
    let r = skewer_bin([
        "run",
        "-i",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "-r",
        "3",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for line in ["committed to", "read ", "wrote ", "plan ", "balance "] {
        assert!(r.stdout.contains(line), "{line:?} in {}", r.stdout);
    }
    let j = skewer_bin([
        "run",
        "-i",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(j.code, 0, "{}", j.stderr);
    let report: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let expected = read_expected(&input).unwrap();
    assert_eq!(report["manifest"]["counts"]["rows_written"], expected.rows);
    assert_eq!(report["manifest"]["state"], "committed");

    let check = skewer_bin([
        "checksum",
        output.to_str().unwrap(),
        "--expected",
        input.to_str().unwrap(),
    ]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check
            .stdout
            .contains("matches the generator's rows and checksum"),
        "{}",
        check.stdout
    );
    let other = tmp.path().join("other");
    generate(&gen_config(&other, Dialect::V1, Format::Ndjson)).unwrap();
    let wrong = skewer_bin([
        "checksum",
        output.to_str().unwrap(),
        "--expected",
        other.to_str().unwrap(),
    ]);
    assert_eq!(wrong.code, 1, "{}", wrong.stdout);
    assert!(
        wrong.stderr.contains("the generator wrote"),
        "{}",
        wrong.stderr
    );

    let missing = skewer_bin(["run", "-i", "no/such/input", "-o", output.to_str().unwrap()]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no/such/input"),
        "{}",
        missing.stderr
    );
    let bad = skewer_bin([
        "run",
        "-i",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--partition",
        "2026",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[test]
fn progress_goes_to_stderr_only_and_json_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let expected = generate(&GenConfig {
        objects: 500,
        properties: 40,
        ..gen_config(&dump, Dialect::V1, Format::Ndjson)
    })
    .unwrap();
    let run = |quiet: bool, out: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skewer"));
        cmd.args([
            "run",
            "-i",
            dump.to_str().unwrap(),
            "-r",
            "2",
            "--json",
            "-o",
        ])
        .arg(dir.path().join(out))
        .env("SKEWER_PROGRESS", "always")
        .env_remove("RUST_LOG");
        if quiet {
            cmd.arg("--quiet");
        }
        cmd.output().unwrap()
    };
    let out = run(false, "a");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    // stdout is the JSON document alone, holding the run's counts.
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(json["manifest"]["counts"]["rows_written"], expected.rows);
    assert_eq!(json["manifest"]["counts"]["records_read"], 500);
    assert!(!stdout.contains('\x1b'));
    // The bars were drawn, on stderr.
    assert!(
        stderr.contains("read  [") && stderr.contains("write ["),
        "{stderr}"
    );
    assert!(stderr.contains("records"), "{stderr}");

    let quiet = run(true, "b");
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}

/// `--zstd-level` reaches the writer: the same rows at level 19 take fewer bytes than at 1,
/// and read back the same.
#[test]
fn the_zstd_level_is_the_one_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    crate::util::gen_dump(&input, 400, 30, &[]);
    let mut sizes = Vec::new();
    for level in ["1", "19"] {
        let out = tmp.path().join(format!("level-{level}"));
        let run = crate::util::skewer([
            "run",
            "-q",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-r",
            "2",
            "--zstd-level",
            level,
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let check = crate::util::skewer([
            "checksum",
            out.to_str().unwrap(),
            "--expected",
            input.to_str().unwrap(),
        ]);
        assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
        let bytes: u64 = walkdir(&out)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        sizes.push(bytes);
    }
    assert!(
        sizes[1] < sizes[0],
        "level 19: {} bytes, level 1: {}",
        sizes[1],
        sizes[0]
    );
    let refused = crate::util::skewer(["run", "-i", "x", "-o", "y", "--zstd-level", "23"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}
