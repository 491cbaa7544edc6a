//! One plan on several processes: the host list, this process's index, and the rendezvous
//! at which every process proves it runs the same job before any row moves.
//!
//! Takes a host file (one `host:port` a line, the same file on every machine), this
//! process's index (`--process`, or `JOB_COMPLETION_INDEX` as Kubernetes Indexed Jobs set it)
//! and a description of the job (skewer's version, the inputs, the options, as named
//! fields). Gives, once every process has checked in with process 0 and their descriptions
//! all match, `Ok`; otherwise an error naming the process and the first field that differs,
//! on every process that got an answer.
//!
//! The rendezvous runs on the hosts' own ports before the exchange starts, so a wrong host
//! list, a stale binary or different options are refused in seconds instead of surfacing as
//! a hang or a different dataset. It is bounded: a process that cannot reach process 0, or
//! a process 0 that does not hear from everyone, fails after the given timeout, naming who is
//! missing. Everything read from the network is untrusted: a check-in is one JSON line of at
//! most [`MAX_HELLO_BYTES`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The environment variable Kubernetes Indexed Jobs set to each pod's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The longest check-in line read from a peer.
pub const MAX_HELLO_BYTES: u64 = 1 << 20;

/// Bumped when the check-in's shape changes: processes of different protocols refuse each
/// other by name instead of misreading each other.
const PROTOCOL: u32 = 1;

/// The processes of a run, in index order: process `i` listens on `addresses[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hosts {
    pub path: PathBuf,
    pub addresses: Vec<String>,
}

impl Hosts {
    /// Reads a host file: one `host:port` a line; blank lines and `#` comments skipped.
    pub fn read(path: &Path) -> Result<Hosts> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Hosts::parse(path, &text)
    }

    /// Parses a host file's `text` (read from `path`, named in errors with the line).
    pub fn parse(path: &Path, text: &str) -> Result<Hosts> {
        let bad = |line: usize, reason: String| Error::Input {
            path: path.to_path_buf(),
            reason: format!("line {line}: {reason}"),
        };
        let mut addresses: Vec<String> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((host, port)) = line.rsplit_once(':') else {
                return Err(bad(n + 1, format!("{line:?} is not host:port")));
            };
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(bad(n + 1, format!("{line:?} has no valid host")));
            }
            if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
                return Err(bad(n + 1, format!("{line:?}: the port must be 1 to 65535")));
            }
            if let Some(first) = addresses.iter().position(|a| a == line) {
                return Err(bad(
                    n + 1,
                    format!("{line:?} is listed twice (first as process {first})"),
                ));
            }
            addresses.push(line.to_string());
        }
        if addresses.is_empty() {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: "lists no host (one host:port a line)".into(),
            });
        }
        Ok(Hosts {
            path: path.to_path_buf(),
            addresses,
        })
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

/// This process's index: `flag` (`--process`) or else `env` (the value of
/// [`INDEX_ENV`]); both given must agree, and the index must name a line of `hosts`.
pub fn process_index(flag: Option<usize>, env: Option<&str>, hosts: &Hosts) -> Result<usize> {
    let from_env = match env.map(str::trim) {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            Error::Config(format!(
                "{INDEX_ENV}={v:?} is not a process index (0, 1, …)"
            ))
        })?),
    };
    let index = match (flag, from_env) {
        (Some(f), Some(e)) if f != e => {
            return Err(Error::Config(format!(
                "--process {f} and {INDEX_ENV}={e} disagree: give one"
            )));
        }
        (Some(i), _) | (None, Some(i)) => i,
        (None, None) => {
            return Err(Error::Config(format!(
                "--hosts needs this process's index: --process I or {INDEX_ENV}"
            )));
        }
    };
    if index >= hosts.len() {
        return Err(Error::Config(format!(
            "process {index} is not in {} ({} hosts: processes 0 to {})",
            hosts.path.display(),
            hosts.len(),
            hosts.len() - 1
        )));
    }
    Ok(index)
}

/// Which process reads each split: `weights[i]` is split `i`'s size; each goes, largest
/// first, to the process with the least assigned so far (ties: the lower index, and among
/// equal splits, the earlier one). Every process computes the same assignment from the same
/// splits, so no list travels; each split is read by exactly one process.
pub fn assign(weights: &[u64], processes: usize) -> Vec<usize> {
    let processes = processes.max(1);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]).then(a.cmp(&b)));
    let mut load = vec![0u64; processes];
    let mut owner = vec![0; weights.len()];
    for i in order {
        let p = (0..processes)
            .min_by_key(|&p| (load[p], p))
            .expect("at least one process");
        load[p] += weights[i];
        owner[i] = p;
    }
    owner
}

/// What a process says of itself at the rendezvous.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Hello {
    protocol: u32,
    process: usize,
    hosts: Vec<String>,
    /// The job's fields (version, inputs, options), by name: every process's must be equal.
    job: BTreeMap<String, String>,
}

/// Process 0's answer: `ok`, or why the run is refused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Answer {
    ok: bool,
    reason: String,
    /// What process 0 sends everyone with an `ok` (the run's plan).
    #[serde(default)]
    payload: String,
}

impl Answer {
    fn refused(reason: &str) -> Answer {
        Answer {
            ok: false,
            reason: reason.to_string(),
            payload: String::new(),
        }
    }
}

