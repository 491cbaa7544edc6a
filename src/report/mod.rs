//! Report: everything skewer shows people and schedulers, in one place: the plan as a table
//! or JSON, a run's one-screen summary or JSON, what recovery did ([`history`]: `skewer
//! history show`; [`svg`]: plan and run pictures). Nothing here decides anything: it formats
//! what the stages and the store return.
//!
//! The plan table lists the heavy properties first and summarises the long tail, then the
//! predicted load on every reducer, then the plan's figures. The plan JSON holds the exact
//! plan (loadable again as a [`Plan`]; each property also carries its `share` and expected
//! `files`) and the predicted figures; it is printed one property or reducer per line so that
//! it diffs well.
pub mod history;
pub mod svg;

use std::fmt::Write as _;

use planner::{Basis, Plan, PlanStats, UNIT};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::history::LoadedHistory;
use crate::units::{clip, format_bytes, format_count};

/// Above this many reducers the table summarises loads instead of listing every reducer.
const MAX_LISTED_REDUCERS: u32 = 32;
const BAR_WIDTH: f64 = 32.0;

/// The plan as a table for a terminal. `top` properties are listed (0: all), the rest summed.
pub fn plan_table(
    plan: &Plan,
    stats: &PlanStats,
    drift: Option<&planner::DriftReport>,
    history: &LoadedHistory,
    top: usize,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_table(&mut out, plan, stats, history, top);
    if let Some(drift) = drift {
        let _ = write!(out, "\ndrift: {}", drift_lines(drift, top, ""));
    }
    out
}

fn write_table(
    out: &mut String,
    plan: &Plan,
    stats: &PlanStats,
    history: &LoadedHistory,
    top: usize,
) -> std::fmt::Result {
    let props = plan.properties();
    let r = plan.reducers();
    let stored: u64 = props.iter().map(|p| p.stored_rows).sum();
    writeln!(
        out,
        "plan {} for {r} reducer{}: {} properties, {} rows{} and {} expected",
        &plan.digest()[..12],
        if r == 1 { "" } else { "s" },
        format_count(props.len() as u64),
        format_count(stats.rows),
        if stored > 0 {
            format!(" ({} of them read back by merges)", format_count(stored))
        } else {
            String::new()
        },
        format_bytes(stats.bytes),
    )?;
    writeln!(out, "basis: {}", describe_basis(plan.basis(), history))?;
    writeln!(
        out,
        "split: {} · spare {} of the reducers for unseen properties · files cut past {}",
        match plan.split() {
            planner::Split::Weighted => "weighted by overlap",
            planner::Split::Uniform => "uniform (Plumbee)",
        },
        plan.spare(),
        format_bytes(plan.target_file_bytes()),
    )?;
    writeln!(out)?;

    write_property_rows(out, props, stats, top)?;
    if r <= MAX_LISTED_REDUCERS {
        write_reducer_bars(out, stats)?;
    } else {
        write_reducer_summary(out, stats)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "predicted max/mean load {:.3} · {} files expected ({:.3} per property, at most {})",
        stats.max_over_mean,
        format_count(stats.files_total),
        stats.files_per_property,
        stats.max_files_per_property,
    )
}

