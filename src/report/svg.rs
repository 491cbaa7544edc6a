//! Pictures of a plan and of a run, as self-contained SVG (or HTML around it).
//!
//! Takes a [`planner::Plan`] (predicted loads) or a run's [`Manifest`] (predicted beside
//! actual); gives one bar per reducer, so a person sees at a glance whether the loads are
//! even. In the plan picture each bar is stacked from the properties routed to it, coloured
//! by property (the twelve largest in their own colours, the rest in greys), with the slot
//! span of every property that covers more than half a reducer drawn above the bars. Every
//! piece carries a `<title>` (property, rows) that browsers show on hover.
//!
//! Each reducer's bar is one `<g class="reducer" data-reducer="i">`, which tests count.

use std::fmt::Write;

use planner::{Plan, UNIT};

use crate::store::meta::Manifest;
use crate::units::format_count;

/// Colours of the largest properties (Tableau 10 and two more); the rest are greys.
const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#d62728",
];
const GREYS: [&str; 2] = ["#c8ccd2", "#aeb4bc"];

/// Plot geometry: the bars live in `[LEFT, LEFT + width) × [top, BOTTOM)`.
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 420.0;
const BAR_AREA: f64 = 300.0;
/// Width of a legend column.
const LEGEND_COLUMN: f64 = 300.0;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Width of one reducer's slot on the x axis.
fn bar_width(reducers: u32) -> f64 {
    (900.0 / f64::from(reducers.max(1))).clamp(4.0, 60.0)
}

fn header(out: &mut String, width: f64, height: f64, title: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">
<title>{}</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>
"##,
        escape(title),
        escape(title)
    );
}

/// The y axis (rows) with a few ticks, and a dashed line at the mean.
fn axis(out: &mut String, max: f64, mean: f64, right: f64, mean_label: &str) {
    let scale = BAR_AREA / max.max(1.0);
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = BOTTOM - v * scale;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{right:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#eeeeee"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555555">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            format_count(v.round() as u64)
        );
    }
    let y = BOTTOM - mean * scale;
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" x2="{right:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#333333" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#333333">{}</text>"##,
        right + 4.0,
        y + 4.0,
        escape(mean_label)
    );
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{:.1}" y2="{BOTTOM}" stroke="#555555"/><line x1="{LEFT}" x2="{right:.1}" y1="{BOTTOM}" y2="{BOTTOM}" stroke="#555555"/>"##,
        BOTTOM - BAR_AREA
    );
}

/// Reducer numbers under the bars (every k-th when there are many).
fn reducer_labels(out: &mut String, reducers: u32, w: f64) {
    let every = (30.0 / w).ceil().max(1.0) as u32;
    for r in (0..reducers).step_by(every as usize) {
        let x = LEFT + (f64::from(r) + 0.5) * w;
        let _ = writeln!(
            out,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555555">{r}</text>"##,
            BOTTOM + 16.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333333">reducer</text>"##,
        LEFT + f64::from(reducers) * w / 2.0,
        BOTTOM + 34.0
    );
}

/// The predicted loads of `plan`: stacked bars by property, heavy properties' spans.
pub fn plan(plan: &Plan) -> String {
    let stats = plan.stats();
    let r = plan.reducers();
    let w = bar_width(r);
    let right = LEFT + f64::from(r) * w;
    let (order, colour) = colours(plan);
    let (pieces, spans) = pieces(plan);
    let max = stats.reducers.iter().map(|l| l.rows).max().unwrap_or(0) as f64;
    let levels = span_levels(&spans);
    let span_rows = levels.iter().copied().max().map_or(0, |l| l + 1) as f64;
    let top_pad = 56.0 + span_rows * 16.0;
    let height = BOTTOM + 50.0 + 18.0 * ((order.len().min(PALETTE.len()) as f64) / 3.0).ceil();
    let width = (right + 140.0).max(LEFT + 3.0 * LEGEND_COLUMN);
    let mut out = String::new();
    header(
        &mut out,
        width,
        height + top_pad - 56.0,
        &format!(
            "plan {} · {} reducers · predicted max/mean load {:.3}",
            &plan.digest()[..12],
            r,
            stats.max_over_mean
        ),
    );
    let _ = writeln!(out, r#"<g transform="translate(0 {:.1})">"#, top_pad - 56.0);
    axis(&mut out, max, stats.mean_rows, right, "mean");
    let scale = BAR_AREA / max.max(1.0);
    plan_bars(&mut out, plan, &stats, &pieces, &colour, w, scale);
    // Spans of the properties that cover more than half a reducer, above the bars.
    plan_spans(&mut out, plan, &spans, &levels, &colour, w);
    reducer_labels(&mut out, r, w);
    plan_legend(&mut out, plan, &order, &colour);
    out.push_str("</g>\n</svg>\n");
    out
}

/// Properties by rows, largest first (ties by name), and each one's colour: the largest
/// get the palette, the rest alternate greys.
fn colours(plan: &Plan) -> (Vec<usize>, Vec<&'static str>) {
    let mut order: Vec<usize> = (0..plan.properties().len()).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&plan.properties()[a], &plan.properties()[b]);
        pb.rows.cmp(&pa.rows).then(pa.name.cmp(&pb.name))
    });
    let mut colour = vec![""; plan.properties().len()];
    for (rank, &i) in order.iter().enumerate() {
        colour[i] = PALETTE.get(rank).copied().unwrap_or(GREYS[i % 2]);
    }
    (order, colour)
}

