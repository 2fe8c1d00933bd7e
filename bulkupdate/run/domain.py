"""What a run reads from the Cases domain before its first write: the fields, the options of
the SingleSelect fields it sets, and the DateTime wire encoding (detected, never guessed).

Talks to Connect Cases only through the CasesApi Protocol; retries through the one RetryPolicy.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from bulkupdate.clock import Clock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.schema import DateTimeEncodingError, detect_datetime_encoding
from bulkupdate.models import DateTimeEncoding, Field, FieldOption, FieldType, WireValue
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.run.cases import CasesApi

T = TypeVar("T")
# A system DateTime field every case has; its encoding is the one to mirror.
PROBE_FIELD_ID = "created_datetime"
MAX_PROBES = 5  # case ids tried before giving up on detection


async def with_retries(
    call: Callable[[], Awaitable[T]], *, clock: Clock, policy: RetryPolicy, rng: random.Random
) -> T:
    """Start-up calls share the engine's rules: throttles and 5xx retried, the rest raised."""
    failures = {ErrorKind.THROTTLED: 0, ErrorKind.TRANSIENT: 0}  # throttles never use up attempts
    while True:
        try:
            return await call()
        except CallError as error:
            if error.kind not in failures:
                raise
            failures[error.kind] += 1
            decision = policy.decide(
                error.kind, failures[error.kind], error.retry_after_s, rng.random()
            )
            if isinstance(decision, GiveUp):
                raise
            await clock.sleep(decision.delay_s)


async def load_fields(
    api: CasesApi,
    *,
    wanted_options: Callable[[Field], bool],
    clock: Clock,
    policy: RetryPolicy,
    rng: random.Random,
) -> list[Field]:
    """Every field of the domain, with options filled in for the SingleSelect fields wanted."""
    fields = await with_retries(api.list_fields, clock=clock, policy=policy, rng=rng)
    complete = []
    for field in fields:
        if field.type is FieldType.SINGLE_SELECT and wanted_options(field):

            async def options(field_id: str = field.field_id) -> tuple[FieldOption, ...]:
                return await api.list_field_options(field_id)

            found = await with_retries(options, clock=clock, policy=policy, rng=rng)
            field = dataclasses.replace(field, options=found)
        complete.append(field)
    return complete


async def detect_encoding(
    api: CasesApi,
    case_ids: Iterable[str],
    *,
    clock: Clock,
    policy: RetryPolicy,
    rng: random.Random,
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
            values = await with_retries(probe, clock=clock, policy=policy, rng=rng)
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
