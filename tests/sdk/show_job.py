#!/usr/bin/env python3
"""Calls ECS ShowJob with the official Huawei Cloud Python SDK and prints
the job status: a compatibility check of the ecs-jobwatch simulator's
signature verification and wire format against the real client.

Usage:
    pip install huaweicloudsdkecs
    python3 tests/sdk/show_job.py --endpoint http://127.0.0.1:PORT \
        --ak AK --sk SK --project-id PROJECT --job-id JOB [--security-token T]

Prints `status=STATUS sub_jobs=N` and exits 0 when the SDK read the job;
prints the error and exits 1 otherwise (2 when the SDK is not installed).
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ak", required=True)
    parser.add_argument("--sk", required=True)
    parser.add_argument("--project-id", required=True)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--security-token")
    args = parser.parse_args()

    try:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.exceptions import exceptions
        from huaweicloudsdkcore.http.http_config import HttpConfig
        from huaweicloudsdkecs.v2 import EcsClient, ShowJobRequest
    except ImportError as error:
        print(f"the official SDK is not installed: {error}", file=sys.stderr)
        return 2

    credentials = BasicCredentials(args.ak, args.sk, args.project_id)
    if args.security_token:
        credentials = credentials.with_security_token(args.security_token)
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    client = (
        EcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([args.endpoint])
        .build()
    )
    try:
        response = client.show_job(ShowJobRequest(job_id=args.job_id))
    except exceptions.ClientRequestException as error:
        print(
            f"request failed: HTTP {error.status_code} {error.error_code}: "
            f"{error.error_msg} (request id {error.request_id})",
            file=sys.stderr,
        )
        return 1
    except exceptions.SdkException as error:
        print(f"request failed: {error}", file=sys.stderr)
        return 1
    sub_jobs = 0
    if response.entities is not None and response.entities.sub_jobs is not None:
        sub_jobs = len(response.entities.sub_jobs)
    print(f"status={response.status} sub_jobs={sub_jobs} job_id={response.job_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
