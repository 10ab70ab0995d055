//! The state writer: a thread that owns the store's connection and
//! applies the scheduler's batches of [`Write`]s, one transaction each,
//! merging what queued up. A batch that fails (a full disk) is retried
//! until it succeeds, and a health flag tells the scheduler to hold
//! announcements back meanwhile; at the stop, a failing batch is given up
//! after `STOP_RETRY` (2 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::jobs::Write;
use super::{StateError, Store};
use crate::telemetry;

/// How long a batch that fails is still retried once the daemon stops: a
/// full disk must not hold up the stop (the facts it held are announced
/// again, with the same `event_id`, after the next start).
const STOP_RETRY: Duration = Duration::from_secs(2);

/// What the writer reports about a failed batch (to be emitted as
/// `state.error`).
pub type ErrorHook = Box<dyn Fn(&StateError) + Send>;

/// Called after a batch that queued deliveries was committed (wakes the
/// delivery tasks).
pub type OutboxHook = Box<dyn Fn() + Send>;

/// The writer thread: applies batches in order, retries a batch that
/// failed (a full disk) until it succeeds, and says whether the store is
/// healthy so the scheduler can hold announcements back meanwhile.
pub struct Writer {
    sender: Option<mpsc::Sender<Vec<Write>>>,
    healthy: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Store, Option<StateError>)>>,
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn start(store: Store, on_error: ErrorHook) -> Writer {
        Writer::start_with_outbox_hook(store, on_error, Box::new(|| {}))
    }

    /// Starts the writer thread over `store`; `on_outbox` is called after
    /// each committed batch that contained a [`Write::Outbox`].
    pub fn start_with_outbox_hook(
        mut store: Store,
        on_error: ErrorHook,
        on_outbox: OutboxHook,
    ) -> Writer {
        let (sender, receiver) = mpsc::channel::<Vec<Write>>();
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let stop = closing.clone();
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || {
                let mut failed = None;
                let mut stop_since: Option<std::time::Instant> = None;
                'batches: while let Ok(mut batch) = receiver.recv() {
                    // Merge what queued up meanwhile into one transaction.
                    while let Ok(more) = receiver.try_recv() {
                        batch.extend(more);
                    }
                    let queued = batch.iter().any(|w| matches!(w, Write::Outbox(_)));
                    let mut delay = Duration::from_millis(100);
                    loop {
                        let started = std::time::Instant::now();
                        let applied = store.apply(&batch);
                        let seconds = started.elapsed().as_secs_f64();
                        ::metrics::histogram!(telemetry::STATE_WRITE).record(seconds);
                        match applied {
                            Ok(()) => {
                                flag.store(true, Ordering::SeqCst);
                                if queued {
                                    on_outbox();
                                }
                                break;
                            }
                            Err(error) => {
                                if flag.swap(false, Ordering::SeqCst) {
                                    on_error(&error);
                                }
                                if stop.load(Ordering::SeqCst) {
                                    let since =
                                        *stop_since.get_or_insert_with(std::time::Instant::now);
                                    if since.elapsed() >= STOP_RETRY {
                                        failed = Some(error);
                                        break 'batches;
                                    }
                                }
                                // Sleep in short steps so a stop is noticed;
                                // once stopping, retry often for a short while.
                                let stopping = stop.load(Ordering::SeqCst);
                                let pause = if stopping {
                                    delay.min(Duration::from_millis(200))
                                } else {
                                    delay
                                };
                                let until = std::time::Instant::now() + pause;
                                while std::time::Instant::now() < until
                                    && stop.load(Ordering::SeqCst) == stopping
                                {
                                    std::thread::sleep(Duration::from_millis(50));
                                }
                                delay = (delay * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                }
                (store, failed)
            })
            .ok();
        Writer {
            sender: Some(sender),
            healthy,
            closing,
            thread,
        }
    }

    /// Queues a batch; never blocks.
    pub fn send(&self, batch: Vec<Write>) {
        if batch.is_empty() {
            return;
        }
        if let Some(sender) = &self.sender {
            let _ = sender.send(batch);
        }
    }

    /// False while the last batch could not be written.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// The shared health flag.
    pub fn health_flag(&self) -> Arc<AtomicBool> {
        self.healthy.clone()
    }

    /// Writes everything queued and returns the store (`None` if the
    /// thread is gone). A batch that still cannot be written
    /// `STOP_RETRY` (2 s) after the stop is given up, with its error.
    pub fn finish(mut self) -> Result<Option<Store>, StateError> {
        self.closing.store(true, Ordering::SeqCst);
        self.sender = None;
        match self.thread.take().and_then(|thread| thread.join().ok()) {
            Some((_, Some(error))) => Err(error),
            Some((store, None)) => Ok(Some(store)),
            None => Ok(None),
        }
    }
}
