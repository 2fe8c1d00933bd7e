"""How botocore's errors map to what the engine does (the only place codes are read).

The tables over botocore's own lists are read from the installed botocore when the tests are
collected, so a release that adds a code or an exception type is covered without a change here.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from botocore import retryhandler
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    IncompleteReadError,
    MetadataRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    TokenRetrievalError,
)
from botocore.loaders import create_loader
from botocore.retries import standard

from bulkupdate.aws.client import classify, open_cases, region_hint
from bulkupdate.aws.model import service_model
from bulkupdate.errors import ConfigError, ErrorKind

BOTOCORE_THROTTLE_CODES = sorted(standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
BOTOCORE_TRANSIENT_CODES = sorted(
    set(standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES) - set(BOTOCORE_THROTTLE_CODES)
)


def retry_config_conditions(node: Any) -> Iterator[dict[str, Any]]:
    """Every `applies_when.response` of botocore's `_retry.json`, every service's included."""
    if isinstance(node, dict):
        response = (node.get("applies_when") or {}).get("response")
        if response:
            yield response
        for child in node.values():
            yield from retry_config_conditions(child)


RETRY_CONFIG = list(retry_config_conditions(create_loader().load_data("_retry")))
RETRY_CONFIG_CODES = sorted(
    {
        (c["service_error_code"], c["http_status_code"])
        for c in RETRY_CONFIG
        if "service_error_code" in c
    }
)
RETRY_STATUSES = sorted(
    {
        c["http_status_code"]
        for c in RETRY_CONFIG
        if "service_error_code" not in c and "http_status_code" in c
    }
    | set(standard.TransientRetryableChecker._TRANSIENT_STATUS_CODES)
)
RETRIED_EXCEPTIONS = sorted(
    {
        *standard.TransientRetryableChecker._TRANSIENT_EXCEPTION_CLS,
        *standard.RetryQuotaChecker._TIMEOUT_EXCEPTIONS,
        *retryhandler.EXCEPTION_MAP["GENERAL_CONNECTION_ERROR"],
        IncompleteReadError,  # raised reading a body, where botocore's retries never see it
        ResponseStreamingError,
    },
    key=lambda cls: f"{cls.__module__}.{cls.__name__}",
)


def instance_of(cls: type[BaseException]) -> BaseException:
    """An instance of any botocore or aiohttp exception, its message fields filled in."""
    if issubclass(cls, BotoCoreError):
        names = {field for _, field, _, _ in string.Formatter().parse(cls.fmt) if field}
        return cls(**dict.fromkeys(names, "x"))
    return cls()


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


@pytest.mark.parametrize("code", BOTOCORE_THROTTLE_CODES)
def test_every_code_botocore_calls_throttling_throttles_instead_of_failing_the_row(
    code: str,
) -> None:
    call_error = classify(client_error(code, 400))
    assert (call_error.kind, call_error.code) == (ErrorKind.THROTTLED, code)


@pytest.mark.parametrize("code", BOTOCORE_TRANSIENT_CODES)
def test_every_code_botocore_calls_transient_is_retried(code: str) -> None:
    call_error = classify(client_error(code, 400))
    assert (call_error.kind, call_error.code) == (ErrorKind.TRANSIENT, code)


@pytest.mark.parametrize(("code", "status"), RETRY_CONFIG_CODES)
def test_every_code_botocores_retry_config_retries_is_retried_with_the_status_it_lists(
    code: str, status: int
) -> None:
    expected = ErrorKind.THROTTLED if code in BOTOCORE_THROTTLE_CODES else ErrorKind.TRANSIENT
    assert classify(client_error(code, status)).kind is expected


@pytest.mark.parametrize("status", RETRY_STATUSES)
def test_every_status_botocore_retries_without_a_code_is_retried(status: int) -> None:
    expected = ErrorKind.THROTTLED if status == 429 else ErrorKind.TRANSIENT
    assert classify(client_error(str(status), status)).kind is expected


@pytest.mark.parametrize("error_type", RETRIED_EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exception_type_botocore_retries_is_transient(
    error_type: type[BaseException],
) -> None:
    call_error = classify(instance_of(error_type))
    assert (call_error.kind, call_error.code) == (ErrorKind.TRANSIENT, error_type.__name__)


@pytest.mark.parametrize(
    "error",
    [
        CredentialRetrievalError(provider="container-role", error_msg="connection refused"),
        CredentialRetrievalError(provider="custom-process", error_msg="exit status 1"),
        TokenRetrievalError(provider="sso", error_msg="the SSO OIDC endpoint timed out"),
        MetadataRetrievalError(error_msg="the instance metadata service did not answer"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_credential_endpoint_that_did_not_answer_is_retried_as_transient(
    error: BotoCoreError,
) -> None:
    call_error = classify(error)
    assert (call_error.kind, call_error.code) == (ErrorKind.TRANSIENT, type(error).__name__)


@pytest.mark.parametrize(
    "error",
    [NoCredentialsError(), PartialCredentialsError(provider="env", cred_var="secret_key")],
    ids=lambda error: type(error).__name__,
)
def test_no_credentials_at_all_stops_the_run(error: BotoCoreError) -> None:
    call_error = classify(error)
    assert (call_error.kind, call_error.code) == (ErrorKind.SYSTEMIC, "NoCredentials")


# What each of Connect Cases' modeled errors means for UpdateCase. A new modeled error fails
# the test below until it gets a line here.
CASES_ERRORS = {
    "ThrottlingException": ErrorKind.THROTTLED,
    "InternalServerException": ErrorKind.TRANSIENT,
    "ValidationException": ErrorKind.ROW,
    "ConflictException": ErrorKind.ROW,
    "ServiceQuotaExceededException": ErrorKind.ROW,
    "ResourceNotFoundException": ErrorKind.ROW,  # of a case; of a domain: systemic (above)
    "AccessDeniedException": ErrorKind.SYSTEMIC,
}


def test_connect_cases_modeled_errors_are_classified_with_their_modeled_status() -> None:
    shapes = service_model()["shapes"]
    modeled = {name: shape for name, shape in shapes.items() if shape.get("exception")}
    assert set(modeled) == set(CASES_ERRORS)
    for name, shape in modeled.items():
        error = client_error(name, shape["error"]["httpStatusCode"], resourceType="Case")
        assert classify(error).kind is CASES_ERRORS[name], name


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"), True),
        (ConnectTimeoutError(endpoint_url="http://10.255.255.1/"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1/"), False),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1/"), False),
    ],
)
def test_a_connection_never_made_is_told_apart_as_unreachable(
    error: BaseException, unreachable: bool
) -> None:
    classified = classify(error)
    assert classified.kind is ErrorKind.TRANSIENT
    assert classified.unreachable is unreachable
    assert classified.outcome_unknown is not unreachable


async def test_an_endpoint_without_a_scheme_from_the_environment_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CONNECTCASES", "127.0.0.1:4566")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with pytest.raises(ConfigError) as caught:
        async with open_cases(domain_id="d", region="us-east-1"):
            pass
    assert caught.value.key == "--endpoint-url"
    assert "like http://127.0.0.1:4566" in caught.value.message


def test_a_region_with_connect_cases_gets_no_hint() -> None:
    assert region_hint("us-east-1") is None


def test_a_misspelt_region_gets_a_hint_with_the_nearest_region_that_has_connect_cases() -> None:
    assert region_hint("us-esat-1") == (
        "Region 'us-esat-1' is not one where botocore knows Connect Cases (did you mean us-east-1?)"
    )
