//! A progress line on stderr for long runs (prefill of a long prompt, perplexity): tokens done,
//! rate and time left, redrawn in place a few times a second. Only on a terminal: when stderr
//! is a pipe or a file nothing is written, so logs and captured output stay clean.

use std::io::{IsTerminal as _, Write as _};
use std::time::Instant;

/// Redraws at most this often.
const EVERY_SECONDS: f64 = 0.25;

/// One progress line.
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total: usize,
    start: Instant,
    last: Option<Instant>,
    on: bool,
}

impl Progress {
    /// A line about `total` tokens of `what` ("prefill", "perplexity"); drawn only when stderr
    /// is a terminal.
    pub fn new(what: &'static str, total: usize) -> Progress {
        Progress::when(what, total, std::io::stderr().is_terminal())
    }

    /// A line drawn only if `on`.
    pub fn when(what: &'static str, total: usize, on: bool) -> Progress {
        Progress {
            what,
            total,
            start: Instant::now(),
            last: None,
            on,
        }
    }

    /// `done` of the total tokens are done; `extra` is appended (e.g. the perplexity so far).
    pub fn update(&mut self, done: usize, extra: impl FnOnce() -> String) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if let Some(last) = self.last
            && (now - last).as_secs_f64() < EVERY_SECONDS
            && done < self.total
        {
            return;
        }
        self.last = Some(now);
        let secs = (now - self.start).as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let left = self.total.saturating_sub(done);
        let eta = if rate > 0.0 {
            format_secs(left as f64 / rate)
        } else {
            "?".into()
        };
        let pct = 100.0 * done as f64 / self.total.max(1) as f64;
        let extra = extra();
        // `\r` back to the line's start, `\x1b[K` erases what a longer earlier line left.
        eprint!(
            "\r\x1b[Keddy: {} {done}/{} tokens ({pct:.0} %), {rate:.0} tok/s, {eta} left{}{}",
            self.what,
            self.total,
            if extra.is_empty() { "" } else { ", " },
            extra
        );
        let _ = std::io::stderr().flush();
    }

    /// Ends the line (if one was drawn), so that what follows starts on a fresh line.
    pub fn finish(&mut self) {
        if self.on && self.last.is_some() {
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
        }
        self.on = false;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn format_secs(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_hours_minutes_seconds() {
        assert_eq!(format_secs(5.4), "5s");
        assert_eq!(format_secs(65.0), "1m05s");
        assert_eq!(format_secs(3725.0), "1h02m");
        assert_eq!(format_secs(f64::INFINITY), "?");
    }
}
