//! The service manager's side: `sd_notify` readiness, reload and stop
//! notices, the watchdog, and the one-line `STATUS=`.
//!
//! Everything is a no-op without `NOTIFY_SOCKET`, so the same binary runs
//! under systemd, in a terminal and in tests. Watchdog pings are only sent
//! while the scheduler's heartbeat moves: a wedged scheduler stops the
//! pings and systemd restarts the service.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::telemetry::Stats;

/// Talks to the service manager when there is one.
#[derive(Clone, Copy, Debug)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// A notifier that is active when `NOTIFY_SOCKET` is set.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// A notifier that never sends anything.
    pub fn disabled() -> Notifier {
        Notifier { enabled: false }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled
            && let Err(error) = sd_notify::notify(false, states)
        {
            tracing::debug!(event = "systemd.notify_failed", "sd_notify failed: {error}");
        }
    }

    /// `READY=1`: the state is loaded and polling is armed.
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (what `Type=notify-reload`
    /// requires; plain `Type=notify` accepts it too).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// `STATUS=...`.
    pub fn status(&self, line: &str) {
        self.send(&[NotifyState::Status(line)]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// Half of `WATCHDOG_USEC` when the watchdog is on for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let mut usec = 0;
        if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
            Some(Duration::from_micros(usec / 2))
        } else {
            None
        }
    }
}

/// Follows the scheduler for the watchdog and the status line.
#[derive(Debug)]
pub struct Monitor {
    last_heartbeat: u64,
    samples: VecDeque<(i64, u64)>,
}

impl Monitor {
    /// A monitor that has seen nothing yet.
    pub fn new(stats: &Stats) -> Monitor {
        Monitor {
            last_heartbeat: stats.heartbeat.load(Ordering::Relaxed),
            samples: VecDeque::new(),
        }
    }

    /// True when the scheduler made progress since the last call.
    pub fn progressed(&mut self, stats: &Stats) -> bool {
        let heartbeat = stats.heartbeat.load(Ordering::Relaxed);
        let moved = heartbeat != self.last_heartbeat;
        self.last_heartbeat = heartbeat;
        moved
    }

    /// The status line at `now_ms`; keeps a minute of poll counts to
    /// compute the rate.
    pub fn status_line(&mut self, stats: &Stats, now_ms: i64) -> String {
        let polls = stats.polls.load(Ordering::Relaxed);
        self.samples.push_back((now_ms, polls));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now_ms - t > 60_000)
        {
            self.samples.pop_front();
        }
        let per_minute = match (self.samples.front(), self.samples.back()) {
            (Some((t0, p0)), Some((t1, p1))) if t1 > t0 => {
                ((p1 - p0) as f64 * 60_000.0 / (t1 - t0) as f64).round() as u64
            }
            _ => 0,
        };
        let last_error = stats.last_error();
        status_line(
            stats.tracked.load(Ordering::Relaxed),
            stats.pending_payment.load(Ordering::Relaxed),
            per_minute,
            last_error.map(|(at, kind)| ((now_ms - at).max(0) / 1000, kind)),
        )
    }
}

/// `tracking 1204 jobs (3 pending payment), 41 polls/min, last API error
/// 2m ago: throttled`.
pub fn status_line(
    tracked: u64,
    pending: u64,
    polls_per_minute: u64,
    last_error: Option<(i64, &str)>,
) -> String {
    let mut line = format!("tracking {}", crate::output::event::jobs(tracked as usize));
    if pending > 0 {
        line.push_str(&format!(" ({pending} pending payment)"));
    }
    line.push_str(&format!(", {polls_per_minute} polls/min"));
    if let Some((seconds, kind)) = last_error {
        let ago = if seconds < 60 {
            format!("{seconds}s")
        } else if seconds < 3600 {
            format!("{}m", seconds / 60)
        } else {
            format!("{}h", seconds / 3600)
        };
        line.push_str(&format!(", last API error {ago} ago: {kind}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_line(0, 0, 0, None), "tracking 0 jobs, 0 polls/min");
        assert_eq!(
            status_line(1204, 3, 41, Some((120, "throttled"))),
            "tracking 1204 jobs (3 pending payment), 41 polls/min, last API error 2m ago: throttled"
        );
        assert_eq!(
            status_line(1, 0, 5, Some((7, "auth"))),
            "tracking 1 job, 5 polls/min, last API error 7s ago: auth"
        );
        assert_eq!(
            status_line(1, 1, 5, Some((7200, "server"))),
            "tracking 1 job (1 pending payment), 5 polls/min, last API error 2h ago: server"
        );
        assert_eq!(status_line(2, 0, 0, None), "tracking 2 jobs, 0 polls/min");
    }

    #[test]
    fn monitor_rates_and_progress() {
        let stats = Stats::default();
        let mut monitor = Monitor::new(&stats);
        assert!(!monitor.progressed(&stats));
        stats.heartbeat.fetch_add(1, Ordering::Relaxed);
        assert!(monitor.progressed(&stats));
        assert!(!monitor.progressed(&stats));
        stats.tracked.store(10, Ordering::Relaxed);
        assert_eq!(
            monitor.status_line(&stats, 0),
            "tracking 10 jobs, 0 polls/min"
        );
        stats.polls.store(30, Ordering::Relaxed);
        assert_eq!(
            monitor.status_line(&stats, 30_000),
            "tracking 10 jobs, 60 polls/min"
        );
    }
}
