//! One chart, described as data (lines, reference lines, shaded spans, labels) and drawn
//! to inline SVG with plotters' SVG backend. Text stays SVG `<text>` (no font files or
//! system font libraries), and colours come from the Okabe–Ito palette, which readers
//! with any common colour-vision deficiency tell apart; lines also differ by dash and
//! marker, so a print in grey still separates them.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

/// Okabe–Ito, without black (axes) and yellow (unreadable on white): the page's check
/// counts marks in these colours as data.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
];

/// Reference lines (ideal scaling, SLO) and shaded spans: grey, never data.
const REFERENCE: RGBColor = RGBColor(0x55, 0x55, 0x55);
const SHADE: RGBColor = RGBColor(0x99, 0x99, 0x99);

pub const WIDTH: u32 = 760;
pub const HEIGHT: u32 = 400;
/// A panel of a stacked figure (the per-second series).
pub const PANEL_HEIGHT: u32 = 230;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// A line with a marker at every point.
    LineMarked,
    /// A plain line (histogram outlines, dense series).
    Line,
    /// Markers only (scatter).
    Points,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// Index into the palette.
    pub colour: usize,
    /// 0 solid, 1 dashed, 2 dotted: a second cue beside colour.
    pub dash: usize,
    /// 0 circle, 1 triangle, 2 square, 3 cross.
    pub marker: usize,
    pub draw: Draw,
    /// Fill the area under it, lightly (histograms).
    pub fill: bool,
    pub points: Vec<(f64, f64)>,
    /// Error bars: at x, from lo to hi (a figure's confidence interval).
    pub bars: Vec<(f64, f64, f64)>,
}

impl Series {
    pub fn new(label: impl Into<String>, colour: usize, draw: Draw, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), colour, dash: 0, marker: 0, draw, fill: false, points, bars: Vec::new() }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Horizontal reference lines (an SLO), labelled.
    pub hlines: Vec<(f64, String)>,
    /// Vertical markers (the knee, the SLO's limit), labelled.
    pub vlines: Vec<(f64, String)>,
    /// Shaded x spans (warmup, cooldown), labelled.
    pub spans: Vec<(f64, f64, String)>,
    /// Dashed grey lines that are references, not data (ideal linear scaling).
    pub references: Vec<(String, Vec<(f64, f64)>)>,
    /// Text beside points (stage names on a trade-off curve).
    pub annotations: Vec<(f64, f64, String)>,
    pub x_log: bool,
    /// On a log axis, the ticks to label (the loads that ran); else plotters' own.
    pub x_ticks: Vec<f64>,
    /// The y axis starts at zero (counts, rates); else it fits the data.
    pub y_zero: bool,
    /// Force the x range to start at zero.
    pub x_zero: bool,
    /// The x axis counts whole things (turns): only whole ticks are labelled.
    pub x_whole: bool,
    pub height: u32,
}

/// The chart's key, as HTML under it (it reflows on a phone and never covers data): a
/// swatch (colour, dash, marker) and a label per line; none for a single line.
pub fn legend_html(c: &Chart) -> String {
    if c.series.len() + c.references.len() < 2 {
        return String::new();
    }
    let hex = |c: RGBColor| format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2);
    let item = |colour: String, dash: usize, marker: Option<usize>, label: &str| {
        let dasharray = ["", " stroke-dasharray=\"7 4\"", " stroke-dasharray=\"2 4\""][dash.min(2)];
        let mark = marker.map_or(String::new(), |m| {
            let points: Vec<String> = shape(m, 4).iter().map(|(x, y)| format!("{},{}", x + 15, y + 7)).collect();
            format!("<polygon points=\"{}\" fill=\"{colour}\"/>", points.join(" "))
        });
        format!(
            "<span class=\"key\"><svg width=\"30\" height=\"14\" viewBox=\"0 0 30 14\" aria-hidden=\"true\"><line x1=\"1\" y1=\"7\" x2=\"29\" y2=\"7\" stroke=\"{colour}\" stroke-width=\"3\"{dasharray}/>{mark}</svg>{}</span>",
            crate::report::escape(label)
        )
    };
    let mut out = String::from("<div class=\"legend\">");
    for s in &c.series {
        let marker = (s.draw != Draw::Line).then_some(s.marker);
        out.push_str(&item(hex(PALETTE[s.colour % PALETTE.len()]), if s.draw == Draw::Points { 0 } else { s.dash }, marker, &s.label));
    }
    for (label, _) in &c.references {
        out.push_str(&item(hex(REFERENCE), 1, None, label));
    }
    out.push_str("</div>");
    out
}