/// A reducer's pieces: (property index, rows), in line order.
type Pieces = Vec<Vec<(usize, f64)>>;

/// Each reducer's pieces, and the spans (property, start, length) of the properties that
/// cover more than half a reducer.
fn pieces(plan: &Plan) -> (Pieces, Vec<(usize, u64, u64)>) {
    let mut pieces: Pieces = vec![Vec::new(); plan.reducers() as usize];
    let mut spans = Vec::new();
    for (i, slot) in plan.properties().iter().enumerate() {
        if slot.rows == 0 {
            continue;
        }
        let route = plan.slot_route(slot);
        let (start, len) = route.interval();
        for reducer in route.reducers() {
            let r0 = u64::from(reducer) * UNIT;
            let overlap = if len == 0 {
                1.0
            } else {
                ((start + len).min(r0 + UNIT) - start.max(r0)) as f64 / len as f64
            };
            pieces[reducer as usize].push((i, slot.rows as f64 * overlap));
        }
        if len > UNIT / 2 {
            spans.push((i, start, len));
        }
    }
    (pieces, spans)
}

/// Each reducer's bar, stacked from its pieces.
fn plan_bars(
    out: &mut String,
    plan: &Plan,
    stats: &planner::PlanStats,
    pieces: &Pieces,
    colour: &[&str],
    w: f64,
    scale: f64,
) {
    for (reducer, list) in pieces.iter().enumerate() {
        let load = &stats.reducers[reducer];
        let _ = writeln!(
            out,
            r#"<g class="reducer" data-reducer="{reducer}"><title>reducer {reducer}: {} rows predicted from {} properties</title>"#,
            format_count(load.rows),
            load.properties
        );
        let x = LEFT + reducer as f64 * w + w * 0.1;
        let mut y = BOTTOM;
        for &(i, rows) in list {
            let h = rows * scale;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{:.2}" height="{h:.2}" fill="{}"><title>{}: {} rows</title></rect>"#,
                w * 0.8,
                colour[i],
                escape(&plan.properties()[i].name),
                format_count(rows.round() as u64)
            );
        }
        out.push_str("</g>\n");
    }
}

fn plan_spans(
    out: &mut String,
    plan: &Plan,
    spans: &[(usize, u64, u64)],
    levels: &[usize],
    colour: &[&str],
    w: f64,
) {
    for (&(i, start, len), level) in spans.iter().zip(levels) {
        let x0 = LEFT + start as f64 / UNIT as f64 * w;
        let x1 = LEFT + (start + len) as f64 / UNIT as f64 * w;
        let y = BOTTOM - BAR_AREA - 12.0 - *level as f64 * 16.0;
        let name = &plan.properties()[i].name;
        let _ = writeln!(
            out,
            r##"<g class="span"><title>{} spans reducers {:.2} to {:.2}</title><line x1="{x0:.1}" x2="{x1:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="3"/><line x1="{x0:.1}" x2="{x0:.1}" y1="{:.1}" y2="{:.1}" stroke="{}"/><line x1="{x1:.1}" x2="{x1:.1}" y1="{:.1}" y2="{:.1}" stroke="{}"/><text x="{x0:.1}" y="{:.1}" font-size="10" fill="#333333">{}</text></g>"##,
            escape(name),
            start as f64 / UNIT as f64,
            (start + len) as f64 / UNIT as f64,
            colour[i],
            y - 4.0,
            y + 4.0,
            colour[i],
            y - 4.0,
            y + 4.0,
            colour[i],
            y - 3.0,
            escape(&crate::units::clip(
                name,
                ((x1 - x0) / 6.0).max(4.0) as usize
            ))
        );
    }
}

/// The legend: the coloured properties.
fn plan_legend(out: &mut String, plan: &Plan, order: &[usize], colour: &[&str]) {
    for (rank, &i) in order.iter().take(PALETTE.len()).enumerate() {
        let x = LEFT + (rank % 3) as f64 * LEGEND_COLUMN;
        let y = BOTTOM + 56.0 + (rank / 3) as f64 * 18.0;
        let slot = &plan.properties()[i];
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{} ({} rows)</text>"#,
            y - 10.0,
            colour[i],
            x + 16.0,
            escape(&crate::units::clip(&slot.name, 24)),
            format_count(slot.rows)
        );
    }
}

/// Stacks overlapping spans on separate levels (greedy, in line order).
fn span_levels(spans: &[(usize, u64, u64)]) -> Vec<usize> {
    let mut ends: Vec<u64> = Vec::new();
    spans
        .iter()
        .map(|&(_, start, len)| {
            // A little gap, so touching spans do not read as one.
            let level = ends
                .iter()
                .position(|&e| e + UNIT / 8 <= start)
                .unwrap_or(ends.len());
            if level == ends.len() {
                ends.push(0);
            }
            ends[level] = start + len;
            level
        })
        .collect()
}

