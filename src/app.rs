//! The subcommands as library calls: a plain, validated config in, output written to the
//! caller's writer. `main.rs` only parses arguments into these configs and maps errors to
//! exit codes; tests call these directly or through the binary.

use std::io::Write;
use std::path::PathBuf;

use planner::PlanParams;

use crate::error::{Error, Result};
use crate::{history, report};

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// For people: tables and summaries.
    #[default]
    Table,
    /// For machines: one JSON document on stdout.
    Json,
}

/// `skewer plan`: show the allocation a history gives.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    /// A history directory (a dataset's `_skewer/history`) or a file of run records, local or
    /// `s3://`.
    pub history: crate::store::Location,
    /// Tonight's input to check the history against (none: plan from the history alone).
    pub inputs: Vec<String>,
    /// An S3-compatible endpoint for an `s3://` history.
    pub endpoint: Option<String>,
    /// Draw the predicted loads into these files.
    pub svg: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub params: PlanParams,
    /// Properties listed before the table sums up the tail (0: all).
    pub top: usize,
    pub format: OutputFormat,
}

/// Reads the history, plans (checked against the input, if given, as a run would), and writes
/// the table or JSON to `out`.
pub fn plan(config: &PlanConfig, out: &mut dyn Write) -> Result<()> {
    let stores = crate::store::Stores::with_endpoint(config.endpoint.clone());
    let loaded = history::load_from(&config.history, &stores)?;
    let (plan, drift) = if config.inputs.is_empty() {
        let plan =
            planner::plan(&loaded.history, &config.params).map_err(crate::run::plan_error)?;
        (plan, None)
    } else {
        let files = crate::input::discover(&config.inputs, &stores)?;
        let splits = crate::input::splits(&files, crate::input::SPLIT_BYTES)?;
        crate::run::plan_checked(&loaded.history, &files, &splits, &config.params)?
    };
    let stats = plan.stats();
    draw(
        || crate::report::svg::plan(&plan),
        &format!("plan {}", &plan.digest()[..12]),
        config.svg.as_deref(),
        config.html.as_deref(),
    )?;
    let text = match config.format {
        OutputFormat::Table => {
            report::plan_table(&plan, &stats, drift.as_ref(), &loaded, config.top)
        }
        OutputFormat::Json => report::plan_json(&plan, &stats, drift.as_ref())?,
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)
}

/// Writes a picture as SVG and/or as an HTML page, if asked to.
fn draw(
    svg: impl FnOnce() -> String,
    title: &str,
    svg_file: Option<&std::path::Path>,
    html_file: Option<&std::path::Path>,
) -> Result<()> {
    if svg_file.is_none() && html_file.is_none() {
        return Ok(());
    }
    let picture = svg();
    if let Some(path) = svg_file {
        std::fs::write(path, &picture).map_err(|e| Error::io(path, e))?;
    }
    if let Some(path) = html_file {
        std::fs::write(path, crate::report::svg::html(&picture, title))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// `skewer run`: runs the job and writes its summary (or JSON) to `out`.
pub fn run(
    config: &crate::run::RunConfig,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let text = match (crate::run::run_any(config)?, format) {
        (crate::run::Ran::Published(summary), OutputFormat::Table) => {
            report::run_summary(&summary, &config.output)
        }
        (crate::run::Ran::Published(summary), OutputFormat::Json) => report::run_json(&summary)?,
        (crate::run::Ran::Joined(joined), OutputFormat::Table) => report::joined_summary(&joined),
        (crate::run::Ran::Joined(joined), OutputFormat::Json) => {
            let mut text = serde_json::to_string_pretty(&joined)
                .map_err(|e| Error::Bug(format!("a summary: {e}")))?;
            text.push('\n');
            text
        }
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)
}

/// `skewer gen`: writes a synthetic dump and says what it wrote.
pub fn generate(config: &crate::generate::GenConfig, out: &mut dyn Write) -> Result<()> {
    let t0 = std::time::Instant::now();
    let expected = crate::generate::generate(config)?;
    // With increments, what is described is the final state.
    let dir = if config.increments > 0 {
        config.out.join("final")
    } else {
        config.out.clone()
    };
    if config.increments > 0 {
        let text = format!(
            "wrote a base dump and {} increments under {} (base/, inc-001/ …); the final \
             state as one dump in final/:\n",
            config.increments,
            config.out.display()
        );
        out.write_all(text.as_bytes()).map_err(Error::Output)?;
    }
    let bytes: u64 = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('_'))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let text = format!(
        "wrote {} objects, {} version rows of {} properties into {} files, {}, in {:.1} s\n\
         expected rows and checksum: {}\n",
        crate::units::format_count(expected.records),
        crate::units::format_count(expected.rows),
        expected.properties,
        expected.files,
        crate::units::format_bytes(bytes),
        t0.elapsed().as_secs_f64(),
        dir.join(crate::generate::EXPECTED_FILE).display(),
    );
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)
}

