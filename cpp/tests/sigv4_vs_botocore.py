"""Our SigV4 signer (sigv4_tool) against botocore's S3SigV4Auth on random S3 requests.

Run by ctest: ``python3 sigv4_vs_botocore.py <sigv4_tool>``. Random keys and secrets, object
keys with spaces, unicode, '+', '~', '=', '%' and '/', query strings, session tokens; exits
non-zero on the first request whose Authorization header differs.
"""

from __future__ import annotations

import datetime
import random
import subprocess
import sys
from unittest import mock
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALPHABET = "abcXYZ019 -._~+=&%/!*'()ሴé😀"
COUNT = 300


def random_text(rng: random.Random, low: int, high: int, alphabet: str = ALPHABET) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def encode(field: str) -> str:
    return field.encode("utf-8").hex()


def main() -> int:
    tool = sys.argv[1]
    rng = random.Random(20261201)
    stdin_lines: list[str] = []
    expected: list[str] = []
    for _ in range(COUNT):
        key_id = random_text(rng, 16, 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        secret = random_text(rng, 30, 40, "abcdefABCDEF0123456789/+")
        token = random_text(rng, 20, 60, "abcXYZ0189/+=") if rng.random() < 0.5 else ""
        region = rng.choice(["us-east-1", "eu-west-3", "auto"])
        path = "/bucket/" + random_text(rng, 1, 30)
        query = [(random_text(rng, 1, 6), random_text(rng, 0, 6)) for _ in range(rng.randint(0, 3))]
        when = datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 10**8))
        timestamp = when.strftime("%Y%m%dT%H%M%SZ")
        url = "http://127.0.0.1:8333" + quote(path, safe="/~")
        if query:
            url += "?" + "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query
            )
        headers = {"Range": f"bytes={rng.randint(0, 99)}-{rng.randint(100, 10**9)}"}
        request = AWSRequest(method="GET", url=url, headers=headers)
        auth = S3SigV4Auth(Credentials(key_id, secret, token or None), "s3", region)
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            auth.add_auth(request)
        assert request.headers["X-Amz-Date"] == timestamp, request.headers["X-Amz-Date"]
        expected.append(request.headers["Authorization"])
        # What we sign: the same headers (Host as botocore derives it) and payload hash.
        sent = [("Host", "127.0.0.1:8333"), ("Range", headers["Range"])]
        sent.append(("x-amz-content-sha256", request.headers["X-Amz-Content-SHA256"]))
        fields = ["GET", path, str(len(query))]
        for k, v in query:
            fields += [k, v]
        fields.append(str(len(sent)))
        for k, v in sent:
            fields += [k, v]
        fields += [request.headers["X-Amz-Content-SHA256"], key_id, secret, token, region, "s3"]
        fields.append(timestamp)
        stdin_lines += [encode(f) for f in fields]
    result = subprocess.run(
        [tool], input="\n".join(stdin_lines) + "\n", capture_output=True, text=True, check=True
    )
    got = result.stdout.splitlines()
    if len(got) != COUNT:
        print(f"sigv4_tool printed {len(got)} lines for {COUNT} requests: {result.stderr}")
        return 1
    for index, (ours, theirs) in enumerate(zip(got, expected, strict=True)):
        if ours != theirs:
            print(f"request {index}: ours {ours!r}\n  botocore {theirs!r}")
            return 1
    print(f"{COUNT} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
