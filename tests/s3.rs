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
        finished(
            self.command(args, env)
                .output()
                .expect("the skewer binary runs"),
        )
    }

    /// The real binary with this server's endpoint and credentials, to start (`env` may set
    /// another endpoint: a [`Proxy`]).
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
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
        cmd
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

fn finished(out: std::process::Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
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

/// The objects of a dataset in the bucket, outside `_skewer/`: path → bytes.
fn objects(lake: &Path) -> BTreeMap<String, Vec<u8>> {
    data_files(lake, "\u{0}")
}

/// The data files of a dataset with the run ids of its manifests, oldest first, written as
/// RUN0, RUN1, …: two datasets that went through the same runs compare equal.
fn snapshot(lake: &Path) -> BTreeMap<String, Vec<u8>> {
    let runs: Vec<String> = manifests(lake)
        .iter()
        .map(|m| m["run_id"].as_str().unwrap().to_string())
        .collect();
    objects(lake)
        .into_iter()
        .map(|(mut path, bytes)| {
            for (i, run) in runs.iter().enumerate() {
                path = path.replace(run.as_str(), &format!("RUN{i}"));
            }
            (path, bytes)
        })
        .collect()
}

/// Asserts that two snapshots hold the same files, byte for byte.
fn assert_same(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: not the same files"
    );
    for (path, bytes) in want {
        assert!(got[path] == *bytes, "{what}: {path} differs");
    }
}

/// The upload intents in a dataset: their run ids.
fn intents(lake: &Path) -> Vec<String> {
    fs::read_dir(lake.join("_skewer/uploading"))
        .into_iter()
        .flatten()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .replace(".json", "")
        })
        .collect()
}

/// `skewer run -i input -o s3://bkt/<lake> -r 2 --json`.
fn run_to(server: &Server, lake: &str, input: &str, env: &[(&str, &str)]) -> Run {
    server.skewer(
        &[
            "run",
            "-i",
            input,
            "-o",
            &format!("s3://bkt/{lake}"),
            "-r",
            "2",
            "--json",
        ],
        env,
    )
}

#[test]
fn a_crash_at_any_publish_step_leaves_old_or_new_and_both_run_and_recover_complete_it() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    gen_dump(&a, 150, 40, &["--files", "2"]);
    gen_dump(&b, 120, 40, &["--seed", "9"]);
    upload_dir(&server, &a, "raw/a");
    upload_dir(&server, &b, "raw/b");
    let run = |lake: &str, input: &str, env: &[(&str, &str)]| run_to(&server, lake, input, env);

    // The reference: a, then b, then b again, with no crash.
    let reference = server.bucket().join("reference");
    ok(&run("reference", "s3://bkt/raw/a", &[]));
    let after_a = snapshot(&reference);
    ok(&run("reference", "s3://bkt/raw/b", &[]));
    let after_ab = snapshot(&reference);
    ok(&run("reference", "s3://bkt/raw/b", &[]));
    let after_abb = snapshot(&reference);
    // Many files, so that each crash point leaves some written and some not.
    assert!(
        after_ab != after_a && after_abb.len() > 20,
        "{} files",
        after_abb.len()
    );

    let cases: Vec<(&str, &str)> = ["uploaded", "manifest", "deleted", "history", "committed"]
        .into_iter()
        .flat_map(|point| [(point, "recover"), (point, "run")])
        .collect();
    // Three at a time: each case is a few runs, mostly waiting on one another.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                while let Some(&(point, then)) =
                    cases.get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
                {
                    crash_case(&server, point, then, [&after_a, &after_ab, &after_abb]);
                }
            });
        }
    });
}

