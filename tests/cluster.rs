//! Multi-process runs (`run --hosts`): processes of the real binary on 127.0.0.1 give the
//! one-process bytes; a killed process fails the whole run and a re-run succeeds; processes
//! that differ are refused.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{gen_dump, repo, skewer};

/// A host file of `n` free ports on 127.0.0.1.
pub fn host_file(dir: &Path, n: usize) -> PathBuf {
    // Held together, so that no two are the same; freed for the processes to take.
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let text: String = listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}\n", l.local_addr().unwrap().port()))
        .collect();
    let path = dir.join(format!("hosts-{n}.txt"));
    fs::write(&path, format!("# {n} processes on this machine\n{text}")).unwrap();
    path
}

struct Process {
    child: Child,
}

pub struct Ended {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Starts process `index` of a run: `skewer run <args> --hosts <hosts> --process <index>`.
fn start(index: usize, hosts: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skewer"));
    cmd.arg("run")
        .args(args)
        .args(["--hosts", hosts.to_str().unwrap()])
        .args(["--process", &index.to_string()])
        .args(["--connect-timeout", "60", "--hang-timeout", "20", "-q"])
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("JOB_COMPLETION_INDEX")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Process {
        child: cmd.spawn().expect("the skewer binary starts"),
    }
}

impl Process {
    /// Waits for the process to end, at most `limit` (then kills it and fails the test: a
    /// multi-process run must end in bounded time whatever happens to its processes).
    fn wait(mut self, limit: Duration) -> Ended {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("a process did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        Ended {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

/// Runs `n` processes to their end; `env[i]` is process i's extra environment.
pub fn run_all(n: usize, hosts: &Path, args: &[&str], env: &[Vec<(&str, &str)>]) -> Vec<Ended> {
    let none = Vec::new();
    let started: Vec<Process> = (0..n)
        .map(|i| start(i, hosts, args, env.get(i).unwrap_or(&none)))
        .collect();
    started
        .into_iter()
        .map(|p| p.wait(Duration::from_secs(180)))
        .collect()
}

/// Each Parquet file's bytes by its path, the run id taken out of its name.
fn files_by_path(dataset: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for part in fs::read_dir(dataset).unwrap() {
        let part = part.unwrap().path();
        let name = part.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("property_name=") {
            continue;
        }
        for f in fs::read_dir(&part).unwrap() {
            let f = f.unwrap().path();
            let file = f.file_name().unwrap().to_string_lossy().into_owned();
            // part-<run id>-r<reducer>[-<n>].parquet: the run id differs between runs.
            let rest = file.split_once("-r").map_or(file.as_str(), |(_, r)| r);
            out.push((format!("{name}/{rest}"), fs::read(&f).unwrap()));
        }
    }
    out.sort();
    out
}

fn manifests(dataset: &Path) -> Vec<serde_json::Value> {
    let Ok(dir) = fs::read_dir(dataset.join("_skewer/runs")) else {
        return Vec::new();
    };
    let mut out: Vec<_> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| serde_json::from_slice(&fs::read(e.path()).unwrap()).unwrap())
        .collect();
    out.sort_by_key(|m: &serde_json::Value| m["run_id"].as_str().unwrap().to_string());
    out
}

/// Three input files, each with one unreadable line, so that every process meets a reject.
fn dump(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    gen_dump(&input, 3000, 60, &["--files", "3", "--seed", "16"]);
    for (i, e) in fs::read_dir(&input).unwrap().enumerate() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "ndjson") {
            let mut text = fs::read(&path).unwrap();
            text.extend_from_slice(format!("{{\"vid\": {i}, \"properties\": [\n").as_bytes());
            fs::write(&path, text).unwrap();
        }
    }
    input
}

#[test]
fn three_processes_write_the_bytes_of_one_and_gather_the_rejects() {
    let tmp = tempfile::tempdir().unwrap();
    let input = dump(tmp.path());
    let (one, three) = (tmp.path().join("one"), tmp.path().join("three"));
    let args = |out: &Path| -> Vec<String> {
        [
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-r",
            "5",
        ]
        .map(String::from)
        .to_vec()
    };
    let alone = skewer(
        ["run", "-q"]
            .into_iter()
            .map(String::from)
            .chain(args(&one)),
    );
    assert_eq!(alone.code, 0, "{}", alone.stderr);

    let hosts = host_file(tmp.path(), 3);
    let three_args = args(&three);
    let three_args: Vec<&str> = three_args.iter().map(|s| s.as_str()).collect();
    let ended = run_all(3, &hosts, &three_args, &[]);
    for (i, e) in ended.iter().enumerate() {
        assert_eq!(e.code, Some(0), "process {i}: {}{}", e.stdout, e.stderr);
    }
    assert!(
        ended[0].stdout.contains("cluster  3 processes"),
        "{}",
        ended[0].stdout
    );
    for (i, e) in ended.iter().enumerate().skip(1) {
        assert!(
            e.stdout.contains(&format!("process {i} of 3: run ")),
            "{}",
            e.stdout
        );
    }

    let (a, b) = (files_by_path(&one), files_by_path(&three));
    assert!(!a.is_empty());
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "the same files");
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs from the one-process run's");
    }

    let m = &manifests(&three)[0];
    let processes: std::collections::BTreeSet<u64> = m["reducers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["process"]
                .as_u64()
                .expect("each reducer names its process")
        })
        .collect();
    assert_eq!(processes.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    let alone_m = &manifests(&one)[0];
    for key in ["records_read", "records_rejected", "rows_written"] {
        assert_eq!(m["counts"][key], alone_m["counts"][key], "{key}");
    }
    assert_eq!(m["counts"]["records_rejected"], 3);
    // One rejects file, with the bad line of every input file (read by three processes).
    let run_id = m["run_id"].as_str().unwrap();
    let rejects = fs::read_to_string(three.join(format!("_skewer/rejects/{run_id}.ndjson")))
        .expect("one rejects file");
    let files: std::collections::BTreeSet<String> = rejects
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["file"].to_string())
        .collect();
    assert_eq!(files.len(), 3, "{rejects}");
    // The staging folder went with the publish.
    let staging = three.join("_skewer/staging");
    assert!(
        fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()),
        "staging left behind"
    );
}