/// One row per property (the first `top`, 0: all), and one for the rest.
fn write_property_rows(
    out: &mut String,
    props: &[planner::PropertySlot],
    stats: &PlanStats,
    top: usize,
) -> std::fmt::Result {
    let shown = if top == 0 {
        props.len()
    } else {
        top.min(props.len())
    };
    let width = props[..shown]
        .iter()
        .map(|p| clip(&p.name, usize::MAX).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(16, 48);
    // From a history of merges: the rows read back are planned too, and shown beside.
    let merges = props.iter().any(|p| p.stored_rows > 0);
    let stored = |rows: u64| {
        if merges {
            format!("  {:>14}", format_count(rows))
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "{:>5}  {:<width$}  {:>14}{}  {:>7}  {:>5}  {:>9}  {:>5}",
        "#",
        "property",
        "expected rows",
        if merges {
            format!("  {:>14}", "read back")
        } else {
            String::new()
        },
        "share",
        "slots",
        "reducers",
        "files"
    )?;
    for (i, (p, files)) in props.iter().zip(&stats.files).take(shown).enumerate() {
        writeln!(
            out,
            "{:>5}  {:<width$}  {:>14}{}  {:>7.3}  {:>5}  {:>9}  {:>5}",
            i + 1,
            clip(&p.name, width),
            format_count(p.rows),
            stored(p.stored_rows),
            p.share(),
            p.slots,
            span(p.offset, p.offset + p.slots - 1),
            files,
        )?;
    }
    if shown < props.len() {
        let tail = &props[shown..];
        let rows: u64 = tail.iter().map(|p| p.rows).sum();
        let stored_rows: u64 = tail.iter().map(|p| p.stored_rows).sum();
        let len: u64 = tail.iter().map(|p| p.len).sum();
        let files: u64 = stats.files[shown..].iter().map(|&f| u64::from(f)).sum();
        let first = tail.iter().map(|p| p.offset).min().unwrap_or(0);
        let last = tail
            .iter()
            .map(|p| p.offset + p.slots - 1)
            .max()
            .unwrap_or(0);
        writeln!(
            out,
            "{:>5}  {:<width$}  {:>14}{}  {:>7.3}  {:>5}  {:>9}  {:>5}",
            "…",
            format!("{} more properties", format_count(tail.len() as u64)),
            format_count(rows),
            stored(stored_rows),
            len as f64 / UNIT as f64,
            "",
            span(first, last),
            format_count(files),
        )?;
    }
    writeln!(out)?;

    Ok(())
}

fn describe_basis(basis: &Basis, history: &LoadedHistory) -> String {
    let source = history.source.display();
    match basis {
        Basis::Empty => format!("no runs in {source}: every property is unseen"),
        Basis::History { runs, window } => describe_window(runs, window, history),
        Basis::Checked {
            runs,
            window,
            estimated_records,
            exact,
            planned_from_input,
        } => format!(
            "{}, checked against {} ({} properties planned from them)",
            describe_window(runs, window, history),
            counts_phrase(*exact, *estimated_records, None),
            format_count(*planned_from_input)
        ),
        Basis::Sample {
            sampled_records,
            estimated_records,
        } => format!(
            "a sample of {} of an estimated {} records",
            format_count(*sampled_records),
            format_count(*estimated_records)
        ),
    }
}

/// The history runs a plan used, for people.
fn describe_window(runs: &[String], window: &planner::Window, history: &LoadedHistory) -> String {
    let source = history.source.display();
    let all = history.history.runs();
    let used = &all[all.len() - runs.len().min(all.len())..];
    let (Some(first), Some(last)) = (used.first(), used.last()) else {
        return format!("no runs in {source}");
    };
    let (first, last) = (&first.started_at, &last.started_at);
    let weights = if runs.len() == 1 {
        String::new()
    } else if window.decay == 1.0 {
        ", equally weighted".to_string()
    } else {
        format!(", each run weighted {} of the next newer", window.decay)
    };
    let of = all.len();
    if runs.len() == 1 {
        format!("the last of {of} runs in {source} ({last})")
    } else {
        format!(
            "the last {} of {of} runs in {source} ({first} to {last}){weights}",
            runs.len()
        )
    }
}

/// What tonight's counts were: exact, or a sample (with the rows it counted, if given).
fn counts_phrase(exact: bool, records: u64, counted_rows: Option<u64>) -> String {
    let records = format_count(records);
    match (exact, counted_rows) {
        (true, _) => format!("the input's exact counts ({records} records)"),
        (false, None) => format!("a sample of the input (~{records} records)"),
        (false, Some(rows)) => format!(
            "a sample of the input ({} rows counted of ~{records} records)",
            format_count(rows)
        ),
    }
}

/// What the check of the input against the history found: a headline, the `top` largest
/// moves (0: all), and the new and vanished properties in sum. Each line starts with
/// `indent`.
pub fn drift_lines(report: &planner::DriftReport, top: usize, indent: &str) -> String {
    let mut out = String::new();
    let counted = counts_phrase(report.exact, report.records, Some(report.counted_rows));
    let n = report.drifted.len();
    let _ = writeln!(
        out,
        "{} propert{} drifted past {} of a reducer's load, against {counted}; the input is {:.2}× \
         the history for the typical property",
        format_count(n as u64),
        if n == 1 { "y" } else { "ies" },
        report.threshold,
        report.scale,
    );
    let shown = if top == 0 { n } else { top.min(n) };
    let width = report.drifted[..shown]
        .iter()
        .map(|d| clip(&d.property, usize::MAX).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 48);
    for d in &report.drifted[..shown] {
        let _ = writeln!(
            out,
            "{indent}  {:<width$}  {:<8}  expected {:>14}  now {:>15}  moves {:.2} reducers",
            clip(&d.property, width),
            d.kind.to_string(),
            format_count(d.expected_rows),
            format!(
                "{}{}",
                if report.exact { "" } else { "~" },
                format_count(d.observed_rows)
            ),
            d.load_moved,
        );
    }
    if shown < n {
        let _ = writeln!(out, "{indent}  … {} more", format_count((n - shown) as u64));
    }
    if report.new_properties + report.vanished_properties > 0 {
        let _ = writeln!(
            out,
            "{indent}{} new properties ({} rows), {} vanished ({} rows expected)",
            format_count(report.new_properties),
            format_count(report.new_rows),
            format_count(report.vanished_properties),
            format_count(report.vanished_rows),
        );
    }
    out
}

fn write_reducer_bars(out: &mut String, stats: &PlanStats) -> std::fmt::Result {
    writeln!(
        out,
        "{:>7}  {:>14}  {:>5}  {:>5}  {:>10}",
        "reducer", "expected rows", "load", "spare", "properties"
    )?;
    let max = stats.max_rows.max(1) as f64;
    for l in &stats.reducers {
        let load = if stats.mean_rows > 0.0 {
            l.rows as f64 / stats.mean_rows
        } else {
            0.0
        };
        let spare = if l.spare > 0.0 {
            format!("{:.2}", l.spare)
        } else {
            String::new()
        };
        let bar = "█".repeat((l.rows as f64 / max * BAR_WIDTH).round() as usize);
        writeln!(
            out,
            "{:>7}  {:>14}  {:>5.3}  {:>5}  {:>10}  {bar}",
            l.reducer,
            format_count(l.rows),
            load,
            spare,
            format_count(u64::from(l.properties)),
        )?;
    }
    Ok(())
}

fn write_reducer_summary(out: &mut String, stats: &PlanStats) -> std::fmt::Result {
    let mut by_load: Vec<_> = stats.reducers.iter().collect();
    by_load.sort_by_key(|l| (l.rows, l.reducer));
    let (min, median, max) = (
        by_load[0],
        by_load[by_load.len() / 2],
        by_load[by_load.len() - 1],
    );
    let load = |rows: u64| {
        if stats.mean_rows > 0.0 {
            rows as f64 / stats.mean_rows
        } else {
            0.0
        }
    };
    writeln!(
        out,
        "expected rows per reducer over {} reducers: min {} (load {:.3}, reducer {}), median {} ({:.3}), max {} ({:.3}, reducer {})",
        stats.reducers.len(),
        format_count(min.rows),
        load(min.rows),
        min.reducer,
        format_count(median.rows),
        load(median.rows),
        format_count(max.rows),
        load(max.rows),
        max.reducer,
    )?;
    let spare: Vec<_> = stats.reducers.iter().filter(|l| l.spare > 0.0).collect();
    if let (Some(first), Some(last)) = (spare.first(), spare.last()) {
        let total: f64 = spare.iter().map(|l| l.spare).sum();
        writeln!(
            out,
            "spare share for unseen properties: {total:.2} reducers on {}",
            span(first.reducer, last.reducer)
        )?;
    }
    Ok(())
}

fn span(first: u32, last: u32) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// The plan and its predicted figures as JSON (see the module docs), newline-terminated.
pub fn plan_json(
    plan: &Plan,
    stats: &PlanStats,
    drift: Option<&planner::DriftReport>,
) -> Result<String> {
    let mut plan_value =
        serde_json::to_value(plan).map_err(|e| Error::Bug(format!("plan to JSON: {e}")))?;
    let entries = plan_value
        .get_mut("properties")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Error::Bug("plan JSON has no properties array".into()))?;
    for ((entry, slot), files) in entries.iter_mut().zip(plan.properties()).zip(&stats.files) {
        if let Value::Object(map) = entry {
            let share = (slot.share() * 1e6).round() / 1e6;
            map.insert("share".into(), json!(share));
            map.insert("files".into(), json!(files));
        }
    }
    let mut report = json!({
        "digest": plan.digest(),
        "plan": plan_value,
        "predicted": {
            "rows": stats.rows,
            "bytes": stats.bytes,
            "mean_rows": stats.mean_rows,
            "max_rows": stats.max_rows,
            "max_over_mean": stats.max_over_mean,
            "files": stats.files_total,
            "files_per_property": stats.files_per_property,
            "max_files_per_property": stats.max_files_per_property,
            "reducers": stats.reducers,
        },
    });
    if let Some(drift) = drift {
        report["drift"] =
            serde_json::to_value(drift).map_err(|e| Error::Bug(format!("drift to JSON: {e}")))?;
    }
    Ok(crate::jsonfmt::to_lines(&report))
}

/// The one-screen summary of a run.
pub fn run_summary(s: &crate::run::RunSummary, dataset: &dyn std::fmt::Display) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = summary_head(&mut out, s, dataset)
        .and_then(|()| summary_volumes(&mut out, s))
        .and_then(|()| summary_work(&mut out, s))
        .and_then(|()| summary_tail(&mut out, s, dataset));
    out
}

