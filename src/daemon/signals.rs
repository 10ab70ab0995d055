//! Unix signals as one stream of orders: SIGHUP reloads, SIGTERM and
//! SIGINT stop. A second stop signal exits at once; a stop that takes
//! longer than [`STOP_DEADLINE`] is cut short.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures_util::StreamExt;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;

use crate::daemon::Control;

/// How long a graceful stop may take before the process exits anyway.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The exit code when a stop is cut short (a second signal, or the
/// deadline): 75, "temporary failure", so systemd records it but no
/// configuration error is implied.
pub const FORCED_EXIT: i32 = 75;

/// Registers the handlers now (so no signal between here and the first
/// poll is lost) and forwards signals as orders from a task.
pub fn forward(orders: mpsc::Sender<Control>) -> std::io::Result<()> {
    // The second stop signal is decided inside the signal handler: two
    // signals that arrive back to back are merged by the kernel and by the
    // stream below, so counting them there would miss the second one. The
    // conditional exit is registered first, so the first signal only sets
    // the flag and the second finds it set.
    let stopping = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        flag::register_conditional_shutdown(signal, FORCED_EXIT, stopping.clone())?;
        flag::register(signal, stopping.clone())?;
    }
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    tokio::spawn(async move {
        let mut stopping = false;
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => {
                    // A full queue already holds an order; reloads that
                    // arrive together coalesce into one.
                    let _ = orders.try_send(Control::Reload);
                }
                _ if stopping => {
                    // Normally the handler has exited already.
                    eprintln!("ecs-jobwatch: second stop signal, exiting at once");
                    std::process::exit(FORCED_EXIT);
                }
                _ => {
                    stopping = true;
                    let _ = orders.send(Control::Shutdown).await;
                    tokio::spawn(async {
                        tokio::time::sleep(STOP_DEADLINE).await;
                        eprintln!(
                            "ecs-jobwatch: graceful stop took longer than {STOP_DEADLINE:?}, exiting"
                        );
                        std::process::exit(FORCED_EXIT);
                    });
                }
            }
        }
    });
    Ok(())
}