/// One case of [`a_crash_at_any_publish_step_leaves_old_or_new_and_both_run_and_recover_complete_it`]:
/// a, then b crashing at `point`, then `then` (`recover` or `run` b again), compared with the
/// reference's state after a, a b, and a b b.
fn crash_case(
    server: &Server,
    point: &str,
    then: &str,
    [after_a, after_ab, after_abb]: [&BTreeMap<String, Vec<u8>>; 3],
) {
    let run = |lake: &str, input: &str, env: &[(&str, &str)]| run_to(server, lake, input, env);
    let prefix = format!("lake-{point}-{then}");
    let lake = server.bucket().join(&prefix);
    ok(&run(&prefix, "s3://bkt/raw/a", &[]));
    let old = objects(&lake);

    let crashed = run(&prefix, "s3://bkt/raw/b", &[("SKEWER_FAIL_AT", point)]);
    assert_ne!(crashed.code, 0, "{point}: should have crashed");
    assert!(crashed.stderr.contains(&format!("SKEWER_FAIL_AT={point}")));
    // The crashed run's intent is left at every step, its lock too (a dead process's).
    let intents = intents(&lake);
    assert_eq!(intents.len(), 1, "{point}: {intents:?}");
    let crashed_run = &intents[0];
    assert!(lake.join("_skewer/lock").exists(), "{point}");

    // Wholly old or wholly new, as the manifests say.
    let now = objects(&lake);
    let manifest: Option<Value> = fs::read(lake.join(format!("_skewer/runs/{crashed_run}.json")))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    match &manifest {
        None => {
            assert_eq!(point, "uploaded");
            // Every old object is there, unchanged; the rest are the crashed run's
            // uploads, which no manifest names.
            for (path, bytes) in &old {
                assert!(now.get(path) == Some(bytes), "{point}: {path} changed");
            }
            let extra: Vec<&String> = now.keys().filter(|p| !old.contains_key(*p)).collect();
            assert!(!extra.is_empty());
            assert!(
                extra
                    .iter()
                    .all(|p| p.contains(&format!("part-{crashed_run}-"))),
                "{point}: {extra:?}"
            );
        }
        Some(m) => {
            let state = if point == "committed" {
                "committed"
            } else {
                "publishing"
            };
            assert_eq!(m["state"], state, "{point}");
            // The new state is complete…
            let new: BTreeMap<String, u64> = m["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["path"].as_str().unwrap().to_string(),
                        f["bytes"].as_u64().unwrap(),
                    )
                })
                .collect();
            for (path, size) in &new {
                let got = now.get(path).map(|b| b.len() as u64);
                assert_eq!(got, Some(*size), "{point}: {path}");
            }
            // … and the old objects it replaces are all there (before the deletes) or
            // all gone (after), every other old one untouched.
            let replaced: Vec<&str> = m["replaced"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert!(!replaced.is_empty(), "{point}: b replaces nothing of a");
            let deleted = point != "manifest";
            let mut want: Vec<&String> = old
                .keys()
                .filter(|p| !(deleted && replaced.contains(&p.as_str())))
                .chain(new.keys())
                .collect();
            want.sort();
            assert_eq!(now.keys().collect::<Vec<_>>(), want, "{point}");
            for path in old.keys().filter(|p| now.contains_key(*p)) {
                assert!(now[path] == old[path], "{point}: {path} changed");
            }
            let moved = matches!(point, "history" | "committed");
            let history = lake.join(format!("_skewer/history/{crashed_run}.json"));
            assert_eq!(history.exists(), moved, "{point}");
        }
    }

    // The crashed run's lock is stale (its process is gone): taken over, and the
    // crashed publish finished or undone, by `skewer recover` or by the next run.
    let discarded = point == "uploaded";
    if then == "recover" {
        let recovered = server.skewer(&["recover", &format!("s3://bkt/{prefix}")], &[]);
        assert_eq!(recovered.code, 0, "{point}: {}", recovered.stderr);
        let said = match point {
            "uploaded" => "removed the unpublished files",
            "committed" => "nothing to recover",
            _ => "finished the interrupted publish",
        };
        assert!(
            recovered.stdout.contains(said),
            "{point}: {}",
            recovered.stdout
        );
        let want = if discarded { after_a } else { after_ab };
        assert_same(&snapshot(&lake), want, &format!("{point}, recovered"));
        assert_settled(&lake, if discarded { 1 } else { 2 });
    } else {
        let next = ok(&run(&prefix, "s3://bkt/raw/b", &[]));
        let want = if discarded { after_ab } else { after_abb };
        assert_same(&snapshot(&lake), want, &format!("{point}, run again"));
        assert_settled(&lake, if discarded { 2 } else { 3 });
        if discarded {
            // Undone by recovery, not replaced by the next run.
            let replaced = next["manifest"]["replaced"].as_array().unwrap();
            assert!(
                replaced
                    .iter()
                    .all(|r| !r.as_str().unwrap().contains(crashed_run.as_str())),
                "the crashed run's uploads were still there for the next run"
            );
        }
    }
    assert!(server.open_uploads().is_empty());
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

// ---------------------------------------------------------------------------------------
// A fault-injecting proxy in front of s3s-fs
// ---------------------------------------------------------------------------------------

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fault {
    /// Forwarded, and s3s-fs's answer passed back.
    Pass,
    /// Answered by the proxy: `503 SlowDown`, as S3 throttles.
    SlowDown,
    /// The connection is closed without an answer; s3s-fs never sees the request.
    Drop,
    /// Forwarded (s3s-fs acts on it); its answer is cut halfway and the connection closed.
    Cut,
    /// Forwarded; the answer is held back this long.
    Slow(Duration),
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// The path and query.
    target: String,
    range: Option<String>,
    fault: Fault,
}

/// Decides each request's fault from what came before it and the request itself.
type Plan = dyn Fn(&[Seen], &Seen) -> Fault + Send + Sync;

/// An HTTP/1.1 proxy on 127.0.0.1 in front of s3s-fs that counts requests and injects faults
/// as its plan says. It parses just enough HTTP to find where each message ends.
struct Proxy {
    endpoint: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    port: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One HTTP message, as bytes, with what the proxy needs to know of it.
struct Message {
    raw: Vec<u8>,
    /// Request line or status line words.
    first: Vec<String>,
    range: Option<String>,
    close: bool,
}

impl Proxy {
    fn start(
        server: &Server,
        plan: impl Fn(&[Seen], &Seen) -> Fault + Send + Sync + 'static,
    ) -> Proxy {
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream: std::net::SocketAddr = server
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let plan: Arc<Plan> = Arc::new(plan);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (plan, seen) = (plan.clone(), seen2.clone());
                std::thread::spawn(move || {
                    let _ = Proxy::serve(client, upstream, &*plan, &seen);
                });
            }
        });
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            seen,
            stop,
            port,
        }
    }

    /// The requests seen so far.
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests got `fault` (`Slow` of any length counts as one kind).
    fn count(&self, fault: Fault) -> usize {
        let kind = |f: &Fault| std::mem::discriminant(f);
        self.seen()
            .iter()
            .filter(|s| kind(&s.fault) == kind(&fault))
            .count()
    }

    fn serve(
        client: TcpStream,
        upstream: std::net::SocketAddr,
        plan: &Plan,
        seen: &std::sync::Mutex<Vec<Seen>>,
    ) -> std::io::Result<()> {
        use std::io::{BufReader, Write};
        let mut from_client = BufReader::new(client.try_clone()?);
        let mut client = client;
        let mut server: Option<(TcpStream, BufReader<TcpStream>)> = None;
        loop {
            let Some(request) = read_message(&mut from_client, None)? else {
                return Ok(());
            };
            let method = request.first.first().cloned().unwrap_or_default();
            let mut this = Seen {
                method: method.clone(),
                target: request.first.get(1).cloned().unwrap_or_default(),
                range: request.range.clone(),
                fault: Fault::Pass,
            };
            let fault = {
                let mut seen = seen.lock().unwrap();
                this.fault = plan(&seen, &this);
                seen.push(this.clone());
                this.fault
            };
            match fault {
                Fault::SlowDown => {
                    client.write_all(&slow_down(&method))?;
                    continue;
                }
                Fault::Drop => {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    return Ok(());
                }
                _ => {}
            }
            if server.is_none() {
                let stream = TcpStream::connect(upstream)?;
                let reader = BufReader::new(stream.try_clone()?);
                server = Some((stream, reader));
            }
            let (to_server, from_server) = server.as_mut().unwrap();
            to_server.write_all(&request.raw)?;
            let response = read_message(from_server, Some(&method))?.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "s3s-fs closed")
            })?;
            match fault {
                Fault::Cut => {
                    client.write_all(&response.raw[..response.raw.len() / 2])?;
                    client.flush()?;
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    return Ok(());
                }
                Fault::Slow(pause) => std::thread::sleep(pause),
                _ => {}
            }
            client.write_all(&response.raw)?;
            if response.close || request.close {
                let _ = client.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
    }
}