#[test]
fn a_process_killed_mid_run_fails_every_process_and_a_rerun_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let input = dump(tmp.path());
    let out = tmp.path().join("out");
    let args = [
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-r",
        "4",
    ];
    let hosts = host_file(tmp.path(), 3);
    // Process 1 dies once its files are written, before it reports them; process 2 dies
    // in another run as soon as it is connected, while the others exchange rows.
    for (victim, point) in [(1, "cluster:reduced"), (2, "cluster:meshed")] {
        let mut env = vec![Vec::new(), Vec::new(), Vec::new()];
        env[victim] = vec![("SKEWER_FAIL_AT", point)];
        let t0 = Instant::now();
        let ended = run_all(3, &hosts, &args, &env);
        for (i, e) in ended.iter().enumerate() {
            assert_ne!(
                e.code,
                Some(0),
                "{point}: process {i} succeeded: {}",
                e.stdout
            );
        }
        assert!(
            ended[victim].stderr.contains(point),
            "{}",
            ended[victim].stderr
        );
        let named = format!("process {victim} (127.0.0.1:");
        // Every process names the one that died (the others hear it from process 0).
        for (i, e) in ended.iter().enumerate().filter(|&(i, _)| i != victim) {
            assert!(
                e.stderr.contains(&named),
                "{point}: process {i}: {}",
                e.stderr
            );
        }
        // Well within the hang timeout: a dead process's links close at once.
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{point}: {:?}",
            t0.elapsed()
        );
        assert!(
            manifests(&out).is_empty(),
            "{point}: something was published"
        );
    }

    let ended = run_all(3, &hosts, &args, &[]);
    for (i, e) in ended.iter().enumerate() {
        assert_eq!(e.code, Some(0), "re-run, process {i}: {}", e.stderr);
    }
    assert_eq!(manifests(&out).len(), 1);
    // The failed runs' staging is gone: removed by the re-run's recovery.
    let left: Vec<_> = fs::read_dir(out.join("_skewer/staging"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn processes_that_differ_are_refused_and_a_missing_one_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    gen_dump(&input, 300, 20, &[]);
    let out = tmp.path().join("out");
    let base = ["-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let hosts = host_file(tmp.path(), 2);

    // Another reducer count on process 1: both refuse, naming the option.
    let p0 = start(0, &hosts, &[&base[..], &["-r", "4"]].concat(), &[]);
    let p1 = start(1, &hosts, &[&base[..], &["-r", "3"]].concat(), &[]);
    let (e0, e1) = (
        p0.wait(Duration::from_secs(60)),
        p1.wait(Duration::from_secs(60)),
    );
    for e in [&e0, &e1] {
        assert_eq!(e.code, Some(1), "{}", e.stderr);
        assert!(
            e.stderr.contains("runs another job: its planning is"),
            "{}",
            e.stderr
        );
    }

    // Another host list on process 1.
    let other = tmp.path().join("other-hosts.txt");
    let text = fs::read_to_string(&hosts).unwrap();
    fs::write(&other, format!("{text}127.0.0.1:1\n")).unwrap();
    let p0 = start(0, &hosts, &base, &[]);
    let p1 = start(1, &other, &base, &[]);
    let (e0, e1) = (
        p0.wait(Duration::from_secs(60)),
        p1.wait(Duration::from_secs(60)),
    );
    assert!(e0.stderr.contains("has another host list"), "{}", e0.stderr);
    assert!(e1.stderr.contains("has another host list"), "{}", e1.stderr);

    // Process 1 never starts: process 0 names it once the connect timeout is out.
    let alone = skewer([
        "run",
        "-q",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--hosts",
        hosts.to_str().unwrap(),
        "--process",
        "0",
        "--connect-timeout",
        "2",
    ]);
    assert_eq!(alone.code, 1);
    assert!(
        alone.stderr.contains("process 1 (127.0.0.1:") && alone.stderr.contains("did not check in"),
        "{}",
        alone.stderr
    );
    assert!(manifests(&out).is_empty());

    // Not yet across processes: refused before anyone waits.
    let merge = skewer(
        [
            &base[..],
            &[
                "--mode",
                "merge",
                "--hosts",
                hosts.to_str().unwrap(),
                "--process",
                "1",
            ],
        ]
        .concat()
        .into_iter()
        .fold(vec!["run"], |mut v, a| {
            v.push(a);
            v
        }),
    );
    assert_eq!(merge.code, 2, "{}", merge.stderr);
    assert!(merge.stderr.contains("cannot run on several processes yet"));
}
