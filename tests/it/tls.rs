//! Real connections: the daemon against the simulator over HTTPS with a
//! private CA made at test time (rcgen), through an HTTPS proxy, refusing a
//! certificate it should not trust, and polling for minutes while the
//! simulator closes idle keep-alive connections as API gateways do.
//!
//! Nothing here asserts how fast anything is; the waits are for events
//! and for the simulator's counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecs_jobwatch::sim::{ServerOptions, TlsIdentity};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::daemon::check_common_fields;
use crate::harness::{AK, Finished, Match, SK, Setup, dump, sim_with};

/// A private certificate authority and a server certificate it issued for
/// `localhost` and `127.0.0.1`, with the CA's PEM in a file.
struct TestCa {
    _dir: TempDir,
    /// The CA certificate (PEM), for `cloud.ca_file` or `SSL_CERT_FILE`.
    ca_file: PathBuf,
    /// The simulator's certificate and key.
    server: TlsIdentity,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("ecs-jobwatch test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
            .expect("server parameters");
        leaf.distinguished_name
            .push(DnType::CommonName, "ecs-jobwatch simulator");
        let key = KeyPair::generate().expect("server key");
        let cert = leaf.signed_by(&key, &ca).expect("server certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_file = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, ca.pem()).expect("CA file written");
        TestCa {
            _dir: dir,
            ca_file,
            server: TlsIdentity {
                cert_chain_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        }
    }

    fn ca_path(&self) -> &str {
        self.ca_file.to_str().expect("UTF-8 temp path")
    }

    /// Simulator options serving HTTPS with this CA's server certificate.
    fn https(&self) -> ServerOptions {
        ServerOptions {
            tls: Some(self.server.clone()),
            idle_timeout: None,
        }
    }
}

/// `[[job]]` tables: `id` RUNNING from the start and SUCCESS at `end`.
fn jobs(ends: &[(&str, &str)]) -> String {
    ends.iter()
        .map(|(id, end)| {
            format!(
                "[[job]]\nid = \"{id}\"\njob_type = \"createServer\"\n\
                 timeline = [ {{ at = \"0s\", status = \"RUNNING\" }}, \
                 {{ at = \"{end}\", status = \"SUCCESS\" }} ]\n\n"
            )
        })
        .collect()
}

/// Fails when a key, the secret or a signature appears in what a run
/// printed.
fn check_no_secret(run: &Finished) {
    let printed = format!(
        "{}\n{}\n{}",
        dump(&run.events),
        run.bad_lines.concat(),
        run.stderr
    );
    for secret in [AK, SK, "Signature="] {
        assert!(!printed.contains(secret), "printed {secret:?}:\n{printed}");
    }
}

/// Milliseconds of an event's `timestamp`.
fn timestamp_ms(event: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap_or_default())
        .unwrap_or_else(|error| panic!("timestamp of {event}: {error}"))
        .timestamp_millis()
}

/// Checks that lines grouped by `key` are at least 10 s apart by their
/// timestamps, and returns the count per group.
fn check_ten_seconds_apart(events: &[&Value], key: &str) -> BTreeMap<String, usize> {
    let mut groups: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for event in events {
        groups
            .entry(event[key].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(timestamp_ms(event));
    }
    for (group, times) in &groups {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= 10_000,
                "two lines of {key} {group} {} ms apart: {events:?}",
                pair[1] - pair[0]
            );
        }
    }
    groups
        .into_iter()
        .map(|(group, times)| (group, times.len()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_the_daemon_watches_jobs_over_https_with_a_private_ca_in_ca_file() {
    let ca = TestCa::new("trusted");
    let sim = sim_with(&jobs(&[("tls-1", "2s"), ("tls-2", "3s")]), ca.https()).await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    // `cloud.ca_file` adds the private CA to the platform's roots.
    let setup = Setup::new(&sim)
        .watch(&["tls-1", "tls-2"])
        .set("cloud.ca_file", ca.ca_path());
    let mut daemon = setup.start().await;
    for id in ["tls-1", "tls-2"] {
        daemon.await_event(&Match::transition(id, "SUCCESS")).await;
    }
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    check_no_secret(&run);
    assert!(
        Match::event("api.error").all(&run.events).is_empty(),
        "{}",
        dump(&run.events)
    );
    let stats = sim.stats();
    assert_eq!(stats.tls_handshake_failures, 0, "{stats:?}");
    assert!(stats.requests_total >= 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_an_untrusted_certificate_is_refused_naming_the_tls_failure() {
    // The daemon trusts one private CA; the simulator's certificate comes
    // from another.
    let trusted = TestCa::new("trusted");
    let other = TestCa::new("other");
    let ids = ["untrusted-1", "untrusted-2", "untrusted-3"];
    let sim = sim_with(
        &jobs(&[(ids[0], "1h"), (ids[1], "1h"), (ids[2], "1h")]),
        other.https(),
    )
    .await;
    let setup = Setup::new(&sim)
        .watch(&ids)
        .set("cloud.ca_file", trusted.ca_path());
    let mut daemon = setup.start().await;
    let connect = Match::event("api.error").with("error_type", "connect");
    let error = daemon.await_event(&connect).await;
    // Enough refused handshakes (the daemon backs off, about one every
    // 3 s here) to span two rate-limit periods.
    sim.await_stats("14 refused handshakes", |stats| {
        stats.tls_handshake_failures >= 14
    })
    .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    check_no_secret(&run);

    let message = error["error"].as_str().unwrap_or_default().to_string()
        + error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("certificate") && message.contains("UnknownIssuer"),
        "the api.error names the TLS failure: {error}"
    );
    let stats = sim.stats();
    assert_eq!(stats.requests_total, 0, "no request got through: {stats:?}");
    // api.error lines of one type, and library lines of one target (rustls
    // logs the refused certificate at every attempt), are at most one per
    // 10 s.
    let errors = check_ten_seconds_apart(&connect.all(&run.events), "error_type");
    let library_lines = Match::event("log").all(&run.events);
    let library = check_ten_seconds_apart(&library_lines, "target");
    // Each line names the library it came from (rustls logs through the
    // `log` crate, whose records all arrive with the target "log").
    assert!(
        library.keys().any(|target| target.starts_with("rustls")),
        "{library:?}"
    );
    assert!(
        library_lines
            .iter()
            .all(|line| line["target"] != "log" && line.get("log.file").is_none()),
        "{library_lines:?}"
    );
    assert!(
        Match::event("api.error")
            .all(&run.events)
            .iter()
            .all(|line| line["error_type"] == "connect"),
        "{}",
        dump(&run.events)
    );
    eprintln!(
        "untrusted certificate: {} refused handshakes, api.error lines {errors:?}, library lines {library:?}, first error {error}",
        stats.tls_handshake_failures
    );
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1 that tunnels to loopback
/// targets only and records every target asked for.
struct ConnectProxy {
    addr: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("a local address");
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&targets);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(tunnel(stream, Arc::clone(&seen)));
            }
        });
        ConnectProxy { addr, targets }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("targets").clone()
    }
}