/// S3's answer to too many requests (a HEAD gets the status alone).
fn slow_down(method: &str) -> Vec<u8> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate.</Message>\
                <RequestId>proxy</RequestId></Error>";
    let mut out = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         x-amz-request-id: proxy\r\n\r\n",
        if method == "HEAD" { 0 } else { body.len() }
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Reads one HTTP/1.1 message: a request (`response_to` `None`) or the response to a request
/// with that method. Bodies have a Content-Length or are chunked (the SDK's aws-chunked
/// uploads carry a Content-Length); a response with neither ends with the connection.
/// `None`: the connection closed before a message began.
fn read_message(
    r: &mut impl std::io::BufRead,
    response_to: Option<&str>,
) -> std::io::Result<Option<Message>> {
    use std::io::{Error, ErrorKind};
    let cut = || Error::new(ErrorKind::UnexpectedEof, "cut message");
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        if r.read_until(b'\n', &mut raw)? == 0 {
            return if raw.is_empty() { Ok(None) } else { Err(cut()) };
        }
        if raw[start..] == *b"\r\n" || raw[start..] == *b"\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = head.lines();
    let first: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let status: u16 = match response_to {
        Some(_) => first.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        None => 0,
    };
    let mut close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let bodiless =
        response_to == Some("HEAD") || status / 100 == 1 || status == 204 || status == 304;
    if !bodiless {
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                let start = raw.len();
                if r.read_until(b'\n', &mut raw)? == 0 {
                    return Err(cut());
                }
                let line = String::from_utf8_lossy(&raw[start..]).into_owned();
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
                if size == 0 {
                    // Trailers, up to an empty line.
                    loop {
                        let start = raw.len();
                        if r.read_until(b'\n', &mut raw)? == 0 {
                            return Err(cut());
                        }
                        if raw[start..] == *b"\r\n" {
                            break;
                        }
                    }
                    break;
                }
                let mut chunk = vec![0; size + 2];
                r.read_exact(&mut chunk)?;
                raw.extend_from_slice(&chunk);
            }
        } else if let Some(len) = header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
            let mut body = vec![0; len];
            r.read_exact(&mut body)?;
            raw.extend_from_slice(&body);
        } else if response_to.is_some() {
            r.read_to_end(&mut raw)?;
            close = true;
        }
    }
    Ok(Some(Message {
        raw,
        first,
        range: header("range"),
        close,
    }))
}

/// A plan that fails the first attempt of one request in four (and the first two of one in
/// ten), in turn with each kind of fault, and never a request more often: every request gets
/// through within the SDK's attempts, so a correct client ends as if nothing happened. A
/// request is known by its method, path and query and range; they are numbered in the order
/// they first come.
fn moderate(seen: &[Seen], this: &Seen) -> Fault {
    let same =
        |s: &Seen| s.method == this.method && s.target == this.target && s.range == this.range;
    let before = seen.iter().filter(|s| same(s)).count();
    let first = |i: usize| {
        !seen[..i].iter().any(|s| {
            s.method == seen[i].method && s.target == seen[i].target && s.range == seen[i].range
        })
    };
    let number = match seen.iter().position(same) {
        Some(at) => (0..at).filter(|&i| first(i)).count(),
        None => (0..seen.len()).filter(|&i| first(i)).count(),
    };
    let kinds = [
        Fault::SlowDown,
        Fault::Drop,
        Fault::Cut,
        Fault::Slow(Duration::from_millis(150)),
    ];
    match (number % 4, number % 10, before) {
        (1, _, 0) => kinds[number / 4 % 4],
        (_, 6, 0) => Fault::Cut,
        (_, 6, 1) => Fault::SlowDown,
        _ => Fault::Pass,
    }
}

