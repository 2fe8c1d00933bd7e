"""The command's parsers: every flag of every command says what it does, and none takes an
abbreviation (`--rat 5` is a typo, not `--rate 5`)."""

from __future__ import annotations

import argparse

from bulkupdate.cli import build_parser


def parsers() -> dict[str, argparse.ArgumentParser]:
    top = build_parser()
    (commands,) = (a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return {"bulkupdate": top, **commands.choices}


def test_every_flag_of_every_command_has_help_text() -> None:
    silent = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in parsers().items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert silent == []


def test_no_command_takes_an_abbreviated_flag() -> None:
    assert [name for name, parser in parsers().items() if parser.allow_abbrev] == []
