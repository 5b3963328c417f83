//! What a download reports while it runs: bytes, speed and time left.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One progress report; sent after every chunk written and when a file starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadProgress {
    /// The repository file being downloaded.
    pub file: String,
    /// Bytes in the cache of the files this download wants, partial files included.
    pub done: u64,
    pub total: u64,
    /// Bytes per second over this session (resumed bytes are not counted as speed).
    pub bytes_per_second: f64,
    /// Time left at the current speed; `None` before anything arrived.
    pub eta: Option<Duration>,
    pub files_done: usize,
    pub files_total: usize,
}

impl DownloadProgress {
    /// "1.2 GB of 4.5 GB, 35.0 MB/s, 1 min 34 s left"
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} of {}",
            super::error::gigabytes(self.done),
            super::error::gigabytes(self.total)
        );
        if self.bytes_per_second > 0.0 {
            let _ = write!(text, ", {:.1} MB/s", self.bytes_per_second / 1e6);
        }
        if let Some(eta) = self.eta {
            let _ = write!(text, ", {} left", duration(eta));
        }
        text
    }

    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64) as f32
        }
    }
}

/// "2 h 5 min", "3 min 4 s", "12 s"
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s >= 3600 {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// No speed is given before this many bytes or seconds.
const MEASURED_BYTES: u64 = 256 << 10;
const MEASURED_SECONDS: f64 = 1.0;

/// Measures speed from the bytes fetched since the download started.
pub(crate) struct Meter {
    started: Instant,
    fetched: u64,
}

impl Meter {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            fetched: 0,
        }
    }

    pub fn add(&mut self, bytes: u64) {
        self.fetched += bytes;
    }

    /// Bytes per second, and the time `remaining` bytes take at that speed.
    pub fn rate(&self, remaining: u64) -> (f64, Option<Duration>) {
        let seconds = self.started.elapsed().as_secs_f64();
        // The first bytes arrive before the connection is up to speed: a rate from them
        // would promise hours for a download of minutes.
        if self.fetched == 0
            || (self.fetched < MEASURED_BYTES && seconds < MEASURED_SECONDS)
            || seconds <= 0.0
        {
            return (0.0, None);
        }
        let speed = self.fetched as f64 / seconds;
        (
            speed,
            Duration::try_from_secs_f64(remaining as f64 / speed).ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(Duration::from_millis(600)), "1 s");
        assert_eq!(duration(Duration::from_secs(679)), "11 min 19 s");
        assert_eq!(duration(Duration::from_mins(125)), "2 h 5 min");
    }
}
