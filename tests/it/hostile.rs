//! Hostile input, end to end through the public API: answers far past the
//! body cap, a server that trickles its head, bodies that are not UTF-8 or
//! nest without end, ids of 10,000 characters, watch files that are huge,
//! binary or symbolic link loops, and configuration text that is garbage.
//! Each must end in the class of error the contract names, never a panic,
//! and without reading more than the caps allow.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ecs_jobwatch::config::Config;
use ecs_jobwatch::huaweicloud::client::{Client, ClientConfig};
use ecs_jobwatch::huaweicloud::credentials::{
    CredentialProvider, CredentialsConfig, Environment, Source,
};
use ecs_jobwatch::huaweicloud::error::{AnswerHeaders, ErrorKind};
use ecs_jobwatch::job::id::{JobId, JobIdError};
use ecs_jobwatch::job::{JobKey, ProjectName};
use ecs_jobwatch::job::{Service, Status};
use ecs_jobwatch::services;
use ecs_jobwatch::watch;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const JOB: &str = "ff80808288d41e1b018990260955686a";

/// A generous timeout for requests that are expected to get an answer.
const GENEROUS: Duration = Duration::from_secs(30);

/// 100 MB, the size of the answer a broken or hostile server sends.
const HUNDRED_MB: u64 = 100 * 1000 * 1000;

/// A client for `addr` with environment credentials, as the daemon builds it.
fn client(addr: SocketAddr, request_timeout: Duration) -> Client {
    let pairs = [
        ("HUAWEICLOUD_SDK_AK", "HOSTILEAK000000000001"),
        (
            "HUAWEICLOUD_SDK_SK",
            "hostile-secret-key-000000000000000000001",
        ),
    ];
    let config = CredentialsConfig {
        source: Source::Env,
        ..Default::default()
    };
    let (credentials, _warnings) =
        CredentialProvider::new(&config, &Environment::from_pairs(pairs))
            .expect("environment credentials resolve");
    let config = ClientConfig {
        endpoint: Url::parse(&format!("http://{addr}")).expect("a valid endpoint"),
        project_id: PROJECT.to_string(),
        request_timeout,
    };
    Client::new(&config, credentials).expect("the client builds")
}

/// What a hand-made server does after reading the request head.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// A 200 whose body is these bytes, with a matching `Content-Length`.
    Body(&'static [u8]),
    /// A 200 of 100 MB of zeros, generated 64 KiB at a time, chunked.
    HundredMbChunked,
    /// The same with an honest `Content-Length` of 100 MB.
    HundredMbAnnounced,
    /// The status line and headers, one byte every 200 ms.
    TrickledHead,
}

/// A one-connection server on 127.0.0.1:0. The counter holds the body bytes
/// it managed to write; the channel fires when it is done with the
/// connection (finished, or the client hung up).
async fn serve_once(how: Misbehaviour) -> (SocketAddr, Arc<AtomicU64>, oneshot::Receiver<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a local address");
    let written = Arc::new(AtomicU64::new(0));
    let (done, finished) = oneshot::channel();
    let counter = Arc::clone(&written);
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            misbehave(stream, how, &counter).await;
        }
        let _ = done.send(());
    });
    (addr, written, finished)
}

