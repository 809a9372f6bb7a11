//! `liveview-bench charts FILE`: the main comparisons of a results file as
//! SVG charts, for `docs/benchmarks.md`: latency and server CPU per call
//! against connections (saturated, and at a fixed rate), memory per idle
//! connection, fan-out p99 against subscribers; the floor, the memory layer, the Redis layer and Django
//! LiveView side by side.
//!
//! Drawn with `plotters`' SVG backend alone: text is written as SVG text
//! (the reader's sans-serif font), so no font is needed to draw.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::idle_scale::IdleScale;
use crate::report::{self, DJANGO, FLOOR, MEMORY, REDIS, Run};

/// Width and height of every chart, pixels.
const SIZE: (u32, u32) = (760, 440);

/// The servers in the order of the tables, each with its colour.
const SERVERS: [(&str, RGBColor); 4] = [
    (FLOOR, RGBColor(110, 110, 110)),
    (MEMORY, RGBColor(31, 119, 180)),
    (REDIS, RGBColor(214, 39, 40)),
    (DJANGO, RGBColor(44, 160, 44)),
];

/// The Redis layer across two processes.
const TWO_PROCESSES: RGBColor = RGBColor(255, 127, 14);

/// A line of a chart: its legend, colour and points, and at some points
/// a range drawn as a vertical bar (`x`, low, high).
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    ranges: Vec<(f64, f64, f64)>,
}

