#!/usr/bin/env python3
"""A local S3 server for the upload tests (tests/tests/s3_upload.rs): moto's server, in
memory, on 127.0.0.1:PORT, with real credential checks.

Usage: moto_s3.py PORT BUCKET...   Prints one line `READY ACCESS_KEY_ID SECRET_ACCESS_KEY`
once the buckets exist and every later request must be signed with that key.

moto accepts any credentials unless INITIAL_NO_AUTH_ACTION_COUNT is reached; then it checks
each request's SigV4 signature against IAM users it holds. This script creates a user with
an access key and an s3:* policy while checks are off, creates the buckets, then turns the
checks on (moto's /moto-api/reset-auth with 0). A wrong key id is then refused with
InvalidAccessKeyId (403), a wrong secret with SignatureDoesNotMatch (403).

One fix to moto 5.x: to recompute a signature it rebuilds the request from the URL that
werkzeug decoded, so a query value holding '/' (`prefix=caps%2F`, which every S3 client
sends to list a prefix) is canonicalized as `prefix=caps/` and no valid signature matches
(boto3 fails the same way); likewise a key whose path holds an encoded '=' (`date%3D...`)
is compared decoded. The path and the query keys and values are re-encoded as SigV4
requires (RFC 3986 unreserved characters kept, '/' too in the path) before the check.
"""
import json
import sys
import threading
import urllib.parse
import urllib.request

import boto3
from moto.iam import access_control
from moto.server import ThreadedMotoServer


def _canonical_query(path):
    base, sep, query = path.partition("?")
    # SigV4's canonical path: each byte outside RFC 3986's unreserved set (and '/') encoded
    # once, as clients send it; botocore's S3 signer takes the path as given.
    base = urllib.parse.quote(urllib.parse.unquote(base), safe="/-_.~")
    if not sep:
        return base
    pairs = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        enc = lambda s: urllib.parse.quote(urllib.parse.unquote(s), safe="-_.~")
        pairs.append(enc(key) + eq + enc(value))
    return base + "?" + "&".join(pairs)


_init = access_control.IAMRequestBase.__init__


def _patched_init(self, account_id, method, path, *args, **kwargs):
    _init(self, account_id, method, _canonical_query(path), *args, **kwargs)


access_control.IAMRequestBase.__init__ = _patched_init


def main():
    port = int(sys.argv[1])
    buckets = sys.argv[2:]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="recorder")
    key = iam.create_access_key(UserName="recorder")["AccessKey"]
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="recorder", PolicyName="s3", PolicyDocument=json.dumps(policy))
    s3 = boto3.client("s3", **kw)
    for b in buckets:
        s3.create_bucket(Bucket=b)
    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req).read()
    print("READY", key["AccessKeyId"], key["SecretAccessKey"], flush=True)
    # Serve until stdin closes (the test ends) or the process is killed.
    try:
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
