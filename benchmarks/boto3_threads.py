"""The baseline users write today: one boto3 client shared by a ThreadPoolExecutor, every row an
update_case call, pacing left to botocore's retry mode (adaptive by default).

Blocking (threads): call it from a worker thread, not from an event loop. Sends only what it is
given to the endpoint it is given.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bulkupdate.emulator.config import DEFAULT_CREDENTIALS
from bulkupdate.emulator.seed import DEMO_DOMAIN_ID

Call = tuple[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ThreadsResult:
    """Rows the client saw succeed, fail (by error code) or never send (deadline), and wall time."""

    ok: int
    failed: Counter[str]
    not_sent: int
    wall_s: float


def boto3_client(url: str, mode: str, max_attempts: int, pool_connections: int) -> Any:
    """`max_attempts` as botocore's Config reads it: retries, so max_attempts + 1 attempts."""
    access_key_id, secret_access_key = next(iter(DEFAULT_CREDENTIALS.items()))
    return boto3.session.Session().client(
        "connectcases",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            retries={"mode": mode, "max_attempts": max_attempts},
            max_pool_connections=pool_connections,
        ),
    )


def send_with_threads(
    url: str,
    calls: Sequence[Call],
    *,
    threads: int,
    mode: str = "adaptive",
    max_attempts: int = 10,
    deadline_s: float,
) -> ThreadsResult:
    """Send every call through `threads` threads; rows not started by `deadline_s` (a
    time.monotonic() value) are left unsent."""
    client = boto3_client(url, mode, max_attempts, pool_connections=threads)
    lock = threading.Lock()
    failed: Counter[str] = Counter()
    tally = {"ok": 0, "not_sent": 0}

    def send(call: Call) -> None:
        if time.monotonic() >= deadline_s:
            with lock:
                tally["not_sent"] += 1
            return
        case_id, fields = call
        try:
            client.update_case(domainId=DEMO_DOMAIN_ID, caseId=case_id, fields=fields)
        except ClientError as error:
            with lock:
                failed[str(error.response.get("Error", {}).get("Code"))] += 1
        except BotoCoreError as error:
            with lock:
                failed[type(error).__name__] += 1
        else:
            with lock:
                tally["ok"] += 1

    started_s = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(send, calls):
            pass
    return ThreadsResult(tally["ok"], failed, tally["not_sent"], time.monotonic() - started_s)
