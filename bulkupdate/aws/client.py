"""The real Connect Cases client: a tuned aiobotocore client behind the CasesApi Protocol, and
the one place that reads botocore error codes and turns them into CallError kinds.

botocore's retries are off (one retry layer: the engine's), so every throttle reaches pacing.
What botocore would retry is still read from botocore, at import, so a release that learns a
new code teaches it here too:

    THROTTLED  the codes botocore's standard mode calls throttling (its ThrottledRetryableChecker,
               which its adaptive limiter and retry quota also use: ThrottlingException,
               LimitExceededException, ...), and any 429
    TRANSIENT  botocore's transient codes (RequestTimeout, ...), every other code its retry
               config `data/_retry.json` retries for any service, any 5xx; the exception types it
               retries (connection errors, timeouts, aiohttp's via aiobotocore); a body cut short
               (IncompleteReadError); a credential or token endpoint that failed to answer
    ROW        Connect Cases' ValidationException, SerializationException, ConflictException,
               ServiceQuotaExceededException, ResourceNotFound of a case, any other 4xx
    SYSTEMIC   AccessDenied and the authentication codes, any other 401/403, ResourceNotFound of
               anything but a case, no credentials at all, any other botocore error, a bug

A code in both of botocore's lists (PriorRequestNotComplete) is a throttle, as its throttling
detector says. Credentials: an endpoint that did not answer (CredentialRetrievalError from the
container or instance role, credential_process or SSO; TokenRetrievalError; IMDS's
MetadataRetrievalError) is a blip, retried and counted against --max-attempts like a 5xx; if it
stays down, nothing succeeds and the outage rule takes over (no row fails; the run stops after
--outage-timeout). No credentials at all (NoCredentials, PartialCredentials) needs a person: the
run stops, exit 3.

A transient failure after the connection was made (a read timeout, a connection closed mid-call)
leaves the call's outcome unknown: it may still be applied, so its case waits the settle period.
A connection never made (refused, unreachable, connect timeout) sent nothing.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import botocore.loaders
import botocore.session
import structlog
from aiobotocore.session import AioSession
from aiolimiter import AsyncLimiter
from botocore import retryhandler
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    IncompleteReadError,
    InvalidRegionError,
    MetadataRetrievalError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.retries import standard

from bulkupdate.aws.batch import batch_outcome, batch_request, refused
from bulkupdate.aws.model import add_extras
from bulkupdate.errors import CallError, ConfigError, ErrorKind
from bulkupdate.models import (
    BatchOutcome,
    CasePage,
    Field,
    FieldOption,
    FieldType,
    FoundCase,
    WireValue,
)


def _applies_when(node: Any) -> Iterator[dict[str, Any]]:
    """Every `applies_when` condition in botocore's retry config, at any depth."""
    if isinstance(node, dict):
        when = node.get("applies_when")
        if isinstance(when, dict):
            yield when
        for child in node.values():
            yield from _applies_when(child)


def _retry_config() -> tuple[frozenset[str], tuple[type[BaseException], ...]]:
    """The service error codes and the socket-error exception types that botocore's retry
    config (`data/_retry.json`, every service's section) retries, read with botocore's loader."""
    config = botocore.loaders.create_loader().load_data("_retry")
    codes: set[str] = set()
    errors: list[type[BaseException]] = []
    for when in _applies_when(config):
        code = when.get("response", {}).get("service_error_code")
        if code:
            codes.add(str(code))
        for name in when.get("socket_errors", ()):
            errors.extend(retryhandler.EXCEPTION_MAP.get(name, ()))
    return frozenset(codes), tuple(errors)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """The exception types botocore retries, and the few it never gets to see."""
    found = (
        *standard.TransientRetryableChecker._TRANSIENT_EXCEPTION_CLS,  # connection errors
        *standard.RetryQuotaChecker._TIMEOUT_EXCEPTIONS,
        *_SOCKET_ERRORS,  # _retry.json's, with aiohttp's that aiobotocore adds
        # Raised by botocore's StreamingBody after the call returned, outside its retry checks:
        # the connection broke before the body's Content-Length was read.
        IncompleteReadError,
        aiohttp.ClientError,  # aiohttp's own, below botocore
        asyncio.TimeoutError,
        OSError,
    )
    return tuple(dict.fromkeys(found))


