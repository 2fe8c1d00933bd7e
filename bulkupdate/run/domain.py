"""What a run reads from the Cases domain before its first write: the fields, the options of
the SingleSelect fields it sets, and the DateTime wire encoding (detected, never guessed).

Talks to Connect Cases only through the CasesApi Protocol; retries through the one RetryPolicy,
within a start-up budget.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from bulkupdate.clock import Clock
from bulkupdate.errors import CallError, ConfigError, ErrorKind
from bulkupdate.fields.schema import DateTimeEncodingError, detect_datetime_encoding
from bulkupdate.models import DateTimeEncoding, Field, FieldOption, FieldType, WireValue
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.run.cases import CasesApi

T = TypeVar("T")
# A system DateTime field every case has; its encoding is the one to mirror.
PROBE_FIELD_ID = "created_datetime"
MAX_PROBES = 5  # case ids tried before giving up on detection
# A start-up read that keeps failing (no connection, 5xx) is given up on after this long: the
# run has sent and recorded nothing yet, so it says what to check at once rather than wait.
STARTUP_RETRY_BUDGET_S = 10.0
log = structlog.get_logger("bulkupdate")


@dataclass(slots=True)
class StartupReads:
    """The retries of the reads a run makes before its first write, under the engine's rules
    (throttles and 5xx retried, the rest raised), each logged, and given up after `budget_s`
    of one read; counts them for the run's summary."""

    clock: Clock
    policy: RetryPolicy
    rng: random.Random
    budget_s: float = STARTUP_RETRY_BUDGET_S
    retried: int = 0  # retries of every read so far
    gave_up: str = ""  # how the last read that gave up did, for messages

    async def call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started_s = self.clock.now_s()
        failures = {ErrorKind.THROTTLED: 0, ErrorKind.TRANSIENT: 0}  # throttles use up nothing
        while True:
            try:
                return await call()
            except CallError as error:
                if error.kind not in failures:
                    raise
                failures[error.kind] += 1
                decision = self.policy.decide(
                    error.kind, failures[error.kind], error.retry_after_s, self.rng.random()
                )
                spent_s = self.clock.now_s() - started_s
                attempts = sum(failures.values())
                if isinstance(decision, GiveUp) or (
                    error.kind is ErrorKind.TRANSIENT and spent_s + decision.delay_s > self.budget_s
                ):
                    self.gave_up = f"{operation} failed {attempts} times in {spent_s:.1f} s"
                    raise
                log.warning(
                    "startup_read_retrying",
                    operation=operation,
                    attempt=attempts,
                    delay_s=round(decision.delay_s, 3),
                    error=f"{error.code}: {error.message}",
                )
                self.retried += 1
                await self.clock.sleep(decision.delay_s)


def unreachable_error(
    error: CallError, reads: StartupReads, *, flag: str, where: str, hint: str | None
) -> ConfigError:
    """What to check when the service could not be reached at all before the first write."""
    region_note = f" {hint}." if hint else ""
    return ConfigError(
        flag,
        f"cannot reach Connect Cases at {where}: {reads.gave_up} ({error.code}: "
        f"{error.message}).{region_note} Check the Region (--region, AWS_REGION or the "
        "profile), the endpoint (--endpoint-url, AWS_ENDPOINT_URL_CONNECTCASES or "
        "AWS_ENDPOINT_URL), and that this host can reach it (network, proxy, VPC endpoint). "
        "Nothing was sent or recorded",
    )


async def load_fields(
    api: CasesApi, *, wanted_options: Callable[[Field], bool], reads: StartupReads
) -> list[Field]:
    """Every field of the domain, with options filled in for the SingleSelect fields wanted."""
    fields = await reads.call("ListFields", api.list_fields)
    complete = []
    for field in fields:
        if field.type is FieldType.SINGLE_SELECT and wanted_options(field):

            async def options(field_id: str = field.field_id) -> tuple[FieldOption, ...]:
                return await api.list_field_options(field_id)

            found = await reads.call("ListFieldOptions", options)
            field = dataclasses.replace(field, options=found)
        complete.append(field)
    return complete


async def detect_encoding(
    api: CasesApi, case_ids: Iterable[str], *, reads: StartupReads
) -> tuple[DateTimeEncoding | None, str]:
    """Read `created_datetime` of the first existing case and mirror its encoding.

    Returns (encoding, how it was found); None when no case could tell, with the reason.
    """
    tried = []
    for case_id in list(dict.fromkeys(case_ids))[:MAX_PROBES]:
        tried.append(case_id)

        async def probe(case_id: str = case_id) -> dict[str, WireValue]:
            return await api.get_case(case_id, [PROBE_FIELD_ID])

        try:
            values = await reads.call("GetCase", probe)
        except CallError as error:
            if error.kind is ErrorKind.ROW:
                continue  # that case does not exist; try the next
            raise
        value = values.get(PROBE_FIELD_ID)
        if value is None:
            continue
        try:
            encoding = detect_datetime_encoding(value)
        except DateTimeEncodingError as error:
            return None, f"GetCase {case_id} {PROBE_FIELD_ID}: {error.args[0]}"
        return encoding, f"GetCase {case_id} returned {PROBE_FIELD_ID} as {value}"
    return None, f"no readable {PROBE_FIELD_ID} on cases {', '.join(tried) or '(none)'}"
