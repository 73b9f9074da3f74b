//! The run's records: per-step losses (`metrics.csv`), per-epoch validation losses
//! (`validation.csv`), the loss plot (`losses.png`) and sample grids.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::TrainError;

/// Every loss term of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepMetrics {
    /// Step number, from 1.
    pub step: u64,
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Pre-training (content loss only) or adversarial.
    pub pretrain: bool,
    /// Discriminator loss (sum of the three terms below).
    pub d_loss: f64,
    /// D's BCE on anime (label real).
    pub d_real: f64,
    /// D's BCE on generated images (label fake).
    pub d_fake: f64,
    /// D's BCE on edge-smoothed anime (label fake).
    pub d_smooth: f64,
    /// G's adversarial BCE.
    pub g_adv: f64,
    /// VGG content L1 (unweighted).
    pub content: f64,
    /// Gram style L1 (unweighted).
    pub style: f64,
    /// Pixel L1 to the photo's cartoon abstraction (unweighted; 0 when off).
    pub abstraction: f64,
    /// Temporal (compound regularisation) L1 (unweighted; 0 when off).
    pub temporal: f64,
    /// Flatness term, truncated total variation of the output (unweighted; 0 when off).
    pub flat: f64,
    /// Local-colour term, squared chroma difference over cells (unweighted; 0 when off).
    pub colour: f64,
    /// G's total loss.
    pub g_total: f64,
    /// Seconds this step took.
    pub seconds: f64,
}

const STEP_HEADER: &str =
    "step,epoch,phase,d_loss,d_real,d_fake,d_smooth,g_adv,content,style,abstraction,temporal,flat,colour,g_total,seconds";
const VAL_HEADER: &str = "epoch,step,content,style,g_adv";

/// An append-only CSV file, cut back to a step when a run resumes.
pub struct CsvLog {
    path: PathBuf,
    file: std::fs::File,
}

impl CsvLog {
    /// Opens `path` with `header`; rows whose first `step_column` value exceeds `keep_through`
    /// are dropped (they are redone after a resume). A new run starts the file afresh. Kept
    /// rows written under an older header are laid out by column name, a column they lack
    /// written as 0 (a run resumed across a version that logs a new term).
    pub fn open(path: &Path, header: &str, step_column: usize, keep_through: Option<u64>) -> Result<Self, TrainError> {
        let io = |source| TrainError::Io { path: path.into(), source };
        let mut text = format!("{header}\n");
        if let (Some(limit), Ok(old)) = (keep_through, std::fs::read_to_string(path)) {
            let mut lines = old.lines();
            let old_header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
            let from_old: Vec<Option<usize>> =
                header.split(',').map(|name| old_header.iter().position(|h| *h == name)).collect();
            for line in lines {
                let values: Vec<&str> = line.split(',').collect();
                let step: Option<u64> = values.get(step_column).and_then(|v| v.parse().ok());
                if step.is_some_and(|s| s <= limit) {
                    let row: Vec<&str> =
                        from_old.iter().map(|i| i.and_then(|i| values.get(i).copied()).unwrap_or("0")).collect();
                    text.push_str(&row.join(","));
                    text.push('\n');
                }
            }
        }
        std::fs::write(path, text).map_err(io)?;
        let file = std::fs::OpenOptions::new().append(true).open(path).map_err(io)?;
        Ok(Self { path: path.into(), file })
    }

    /// Appends one row.
    pub fn append(&mut self, row: &str) -> Result<(), TrainError> {
        writeln!(self.file, "{row}").map_err(|source| TrainError::Io { path: self.path.clone(), source })
    }
}

/// The per-step log.
pub fn step_log(run: &Path, keep_through: Option<u64>) -> Result<CsvLog, TrainError> {
    CsvLog::open(&run.join("metrics.csv"), STEP_HEADER, 0, keep_through)
}

/// The per-epoch validation log.
pub fn validation_log(run: &Path, keep_through: Option<u64>) -> Result<CsvLog, TrainError> {
    CsvLog::open(&run.join("validation.csv"), VAL_HEADER, 1, keep_through)
}

impl StepMetrics {
    /// The loss terms as TensorBoard scalars: the content loss alone while pre-training
    /// (the other terms are not computed then), every term after; the abstraction and
    /// temporal terms in both phases where the run uses them (they are 0 when off).
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        let mut scalars = if self.pretrain {
            vec![("train/content", self.content)]
        } else {
            vec![
                ("train/d_loss", self.d_loss),
                ("train/d_real", self.d_real),
                ("train/d_fake", self.d_fake),
                ("train/d_smooth", self.d_smooth),
                ("train/g_adv", self.g_adv),
                ("train/content", self.content),
                ("train/style", self.style),
                ("train/g_total", self.g_total),
            ]
        };
        for (tag, value) in [
            ("train/abstraction", self.abstraction),
            ("train/temporal", self.temporal),
            ("train/flat", self.flat),
            ("train/colour", self.colour),
        ] {
            if value != 0.0 {
                scalars.push((tag, value));
            }
        }
        scalars
    }

    /// The CSV row.
    pub fn row(&self) -> String {
        let mut s = format!("{},{},{}", self.step, self.epoch, if self.pretrain { "pretrain" } else { "adversarial" });
        for v in [
            self.d_loss,
            self.d_real,
            self.d_fake,
            self.d_smooth,
            self.g_adv,
            self.content,
            self.style,
            self.abstraction,
            self.temporal,
            self.flat,
            self.colour,
            self.g_total,
        ] {
            let _ = write!(s, ",{v:.6}");
        }
        let _ = write!(s, ",{:.3}", self.seconds);
        s
    }
}