#[test]
fn s3_faults_are_retried_and_the_output_is_the_clean_runs() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    // Four inputs of ~1 MiB: read in ranges, not whole at discovery.
    gen_dump(&tmp.path().join("in"), 200, 30, &["--files", "4"]);
    upload_dir(&server, &tmp.path().join("in"), "raw");
    let args = |out: &str| {
        ["run", "-i", "s3://bkt/raw", "-o", out, "-r", "2", "--json"].map(str::to_string)
    };
    let clean = ok(&server.skewer(&args("s3://bkt/clean").each_ref().map(String::as_str), &[]));

    let proxy = Proxy::start(&server, moderate);
    let started = Instant::now();
    let faulty = ok(&server.skewer(
        &args("s3://bkt/faulty").each_ref().map(String::as_str),
        &[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())],
    ));
    eprintln!(
        "the run through the proxy took {:?}, {} requests",
        started.elapsed(),
        proxy.seen().len()
    );
    // Every kind of fault happened, to a good share of the requests.
    let seen = proxy.seen();
    for kind in [
        Fault::SlowDown,
        Fault::Drop,
        Fault::Cut,
        Fault::Slow(Duration::ZERO),
    ] {
        assert!(proxy.count(kind) >= 2, "{kind:?}: {seen:#?}");
    }
    let faults = seen
        .iter()
        .filter(|s| !matches!(s.fault, Fault::Pass | Fault::Slow(_)))
        .count();
    assert!(
        faults * 5 >= seen.len(),
        "{faults} faults in {} requests",
        seen.len()
    );
    // Ranged reads of the inputs were among them.
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.range.is_some() && s.fault == Fault::Cut),
        "no ranged GET was cut"
    );

    assert_eq!(clean["manifest"]["counts"], faulty["manifest"]["counts"]);
    let want = data_files(&server.bucket().join("clean"), &run_id(&clean));
    let got = data_files(&server.bucket().join("faulty"), &run_id(&faulty));
    assert!(want.len() >= 30, "{} files", want.len());
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    assert!(want == got, "the files differ in content");
    assert_settled(&server.bucket().join("faulty"), 1);
    let inspect = server.skewer(&["inspect", "s3://bkt/faulty"], &[]);
    assert_eq!(inspect.code, 0, "{}{}", inspect.stdout, inspect.stderr);

    // Every write and delete under _skewer/ lands, but its first answer is lost: the SDK
    // sends it again, and a conditional write (the lock) then fails on its own first write.
    // The run must see that the lock is its own.
    let proxy = Proxy::start(&server, |seen, this| {
        let meta = this.method != "GET" && this.target.contains("/_skewer/");
        let again = seen
            .iter()
            .any(|s| s.method == this.method && s.target == this.target);
        if meta && !again {
            Fault::Cut
        } else {
            Fault::Pass
        }
    });
    let cut = ok(&server.skewer(
        &args("s3://bkt/cut").each_ref().map(String::as_str),
        &[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())],
    ));
    let lock_writes: Vec<Fault> = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.target.contains("/_skewer/lock"))
        .map(|s| s.fault)
        .collect();
    assert_eq!(lock_writes, [Fault::Cut, Fault::Pass]);
    assert!(proxy.count(Fault::Cut) >= 5);
    let got = data_files(&server.bucket().join("cut"), &run_id(&cut));
    assert!(want == got, "the files differ in content");
    assert_settled(&server.bucket().join("cut"), 1);
}

/// A dataset no run is in the middle of: `runs` manifests, all committed, as many history
/// records, no intent, pending record or lock.
fn assert_settled(lake: &Path, runs: usize) {
    let meta = lake.join("_skewer");
    for dir in ["uploading", "pending"] {
        let left: Vec<_> = fs::read_dir(meta.join(dir)).into_iter().flatten().collect();
        assert!(left.is_empty(), "{}: {dir} holds {left:?}", lake.display());
    }
    let manifests = manifests(lake);
    assert_eq!(manifests.len(), runs, "{}", lake.display());
    for m in &manifests {
        assert_eq!(m["state"], "committed", "{}", lake.display());
    }
    assert_eq!(fs::read_dir(meta.join("history")).unwrap().count(), runs);
    assert!(
        !meta.join("lock").exists(),
        "{}: a lock is left",
        lake.display()
    );
}

