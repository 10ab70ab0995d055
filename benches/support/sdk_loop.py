#!/usr/bin/env python3
"""The official Huawei Cloud Python SDK in a ShowJob loop at a fixed rate:
the peer of benches/poll_cpu.rs, which measures this process's CPU time.

Usage:
    python3 benches/support/sdk_loop.py --endpoint URL --rate R \
        --seconds S --jobs N [--ca-file PEM]

Builds one EcsClient (retries off, the CA bundle when given) and calls
ShowJob for job ids ff808082bbbb{n:020x}, n cycling over 0..N, one call
every 1/R seconds on a fixed schedule (a late call is made at once, the
schedule is not reset). Prints `ready` once the client is built and
`calls=C failures=F` at the end; exits 1 when any call failed, 2 when
the SDK is not installed.
"""

import argparse
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--ca-file")
    parser.add_argument("--project-id", default="0123456789abcdef0123456789abcdef")
    args = parser.parse_args()

    try:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.exceptions import exceptions
        from huaweicloudsdkcore.http.http_config import HttpConfig
        from huaweicloudsdkecs.v2 import EcsClient, ShowJobRequest
    except ImportError as error:
        print(f"the official SDK is not installed: {error}", file=sys.stderr)
        return 2

    credentials = BasicCredentials(
        "BENCHAK00000000000000001", "bench-secret-key", args.project_id
    )
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    if args.ca_file:
        config.ssl_ca_cert = args.ca_file
    client = (
        EcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([args.endpoint])
        .build()
    )
    ids = [f"ff808082bbbb{n:020x}" for n in range(max(args.jobs, 1))]
    print("ready", flush=True)
    calls = failures = 0
    gap = 1.0 / args.rate
    start = time.monotonic()
    end = start + args.seconds
    while True:
        due = start + calls * gap
        now = time.monotonic()
        if due >= end:
            break
        if due > now:
            time.sleep(due - now)
        try:
            response = client.show_job(ShowJobRequest(job_id=ids[calls % len(ids)]))
            if response.status is None:
                failures += 1
        except exceptions.SdkException as error:
            failures += 1
            if failures <= 3:
                print(f"call failed: {error}", file=sys.stderr)
        calls += 1
    print(f"calls={calls} failures={failures}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