/// `liveview-bench charts FILE [--idle-scale FILE] [--out DIR]`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut file = None;
    let mut idle_scale = None;
    let mut out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks");
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--idle-scale" => idle_scale = Some(PathBuf::from(value()?)),
            "--out" => out = PathBuf::from(value()?),
            other if file.is_none() && !other.starts_with('-') => {
                file = Some(PathBuf::from(other));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let file = file.ok_or("charts needs a results file")?;
    let run: Run = read_json(&file)?;
    let scale: Option<IdleScale> = idle_scale.as_deref().map(read_json).transpose()?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, written) in draw_all(&run, scale.as_ref(), &out)? {
        println!(
            "{}: {}",
            out.join(name).display(),
            if written {
                "written"
            } else {
                "nothing to draw"
            }
        );
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every chart of `run` into `dir`: `(file name, whether it had data)`.
pub(crate) fn draw_all(
    run: &Run,
    scale: Option<&IdleScale>,
    dir: &Path,
) -> Result<Vec<(&'static str, bool)>, String> {
    let source = format!(
        "{} run of {}, commit {}{}, harness version {}",
        run.mode,
        run.started,
        short(&run.provenance.commit),
        if run.provenance.dirty { " (dirty)" } else { "" },
        run.provenance.harness_version
    );
    let mut done = Vec::new();

    let latency = per_server(run, |s, c| {
        if c == 1 {
            s.round_trip.as_ref().map(|l| l.p50_us)
        } else {
            s.throughput_at(c).map(|t| t.latency.p50_us)
        }
    });
    done.push((
        "latency.svg",
        line_chart(
            &dir.join("latency.svg"),
            "Latency of a call (p50) against connections",
            &source,
            ("connections calling at once", "p50, µs"),
            &latency,
            SeriesLabelPosition::UpperLeft,
        )?,
    ));

    let mut cpu = per_server(run, |s, c| {
        s.throughput_at(c).and_then(|t| t.cpu_per_call())
    });
    for line in &mut cpu {
        let Some(s) = SERVERS
            .iter()
            .find(|(n, _)| report::label(n) == line.label)
            .and_then(|(n, _)| run.server(n))
        else {
            continue;
        };
        line.ranges = cpu_per_call_ranges(&s.throughput);
    }
    done.push((
        "cpu-per-call.svg",
        line_chart(
            &dir.join("cpu-per-call.svg"),
            "Server CPU per call: median of slices (bars: lowest to highest)",
            &source,
            ("connections calling at once", "server CPU per call, µs"),
            &cpu,
            SeriesLabelPosition::UpperLeft,
        )?,
    ));

    // At the fixed rate: server CPU per call, each server's load generator
    // CPU (its busiest slice) in the legend, to show its headroom.
    let fixed: Vec<Line> = SERVERS
        .iter()
        .filter_map(|(name, color)| {
            let s = run.server(name).filter(|s| !s.fixed_rate.is_empty())?;
            let mut ts: Vec<&report::Throughput> = s.fixed_rate.iter().collect();
            ts.sort_by_key(|t| t.connections);
            let points = ts
                .iter()
                .filter_map(|t| Some((t.connections as f64, t.cpu_per_call()?)))
                .collect();
            let ranges = cpu_per_call_ranges(ts.iter().copied());
            let busiest = ts
                .iter()
                .map(|t| t.load_generator_cpu_percent_spread.max)
                .fold(0.0, f64::max);
            Some(Line {
                label: format!(
                    "{}, load generator at most {busiest:.0}% of a core",
                    report::label(name)
                ),
                color: *color,
                points,
                ranges,
            })
        })
        .collect();
    let share = run
        .fixed_rate_fraction()
        .map_or("a share".to_owned(), |f| format!("{:.0}%", 100.0 * f));
    done.push((
        "fixed-rate.svg",
        line_chart(
            &dir.join("fixed-rate.svg"),
            &format!("Server CPU per call at {share} of the floor's saturated rate"),
            &source,
            ("connections calling at once", "server CPU per call, µs"),
            &fixed,
            SeriesLabelPosition::UpperLeft,
        )?,
    ));

    let fan_out: Vec<Line> = run
        .fan_out_series()
        .into_iter()
        .map(|(label, fs)| {
            let color = if label.contains("two processes") {
                TWO_PROCESSES
            } else {
                SERVERS
                    .iter()
                    .find(|(n, _)| label.starts_with(report::label(n)))
                    .map_or(BLACK, |(_, c)| *c)
            };
            let mut done: Vec<&&report::FanOut> = fs.iter().filter(|f| f.rounds > 0).collect();
            done.sort_by_key(|f| f.subscribers);
            let points = done
                .iter()
                .map(|f| (f.subscribers as f64, f.last_delivery.p99_us / 1000.0))
                .collect();
            let ranges = done
                .iter()
                .filter_map(|f| {
                    let b = f.block_p99()?;
                    Some((f.subscribers as f64, b.min / 1000.0, b.max / 1000.0))
                })
                .collect();
            // The rounds behind each point, in the legend.
            let rounds: Vec<String> = done.iter().map(|f| report::thousands(f.rounds)).collect();
            let label = if rounds.is_empty() {
                label
            } else {
                format!("{label}: {} rounds", rounds.join(", "))
            };
            Line {
                label,
                color,
                points,
                ranges,
            }
        })
        .collect();
    done.push((
        "fan-out.svg",
        line_chart(
            &dir.join("fan-out.svg"),
            "Fan-out p99 until the last subscriber (bars: p99 of blocks of rounds)",
            &source,
            ("subscribers", "last subscriber p99, ms"),
            &fan_out,
            SeriesLabelPosition::LowerRight,
        )?,
    ));

    let mut bars: Vec<(String, RGBColor, f64)> = Vec::new();
    for (name, color) in SERVERS {
        let idle = run
            .server(name)
            .and_then(|s| s.idle.iter().max_by_key(|i| i.connections));
        if let Some(i) = idle {
            let label = format!(
                "{} ({})",
                report::label(name),
                report::thousands(i.connections as u64)
            );
            bars.push((label, color, i.bytes_per_connection));
        }
    }
    if let Some(s) = scale {
        let label = format!(
            "{}, every default ({})",
            report::label(&s.server),
            report::thousands(s.connections as u64)
        );
        bars.push((label, RGBColor(23, 190, 207), s.bytes_per_connection));
    }
    let mut memory_source = source.clone();
    if let Some(s) = scale {
        memory_source.push_str(&format!(
            "; idle-scale run of {}, commit {}",
            s.started,
            short(&s.provenance.commit)
        ));
    }
    done.push((
        "idle-memory.svg",
        bar_chart(
            &dir.join("idle-memory.svg"),
            "Server memory per idle connection (RSS growth / connections)",
            &memory_source,
            "bytes per idle connection",
            &bars,
        )?,
    ));
    Ok(done)
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// The bars of server CPU per call: from its lowest slice to its highest,
/// at each connection count measured in more than one slice.
fn cpu_per_call_ranges<'t>(
    ts: impl IntoIterator<Item = &'t report::Throughput>,
) -> Vec<(f64, f64, f64)> {
    ts.into_iter()
        .filter(|t| t.server_cpu_us_per_call_spread.runs > 1)
        .map(|t| {
            let r = &t.server_cpu_us_per_call_spread;
            (t.connections as f64, r.min, r.max)
        })
        .collect()
}

/// One line per server of `run`: `value(server, connections)` at one
/// connection (the round trip) and at each throughput level.
fn per_server(run: &Run, value: impl Fn(&report::ServerResult, usize) -> Option<f64>) -> Vec<Line> {
    // One connection is the round trip.
    let mut levels = run.sizes(|s| s.throughput.iter().map(|t| t.connections).collect());
    levels.insert(0, 1);
    levels.dedup();
    SERVERS
        .iter()
        .filter_map(|(name, color)| {
            let s = run.server(name)?;
            let points: Vec<(f64, f64)> = levels
                .iter()
                .filter_map(|c| value(s, *c).map(|v| (*c as f64, v)))
                .collect();
            Some(Line {
                label: report::label(name).to_owned(),
                color: *color,
                points,
                ranges: Vec::new(),
            })
        })
        .collect()
}

/// The range of a log axis around `values`: whole powers of ten.
fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (lo <= hi).then(|| {
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
        (lo, hi)
    })
}

/// `1000` -> `1,000`, `0.5` -> `0.5`: labels of a log axis.
fn tick(v: f64) -> String {
    if v >= 1.0 {
        report::thousands(v.round() as u64)
    } else {
        format!("{v}")
    }
}