/// Whether a value can be placed on an axis: finite, not absurd (a hostile result could
/// say 1e308, and an infinite range never ends plotters' tick loop), above zero on a
/// log axis.
fn usable(v: f64, log: bool) -> bool {
    v.is_finite() && v.abs() < 1e15 && (!log || v > 0.0)
}

fn bounds(c: &Chart) -> Result<(Range<f64>, Range<f64>), String> {
    let log = c.x_log;
    let mut xs: Vec<f64> = Vec::new();
    let mut ys: Vec<f64> = Vec::new();
    for p in c.series.iter().flat_map(|s| &s.points).chain(c.references.iter().flat_map(|r| &r.1)) {
        if usable(p.0, log) && usable(p.1, false) {
            xs.push(p.0);
            ys.push(p.1);
        }
    }
    ys.extend(c.series.iter().flat_map(|s| &s.bars).filter(|b| usable(b.0, log)).flat_map(|b| [b.1, b.2]).filter(|y| usable(*y, false)));
    ys.extend(c.hlines.iter().map(|h| h.0).filter(|y| usable(*y, false)));
    xs.extend(c.vlines.iter().map(|v| v.0).filter(|x| usable(*x, log)));
    xs.extend(c.spans.iter().flat_map(|s| [s.0, s.1]).filter(|x| usable(*x, log)));
    let fold = |v: &[f64]| v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    let (mut x0, mut x1) = fold(&xs);
    let (mut y0, mut y1) = fold(&ys);
    if x0 > x1 {
        (x0, x1) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    if c.y_zero {
        y0 = y0.min(0.0);
    }
    if c.x_zero && !log {
        x0 = x0.min(0.0);
    }
    let pad = |lo: f64, hi: f64, log: bool| {
        if log {
            (lo / 1.25, hi.max(lo * 1.01) * 1.25)
        } else if hi - lo < 1e-9 * hi.abs().max(1.0) {
            let d = (hi.abs() * 0.1).max(1.0);
            // A line flat at zero stays on a zero-based axis.
            (if lo == 0.0 { 0.0 } else { lo - d }, hi + d)
        } else {
            let d = (hi - lo) * 0.06;
            (if lo == 0.0 { 0.0 } else { lo - d }, hi + d)
        }
    };
    let (x0, mut x1) = pad(x0, x1, log);
    if !c.annotations.is_empty() && !log {
        x1 += (x1 - x0) * 0.15; // room for the labels right of the last points
    }
    let (y0, y1) = pad(y0, y1, false);
    let y0 = y0.min(if c.y_zero { 0.0 } else { y0 });
    if ![x0, x1, y0, y1].iter().all(|v| v.is_finite()) || x1 <= x0 || y1 <= y0 {
        return Err(format!("{}: its figures give no axis to draw on", c.title));
    }
    Ok((x0..x1, y0..y1))
}

/// A tick label with as many digits as it needs and no more.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        // Ticks 500 apart must not round to the same label.
        format!("{:.1}k", v / 1000.0).replace(".0k", "k")
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}").trim_end_matches(".0").to_string()
    } else if a >= 1.0 {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The chart as an `<svg>` element that scales to its container.
pub fn svg(c: &Chart) -> Result<String, String> {
    let height = if c.height == 0 { HEIGHT } else { c.height };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (xr, yr) = bounds(c)?;
        if c.x_log && !c.x_ticks.is_empty() {
            plot(&root, c, xr.log_scale().with_key_points(c.x_ticks.clone()).with_light_points(Vec::new()), yr)?;
        } else if c.x_log {
            plot(&root, c, xr.log_scale(), yr)?;
        } else {
            plot(&root, c, xr, yr)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    // A fixed pixel size would overflow a phone: the viewBox alone keeps the aspect.
    let head = format!("<svg width=\"{WIDTH}\" height=\"{height}\" ");
    let titled = format!("<svg class=\"chart\" role=\"img\" aria-label=\"{}\" ", crate::report::escape(&c.title));
    Ok(out.replacen(&head, &titled, 1))
}

fn plot<'a, X>(root: &DrawingArea<SVGBackend<'a>, Shift>, c: &Chart, xr: X, yr: Range<f64>) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let (y_lo, y_hi) = (yr.start, yr.end);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 26))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(84)
        .build_cartesian_2d(xr, yr)
        .map_err(err)?;
    let fmt = |v: &f64| tick(*v);
    let x_fmt = |v: &f64| if c.x_whole && v.fract() != 0.0 { String::new() } else { tick(*v) };
    // Whole things (turns): as many ticks as whole numbers in the range, up to 8, so
    // the grid's lines fall on them rather than between.
    let x_labels = match c.x_whole {
        true => {
            let r = chart.x_range();
            ((r.end.floor() - r.start.ceil()) as usize + 1).clamp(2, 8)
        }
        false => 8,
    };
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&fmt)
        .x_labels(x_labels)
        .y_labels(6)
        .label_style(("sans-serif", 20))
        .axis_desc_style(("sans-serif", 21))
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
        .light_line_style(RGBColor(0xF4, 0xF4, 0xF4))
        .max_light_lines(2)
        .draw()
        .map_err(err)?;
    let log = c.x_log;
    let on = |p: &(f64, f64)| usable(p.0, log) && usable(p.1, false);
    for (x0, x1, label) in c.spans.iter().filter(|s| usable(s.0, log) && usable(s.1, log)) {
        chart.draw_series(std::iter::once(Rectangle::new([(*x0, y_lo), (*x1, y_hi)], SHADE.mix(0.18).filled()))).map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(label.clone(), (*x0, y_hi), ("sans-serif", 18).into_font().color(&REFERENCE))))
            .map_err(err)?;
    }
    for (y, label) in c.hlines.iter().filter(|h| usable(h.0, false)) {
        let (xa, xb) = (chart.x_range().start, chart.x_range().end);
        chart.draw_series(DashedLineSeries::new([(xa, *y), (xb, *y)], 8, 5, REFERENCE.stroke_width(2))).map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(label.clone(), (xa, *y), ("sans-serif", 18).into_font().color(&REFERENCE))))
            .map_err(err)?;
    }
    for (x, label) in c.vlines.iter().filter(|v| usable(v.0, log)) {
        chart.draw_series(DashedLineSeries::new([(*x, y_lo), (*x, y_hi)], 6, 4, REFERENCE.stroke_width(2))).map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(label.clone(), (*x, y_hi), ("sans-serif", 18).into_font().color(&REFERENCE))))
            .map_err(err)?;
    }
    for (_, points) in &c.references {
        chart.draw_series(DashedLineSeries::new(points.iter().copied().filter(on), 10, 6, REFERENCE.stroke_width(2))).map_err(err)?;
    }
    for s in &c.series {
        let colour = PALETTE[s.colour % PALETTE.len()];
        let style = colour.stroke_width(if s.draw == Draw::Points { 1 } else { 3 });
        // A point that cannot be placed (NaN marks a gap, e.g. a second with nothing
        // measured) breaks the line there rather than bridging it.
        for run in s.points.split(|p| !on(p)).filter(|r| !r.is_empty()) {
            if s.fill {
                chart.draw_series(AreaSeries::new(run.iter().copied(), 0.0, colour.mix(0.12))).map_err(err)?;
            }
            match (s.draw, s.dash) {
                (Draw::Points, _) => {}
                (_, 0) => {
                    chart.draw_series(LineSeries::new(run.iter().copied(), style)).map_err(err)?;
                }
                (_, 1) => {
                    chart.draw_series(DashedLineSeries::new(run.iter().copied(), 12, 6, style)).map_err(err)?;
                }
                _ => {
                    chart.draw_series(DashedLineSeries::new(run.iter().copied(), 3, 5, style)).map_err(err)?;
                }
            }
        }
        // Each bar a stem with a cap at both ends, 5 px either side.
        let thin = colour.stroke_width(2);
        for &(x, lo, hi) in s.bars.iter().filter(|b| on(&(b.0, b.1)) && on(&(b.0, b.2))) {
            let cap = |y: f64| EmptyElement::at((x, y)) + PathElement::new(vec![(-5, 0), (5, 0)], thin);
            chart.draw_series([PathElement::new(vec![(x, lo), (x, hi)], thin)]).map_err(err)?;
            chart.draw_series([cap(lo), cap(hi)]).map_err(err)?;
        }
        if s.draw != Draw::Line {
            let size = if s.draw == Draw::Points { 3 } else { 5 };
            let outline = shape(s.marker, size);
            chart
                .draw_series(
                    s.points.iter().filter(|p| on(p)).map(|p| EmptyElement::at(*p) + Polygon::new(outline.clone(), colour.filled())),
                )
                .map_err(err)?;
        }
    }
    for (x, y, label) in c.annotations.iter().filter(|a| on(&(a.0, a.1))) {
        let font = ("sans-serif", 18).into_font().color(&REFERENCE);
        // Up and right of its point, clear of the marker.
        chart.draw_series(std::iter::once(EmptyElement::at((*x, *y)) + Text::new(label.clone(), (8, -20), font))).map_err(err)?;
    }
    Ok(())
}

