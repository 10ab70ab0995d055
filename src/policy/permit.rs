//! Calls of the account made outside the scheduler (SMN publishes) that
//! still go through its one request budget, throttle and authentication
//! gate. The caller asks for a permit and awaits it; the scheduler grants
//! permits between polls, as it starts calls, and learns each call's
//! outcome from [`Permits::report`], so a throttled or refused publish
//! slows or pauses the job polls exactly as a throttled or refused poll
//! would. A 403 (the key may not publish to that topic) is not reported
//! as a refusal: it concerns that sink alone, not the account.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// What became of a call made with a permit, as the account's gate sees
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The service answered (whatever it said about the request itself).
    Answered,
    /// The account is throttled: slow every call down.
    Throttled {
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The credentials were refused (401): pause every call.
    Unauthenticated,
    /// No answer (timeout, connection): says nothing about the account.
    NoAnswer,
}

/// A message to the scheduler.
#[derive(Debug)]
pub enum PermitMessage {
    /// Grant one call by answering on the sender.
    Acquire(oneshot::Sender<()>),
    /// The outcome of a call made with a permit.
    Report(CallOutcome),
}

/// The scheduler has stopped: no permit will come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the scheduler has stopped")]
pub struct Stopped;

/// The caller's side of the permits. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Permits {
    sender: mpsc::UnboundedSender<PermitMessage>,
}

impl Permits {
    /// A pair: the callers' side and the scheduler's receiver.
    pub fn channel() -> (Permits, mpsc::UnboundedReceiver<PermitMessage>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Permits { sender }, receiver)
    }

    /// Waits until the scheduler grants one call.
    pub async fn acquire(&self) -> Result<(), Stopped> {
        let (granted, wait) = oneshot::channel();
        self.sender
            .send(PermitMessage::Acquire(granted))
            .map_err(|_| Stopped)?;
        wait.await.map_err(|_| Stopped)
    }

    /// Tells the scheduler what became of a call made with a permit.
    pub fn report(&self, outcome: CallOutcome) {
        let _ = self.sender.send(PermitMessage::Report(outcome));
    }
}
