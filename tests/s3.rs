//! S3 in and out against a real S3-compatible server: `s3s-fs` on 127.0.0.1, started per test
//! on a free port with a temporary root (`scripts/s3-server.sh install` puts it on the
//! machine; `.ci/run` does). s3s-fs keeps each bucket as a folder, so the objects skewer
//! wrote are read back here as files, with the parquet crate.

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Run, gen_dump, repo};

const KEY: &str = "skewer-test";
const SECRET: &str = "skewer-test-secret";
const BUCKET: &str = "bkt";

/// The s3s-fs binary: `$SKEWER_S3S_FS`, or on `PATH`, or in cargo's bin folder.
fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("SKEWER_S3S_FS") {
        return p.into();
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    candidates.extend(cargo_home.map(|c| c.join("bin/s3s-fs")));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("s3s-fs is not installed: run scripts/s3-server.sh install (.ci/run does)")
}

/// A running s3s-fs with one bucket, stopped on drop.
struct Server {
    child: Child,
    root: tempfile::TempDir,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join(BUCKET)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            root,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The bucket's folder: what is in the bucket, as files.
    fn bucket(&self) -> PathBuf {
        self.root.path().join(BUCKET)
    }

    /// Runs the real binary with this server's endpoint and credentials (and nothing from the
    /// machine's own AWS configuration).
    fn skewer(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skewer"));
        cmd.args(args)
            .current_dir(repo())
            .env_remove("RUST_LOG")
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(env.iter().copied());
        let out = cmd.output().expect("the skewer binary runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Multipart uploads s3s-fs still holds (their parts and records live in its root).
    fn open_uploads(&self) -> Vec<String> {
        fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload"))
            .collect()
    }
}

fn generate(dir: &Path, objects: u32, properties: u32, format: &str) {
    gen_dump(dir, objects, properties, &["--format", format]);
}

/// Copies a folder's files into the bucket under `prefix` (test setup: s3s-fs serves them).
fn upload_dir(server: &Server, from: &Path, prefix: &str) {
    let to = server.bucket().join(prefix);
    fs::create_dir_all(&to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn ok(run: &Run) -> Value {
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    serde_json::from_str(&run.stdout).unwrap_or(Value::Null)
}

/// The data files of a dataset folder: path (with the run id taken out) → bytes.
fn data_files(dataset: &Path, run: &str) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, run: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.starts_with("_skewer") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, run, out);
            } else {
                out.insert(rel.replace(run, "RUN"), fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dataset, dataset, run, &mut out);
    out
}

fn run_id(json: &Value) -> String {
    json["manifest"]["run_id"].as_str().unwrap().to_string()
}

#[test]
fn a_run_from_s3_to_s3_writes_what_the_same_run_writes_on_disk() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (pq, nd) = (tmp.path().join("pq"), tmp.path().join("nd"));
    generate(&pq, 1500, 200, "parquet");
    generate(&nd, 1500, 200, "ndjson");
    upload_dir(&server, &pq, "raw/pq");
    upload_dir(&server, &nd, "raw/nd");

    for (local_input, remote_input, lake) in [
        (&pq, "s3://bkt/raw/pq", "lake-pq"),
        (&nd, "s3://bkt/raw/nd/", "lake-nd"),
    ] {
        let local_out = tmp.path().join("local");
        let _ = fs::remove_dir_all(&local_out);
        let local = ok(&server.skewer(
            &[
                "run",
                "-i",
                local_input.to_str().unwrap(),
                "-o",
                local_out.to_str().unwrap(),
                "-r",
                "3",
                "--json",
            ],
            &[],
        ));
        let remote = ok(&server.skewer(
            &[
                "run",
                "-i",
                remote_input,
                "-o",
                &format!("s3://bkt/{lake}/contacts"),
                "-r",
                "3",
                "--json",
            ],
            &[],
        ));
        assert_eq!(local["manifest"]["counts"], remote["manifest"]["counts"]);
        assert_eq!(local["manifest"]["plan"], remote["manifest"]["plan"]);
        // Same layout, byte for byte: same rows in the same files.
        let want = data_files(&local_out, &run_id(&local));
        let got = data_files(
            &server.bucket().join(lake).join("contacts"),
            &run_id(&remote),
        );
        assert!(want.len() > 200, "{} files", want.len());
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        );
        assert!(want == got, "the files differ in content");
        let check = crate::util::skewer([
            "checksum",
            server
                .bucket()
                .join(lake)
                .join("contacts")
                .to_str()
                .unwrap(),
            "--expected",
            local_input.to_str().unwrap(),
        ]);
        assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    }
    // A second run into the same dataset replaces the first one's files (the checksum is the
    // NDJSON dump's alone), and both runs are in the history.
    let again = server.skewer(
        &[
            "run",
            "-i",
            "s3://bkt/raw/nd/",
            "-o",
            "s3://bkt/lake-pq/contacts/",
            "-r",
            "3",
        ],
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let check = crate::util::skewer([
        "checksum",
        server.bucket().join("lake-pq/contacts").to_str().unwrap(),
        "--expected",
        nd.to_str().unwrap(),
    ]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let meta = server.bucket().join("lake-pq/contacts/_skewer");
    assert_eq!(fs::read_dir(meta.join("history")).unwrap().count(), 2);
    assert_eq!(fs::read_dir(meta.join("runs")).unwrap().count(), 2);
    assert!(!meta.join("lock").exists());
    // `plan --history` reads it from the bucket.
    let plan = server.skewer(
        &[
            "plan",
            "--history",
            "s3://bkt/lake-pq/contacts/_skewer/history",
            "--endpoint",
            &server.endpoint,
            "-r",
            "3",
        ],
        &[],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout.contains("the last 2 of 2 runs"),
        "{}",
        plan.stdout
    );
}

#[test]
fn inputs_spanning_listing_pages_and_globs_are_all_read() {
    let server = Server::start();
    // 1,005 one-record files (a listing page holds 1,000) plus files a Hive reader skips.
    let dir = server.bucket().join("raw/many");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..1005 {
        let record = format!(
            "{{\"vid\": {i}, \"properties\": {{\"email\": {{\"value\": \"a{i}@x.io\", \"versions\": [{{\"value\": \"a{i}@x.io\", \"timestamp\": 1700000000000, \"source-type\": \"CRM_UI\"}}]}}}}}}\n"
        );
        fs::write(dir.join(format!("part-{i:04}.ndjson")), record).unwrap();
    }
    fs::write(dir.join("_SUCCESS"), "").unwrap();
    fs::write(dir.join(".part-0000.ndjson.crc"), "junk").unwrap();

    let all = ok(&server.skewer(
        &[
            "run",
            "-i",
            "s3://bkt/raw/many",
            "-o",
            "s3://bkt/out",
            "--json",
        ],
        &[],
    ));
    assert_eq!(all["manifest"]["inputs"].as_array().unwrap().len(), 1005);
    assert_eq!(all["manifest"]["counts"]["records_read"], 1005);
    assert_eq!(all["manifest"]["counts"]["records_rejected"], 0);
    assert_eq!(all["manifest"]["counts"]["rows_written"], 1005);

    // A glob: `*` stays within one folder level.
    let some = ok(&server.skewer(
        &[
            "run",
            "-i",
            "s3://bkt/raw/*/part-10*.ndjson",
            "-o",
            "s3://bkt/out2",
            "--json",
        ],
        &[],
    ));
    // part-1000 … part-1004.
    assert_eq!(some["manifest"]["counts"]["records_read"], 5);
}

#[test]
fn large_files_go_up_in_parts_and_a_failed_part_aborts_the_upload() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    // Three properties of 16,000 objects: a 24 MiB input, output files of 4–7 MiB.
    generate(&tmp.path().join("big"), 16_000, 3, "parquet");
    upload_dir(&server, &tmp.path().join("big"), "raw/big");
    let args = [
        "run",
        "-i",
        "s3://bkt/raw/big/",
        "-o",
        "s3://bkt/lake",
        "-r",
        "2",
        "--part-size",
        "5MiB",
        "--json",
    ];
    let first = ok(&server.skewer(&args, &[]));
    let files = data_files(&server.bucket().join("lake"), &run_id(&first));
    assert!(
        files.values().any(|b| b.len() > 5 << 20),
        "no file larger than a part: {:?}",
        files.values().map(Vec::len).collect::<Vec<_>>()
    );
    let check = crate::util::skewer([
        "checksum",
        server.bucket().join("lake").to_str().unwrap(),
        "--expected",
        tmp.path().join("big").to_str().unwrap(),
    ]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(server.open_uploads().is_empty());

    // The second part of a multipart upload fails: the upload is aborted, the objects already
    // uploaded are deleted, and the first run's dataset is untouched.
    let failed = server.skewer(&args, &[("SKEWER_FAIL_AT", "part:2")]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("injected failure"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        server.open_uploads(),
        Vec::<String>::new(),
        "incomplete multipart uploads left behind"
    );
    assert!(files == data_files(&server.bucket().join("lake"), &run_id(&first)));
    let meta = server.bucket().join("lake/_skewer");
    assert_eq!(fs::read_dir(meta.join("runs")).unwrap().count(), 1);
    assert!(!meta.join("lock").exists());
    let leftovers: Vec<_> = ["uploading", "pending"]
        .iter()
        .flat_map(|d| fs::read_dir(meta.join(d)).into_iter().flatten())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_crash_between_upload_and_publish_leaves_the_old_dataset_and_the_next_run_completes() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    generate(&a, 800, 100, "ndjson");
    gen_dump(&b, 700, 100, &["--seed", "9"]);
    upload_dir(&server, &a, "raw/a");
    upload_dir(&server, &b, "raw/b");

    // The reference: a, then b, on local disk, with no crash. Layouts may differ (a rolled
    // forward run adds to the history the next plan reads); rows may not.
    let reference = tmp.path().join("reference");
    for input in [&a, &b] {
        let r = crate::util::skewer([
            "run",
            "-i",
            input.to_str().unwrap(),
            "-o",
            reference.to_str().unwrap(),
            "-r",
            "2",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let checksum = |dataset: &Path| {
        let r = crate::util::skewer(["checksum", dataset.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let want = checksum(&reference);

    for point in ["uploaded", "manifest", "deleted"] {
        let prefix = format!("lake-{point}");
        let lake = server.bucket().join(&prefix);
        let url = format!("s3://bkt/{prefix}");
        let run = |input: &str, env: &[(&str, &str)]| {
            server.skewer(&["run", "-i", input, "-o", &url, "-r", "2", "--json"], env)
        };
        let first = ok(&run("s3://bkt/raw/a", &[]));
        let old = data_files(&lake, &run_id(&first));

        let crashed = run("s3://bkt/raw/b", &[("SKEWER_FAIL_AT", point)]);
        assert_ne!(crashed.code, 0, "{point}: should have crashed");
        assert!(crashed.stderr.contains(&format!("SKEWER_FAIL_AT={point}")));
        let intents: Vec<String> = fs::read_dir(lake.join("_skewer/uploading"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .replace(".json", "")
            })
            .collect();
        assert_eq!(intents.len(), 1, "{point}: {intents:?}");
        let crashed_run = intents[0].clone();
        if point == "uploaded" {
            // Nothing is published before the manifest: every old file is there, unchanged,
            // and no manifest names the new ones.
            let now = data_files(&lake, &run_id(&first));
            assert!(old.iter().all(|(k, v)| now.get(k) == Some(v)), "{point}");
            assert!(
                !lake
                    .join(format!("_skewer/runs/{crashed_run}.json"))
                    .exists()
            );
        }

        // The crashed run's lock is stale (its process is gone): the next run takes it over,
        // finishes or undoes the crashed publish, then runs.
        let next = ok(&run("s3://bkt/raw/b", &[]));
        assert_eq!(checksum(&lake), want, "{point}: not the rows of a then b");
        let published: Vec<String> = data_files(&lake, "\u{0}").into_keys().collect();
        let of_crashed = published
            .iter()
            .filter(|p| p.contains(&crashed_run))
            .count();
        if point == "uploaded" {
            // Undone by recovery, not replaced by the next run.
            assert_eq!(of_crashed, 0, "{point}: {published:?}");
            let replaced = next["manifest"]["replaced"].as_array().unwrap();
            assert!(
                replaced
                    .iter()
                    .all(|r| !r.as_str().unwrap().contains(&crashed_run)),
                "{point}: the crashed run's uploads were still there for the next run"
            );
        }
        let meta = lake.join("_skewer");
        for dir in ["uploading", "pending"] {
            let left: Vec<_> = fs::read_dir(meta.join(dir)).into_iter().flatten().collect();
            assert!(left.is_empty(), "{point}: {dir} holds {left:?}");
        }
        for entry in fs::read_dir(meta.join("runs")).unwrap() {
            let m: Value =
                serde_json::from_slice(&fs::read(entry.unwrap().path()).unwrap()).unwrap();
            assert_eq!(m["state"], "committed", "{point}");
        }
        assert!(!meta.join("lock").exists());
        assert!(server.open_uploads().is_empty());
    }

    // `skewer recover` rolls a publish forward by itself.
    let lake = server.bucket().join("lake-recover");
    let run = |input: &str, env: &[(&str, &str)]| {
        server.skewer(
            &["run", "-i", input, "-o", "s3://bkt/lake-recover", "-r", "2"],
            env,
        )
    };
    assert_eq!(run("s3://bkt/raw/a", &[]).code, 0);
    let crashed = run("s3://bkt/raw/b", &[("SKEWER_FAIL_AT", "manifest")]);
    assert_ne!(crashed.code, 0);
    let recovered = server.skewer(&["recover", "s3://bkt/lake-recover"], &[]);
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    assert!(
        recovered
            .stdout
            .contains("finished the interrupted publish"),
        "{}",
        recovered.stdout
    );
    assert_eq!(checksum(&lake), want);
}

#[test]
fn bad_credentials_a_missing_bucket_and_no_server_are_clear_errors_and_publish_nothing() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    generate(&tmp.path().join("in"), 200, 20, "ndjson");
    upload_dir(&server, &tmp.path().join("in"), "raw");
    let local_in = tmp.path().join("in");
    let local_in = local_in.to_str().unwrap();

    let wrong = server.skewer(
        &["run", "-i", local_in, "-o", "s3://bkt/lake"],
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("s3://bkt/lake") && wrong.stderr.contains("check the credentials"),
        "{}",
        wrong.stderr
    );
    let wrong_in = server.skewer(
        &["run", "-i", "s3://bkt/raw", "-o", "s3://bkt/lake"],
        &[("AWS_ACCESS_KEY_ID", "nobody")],
    );
    assert_eq!(wrong_in.code, 1, "{}", wrong_in.stderr);
    assert!(
        wrong_in.stderr.contains("s3://bkt/raw")
            && wrong_in.stderr.contains("check the credentials"),
        "{}",
        wrong_in.stderr
    );

    let missing = server.skewer(&["run", "-i", local_in, "-o", "s3://nobucket/lake"], &[]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("NoSuchBucket") && missing.stderr.contains("s3://nobucket/"),
        "{}",
        missing.stderr
    );
    let missing_in = server.skewer(
        &["run", "-i", "s3://nobucket/raw", "-o", "s3://bkt/lake"],
        &[],
    );
    assert!(
        missing_in.stderr.contains("the bucket does not exist"),
        "{}",
        missing_in.stderr
    );
    let nothing = server.skewer(
        &["run", "-i", "s3://bkt/nothing/", "-o", "s3://bkt/lake"],
        &[],
    );
    assert_eq!(nothing.code, 2, "{}", nothing.stderr);
    assert!(
        nothing.stderr.contains("matches no objects"),
        "{}",
        nothing.stderr
    );

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = server.skewer(
        &[
            "run",
            "-i",
            local_in,
            "-o",
            "s3://bkt/lake",
            "--endpoint",
            &format!("http://127.0.0.1:{closed}"),
        ],
        &[("AWS_MAX_ATTEMPTS", "2")],
    );
    assert_eq!(unreachable.code, 1, "{}", unreachable.stderr);
    assert!(
        unreachable
            .stderr
            .contains(&format!("cannot reach http://127.0.0.1:{closed}")),
        "{}",
        unreachable.stderr
    );

    // None of it wrote anything.
    assert!(!server.bucket().join("lake").exists());
    assert!(!server.root.path().join("nobucket").exists());
}

#[test]
fn replay_and_inspect_work_on_s3() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    for (day, seed) in [("01", "1"), ("03", "3")] {
        let dir = tmp.path().join(day);
        gen_dump(&dir, 300, 30, &["--seed", seed]);
        upload_dir(&server, &dir, &format!("raw/dt=2026-10-{day}"));
    }
    let replay = || {
        server.skewer(
            &[
                "replay",
                "--input",
                "s3://bkt/raw/dt={date}/",
                "--from",
                "2026-10-01",
                "--to",
                "2026-10-03",
                "--output",
                "s3://bkt/lake",
                "-r",
                "2",
                "--json",
            ],
            &[],
        )
    };
    let statuses = |run: &Run| -> Vec<String> {
        let v = ok(run);
        v["dates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(statuses(&replay()), ["committed", "missing", "committed"]);
    assert_eq!(statuses(&replay()), ["skipped", "missing", "skipped"]);
    for day in ["01", "03"] {
        let check = crate::util::skewer([
            "checksum",
            server
                .bucket()
                .join(format!("lake/dt=2026-10-{day}"))
                .to_str()
                .unwrap(),
            "--expected",
            tmp.path().join(day).to_str().unwrap(),
        ]);
        assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    }

    let inspect = server.skewer(&["inspect", "s3://bkt/lake", "--json"], &[]);
    let report = ok(&inspect);
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
    // An upload intent left behind is a stray.
    let stray = server
        .bucket()
        .join("lake/_skewer/uploading/20261001T000000.000Z-dead.json");
    fs::write(&stray, "{}").unwrap();
    let inspect = server.skewer(&["inspect", "s3://bkt/lake"], &[]);
    assert_eq!(inspect.code, 1);
    assert!(
        inspect
            .stdout
            .contains("s3://bkt/lake/_skewer/uploading/20261001T000000.000Z-dead.json"),
        "{}",
        inspect.stdout
    );
}