/// A marker's outline around its point, in pixels: one shape type for every marker,
/// so a series' markers are one kind of element (circle, triangle, square, diamond).
fn shape(marker: usize, r: i32) -> Vec<(i32, i32)> {
    match marker % 4 {
        0 => {
            let k = r * 7 / 10;
            vec![(0, -r), (k, -k), (r, 0), (k, k), (0, r), (-k, k), (-r, 0), (-k, -k)]
        }
        1 => vec![(0, -r - 1), (r + 1, r), (-r - 1, r)],
        2 => vec![(-r, -r), (r, -r), (r, r), (-r, r)],
        _ => vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_carry_the_digits_they_need() {
        assert_eq!(
            [tick(0.0), tick(82.0), tick(12.5), tick(1.25), tick(0.125), tick(25_000.0)],
            ["0", "82", "12.5", "1.25", "0.125", "25k"]
        );
    }

    #[test]
    fn a_chart_draws_its_data_as_text_and_palette_marks() {
        let c = Chart {
            title: "p99 <against> load".into(),
            x_label: "concurrency".into(),
            y_label: "ms".into(),
            series: vec![Series::new("p99", 0, Draw::LineMarked, vec![(1.0, 82.0), (10.0, 110.0), (50.0, 180.0)])],
            hlines: vec![(150.0, "SLO 150 ms".into())],
            x_log: true,
            ..Chart::default()
        };
        let s = svg(&c).unwrap();
        assert!(s.starts_with("<svg class=\"chart\" role=\"img\" aria-label=\"p99 &lt;against&gt; load\" "), "{}", &s[..200]);
        assert!(s.contains("<text") && s.contains("concurrency") && s.contains("SLO 150 ms"));
        assert!(s.contains("#0072B2"), "the series is drawn in the palette's first colour");
        assert_eq!(s.matches("<polygon").count(), 3, "a marker per point");
    }

    /// Vertical lines of the mesh's bold grid: one per x tick.
    fn x_grid_lines(svg: &str) -> usize {
        let attr = |l: &str, k: &str| l.split(&format!(" {k}=\"")).nth(1).and_then(|v| v.split('"').next()).map(str::to_string);
        svg.split("<line").filter(|l| l.contains("#DDDDDD") && attr(l, "x1").is_some() && attr(l, "x1") == attr(l, "x2")).count()
    }

    #[test]
    fn whole_things_get_a_tick_on_each_and_none_between() {
        for turns in [2u32, 3, 5, 8] {
            let points = (1..=turns).map(|t| (f64::from(t), 10.0 * f64::from(t))).collect();
            let c = Chart {
                title: "TTFT by turn".into(),
                series: vec![Series::new("p50", 0, Draw::LineMarked, points)],
                x_whole: true,
                ..Chart::default()
            };
            assert_eq!(x_grid_lines(&svg(&c).unwrap()), turns as usize, "{turns} turns");
        }
    }
}
