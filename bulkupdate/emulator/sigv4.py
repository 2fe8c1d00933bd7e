"""Checks AWS Signature Version 4 on incoming requests, as the service's front door does.

Pure: the request arrives as plain values; secrets come from the emulator's configuration.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from bulkupdate.emulator.errors import (
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "cases"
MAX_CLOCK_SKEW_S = 15 * 60  # AWS refuses signatures more than 15 minutes off


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def parse_authorization(header: str | None) -> tuple[str, str, str, str, list[str], str]:
    """(access key, date, region, service, signed headers, signature) of an Authorization header."""
    if not header or not header.startswith(ALGORITHM + " "):
        raise MissingAuthenticationTokenError("Missing Authentication Token")
    parts: dict[str, str] = {}
    for item in header[len(ALGORITHM) + 1 :].split(","):
        key, _, value = item.strip().partition("=")
        parts[key] = value
    try:
        access_key, date, region, service, terminator = parts["Credential"].split("/")
        signed_headers = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
    except (KeyError, ValueError):
        raise InvalidSignatureError("Authorization header is malformed.") from None
    if terminator != "aws4_request":
        raise InvalidSignatureError("Credential should be scoped with a valid terminator.")
    return access_key, date, region, service, signed_headers, signature


def check_service(header: str | None) -> None:
    """Every request must carry a SigV4 Authorization header scoped to the `cases` service."""
    service = parse_authorization(header)[3]
    if service != SERVICE:
        raise InvalidSignatureError(
            f"Credential should be scoped to correct service: '{SERVICE}', not '{service}'."
        )


def verify(
    *,
    method: str,
    raw_path: str,
    query: str,
    headers: Mapping[str, str],
    get_all: Callable[[str], list[str]],
    body: bytes,
    secrets: Mapping[str, str],
    now_s: float,
) -> None:
    """Raise a 403 ServiceError unless a secret of `secrets` (by key id) signed the request."""
    access_key, date, region, service, signed, signature = parse_authorization(
        headers.get("Authorization")
    )
    if service != SERVICE:
        check_service(headers.get("Authorization"))
    secret = secrets.get(access_key)
    if secret is None:
        raise UnrecognizedClientError("The security token included in the request is invalid.")
    amz_date = headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidSignatureError("X-Amz-Date is missing or malformed.") from None
    if abs(signed_at.timestamp() - now_s) > MAX_CLOCK_SKEW_S:
        raise InvalidSignatureError("Signature expired: the request time is too far from now.")
    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in get_all(name))}\n" for name in signed
    )
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&")) if query else []
    payload_hash = headers.get("X-Amz-Content-SHA256") or hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join(
        (
            method.upper(),
            quote(raw_path, safe="/~"),
            "&".join(f"{k}={v}" for k, v in pairs),
            canonical_headers,
            ";".join(signed),
            payload_hash,
        )
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        (ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignatureError(
            "The request signature we calculated does not match the signature you provided."
        )
