# SPDX-License-Identifier: Apache-2.0
"""Requests to cloister-kms below boto3: botocore's SigV4Auth signs (an implementation
independent of ours), http.client sends, and the caller chooses what is signed and what is
sent. Used by the tests that replay attacks on the wire."""
import http.client
import json

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class PickySigV4(SigV4Auth):
    """SigV4Auth that leaves out of SignedHeaders the headers named in `unsigned` (lower case)."""

    def __init__(self, creds, service, region, unsigned=()):
        super().__init__(creds, service, region)
        self.unsigned = set(unsigned)

    def headers_to_sign(self, request):
        h = super().headers_to_sign(request)
        for name in list(h.keys()):
            if name.lower() in self.unsigned:
                del h[name]
        return h


def signed_headers(port, target, body, unsigned=(), extra=None, key="test", secret="test", region="us-east-1"):
    """The headers of a request to TrentService.<target> signed by botocore, minus `unsigned`."""
    h = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target}
    h.update(extra or {})
    req = AWSRequest(method="POST", url="http://127.0.0.1:%d/" % port, data=body, headers=h)
    PickySigV4(Credentials(key, secret), "kms", region, unsigned).add_auth(req)
    return dict(req.headers.items())


def send(port, headers, body, timeout=30):
    """POSTs body with exactly these headers; returns (status, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def call(port, target, payload, **kw):
    """A correctly signed request: (status, answer)."""
    body = json.dumps(payload).encode()
    return send(port, signed_headers(port, target, body, **kw), body)
