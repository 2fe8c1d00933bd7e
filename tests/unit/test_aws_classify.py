"""How botocore's errors map to what the engine does (the only place codes are read)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    NoCredentialsError,
    ReadTimeoutError,
)

from bulkupdate.aws.client import classify
from bulkupdate.errors import ErrorKind


def client_error(code: str, status: int, **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "UpdateCase")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (client_error("ThrottlingException", 429), ErrorKind.THROTTLED, "ThrottlingException"),
        (client_error("429", 429), ErrorKind.THROTTLED, "429"),
        (client_error("InternalServerException", 500), ErrorKind.TRANSIENT, None),
        (client_error("503", 503), ErrorKind.TRANSIENT, None),
        (client_error("ValidationException", 400), ErrorKind.ROW, None),
        (
            client_error("ResourceNotFoundException", 404, resourceType="Case", resourceId="c"),
            ErrorKind.ROW,
            None,
        ),
        (
            client_error("ResourceNotFoundException", 404, resourceType="Domain", resourceId="d"),
            ErrorKind.SYSTEMIC,
            None,
        ),
        (client_error("AccessDeniedException", 403), ErrorKind.SYSTEMIC, None),
        (client_error("UnrecognizedClientException", 403), ErrorKind.SYSTEMIC, None),
        (client_error("ExpiredTokenException", 403), ErrorKind.SYSTEMIC, None),
        (client_error("InvalidSignatureException", 403), ErrorKind.SYSTEMIC, None),
        (client_error("SomeNewAuthException", 403), ErrorKind.SYSTEMIC, None),
        (client_error("401", 401), ErrorKind.SYSTEMIC, None),
        (client_error("ConflictException", 409), ErrorKind.ROW, None),
        (NoCredentialsError(), ErrorKind.SYSTEMIC, "NoCredentials"),
        (ConnectionClosedError(endpoint_url="http://x"), ErrorKind.TRANSIENT, None),
        (ReadTimeoutError(endpoint_url="http://x"), ErrorKind.TRANSIENT, None),
        (aiohttp.ServerDisconnectedError(), ErrorKind.TRANSIENT, None),
        (TimeoutError(), ErrorKind.TRANSIENT, None),
    ],
)
def test_errors_are_classified_by_what_the_engine_should_do(
    error: BaseException, kind: ErrorKind, code: str | None
) -> None:
    call_error = classify(error)
    assert call_error.kind is kind
    if code is not None:
        assert call_error.code == code


def test_retry_after_seconds_is_carried_over() -> None:
    error = client_error("InternalServerException", 500, retryAfterSeconds=3)
    assert classify(error).retry_after_s == 3.0


def test_unexpected_exceptions_stop_the_run_instead_of_failing_rows() -> None:
    call_error = classify(KeyError("a bug"))
    assert call_error.kind is ErrorKind.SYSTEMIC
    assert call_error.code == "UnexpectedKeyError"
