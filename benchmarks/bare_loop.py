"""The bare aiobotocore loop the product's overhead is measured against: a default connectcases
client (only botocore's retries off), N tasks each awaiting update_case over the rows of a
workload CSV, nothing else. Run as its own process so it gets a core to itself, like the product.

    .venv/bin/python -m benchmarks.bare_loop --input ROWS.csv --endpoint-url URL --tasks 64

Prints one JSON line: calls answered ok, failed, seconds (wall and CPU) from the first call to
the last answer, and rows/s. The CSV is parsed and the client built before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from benchmarks.workload import update_calls
from bulkupdate.emulator.config import DEFAULT_CREDENTIALS
from bulkupdate.emulator.seed import DEMO_DOMAIN_ID


async def send_all(client: Any, calls: list[tuple[str, list[dict[str, Any]]]], tasks: int) -> dict:
    pending = iter(calls)
    tally = {"ok": 0, "failed": 0}

    async def worker() -> None:
        for case_id, fields in pending:
            try:
                await client.update_case(domainId=DEMO_DOMAIN_ID, caseId=case_id, fields=fields)
            except (BotoCoreError, ClientError):
                tally["failed"] += 1
            else:
                tally["ok"] += 1

    started_s, started_cpu_s = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(worker())
    elapsed_s = time.perf_counter() - started_s
    cpu_s = time.process_time() - started_cpu_s
    return {**tally, "elapsed_s": elapsed_s, "cpu_s": cpu_s, "rows_per_s": tally["ok"] / elapsed_s}


async def run(args: argparse.Namespace) -> dict:
    calls = list(update_calls(args.input))
    access_key_id, secret_access_key = next(iter(DEFAULT_CREDENTIALS.items()))
    options: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
    if args.pool_connections:
        options["max_pool_connections"] = args.pool_connections
    async with get_session().create_client(
        "connectcases",
        endpoint_url=args.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(**options),
    ) as client:
        return await send_all(client, calls, args.tasks)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bare_loop",
        description="A bare aiobotocore update_case loop over a workload CSV; prints JSON.",
    )
    parser.add_argument("--input", type=Path, required=True, help="CSV from benchmarks.workload")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--tasks", type=int, default=64, help="concurrent update_case loops")
    parser.add_argument(
        "--pool-connections",
        type=int,
        default=0,
        help="max_pool_connections (default 0: botocore's default, 10)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    result = asyncio.run(run(parse_args(argv)))
    print(json.dumps(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
