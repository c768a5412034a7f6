#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Prints SigV4 signatures computed by botocore (auth.SigV4Auth) for the
requests of tests/unit/test_sigv4.c, so the expected values there come from
an independent implementation, never from ours. Re-run to regenerate."""
import datetime
import os
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import kms_harness  # noqa: E402

CASES = [
    # name, method, url, headers, body, access key, secret, region, service
    ("kms_encrypt", "POST", "https://kms.us-east-1.amazonaws.com/",
     {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Encrypt"},
     b'{"KeyId": "alias/x", "Plaintext": "aGVsbG8="}', "test", "test", "us-east-1", "kms"),
    ("query_order", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1&Param1=value0",
     {"My-Header1": "  a   b   c  "}, b"", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
     "service"),
    ("path_space", "GET", "https://example.amazonaws.com/a%20b/c", {}, b"", "AKIDEXAMPLE",
     "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-1", "service"),
]

FIXED = datetime.datetime(2015, 8, 30, 12, 36, 0)

for name, method, url, headers, body, ak, sk, region, service in CASES:
    req = AWSRequest(method=method, url=url, headers=headers, data=body)
    with kms_harness.frozen_clock(FIXED):
        SigV4Auth(Credentials(ak, sk), service, region).add_auth(req)
    print(name)
    for k, v in req.headers.items():
        print(f"  {k}: {v}")