/// The run manifests of a dataset in the bucket, oldest first.
fn manifests(lake: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = fs::read_dir(lake.join("_skewer/runs"))
        .into_iter()
        .flatten()
        .map(|e| serde_json::from_slice(&fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    out.sort_by(|a, b| a["run_id"].as_str().cmp(&b["run_id"].as_str()));
    out
}

/// A data object's upload (`PUT …/part-…`, one request or a part).
fn is_data_upload(s: &Seen) -> bool {
    s.method == "PUT" && s.target.contains("/part-")
}

#[test]
fn s3_faults_on_every_request_fail_the_run_cleanly_and_publish_nothing() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    gen_dump(&tmp.path().join("in"), 120, 30, &["--files", "2"]);
    upload_dir(&server, &tmp.path().join("in"), "raw");
    let lake = server.bucket().join("lake");
    let run = |endpoint: &str| {
        server.skewer(
            &[
                "run",
                "-i",
                "s3://bkt/raw",
                "-o",
                "s3://bkt/lake",
                "-r",
                "2",
                "--json",
            ],
            &[("AWS_ENDPOINT_URL", endpoint), ("AWS_MAX_ATTEMPTS", "2")],
        )
    };
    let first = ok(&run(&server.endpoint));
    let published = objects(&lake);
    let unchanged = |what: &str| {
        assert!(
            objects(&lake) == published,
            "{what}: the published objects changed"
        );
        let committed: Vec<Value> = manifests(&lake)
            .into_iter()
            .filter(|m| m["state"] == "committed")
            .collect();
        assert_eq!(committed.len(), 1, "{what}");
        assert_eq!(
            committed[0]["run_id"], first["manifest"]["run_id"],
            "{what}"
        );
    };

    // Every request throttled, or every connection dropped: the first request fails after
    // its retries, and the error names the URL, the operation and the cause.
    for (fault, cause) in [
        (Fault::SlowDown, "SlowDown: Please reduce your request rate"),
        (Fault::Drop, "cannot reach"),
    ] {
        let proxy = Proxy::start(&server, move |_, _| fault);
        let failed = run(&proxy.endpoint);
        assert_eq!(failed.code, 1, "{fault:?}: {}", failed.stderr);
        assert!(
            failed.stderr.contains("s3://bkt/raw: cannot list: ") && failed.stderr.contains(cause),
            "{fault:?}: {}",
            failed.stderr
        );
        assert_eq!(proxy.seen().len(), 2, "{fault:?}: AWS_MAX_ATTEMPTS=2");
        unchanged(&format!("{fault:?}"));
        assert_settled(&lake, 1);
    }

    // Local input: the first request is the output bucket's check, a HEAD (no error body).
    let proxy = Proxy::start(&server, |_, _| Fault::SlowDown);
    let local = tmp.path().join("in");
    let failed = server.skewer(
        &["run", "-i", local.to_str().unwrap(), "-o", "s3://bkt/lake"],
        &[
            ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
            ("AWS_MAX_ATTEMPTS", "2"),
        ],
    );
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("s3://bkt/lake: cannot use: 503 Service Unavailable (the store is throttling or down; tried 2 times)"),
        "{}",
        failed.stderr
    );
    unchanged("HEAD throttled");

    // Every data upload throttled (the rest goes through): the run stops, deletes what it
    // wrote and lets go of the lock.
    let proxy = Proxy::start(&server, |_, this| {
        if is_data_upload(this) {
            Fault::SlowDown
        } else {
            Fault::Pass
        }
    });
    let failed = run(&proxy.endpoint);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("s3://bkt/lake/property_name=")
            && failed.stderr.contains(": cannot write: SlowDown"),
        "{}",
        failed.stderr
    );
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.method == "POST" && s.target.contains("?delete"))
    );
    unchanged("uploads throttled");
    assert_settled(&lake, 1);

    // Three uploads get through, then the store is gone for good: the run cannot even clean
    // up after itself. Nothing is published; the next run takes over its lock (its process is
    // gone), deletes what it uploaded and publishes as if it had never been.
    let proxy = Proxy::start(&server, |seen, _| {
        if seen.iter().filter(|s| is_data_upload(s)).count() >= 3 {
            Fault::Drop
        } else {
            Fault::Pass
        }
    });
    let failed = run(&proxy.endpoint);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("cannot reach"), "{}", failed.stderr);
    let stopped = intents(&lake);
    assert_eq!(stopped.len(), 1);
    let uploaded: Vec<String> = objects(&lake)
        .into_keys()
        .filter(|p| !published.contains_key(p))
        .collect();
    assert_eq!(uploaded.len(), 3, "{uploaded:?}");
    assert!(
        uploaded
            .iter()
            .all(|p| p.contains(&format!("part-{}-", stopped[0])))
    );
    assert!(lake.join("_skewer/lock").exists());
    assert!(
        !lake
            .join(format!("_skewer/runs/{}.json", stopped[0]))
            .exists()
    );

    let next = ok(&run(&server.endpoint));
    assert_settled(&lake, 2);
    let reference = server.bucket().join("reference");
    for _ in 0..2 {
        ok(&server.skewer(
            &[
                "run",
                "-i",
                "s3://bkt/raw",
                "-o",
                "s3://bkt/reference",
                "-r",
                "2",
            ],
            &[],
        ));
    }
    assert_same(
        &snapshot(&lake),
        &snapshot(&reference),
        "after the failures",
    );
    assert!(
        !next["manifest"]["replaced"]
            .to_string()
            .contains(&stopped[0])
    );
}

#[test]
fn an_s3_input_overwritten_while_the_run_reads_it_fails_the_run() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    // Objects of ~0.5 MiB: read in ranges as the run goes, not whole at discovery.
    gen_dump(&tmp.path().join("in"), 120, 30, &["--files", "2"]);
    upload_dir(&server, &tmp.path().join("in"), "raw");
    let lake = server.bucket().join("lake");
    let args = [
        "run",
        "-i",
        "s3://bkt/raw",
        "-o",
        "s3://bkt/lake",
        "-r",
        "2",
        "--json",
    ];
    let first = ok(&server.skewer(&args, &[]));
    let published = objects(&lake);

    // Once discovery has looked at it (its first GET), the object is rewritten: the same
    // length, other bytes (s3s-fs serves the file as it is now, with a new ETag).
    let object = server.bucket().join("raw/contacts-00001.ndjson");
    let size = fs::metadata(&object).unwrap().len();
    assert!(size > 300 << 10, "{size} bytes: fetched whole at discovery");
    let proxy = Proxy::start(&server, move |seen, this| {
        let ours = |s: &Seen| s.method == "GET" && s.target.contains("/raw/contacts-00001.ndjson");
        if ours(this) && seen.iter().filter(|s| ours(s)).count() == 1 {
            let mut bytes = fs::read(&object).unwrap();
            let at = bytes.iter().rposition(|&b| b == b'1').unwrap();
            bytes[at] = b'2';
            fs::write(&object, bytes).unwrap();
        }
        Fault::Pass
    });
    let failed = server.skewer(&args, &[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains(
            "s3://bkt/raw/contacts-00001.ndjson: changed while the run read it (its ETag was"
        ) && failed
            .stderr
            .contains("the run stopped and published nothing"),
        "{}",
        failed.stderr
    );
    assert!(objects(&lake) == published);
    assert_eq!(manifests(&lake).len(), 1);
    assert_eq!(manifests(&lake)[0]["run_id"], first["manifest"]["run_id"]);
    assert_settled(&lake, 1);
}

