"""Views for tests and rehearsals under /_emulator/, outside the AWS paths: counters, the
ordered log of applied updates, full case state, and live changes to quotas and faults.

No auth (loopback tool). Reads and writes the Emulator object, nothing else.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from bulkupdate.emulator.batch import BatchCounters
from bulkupdate.emulator.config import parse_quota
from bulkupdate.emulator.errors import ServiceError
from bulkupdate.emulator.faults import FaultConfig
from bulkupdate.emulator.quotas import Quota
from bulkupdate.emulator.service import CasesService

PREFIX = "/_emulator"


class RunningEmulator(Protocol):
    """What these views read and change of the running emulator (`server.Emulator`)."""

    @property
    def url(self) -> str: ...

    @property
    def service(self) -> CasesService: ...

    @property
    def counters(self) -> Mapping[str, Counter[str]]: ...

    @property
    def batch_counters(self) -> BatchCounters: ...

    @property
    def first_accept_s(self) -> float | None: ...

    @property
    def last_accept_s(self) -> float | None: ...

    def set_quota(self, operation: str, quota: Quota | None) -> None: ...

    def set_faults(self, faults: FaultConfig) -> None: ...

    def reset_counters(self) -> None: ...


def counters(emulator: RunningEmulator) -> dict[str, Any]:
    update_case = emulator.counters.get("UpdateCase")
    accepted = update_case["ok"] if update_case else 0
    span_s = None
    if emulator.first_accept_s is not None and emulator.last_accept_s is not None:
        span_s = emulator.last_accept_s - emulator.first_accept_s
    return {
        "operations": {op: dict(outcomes) for op, outcomes in sorted(emulator.counters.items())},
        "update_case": {"accepted": accepted, "first_to_last_accept_s": span_s},
        "batch_update_case": emulator.batch_counters.as_dict(),
    }


def case_state(emulator: RunningEmulator) -> dict[str, Any]:
    service = emulator.service
    return {
        domain.domain_id: {
            case.case_id: {
                field_id: value
                for field_id in [*case.values, "created_datetime", "last_updated_datetime"]
                if (value := service.case_value(case, field_id)) is not None
            }
            for case in domain.cases.values()
        }
        for domain in service.domains.values()
    }


def add_routes(app: web.Application, emulator: RunningEmulator) -> None:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "url": emulator.url})

    async def get_counters(_: web.Request) -> web.Response:
        return web.json_response(counters(emulator))

    async def get_updates(request: web.Request) -> web.Response:
        text = request.query.get("after", "0")
        if not text.isdigit():
            return web.json_response({"message": "after must be a whole number"}, status=400)
        after = int(text)
        return web.json_response({"updates": emulator.service.updates[after:]})

    async def get_state(_: web.Request) -> web.Response:
        return web.json_response({"domains": case_state(emulator)})

    async def edit_case(request: web.Request) -> web.Response:
        """{"fields": [{"id", "value": union}]}: a person's edit of the case, as an agent saves
        it; not counted as an UpdateCase call nor logged with the job's updates."""
        domain_id, case_id = request.match_info["domain"], request.match_info["case"]
        try:
            body = await request.json()
            fields = body["fields"] if isinstance(body, dict) else None
            if not isinstance(fields, list):
                raise TypeError('the body must be {"fields": [{"id", "value"}]}')
            emulator.service.edit_case(domain_id, case_id, fields)
        except (ValueError, TypeError, KeyError) as error:
            return web.json_response({"message": str(error)}, status=400)
        except ServiceError as error:
            return web.json_response(
                {"code": error.code, "message": error.message}, status=error.status
            )
        return web.json_response({"ok": True})

    async def reset(_: web.Request) -> web.Response:
        emulator.reset_counters()
        return web.json_response({"ok": True})

    async def configure(request: web.Request) -> web.Response:
        """{"quotas": {"UpdateCase": "50/50" | null}, "faults": {FaultConfig fields},
        "token_window_s": S, "search_lag_ms": N}."""
        # Parse everything first: a refused change must change nothing.
        try:
            change = await request.json()
            if not isinstance(change, dict):
                raise TypeError("the body must be a JSON object")
            quotas = [
                parse_quota(f"{operation}={spec or 'none'}")
                for operation, spec in (change.get("quotas") or {}).items()
            ]
            faults = None
            if "faults" in change:
                options = dict(change["faults"])
                for name in ("operations", "fault_case_ids"):
                    if name in options:
                        options[name] = frozenset(options[name])
                faults = dataclasses.replace(FaultConfig(), **options)
            window_s = change.get("token_window_s")
            if window_s is not None and not (isinstance(window_s, int | float) and window_s >= 0):
                raise ValueError("token_window_s must be a number of seconds, at least 0")
            lag_ms = change.get("search_lag_ms")
            if lag_ms is not None and not (isinstance(lag_ms, int | float) and lag_ms >= 0):
                raise ValueError("search_lag_ms must be a number of milliseconds, 0 or more")
        except (ValueError, TypeError, AttributeError) as error:
            return web.json_response({"message": str(error)}, status=400)
        for operation, quota in quotas:
            emulator.set_quota(operation, quota)
        if faults is not None:
            emulator.set_faults(faults)
        if window_s is not None:
            emulator.service.batch_tokens.window_s = float(window_s)
        if lag_ms is not None:
            emulator.service.index.lag_s = lag_ms / 1000
        return web.json_response({"ok": True})

    app.router.add_get(f"{PREFIX}/health", health)
    app.router.add_get(f"{PREFIX}/counters", get_counters)
    app.router.add_get(f"{PREFIX}/updates", get_updates)
    app.router.add_get(f"{PREFIX}/state", get_state)
    app.router.add_post(f"{PREFIX}/reset", reset)
    app.router.add_post(f"{PREFIX}/cases/{{domain}}/{{case}}", edit_case)
    app.router.add_post(f"{PREFIX}/config", configure)