/// Listens on `address`, retrying until `deadline` while its name does not resolve yet (a
/// pod's own name in a headless service appears in DNS moments after the pod starts);
/// other errors (the port taken, an address not this machine's) fail at once.
fn bind(address: &str, deadline: Instant) -> std::io::Result<TcpListener> {
    loop {
        let resolved = address.to_socket_addrs().map(|a| a.collect::<Vec<_>>());
        match resolved {
            Ok(addrs) if !addrs.is_empty() => return TcpListener::bind(&addrs[..]),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(_) => return Err(std::io::Error::other("the name resolves to no address")),
            Err(e) => return Err(e),
        }
    }
}

/// How long process 0 waits for a connection's check-in line.
const HELLO_WAIT: Duration = Duration::from_secs(5);

/// What a rendezvous gives every process: the links to the others (process 0 has one to
/// each; every other process, one to process 0) and what process 0 sent with its answer.
#[derive(Debug)]
pub struct Meeting {
    pub control: Control,
    /// Process 0's `payload` (process 0: its own).
    pub payload: String,
}

/// Meets every other process of `hosts` (this one is `index`) and checks that they all run
/// `job`; fails after `timeout` if someone is missing. Once everyone has checked in, process
/// 0 calls `payload` (e.g. to plan the run) and sends what it gives with its answer; if it
/// fails, everyone is told why.
pub fn rendezvous(
    hosts: &Hosts,
    index: usize,
    job: &BTreeMap<String, String>,
    timeout: Duration,
    payload: &mut dyn FnMut() -> Result<String>,
) -> Result<Meeting> {
    let hello = Hello {
        protocol: PROTOCOL,
        process: index,
        hosts: hosts.addresses.clone(),
        job: job.clone(),
    };
    let deadline = Instant::now() + timeout;
    let (links, payload) = if index == 0 {
        coordinate(hosts, &hello, deadline, timeout, payload)?
    } else {
        check_in(hosts, &hello, deadline, timeout)?
    };
    Ok(Meeting {
        control: Control {
            index,
            hosts: hosts.clone(),
            links,
            watched: None,
        },
        payload,
    })
}

fn cluster_error(hosts: &Hosts, process: usize, reason: String) -> Error {
    Error::Cluster {
        process,
        address: hosts.addresses.get(process).cloned().unwrap_or_default(),
        reason,
    }
}

/// Process 0: hears every other process, then answers each (a refusal too, so that no one
/// waits for an answer that will not come).
fn coordinate(
    hosts: &Hosts,
    mine: &Hello,
    deadline: Instant,
    timeout: Duration,
    payload: &mut dyn FnMut() -> Result<String>,
) -> Result<(Vec<Option<Link>>, String)> {
    let listener = bind(&hosts.addresses[0], deadline).map_err(|e| {
        cluster_error(
            hosts,
            0,
            format!("cannot listen on this process's address: {e}"),
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| cluster_error(hosts, 0, format!("cannot listen: {e}")))?;
    let n = hosts.len();
    // Processes that checked in and wait for the verdict.
    let mut heard: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut seen = vec![false; n];
    seen[0] = true;
    // The first reason to refuse the run; those who check in later are told it at once.
    let mut refusal: Option<(usize, String)> = None;
    while let Some(missing) = seen.iter().position(|s| !s) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    if refusal.is_none() {
                        let others = seen[missing + 1..].iter().filter(|s| !**s).count();
                        let more = match others {
                            0 => String::new(),
                            k => format!(" (nor did {k} more)"),
                        };
                        let reason =
                            format!("did not check in within {} s{more}", timeout.as_secs());
                        refusal = Some((missing, reason));
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                refusal.get_or_insert((0, format!("cannot accept a connection: {e}")));
                break;
            }
        };
        // A skewer process sends its check-in as soon as it connects: whoever stays silent
        // (a port scan, a health check) is dropped before it can hold the rendezvous up.
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(left.clamp(Duration::from_millis(1), HELLO_WAIT)));
        let Ok(hello) = read_line::<Hello>(&stream) else {
            continue;
        };
        let problem = differs(mine, &hello, hosts).or_else(|| {
            seen[hello.process].then(|| format!("is process {} a second time", hello.process))
        });
        if let Some(reason) = problem {
            let _ = write_line(&stream, &Answer::refused(&reason));
            if (1..n).contains(&hello.process) {
                seen[hello.process] = true;
            }
            refusal.get_or_insert((hello.process, reason));
            continue;
        }
        seen[hello.process] = true;
        match &refusal {
            Some((p, reason)) => {
                let _ = write_line(&stream, &Answer::refused(&format!("process {p} {reason}")));
            }
            None => heard[hello.process] = Some(stream),
        }
    }
    let outcome = match refusal {
        None => payload().map_err(|e| (0, format!("could not start the run: {e}"))),
        Some(r) => Err(r),
    };
    let answer = match &outcome {
        Ok(payload) => Answer {
            ok: true,
            reason: String::new(),
            payload: payload.clone(),
        },
        Err((p, reason)) => Answer::refused(&format!("process {p} {reason}")),
    };
    for stream in heard.iter().flatten() {
        let _ = write_line(stream, &answer);
    }
    let payload = outcome.map_err(|(p, reason)| cluster_error(hosts, p, reason))?;
    let links = heard
        .into_iter()
        .map(|s| s.map(Link::new).transpose())
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| cluster_error(hosts, 0, format!("cannot keep the links: {e}")))?;
    Ok((links, payload))
}

