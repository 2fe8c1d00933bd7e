"""`bulkupdate emulator`: the command-line face of the local Connect Cases service.

Turns flags into an EmulatorConfig and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bulkupdate.emulator.config import (
    EmulatorConfig,
    no_quotas,
    parse_credentials,
    parse_quota,
)
from bulkupdate.emulator.faults import FaultConfig
from bulkupdate.emulator.quotas import DEFAULT_QUOTAS
from bulkupdate.emulator.records import DateTimeEncoding
from bulkupdate.emulator.server import running_emulator
from bulkupdate.emulator.tokens import DEFAULT_TOKEN_WINDOW_S


def _checked(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "emulator",
        help="serve a local Amazon Connect Cases endpoint",
        description="Serve a local Amazon Connect Cases endpoint (REST-JSON, SigV4) with AWS's "
        "default quotas, for tests, demos and rehearsals.",
        allow_abbrev=False,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=4566, help="0 picks a free port")
    quotas = parser.add_argument_group(
        "quotas (default: AWS's, e.g. UpdateCase 2/s burst 2; BatchUpdateCase 2/s burst 2, "
        "assumed: AWS does not publish it)"
    )
    quotas.add_argument(
        "--quota",
        action="append",
        default=[],
        type=_checked(parse_quota),
        metavar="OP=RATE[/BURST]|OP=none",
        help="override one operation's quota, e.g. UpdateCase=50/50 or BatchUpdateCase=5/10; "
        "repeatable",
    )
    quotas.add_argument("--no-quotas", action="store_true", help="no limit on any operation")
    faults = parser.add_argument_group(
        "faults on demand (UpdateCase and BatchUpdateCase unless --fault-operation)"
    )
    faults.add_argument("--error-rate", type=float, default=0.0, help="P(500 InternalServer)")
    faults.add_argument("--retry-after", type=int, default=1, metavar="S", help="on 500s")
    faults.add_argument(
        "--error-code",
        default="InternalServerException",
        metavar="CODE",
        help="what --error-rate answers instead, e.g. ThrottledException or RequestTimeout",
    )
    faults.add_argument(
        "--error-status", type=int, default=500, metavar="N", help="its HTTP status, e.g. 400"
    )
    faults.add_argument("--drop-rate", type=float, default=0.0, help="P(dropped connection)")
    faults.add_argument(
        "--drop-after-apply-rate",
        type=float,
        default=0.0,
        help="P(applied, then the connection drops before the reply)",
    )
    faults.add_argument(
        "--cut-short-rate",
        type=float,
        default=0.0,
        help="P(applied, then the reply stops short of its Content-Length)",
    )
    faults.add_argument("--slow-rate", type=float, default=0.0, help="P(slow response)")
    faults.add_argument(
        "--slow-seconds", type=float, default=5.0, help="how slow a slow response is (5)"
    )
    faults.add_argument("--latency-ms", type=float, default=0.0, help="median service time")
    faults.add_argument("--latency-p99-ms", type=float, default=0.0, help="99th percentile")
    faults.add_argument(
        "--deny-updates-after",
        type=int,
        default=None,
        metavar="N",
        help="the writes answer AccessDeniedException after N calls (permission revoked)",
    )
    for flag, code in (
        ("--case-throttle-rate", "THROTTLED"),
        ("--case-conflict-rate", "CONFLICT"),
        ("--case-error-rate", "INTERNAL_ERROR"),
    ):
        faults.add_argument(
            flag,
            type=float,
            default=0.0,
            metavar="P",
            help=f"P(a case of a BatchUpdateCase call fails with {code}, the others apply)",
        )
    faults.add_argument(
        "--fault-case",
        action="append",
        default=[],
        metavar="CASE_ID",
        help="only these cases meet the per-case faults (default: any); repeatable",
    )
    faults.add_argument(
        "--fault-calls",
        type=int,
        default=None,
        metavar="N",
        help="only the first N calls meet errors, drops and cut replies (default: all)",
    )
    faults.add_argument(
        "--fault-operation",
        action="append",
        choices=sorted(DEFAULT_QUOTAS),
        help="operations the faults apply to (default UpdateCase); repeatable",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--datetime-encoding",
        choices=[e.value for e in DateTimeEncoding],
        default=DateTimeEncoding.ISO8601.value,
        help="how DateTime values travel (undocumented by AWS)",
    )
    data.add_argument("--seed", type=Path, help="seed JSON document (see README)")
    data.add_argument(
        "--demo-cases",
        type=int,
        default=0,
        metavar="N",
        help="create the demo domain 'demo' with a field of every type and N cases",
    )
    data.add_argument("--state-file", type=Path, help="persist state here across restarts")
    data.add_argument(
        "--token-window",
        type=float,
        default=DEFAULT_TOKEN_WINDOW_S,
        metavar="S",
        help="how long BatchUpdateCase remembers a clientToken: the same token and request "
        "answer the first response again, nothing applied (default 28800 = 8 h; AWS does not "
        "publish its window)",
    )
    parser.add_argument(
        "--search-lag-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="SearchCases reads an index this far behind writes (0): a case changed moments "
        "ago is found by its old values",
    )
    auth = parser.add_argument_group("authentication")
    auth.add_argument(
        "--verify-signatures",
        action="store_true",
        help="check SigV4 signatures against --credentials (default: header presence only)",
    )
    auth.add_argument(
        "--credentials",
        action="append",
        type=_checked(parse_credentials),
        metavar="KEY_ID:SECRET",
        help="accepted credentials (default AKIDEMULATOR:emulator-secret); repeatable",
    )
    parser.add_argument(
        "--region", default="us-east-1", help="the Region in the ARNs it makes (us-east-1)"
    )
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    if args.token_window < 0:
        raise ValueError("--token-window must be at least 0 seconds")
    quotas = no_quotas() if args.no_quotas else dict(EmulatorConfig().quotas)
    quotas.update(dict(args.quota))
    faults = FaultConfig(
        internal_error_probability=args.error_rate,
        retry_after_s=args.retry_after,
        error_code=args.error_code,
        error_status=args.error_status,
        drop_probability=args.drop_rate,
        drop_after_apply_probability=args.drop_after_apply_rate,
        cut_short_probability=args.cut_short_rate,
        fault_calls=args.fault_calls,
        slow_probability=args.slow_rate,
        slow_s=args.slow_seconds,
        latency_median_ms=args.latency_ms,
        latency_p99_ms=args.latency_p99_ms,
        access_denied_after_calls=args.deny_updates_after,
        case_throttle_probability=args.case_throttle_rate,
        case_conflict_probability=args.case_conflict_rate,
        case_internal_error_probability=args.case_error_rate,
        fault_case_ids=frozenset(args.fault_case),
    )
    if args.fault_operation:
        faults = replace(faults, operations=frozenset(args.fault_operation))
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        quotas=quotas,
        faults=faults,
        datetime_encoding=DateTimeEncoding(args.datetime_encoding),
        verify_signatures=args.verify_signatures,
        region=args.region,
        seed_path=args.seed,
        demo_cases=args.demo_cases,
        state_path=args.state_file,
        token_window_s=args.token_window,
        search_lag_s=max(0.0, args.search_lag_ms) / 1000,
    )
    if args.credentials:
        config = replace(config, credentials=dict(args.credentials))
    return config


async def serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulator(config) as emulator:
        # Machine-readable first line: scripts and tests wait for it to learn the port.
        print(f"emulator listening on {emulator.url}", flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        if config.seed_path is not None and not config.seed_path.is_file():
            raise ValueError(f"--seed: no such file: {config.seed_path}")
        if config.state_path is not None and not config.state_path.parent.is_dir():
            raise ValueError(f"--state-file: no such directory: {config.state_path.parent}")
    except ValueError as error:
        print(f"bulkupdate emulator: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(serve(config))
    except OSError as error:  # e.g. the port is taken
        print(f"bulkupdate emulator: {error}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as error:  # a seed or state file the emulator cannot use
        print(f"bulkupdate emulator: bad seed or state file: {error!r}", file=sys.stderr)
        return 2
    return 0
