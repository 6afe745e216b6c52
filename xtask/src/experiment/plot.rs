//! Figures for the reports: line charts as SVG (text without font files), heat maps as PNG.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;

/// The chart of every figure: a title, margins, room for the axis labels.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55);
    builder
}

pub struct Series<'a> {
    pub label: &'a str,
    pub points: &'a [(usize, f64)],
    pub color: RGBColor,
}

/// Error curves with vertical markers: grey at each moon's period, red at the joint period.
pub fn curves(
    path: &Path,
    title: &str,
    series: &[Series],
    periods: &[f64],
    joint: f64,
    y_max: f64,
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1) as f64
        + 5.0;
    let mut chart = frame(&root, title).build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("context length (observations)")
        .y_desc("mean |generated - truth| over 25 steps")
        .draw()?;
    let grey = RGBColor(150, 150, 150);
    for (i, &x) in periods.iter().enumerate() {
        let drawn = chart.draw_series(LineSeries::new(
            [(x, 0.0), (x, y_max)],
            grey.stroke_width(1),
        ))?;
        if i == 0 {
            drawn
                .label("each moon's period")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));
        }
    }
    chart
        .draw_series(LineSeries::new(
            [(joint, 0.0), (joint, y_max)],
            RED.stroke_width(1),
        ))?
        .label("joint period")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|&(c, e)| (c as f64, e.min(y_max))),
                color.stroke_width(2),
            ))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// A matrix as a PNG, each cell `scale` pixels square, values mapped through a dark-blue to
/// yellow ramp after dividing by the largest.
pub fn heat_map(path: &Path, values: &[f32], rows: usize, cols: usize, scale: usize) -> Result<()> {
    let max = values.iter().cloned().fold(f32::MIN_POSITIVE, f32::max);
    let (w, h) = (cols * scale, rows * scale);
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let v = values[(y / scale) * cols + x / scale] / max;
            let [r, g, b] = ramp(v);
            let i = (y * w + x) * 3;
            pixels[i..i + 3].copy_from_slice(&[r, g, b]);
        }
    }
    let file = std::fs::File::create(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(())
}

/// Roughly viridis: dark blue, teal, green, yellow.
fn ramp(v: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let mix = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f) as u8;
    [mix(0), mix(1), mix(2)]
}

pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    /// Drawn thin: published numbers and baselines, under our own.
    pub thin: bool,
}

/// A metric against the number of training examples, log x axis from 100 to 40,000.
pub fn versus_n(path: &Path, title: &str, metric: &str, lines: &[Line]) -> Result<()> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart =
        frame(&root, title).build_cartesian_2d((80f64..50_000f64).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("training automata N")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(metric)
        .draw()?;
    draw_lines(&mut chart, lines, SeriesLabelPosition::LowerRight)?;
    root.present()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// The lines, a dot at each point when there are few, and the legend at `legend`.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for line in lines {
        let color = line.color;
        let width = if line.thin { 1 } else { 3 };
        let series = LineSeries::new(line.points.iter().copied(), color.stroke_width(width));
        chart
            .draw_series(series)?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(width))
            });
        if line.points.len() <= 20 {
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()?;
    Ok(())
}

/// Lines on linear axes that fit them all, with a margin above and below.
pub fn lines_chart(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    lines: &[Line],
) -> Result<()> {
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let y_hi = points().map(|p| p.1).fold(0.0, f64::max);
    let y_lo = points().map(|p| p.1).fold(y_hi, f64::min);
    let pad = 0.05 * (y_hi - y_lo).max(1e-3);
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart =
        frame(&root, title).build_cartesian_2d(0f64..x_max, (y_lo - pad)..(y_hi + pad))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    draw_lines(&mut chart, lines, SeriesLabelPosition::UpperRight)?;
    root.present()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}