/// Why `theirs` may not join `mine`'s run (`None`: it may).
fn differs(mine: &Hello, theirs: &Hello, hosts: &Hosts) -> Option<String> {
    if theirs.protocol != PROTOCOL {
        return Some(format!(
            "speaks rendezvous protocol {} where process 0 speaks {PROTOCOL} (another skewer \
             version)",
            theirs.protocol
        ));
    }
    if theirs.process == 0 || theirs.process >= hosts.len() {
        return Some(format!(
            "says it is process {}, not one of 1 to {}",
            theirs.process,
            hosts.len() - 1
        ));
    }
    if theirs.hosts != mine.hosts {
        return Some(format!(
            "has another host list ({} hosts: {}) than process 0 ({} hosts: {})",
            theirs.hosts.len(),
            theirs.hosts.join(", "),
            mine.hosts.len(),
            mine.hosts.join(", ")
        ));
    }
    let keys = mine.job.keys().chain(theirs.job.keys());
    for key in keys {
        let (a, b) = (mine.job.get(key), theirs.job.get(key));
        if a != b {
            let show = |v: Option<&String>| v.map_or("nothing".to_string(), |v| format!("{v:?}"));
            return Some(format!(
                "runs another job: its {key} is {} where process 0's is {}",
                show(b),
                show(a)
            ));
        }
    }
    None
}

/// Every other process: checks in with process 0 and waits for its answer.
fn check_in(
    hosts: &Hosts,
    mine: &Hello,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Vec<Option<Link>>, String)> {
    let coordinator = &hosts.addresses[0];
    let unreachable = |why: String| {
        cluster_error(
            hosts,
            0,
            format!(
                "process {} could not check in with it within {} s: {why}",
                mine.process,
                timeout.as_secs()
            ),
        )
    };
    let stream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(unreachable("no answer".into()));
        }
        let attempt = coordinator
            .to_socket_addrs()
            .and_then(|mut addrs| {
                addrs
                    .next()
                    .ok_or_else(|| std::io::Error::other("the name resolves to no address"))
            })
            .and_then(|addr| TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(5))));
        match attempt {
            Ok(stream) => break stream,
            // Not up yet (or the name not yet in DNS, as with a headless service): retry.
            Err(_) => std::thread::sleep(Duration::from_millis(100).min(left)),
        }
    };
    // Process 0 answers once everyone has checked in (by its own deadline, which may fall a
    // little after this one's) and it has planned the run (recovering an earlier run,
    // sampling the input): the answer is awaited as long again, so that a refusal arrives as
    // itself, not as silence.
    let left = deadline.saturating_duration_since(Instant::now()) + timeout.max(HELLO_WAIT);
    let _ = stream.set_read_timeout(Some(left));
    write_line(&stream, mine).map_err(|e| unreachable(format!("cannot send: {e}")))?;
    let mut link = Link::new(stream).map_err(|e| unreachable(format!("no link: {e}")))?;
    let answer: Answer = link
        .read()
        .map_err(|e| unreachable(format!("no answer: {e}")))?;
    if answer.ok {
        let mut links: Vec<Option<Link>> = (0..hosts.len()).map(|_| None).collect();
        links[0] = Some(link);
        Ok((links, answer.payload))
    } else {
        Err(cluster_error(
            hosts,
            0,
            format!("refused process {}: {}", mine.process, answer.reason),
        ))
    }
}

/// The longest control message read from a peer (a process's report lists its files).
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// One end of a link between two processes: a buffered reader that keeps what it read past
/// a line, and the writing side.
#[derive(Debug)]
struct Link {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Link {
    fn new(stream: TcpStream) -> std::io::Result<Link> {
        stream.set_nonblocking(false)?;
        let _ = stream.set_nodelay(true);
        Ok(Link {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Process 0's answer: with an `ok`, the run's start (its plan and splits), which can be
    /// far longer than a check-in.
    fn read<T: for<'de> Deserialize<'de>>(&mut self) -> std::io::Result<T> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_MESSAGE_BYTES)
            .read_until(b'\n', &mut line)?;
        parse_line(&line)
    }
}

/// A frame on a watched link: a heartbeat, a message, or the clean end of the link.
const BEAT: u8 = b'B';
const MESSAGE: u8 = b'M';
const END: u8 = b'E';
/// Why the sender stops the run (another process failed): the rest of the line.
const FAILED: u8 = b'F';

/// What a watched link's reader passes on.
#[derive(Debug)]
enum Inbound {
    Message(Vec<u8>),
    /// The link is gone: why (the peer stopped, was killed, or went silent).
    Gone(String),
}

/// Called once with the first failure a watched link finds (a process gone or silent),
/// from the thread that found it, while the run may be blocked elsewhere: a driver stops
/// the run from here.
pub type OnFailure = Arc<dyn Fn(&Error) + Send + Sync>;

/// The links between this process and the others, after the rendezvous: messages (plans,
/// reports, the verdict) as JSON lines, and, once watched, heartbeats both ways so that a
/// process that dies or hangs is named within a bounded time.
pub struct Control {
    index: usize,
    hosts: Hosts,
    /// By process: process 0 has a link to every other; the others, one to process 0.
    links: Vec<Option<Link>>,
    watched: Option<Watched>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("index", &self.index)
            .field("processes", &self.hosts.len())
            .field("watched", &self.watched.is_some())
            .finish_non_exhaustive()
    }
}

struct Watched {
    writers: Vec<Option<Arc<std::sync::Mutex<TcpStream>>>>,
    inbox: Vec<Option<crossbeam_channel::Receiver<Inbound>>>,
    stop: Arc<AtomicBool>,
    hang: Duration,
}

impl Control {
    /// This process's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Processes in the run.
    pub fn processes(&self) -> usize {
        self.hosts.len()
    }

