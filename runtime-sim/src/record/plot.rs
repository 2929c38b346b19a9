//! An SVG plot of a run's loss and accuracy per epoch, drawn with plotters.
//!
//! Two panels, one above the other: the training loss (red), and the training (blue) and test
//! (green) accuracy on a fixed `[0, 1]` axis, each against the epoch. Every series is one
//! `<polyline>` in the SVG. Only plotters' SVG backend is built, without its `ttf` feature: an
//! SVG names fonts in `<text>` elements and the viewer renders them, so no system font
//! library is needed to build or run; plotters then lays text out with a rough width
//! estimate, so labels may sit a little off where a viewer's font is much wider or narrower.
//! Values that are not finite (a diverged loss) are left out of their series.

use std::path::Path;

use plotters::prelude::*;

use super::RecordError;
use super::file::write_atomic;
use super::run::EpochRecord;

/// Picture size in pixels.
const SIZE: (u32, u32) = (800, 600);

/// The colour of each series: training loss, training accuracy, test accuracy.
pub const SERIES_COLOURS: [(u8, u8, u8); 3] = [(204, 0, 0), (0, 0, 204), (0, 136, 0)];

/// The plot as SVG text.
pub fn plot_svg(history: &[EpochRecord], title: &str) -> Result<String, RecordError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (top, bottom) = root.split_vertically(SIZE.1 / 2);
        let loss: Vec<(f64, f64)> = points(history, |e| e.train_loss);
        let top_y = loss.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.1;
        let mut chart = panel(&top, history, &format!("{title}: training loss"), "loss", top_y)?;
        draw_line(&mut chart, loss, 0)?;
        let mut chart = panel(&bottom, history, "accuracy (blue: train, green: test)", "accuracy", 1.0)?;
        draw_line(&mut chart, points(history, |e| e.train_accuracy), 1)?;
        draw_line(&mut chart, points(history, |e| e.test_accuracy), 2)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Writes [`plot_svg`] to `path` (atomically).
pub fn save_plot(path: impl AsRef<Path>, history: &[EpochRecord], title: &str) -> Result<(), RecordError> {
    write_atomic(path.as_ref(), plot_svg(history, title)?.as_bytes())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A panel with axes: epochs 1..=n across, `0..y_max` up.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    history: &[EpochRecord],
    caption: &str,
    y_desc: &str,
    y_max: f64,
) -> Result<Chart<'a, 'b>, RecordError> {
    let last = history.iter().map(|e| e.epoch).max().unwrap_or(1).max(2);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1.0..f64::from(last), 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_labels((last as usize).min(10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(plot_error)?;
    Ok(chart)
}

/// Draws one series in its colour.
fn draw_line(chart: &mut Chart<'_, '_>, points: Vec<(f64, f64)>, series: usize) -> Result<(), RecordError> {
    let (r, g, b) = SERIES_COLOURS[series];
    let style = RGBColor(r, g, b).stroke_width(2);
    chart.draw_series(LineSeries::new(points, style)).map_err(plot_error)?;
    Ok(())
}

/// The finite `(epoch, value)` points of one field.
fn points(history: &[EpochRecord], field: fn(&EpochRecord) -> f64) -> Vec<(f64, f64)> {
    history.iter().map(|e| (f64::from(e.epoch), field(e))).filter(|p| p.1.is_finite()).collect()
}

fn plot_error(e: impl std::fmt::Display) -> RecordError {
    RecordError::Plot(e.to_string())
}