/// Starts one `skewer run` per input at the same moment, all into `output`, with logs on
/// (the lock's comings and goings); waits for them all.
fn race(server: &Server, inputs: &[PathBuf], output: &str) -> Vec<Run> {
    let start = std::sync::Barrier::new(inputs.len());
    std::thread::scope(|scope| {
        let runs: Vec<_> = inputs
            .iter()
            .map(|input| {
                let start = &start;
                scope.spawn(move || {
                    let mut cmd = server.command(
                        &[
                            "run",
                            "-i",
                            input.to_str().unwrap(),
                            "-o",
                            output,
                            "-r",
                            "2",
                            "--json",
                        ],
                        &[("RUST_LOG", "skewer=info")],
                    );
                    start.wait();
                    finished(cmd.output().unwrap())
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// When a run's log says it took and released the dataset lock (RFC 3339 UTC timestamps,
/// which sort as text).
fn lock_held(run: &Run) -> (String, String) {
    let at = |what: &str| {
        run.stderr
            .lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {what:?} in {}", run.stderr))
            .to_string()
    };
    (at("took the dataset lock"), at("released the dataset lock"))
}

/// Checks the outcome of a [`race`]: every run committed or was turned away by the lock, the
/// committed ones held it one after another, and the dataset is wholly the last one's output.
/// `before`: runs the dataset had. Returns the committed runs' indices.
fn check_race(
    server: &Server,
    runs: &[Run],
    inputs: &[PathBuf],
    lake: &str,
    before: usize,
) -> Vec<usize> {
    let mut committed = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        match run.code {
            0 => committed.push(i),
            1 => assert!(
                run.stderr.contains("the dataset is locked by"),
                "run {i}: {}",
                run.stderr
            ),
            _ => panic!("run {i}: exit {}: {}", run.code, run.stderr),
        }
    }
    assert!(!committed.is_empty());
    // One at a time: a committed run held the lock from before its recovery to after its
    // commit, so no two publishes overlapped.
    let mut held: Vec<(String, String)> = committed.iter().map(|&i| lock_held(&runs[i])).collect();
    held.sort();
    for pair in held.windows(2) {
        assert!(
            pair[0].1 < pair[1].0,
            "two runs held the lock at once: {held:?}"
        );
    }
    // The dataset is the output of the last run, and only of it.
    let dir = server.bucket().join(lake);
    let last = *committed
        .iter()
        .max_by_key(|&&i| {
            ok(&runs[i])["manifest"]["run_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let manifest = &ok(&runs[last])["manifest"];
    let run_id = manifest["run_id"].as_str().unwrap();
    let mut files: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    files.sort();
    assert_eq!(objects(&dir).into_keys().collect::<Vec<_>>(), files);
    assert!(files.iter().all(|f| f.contains(&format!("part-{run_id}-"))));
    let check = crate::util::skewer([
        "checksum",
        dir.to_str().unwrap(),
        "--expected",
        inputs[last].to_str().unwrap(),
    ]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert_settled(&dir, before + committed.len());
    let inspect = server.skewer(&["inspect", &format!("s3://bkt/{lake}")], &[]);
    assert_eq!(inspect.code, 0, "{}{}", inspect.stdout, inspect.stderr);
    committed
}

/// Six dumps with the same 20 properties and other records.
fn race_inputs(dir: &Path) -> Vec<PathBuf> {
    (0..6)
        .map(|i| {
            let input = dir.join(format!("in{i}"));
            gen_dump(&input, 100, 20, &["--seed", &i.to_string()]);
            input
        })
        .collect()
}

#[test]
fn of_s3_runs_racing_for_the_lock_one_publishes_at_a_time_and_the_last_one_wins_whole() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let inputs = race_inputs(tmp.path());
    // Twice: on a new dataset, and on one with a published run to replace.
    let mut before = 0;
    for round in 0..2 {
        let runs = race(&server, &inputs, "s3://bkt/race");
        let committed = check_race(&server, &runs, &inputs, "race", before);
        eprintln!("round {round}: runs {committed:?} committed");
        before += committed.len();
    }
}

#[test]
fn a_stale_s3_lock_is_taken_over_by_exactly_one_of_several_racing_runs() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let inputs = race_inputs(tmp.path());
    ok(&server.skewer(
        &[
            "run",
            "-i",
            inputs[0].to_str().unwrap(),
            "-o",
            "s3://bkt/lake",
            "-r",
            "2",
        ],
        &[],
    ));
    // A run on this host whose process is gone left its lock.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let stale = serde_json::json!({
        "pid": u32::MAX - 7,
        "host": host.trim(),
        "process_start": 1,
        "since": "2026-11-20T02:00:00Z",
        "run_id": "crashed",
    });
    let lock = server.bucket().join("lake/_skewer/lock");
    fs::write(&lock, serde_json::to_vec(&stale).unwrap()).unwrap();

    let runs = race(&server, &inputs, "s3://bkt/lake");
    let took_over: Vec<usize> = (0..runs.len())
        .filter(|&i| {
            runs[i]
                .stderr
                .contains("took over the dataset lock of run crashed")
        })
        .collect();
    assert_eq!(
        took_over.len(),
        1,
        "{:#?}",
        runs.iter().map(|r| &r.stderr).collect::<Vec<_>>()
    );
    let committed = check_race(&server, &runs, &inputs, "lake", 1);
    assert!(committed.contains(&took_over[0]));

    // A lock note that is not skewer's is never taken over: it could be anything's.
    fs::write(&lock, "\u{1b}[31mnot a note").unwrap();
    let refused = server.skewer(
        &[
            "run",
            "-i",
            inputs[1].to_str().unwrap(),
            "-o",
            "s3://bkt/lake",
        ],
        &[],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("the dataset is locked by something that is not a skewer run")
            && !refused.stderr.contains('\u{1b}'),
        "{}",
        refused.stderr
    );
    assert_eq!(fs::read(&lock).unwrap(), b"\x1b[31mnot a note");
}

#[test]
fn a_publish_that_fails_after_its_manifest_says_how_far_it_got_and_recovery_finishes_it() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    gen_dump(&a, 100, 20, &[]);
    gen_dump(&b, 100, 20, &["--seed", "9"]);
    let run = |input: &Path, output: &str, env: &[(&str, &str)]| {
        server.skewer(
            &[
                "run",
                "-i",
                input.to_str().unwrap(),
                "-o",
                output,
                "-r",
                "2",
                "--json",
            ],
            env,
        )
    };
    for input in [&a, &b, &b] {
        ok(&run(input, "s3://bkt/reference", &[]));
    }
    let reference = snapshot(&server.bucket().join("reference"));
    let lake = server.bucket().join("lake");
    ok(&run(&a, "s3://bkt/lake", &[]));
    let is_manifest = |s: &Seen| s.method == "PUT" && s.target.contains("/_skewer/runs/");

    // The deletes of what the run replaces are refused, after its manifest.
    let proxy = Proxy::start(&server, move |seen, this| {
        let deleting = this.method == "POST" && this.target.contains("?delete");
        if deleting && seen.iter().any(is_manifest) {
            Fault::SlowDown
        } else {
            Fault::Pass
        }
    });
    let env = [
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
        ("AWS_MAX_ATTEMPTS", "2"),
    ];
    let stopped = run(&b, "s3://bkt/lake", &env);
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    let run_b = intents(&lake).pop().unwrap();
    let replaced = manifests(&lake)[1]["replaced"].as_array().unwrap().len();
    assert!(replaced >= 20);
    for said in [
        format!(
            "the publish of run {run_b} stopped after deleting 0 of the {replaced} objects it replaces"
        ),
        "s3://bkt/lake: cannot delete objects: SlowDown: Please reduce your request rate. readers"
            .into(),
        format!(
            "readers listing the partitions see the run's new objects side by side with {replaced} of the {replaced} old ones"
        ),
        format!("its manifest (s3://bkt/lake/_skewer/runs/{run_b}.json) says \"publishing\""),
        "run `skewer recover s3://bkt/lake`".into(),
    ] {
        assert!(stopped.stderr.contains(&said), "{said}\n{}", stopped.stderr);
    }
    assert_eq!(manifests(&lake)[1]["state"], "publishing");
    assert!(!lake.join("_skewer/lock").exists(), "the lock is let go");
    let recovered = server.skewer(&["recover", "s3://bkt/lake"], &[]);
    assert!(
        recovered
            .stdout
            .contains(&format!("finished the interrupted publish of run {run_b}")),
        "{}{}",
        recovered.stdout,
        recovered.stderr
    );
    assert_settled(&lake, 2);

    // Only the commit mark fails: the run is published, with a warning, and the next
    // recovery marks it.
    let proxy = Proxy::start(&server, move |seen, this| {
        if is_manifest(this)
            && seen
                .iter()
                .any(|s| is_manifest(s) && s.target == this.target)
        {
            Fault::SlowDown
        } else {
            Fault::Pass
        }
    });
    let env = [
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
        ("AWS_MAX_ATTEMPTS", "2"),
    ];
    let warned = ok(&run(&b, "s3://bkt/lake", &env));
    let warnings = warned["warnings"].to_string();
    assert!(
        warnings.contains("the run is published, but its manifest could not be marked committed"),
        "{warnings}"
    );
    assert_eq!(manifests(&lake)[2]["state"], "publishing");
    assert_eq!(intents(&lake).len(), 1);
    assert_same(&snapshot(&lake), &reference, "published, not marked");
    // A recovery that cannot mark it either says so, and succeeds.
    let recovered = server.skewer(&["recover", "s3://bkt/lake"], &env);
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    assert!(
        recovered.stdout.contains(
            "warning: the run is published, but its manifest could not be marked committed"
        ),
        "{}",
        recovered.stdout
    );
    let recovered = server.skewer(&["recover", "s3://bkt/lake"], &[]);
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    assert_settled(&lake, 3);
    assert_same(&snapshot(&lake), &reference, "recovered");
}

#[test]
fn a_hand_edited_intent_is_refused_and_recovery_deletes_nothing() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    gen_dump(&input, 60, 10, &[]);
    let input = input.to_str().unwrap();
    let first = ok(&run_to(&server, "lake", input, &[]));
    let lake = server.bucket().join("lake");
    let outside = server
        .bucket()
        .join("outside/property_name=a/part-20260101T000000.000Z-dead-r0.parquet");
    fs::create_dir_all(outside.parent().unwrap()).unwrap();
    fs::write(&outside, "not skewer's").unwrap();
    let published = objects(&lake);
    let victim = published.keys().next().unwrap().clone();
    let dead = "20260101T000000.000Z-dead";
    let cases = [
        // Undoing a run that never published would delete another run's published object.
        (
            serde_json::json!({"run_id": dead, "keys": [victim]}),
            "is not an object of run",
        ),
        // The intent of one run naming another (a committed one).
        (
            serde_json::json!({"run_id": run_id(&first), "keys": []}),
            "names run",
        ),
        (
            serde_json::json!({"run_id": dead, "keys": [format!("../outside/property_name=a/part-{dead}-r0.parquet")]}),
            "is not key=value",
        ),
        (serde_json::json!({"run": dead}), "not an upload intent"),
    ];
    let intent = lake.join(format!("_skewer/uploading/{dead}.json"));
    for (json, want) in cases {
        fs::write(&intent, serde_json::to_vec(&json).unwrap()).unwrap();
        for args in [
            vec!["recover", "s3://bkt/lake"],
            vec!["run", "-i", input, "-o", "s3://bkt/lake"],
        ] {
            let refused = server.skewer(&args, &[]);
            assert_eq!(refused.code, 1, "{want}: {}", refused.stderr);
            assert!(
                refused
                    .stderr
                    .contains(&format!("s3://bkt/lake/_skewer/uploading/{dead}.json: "))
                    && refused.stderr.contains(want)
                    && refused.stderr.contains("edited or damaged"),
                "{want}: {}",
                refused.stderr
            );
            assert!(objects(&lake) == published, "{want}: {}", args[0]);
            assert_eq!(fs::read(&outside).unwrap(), b"not skewer's");
        }
    }
    fs::remove_file(&intent).unwrap();
    assert_settled(&lake, 1);
}

/// `--mode merge` on S3 reads the stored partitions back from the bucket and merges, with
/// deletes from a delete file in the bucket, exactly as the same runs on disk do.
#[test]
fn a_merge_into_s3_reads_back_and_writes_what_the_same_merge_on_disk_does() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (base, inc) = (tmp.path().join("base"), tmp.path().join("inc"));
    gen_dump(&base, 300, 30, &["--seed", "1"]);
    gen_dump(&inc, 100, 30, &["--seed", "2"]);
    upload_dir(&server, &base, "raw/base");
    upload_dir(&server, &inc, "raw/inc");
    // The generator's first object (FIRST_ID: fmix64(0) is 0) and an id never stored.
    let deleted = "3000000000\n5\n";
    fs::write(tmp.path().join("deleted.txt"), deleted).unwrap();
    fs::write(server.bucket().join("deleted.txt"), deleted).unwrap();

    ok(&run_to(&server, "lake", "s3://bkt/raw/base/", &[]));
    let merged = ok(&server.skewer(
        &[
            "run",
            "--mode",
            "merge",
            "-i",
            "s3://bkt/raw/inc/",
            "-o",
            "s3://bkt/lake",
            "-r",
            "2",
            "--json",
            "--delete-objects",
            "s3://bkt/deleted.txt",
        ],
        &[],
    ));
    let counts = &merged["manifest"]["counts"];
    assert!(counts["stored_rows_read"].as_u64().unwrap() > 0);
    assert_eq!(counts["objects_to_delete"], 2);
    assert_eq!(counts["objects_deleted"], 1);
    assert!(counts["rows_deleted"].as_u64().unwrap() > 0);

    let local = tmp.path().join("local");
    let on_disk = |args: &[&str]| ok(&server.skewer(args, &[]));
    on_disk(&[
        "run",
        "-i",
        base.to_str().unwrap(),
        "-o",
        local.to_str().unwrap(),
        "-r",
        "2",
        "--json",
    ]);
    let local_merge = on_disk(&[
        "run",
        "--mode",
        "merge",
        "-i",
        inc.to_str().unwrap(),
        "-o",
        local.to_str().unwrap(),
        "-r",
        "2",
        "--json",
        "--delete-objects",
        tmp.path().join("deleted.txt").to_str().unwrap(),
    ]);
    assert_eq!(
        local_merge["manifest"]["counts"],
        merged["manifest"]["counts"]
    );
    let rows_of = crate::merge::sorted_rows;
    assert_eq!(rows_of(&server.bucket().join("lake")), rows_of(&local));
    assert!(
        server.skewer(&["inspect", "s3://bkt/lake"], &[]).code == 0,
        "the merged S3 dataset passes inspect"
    );
}

/// `run --hosts` with the dataset in S3: each process stages on its own disk and uploads
/// its files once process 0's intent names them all; the output is the one-process run's,
/// byte for byte. A process killed after its writes leaves nothing published and nothing the
/// next run does not clean up; that run succeeds.
#[test]
fn two_processes_publish_to_s3_what_one_writes() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let nd = tmp.path().join("nd");
    gen_dump(&nd, 2000, 80, &["--files", "2"]);
    upload_dir(&server, &nd, "raw/nd");
    let local_out = tmp.path().join("local");
    let local = ok(&server.skewer(
        &[
            "run",
            "-i",
            nd.to_str().unwrap(),
            "-o",
            local_out.to_str().unwrap(),
            "-r",
            "4",
            "--json",
        ],
        &[],
    ));

    let hosts = crate::cluster::host_file(tmp.path(), 2);
    let both = |fail: Option<&str>| -> Vec<Run> {
        let children: Vec<Child> = (0..2)
            .map(|i| {
                let mut cmd = server.command(
                    &[
                        "run",
                        "-i",
                        "s3://bkt/raw/nd/",
                        "-o",
                        "s3://bkt/lake",
                        "-r",
                        "4",
                        "--json",
                        "--hosts",
                        hosts.to_str().unwrap(),
                        "--process",
                        &i.to_string(),
                        "--connect-timeout",
                        "60",
                    ],
                    &[],
                );
                if let (1, Some(point)) = (i, fail) {
                    cmd.env("SKEWER_FAIL_AT", point);
                }
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                cmd.spawn().unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| finished(c.wait_with_output().unwrap()))
            .collect()
    };

    let failed = both(Some("cluster:reduced"));
    assert_ne!(failed[0].code, 0, "{}", failed[0].stdout);
    assert!(
        failed[0].stderr.contains("process 1 (127.0.0.1:"),
        "{}",
        failed[0].stderr
    );
    assert!(manifests(&server.bucket().join("lake")).is_empty());
    assert!(
        objects(&server.bucket().join("lake")).is_empty(),
        "data objects left"
    );

    // Process 1 says it uploaded but did not: process 0 finds its files missing before its
    // manifest would name them, and takes back its own.
    let lied = both(Some("cluster:no-upload"));
    assert_ne!(lied[0].code, 0, "{}", lied[0].stdout);
    assert!(
        lied[0].stderr.contains("did not upload it there"),
        "{}",
        lied[0].stderr
    );
    assert!(manifests(&server.bucket().join("lake")).is_empty());
    assert!(
        objects(&server.bucket().join("lake")).is_empty(),
        "data objects left"
    );

    let ran = both(None);
    let published = ok(&ran[0]);
    assert_eq!(ran[1].code, 0, "{}", ran[1].stderr);
    let joined: Value = serde_json::from_str(&ran[1].stdout).unwrap();
    assert_eq!(joined["process"], 1);
    assert!(joined["files"].as_u64().unwrap() > 0, "{joined}");
    assert_eq!(local["manifest"]["counts"], published["manifest"]["counts"]);
    let want = data_files(&local_out, &run_id(&local));
    let got = data_files(&server.bucket().join("lake"), &run_id(&published));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    assert!(want == got, "the files differ in content");
    assert!(intents(&server.bucket().join("lake")).is_empty());
    assert_eq!(manifests(&server.bucket().join("lake")).len(), 1);
}