/// `skewer recover`: rolls interrupted publishes forward and removes unpublished staging.
pub fn recover(
    dataset: &crate::store::Location,
    endpoint: Option<String>,
    out: &mut dyn Write,
) -> Result<()> {
    let stores = crate::store::Stores::with_endpoint(endpoint);
    let store = crate::store::open_existing(dataset, &stores)?;
    let lock = store.lock("recover")?;
    let done = store.recover()?;
    drop(lock);
    let text = report::recovery(&done, dataset);
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)
}

/// `skewer replay`: runs each date and prints what happened to each; `Err` (exit 1) if a
/// date failed (missing dates are not failures).
pub fn replay(
    config: &crate::replay::ReplayConfig,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let results = crate::replay::replay(config)?;
    let text = match format {
        OutputFormat::Table => crate::replay::table(&results),
        OutputFormat::Json => {
            let value = serde_json::json!({ "dates": results });
            crate::jsonfmt::to_lines(&value)
        }
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)?;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.outcome, crate::replay::Outcome::Failed { .. }))
        .map(|r| r.date.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Mismatch(format!(
            "replay: {} of {} dates failed: {}",
            failed.len(),
            results.len(),
            failed.join(", ")
        )))
    }
}

/// `skewer history show`: a dataset's (or a history folder's) runs and trends.
pub fn history_show(
    location: &crate::store::Location,
    endpoint: Option<String>,
    top: usize,
    window: usize,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let stores = crate::store::Stores::with_endpoint(endpoint);
    // A dataset's own history, else the location itself.
    let has_own = crate::store::folder(location, &stores)?.is_folder("_skewer/history/")?;
    let path = if has_own {
        location.join("_skewer/history")
    } else {
        location.clone()
    };
    let loaded = history::load_from(&path, &stores)?;
    let shown = crate::report::history::summarize(loaded.history.runs(), top, window);
    let text = match format {
        OutputFormat::Table => crate::report::history::table(&shown, &path.to_string()),
        OutputFormat::Json => {
            let value = serde_json::to_value(&shown)
                .map_err(|e| Error::Bug(format!("history to JSON: {e}")))?;
            crate::jsonfmt::to_lines(&value)
        }
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)
}

/// `skewer inspect`: what to look at and how to print it.
#[derive(Clone, Debug)]
pub struct InspectConfig {
    pub dataset: crate::store::Location,
    pub endpoint: Option<String>,
    /// Properties listed in the table (0: all).
    pub top: usize,
    pub format: OutputFormat,
    /// A run (or "latest") to draw into `svg`/`html`.
    pub run: Option<String>,
    pub svg: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

/// Inspects a dataset and prints the report; `Err` (exit 1) if a check failed.
pub fn inspect(config: &InspectConfig, out: &mut dyn Write) -> Result<()> {
    let stores = crate::store::Stores::with_endpoint(config.endpoint.clone());
    let store = crate::store::open_existing(&config.dataset, &stores)?;
    if let Some(run) = &config.run {
        let manifests = store.manifests()?;
        let manifest = if run == "latest" {
            manifests
                .iter()
                .rev()
                .find(|m| m.state == crate::store::meta::STATE_COMMITTED)
        } else {
            manifests.iter().find(|m| &m.run_id == run)
        }
        .ok_or_else(|| {
            Error::Config(format!(
                "{}: no run {run:?} (runs: {})",
                config.dataset,
                manifests
                    .iter()
                    .map(|m| m.run_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        draw(
            || crate::report::svg::run(manifest),
            &format!("run {}", manifest.run_id),
            config.svg.as_deref(),
            config.html.as_deref(),
        )?;
    }
    let report = crate::inspect::inspect(&*store, &config.dataset.to_string())?;
    let text = match config.format {
        OutputFormat::Table => crate::inspect::table(&report, config.top),
        OutputFormat::Json => {
            let value = serde_json::to_value(&report)
                .map_err(|e| Error::Bug(format!("inspect report to JSON: {e}")))?;
            crate::jsonfmt::to_lines(&value)
        }
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)?;
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.check)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Mismatch(format!(
            "{}: failed {}",
            config.dataset,
            failed.join(", ")
        )))
    }
}

/// `skewer checksum`: the dataset's row count and checksum, optionally checked against a
/// generated dump's answer key.
pub fn checksum(
    dataset: &std::path::Path,
    expected: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<()> {
    let sum = crate::checksum::dataset(dataset)?;
    let mut text = format!(
        "{{\"rows\": {}, \"sum\": \"{:016x}\"}}\n",
        sum.rows, sum.sum
    );
    let mut mismatch = None;
    if let Some(path) = expected {
        let dir = if path.is_dir() {
            path
        } else {
            path.parent().unwrap_or(path)
        };
        let want = crate::generate::read_expected(dir)?;
        if want.checksum == sum {
            text.push_str("matches the generator's rows and checksum\n");
        } else {
            mismatch = Some(format!(
                "{}: {} rows, checksum {:016x}; the generator wrote {} rows, checksum {:016x}",
                dataset.display(),
                sum.rows,
                sum.sum,
                want.checksum.rows,
                want.checksum.sum
            ));
        }
    }
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)?;
    match mismatch {
        Some(msg) => Err(Error::Mismatch(msg)),
        None => Ok(()),
    }
}