/// What was recovered first, and where the run committed.
fn summary_head(
    out: &mut String,
    s: &crate::run::RunSummary,
    dataset: &dyn std::fmt::Display,
) -> std::fmt::Result {
    let m = &s.manifest;
    let mode = match m.mode {
        crate::store::meta::Mode::Overwrite => "overwrite",
        crate::store::meta::Mode::Append => "append",
        crate::store::meta::Mode::Merge => "merge",
        crate::store::meta::Mode::Upsert => "upsert",
    };
    let prefix = m
        .partition
        .as_deref()
        .map(|p| format!(" under {p}"))
        .unwrap_or_default();
    for run in &s.recovery.rolled_forward {
        writeln!(
            out,
            "recovered: finished the interrupted publish of run {run} first"
        )?;
    }
    writeln!(
        out,
        "run {} committed to {}{prefix} ({mode})",
        m.run_id, dataset
    )
}

/// What was read and written.
fn summary_volumes(out: &mut String, s: &crate::run::RunSummary) -> std::fmt::Result {
    let (m, c) = (&s.manifest, &s.manifest.counts);
    let without_version = if c.events_without_version > 0 {
        format!(
            ", {} events without a version",
            format_count(c.events_without_version)
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "read     {} files, {}: {} records, {} rejected{without_version}",
        format_count(m.inputs.len() as u64),
        format_bytes(s.input_bytes),
        format_count(c.records_read),
        format_count(c.records_rejected),
    )?;
    if m.mode.merges() {
        let deleted = if c.objects_to_delete > 0 {
            format!(
                "; {} rows of {} objects deleted ({} of the {} ids asked had no rows)",
                format_count(c.rows_deleted),
                format_count(c.objects_deleted),
                format_count(c.objects_to_delete.saturating_sub(c.objects_deleted)),
                format_count(c.objects_to_delete),
            )
        } else {
            String::new()
        };
        let replaced = if m.mode == crate::store::meta::Mode::Upsert {
            format!(
                "; {} stored rows replaced by the input's histories",
                format_count(c.rows_replaced)
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "merged   {} rows read back from {} partitions{replaced}{deleted}",
            format_count(c.stored_rows_read),
            format_count(m.partitions.len() as u64),
        )?;
    }
    writeln!(
        out,
        "wrote    {} rows ({} duplicates dropped) of {} properties into {} files, {}",
        format_count(c.rows_written),
        format_count(c.duplicates_dropped),
        format_count(s.properties as u64),
        format_count(m.files.len() as u64),
        format_bytes(s.bytes_written),
    )?;
    writeln!(
        out,
        "files    {:.3} per property, at most {}; {} replaced",
        s.files_per_property,
        s.max_files_per_property,
        format_count(m.replaced.len() as u64),
    )
}

/// Where the time went, the plan and how even the loads were.
fn summary_work(out: &mut String, s: &crate::run::RunSummary) -> std::fmt::Result {
    let m = &s.manifest;
    let t = &m.timings;
    let secs = s.wall.as_secs_f64();
    writeln!(
        out,
        "phases   plan {:.1} s, map {:.1} s, reduce {:.1} s, publish {:.1} s",
        t.plan_ms as f64 / 1e3,
        t.map_ms as f64 / 1e3,
        t.reduce_ms as f64 / 1e3,
        t.publish_ms as f64 / 1e3
    )?;
    writeln!(
        out,
        "time     {secs:.1} s, {} rows/s, {}/s read",
        format_count((m.counts.rows_exploded as f64 / secs.max(1e-9)) as u64),
        format_bytes((s.input_bytes as f64 / secs.max(1e-9)) as u64),
    )?;
    let source = match &s.plan_source {
        crate::run::PlanSource::History { dir, runs } => {
            let noun = if *runs == 1 { "run" } else { "runs" };
            format!("{runs} history {noun} in {dir}")
        }
        crate::run::PlanSource::Sample { sampled, estimated } => format!(
            "a sample of {} of ~{} input records (no history yet)",
            format_count(*sampled),
            format_count(*estimated)
        ),
        crate::run::PlanSource::Given { what } => what.clone(),
    };
    writeln!(
        out,
        "plan     {} for {} reducers, from {source}",
        &m.plan.digest[..12],
        m.plan.reducers
    )?;
    if let Some(drift) = &s.drift {
        write!(out, "drift    {}", drift_lines(drift, 5, "        "))?;
    }
    writeln!(
        out,
        "balance  max/mean reducer load {:.3} predicted, {:.3} actual",
        s.predicted_max_over_mean, s.actual_max_over_mean
    )?;
    let processes = m.reducers.iter().filter_map(|r| r.process).max();
    if let Some(last) = processes {
        let mut rows = vec![0u64; last as usize + 1];
        for r in &m.reducers {
            if let Some(p) = r.process {
                rows[p as usize] += r.rows;
            }
        }
        let rows: Vec<String> = rows.iter().map(|&n| format_count(n)).collect();
        let processes = last + 1;
        writeln!(
            out,
            "cluster  {processes} process{}; rows reduced by each: {}",
            if processes == 1 { "" } else { "es" },
            rows.join(", ")
        )?;
    }
    Ok(())
}

/// What a process other than 0 of a multi-process run says when the run is published.
pub fn joined_summary(j: &crate::run::Joined) -> String {
    format!(
        "process {} of {}: run {} published by process 0\n\
         read     {} splits: {} records, {} rows routed\n\
         reduced  {} rows on reducers {:?} into {} files, {}, in {:.1} s\n",
        j.process,
        j.processes,
        j.run_id,
        format_count(j.splits as u64),
        format_count(j.records),
        format_count(j.rows_routed),
        format_count(j.rows_reduced),
        j.reducers,
        format_count(j.files as u64),
        format_bytes(j.bytes),
        j.wall_ms as f64 / 1e3
    )
}

/// Spilling, where the rejects are, and the warnings.
fn summary_tail(
    out: &mut String,
    s: &crate::run::RunSummary,
    dataset: &dyn std::fmt::Display,
) -> std::fmt::Result {
    let (m, c) = (&s.manifest, &s.manifest.counts);
    if s.spilled_bytes > 0 {
        writeln!(
            out,
            "memory   spilled {} to disk to stay within the memory limit",
            format_bytes(s.spilled_bytes)
        )?;
    }
    if c.records_rejected + c.versions_rejected > 0 {
        writeln!(
            out,
            "rejects  {}/_skewer/rejects/{}.ndjson",
            dataset.to_string().trim_end_matches('/'),
            m.run_id
        )?;
    }
    for w in &s.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// What recovery did, one line per run.
pub fn recovery(done: &crate::store::meta::Recovery, dataset: &dyn std::fmt::Display) -> String {
    let mut out = String::new();
    for run in &done.rolled_forward {
        let _ = writeln!(
            out,
            "finished the interrupted publish of run {run} in {}",
            dataset
        );
    }
    for run in &done.discarded {
        let _ = writeln!(
            out,
            "removed the unpublished files of run {run} (it stopped before publishing)"
        );
    }
    if out.is_empty() {
        let _ = writeln!(out, "{dataset}: nothing to recover");
    }
    for w in &done.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The run's manifest and figures as JSON.
pub fn run_json(s: &crate::run::RunSummary) -> Result<String> {
    let manifest = serde_json::to_value(&s.manifest)
        .map_err(|e| Error::Bug(format!("manifest to JSON: {e}")))?;
    let report = json!({
        "manifest": manifest,
        "wall_s": s.wall.as_secs_f64(),
        "properties": s.properties,
        "bytes_written": s.bytes_written,
        "input_bytes": s.input_bytes,
        "predicted_max_over_mean": s.predicted_max_over_mean,
        "actual_max_over_mean": s.actual_max_over_mean,
        "files_per_property": s.files_per_property,
        "max_files_per_property": s.max_files_per_property,
        "drift": s.drift,
        "warnings": s.warnings,
    });
    Ok(crate::jsonfmt::to_lines(&report))
}
