#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Prints the Authorization headers botocore's S3SigV4Auth computes for the requests of
tests/unit/test_s3_client.c, so the expected values there come from botocore, never from our
signer. Each request carries exactly the headers the C client sends (x-amz-content-sha256 and
x-amz-date, the session token's, then the call's own). Re-run to regenerate."""
import datetime
import os
import sys

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import kms_harness  # noqa: E402

FIXED = datetime.datetime(2026, 12, 6, 20, 0, 0)


class S3Config:
    def __init__(self, sign_payload):
        self.s3 = {"payload_signing_enabled": sign_payload}


CASES = [
    # name, method, url, headers, body, token, sign_payload
    ("put_object", "PUT", "http://127.0.0.1:9000/bucket/dir%20one/a%2Bb.txt", {"Content-Type": "text/plain"},
     b"hello", None, True),
    ("get_range_token", "GET", "http://127.0.0.1:9000/bucket/k", {"Range": "bytes=10-19"}, b"",
     "FQoGZXIvYXdzEXAMPLETOKEN/+=", True),
    ("list_v2", "GET", "http://127.0.0.1:9000/bucket?list-type=2&continuation-token=a%2Fb%3D&prefix=dir%2F",
     {}, b"", None, True),
    ("upload_part_unsigned", "PUT", "https://s3.example.com/bucket/big?partNumber=3&uploadId=x%2By", {}, b"part",
     None, False),
    ("create_multipart", "POST", "http://127.0.0.1:9000/bucket/big?uploads", {}, b"", None, True),
]

for name, method, url, headers, body, token, sign in CASES:
    req = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    req.context["client_config"] = S3Config(sign)
    if token:
        req.headers["X-Amz-Security-Token"] = token
    with kms_harness.frozen_clock(FIXED):
        S3SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), "s3",
                    "eu-west-1").add_auth(req)
    print(name)
    print("  X-Amz-Content-SHA256: " + req.headers["X-Amz-Content-SHA256"])
    print("  Authorization: " + req.headers["Authorization"])
