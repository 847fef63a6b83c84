//! Per-target counters and round-trip statistics, computed the way iputils `ping` computes them.

use std::time::Duration;

/// Counters and RTT sums of one target.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Echo requests handed to the socket.
    pub sent: u64,
    /// Distinct probes answered by a good reply (duplicates not included).
    pub received: u64,
    /// Extra replies to probes already answered.
    pub dups: u64,
    /// Replies that matched a probe but were damaged (bad checksum, wrong data, truncated).
    pub damaged: u64,
    /// ICMP errors quoting one of our probes, plus sends that failed.
    pub errors: u64,
    /// Replies with an RTT (received + dups), and their sums in microseconds, as iputils keeps them.
    rtt_count: u64,
    rtt_sum: u128,
    rtt_sum2: u128,
    rtt_min: u64,
    rtt_max: u64,
}

/// min/avg/max/mdev in microseconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RttSummary {
    /// Fastest reply.
    pub min_us: u64,
    /// Mean (integer division, as iputils).
    pub avg_us: u64,
    /// Slowest reply.
    pub max_us: u64,
    /// Standard deviation: `sqrt(mean(x²) - mean(x)²)`, in integers, as iputils prints "mdev".
    pub mdev_us: u64,
}

impl Stats {
    /// Account one reply's round trip (good replies and duplicates both count, as in iputils).
    pub fn record_rtt(&mut self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        if self.rtt_count == 0 || us < self.rtt_min {
            self.rtt_min = us;
        }
        self.rtt_max = self.rtt_max.max(us);
        self.rtt_count += 1;
        self.rtt_sum += u128::from(us);
        self.rtt_sum2 += u128::from(us) * u128::from(us);
    }

    /// The RTT summary, if any reply came back.
    pub fn rtt(&self) -> Option<RttSummary> {
        if self.rtt_count == 0 {
            return None;
        }
        let n = u128::from(self.rtt_count);
        let avg = self.rtt_sum / n;
        let mean_sq = self.rtt_sum2 / n;
        let var = mean_sq.saturating_sub(avg * avg);
        Some(RttSummary {
            min_us: self.rtt_min,
            avg_us: avg as u64,
            max_us: self.rtt_max,
            mdev_us: isqrt(var) as u64,
        })
    }

    /// Packet loss in percent: probes sent that no good reply answered.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        (self.sent.saturating_sub(self.received)) as f64 * 100.0 / self.sent as f64
    }
}

/// Integer square root (floor), by Newton's method.
fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

/// Microseconds as iputils prints milliseconds: `12.345`.
pub fn ms3(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_like_iputils() {
        let mut s = Stats::default();
        for us in [42, 26, 29] {
            s.record_rtt(Duration::from_micros(us));
        }
        // iputils: sum=97 → avg 32; sum2=764+... mean(x²)=1047(integer), 1047-1024=23 → mdev 4
        let r = s.rtt().unwrap();
        assert_eq!((r.min_us, r.avg_us, r.max_us), (26, 32, 42));
        let mean_sq = (42 * 42 + 26 * 26 + 29 * 29) / 3;
        assert_eq!(r.mdev_us, isqrt(mean_sq - 32 * 32) as u64);
        assert_eq!(ms3(1234), "1.234");
        assert_eq!(ms3(7), "0.007");
    }

    #[test]
    fn loss_and_isqrt() {
        let s = Stats { sent: 3, received: 1, ..Stats::default() };
        assert!((s.loss_percent() - 66.666).abs() < 0.01);
        assert_eq!(Stats::default().loss_percent(), 0.0);
        assert_eq!(Stats::default().rtt(), None);
        for n in [0u128, 1, 2, 3, 4, 15, 16, 17, 1 << 40, u64::MAX as u128] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
    }
}