/// A run's reducers: predicted load (if the manifest has it) beside actual.
pub fn run(manifest: &Manifest) -> String {
    let r = manifest.reducers.len() as u32;
    let w = bar_width(r).max(12.0);
    let right = LEFT + f64::from(r) * w;
    // A merge's load counts the rows it read back, as the plan's prediction does.
    let actual: Vec<f64> = manifest
        .reducers
        .iter()
        .map(|x| (x.rows + x.stored_rows) as f64)
        .collect();
    let predicted: Vec<Option<f64>> = manifest
        .reducers
        .iter()
        .map(|x| x.predicted_rows.map(|p| p as f64))
        .collect();
    let max = actual
        .iter()
        .chain(predicted.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let mean = actual.iter().sum::<f64>() / actual.len().max(1) as f64;
    let loads: Vec<u64> = manifest
        .reducers
        .iter()
        .map(|x| x.rows + x.stored_rows)
        .collect();
    let actual_max_over_mean = planner::max_over_mean(&loads).unwrap_or(1.0);
    let mut out = String::new();
    header(
        &mut out,
        (right + 140.0).max(LEFT + 2.5 * LEGEND_COLUMN),
        BOTTOM + 80.0,
        &format!(
            "run {} · {} reducers · max/mean {:.3} actual, {:.3} predicted",
            manifest.run_id, r, actual_max_over_mean, manifest.plan.predicted_max_over_mean
        ),
    );
    axis(&mut out, max, mean, right, "mean");
    let scale = BAR_AREA / max.max(1.0);
    for (i, (a, p)) in actual.iter().zip(&predicted).enumerate() {
        let x = LEFT + i as f64 * w;
        let _ = writeln!(
            out,
            r#"<g class="reducer" data-reducer="{i}"><title>reducer {i}: {} rows actual{}</title>"#,
            format_count(*a as u64),
            p.map(|p| format!(", {} predicted", format_count(p as u64)))
                .unwrap_or_default()
        );
        if let Some(p) = p {
            let h = p * scale;
            let _ = writeln!(
                out,
                r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{h:.2}" fill="#c6d4e6"/>"##,
                x + w * 0.1,
                BOTTOM - h,
                w * 0.4
            );
        }
        let h = a * scale;
        let _ = writeln!(
            out,
            r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{h:.2}" fill="#4e79a7"/>"##,
            x + w * 0.5,
            BOTTOM - h,
            w * 0.4
        );
        out.push_str("</g>\n");
    }
    reducer_labels(&mut out, r, w);
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{:.1}" width="12" height="12" fill="#c6d4e6"/><text x="{:.1}" y="{:.1}">predicted</text><rect x="{:.1}" y="{:.1}" width="12" height="12" fill="#4e79a7"/><text x="{:.1}" y="{:.1}">actual (rows routed)</text>"##,
        BOTTOM + 46.0,
        LEFT + 16.0,
        BOTTOM + 56.0,
        LEFT + 120.0,
        BOTTOM + 46.0,
        LEFT + 136.0,
        BOTTOM + 56.0
    );
    out.push_str("</svg>\n");
    out
}

/// A page holding `svg`, for `--html`.
pub fn html(svg: &str, title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{}</title></head>\n<body style=\"margin:1em;font-family:sans-serif\">\n{svg}</body></html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags open and close in order (enough to catch a broken template).
    fn balanced(svg: &str) -> bool {
        let mut stack = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').expect("a closed tag");
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name.to_string()) {
                    return false;
                }
            } else if !tag.ends_with('/') && !tag.starts_with('!') && !tag.starts_with('?') {
                stack.push(tag.split_whitespace().next().unwrap().to_string());
            }
        }
        stack.is_empty()
    }

    #[test]
    fn a_plan_picture_has_one_bar_per_reducer_and_is_balanced() {
        let mut volumes = std::collections::BTreeMap::new();
        for (i, rows) in [5_000_000u64, 2_000_000, 700_000, 40, 3].iter().enumerate() {
            volumes.insert(
                format!("p{i}<&>"),
                planner::Volume {
                    rows: *rows,
                    bytes: rows * 20,
                    objects: *rows,
                    ..Default::default()
                },
            );
        }
        let sample = planner::Sample {
            sampled_records: 100,
            estimated_records: 100,
            properties: volumes,
        };
        let plan = planner::plan_from_sample(&sample, &planner::PlanParams::new(6)).unwrap();
        let svg = super::plan(&plan);
        assert!(balanced(&svg), "{svg}");
        assert_eq!(svg.matches(r#"<g class="reducer""#).count(), 6);
        assert!(svg.contains("p0&lt;&amp;&gt;"));
        assert!(svg.matches(r#"<g class="span">"#).count() >= 2);
        assert!(balanced(&html(&svg, "plan")));
    }
}
