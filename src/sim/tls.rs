//! How the simulator's connections behave beyond HTTP: HTTPS with a
//! certificate the caller provides (tests make a private CA at test time),
//! and closing keep-alive connections that stay idle, as API gateways do.
//!
//! [`ServerOptions`] is what `spawn_with` and `serve_with` take. A
//! connection's [`Activity`] counts the requests in flight on it; once none
//! has been for `idle_timeout`, the connection is shut down gracefully (an
//! idle HTTP/1 connection closes at once, a busy one after its answer).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// The longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The server's certificate first, then any intermediates.
    pub cert_chain_pem: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// How the simulator serves connections; the default is plain HTTP that
/// never closes an idle connection.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Serve HTTPS with this identity instead of HTTP.
    pub tls: Option<TlsIdentity>,
    /// Close a connection on which no request has been in flight this long.
    pub idle_timeout: Option<Duration>,
}

/// Builds the TLS acceptor of `identity` (TLS 1.2 and 1.3, HTTP/1.1 by
/// ALPN, the aws-lc-rs provider reqwest uses as well).
pub fn acceptor(identity: &TlsIdentity) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_slice_iter(identity.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the simulator's certificate chain is not PEM")?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the simulator's certificate chain is empty"
    );
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .context("the simulator's private key is not PEM")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the simulator's certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The requests in flight on one connection and when the last one ended.
#[derive(Clone, Debug)]
pub struct Activity {
    state: Arc<Mutex<(usize, Instant)>>,
    changed: Arc<Notify>,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            state: Arc::new(Mutex::new((0, Instant::now()))),
            changed: Arc::new(Notify::new()),
        }
    }
}

/// A request in flight; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 = state.0.saturating_sub(1);
            state.1 = Instant::now();
        }
        self.0.changed.notify_waiters();
    }
}

impl Activity {
    /// Marks a request as started until the returned guard is dropped.
    pub fn begin(&self) -> InFlight {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 += 1;
            state.1 = Instant::now();
        }
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Completes once no request has been in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read, so no change is missed.
            changed.as_mut().enable();
            let (in_flight, last) = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if in_flight > 0 {
                changed.await;
                continue;
            }
            let due = last + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = changed => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let activity = Activity::default();
        let idle = Duration::from_secs(1);
        let start = Instant::now();
        let request = activity.begin();
        let waiter = tokio::spawn({
            let activity = activity.clone();
            async move {
                activity.idle_for(idle).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        drop(request);
        let closed = waiter.await.unwrap();
        assert_eq!(closed - start, Duration::from_secs(6));

        // A request that begins and ends meanwhile restarts the wait.
        let start = Instant::now();
        drop(activity.begin());
        let waiter = tokio::spawn({
            let activity = activity.clone();
            async move {
                activity.idle_for(idle).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(activity.begin());
        assert_eq!(waiter.await.unwrap() - start, Duration::from_millis(1_600));
    }

    #[test]
    fn identities_that_are_not_pem_are_refused() {
        let identity = TlsIdentity {
            cert_chain_pem: "not a certificate".into(),
            key_pem: "not a key".into(),
        };
        let error = acceptor(&identity).err().map(|error| format!("{error:#}"));
        assert!(
            error.as_deref().is_some_and(|e| e.contains("empty")),
            "{error:?}"
        );
        assert!(!format!("{identity:?}").contains("not a key"));
    }
}
