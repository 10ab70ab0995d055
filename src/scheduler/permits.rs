//! Serving [`Permits`](crate::policy::permit::Permits): calls of the
//! account made outside the scheduler (SMN publishes) take their turn in
//! the same budget, throttle and authentication gate as the polls, and
//! their outcomes feed the throttle and the gate.
//!
//! A waiting permit goes before the due polls (publishes are few: one per
//! event and sink), and is granted only when a poll could start now: the
//! gate allows a call, the throttle's spacing has passed and the budget
//! has a token. A publish in flight does not hold one of the
//! `max_in_flight` slots.

use tokio::time::Instant;

use super::Scheduler;
use crate::policy::permit::{CallOutcome, PermitMessage};

impl Scheduler {
    /// Handles a message from a caller of the permits.
    pub(super) fn on_permit_message(&mut self, message: PermitMessage, now: Instant) {
        match message {
            PermitMessage::Acquire(granted) => self.waiting_permits.push_back(granted),
            PermitMessage::Report(outcome) => match outcome {
                CallOutcome::Answered => {
                    self.auth.on_answer();
                    self.throttle.on_answer();
                }
                CallOutcome::Throttled { retry_after } => {
                    self.throttle.on_throttled(now, retry_after);
                }
                CallOutcome::Unauthenticated => {
                    self.auth
                        .on_refused(now, self.poller.credentials_generation());
                }
                CallOutcome::NoAnswer => {}
            },
        }
    }

    /// Whether a permit waits (callers that gave up are forgotten).
    pub(super) fn permit_waiting(&mut self) -> bool {
        while self
            .waiting_permits
            .front()
            .is_some_and(|granted| granted.is_closed())
        {
            self.waiting_permits.pop_front();
        }
        !self.waiting_permits.is_empty()
    }

    /// Grants the first waiting permit, once the budget's token is taken;
    /// false when none waits.
    pub(super) fn grant_permit(&mut self, now: Instant) -> bool {
        let Some(granted) = self.waiting_permits.pop_front() else {
            return false;
        };
        self.throttle.on_dispatch(now);
        // A caller that gave up meanwhile wasted one token; that is all.
        let _ = granted.send(());
        true
    }
}