    /// Starts watching the links: a heartbeat to each peer every `beat`, and a reader per
    /// link that passes messages on and calls `on_failure` once if a peer closes its link
    /// without ending it, or says nothing for `hang`.
    pub fn watch(&mut self, beat: Duration, hang: Duration, on_failure: OnFailure) {
        let n = self.hosts.len();
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let mut writers: Vec<Option<Arc<std::sync::Mutex<TcpStream>>>> =
            (0..n).map(|_| None).collect();
        let mut inbox: Vec<Option<crossbeam_channel::Receiver<Inbound>>> =
            (0..n).map(|_| None).collect();
        // Every writer, for a reader that finds a failure to tell the other processes.
        type Writers = Vec<Option<Arc<std::sync::Mutex<TcpStream>>>>;
        let all_writers: Arc<std::sync::OnceLock<Writers>> = Arc::default();
        for (p, link) in self.links.iter_mut().enumerate() {
            let Some(link) = link.take() else { continue };
            let Link { reader, writer } = link;
            let _ = reader.get_ref().set_read_timeout(Some(hang));
            // A write to a peer that stopped reading (frozen, cut off) fails after `hang`
            // instead of blocking the writer, and with it the heartbeats and the failure
            // message, for as long as TCP keeps trying.
            let _ = writer.set_write_timeout(Some(hang));
            writers[p] = Some(Arc::new(std::sync::Mutex::new(writer)));
            let (tx, rx) = crossbeam_channel::unbounded();
            inbox[p] = Some(rx);
            let (hosts, stop, failed, on_failure) = (
                self.hosts.clone(),
                stop.clone(),
                failed.clone(),
                on_failure.clone(),
            );
            let others = all_writers.clone();
            std::thread::spawn(move || {
                let gone = read_frames(reader, &tx, hang);
                if let Some(reason) = gone {
                    // The failure is handled before a waiting `recv` hears of it: a driver
                    // stops the run from `on_failure`, with the better message.
                    if !stop.load(Relaxed) && !failed.swap(true, Relaxed) {
                        let address = hosts.addresses.get(p).cloned().unwrap_or_default();
                        let line = format!("process {p} ({address}): {reason}");
                        let error = cluster_error(&hosts, p, reason.clone());
                        // The others hear why before this process stops (process 0 is the
                        // only link most of them have).
                        let writers = others.get().into_iter().flatten().flatten();
                        tell_failed(writers, &line, false);
                        on_failure(&error);
                    }
                    let _ = tx.send(Inbound::Gone(reason));
                }
            });
        }
        let _ = all_writers.set(writers.clone());
        let beating: Vec<_> = writers.iter().flatten().cloned().collect();
        let stop_beats = stop.clone();
        std::thread::spawn(move || {
            while !stop_beats.load(Relaxed) {
                for w in &beating {
                    if let Ok(mut w) = w.lock() {
                        let _ = w.write_all(&[BEAT, b'\n']);
                    }
                }
                std::thread::sleep(beat);
            }
        });
        self.watched = Some(Watched {
            writers,
            inbox,
            stop,
            hang,
        });
    }

    /// Sends `value` to process `to` (watched links only).
    pub fn send<T: Serialize>(&self, to: usize, value: &T) -> Result<()> {
        let w = self.watched_writer(to)?;
        let mut frame = vec![MESSAGE];
        serde_json::to_writer(&mut frame, value)
            .map_err(|e| Error::Bug(format!("a control message does not serialize: {e}")))?;
        frame.push(b'\n');
        let mut w = w
            .lock()
            .map_err(|_| Error::Bug("a link's writer was poisoned".into()))?;
        w.write_all(&frame)
            .map_err(|e| cluster_error(&self.hosts, to, format!("cannot send to it: {e}")))
    }

    /// The next message from process `from`: an error naming it if its link is gone or
    /// nothing comes within `timeout`.
    pub fn recv<T: for<'de> Deserialize<'de>>(&self, from: usize, timeout: Duration) -> Result<T> {
        let inbox = self
            .watched
            .as_ref()
            .and_then(|w| w.inbox.get(from)?.as_ref())
            .ok_or_else(|| Error::Bug(format!("no watched link to process {from}")))?;
        match inbox.recv_timeout(timeout) {
            Ok(Inbound::Message(line)) => parse_line(&line).map_err(|e| {
                cluster_error(
                    &self.hosts,
                    from,
                    format!("sent an unreadable message: {e}"),
                )
            }),
            Ok(Inbound::Gone(reason)) => Err(cluster_error(&self.hosts, from, reason)),
            Err(_) => Err(cluster_error(
                &self.hosts,
                from,
                format!("sent nothing within {} s", timeout.as_secs()),
            )),
        }
    }

    /// Tells every peer that this process stops the run, and why (they fail with it at
    /// once, naming this process), then stops watching: what a process that fails before it
    /// can report does.
    pub fn fail(&self, why: &str) {
        let Some(w) = &self.watched else { return };
        w.stop.store(true, Relaxed);
        tell_failed(w.writers.iter().flatten(), why, true);
    }

    /// Ends every link cleanly (peers then take its close for the end, not a failure) and
    /// stops the heartbeats.
    pub fn close(&self) {
        let Some(w) = &self.watched else { return };
        w.stop.store(true, Relaxed);
        for writer in w.writers.iter().flatten() {
            if let Ok(mut writer) = writer.lock() {
                let _ = writer.write_all(&[END, b'\n']);
                let _ = writer.shutdown(std::net::Shutdown::Write);
            }
        }
    }

