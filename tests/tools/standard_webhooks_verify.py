#!/usr/bin/env python3
"""Verifies webhook requests with the `standardwebhooks` package from PyPI:
an implementation of the Standard Webhooks scheme that is not ours.

Reads one JSON object on stdin:
  {"secrets": ["whsec_...", "plain secret", ...],
   "requests": [{"headers": {"webhook-id": ..., ...}, "body": "..."}, ...]}
and checks every request with every secret (a `whsec_` secret is given to
the library as text, which decodes it; any other as its UTF-8 bytes, which
the library uses as the key). Prints one line per check and exits 0 when all
pass, 1 when any fails, and 2 when the package is not installed.
"""

import json
import sys

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    print("standardwebhooks is not installed (pip install standardwebhooks)")
    sys.exit(2)


def main() -> int:
    job = json.load(sys.stdin)
    failures = 0
    for index, request in enumerate(job["requests"]):
        for secret in job["secrets"]:
            key = secret if secret.startswith("whsec_") else secret.encode()
            label = "whsec" if secret.startswith("whsec_") else "plain"
            try:
                Webhook(key).verify(request["body"].encode(), request["headers"])
                print(f"request {index}, {label} secret: verified")
            except Exception as error:  # the library raises its own types
                failures += 1
                print(f"request {index}, {label} secret: FAILED: {error!r}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
