#!/usr/bin/env python3
"""Writes tests/data/sdk-client-requests.json: the requests ecs-jobwatch's
`Client` must send at a fixed clock, each signed by the official Huawei
Cloud Python SDK (huaweicloudsdkcore 3.1.219), so that
`tests/it/client_signing.rs` compares the client's real headers, signature
included, with an answer the project's own signer had no part in.

Each case is signed the way the SDK signs an API call: `BasicCredentials`
(with a security token where the case has one) and its `sign_request`,
which adds `X-Project-Id` and `X-Security-Token`, then the SDK's `Signer`
adds `Host` and `Authorization`. The request's own headers are the two the
client sets itself, `Content-Type: application/json` and a fixed
`X-Sdk-Date`. The SDK's API clients also sign `User-Agent`, which
ecs-jobwatch sends unsigned, so the SDK's signer is called directly here
rather than through `EcsClient` (tests/sdk/show_job.py does that against
the simulator).

The host is 127.83.114.1:38207, a loopback address and port the Rust test
listens on, because the port is part of the signed `Host` header.

Usage:
    pip install huaweicloudsdkecs==3.1.219
    python3 tests/sdk/client_vector.py > tests/data/sdk-client-requests.json
"""

import json
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

HOST = "127.83.114.1:38207"
SDK_DATE = "20240501T123456Z"
PROJECT = "0123456789abcdef0123456789abcdef"
AK = "VECTORAK000000000001"
SK = "vector-secret-key-00000000000000000000001"
TOKEN = "vector-security-token-0000000000000000000000000000000000000001"

CASES = [
    {
        "name": "ECS ShowJob",
        "endpoint_path": "",
        "path": f"/v1/{PROJECT}/jobs/ff80808288d41e1b018990260955686a",
        "query": [],
        "security_token": None,
    },
    {
        "name": "ECS ShowJob with a temporary key",
        "endpoint_path": "",
        "path": f"/v1/{PROJECT}/jobs/ff80808288d41e1b018990260955686a",
        "query": [],
        "security_token": TOKEN,
    },
    {
        "name": "RDS job query below an endpoint path, with a query",
        "endpoint_path": "/rds",
        "path": f"/v3/{PROJECT}/jobs",
        "query": [["id", "dff1d289-4d03-4942-8b9f-463ea07c000d"]],
        "security_token": None,
    },
]


def sign(case):
    credentials = BasicCredentials(AK, SK, PROJECT)
    if case["security_token"]:
        credentials = credentials.with_security_token(case["security_token"])
    request = SdkRequest(
        method="GET",
        schema="http",
        host=HOST,
        resource_path=case["endpoint_path"] + case["path"],
        query_params=[tuple(pair) for pair in case["query"]],
        header_params={"Content-Type": "application/json", "X-Sdk-Date": SDK_DATE},
        body="",
    )
    signed = credentials.sign_request(request)
    return {
        **case,
        "method": "GET",
        "host": HOST,
        "access_key": AK,
        "secret_key": SK,
        "project_id": PROJECT,
        "sdk_date": SDK_DATE,
        "uri": signed.uri,
        "headers": dict(sorted(signed.header_params.items())),
    }


def main():
    from importlib.metadata import version

    vectors = {
        "generator": "tests/sdk/client_vector.py",
        "huaweicloudsdkcore": version("huaweicloudsdkcore"),
        "cases": [sign(case) for case in CASES],
    }
    json.dump(vectors, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