/// Reads numeric columns of a CSV log: (step, values by column name).
fn read_columns(path: &Path, step_column: usize, names: &[&str]) -> Vec<(String, Vec<(f64, f64)>)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    names
        .iter()
        .filter_map(|name| {
            let col = header.iter().position(|h| h == name)?;
            let points = rows
                .iter()
                .filter_map(|r| Some((r.get(step_column)?.parse().ok()?, r.get(col)?.parse::<f64>().ok()?)))
                .filter(|(_, v): &(f64, f64)| *v > 0.0 && v.is_finite())
                .collect();
            Some((name.to_string(), points))
        })
        .collect()
}

/// Draws every loss curve of a run (log scale) into `losses.png`.
pub fn plot(run: &Path) -> Result<PathBuf, TrainError> {
    crate::plot::register_font();
    let mut series = read_columns(
        &run.join("metrics.csv"),
        0,
        &["d_loss", "g_adv", "content", "style", "abstraction", "temporal", "flat", "colour"],
    );
    for (name, points) in read_columns(&run.join("validation.csv"), 1, &["content", "style"]) {
        series.push((format!("val {name}"), points));
    }
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let out = run.join("losses.png");
    let (w, h) = (1000u32, 600u32);
    let mut buffer = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        let draw = |e: &dyn std::fmt::Display| TrainError::Run(format!("drawing the loss plot: {e}"));
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let max_step = all.iter().map(|p| p.0).fold(1.0, f64::max);
        let lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).min(1.0) * 0.8;
        let hi = all.iter().map(|p| p.1).fold(0.0, f64::max).max(lo * 10.0) * 1.25;
        let mut chart = ChartBuilder::on(&root)
            .caption("japanim training losses", ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_step, (lo..hi).log_scale())
            .map_err(|e| draw(&e))?;
        chart.configure_mesh().x_desc("step").y_desc("loss (log scale)").draw().map_err(|e| draw(&e))?;
        let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = palette[i % palette.len()];
            let stroke = if name.starts_with("val") { colour.stroke_width(3) } else { colour.stroke_width(1) };
            chart
                .draw_series(LineSeries::new(points.iter().copied(), stroke))
                .map_err(|e| draw(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    save_rgb(&out, &buffer, w, h)?;
    Ok(out)
}

fn save_rgb(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<(), TrainError> {
    crate::io::image::write_rgb(path, rgb, w, h).map_err(|e| TrainError::Run(format!("writing {e}")))
}

/// Writes a grid: the inputs on the top row, the generator's outputs below, `side`² each.
pub fn sample_grid(path: &Path, inputs: &[Vec<u8>], outputs: &[Vec<u8>], side: u32) -> Result<(), TrainError> {
    let n = inputs.len() as u32;
    let (w, h) = (n * side, 2 * side);
    let mut grid = vec![0u8; (w * h * 3) as usize];
    for (row, images) in [inputs, outputs].iter().enumerate() {
        for (col, img) in images.iter().enumerate() {
            for y in 0..side {
                let src = &img[(y * side * 3) as usize..((y + 1) * side * 3) as usize];
                let dst = (((row as u32 * side + y) * w + col as u32 * side) * 3) as usize;
                grid[dst..dst + src.len()].copy_from_slice(src);
            }
        }
    }
    save_rgb(path, &grid, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_keeps_its_rows_under_a_newer_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(&path, "step,phase,flat,seconds\n1,a,0.5,0.1\n2,a,0.25,0.1\n3,a,0.125,0.1\n").unwrap();
        let mut log = CsvLog::open(&path, "step,phase,flat,colour,seconds", 0, Some(2)).unwrap();
        log.append("3,a,0.1,0.2,0.1").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "step,phase,flat,colour,seconds\n1,a,0.5,0,0.1\n2,a,0.25,0,0.1\n3,a,0.1,0.2,0.1\n");
        // Under the same header rows are kept as they were; a new run starts afresh.
        CsvLog::open(&path, "step,phase,flat,colour,seconds", 0, Some(2)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "step,phase,flat,colour,seconds\n1,a,0.5,0,0.1\n2,a,0.25,0,0.1\n"
        );
        CsvLog::open(&path, "step,phase,flat,colour,seconds", 0, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "step,phase,flat,colour,seconds\n");
    }
}
