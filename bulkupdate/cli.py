"""The `bulkupdate` command: parses arguments and hands each subcommand to its module.

Wires things together; owns no behaviour of its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bulkupdate import __version__
from bulkupdate.emulator import cli as emulator_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkupdate",
        description="Apply CSV/JSONL rows to Amazon Connect Cases with UpdateCase.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    emulator_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result
