# SPDX-License-Identifier: Apache-2.0
"""Helpers of the S3 integration tests: boto3 S3 clients of a cloister-kms --dev (kms_harness starts
it), and requests signed by botocore but sent as given (a Host header of our choosing, an
aws-chunked body), for what boto3 does not send by itself."""
import hashlib
import hmac
import http.client
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402,F401

import boto3  # noqa: E402
from botocore.auth import S3SigV4Auth, SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

ACCOUNT = "111122223333"


def s3_client(endpoint, key="test", secret="test", region="us-east-1", style="path", **config):
    """A boto3 S3 client in a Session of its own (boto3's default session is not thread-safe)."""
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                      s3={"addressing_style": style}, **config))


def kms_client(endpoint, key="test", secret="test", region="us-east-1"):
    return kms_harness.boto_client(endpoint, key=key, secret=secret, region=region)


def error(exc):
    """(code, message) of a botocore ClientError."""
    e = exc.exception.response["Error"]
    return e.get("Code"), e.get("Message")


def send(port, method, url, body=b"", headers=None, key="test", secret="test", region="us-east-1", sign=True):
    """One request to 127.0.0.1:port for `url` (whose host may be a virtual-host name), signed by
    botocore's S3SigV4Auth when sign; returns (status, headers, body)."""
    headers = dict(headers or {})
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    if sign:
        if "X-Amz-Content-SHA256" in headers:
            # botocore's SigV4Auth takes the payload hash from this header as given (S3SigV4Auth would
            # replace it with the body's); the paths here need no encoding, where the two differ.
            SigV4Auth(Credentials(key, secret), "s3", region).add_auth(req)
        else:
            S3SigV4Auth(Credentials(key, secret), "s3", region).add_auth(req)
    path = url.split("/", 3)
    target = "/" + (path[3] if len(path) > 3 else "")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", path[2])
    for k, v in req.headers.items():
        conn.putheader(k, v)
    if "Content-Length" not in req.headers:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body:
        conn.send(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def _hmac(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signing_key(secret, date8, region, service="s3"):
    """Step 4 of "Create a signed AWS API request", computed here (Python's hmac), independently of the
    server's sigv4.c."""
    k = _hmac(("AWS4" + secret).encode(), date8)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def chunked_body(data, chunk, seed_signature, key, amz_date, scope, tamper=None):
    """The aws-chunked encoding of data ("Signature Calculations for the Authorization Header:
    Transferring Payload in Multiple Chunks"), each chunk signed, chained from the seed signature.
    tamper(index, chunk_bytes) may return other bytes for a chunk after it is signed."""
    empty = hashlib.sha256(b"").hexdigest()
    out, prev = [], seed_signature
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for i, piece in enumerate(pieces):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty,
                         hashlib.sha256(piece).hexdigest()])
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        sent = tamper(i, piece) if tamper else piece
        out.append(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(piece), sig.encode(), sent))
        prev = sig
    return b"".join(out)
