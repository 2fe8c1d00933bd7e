"""The `undo` and `verify` subcommands: their arguments and what each hands its module.

Wiring only: `cli` adds these parsers; the behaviour is in `undo.restore` and `undo.verify`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from bulkupdate.errors import BulkUpdateError
from bulkupdate.exits import EXIT_USAGE
from bulkupdate.report import logs
from bulkupdate.undo.jobimages import Target

UNDO_EXAMPLES = """\
examples:
  what it would do, per case (old, new and current value of each field); sends nothing
    bulkupdate undo --checkpoint orders.checkpoint.sqlite --domain-id 0d2b6e3c-... --dry-run
  put the values back; fields changed since the job are left alone and listed
    bulkupdate undo --checkpoint orders.checkpoint.sqlite --domain-id 0d2b6e3c-...
  a job whose checkpoint is in DynamoDB, every shard of it
    bulkupdate undo --checkpoint dynamodb://bulkupdate-checkpoints --job crm --domain-id ..."""


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="the job's SQLite file or dynamodb://TABLE"
    )
    parser.add_argument("--job", help="the job's name (required with dynamodb://)")
    parser.add_argument("--domain-id", required=True, help="the domain the job wrote to")
    parser.add_argument("--endpoint-url", help="Connect Cases endpoint only")
    parser.add_argument("--region", help="the domain's AWS Region")
    parser.add_argument("--profile", help="named AWS profile (default AWS_PROFILE)")
    parser.add_argument("--read-rate", type=float, default=4.0, help="GetCase calls/s (4)")
    parser.add_argument("--read-burst", type=int, default=10, help="GetCase burst (10)")
    parser.add_argument(
        "--headroom", type=float, default=20.0, help="percent of the quotas left to agents (20)"
    )


def add_parsers(commands: Any) -> None:
    undo = commands.add_parser(
        "undo",
        help="put back the values a --before-images job changed",
        description="Restore, for every case and field a job run with --before-images changed, "
        "the value it held before the job. Each case is read first: a field no longer holding "
        "what the job wrote is left alone and listed (UNDO.changed.csv), unless --force. The "
        "restores run as a job of their own (its checkpoint, failures file and summary beside "
        "the job's checkpoint, named NAME.undo.*): run the same command again to resume.",
        epilog=UNDO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _connection_flags(undo)
    undo.add_argument("--dry-run", action="store_true", help="write the plan; send nothing")
    undo.add_argument("--force", action="store_true", help="restore changed fields too")
    undo.add_argument("--rate", type=float, help="UpdateCase calls/s ceiling (default 2)")
    undo.add_argument("--burst", type=int, help="UpdateCase burst (default 2)")
    undo.add_argument("--state-dir", help="folder for the undo's files (default: the checkpoint's)")
    undo.set_defaults(handler=undo_command)
    verify = commands.add_parser(
        "verify",
        help="report fields no longer holding what a --before-images job wrote",
        description="Read every case a job run with --before-images changed and report the "
        "fields whose value differs from what the job last wrote. Exit 0 when none differ, 1 "
        "otherwise.",
        allow_abbrev=False,
    )
    _connection_flags(verify)
    verify.add_argument(
        "--report", help="CSV, or JSONL when it ends .jsonl (default NAME.verify.csv)"
    )
    verify.set_defaults(handler=verify_command)


def _target(args: argparse.Namespace) -> Target:
    return Target(
        checkpoint=args.checkpoint,
        domain_id=args.domain_id,
        job=args.job,
        endpoint_url=args.endpoint_url,
        region=args.region,
        profile=args.profile,
        read_rate=args.read_rate,
        read_burst=args.read_burst,
        headroom=args.headroom,
    )


def undo_command(args: argparse.Namespace) -> int:
    from bulkupdate.undo.restore import undo

    logs.configure(fmt=None, level="warning", redact=False)
    flags = {"rate": args.rate, "burst": args.burst, "no_progress": None}
    flags = {key: value for key, value in flags.items() if value is not None}
    try:
        return anyio.run(
            lambda: undo(
                _target(args),
                state_dir=args.state_dir,
                dry_run=args.dry_run,
                force=args.force,
                run_flags=flags,
                hold_signals=args.process,
            )
        )
    except BulkUpdateError as error:
        print(f"bulkupdate: {error}", file=sys.stderr)
        return EXIT_USAGE


def verify_command(args: argparse.Namespace) -> int:
    from bulkupdate.undo.restore import UndoFiles
    from bulkupdate.undo.verify import verify

    target = _target(args)
    report = args.report or UndoFiles.of(target, None).base.removesuffix(".undo") + ".verify.csv"
    logs.configure(fmt=None, level="warning", redact=False)
    try:
        return anyio.run(lambda: verify(target, report))
    except BulkUpdateError as error:
        print(f"bulkupdate: {error}", file=sys.stderr)
        return EXIT_USAGE
