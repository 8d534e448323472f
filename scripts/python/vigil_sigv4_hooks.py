"""Schemathesis hooks: sign every request Schemathesis sends to Vigil with AWS
Signature Version 4 (botocore's signer), using the key in VIGIL_ACCESS_KEY_ID /
VIGIL_SECRET_ACCESS_KEY and the scope in VIGIL_REGION / VIGIL_SERVICE; the
Firehose endpoint gets the access key in VIGIL_FIREHOSE_KEY instead.

Loaded with SCHEMATHESIS_HOOKS=vigil_sigv4_hooks (this folder on PYTHONPATH)."""

import os

import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class SigV4(requests.auth.AuthBase):
    """Signs the request as `requests` will send it (final URL, headers, body)."""

    def __init__(self):
        self.credentials = Credentials(
            os.environ["VIGIL_ACCESS_KEY_ID"], os.environ["VIGIL_SECRET_ACCESS_KEY"]
        )
        self.service = os.environ.get("VIGIL_SERVICE", "execute-api")
        self.region = os.environ.get("VIGIL_REGION", "us-east-1")

    def __call__(self, r):
        body = r.body
        if isinstance(body, str):
            body = body.encode()
        aws = AWSRequest(method=r.method, url=r.url, data=body or b"", headers={})
        SigV4Auth(self.credentials, self.service, self.region).add_auth(aws)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws.headers:
                r.headers[name] = aws.headers[name]
        return r


AUTH = None


@schemathesis.hook
def before_call(ctx, case, kwargs):
    global AUTH
    if AUTH is None:
        AUTH = SigV4()
    kwargs["auth"] = AUTH
    firehose_key = os.environ.get("VIGIL_FIREHOSE_KEY")
    if firehose_key and case.operation.path == "/api/v1/firehose":
        if case.headers is None:
            case.headers = {}
        case.headers["X-Amz-Firehose-Access-Key"] = firehose_key
