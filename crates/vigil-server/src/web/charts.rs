//! The KPI trend charts: plotters draws each as SVG on the server, so a page
//! carries its charts with it (no script, nothing fetched). Text is left to the
//! page's font; plotters writes only presentation attributes, no inline style,
//! which the page's Content-Security-Policy would refuse.

use plotters::prelude::*;
use vigil_model::Timestamp;

/// The line's colour (the stylesheet's accent, which meets WCAG AA on white).
const LINE: RGBColor = RGBColor(0x1f, 0x4e, 0xa8);
const GRID: RGBColor = RGBColor(0xd8, 0xde, 0xe9);
const TEXT: RGBColor = RGBColor(0x3b, 0x44, 0x54);

/// One day's value, `None` where there was nothing to measure.
pub(super) type Point = (Timestamp, Option<f64>);

/// A small line chart of a KPI over the days of `points` (oldest first), as an
/// SVG document. Days without a value break the line.
/// A chart that cannot be drawn (an error, or a panic in the library) is left
/// out and logged: the page shows its figures without it.
pub(super) fn trend(points: &[Point], width: u32, height: u32) -> String {
    let drawn = std::panic::catch_unwind(|| {
        let mut svg = String::new();
        draw(&mut svg, points, width, height)
            .map(|()| svg)
            .map_err(|e| e.to_string())
    });
    match drawn {
        Ok(Ok(svg)) => svg,
        Ok(Err(e)) => {
            tracing::warn!("a trend chart could not be drawn: {e}");
            String::new()
        }
        Err(_) => {
            tracing::warn!("a trend chart could not be drawn: the chart library panicked");
            String::new()
        }
    }
}

/// [`trend`] as an image for assistive technology: `role="img"` and `label`
/// (escaped) as its name.
pub(super) fn labelled(points: &[Point], width: u32, height: u32, label: &str) -> String {
    let svg = trend(points, width, height);
    let name = maud::html! { (label) }.into_string();
    match svg.strip_prefix("<svg ") {
        Some(rest) => format!("<svg role=\"img\" aria-label=\"{name}\" class=\"trend\" {rest}"),
        None => svg,
    }
}

fn draw(
    out: &mut String,
    points: &[Point],
    width: u32,
    height: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let days = points.len().max(1) as i32;
    let top = points
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0_f64, f64::max);
    let top = if top <= 0.0 { 1.0 } else { top * 1.15 };
    let root = SVGBackend::with_string(out, (width, height)).into_drawing_area();
    let mut chart = ChartBuilder::on(&root)
        .margin(5)
        .x_label_area_size(18)
        .y_label_area_size(30)
        .build_cartesian_2d(0..days - 1, 0.0..top)?;
    let first = points.first().map(|p| p.0.as_millis()).unwrap_or(0);
    let day_label = move |i: &i32| {
        let t = Timestamp::from_millis(first + i64::from(*i) * 86_400_000).to_string();
        // `2026-12-06T…`: the month and day.
        t.get(5..10).unwrap_or("").to_owned()
    };
    let label_font = ("sans-serif", 14).into_font().color(&TEXT);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(1)
        .bold_line_style(GRID)
        .axis_style(GRID)
        .x_labels(3)
        .y_labels(3)
        .x_label_formatter(&day_label)
        .y_label_formatter(&|v: &f64| {
            if *v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .label_style(label_font)
        .draw()?;
    // Each run of days with a value is one line; a lone day is a dot.
    let mut run: Vec<(i32, f64)> = Vec::new();
    let mut runs: Vec<Vec<(i32, f64)>> = Vec::new();
    for (i, (_, v)) in points.iter().enumerate() {
        match v {
            Some(v) => run.push((i as i32, *v)),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    for r in runs {
        chart.draw_series(
            r.iter()
                .map(|&(x, y)| Circle::new((x, y), 2, LINE.filled())),
        )?;
        if r.len() > 1 {
            chart.draw_series(LineSeries::new(r, LINE.stroke_width(2)))?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(values: &[Option<f64>]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (Timestamp::from_millis(i as i64 * 86_400_000), *v))
            .collect()
    }

    #[test]
    fn a_chart_is_svg_with_no_inline_style() {
        let svg = trend(&days(&[Some(1.0), None, Some(3.0), Some(2.5)]), 240, 90);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("<polyline"),
            "a line for the two days in a row"
        );
        assert!(svg.contains("<circle"), "a dot per day with a value");
        assert!(
            !svg.contains("style="),
            "the CSP refuses inline style: {svg}"
        );
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn a_labelled_chart_is_an_image_with_an_escaped_name() {
        let svg = labelled(&days(&[Some(1.0)]), 240, 90, "MTTD \"<b>\"");
        assert!(
            svg.starts_with(
                r#"<svg role="img" aria-label="MTTD &quot;&lt;b&gt;&quot;" class="trend" "#
            ),
            "{svg}"
        );
    }

    #[test]
    fn thirty_days_of_any_shape_draw() {
        let shapes: [fn(usize) -> Option<f64>; 5] = [
            |_| Some(0.0),
            |i| Some(i as f64 * 1000.0),
            |i| (i % 3 == 0).then_some(0.1),
            |i| (i == 29).then_some(9.0),
            |i| Some(100.0 - i as f64),
        ];
        for shape in shapes {
            let v: Vec<Option<f64>> = (0..30).map(shape).collect();
            for (w, h) in [(200, 72), (240, 90)] {
                assert!(trend(&days(&v), w, h).starts_with("<svg"));
            }
        }
    }

    #[test]
    fn a_chart_with_nothing_to_show_still_draws_its_axes() {
        let svg = trend(&days(&[None; 30]), 240, 90);
        assert!(svg.starts_with("<svg"));
        assert!(!svg.contains("<circle"));
    }
}