    /// How long a watched peer may stay silent before it is taken for hung.
    pub fn hang_timeout(&self) -> Option<Duration> {
        self.watched.as_ref().map(|w| w.hang)
    }

    fn watched_writer(&self, to: usize) -> Result<&Arc<std::sync::Mutex<TcpStream>>> {
        self.watched
            .as_ref()
            .and_then(|w| w.writers.get(to)?.as_ref())
            .ok_or_else(|| Error::Bug(format!("no watched link to process {to}")))
    }
}

impl Drop for Control {
    /// Links not ended by [`Control::close`] are cut, as a process's end cuts them: the
    /// peers take it for a failure and name this process.
    fn drop(&mut self) {
        let Some(w) = &self.watched else { return };
        w.stop.store(true, Relaxed);
        for writer in w.writers.iter().flatten() {
            if let Ok(writer) = writer.lock() {
                let _ = writer.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Sends every link a [`FAILED`] frame saying `why`, never waiting on a writer another
/// thread holds (it may be stuck on the peer that failed); `end`: and closes the links'
/// writing side.
fn tell_failed<'a>(
    writers: impl Iterator<Item = &'a Arc<std::sync::Mutex<TcpStream>>>,
    why: &str,
    end: bool,
) {
    let frame = format!("F{}\n", why.replace('\n', " "));
    for writer in writers {
        if let Ok(mut writer) = writer.try_lock() {
            let _ = writer.write_all(frame.as_bytes());
            if end {
                let _ = writer.shutdown(std::net::Shutdown::Write);
            }
        }
    }
}

/// Reads a watched link's frames until it ends: `None` once the peer ended it cleanly,
/// else why it is gone.
fn read_frames(
    reader: BufReader<TcpStream>,
    tx: &crossbeam_channel::Sender<Inbound>,
    hang: Duration,
) -> Option<String> {
    let mut reader = reader;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_MESSAGE_BYTES)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return Some("closed its link: it stopped or was killed".into()),
            Ok(_) if line.last() != Some(&b'\n') => {
                return Some(if line.len() as u64 >= MAX_MESSAGE_BYTES {
                    "sent a message over 64 MiB".into()
                } else {
                    "closed its link in the middle of a message: it stopped or was killed".into()
                });
            }
            Ok(_) => match line[0] {
                BEAT => {}
                END => return None,
                MESSAGE => {
                    let _ = tx.send(Inbound::Message(line[1..].to_vec()));
                }
                FAILED => {
                    let why = String::from_utf8_lossy(&line[1..]);
                    return Some(format!("stops the run: {}", why.trim_end()));
                }
                other => return Some(format!("sent a frame of unknown kind {other:#04x}")),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Some(format!(
                    "gave no sign of life for {} s: it hangs, or its machine is unreachable",
                    hang.as_secs()
                ));
            }
            Err(e) => return Some(format!("its link failed: {e}")),
        }
    }
}

/// The first bytes of a mesh connection: a tag, so that a connection from anything else is
/// told apart from a late skewer.
const MESH_TAG: &[u8; 8] = b"skewer-x";
/// The longest run token a mesh connection may carry.
const MAX_TOKEN_BYTES: usize = 256;

/// Connects every pair of processes for the exchange (timely's sockets, in process order,
/// this process's own place empty): each process listens on its own address and connects to
/// every lower one. A connection opens with `MESH_TAG`, the run's `token` (what process 0
/// sent at the rendezvous) and the caller's index, and is acknowledged with one byte, so a
/// stranger, or a process of another run on a reused port, is refused instead of joined.
/// Fails after `timeout`, naming a process that did not connect.
pub fn mesh(
    hosts: &Hosts,
    index: usize,
    token: &str,
    timeout: Duration,
) -> Result<Vec<Option<TcpStream>>> {
    let n = hosts.len();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(Error::Bug(format!("a mesh token of {} bytes", token.len())));
    }
    let deadline = Instant::now() + timeout;
    let listener = bind(&hosts.addresses[index], deadline).map_err(|e| {
        cluster_error(
            hosts,
            index,
            format!("cannot listen on this process's address for the exchange: {e}"),
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| cluster_error(hosts, index, format!("cannot listen: {e}")))?;
    let mut hello = MESH_TAG.to_vec();
    hello.push(token.len() as u8);
    hello.extend_from_slice(token.as_bytes());
    hello.extend_from_slice(&(index as u64).to_le_bytes());
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let hello = &hello;
        // Lower processes are connected to from a thread while higher ones are accepted here:
        // either may be the one still starting.
        let lower = scope.spawn(move || -> Result<Vec<TcpStream>> {
            (0..index)
                .map(|p| connect_to(hosts, p, hello, deadline, timeout))
                .collect()
        });
        let mut waiting = n - index - 1;
        while waiting > 0 {
            match listener.accept() {
                Ok((stream, _)) => {
                    let from = accept_from(&stream, token, index, n, deadline);
                    if let Some(p) = from.filter(|&p| sockets[p].is_none()) {
                        sockets[p] = Some(stream);
                        waiting -= 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing = (index + 1..n).find(|&p| sockets[p].is_none());
                        return Err(cluster_error(
                            hosts,
                            missing.unwrap_or(index),
                            format!(
                                "did not connect to process {index} for the exchange within {} s",
                                timeout.as_secs()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(cluster_error(hosts, index, format!("cannot accept: {e}")));
                }
            }
        }
        let connected = lower
            .join()
            .map_err(|_| Error::Bug("the mesh's connecting thread panicked".into()))??;
        for (p, stream) in connected.into_iter().enumerate() {
            sockets[p] = Some(stream);
        }
        Ok(())
    })?;
    for s in sockets.iter().flatten() {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(None);
        s.set_nonblocking(false)
            .map_err(|e| cluster_error(hosts, index, format!("a socket: {e}")))?;
    }
    Ok(sockets)
}

/// Connects to process `p` for the exchange, retrying until `deadline` while it starts.
fn connect_to(
    hosts: &Hosts,
    p: usize,
    hello: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream> {
    let failed = |why: String| {
        cluster_error(
            hosts,
            p,
            format!(
                "could not be connected to for the exchange within {} s: {why}",
                timeout.as_secs()
            ),
        )
    };
    let mut last = String::from("no answer");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(last));
        }
        let attempt = hosts.addresses[p]
            .to_socket_addrs()
            .and_then(|mut a| {
                a.next()
                    .ok_or_else(|| std::io::Error::other("the name resolves to no address"))
            })
            .and_then(|a| TcpStream::connect_timeout(&a, left.min(Duration::from_secs(5))));
        match attempt {
            Ok(mut stream) => {
                let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                let mut ack = [0u8; 1];
                let greeted = stream
                    .write_all(hello)
                    .and_then(|()| stream.read_exact(&mut ack));
                match greeted {
                    Ok(()) if ack[0] == b'Y' => return Ok(stream),
                    Ok(()) => return Err(failed("it refused this process's connection".into())),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50).min(left));
    }
}

/// Reads a mesh connection's greeting: the index of the process that connected, if it is
/// one of this run's higher processes; anything else is dropped.
fn accept_from(
    mut stream: &TcpStream,
    token: &str,
    index: usize,
    n: usize,
    deadline: Instant,
) -> Option<usize> {
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(1), HELLO_WAIT);
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    let mut tag = [0u8; 9];
    stream.read_exact(&mut tag).ok()?;
    if &tag[..8] != MESH_TAG || tag[8] as usize != token.len() {
        return None;
    }
    let mut theirs = vec![0u8; token.len() + 8];
    stream.read_exact(&mut theirs).ok()?;
    let p = u64::from_le_bytes(theirs[token.len()..].try_into().ok()?);
    let ok = &theirs[..token.len()] == token.as_bytes() && p > index as u64 && p < n as u64;
    if !ok {
        let _ = stream.write_all(b"N");
        return None;
    }
    stream.write_all(b"Y").ok()?;
    Some(p as usize)
}

fn parse_line<T: for<'de> Deserialize<'de>>(line: &[u8]) -> std::io::Result<T> {
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the line ended early or is too long",
        ));
    }
    serde_json::from_slice(line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn write_line<T: Serialize>(mut stream: &TcpStream, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    stream.flush()
}

fn read_line<T: for<'de> Deserialize<'de>>(stream: &TcpStream) -> std::io::Result<T> {
    let mut line = Vec::new();
    // One line is all a connection sends before it is answered: nothing is read past it.
    BufReader::new(stream.take(MAX_HELLO_BYTES)).read_until(b'\n', &mut line)?;
    parse_line(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> Result<Hosts> {
        Hosts::parse(Path::new("hosts.txt"), text)
    }

    #[test]
    fn a_host_file_lists_host_port_lines() {
        let h = hosts("# three on loopback\n127.0.0.1:7001\n\n  127.0.0.1:7002  # second\n[::1]:7003\nnode-2.skewer.ns.svc:7000\n").unwrap();
        assert_eq!(
            h.addresses,
            [
                "127.0.0.1:7001",
                "127.0.0.1:7002",
                "[::1]:7003",
                "node-2.skewer.ns.svc:7000"
            ]
        );
        for (text, want) in [
            ("127.0.0.1", "line 1"),
            ("a:1\n\nb:0", "line 3"),
            ("a:1\nb:65536", "port"),
            (":80", "no valid host"),
            ("a:1\na:1", "listed twice (first as process 0)"),
            ("# nothing\n", "lists no host"),
        ] {
            let err = hosts(text).unwrap_err().to_string();
            assert!(
                err.contains("hosts.txt") && err.contains(want),
                "{text:?}: {err}"
            );
        }
    }

    /// Seeded: every split goes to one process; no process gets more than the fair share
    /// plus the largest split; the same input gives the same assignment.
    #[test]
    fn splits_are_assigned_by_size_deterministically() {
        let mut seed = 42u64;
        for round in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 33) as usize % 40;
            let processes = 1 + (seed >> 20) as usize % 6;
            let weights: Vec<u64> = (0..n)
                .map(|i| ((seed >> (i % 30)) % 1000) * if i % 7 == 0 { 50 } else { 1 })
                .collect();
            let owner = assign(&weights, processes);
            assert_eq!(owner, assign(&weights, processes), "round {round}");
            assert_eq!(owner.len(), n);
            assert!(owner.iter().all(|&p| p < processes));
            let total: u64 = weights.iter().sum();
            let largest = weights.iter().copied().max().unwrap_or(0);
            for p in 0..processes {
                let load: u64 = (0..n).filter(|&i| owner[i] == p).map(|i| weights[i]).sum();
                assert!(
                    load <= total / processes as u64 + largest,
                    "round {round}: process {p} has {load} of {total}"
                );
            }
        }
        assert_eq!(assign(&[5, 5, 5, 5], 2), [0, 1, 0, 1]);
        assert_eq!(assign(&[1, 9, 1], 2), [1, 0, 1]);
    }

    #[test]
    fn the_index_comes_from_the_flag_or_the_environment_and_must_name_a_host() {
        let h = hosts("a:1\nb:2\nc:3").unwrap();
        assert_eq!(process_index(Some(2), None, &h).unwrap(), 2);
        assert_eq!(process_index(None, Some("1"), &h).unwrap(), 1);
        assert_eq!(process_index(Some(1), Some("1"), &h).unwrap(), 1);
        for (flag, env, want) in [
            (Some(1), Some("2"), "disagree"),
            (None, None, "--process"),
            (None, Some(""), "--process"),
            (None, Some("x"), "not a process index"),
            (Some(3), None, "processes 0 to 2"),
        ] {
            let err = process_index(flag, env, &h).unwrap_err().to_string();
            assert!(err.contains(want), "{flag:?} {env:?}: {err}");
        }
    }

    /// Free loopback addresses for `n` processes.
    fn loopback(n: usize) -> Hosts {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addresses = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        Hosts {
            path: PathBuf::from("hosts.txt"),
            addresses,
        }
    }

    fn job(reducers: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("version".to_string(), "0.1.0".to_string()),
            ("reducers".to_string(), reducers.to_string()),
        ])
    }

    /// Runs a rendezvous of `jobs.len()` processes on threads; each one's result.
    fn plan() -> Result<String> {
        Ok("the plan".to_string())
    }

    fn meet(
        hosts: &Hosts,
        jobs: Vec<(usize, BTreeMap<String, String>)>,
        timeout: Duration,
    ) -> Vec<Result<Meeting>> {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(i, job)| {
                let hosts = hosts.clone();
                std::thread::spawn(move || rendezvous(&hosts, i, &job, timeout, &mut plan))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn three_processes_with_the_same_job_meet() {
        let h = loopback(3);
        let results = meet(
            &h,
            (0..3).map(|i| (i, job("8"))).collect(),
            Duration::from_secs(20),
        );
        for (i, r) in results.into_iter().enumerate() {
            let meeting = r.unwrap();
            assert_eq!(meeting.payload, "the plan");
            assert_eq!(meeting.control.index(), i);
        }
    }

    #[test]
    fn a_process_with_other_options_is_refused_by_name_on_every_process() {
        let h = loopback(3);
        let results = meet(
            &h,
            vec![(0, job("8")), (1, job("8")), (2, job("4"))],
            Duration::from_secs(20),
        );
        for r in &results {
            let err = r.as_ref().unwrap_err().to_string();
            assert!(
                err.contains("process 2") && err.contains("reducers"),
                "{err}"
            );
            assert!(err.contains("\"4\"") && err.contains("\"8\""), "{err}");
        }
    }

    #[test]
    fn another_host_list_is_refused() {
        let h = loopback(2);
        let mut other = h.clone();
        other.addresses.push("127.0.0.1:1".into());
        let h0 = h.clone();
        let zero = std::thread::spawn(move || {
            rendezvous(&h0, 0, &job("8"), Duration::from_secs(20), &mut plan)
        });
        let one = rendezvous(&other, 1, &job("8"), Duration::from_secs(20), &mut plan);
        let err = one.unwrap_err().to_string();
        assert!(err.contains("another host list"), "{err}");
        assert!(zero.join().unwrap().is_err());
    }

    #[test]
    fn a_missing_process_fails_the_rendezvous_within_its_timeout() {
        let h = loopback(3);
        let start = Instant::now();
        let results = meet(
            &h,
            vec![(0, job("8")), (1, job("8"))],
            Duration::from_secs(2),
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        let zero = results[0].as_ref().unwrap_err().to_string();
        assert!(
            zero.contains("process 2") && zero.contains("did not check in"),
            "{zero}"
        );
        assert!(zero.contains(&h.addresses[2]), "{zero}");
        // Process 1 hears why instead of waiting out its own timeout.
        let one = results[1].as_ref().unwrap_err().to_string();
        assert!(
            one.contains("refused process 1: process 2 did not check in"),
            "{one}"
        );
        // And process 0 missing: the others give up on their own.
        let results = meet(&h, vec![(1, job("8"))], Duration::from_secs(1));
        let err = results[0].as_ref().unwrap_err().to_string();
        assert!(
            err.contains("could not check in") && err.contains(&h.addresses[0]),
            "{err}"
        );
    }

    #[test]
    fn a_stranger_on_the_port_does_not_stop_the_rendezvous() {
        let h = loopback(2);
        let h0 = h.clone();
        let zero = std::thread::spawn(move || {
            rendezvous(&h0, 0, &job("8"), Duration::from_secs(20), &mut plan)
        });
        // A port scan and a garbage line, then the real process.
        let addr = h.addresses[0].clone();
        let mut tries = 0;
        let stranger = loop {
            match TcpStream::connect(&addr) {
                Ok(s) => break s,
                Err(_) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        write_line(&stranger, &"GET / HTTP/1.1").unwrap();
        drop(stranger);
        rendezvous(&h, 1, &job("8"), Duration::from_secs(20), &mut plan).unwrap();
        zero.join().unwrap().unwrap();
    }

    #[test]
    fn a_plan_that_fails_on_process_0_is_told_to_everyone() {
        let h = loopback(2);
        let h0 = h.clone();
        let zero = std::thread::spawn(move || {
            rendezvous(&h0, 0, &job("8"), Duration::from_secs(20), &mut || {
                Err(Error::Config("no history and no input".into()))
            })
        });
        let err = rendezvous(&h, 1, &job("8"), Duration::from_secs(20), &mut plan)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not start the run: no history and no input"),
            "{err}"
        );
        assert!(zero.join().unwrap().is_err());
    }

    type Failures = Arc<std::sync::Mutex<Vec<String>>>;

    /// Processes met and watched: each records the failures its links find.
    fn watched(h: &Hosts, hang: Duration) -> Vec<(Control, Failures)> {
        let jobs = (0..h.len()).map(|i| (i, job("8"))).collect();
        meet(h, jobs, Duration::from_secs(20))
            .into_iter()
            .map(|m| {
                let mut control = m.unwrap().control;
                let failures = Failures::default();
                let seen = failures.clone();
                control.watch(
                    Duration::from_millis(100),
                    hang,
                    Arc::new(move |e: &Error| seen.lock().unwrap().push(e.to_string())),
                );
                (control, failures)
            })
            .collect()
    }

    #[test]
    fn reports_reach_process_0_and_a_clean_end_is_no_failure() {
        let h = loopback(3);
        let all = watched(&h, Duration::from_secs(5));
        for (c, _) in &all[1..] {
            c.send(0, &format!("report of {}", c.index())).unwrap();
        }
        let zero = &all[0].0;
        for p in 1..3 {
            let got: String = zero.recv(p, Duration::from_secs(5)).unwrap();
            assert_eq!(got, format!("report of {p}"));
            zero.send(p, &"published").unwrap();
        }
        for (c, _) in &all[1..] {
            let verdict: String = c.recv(0, Duration::from_secs(5)).unwrap();
            assert_eq!(verdict, "published");
        }
        for (c, _) in &all {
            c.close();
        }
        std::thread::sleep(Duration::from_millis(500));
        for (c, failures) in &all {
            let failures = failures.lock().unwrap();
            assert!(failures.is_empty(), "{}: {failures:?}", c.index());
        }
    }

    #[test]
    fn a_process_that_dies_is_named_by_the_others() {
        let h = loopback(3);
        let mut all = watched(&h, Duration::from_secs(5));
        // Process 2 goes without ending its link, as a killed process does.
        let (two, _) = all.pop().unwrap();
        drop(two);
        let (zero, failures) = &all[0];
        let err = zero
            .recv::<String>(2, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("process 2") && err.contains("stopped or was killed"),
            "{err}"
        );
        let failures = failures.lock().unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains(&h.addresses[2]), "{failures:?}");
    }

    #[test]
    fn a_process_that_hangs_is_named_within_the_hang_timeout() {
        let h = loopback(2);
        let jobs = vec![(0, job("8")), (1, job("8"))];
        let mut met = meet(&h, jobs, Duration::from_secs(20)).into_iter();
        let mut zero = met.next().unwrap().unwrap().control;
        // Process 1 is alive, its socket open, but silent: no heartbeats.
        let _one = met.next().unwrap().unwrap().control;
        let failures = Failures::default();
        let seen = failures.clone();
        let start = Instant::now();
        zero.watch(
            Duration::from_millis(100),
            Duration::from_secs(1),
            Arc::new(move |e: &Error| seen.lock().unwrap().push(e.to_string())),
        );
        let err = zero
            .recv::<String>(1, Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(
            err.contains("process 1") && err.contains("no sign of life for 1 s"),
            "{err}"
        );
        assert_eq!(failures.lock().unwrap().len(), 1);
    }

    /// Three processes connect for the exchange, each pair once, while a stranger and a
    /// process of another run (another token) are refused; the sockets carry bytes both ways.
    #[test]
    fn the_mesh_connects_every_pair_and_refuses_strangers() {
        let h = loopback(3);
        let start = |i: usize| {
            let h = h.clone();
            std::thread::spawn(move || mesh(&h, i, "run-1", Duration::from_secs(20)))
        };
        let mut handles = vec![start(0)];
        // Another run's process 2 knocks on process 0's port before the others start: its
        // greeting is refused.
        let mut wrong = MESH_TAG.to_vec();
        wrong.push(5);
        wrong.extend_from_slice(b"run-2");
        wrong.extend_from_slice(&2u64.to_le_bytes());
        let refused = loop {
            if let Ok(mut s) = TcpStream::connect(&h.addresses[0]) {
                s.write_all(&wrong).unwrap();
                let mut ack = [0u8; 1];
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                break s.read_exact(&mut ack).map(|()| ack[0]);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_ne!(refused.ok(), Some(b'Y'), "another run's process was let in");
        handles.extend([start(1), start(2)]);
        let meshes: Vec<Vec<Option<TcpStream>>> = handles
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        for (i, m) in meshes.iter().enumerate() {
            assert_eq!(m.len(), 3);
            for (j, s) in m.iter().enumerate() {
                assert_eq!(s.is_some(), i != j, "process {i}'s socket to {j}");
            }
        }
        // Process 2 writes to process 0; process 0 reads it on its socket from 2.
        let mut to_0 = meshes[2][0].as_ref().unwrap();
        to_0.write_all(b"rows").unwrap();
        let mut got = [0u8; 4];
        let mut from_2 = meshes[0][2].as_ref().unwrap();
        from_2.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"rows");
    }

    /// A process that never connects is named once the timeout is out.
    #[test]
    fn a_process_missing_from_the_mesh_is_named() {
        let h = loopback(2);
        let err = mesh(&h, 0, "run-1", Duration::from_millis(500)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("process 1 (127.0.0.1:"), "{text}");
        assert!(text.contains("did not connect to process 0"), "{text}");
    }
}
