//! Whether a run hands work to worker threads, chosen run by run from the wall time of the
//! machine's last runs with and without them.
//!
//! Jobs (`jobs.rs`) pay for themselves when the worker has a core of its own. When the
//! host's cores are busy with other work (or, on a virtual machine, its host lends the
//! second core out), a busy worker only slows the scheduler's thread, which is the one
//! every run waits for: on the shared 2-core test machine `fc784_512` then took 10 to 12 ms
//! a step with jobs against 8.5 ms without, for minutes at a time. So a machine left to its
//! default thread count times its runs and keeps to the faster way, trying the other again
//! every [`PROBE`] runs, as the host's load changes. No figure of a run depends on the
//! choice: a job computes and charges exactly what its instruction computes in place.
//!
//! A run with its thread count given ([`SimOptions::threads`](super::SimOptions)) always
//! uses the threads it is given, as do the tests that compare one thread with several.

use std::time::Duration;

/// Every this many runs, the way not in favour is timed again.
const PROBE: u64 = 8;

/// The machine's record of its runs' wall times, with and without worker threads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Governor {
    /// Whether the machine's first run, which warms the caches and is not recorded, is done.
    warmed: bool,
    /// Runs recorded so far.
    runs: u64,
    /// The last recorded wall time of a run with worker threads, and without.
    with: Option<Duration>,
    without: Option<Duration>,
}

impl Governor {
    /// Whether the next run uses worker threads: the first two runs do (the first warms the
    /// caches and is not recorded), the third does not, and later runs take the way that
    /// was faster last time, but for every [`PROBE`]th, which takes the other.
    pub(crate) fn use_workers(&self) -> bool {
        match (self.with, self.without) {
            _ if !self.warmed => true,
            (None, _) => true,
            (Some(_), None) => false,
            (Some(with), Some(without)) => {
                let favoured = with <= without;
                if self.runs % PROBE == 0 { !favoured } else { favoured }
            }
        }
    }

    /// Records a run's wall time (but the first run's).
    pub(crate) fn record(&mut self, workers: bool, wall: Duration) {
        if !self.warmed {
            self.warmed = true;
            return;
        }
        self.runs += 1;
        if workers {
            self.with = Some(wall);
        } else {
            self.without = Some(wall);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Governor, PROBE};
    use std::time::Duration;

    /// Runs a governor over runs whose wall times `time(workers)` gives; returns the ways
    /// it chose.
    fn choices(runs: usize, time: impl Fn(bool) -> u64) -> Vec<bool> {
        let mut g = Governor::default();
        (0..runs)
            .map(|_| {
                let w = g.use_workers();
                g.record(w, Duration::from_millis(time(w)));
                w
            })
            .collect()
    }

    /// With workers faster, every run but the probes uses them; without faster, every run
    /// but the probes (and the first two, which time the workers) goes without.
    #[test]
    fn keeps_to_the_faster_way_and_probes_the_other() {
        let runs = 3 + 3 * PROBE as usize;
        let fast = choices(runs, |w| if w { 7 } else { 9 });
        assert_eq!(&fast[..3], &[true, true, false], "warm-up, then one run each way");
        let probes: Vec<usize> = (3..runs).filter(|&i| !fast[i]).collect();
        assert_eq!(probes.len(), 3, "one probe without workers every {PROBE} runs: {fast:?}");
        let slow = choices(runs, |w| if w { 12 } else { 9 });
        let with: Vec<usize> = (3..runs).filter(|&i| slow[i]).collect();
        assert_eq!(with.len(), 3, "one probe with workers every {PROBE} runs: {slow:?}");
    }

    /// When the host's load changes, the next probe finds it and the favoured way follows.
    #[test]
    fn follows_a_change_of_load() {
        let mut g = Governor::default();
        let mut chosen = Vec::new();
        for i in 0..40 {
            let w = g.use_workers();
            // Workers help for the first 20 runs, then cost.
            let ms = match (w, i < 20) {
                (true, true) => 7,
                (true, false) => 12,
                (false, _) => 9,
            };
            g.record(w, Duration::from_millis(ms));
            chosen.push(w);
        }
        assert!(chosen[10..19].iter().filter(|&&w| w).count() >= 7, "{chosen:?}");
        assert!(chosen[30..40].iter().filter(|&&w| !w).count() >= 8, "{chosen:?}");
    }
}
