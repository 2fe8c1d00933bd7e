"""One aiobotocore client on one DynamoDB table for the checkpoint store: the table's checks and
creation, timeouts and retries, and the only reading of DynamoDB's error codes. Knows no item
format; every failure but a failed condition reaches the caller as a CheckpointError."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import structlog
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from bulkupdate.aws.client import SYSTEMIC_CODES
from bulkupdate.checkpoint.dynamodb_items import attr_s
from bulkupdate.checkpoint.store import CheckpointError

__all__ = ["ConditionFailedError", "DynamoDbTable"]

CREATE_WAIT_S = 300.0
# Unlike UpdateCase nothing paces these calls, so botocore absorbs DynamoDB's throttles and 5xx
# itself. Connect errors are retried too: a dead endpoint costs 0-3 s (refused) to ~9 s (silent).
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=2,
    read_timeout=10,
    user_agent_appid="bulkupdate",
)
KEYS = (("pk", "HASH"), ("sk", "RANGE"))
_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
log = structlog.get_logger("bulkupdate")


class _TableMissingError(CheckpointError):
    pass


class _TableInUseError(CheckpointError):
    pass


class ConditionFailedError(Exception):
    """A conditional write found the item not as expected; the caller looks and decides."""


class DynamoDbTable:
    """One aiobotocore client on one table: the only reader of DynamoDB's error codes."""

    __slots__ = ("_client", "_client_cm", "_profile", "location", "name", "region")

    def __init__(self, name: str, location: str, region: str | None, profile: str | None):
        self.name, self.location, self.region, self._profile = name, location, region, profile
        self._client_cm: Any = None
        self._client: Any = None

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        if self._client is None:
            await self._connect()
        try:
            response: dict[str, Any] = await getattr(self._client, operation)(**params)
        except ClientError as error:
            raise self._client_error(error, operation) from error
        except (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError) as error:
            raise CheckpointError(self.location, self._transport_error(error)) from error
        return response

    async def _connect(self) -> None:
        try:
            session = AioSession(profile=self._profile)
            # botocore reads AWS_DEFAULT_REGION and profiles; other SDKs also honour AWS_REGION.
            region = session.get_config_variable("region") or os.environ.get("AWS_REGION")
            self.region = self.region or region
            if not self.region:
                raise CheckpointError(self.location, "no AWS Region: set AWS_REGION or --region")
            # No endpoint_url: botocore itself honours AWS_ENDPOINT_URL_DYNAMODB/AWS_ENDPOINT_URL.
            client_cm = session.create_client("dynamodb", self.region, config=CLIENT_CONFIG)
            self._client = await client_cm.__aenter__()
            self._client_cm = client_cm
        except BotoCoreError as error:
            raise CheckpointError(self.location, _redact(str(error))) from error

    async def close(self) -> None:
        client_cm, self._client_cm, self._client = self._client_cm, None, None
        if client_cm is not None:
            with anyio.CancelScope(shield=True):
                await client_cm.__aexit__(None, None, None)

    async def ensure(self, *, create: bool) -> None:
        """The table exists with our key schema and is ACTIVE; created first if allowed."""
        try:
            table = (await self.call("describe_table", TableName=self.name))["Table"]
        except _TableMissingError as missing:
            if not create:
                raise _TableMissingError(
                    self.location,
                    f"{missing.message} and creating it is off (create_table=False): create "
                    "it (partition key pk, sort key sk, both strings) or allow creation",
                ) from None
            table = await self._create()
        keys = {(k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", [])}
        if keys != set(KEYS):
            raise CheckpointError(
                self.location,
                f"table {self.name!r} has key schema {sorted(keys)}; a checkpoint table "
                "needs partition key 'pk' and sort key 'sk', both strings",
            )
        deadline_s = time.monotonic() + CREATE_WAIT_S
        while table.get("TableStatus") != "ACTIVE":
            if time.monotonic() > deadline_s:
                raise CheckpointError(self.location, f"table {self.name!r} is not ACTIVE")
            await anyio.sleep(1.0)
            table = (await self.call("describe_table", TableName=self.name))["Table"]

    async def _create(self) -> dict[str, Any]:
        try:
            response = await self.call(
                "create_table",
                TableName=self.name,
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n, _ in KEYS],
                KeySchema=[{"AttributeName": n, "KeyType": kind} for n, kind in KEYS],
                BillingMode="PAY_PER_REQUEST",
            )
        except _TableInUseError:  # another run created it a moment ago
            return dict((await self.call("describe_table", TableName=self.name))["Table"])
        log.info("checkpoint_table_created", table=self.name, region=self.region)
        return dict(response["TableDescription"])

    async def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        key = {"pk": attr_s(pk), "sk": attr_s(sk)}
        response = await self.call("get_item", TableName=self.name, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    async def query(self, pk: str, prefix: str, **extra: Any) -> AsyncIterator[dict[str, Any]]:
        """Every item of `pk` whose sort key starts with `prefix`, in sort-key order."""
        params: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": attr_s(pk), ":prefix": attr_s(prefix)},
            "ConsistentRead": True,
            **extra,
        }
        while True:
            page = await self.call("query", **params)
            for item in page.get("Items", []):
                yield item
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def delete(self, keys: Sequence[Mapping[str, Any]]) -> None:
        """Delete the items of `keys`, 25 a request; what is still unprocessed after five tries
        of a request stays."""
        stale = [{"DeleteRequest": {"Key": key}} for key in keys]
        for start in range(0, len(stale), 25):
            requests = stale[start : start + 25]
            for _ in range(5):
                answer = await self.call("batch_write_item", RequestItems={self.name: requests})
                requests = answer.get("UnprocessedItems", {}).get(self.name, [])
                if not requests:
                    break
                await anyio.sleep(0.2)

    def _client_error(self, error: ClientError, operation: str) -> Exception:
        response: dict[str, Any] = error.response
        code = str(response.get("Error", {}).get("Code", ""))
        message = _redact(str(response.get("Error", {}).get("Message", "")) or str(error))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        reasons = [str(r.get("Code")) for r in response.get("CancellationReasons", [])]
        wrapped = re.search(r"<Code>(.*?)</Code>.*?<Message>(.*?)</Message>", message, re.S)
        if wrapped:  # an XML error body (a proxy, or moto's IAM check) left as the message
            code, message = wrapped[1], wrapped[2]
        if code == "ConditionalCheckFailedException" or "ConditionalCheckFailed" in reasons:
            return ConditionFailedError()
        if code == "ResourceNotFoundException":
            where = f"table {self.name!r} does not exist in {self.region}"
            return _TableMissingError(self.location, where)
        if code == "ResourceInUseException" and operation == "create_table":
            return _TableInUseError(self.location, message)
        if code in SYSTEMIC_CODES or status in (401, 403):
            return CheckpointError(
                self.location,
                f"{operation} on table {self.name!r} in {self.region} was refused ({code}: "
                f"{message}); check the credentials and that the IAM policy allows it",
            )
        if reasons:
            message += f" (reasons: {', '.join(reasons)}); none of it was written"
        return CheckpointError(self.location, f"{operation} failed: {code or status}: {message}")

    def _transport_error(self, error: Exception) -> str:
        if isinstance(error, NoCredentialsError):
            return "no AWS credentials found (environment, profile, container or instance role)"
        if isinstance(error, BotoCoreError) and not isinstance(
            error, BotoConnectionError | HTTPClientError
        ):
            return _redact(f"{type(error).__name__}: {error}")
        url = urlsplit(str(self._client.meta.endpoint_url)) if self._client else None
        where = f" at {url.scheme}://{url.hostname}:{url.port or 443}" if url else ""
        return f"cannot reach DynamoDB{where} ({self.region}): {_redact(str(error))}"


def _redact(text: str) -> str:
    return _KEY_ID.sub(lambda m: m[1] + "…", text)
