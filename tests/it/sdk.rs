//! The official Huawei Cloud Python SDK (`huaweicloudsdkecs` 3.1.219,
//! installed by `.ci/run`) against the simulator: its `ShowJob` reads a job
//! signed with a plain key and with a temporary key, and a wrong secret is
//! refused with `APIGW.0301`. This is the check that the simulator's
//! signature verification and wire format are the real client's, not only
//! the daemon's.
//!
//! Without the SDK the test skips visibly, and fails under CI or
//! `REQUIRE_TOOLS=1` (see `harness::skip`).

use crate::harness::{self, AK, PROJECT, SK};

const TOKEN_AK: &str = "ITAK00000000000000000002";
const TOKEN_SK: &str = "it-secret-key-00000000000000000000000002";
const TOKEN: &str = "it-security-token-0000000000000000000000000000000000000002";
const JOB: &str = "ff80808288d41e1b018990260955686a";
const SUB_JOB: &str = "ff80808288d41e1b018990260955686b";

/// The SDK's script: exit 0 and `status=... sub_jobs=N` on success.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/show_job.py");

/// Runs the SDK's `ShowJob` against `endpoint` (blocking).
fn show_job(endpoint: &str, ak: &str, sk: &str, token: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new("python3");
    command.args([
        SCRIPT,
        "--endpoint",
        endpoint,
        "--ak",
        ak,
        "--sk",
        sk,
        "--project-id",
        PROJECT,
        "--job-id",
        JOB,
    ]);
    if let Some(token) = token {
        command.args(["--security-token", token]);
    }
    command.output().expect("python3 runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_reads_a_job() {
    if !harness::require_command(
        "python3",
        &["-c", "import huaweicloudsdkecs"],
        "the official SDK (pip install huaweicloudsdkecs==3.1.219)",
    ) {
        return;
    }
    let sim = harness::sim(&format!(
        "[[credential]]\naccess_key = \"{TOKEN_AK}\"\nsecret_key = \"{TOKEN_SK}\"\n\
         security_token = \"{TOKEN}\"\n\n\
         [[job]]\nid = \"{JOB}\"\njob_type = \"createServer\"\n\
         timeline = [ {{ at = \"0s\", status = \"RUNNING\" }} ]\n\
         [[job.sub_job]]\nid = \"{SUB_JOB}\"\njob_type = \"createSingleServer\"\n\
         server_id = \"1c74e090-c569-4b52-9eaa-fd34776cec28\"\n\
         timeline = [ {{ at = \"0s\", status = \"RUNNING\" }} ]\n"
    ))
    .await;
    let endpoint = sim.base_url();
    let run = |ak: &'static str, sk: &'static str, token: Option<&'static str>| {
        let endpoint = endpoint.clone();
        tokio::task::spawn_blocking(move || show_job(&endpoint, ak, sk, token))
    };

    let output = run(AK, SK, None).await.expect("the SDK ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout {stdout}\nstderr {stderr}");
    assert!(
        stdout.contains(&format!("status=RUNNING sub_jobs=1 job_id={JOB}")),
        "{stdout}"
    );

    let output = run(TOKEN_AK, TOKEN_SK, Some(TOKEN))
        .await
        .expect("the SDK ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = run(AK, "wrong-secret", None).await.expect("the SDK ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP 401 APIGW.0301"), "{stderr}");

    let stats = sim.stats();
    assert_eq!(stats.rejected_auth, 1, "{stats:?}");
    assert_eq!(sim.requests(JOB), 3, "{stats:?}");
}
