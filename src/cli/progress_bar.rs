//! A one-line progress bar on stderr: step count, elapsed time and an ETA from the mean step
//! time so far. Without a terminal it prints nothing but stage messages.

use std::io::Write;
use std::time::Instant;

pub struct ProgressBar {
    live: bool,
    started: Option<Instant>,
    drawn: bool,
}

const WIDTH: usize = 30;

impl ProgressBar {
    pub fn new(live: bool) -> Self {
        Self {
            live,
            started: None,
            drawn: false,
        }
    }

    pub fn message(&mut self, text: &str) {
        if self.live {
            self.clear_line();
            eprintln!("{text}…");
        }
    }

    pub fn step(&mut self, step: usize, total: usize) {
        if !self.live {
            return;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let elapsed = started.elapsed().as_secs_f64();
        let eta = if step > 0 {
            elapsed / step as f64 * (total - step) as f64
        } else {
            0.0
        };
        self.fraction(
            step as f32 / total.max(1) as f32,
            &format!("step {step}/{total}  {elapsed:.1} s, ETA {eta:.1} s"),
        );
    }

    /// Draws the bar `fraction` full (0 to 1) with `text` after it.
    pub fn fraction(&mut self, fraction: f32, text: &str) {
        if !self.live {
            return;
        }
        let filled = ((WIDTH as f32 * fraction.clamp(0.0, 1.0)) as usize).min(WIDTH);
        let bar: String = "#".repeat(filled) + &"-".repeat(WIDTH - filled);
        // Padding wipes the end of a longer previous line.
        eprint!("\r[{bar}] {text:<60}");
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }

    pub fn finish(&mut self) {
        self.clear_line();
    }

    fn clear_line(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