/// Serves one proxy connection: `CONNECT host:port`, then bytes both ways.
async fn tunnel(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut words = text.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    seen.lock().expect("targets").push(target.to_string());
    let upstream = match target.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => TcpStream::connect(addr).await,
        _ => {
            let _ = client
                .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
    };
    let Ok(mut upstream) = upstream else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_https_proxy_is_used_and_no_proxy_bypasses_it() {
    let ca = TestCa::new("proxied");
    let sim = sim_with(
        &jobs(&[("proxied-1", "2s"), ("direct-1", "2s")]),
        ca.https(),
    )
    .await;
    let proxy = ConnectProxy::start().await;
    let sim_addr = sim.addr().to_string();

    // Through the proxy; the CA this time in `SSL_CERT_FILE`, which works
    // beside `cloud.ca_file`.
    let setup = Setup::new(&sim)
        .watch(&["proxied-1"])
        .env("SSL_CERT_FILE", ca.ca_path())
        .env("HTTPS_PROXY", &proxy.url());
    let mut daemon = setup.start().await;
    daemon
        .await_event(&Match::transition("proxied-1", "SUCCESS"))
        .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    check_no_secret(&run);
    let targets = proxy.targets();
    assert!(!targets.is_empty(), "the proxy saw no CONNECT");
    assert!(
        targets.iter().all(|target| *target == sim_addr),
        "{targets:?} (the simulator is {sim_addr})"
    );

    // NO_PROXY names the simulator's host: straight there.
    let before = targets.len();
    let setup = Setup::new(&sim)
        .watch(&["direct-1"])
        .env("SSL_CERT_FILE", ca.ca_path())
        .env("HTTPS_PROXY", &proxy.url())
        .env("NO_PROXY", "127.0.0.1");
    let mut daemon = setup.start().await;
    daemon
        .await_event(&Match::transition("direct-1", "SUCCESS"))
        .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    assert_eq!(proxy.targets().len(), before, "NO_PROXY was not honoured");
    assert!(sim.requests("direct-1") >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_polling_for_minutes_across_server_closed_idle_connections_has_no_error() {
    // The simulator closes a connection idle for 1 s; the daemon polls each
    // job every 1 to 2 s, so its pooled connections are closed under it
    // again and again, and others are reused just before.
    let ca = TestCa::new("idle");
    let ends = [
        ("idle-1", "20s"),
        ("idle-2", "40s"),
        ("idle-3", "60s"),
        ("idle-4", "80s"),
        ("idle-5", "100s"),
        ("idle-6", "120s"),
    ];
    let options = ServerOptions {
        idle_timeout: Some(Duration::from_secs(1)),
        ..ca.https()
    };
    let sim = sim_with(&jobs(&ends), options).await;
    let ids: Vec<&str> = ends.iter().map(|(id, _)| *id).collect();
    let setup = Setup::new(&sim)
        .watch(&ids)
        .env("SSL_CERT_FILE", ca.ca_path());
    let mut daemon = setup.start().await;
    // Each end comes 20 s after the one before, within one await's limit.
    for id in &ids {
        daemon.await_event(&Match::transition(id, "SUCCESS")).await;
    }
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    check_no_secret(&run);
    let stats = sim.stats();
    eprintln!(
        "idle close: {} requests over {} connections, {} closed idle by the simulator",
        stats.requests_total, stats.connections, stats.connections_closed_idle
    );
    assert!(
        Match::event("api.error").all(&run.events).is_empty(),
        "{}",
        dump(&run.events)
    );
    assert!(
        Match::event("log").all(&run.events).is_empty(),
        "{}",
        dump(&run.events)
    );
    assert!(
        stats.connections_closed_idle >= 20,
        "the idle close was crossed too rarely to tell: {stats:?}"
    );
}
