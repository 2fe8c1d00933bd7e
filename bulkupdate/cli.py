"""The `bulkupdate` command: parses arguments and hands each subcommand to its module.

Wires things together; owns no behaviour of its own. Imports only the standard library and the
core at module level, so the command holds SIGINT/SIGTERM (`run.signals`) before anything heavy.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from bulkupdate import __version__
from bulkupdate.errors import BulkUpdateError, ConfigError
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_OK, EXIT_USAGE
from bulkupdate.run import signals

if TYPE_CHECKING:
    from bulkupdate.config import RunConfig

# Flags of `run` that map one-to-one onto RunConfig settings (dest -> setting).
RUN_FLAGS = (
    "input",
    "domain_id",
    "endpoint_url",
    "region",
    "profile",
    "checkpoint",
    "failures",
    "summary",
    "rate",
    "headroom",
    "burst",
    "before_images",
    "read_rate",
    "read_burst",
    "concurrency",
    "batch",
    "batch_size",
    "batch_rate",
    "batch_burst",
    "max_attempts",
    "case_id_column",
    "blank",
    "performed_by",
    "format",
    "delimiter",
    "encoding",
    "datetime_encoding",
    "grace_period",
    "call_timeout",
    "settle_period",
    "outage_timeout",
    "max_failures",
    "dry_run",
    "restart",
    "state_dir",
    "log_format",
    "log_level",
    "redact",
    "metrics_port",
    "shard",
    "create_table",
    "match_field",
    "match_retry_s",
    "search_rate",
    "search_burst",
)
# What an input's name ends with (before .gz): given as JOB.toml, it was meant for --input.
INPUT_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".tsv", ".txt")

RUN_DESCRIPTION = """\
Apply every row of a CSV or JSONL file to an Amazon Connect Cases domain with UpdateCase,
paced under the account's quota. Resumable after anything: run the same command again.
Every flag is also a job file key (domain_id, rate, ...) and a BULKUPDATE_<KEY> variable.
Precedence: flags > BULKUPDATE_* environment > job file > defaults."""

RUN_EXAMPLES = """\
examples:
  check a job first: every row is validated against the domain, nothing is sent
    bulkupdate run job.toml --dry-run
  run it; after any stop, the same command resumes
    bulkupdate run job.toml
  without a job file: columns name fields by id or name, the case id is in case_id
    bulkupdate run --input export.csv --domain-id 0d2b6e3c-... --region eu-west-2
  in AWS: the input and files in S3, the checkpoint in DynamoDB
    bulkupdate run job.toml --input s3://my-bucket/in/export.csv.gz \\
      --checkpoint dynamodb://bulkupdate-checkpoints --summary s3://my-bucket/out/export.json
  rehearse against the local emulator (`bulkupdate emulator --demo-cases 50` in another shell)
    AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 bulkupdate run \\
      --input fix.csv --domain-id demo --endpoint-url http://127.0.0.1:4566 --rate 20
  where the job stands
    bulkupdate status --checkpoint export.checkpoint.sqlite"""


def add_run_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="apply a CSV/JSONL file to Connect Cases with UpdateCase",
        description=RUN_DESCRIPTION,
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "job", nargs="?", metavar="JOB.toml", help="job file: settings and column mapping (TOML)"
    )
    parser.add_argument("--input", help="CSV or JSONL file, .gz, s3://BUCKET/KEY, or - for stdin")
    parser.add_argument("--domain-id", help="the Connect Cases domain's id (required)")
    aws = parser.add_argument_group("AWS (standard configuration applies otherwise)")
    aws.add_argument("--endpoint-url", help="Connect Cases endpoint only")
    aws.add_argument(
        "--region", help="the domain's AWS Region (default AWS_REGION, AWS_DEFAULT_REGION, profile)"
    )
    aws.add_argument("--profile", help="named AWS profile, SSO included (default AWS_PROFILE)")
    files = parser.add_argument_group("files (derived from the input's name by default)")
    files.add_argument(
        "--checkpoint",
        help="SQLite file (default INPUT.checkpoint.sqlite) or dynamodb://TABLE",
    )
    files.add_argument("--failures", help="failures file (default INPUT.failures.csv|jsonl)")
    files.add_argument("--summary", help="write a JSON summary here")
    files.add_argument(
        "--state-dir", help="folder for the derived checkpoint and failures file (containers)"
    )
    files.add_argument(
        "--no-create-table",
        dest="create_table",
        action="store_false",
        default=None,
        help="do not create a missing dynamodb:// checkpoint table (locked-down accounts)",
    )
    pacing = parser.add_argument_group("pacing")
    pacing.add_argument("--rate", type=float, help="UpdateCase calls/s ceiling (default 2)")
    pacing.add_argument(
        "--headroom",
        metavar="PERCENT",
        help="percent of --rate left to agents saving cases through the same quota "
        "(default 20; 0 takes it all)",
    )
    pacing.add_argument("--burst", type=int, help="burst (default 2)")
    pacing.add_argument(
        "--before-images",
        action="store_true",
        default=None,
        help="read each case's fields with GetCase before writing it: send only what differs, "
        "keep the values before the job (for `bulkupdate undo`), resend nothing after a crash",
    )
    pacing.add_argument(
        "--read-rate", type=float, help="GetCase calls/s ceiling with --before-images (default 4)"
    )
    pacing.add_argument("--read-burst", type=int, help="GetCase burst (default 10)")
    pacing.add_argument("--concurrency", type=int, help="calls in flight at most (default 16)")
    pacing.add_argument(
        "--batch",
        choices=["auto", "off"],
        help="auto: rows setting the same values go together as BatchUpdateCase calls of up to "
        "--batch-size cases; off: one UpdateCase per row (default auto)",
    )
    pacing.add_argument("--batch-size", type=int, help="cases per BatchUpdateCase, 1-100 (100)")
    pacing.add_argument(
        "--batch-rate", type=float, help="BatchUpdateCase calls/s ceiling (default 2)"
    )
    pacing.add_argument("--batch-burst", type=int, help="BatchUpdateCase burst (default 2)")
    pacing.add_argument("--max-attempts", type=int, help="per row for 5xx/timeouts (default 8)")
    pacing.add_argument("--grace-period", type=float, help="seconds to drain on SIGTERM (10)")
    pacing.add_argument(
        "--call-timeout", type=float, help="seconds to wait for one UpdateCase answer (30)"
    )
    pacing.add_argument(
        "--settle-period",
        type=float,
        help="seconds after a call whose answer never came before its case is sent again, "
        "as it may still be applied until then (120; longer than --call-timeout)",
    )
    pacing.add_argument(
        "--max-failures",
        metavar="N|P%",
        help="stop (exit 3, rows not yet sent stay pending) once more than N rows of the job "
        "have failed, or more than P%% of those resolved (from 100 on); default: no budget",
    )
    pacing.add_argument(
        "--outage-timeout",
        type=float,
        help="seconds of service outage (every call failing with 5xx, timeouts or refused "
        "connections) before the run stops, resumable; no row is failed for it (300)",
    )
    pacing.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="apply only this shard's cases (0-based INDEX; without it, JOB_COMPLETION_INDEX "
        "or AWS_BATCH_JOB_ARRAY_INDEX); --rate and --burst are shared by the COUNT shards",
    )
    lookup = parser.add_argument_group("rows keyed by another system's id")
    lookup.add_argument(
        "--match-field",
        metavar="FIELD",
        help="the case-id column holds a value of this field (id or name), not a case id: "
        "each row's case is found with SearchCases",
    )
    lookup.add_argument(
        "--match-retry-s",
        type=float,
        metavar="S",
        help="search a key that matched no case once more after S seconds, as the search index "
        "lags behind writes (10; 0: fail it at once)",
    )
    lookup.add_argument("--search-rate", type=float, help="SearchCases calls/s ceiling (2)")
    lookup.add_argument("--search-burst", type=int, help="SearchCases burst (10)")
    data = parser.add_argument_group("input")
    data.add_argument("--case-id-column", help="column with the case id (default case_id)")
    data.add_argument("--blank", choices=["skip", "clear"], help="blank cells (default skip)")
    data.add_argument("--performed-by", metavar="ARN", help="performedBy user ARN")
    data.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    data.add_argument("--delimiter", help="CSV delimiter (default ,)")
    data.add_argument(
        "--encoding", help="the input's text encoding, e.g. cp1252, latin-1 (default utf-8)"
    )
    data.add_argument(
        "--datetime-encoding",
        choices=["auto", "iso8601", "epoch-millis"],
        help="DateTime wire encoding (default auto: detected with GetCase)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", default=None, help="validate only; send nothing"
    )
    parser.add_argument(
        "--restart", action="store_true", default=None, help="discard the checkpoint"
    )
    add_output_flags(parser)
    parser.set_defaults(handler=run_command)


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """How a run reports: logs, progress and metrics (shared by `run` and `demo`)."""
    output = parser.add_argument_group("logs, progress and metrics")
    output.add_argument(
        "--log-format",
        choices=["json", "console"],
        help="default: JSON lines on stdout when it is not a terminal, console otherwise",
    )
    output.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    output.add_argument(
        "--redact",
        action="store_true",
        default=None,
        help="keep field values out of the logs (the failures file still holds them)",
    )
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    output.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on PORT"
    )


def add_status_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="what a job's runs did and what is left",
        description="Show a checkpoint.",
        allow_abbrev=False,
    )
    parser.add_argument("--checkpoint", required=True, help="SQLite file or dynamodb://TABLE")
    parser.add_argument("--job", help="the job's name (required with dynamodb://)")
    parser.add_argument("--region", help="a dynamodb:// checkpoint's AWS Region")
    parser.add_argument("--profile", help="named AWS profile (default AWS_PROFILE)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=status_command)


def add_demo_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the sample job against a built-in emulator (no AWS account needed)",
        description="Start the Connect Cases emulator in this process with a demo domain and "
        "a low UpdateCase quota, and run the shipped sample job (demo.toml: renamed columns, "
        "a value map, a few bad rows) through the real engine. Writes the checkpoint, the "
        "failures file and a JSON summary into --dir.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--dir", default="bulkupdate-demo", help="where the demo writes (default ./bulkupdate-demo)"
    )
    add_output_flags(parser)
    parser.set_defaults(handler=demo_command)


def build_parser() -> argparse.ArgumentParser:
    from bulkupdate.emulator import cli as emulator_cli

    parser = argparse.ArgumentParser(
        prog="bulkupdate",
        description="Apply CSV/JSONL rows to Amazon Connect Cases with UpdateCase.",
        allow_abbrev=False,  # `--rat 5` is a typo, never `--rate 5`
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(commands)
    add_status_parser(commands)
    add_demo_parser(commands)
    from bulkupdate.undo import commands as image_commands  # undo, verify

    image_commands.add_parsers(commands)
    emulator_cli.add_parser(commands)
    for command in commands.choices.values():
        command.set_defaults(command_parser=command)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments. One that no parser knows is reported with the usage of the command it
    follows (`bulkupdate run --rat 5` shows `run`'s usage), or the top level's before one."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        words = list(sys.argv[1:] if argv is None else argv)
        before = words[: words.index(args.command)] if args.command in words else words
        owner = parser if unknown[0] in before else args.command_parser
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def invoked_as() -> str:
    """This command as a person would type it again here: `bulkupdate` when that is the one on
    PATH, else the path it was started by (`.venv/bin/bulkupdate`), or `python -m bulkupdate`
    with the interpreter that ran it."""
    started_by = sys.argv[0]
    if PurePath(started_by).name == "__main__.py":
        return f"{_as_typed(sys.executable)} -m bulkupdate"
    name = PurePath(started_by).name
    on_path = shutil.which(name)
    try:
        if on_path is not None and os.path.samefile(on_path, started_by):
            return name
    except OSError:
        pass
    return _as_typed(started_by)


def _as_typed(path: str) -> str:
    """A path the way it is typed from the working folder: relative when below it."""
    relative = os.path.relpath(path)
    if not relative.startswith(".."):
        path = relative if "/" in relative else f"./{relative}"
    return shlex.quote(path)


def load_config(args: argparse.Namespace) -> RunConfig:
    import tomllib

    from bulkupdate.config import resolve

    job: dict[str, Any] | None = None
    if args.job:
        refuse_input_as_job(args.job)
        try:
            with open(args.job, "rb") as handle:
                job = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(args.job, f"cannot read the job file: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(args.job, f"not valid TOML: {error}") from None
    flags = {name: getattr(args, name) for name in RUN_FLAGS}
    return resolve(job=job, job_path=args.job, env=os.environ, flags=flags)


def refuse_input_as_job(path: str) -> None:
    """`bulkupdate run a.csv`: an input given where the job file goes."""
    import shlex

    name = path.lower().removesuffix(".gz")
    if path == "-" or name.endswith(INPUT_SUFFIXES):
        raise ConfigError(
            path,
            f"is an input, not a job file (TOML): did you mean --input {shlex.quote(path)}?",
        )


def run_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args)
        return start_run(config, bar=False if args.no_progress else None)
    except BulkUpdateError as error:
        print(f"bulkupdate: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - a resumable stop, not a traceback
        print(
            f"bulkupdate: the run stopped on an unexpected error: {type(error).__name__}: "
            f"{error}. Every row is applied, failed or pending in the checkpoint: run the "
            "same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_ABORTED


def start_run(config: RunConfig, *, bar: bool | None) -> int:
    import anyio

    from bulkupdate.report import logs
    from bulkupdate.report.progress import ProgressSink
    from bulkupdate.run import job

    if config.dry_run:  # it sends nothing and has no relay: a signal ends it as before
        signals.release()
    logs.configure(fmt=config.log_format, level=config.log_level, redact=config.redact)
    result: int = anyio.run(lambda: job.run(config, progress=ProgressSink(bar=bar)))
    return result


def demo_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    import anyio

    from bulkupdate.demo import run_demo
    from bulkupdate.report import logs

    output = {"redact": args.redact, "metrics_port": args.metrics_port}
    output = {key: value for key, value in output.items() if value is not None}
    logs.configure(fmt=args.log_format, level=args.log_level or "info", redact=bool(args.redact))
    bar = False if args.no_progress else None
    folder = Path(args.dir)
    command = invoked_as()
    resume = f"run `{command} demo` again (the demo starts over each time)"
    try:
        result: int = anyio.run(lambda: run_demo(folder, bar=bar, resume=resume, **output))
    except BulkUpdateError as error:
        print(f"bulkupdate: {error}", file=sys.stderr)
        return EXIT_USAGE
    if result not in (EXIT_OK, EXIT_FAILED_ROWS):
        print(f"demo stopped (exit code {result}).", file=sys.stderr)
        return result
    checkpoint = shlex.quote(str(folder / "demo.checkpoint.sqlite"))
    print(
        "demo done. Its sample has bad rows on purpose: the run failed them, and a real run\n"
        "with failed rows exits 1; the demo exits 0, as it worked.\n"
        f"  the rows that failed, and why: {folder / 'demo.failures.csv'}\n"
        f"  what the job did: {command} status --checkpoint {checkpoint}",
        file=sys.stderr,
    )
    return EXIT_OK


def status_command(args: argparse.Namespace) -> int:
    import anyio

    from bulkupdate.report.status import show

    try:
        text = anyio.run(
            lambda: show(
                args.checkpoint, args.json, args.job, region=args.region, profile=args.profile
            )
        )
    except BulkUpdateError as error:
        print(f"bulkupdate: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command. Without `argv` it is this process's command line (the console script,
    `python -m bulkupdate`): SIGINT and SIGTERM are held from here, before the imports, until
    the process exits, so a `run` reads them whenever they come (see SignalRelay); every other
    command gets them back before it starts. With `argv` (in-process) nothing is held."""
    process = argv is None
    if process:
        signals.hold()
    args = parse_args(build_parser(), argv)
    args.process = process
    if process and args.command != "run":
        signals.release()  # `undo` holds them again for its restore run
    try:
        result: int = args.handler(args)
    finally:
        if process:
            signals.ignore_until_exit()  # only while still held: a run that was not a dry run
    return result


__all__ = ["main"]
