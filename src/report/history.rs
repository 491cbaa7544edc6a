//! `skewer history show`: volumes per run and the trend of the largest properties.

use std::fmt::Write;

use planner::RunRecord;
use serde::Serialize;

use crate::units::{format_bytes, format_count};

/// One run's totals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunLine {
    pub run_id: String,
    pub started_at: String,
    pub partition: Option<String>,
    pub properties: usize,
    pub rows: u64,
    pub bytes: u64,
    pub reducers: usize,
    /// Actual reducer load max/mean (rows), if the record has reducers.
    pub max_over_mean: Option<f64>,
}

/// One property's rows in each of the last runs shown, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trend {
    pub property: String,
    pub rows: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shown {
    pub runs: Vec<RunLine>,
    /// The runs the trends cover (the last `window`).
    pub trend_runs: Vec<String>,
    pub trends: Vec<Trend>,
}

/// Totals of every run (oldest first) and, over the last `window` runs, the rows of the
/// `top` largest properties of the latest run.
pub fn summarize(runs: &[RunRecord], top: usize, window: usize) -> Shown {
    let lines = runs
        .iter()
        .map(|r| {
            let loads: Vec<u64> = r.reducers.iter().map(|x| x.rows).collect();
            RunLine {
                run_id: r.run_id.clone(),
                started_at: r.started_at.clone(),
                partition: r.partition.clone(),
                properties: r.properties.len(),
                rows: r.properties.values().map(|v| v.rows).sum(),
                bytes: r.properties.values().map(|v| v.bytes).sum(),
                reducers: loads.len(),
                max_over_mean: planner::max_over_mean(&loads),
            }
        })
        .collect();
    let recent = &runs[runs.len().saturating_sub(window.max(1))..];
    let mut largest: Vec<(&String, u64)> = recent
        .last()
        .map(|r| r.properties.iter().map(|(k, v)| (k, v.rows)).collect())
        .unwrap_or_default();
    largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let trends = largest
        .iter()
        .take(top)
        .map(|(name, _)| Trend {
            property: name.to_string(),
            rows: recent
                .iter()
                .map(|r| r.properties.get(*name).map_or(0, |v| v.rows))
                .collect(),
        })
        .collect();
    Shown {
        runs: lines,
        trend_runs: recent.iter().map(|r| r.run_id.clone()).collect(),
        trends,
    }
}

/// `▁▂▃▄▅▆▇█` scaled to the series' own range.
fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = (
        values.iter().copied().min().unwrap_or(0),
        values.iter().copied().max().unwrap_or(0),
    );
    values
        .iter()
        .map(|&v| {
            if hi == lo {
                BARS[3]
            } else {
                BARS[((v - lo) * 7 / (hi - lo)) as usize]
            }
        })
        .collect()
}

/// The report for people.
pub fn table(s: &Shown, source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} runs\n", source, s.runs.len());
    let _ = writeln!(
        out,
        "  {:<26} {:<20} {:<16} {:>10} {:>14} {:>11} {:>9}",
        "run", "started", "partition", "properties", "rows", "bytes", "max/mean"
    );
    for r in &s.runs {
        let _ = writeln!(
            out,
            "  {:<26} {:<20} {:<16} {:>10} {:>14} {:>11} {:>9}",
            r.run_id,
            r.started_at,
            r.partition.as_deref().unwrap_or("-"),
            format_count(r.properties as u64),
            format_count(r.rows),
            format_bytes(r.bytes),
            r.max_over_mean
                .map_or("-".to_string(), |m| format!("{m:.3}"))
        );
    }
    if !s.trends.is_empty() {
        let _ = writeln!(
            out,
            "\nlargest properties over the last {} runs (rows, oldest to newest):",
            s.trend_runs.len()
        );
        for t in &s.trends {
            let first = *t.rows.first().unwrap_or(&0);
            let last = *t.rows.last().unwrap_or(&0);
            let change = if first > 0 {
                format!("{:+.1} %", (last as f64 / first as f64 - 1.0) * 100.0)
            } else {
                "new".to_string()
            };
            let _ = writeln!(
                out,
                "  {:<38} {} {:>14}  {change}",
                crate::units::clip(&t.property, 38),
                sparkline(&t.rows),
                format_count(last)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sparklines_span_their_range() {
        assert_eq!(super::sparkline(&[1, 5, 9]), "▁▄█");
        assert_eq!(super::sparkline(&[4, 4]), "▄▄");
    }
}
