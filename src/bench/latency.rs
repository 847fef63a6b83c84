//! Latency samples and their percentiles.

use std::time::Duration;

/// Most samples kept: 4 M × 4 bytes = 16 MiB. Later samples are counted but not stored, so a long
/// run's memory stays bounded; the percentiles then describe the first 4 M messages.
const MAX_SAMPLES: usize = 4 << 20;

/// Latencies in microseconds.
#[derive(Default)]
pub struct Latencies {
    samples: Vec<u32>,
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(d.as_micros().min(u32::MAX as u128) as u32);
        }
    }

    /// The p-th percentile (0..=100) in microseconds, or 0 with no samples.
    pub fn percentile(&mut self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.samples.len() - 1) as f64).round() as usize;
        let (_, v, _) = self.samples.select_nth_unstable(rank);
        *v as f64
    }

    /// (p50, p99, p99.9) in microseconds.
    pub fn summary(&mut self) -> (f64, f64, f64) {
        (self.percentile(50.0), self.percentile(99.0), self.percentile(99.9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut l = Latencies::default();
        assert_eq!(l.percentile(50.0), 0.0);
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.percentile(50.0), 501.0);
        assert_eq!(l.percentile(99.0), 990.0);
        assert_eq!(l.percentile(100.0), 1000.0);
    }
}