/// A white SVG canvas at `path` with `source` (what was measured) in
/// small print at its foot; the area above it, for the chart.
fn canvas<'a>(path: &'a Path, source: &str) -> Result<DrawingArea<SVGBackend<'a>, Shift>, String> {
    let e = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let (chart_area, foot) = root.split_vertically(SIZE.1 - 22);
    foot.draw(&Text::new(
        source.to_owned(),
        (10, 4),
        ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
    ))
    .map_err(e)?;
    Ok(chart_area)
}

/// A log-log chart of `lines`; false when there is nothing to draw.
fn line_chart(
    path: &Path,
    title: &str,
    source: &str,
    (x_desc, y_desc): (&str, &str),
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<bool, String> {
    let lines: Vec<&Line> = lines.iter().filter(|l| !l.points.is_empty()).collect();
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let ends = || {
        lines
            .iter()
            .flat_map(|l| l.ranges.iter().flat_map(|r| [r.1, r.2]))
    };
    let (Some((x0, x1)), Some((y0, y1))) = (
        log_range(all().map(|p| p.0)),
        log_range(all().map(|p| p.1).chain(ends())),
    ) else {
        return Ok(false);
    };
    let e = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", path.display());
    let chart_area = canvas(path, source)?;
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    for line in lines {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|p| Circle::new(*p, 4, color.filled())),
            )
            .map_err(e)?;
        chart
            .draw_series(line.ranges.iter().filter(|r| r.1 > 0.0).map(|(x, lo, hi)| {
                PathElement::new([(*x, *lo), (*x, *hi)], color.mix(0.6).stroke_width(2))
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    chart_area.present().map_err(e)?;
    Ok(true)
}

/// Horizontal bars, one per `(label, colour, value)`, with the value at
/// the end of each; false when there is nothing to draw.
fn bar_chart(
    path: &Path,
    title: &str,
    source: &str,
    x_desc: &str,
    bars: &[(String, RGBColor, f64)],
) -> Result<bool, String> {
    if bars.is_empty() {
        return Ok(false);
    }
    // The first bar at the top: segments count from the bottom.
    let bars: Vec<&(String, RGBColor, f64)> = bars.iter().rev().collect();
    let n = bars.len();
    let max = bars.iter().map(|b| b.2).fold(0.0, f64::max).max(1.0);
    let e = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", path.display());
    let chart_area = canvas(path, source)?;
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(250)
        .build_cartesian_2d(0.0..max * 1.2, (0..n - 1).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .x_desc(x_desc)
        .x_label_formatter(&|v| report::thousands(v.round() as u64))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |b| b.0.clone()),
            _ => String::new(),
        })
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, color, v))| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(8, 8, 0, 0);
            bar
        }))
        .map_err(e)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, _, v))| {
            Text::new(
                format!("{} B", report::thousands(v.round() as u64)),
                (*v + max * 0.01, SegmentValue::CenterOf(i)),
                ("sans-serif", 13).into_font(),
            )
        }))
        .map_err(e)?;
    chart_area.present().map_err(e)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_results_file_draws_every_chart() {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        let run: Run = read_json(&results.join("run-20261125-035010.json")).expect("run");
        let scale: IdleScale =
            read_json(&results.join("idle-scale-20261206-032945.json")).expect("idle-scale");
        let dir =
            std::env::temp_dir().join(format!("liveview-bench-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let drawn = draw_all(&run, Some(&scale), &dir).expect("charts");
        assert_eq!(drawn.len(), 5);
        for (name, written) in drawn {
            // Runs before harness version 6 have no fixed rate.
            if name == "fixed-rate.svg" {
                assert!(!written, "{name} drawn without a fixed rate");
                continue;
            }
            assert!(written, "{name} had nothing to draw");
            let svg = std::fs::read_to_string(dir.join(name)).expect("svg");
            assert!(
                svg.starts_with("<svg") && svg.contains("Django LiveView"),
                "{name}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_fixed_rate_chart_draws_each_server_with_its_load_generator() {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        let mut run: Run = read_json(&results.join("run-20261206-144551.json")).expect("run");
        run.plan["fixed_rate_fraction"] = serde_json::json!(0.5);
        for s in &mut run.servers {
            if s.name == DJANGO {
                continue;
            }
            s.fixed_rate = s.throughput.clone();
            for t in &mut s.fixed_rate {
                t.offered_per_second = Some(60_000.0);
                t.load_generator_cpu_percent_spread = report::Spread::of(&[40.0, 55.0, 47.0]);
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "liveview-bench-fixed-rate-chart-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let drawn = draw_all(&run, None, &dir).expect("charts");
        assert!(drawn.contains(&("fixed-rate.svg", true)), "{drawn:?}");
        let svg = std::fs::read_to_string(dir.join("fixed-rate.svg")).expect("svg");
        assert!(svg.contains("at 50% of the floor"), "{svg}");
        for server in ["floor", "LiveView (memory)", "LiveView (Redis)"] {
            let legend = format!("{server}, load generator at most 55% of a core");
            assert!(svg.contains(&legend), "{legend} missing");
        }
        assert!(!svg.contains("Django LiveView"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
