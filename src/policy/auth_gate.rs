//! The authentication gate: after a refusal of the credentials, one probe
//! call at a time, and a pause, ended early by new credentials or a
//! reload (five failed signatures lock an AK for five minutes).

use std::time::Duration;

use tokio::time::Instant;

/// How long authentication failures stop all calls (five failed
/// signatures lock an AK for five minutes).
pub const AUTH_PAUSE: Duration = Duration::from_secs(300);

/// Whether calls may be made with the current credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthGate {
    /// Not known to work yet: one call at a time until one succeeds.
    Probing,
    /// Known to work: full concurrency.
    Open,
    /// Refused: no call until `until`, or until the credentials change.
    Paused {
        /// End of the pause.
        until: Instant,
        /// The credential generation that was refused.
        generation: u64,
    },
}

impl AuthGate {
    /// A call was refused with `Auth` or `Forbidden`.
    pub fn on_refused(&mut self, now: Instant, generation: u64) {
        *self = AuthGate::Paused {
            until: now + AUTH_PAUSE,
            generation,
        };
    }

    /// A call was answered by the API proper (anything but an auth refusal).
    pub fn on_answer(&mut self) {
        *self = AuthGate::Open;
    }

    /// The configuration was reloaded: try again, carefully.
    pub fn on_reload(&mut self) {
        if matches!(self, AuthGate::Paused { .. }) {
            *self = AuthGate::Probing;
        }
    }

    /// How many calls may be in flight at `now` with credentials of
    /// `generation`; ends a pause whose time is up or whose credentials
    /// changed.
    pub fn allowed_in_flight(&mut self, now: Instant, generation: u64, max: usize) -> usize {
        if let AuthGate::Paused {
            until,
            generation: refused,
        } = *self
            && (now >= until || generation != refused)
        {
            *self = AuthGate::Probing;
        }
        match self {
            AuthGate::Open => max,
            AuthGate::Probing => 1,
            AuthGate::Paused { .. } => 0,
        }
    }

    /// When a pause ends by itself.
    pub fn paused_until(&self) -> Option<Instant> {
        match self {
            AuthGate::Paused { until, .. } => Some(*until),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn auth_gate() {
        let t0 = Instant::now();
        let mut gate = AuthGate::Probing;
        assert_eq!(gate.allowed_in_flight(t0, 0, 16), 1);
        gate.on_answer();
        assert_eq!(gate.allowed_in_flight(t0, 0, 16), 16);
        gate.on_refused(t0, 0);
        assert_eq!(gate.allowed_in_flight(t0 + S(299), 0, 16), 0);
        assert_eq!(gate.paused_until(), Some(t0 + AUTH_PAUSE));
        assert_eq!(gate.allowed_in_flight(t0 + S(300), 0, 16), 1);
        gate.on_refused(t0, 0);
        assert_eq!(
            gate.allowed_in_flight(t0 + S(1), 1, 16),
            1,
            "new credentials end the pause"
        );
        gate.on_refused(t0, 1);
        gate.on_reload();
        assert_eq!(gate, AuthGate::Probing);
    }
}
