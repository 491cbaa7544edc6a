//! Progress: what a run has read and written so far, drawn as two bars on stderr.
//!
//! Takes counters the mappers and reducers bump ([`Progress`], relaxed atomics: a few per
//! split or property, never per row); gives a "read" bar (input bytes, records) and a "write"
//! bar (rows, files), redrawn ten times a second by one thread. Bars go to stderr only, and
//! only when it is a terminal (or when forced, for tests): stdout stays the summary or JSON.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// When to draw the bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Show {
    /// When stderr is a terminal.
    #[default]
    Auto,
    Never,
    /// Even when stderr is not a terminal (`SKEWER_PROGRESS=always`; tests).
    Always,
}

impl Show {
    /// `--quiet` wins; `SKEWER_PROGRESS=always|never` overrides the terminal test.
    pub fn from_env(quiet: bool) -> Show {
        if quiet {
            return Show::Never;
        }
        match std::env::var("SKEWER_PROGRESS").as_deref() {
            Ok("always") => Show::Always,
            Ok("never") => Show::Never,
            _ => Show::Auto,
        }
    }
}

/// The counters.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes_read: AtomicU64,
    pub records_read: AtomicU64,
    /// Rows of the properties written (counted as each starts).
    pub rows_written: AtomicU64,
    pub files_written: AtomicU64,
    /// Rows the mappers have sent (the write bar's length).
    pub rows_routed: AtomicU64,
}

/// The bars, drawn until dropped.
#[derive(Debug)]
pub struct Bars {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts drawing `progress` (of `total_bytes` input) unless `show` says not to.
pub fn start(progress: &Arc<Progress>, total_bytes: u64, show: Show) -> Option<Bars> {
    let target = match show {
        Show::Never => return None,
        Show::Auto => {
            let target = ProgressDrawTarget::stderr_with_hz(10);
            if target.is_hidden() {
                return None;
            }
            target
        }
        Show::Always => ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 10),
    };
    let multi = MultiProgress::with_draw_target(target);
    let style = |template: &str| {
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> ")
    };
    let read = multi.add(ProgressBar::new(total_bytes.max(1)));
    read.set_style(style(
        "read  [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg} {elapsed}",
    ));
    let write = multi.add(ProgressBar::new(1));
    write.set_style(style("write [{bar:30}] {msg}"));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (progress, stop) = (progress.clone(), stop.clone());
        std::thread::Builder::new()
            .name("skewer-progress".into())
            .spawn(move || {
                let update = || {
                    let p = &progress;
                    read.set_position(p.bytes_read.load(Relaxed));
                    read.set_message(format!(
                        "{} records",
                        crate::units::format_count(p.records_read.load(Relaxed))
                    ));
                    let (rows, routed) =
                        (p.rows_written.load(Relaxed), p.rows_routed.load(Relaxed));
                    write.set_length(routed.max(1));
                    write.set_position(rows.min(routed));
                    write.set_message(format!(
                        "{} of {} rows, {} files",
                        crate::units::format_count(rows),
                        crate::units::format_count(routed),
                        crate::units::format_count(p.files_written.load(Relaxed))
                    ));
                };
                while !stop.load(Relaxed) {
                    update();
                    std::thread::sleep(Duration::from_millis(100));
                }
                update();
                read.finish_and_clear();
                write.finish_and_clear();
            })
            .ok()?
    };
    Some(Bars {
        stop,
        thread: Some(thread),
    })
}

/// stderr as a terminal of 100 columns, whatever it is (for `Show::Always`).
#[derive(Debug)]
struct Stderr;

impl indicatif::TermLike for Stderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}A"))
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}B"))
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}C"))
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}D"))
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr(), "{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.write_str("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
