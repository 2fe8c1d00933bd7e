"""The emulator on the wire: routes REST-JSON requests to operations, enforces auth, quotas and
injected faults, and answers with AWS's exact error format. Also the in-process runner.

No business rules here: `service` owns them, `shapes` validates, `admin` serves test views.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import MultiMapping

from bulkupdate.aws.model import service_model
from bulkupdate.emulator import admin, persist, seed
from bulkupdate.emulator.batch import BatchCounters, batch_update_case, no_case_fault
from bulkupdate.emulator.config import EmulatorConfig
from bulkupdate.emulator.errors import (
    AccessDeniedError,
    InternalServerError,
    SerializationError,
    ServiceError,
    ThrottlingError,
    UnknownOperationError,
    error_of,
)
from bulkupdate.emulator.faults import WRITE_OPERATIONS, Fault, FaultConfig, FaultInjector
from bulkupdate.emulator.quotas import Quota, QuotaTable
from bulkupdate.emulator.service import OPERATIONS, CasesService
from bulkupdate.emulator.shapes import RequestValidator
from bulkupdate.emulator.sigv4 import check_service, verify

log = logging.getLogger(__name__)
_JSON = "application/json"


class _Route:
    """How one operation is addressed: method, path template and query-string members."""

    __slots__ = ("method", "operation", "params", "pattern", "query")

    def __init__(self, model: dict[str, Any], operation: str) -> None:
        spec = model["operations"][operation]
        uri = spec["http"]["requestUri"]
        self.operation = operation
        self.method = spec["http"]["method"]
        self.params = re.findall(r"{(\w+)}", uri)
        self.pattern = re.compile("^" + re.sub(r"{(\w+)}", r"([^/]+)", uri) + "$")
        members = model["shapes"][spec["input"]["shape"]]["members"]
        # member -> (query key, shape type) for members carried in the query string
        self.query = {
            name: (member["locationName"], model["shapes"][member["shape"]]["type"])
            for name, member in members.items()
            if member.get("location") == "querystring"
        }

    def query_params(self, query: MultiMapping[str]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, (key, kind) in self.query.items():
            if key not in query:
                continue
            if kind == "list":
                params[name] = query.getall(key)
            elif kind == "integer":
                try:
                    params[name] = int(query[key])
                except ValueError:
                    raise SerializationError(f"Query parameter {key} must be an integer.") from None
            else:
                params[name] = query[key]
        return params


class Emulator:
    """One emulated account: the service state plus everything that sits in front of it."""

    def __init__(self, config: EmulatorConfig) -> None:
        model = service_model()
        self.config = config
        self.url = ""
        self.service = CasesService(
            wall_s=time.time,
            datetime_encoding=config.datetime_encoding,
            region=config.region,
            account_id=config.account_id,
        )
        self.validator = RequestValidator(model)
        self.routes = [_Route(model, name) for name in OPERATIONS]
        self.quotas = QuotaTable(config.quotas, time.monotonic())
        self.faults = FaultInjector(config.faults)
        self.service.batch_tokens.window_s = config.token_window_s
        # counters[operation][outcome]: outcome is "ok", an error code, or "dropped".
        self.counters: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.update_calls = 0  # write requests that passed auth, for access revocation
        self.batch_counters = BatchCounters()
        self.first_accept_s: float | None = None  # monotonic times of accepted UpdateCase calls
        self.last_accept_s: float | None = None
        if config.state_path is not None and config.state_path.exists():
            persist.load(self.service, config.state_path)
        else:
            seed.apply(self.service, config.seed_path, config.demo_cases)
        self.service.index.lag_s = config.search_lag_s  # seeded cases are indexed already

    def set_quota(self, operation: str, quota: Quota | None) -> None:
        limits = dict(self.quotas.limits)
        limits[operation] = quota
        self.quotas = QuotaTable(limits, time.monotonic())

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults = FaultInjector(faults)
        self.update_calls = 0

    def reset_counters(self) -> None:
        self.counters.clear()
        self.batch_counters = BatchCounters()
        self.first_accept_s = self.last_accept_s = None

    def _route(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        path = request.raw_path.partition("?")[0]
        for route in self.routes:
            if route.method != request.method:
                continue
            match = route.pattern.match(path)
            if match:
                params = route.query_params(request.query) if route.query else {}
                for name, value in zip(route.params, match.groups(), strict=True):
                    params[name] = unquote(value)
                return route.operation, params
        raise UnknownOperationError(f"No operation matches {request.method} {request.path}")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        operation = "Unknown"
        try:
            body = await request.read()
            self._authenticate(request, body)
            operation, path_params = self._route(request)
            return await self._call(request, operation, path_params, body)
        except ServiceError as error:
            self.counters[operation][error.code] += 1
            return _error_response(error)
        except web.HTTPException as error:  # e.g. 413 from aiohttp: still answered as AWS would
            self.counters[operation]["SerializationException"] += 1
            return _error_response(SerializationError(error.reason), status=error.status)
        except Exception:
            log.exception("emulator failure in %s", operation)
            self.counters[operation]["InternalServerException"] += 1
            return _error_response(InternalServerError())

    def _authenticate(self, request: web.Request, body: bytes) -> None:
        headers = request.headers
        if not self.config.verify_signatures:
            check_service(headers.get("Authorization"))
            return
        path, _, query = request.raw_path.partition("?")
        verify(
            method=request.method,
            raw_path=path,
            query=query,
            headers=headers,
            get_all=headers.getall,
            body=body,
            secrets=self.config.credentials,
            now_s=time.time(),
        )

    async def _call(
        self, request: web.Request, operation: str, path_params: dict[str, Any], body: bytes
    ) -> web.StreamResponse:
        if not self.quotas.admit(operation, time.monotonic()):
            raise ThrottlingError()
        fault = Fault.NONE
        affected = self.faults.affects(operation)
        if affected:
            fault = await self._inject(operation)
        if fault is Fault.DROP_BEFORE_APPLY:
            return self._drop(request, operation)
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            raise SerializationError("The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise SerializationError("The request body must be a JSON object.")
        params.update(path_params)
        self.validator.validate(operation, params)
        if operation == "BatchUpdateCase":
            case_fault = self.faults.case_fault if affected else no_case_fault
            batch = batch_update_case(self.service, params, case_fault)
            self.batch_counters.count(batch)
            result = batch.response
        else:
            result = OPERATIONS[operation](self.service, params)
        if operation == "UpdateCase":
            now_s = time.monotonic()
            if self.first_accept_s is None:
                self.first_accept_s = now_s
            self.last_accept_s = now_s
        if fault is Fault.DROP_AFTER_APPLY:
            return self._drop(request, operation)
        if fault is Fault.CUT_SHORT:
            return self._cut_short(request, operation, json.dumps(result).encode())
        self.counters[operation]["ok"] += 1
        return web.Response(
            body=json.dumps(result).encode(),
            content_type=_JSON,
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    async def _inject(self, operation: str) -> Fault:
        if operation in WRITE_OPERATIONS:
            self.update_calls += 1
            limit = self.faults.config.access_denied_after_calls
            if limit is not None and self.update_calls > limit:
                raise AccessDeniedError(
                    "User is not authorized to perform: cases:UpdateCase (permission revoked)"
                )
        delay_s = self.faults.delay_s()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        fault = self.faults.choose()
        if fault is Fault.INTERNAL_ERROR:
            raise _injected_error(self.faults.config)
        return fault

    def _drop(self, request: web.Request, operation: str) -> web.StreamResponse:
        self.counters[operation]["dropped"] += 1
        if request.transport is not None:
            request.transport.abort()
        # Nothing reaches the client: the transport is gone before aiohttp can write this.
        return web.Response(status=500)

    def _cut_short(self, request: web.Request, operation: str, body: bytes) -> web.StreamResponse:
        """The reply's head and part of its body, then the connection closes: the client holds a
        body shorter than its Content-Length. The update was applied."""
        self.counters[operation]["cut_short"] += 1
        if request.transport is not None:
            head = (
                "HTTP/1.1 200 OK\r\n"
                f"Content-Type: {_JSON}\r\n"
                f"x-amzn-RequestId: {uuid.uuid4()}\r\n"
                f"Content-Length: {len(body) + 1}\r\n"
                "\r\n"
            )
            request.transport.write(head.encode() + body)  # one byte short
            request.transport.close()  # sends what is written, then closes
        return web.Response(status=500)  # the transport is closing: this is never sent


def _injected_error(faults: FaultConfig) -> ServiceError:
    if faults.error_code == InternalServerError.code and faults.error_status == 500:
        return InternalServerError(retry_after_s=faults.retry_after_s)
    return error_of(faults.error_code, faults.error_status, f"{faults.error_code} (injected)")


def _error_response(error: ServiceError, *, status: int | None = None) -> web.Response:
    headers = {
        "x-amzn-RequestId": str(uuid.uuid4()),
        "x-amzn-ErrorType": error.code,
        **error.headers(),
    }
    return web.Response(
        status=status or error.status,
        body=json.dumps(error.body()).encode(),
        content_type=_JSON,
        headers=headers,
    )


def build_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    admin.add_routes(app, emulator)
    app.router.add_route("*", "/{tail:.*}", emulator.handle)
    return app


@asynccontextmanager
async def running_emulator(config: EmulatorConfig | None = None) -> AsyncIterator[Emulator]:
    """Serve an emulator on config.host:config.port until the block exits; yields it (`.url`)."""
    emulator = Emulator(config or EmulatorConfig(port=0))
    runner = web.AppRunner(build_app(emulator), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, emulator.config.host, emulator.config.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    emulator.url = f"http://{host}:{port}"
    snapshots = None
    if emulator.config.state_path is not None:
        snapshots = asyncio.create_task(_snapshot_loop(emulator))
    try:
        yield emulator
    finally:
        if snapshots is not None:
            snapshots.cancel()
            with suppress(asyncio.CancelledError):
                await snapshots
        await runner.cleanup()
        if emulator.config.state_path is not None:
            persist.save(emulator.service, emulator.config.state_path)


async def _snapshot_loop(emulator: Emulator) -> None:
    assert emulator.config.state_path is not None
    saved_at = -1
    while True:
        await asyncio.sleep(emulator.config.snapshot_interval_s)
        # Any successful call may have changed state; reads cost a rewrite, which is fine here.
        served = sum(outcomes["ok"] for outcomes in emulator.counters.values())
        if served != saved_at:
            persist.save(emulator.service, emulator.config.state_path)
            saved_at = served
