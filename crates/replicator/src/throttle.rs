//! A token bucket shared by every transfer of a node.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct Throttle {
    rate: u64,
    /// When the bytes granted so far will have been "paid for".
    next_free: Mutex<Instant>,
}

/// Bursts of up to this long at full rate are allowed.
const BURST: Duration = Duration::from_millis(100);

impl Throttle {
    /// `rate` bytes per second; 0: unlimited.
    pub fn new(rate: u64) -> Self {
        Throttle { rate, next_free: Mutex::new(Instant::now()) }
    }

    /// Waits until `bytes` more may be transferred.
    pub async fn take(&self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let wait = {
            let mut next = self.next_free.lock();
            let now = Instant::now();
            let start = (*next).max(now.checked_sub(BURST).unwrap_or(now));
            *next = start + cost;
            next.saturating_duration_since(now + BURST)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_the_rate() {
        let throttle = Throttle::new(1 << 20);
        let started = Instant::now();
        for _ in 0..8 {
            throttle.take(64 << 10).await;
        }
        // 512 KiB at 1 MiB/s, less the burst allowance.
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let throttle = Throttle::new(0);
        let started = Instant::now();
        throttle.take(u64::MAX / 2).await;
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
