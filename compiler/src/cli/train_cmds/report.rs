//! What `snnc train` shows while it runs and when it ends: a progress bar (on a terminal),
//! one line per epoch, and a summary of accuracy, simulated chip time and energy, DRAM
//! traffic against the GPU baseline of the mapping pass, and host wall time.

use super::print;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sim::record::RunRecord;
use sim::train::{Cost, EpochReport, Progress};
use snnc::graph::LayerGraph;
use snnc::map::baseline::gpu_baseline;
use std::fmt::Write as _;
use std::path::Path;

/// The display state of one run, and the costs summed over its epochs.
pub struct Run {
    bar: ProgressBar,
    quiet: bool,
    epochs: u32,
    batches: usize,
    train: Cost,
    eval: Cost,
    /// DRAM bytes a GPU moves for one training step of this model.
    gpu_step_bytes: u64,
}

impl Run {
    /// A display for `epochs` epochs of `batches` batches.
    pub fn new(graph: &LayerGraph, epochs: u32, batches: usize, quiet: bool) -> Run {
        let bar = ProgressBar::new(u64::from(epochs) * batches as u64);
        if quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        // `wide_msg` is cut to the terminal's width, so the bar never wraps onto a second line.
        let style = ProgressStyle::with_template("{prefix} [{bar:16}] {wide_msg}");
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(graph.name.clone());
        let gpu_step_bytes = gpu_baseline(graph).total();
        Run { bar, quiet, epochs, batches, train: Cost::default(), eval: Cost::default(), gpu_step_bytes }
    }

    /// After every program run.
    pub fn progress(&self, p: &Progress) {
        self.bar.set_message(format!(
            "epoch {}/{} batch {}/{} loss {:.4} acc {:.1}% chip {}",
            p.epoch,
            self.epochs,
            p.batch,
            p.batches,
            p.loss,
            100.0 * p.accuracy,
            time(p.chip_us)
        ));
        self.bar.set_position(u64::from(p.epoch - 1) * self.batches as u64 + p.batch as u64);
    }

    /// After a completed epoch: one line, and the costs.
    pub fn epoch_done(&mut self, r: &EpochReport) {
        self.train.merge(&r.train);
        self.eval.merge(&r.eval);
        let e = &r.record;
        let line = format!(
            "epoch {:>3}/{}  loss {:.4}  train {:5.1}%  test {:5.1}%  chip {}  wall {:.2} s\n",
            e.epoch,
            self.epochs,
            e.train_loss,
            100.0 * e.train_accuracy,
            100.0 * e.test_accuracy,
            time(r.train.time_us + r.eval.time_us),
            e.wall_seconds
        );
        self.say(&line);
    }

    /// After Ctrl-C stopped an epoch.
    pub fn interrupted(&mut self, train: &Cost) {
        self.train.merge(train);
        self.say("interrupted: writing what has been trained so far\n");
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            self.bar.suspend(|| print(line));
        }
    }

    /// Clears the bar and prints the summary.
    pub fn finish(&self, record: &RunRecord, written: &[&Path], wall: f64) {
        self.bar.finish_and_clear();
        print(&self.summary(record, written, wall));
    }

    /// The summary text.
    fn summary(&self, record: &RunRecord, written: &[&Path], wall: f64) -> String {
        let mut s = String::new();
        let d = &record.dataset;
        let done = record.history.len();
        let _ = writeln!(
            s,
            "{}: {done} of {} epochs on chip `{}`, {} training / {} test samples of {}",
            record.model, record.epochs, record.chip.name, d.train_samples, d.test_samples, d.name
        );
        if let Some(sum) = record.summary.as_ref().filter(|_| done > 0) {
            let _ = writeln!(
                s,
                "  test accuracy    {:.1}% (best {:.1}% at epoch {}); training accuracy {:.1}%, loss {:.4}",
                100.0 * sum.final_test_accuracy,
                100.0 * sum.best_test_accuracy,
                sum.best_epoch,
                100.0 * sum.final_train_accuracy,
                sum.final_train_loss
            );
        }
        let (t, e) = (&self.train, &self.eval);
        let per_step = |v: f64| v / t.steps.max(1) as f64;
        let _ = writeln!(
            s,
            "  chip time        training {} ({} steps, {} per step); evaluation {}",
            time(t.time_us),
            t.steps,
            time(per_step(t.time_us)),
            time(e.time_us)
        );
        let _ = writeln!(
            s,
            "  chip energy      training {} ({} per step); evaluation {}",
            energy(t.energy_pj),
            energy(per_step(t.energy_pj)),
            energy(e.energy_pj)
        );
        let chip = per_step(t.dram_bytes as f64);
        let gpu = self.gpu_step_bytes as f64;
        let versus = if gpu <= 0.0 {
            String::new()
        } else if chip <= gpu {
            format!(": {:.0}% less", 100.0 * (1.0 - chip / gpu))
        } else {
            format!(": {:.2}x as much", chip / gpu)
        };
        let _ = writeln!(
            s,
            "  DRAM traffic     {} per training step vs {} for a GPU framework{versus}",
            bytes(chip),
            bytes(gpu)
        );
        let epoch = wall / done.max(1) as f64;
        let _ = writeln!(s, "  host wall time   {wall:.1} s ({epoch:.2} s per epoch)");
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        let _ = writeln!(s, "  wrote {}", names.join(", "));
        s
    }
}

/// Microseconds in a readable unit.
fn time(us: f64) -> String {
    match us {
        u if u >= 1e6 => format!("{:.3} s", u / 1e6),
        u if u >= 1e3 => format!("{:.2} ms", u / 1e3),
        u => format!("{u:.1} us"),
    }
}

/// Picojoules in a readable unit.
fn energy(pj: f64) -> String {
    match pj {
        p if p >= 1e12 => format!("{:.3} J", p / 1e12),
        p if p >= 1e9 => format!("{:.2} mJ", p / 1e9),
        p => format!("{:.2} uJ", p / 1e6),
    }
}

/// Bytes in a readable unit (powers of 1000).
fn bytes(b: f64) -> String {
    match b {
        b if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.2} MB", b / 1e6),
        b => format!("{:.1} kB", b / 1e3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_scale_with_the_value() {
        assert_eq!(time(2_500.0), "2.50 ms");
        assert_eq!(energy(3.0e9), "3.00 mJ");
        assert_eq!(bytes(1.5e6), "1.50 MB");
    }
}