async fn misbehave(mut stream: TcpStream, how: Misbehaviour, written: &AtomicU64) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    match how {
        Misbehaviour::Body(body) => {
            let head = format!("{ok}Content-Length: {}\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body).await;
        }
        Misbehaviour::HundredMbChunked | Misbehaviour::HundredMbAnnounced => {
            let chunked = matches!(how, Misbehaviour::HundredMbChunked);
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_string()
            } else {
                format!("Content-Length: {HUNDRED_MB}")
            };
            let head = format!("{ok}{framing}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'0'; 64 * 1024];
            let mut sent = 0;
            while sent < HUNDRED_MB {
                let size = (HUNDRED_MB - sent).min(chunk.len() as u64) as usize;
                let result = if chunked {
                    let framed =
                        [format!("{size:X}\r\n").as_bytes(), &chunk[..size], b"\r\n"].concat();
                    stream.write_all(&framed).await
                } else {
                    stream.write_all(&chunk[..size]).await
                };
                if result.is_err() {
                    return;
                }
                sent += size as u64;
                written.store(sent, Ordering::SeqCst);
            }
            if chunked {
                let _ = stream.write_all(b"0\r\n\r\n").await;
            }
        }
        Misbehaviour::TrickledHead => {
            let head = format!("{ok}Content-Length: 2\r\n\r\n{{}}");
            for byte in head.as_bytes() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let _ = stream.shutdown().await;
}

#[tokio::test]
async fn hundred_megabyte_answer_is_cut_at_the_cap() {
    for how in [
        Misbehaviour::HundredMbChunked,
        Misbehaviour::HundredMbAnnounced,
    ] {
        let (addr, written, finished) = serve_once(how).await;
        let error = client(addr, GENEROUS)
            .get_job(JOB)
            .await
            .expect_err("a 100 MB body is refused");
        assert_eq!(error.kind, ErrorKind::Decode, "{how:?}: {error}");
        assert_eq!(error.http_status, Some(200), "{how:?}: {error}");
        // The client hung up, so the server stops at a failed write; what
        // it got out is the cap plus what the loopback buffers hold.
        tokio::time::timeout(GENEROUS, finished)
            .await
            .expect("the server notices the client hung up")
            .expect("the server task ends");
        let written = written.load(Ordering::SeqCst);
        assert!(
            written < HUNDRED_MB / 4,
            "{how:?}: the server wrote {written} bytes before the client hung up"
        );
        // The number docs/reliability.md quotes (`-- --nocapture`).
        eprintln!("{how:?}: the server wrote {written} bytes before the client hung up");
    }
}

#[tokio::test]
async fn trickled_head_hits_the_request_timeout() {
    let (addr, _written, _finished) = serve_once(Misbehaviour::TrickledHead).await;
    let error = client(addr, Duration::from_secs(1))
        .get_job(JOB)
        .await
        .expect_err("a head trickled over seconds is not waited for");
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
}

#[tokio::test]
async fn unreadable_bodies_in_a_200_are_decode() {
    let deep: &'static [u8] = "[".repeat(100_000).leak().as_bytes();
    let cases: [(&str, &'static [u8]); 3] = [
        ("invalid UTF-8", b"{\"status\":\"RUN\xff\xfeNING\"}"),
        (
            "bare invalid bytes",
            b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x90\x28\xbc",
        ),
        ("100,000 opening brackets", deep),
    ];
    for (name, body) in cases {
        let (addr, _written, _finished) = serve_once(Misbehaviour::Body(body)).await;
        let error = client(addr, GENEROUS).get_job(JOB).await.expect_err(name);
        assert_eq!(error.kind, ErrorKind::Decode, "{name}: {error}");
        assert_eq!(error.http_status, Some(200), "{name}: {error}");
    }
}

#[test]
fn job_id_of_ten_thousand_characters() {
    let long = "f".repeat(10_000);
    assert_eq!(JobId::parse(&long), Err(JobIdError::TooLong(10_000)));
    let wide = "é".repeat(10_000);
    assert_eq!(JobId::parse(&wide), Err(JobIdError::TooLong(10_000)));

    let body = format!(
        r#"{{"status":"RUNNING","job_id":"{long}","entities":{{"sub_jobs":[{{"status":"FAIL","job_id":"{long}"}}]}}}}"#
    );
    let ecs = services::adapter(Service::Ecs);
    let job = ecs
        .parse(body.as_bytes())
        .expect("a long id is still a job body");
    assert_eq!(job.job_id.as_deref(), Some(long.as_str()));
    assert_eq!(job.sub_jobs[0].job_id.as_deref(), Some(long.as_str()));

    let now = SystemTime::UNIX_EPOCH;
    let headers = AnswerHeaders::default();
    let job =
        services::read_answer(ecs, 200, headers, body.as_bytes(), now).expect("a 200 job body");
    assert_eq!(job.status, Status::Running);

    // An error body whose message is 10,000 characters is cut to its first
    // 200 characters (not bytes: these are two bytes each) and an ellipsis.
    let refusal = format!(r#"{{"error":{{"code":"Ecs.0103","message":"{wide}"}}}}"#);
    let error =
        services::read_answer(ecs, 404, headers, refusal.as_bytes(), now).expect_err("a 404");
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert_eq!(error.message, format!("{}…", "é".repeat(200)));
    // A message of exactly 200 characters is kept whole.
    let exact = format!(
        r#"{{"error_code":"APIGW.0301","error_msg":"{}"}}"#,
        "a".repeat(200)
    );
    let error = services::read_answer(ecs, 401, headers, exact.as_bytes(), now).expect_err("a 401");
    assert_eq!(error.message, "a".repeat(200));
}

/// A fresh `watch.dir` holding one good watch file, `good.jobs`.
fn watch_dir_with_good_file() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::write(dir.path().join("good.jobs"), format!("{JOB} team=web\n")).expect("write");
    dir
}

/// Loads `dir` and checks that the good file still counted.
fn load_beside_good_file(dir: &Path) -> Vec<watch::Problem> {
    let (list, problems) = watch::load(
        &[],
        Some(dir),
        &watch::projects_check(&[ProjectName::default()]),
    );
    let id = JobKey::parse(JOB).expect("a valid id");
    assert!(
        list.contains(&id),
        "the good file was not read: {problems:?}"
    );
    problems
}

#[test]
fn watch_file_past_the_size_cap_is_refused_unread() {
    let dir = watch_dir_with_good_file();
    let big = dir.path().join("huge.jobs");
    // Sparse: the size is set, no byte is written, so the test stays fast.
    let file = fs::File::create(&big).expect("create");
    file.set_len(watch::file::MAX_FILE_BYTES * 4)
        .expect("set_len");
    let problems = load_beside_good_file(dir.path());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, big);
    assert_eq!(problems[0].line, None);
    assert!(problems[0].message.contains("not read"), "{}", problems[0]);
}

#[test]
fn binary_garbage_watch_file_is_problems_not_a_panic() {
    let dir = watch_dir_with_good_file();
    // A fixed pseudo-random sequence (xorshift), so a failure reproduces.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let garbage: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect();
    let path = dir.path().join("garbage.jobs");
    fs::write(&path, garbage).expect("write");
    let problems = load_beside_good_file(dir.path());
    assert!(!problems.is_empty());
    assert!(
        problems.len() <= watch::MAX_PROBLEMS_PER_FILE + 1,
        "{}",
        problems.len()
    );
    assert!(
        problems.iter().all(|problem| problem.path == path),
        "{problems:?}"
    );
}

#[test]
fn symlink_loop_in_watch_dir_is_a_problem() {
    let dir = watch_dir_with_good_file();
    let own = dir.path().join("self.jobs");
    symlink(&own, &own).expect("a link to itself");
    symlink(dir.path().join("b.jobs"), dir.path().join("a.jobs")).expect("a -> b");
    symlink(dir.path().join("a.jobs"), dir.path().join("b.jobs")).expect("b -> a");
    let problems = load_beside_good_file(dir.path());
    let mut paths: Vec<_> = problems
        .iter()
        .map(|problem| problem.path.clone())
        .collect();
    paths.sort();
    let expected = ["a.jobs", "b.jobs", "self.jobs"].map(|name| dir.path().join(name));
    assert_eq!(paths, expected, "{problems:?}");
    assert!(
        problems.iter().all(|problem| problem.line.is_none()),
        "{problems:?}"
    );
}

#[test]
fn hostile_configuration_text_is_an_error_naming_the_file() {
    let mut garbage = String::from("\u{0}\u{1}\u{7f}[\u{fffd}\u{1b}[31m=\"\u{0}");
    garbage.extend((0..2_000u32).filter_map(char::from_u32));
    let cases = [
        ("control characters and garbage", garbage),
        ("NUL in a key", "[cloud]\nre\u{0}gion = \"x\"\n".to_string()),
        (
            "10,000 nested inline tables",
            format!("a = {}1{}", "{ b = ".repeat(10_000), " }".repeat(10_000)),
        ),
        (
            "10,000 nested arrays",
            format!(
                "[watch]\njobs = {}{}",
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ),
    ];
    for (name, text) in cases {
        let error = Config::from_toml_str(&text, "hostile.toml", &BTreeMap::new()).expect_err(name);
        assert!(error.place().starts_with("hostile.toml"), "{name}: {error}");
        assert!(!error.to_string().contains('\n'), "{name}: {error}");
    }
}
