#!/usr/bin/env bash
# Soak run (not in CI): the release daemon against the simulator with faults,
# 5,000 jobs, for a while (default 30 minutes); samples the daemon's RSS and
# open file descriptors every minute and prints the first and last sample.
#
#   benches/soak.sh [MINUTES] [JOBS]
#
# Output: soak/samples.csv (minute, rss_kib, fds, polls from the simulator),
# soak/daemon.log (its JSON lines), soak/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
jobs=${2:-5000}
out=soak
rm -rf "$out" && mkdir -p "$out/state" "$out/jobs.d"

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/ecs-jobwatch

ak=SOAKAK00000000000001
sk=soak-secret-key-000000000000000000000001
project=0123456789abcdef0123456789abcdef

# Jobs finish at random moments over 1.5 times the run, so some are still
# running at the end; one in ten fails with a failed sub-job, one in twenty
# waits for payment first.
python3 - "$jobs" "$minutes" "$out" "$ak" "$sk" "$project" <<'PY'
import random, sys
jobs, minutes, out, ak, sk, project = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
random.seed(7)
lines = [f'project_id = "{project}"', "", "[[credential]]", f'access_key = "{ak}"', f'secret_key = "{sk}"', ""]
ids = []
for n in range(jobs):
    job_id = f"soak{n:05d}"
    ids.append(job_id)
    end = random.uniform(60, minutes * 60 * 1.5)
    kind = random.random()
    lines += ["[[job]]", f'id = "{job_id}"', 'job_type = "createServer"']
    if kind < 0.05:
        paid = end * 0.5
        lines.append(f'timeline = [ {{ at = "0s", status = "PENDING_PAYMENT" }}, {{ at = "{paid:.0f}s", status = "RUNNING" }}, {{ at = "{end:.0f}s", status = "SUCCESS" }} ]')
    elif kind < 0.15:
        lines.append(f'timeline = [ {{ at = "0s", status = "RUNNING" }}, {{ at = "{end:.0f}s", status = "FAIL", fail_reason = "soak" }} ]')
        lines += ["[[job.sub_job]]", f'id = "{job_id}s"', 'job_type = "createSingleServer"',
                  f'timeline = [ {{ at = "0s", status = "RUNNING" }}, {{ at = "{end:.0f}s", status = "FAIL", fail_reason = "soak" }} ]']
    else:
        lines.append(f'timeline = [ {{ at = "0s", status = "INIT" }}, {{ at = "5s", status = "RUNNING" }}, {{ at = "{end:.0f}s", status = "SUCCESS" }} ]')
    lines.append("")
lines += ["[[fault]]", 'kind = "server_error"', "probability = 0.05", "",
          "[[fault]]", 'kind = "throttle"', "probability = 0.02", 'retry_after = "2s"', "",
          "[[fault]]", 'kind = "truncate"', "probability = 0.01", "",
          "[[fault]]", 'kind = "drop"', "probability = 0.01", "",
          "[[fault]]", 'kind = "latency"', 'latency = ["0ms", "300ms"]', ""]
open(f"{out}/scenario.toml", "w").write("\n".join(lines))
open(f"{out}/jobs.d/soak.jobs", "w").write("\n".join(f"{i} run=soak" for i in ids) + "\n")
PY

"$bin" sim --listen 127.0.0.1:0 --scenario "$out/scenario.toml" >"$out/sim.log" 2>&1 &
sim=$!
trap 'kill $sim $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    addr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["addr"])' "$out/sim.log" 2>/dev/null || true)
    [ -n "$addr" ] && break
    sleep 0.1
done

cat >"$out/config.toml" <<TOML
[cloud]
endpoint = "http://$addr"
project_id = "$project"
[credentials]
source = "env"
[limits]
requests_per_second = 100
max_in_flight = 32
request_timeout = "2s"
[watch]
dir = "$PWD/$out/jobs.d"
[state]
dir = "$PWD/$out/state"
[metrics]
listen = "127.0.0.1:0"
TOML

HUAWEICLOUD_SDK_AK=$ak HUAWEICLOUD_SDK_SK=$sk "$bin" run --config "$out/config.toml" >"$out/daemon.log" 2>"$out/daemon.err" &
daemon=$!

echo "minute,rss_kib,fds,sim_requests" >"$out/samples.csv"
for minute in $(seq 0 "$minutes"); do
    [ "$minute" -gt 0 ] && sleep 60
    kill -0 "$daemon" || { echo "the daemon died" >&2; exit 1; }
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
    fds=$(ls "/proc/$daemon/fd" | wc -l)
    requests=$(curl -s "http://$addr/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests_total"])')
    echo "$minute,$rss,$fds,$requests" | tee -a "$out/samples.csv"
done
kill -TERM "$daemon"; wait "$daemon"; code=$?
{
    echo "jobs: $jobs, minutes: $minutes, exit code at SIGTERM: $code"
    echo "first sample: $(sed -n 2p "$out/samples.csv")"
    echo "last sample:  $(tail -n 1 "$out/samples.csv")"
    echo "final transitions announced: $(grep -c '"event":"job.transition","[^}]*"status":"\(SUCCESS\|FAIL\)"' "$out/daemon.log" || true)"
    echo "api.error lines: $(grep -c '"event":"api.error"' "$out/daemon.log" || true)"
} | tee "$out/summary.txt"