_RETRY_CONFIG_CODES, _SOCKET_ERRORS = _retry_config()
# botocore keeps these lists on its checker classes; a release that moved them fails at import
# (and in tests) rather than silently classifying less.
THROTTLE_CODES = frozenset(standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
TRANSIENT_CODES = (
    frozenset(standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES) | _RETRY_CONFIG_CODES
) - THROTTLE_CODES
TRANSIENT_ERRORS = _transient_errors()
# A credential or token endpoint that failed to answer: a blip, counted against --max-attempts.
CREDENTIAL_BLIPS = (CredentialRetrievalError, TokenRetrievalError, MetadataRetrievalError)
# Credentials or permissions: nothing will succeed until a person fixes them.
SYSTEMIC_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
# Connect Cases' modeled errors that the row itself causes (InternalServerException, its other
# retryable one, is a 500; ResourceNotFoundException depends on the resource).
ROW_CODES = frozenset(
    {
        "ValidationException",
        "SerializationException",
        "ConflictException",
        "ServiceQuotaExceededException",
    }
)
FIELD_TYPES = frozenset(t.value for t in FieldType)
USER_AGENT = "bulkupdate"
log = structlog.get_logger("bulkupdate")


def classify(error: BaseException) -> CallError:
    """The engine's view of any exception an aiobotocore call can raise."""
    if isinstance(error, ClientError):
        return _classify_client_error(error)
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return CallError(ErrorKind.SYSTEMIC, "NoCredentials", str(error))
    if isinstance(error, CREDENTIAL_BLIPS):  # nothing was sent: no outcome to wait for
        return CallError(ErrorKind.TRANSIENT, type(error).__name__, str(error))
    if isinstance(error, TRANSIENT_ERRORS):
        message = str(error) or "timed out"
        never_sent = _never_sent(error)
        return CallError(
            ErrorKind.TRANSIENT,
            type(error).__name__,
            message,
            outcome_unknown=not never_sent,
            unreachable=never_sent,
        )
    if isinstance(error, BotoCoreError):
        return CallError(ErrorKind.SYSTEMIC, type(error).__name__, str(error))
    # Anything else is unexpected: stop the run (resumable) rather than fail rows on a guess.
    log.exception("unexpected_call_error")
    return CallError(ErrorKind.SYSTEMIC, f"Unexpected{type(error).__name__}", str(error))


def _never_sent(error: BaseException) -> bool:
    """A connection that was never made (refused, unreachable, TLS or proxy failure, connect
    timeout): the request did not reach the service. Anything else that broke after connecting
    (read timeout, connection closed mid-call) may still be applied by the service."""
    never = BotoConnectionError | aiohttp.ClientConnectorError | ConnectionRefusedError
    return isinstance(error, never)


def _classify_client_error(error: ClientError) -> CallError:
    response: dict[str, Any] = error.response
    code = str(response.get("Error", {}).get("Code", ""))
    message = str(response.get("Error", {}).get("Message", "")) or str(error)
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    retry_after = response.get("retryAfterSeconds")
    retry_after_s = float(retry_after) if retry_after is not None else None
    if code in THROTTLE_CODES or status == 429:
        return CallError(ErrorKind.THROTTLED, code or "429", message, retry_after_s=retry_after_s)
    if code in SYSTEMIC_CODES:
        return CallError(ErrorKind.SYSTEMIC, code, message)
    if code == "ResourceNotFoundException":
        # An unknown case fails its row; an unknown domain (or anything else) stops the run.
        kind = ErrorKind.ROW if response.get("resourceType") == "Case" else ErrorKind.SYSTEMIC
        return CallError(kind, code, message)
    if code in TRANSIENT_CODES or status >= 500 or code == "InternalServerException":
        return CallError(ErrorKind.TRANSIENT, code, message, retry_after_s=retry_after_s)
    if status in (401, 403):
        # Authentication or authorisation with a code we do not know: fix it and resume,
        # rather than fail every row for good.
        return CallError(ErrorKind.SYSTEMIC, code or str(status), message)
    if code in ROW_CODES or 400 <= status < 500:
        return CallError(ErrorKind.ROW, code, message)
    return CallError(ErrorKind.TRANSIENT, code or str(status), message)


class _FixedUserAgent:
    """botocore rebuilds the User-Agent string on every call (~14 % of a call here)."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def to_string(self) -> str:
        return self._text


# AWS's default quotas (rate per s, burst) of the reads a run makes before its first write.
# They are fixed, known limits, so a plain aiolimiter bucket keeps start-up from bursting into
# throttles on a domain with many SingleSelect fields; UpdateCase has the adaptive gate instead.
READ_QUOTAS = {"list_fields": (2.0, 5), "list_field_options": (6.0, 16), "get_case": (4.0, 10)}


class BotocoreCases:
    """CasesApi over one aiobotocore client bound to one domain."""

    def __init__(self, client: Any, domain_id: str) -> None:
        self._client = client
        self._domain_id = domain_id
        self.endpoint_url: str = client.meta.endpoint_url  # where the calls go, for messages
        self.region: str | None = client.meta.region_name
        self._limiters = {
            operation: AsyncLimiter(burst, burst / rate_per_s)
            for operation, (rate_per_s, burst) in READ_QUOTAS.items()
        }

    async def update_case(
        self,
        case_id: str,
        fields: Sequence[Mapping[str, Any]],
        performed_by: dict[str, str] | None,
    ) -> None:
        params: dict[str, Any] = {"domainId": self._domain_id, "caseId": case_id, "fields": fields}
        if performed_by:
            params["performedBy"] = performed_by
        await self._call("update_case", **params)

    async def batch_update_case(
        self,
        case_ids: Sequence[str],
        fields: Sequence[Mapping[str, Any]],
        *,
        title: str | None = None,
        status: str | None = None,
        customer_id: str | None = None,
        performed_by: dict[str, str] | None,
        client_token: str,
    ) -> BatchOutcome:
        """One BatchUpdateCase call (see `aws.batch`): the same patch on 1..100 cases. ValueError
        on a caller's bug (too many cases, a case twice, title/status/customer_id in `fields`)."""
        params = batch_request(
            self._domain_id,
            case_ids,
            fields,
            title=title,
            status=status,
            customer_id=customer_id,
            performed_by=performed_by,
            client_token=client_token,
        )
        try:
            answer = await self._call("batch_update_case", **params)
        except CallError as error:
            raise refused(error) from error.__cause__
        return batch_outcome(case_ids, answer)

    async def list_fields(self) -> list[Field]:
        found: list[Field] = []
        async for page in self._pages("list_fields", maxResults=100):
            for item in page["fields"]:
                if item["type"] not in FIELD_TYPES:
                    log.warning("field_type_unknown", field_id=item["fieldId"], type=item["type"])
                    continue  # a type newer than this tool: its columns will be unknown
                text = (item.get("attributes") or {}).get("text") or {}
                found.append(
                    Field(
                        field_id=item["fieldId"],
                        name=item["name"],
                        type=FieldType(item["type"]),
                        namespace=item.get("namespace", "Custom"),
                        is_multiline=text.get("isMultiline"),
                    )
                )
        return found

    async def list_field_options(self, field_id: str) -> tuple[FieldOption, ...]:
        options: list[FieldOption] = []
        async for page in self._pages("list_field_options", fieldId=field_id, maxResults=100):
            options.extend(
                FieldOption(o["name"], o["value"], bool(o["active"])) for o in page["options"]
            )
        return tuple(options)

    async def get_case(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]:
        response = await self._call(
            "get_case",
            domainId=self._domain_id,
            caseId=case_id,
            fields=[{"id": f} for f in field_ids],
        )
        return {item["id"]: item["value"] for item in response["fields"]}

    async def read_fields(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]:
        values: dict[str, WireValue] = {}
        token: str | None = None
        while True:
            page = {"nextToken": token} if token else {}
            fields = [{"id": f} for f in field_ids]
            try:
                response = await self._client.get_case(
                    domainId=self._domain_id, caseId=case_id, fields=fields, **page
                )
            except Exception as error:
                raise classify(error) from error
            values.update((item["id"], item["value"]) for item in response["fields"])
            token = response.get("nextToken")
            if not token:
                return values

    async def search_cases(
        self,
        field_id: str,
        values: Sequence[WireValue],
        *,
        next_token: str | None = None,
        max_results: int = 100,
    ) -> CasePage:
        """One page of the cases whose `field_id` equals any of `values` (at most 10: SearchCases'
        `orAll` takes no more), each with that field's value. Paced by the caller."""
        equal = [{"field": {"equalTo": {"id": field_id, "value": v}}} for v in values]
        params: dict[str, Any] = {
            "domainId": self._domain_id,
            "filter": equal[0] if len(equal) == 1 else {"orAll": equal},
            "fields": [{"id": field_id}],
            "maxResults": max_results,
        }
        if next_token:
            params["nextToken"] = next_token
        response = await self._call("search_cases", **params)
        found = []
        for item in response.get("cases") or ():
            returned = {f["id"]: f["value"] for f in item.get("fields") or ()}
            found.append(FoundCase(item["caseId"], returned.get(field_id)))
        return CasePage(tuple(found), response.get("nextToken"), response.get("totalCount"))

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        limiter = self._limiters.get(operation)
        if limiter is not None:
            await limiter.acquire()
        try:
            response: dict[str, Any] = await getattr(self._client, operation)(**params)
        except Exception as error:
            raise classify(error) from error
        return response

    async def _pages(self, operation: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page_params = {"nextToken": token} if token else {}
            page = await self._call(operation, domainId=self._domain_id, **params, **page_params)
            yield page
            token = page.get("nextToken")
            if not token:
                return


@asynccontextmanager
async def open_cases(
    *,
    domain_id: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    max_connections: int = 16,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 30.0,
) -> AsyncIterator[BotocoreCases]:
    """A tuned client: no botocore retries, no parameter validation (rows are validated
    locally), a fixed User-Agent, and no silent HTTP-level resend of a PUT on a dropped
    connection (aiohttp retries idempotent methods once; UpdateCase has no idempotency token)."""
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        parameter_validation=False,
        max_pool_connections=max_connections,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        tcp_keepalive=True,
        user_agent_appid=USER_AGENT,
    )
    try:
        session = AioSession(profile=profile)
        # Before the first client: the loader caches the model it reads.
        add_extras(session.get_component("data_loader"))
        # botocore reads AWS_DEFAULT_REGION and profiles; other SDKs also honour AWS_REGION.
        region = region or session.get_config_variable("region") or os.environ.get("AWS_REGION")
        client_cm = session.create_client(
            "connectcases", region_name=region, endpoint_url=endpoint_url, config=config
        )
        client = await client_cm.__aenter__()
    except InvalidRegionError as error:
        raise ConfigError("--region", f"{error} (like us-east-1)") from None
    except NoRegionError:
        raise ConfigError(
            "--region", "no AWS Region configured (flag, AWS_REGION or profile)"
        ) from None
    except BotoCoreError as error:
        raise ConfigError("aws", str(error)) from error
    except ValueError as error:  # botocore's "Invalid endpoint": from AWS_ENDPOINT_URL_*
        raise ConfigError(
            "--endpoint-url",
            f"{error}: give a URL with its scheme, like http://127.0.0.1:4566 or "
            "https://cases.us-east-1.amazonaws.com (--endpoint-url, AWS_ENDPOINT_URL_CONNECTCASES "
            "or AWS_ENDPOINT_URL)",
        ) from None
    try:
        await _tune(client)
        yield BotocoreCases(client, domain_id)
    finally:
        with anyio.CancelScope(shield=True):  # close the HTTP session even when cancelled
            await client_cm.__aexit__(None, None, None)


def region_hint(region: str | None) -> str | None:
    """Why `region` may be the cause when Connect Cases cannot be reached there: botocore's
    endpoint data does not list the service in it (a typo, or a Region without Connect Cases),
    with the closest Region that has it; None when it is listed."""
    if not region:
        return None
    session = botocore.session.get_session()
    cases = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("connectcases", partition)
    }
    if region in cases:
        return None
    close = difflib.get_close_matches(region, sorted(cases), n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    return f"Region {region!r} is not one where botocore knows Connect Cases{guess}"


async def _tune(client: Any) -> None:
    """Private hooks of botocore, aiobotocore and aiohttp, each checked: a newer release that
    moved one costs speed (or an HTTP-level resend), never a crash; the log says which."""
    creator = getattr(client, "_user_agent_creator", None)
    rebuild = getattr(creator, "rebuild_and_replace_user_agent_handler", None)
    if creator is not None and hasattr(creator, "to_string"):
        client._user_agent_creator = _FixedUserAgent(creator.to_string())
        if rebuild is not None:
            # botocore also rebuilds the header just before sending, from the original creator.
            service_id = client.meta.service_model.service_id.hyphenize()
            client.meta.events.unregister(f"request-created.{service_id}", rebuild)
    else:
        log.warning("client_tuning_skipped", hook="user_agent")
    http = getattr(getattr(client, "_endpoint", None), "http_session", None)
    get_session = getattr(http, "_get_session", None)
    aiohttp_session = await get_session(None) if get_session is not None else None
    if aiohttp_session is not None and hasattr(aiohttp_session, "_retry_connection"):
        aiohttp_session._retry_connection = False
    else:
        log.warning("client_tuning_skipped", hook="aiohttp_retry_connection")
