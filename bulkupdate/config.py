"""Run settings: one frozen RunConfig built from defaults, a TOML job file, BULKUPDATE_*
environment variables and command-line flags, in that order of precedence (flags win).

Pure: callers hand in the parsed job table, the environment and the flags. Errors name the key.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from bulkupdate.errors import ConfigError
from bulkupdate.fields.mapping import MAPPING_KEYS, FieldMapping, parse_mapping
from bulkupdate.models import Shard, parse_shard
from bulkupdate.pacing.bucket import is_rate

ENV_PREFIX = "BULKUPDATE_"


class Blank(StrEnum):
    SKIP = "skip"  # a blank cell leaves the field unchanged
    CLEAR = "clear"  # a blank cell clears the field (emptyValue)


CALL_TIMEOUT_S = 30.0
# AWS does not say how long a request can live inside the service after the client stopped
# waiting; four times the call timeout leaves a wide margin over the front ends' own limits.
SETTLE_PERIOD_S = 120.0
MAX_BATCH_SIZE = 100  # cases per BatchUpdateCase call (botocore does not check it)


@dataclass(frozen=True, slots=True)
class FailureBudget:
    """How many failed rows a job tolerates before it stops: more than `rows`, or more than
    `percent` % of the rows resolved once at least MIN_RESOLVED are (both counted job-wide)."""

    rows: int | None = None
    percent: float | None = None

    MIN_RESOLVED = 100

    def exceeded(self, failed: int, resolved: int) -> bool:
        if self.rows is not None and failed > self.rows:
            return True
        return (
            self.percent is not None
            and resolved >= self.MIN_RESOLVED
            and failed * 100 > self.percent * resolved
        )

    def __str__(self) -> str:
        return f"{self.rows}" if self.rows is not None else f"{self.percent:g}%"


def _failure_budget(value: Any) -> FailureBudget:
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0.0 <= percent < 100.0:
                raise ValueError
            return FailureBudget(percent=percent)
        rows = int(text)
        if rows < 0:
            raise ValueError
        return FailureBudget(rows=rows)
    except ValueError:
        raise ValueError("must be a number of rows (e.g. 100) or a percentage (e.g. 5%)") from None


@dataclass(frozen=True, slots=True)
class RunConfig:
    input: str
    domain_id: str
    job_name: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    checkpoint: str = ""
    failures: str = ""
    summary: str | None = None
    state_dir: str | None = (
        None  # where the derived checkpoint and failures go; default: beside the input
    )
    rate: float = 2.0  # UpdateCase calls per second: AWS's default quota
    burst: int = 2  # AWS's default burst
    # Percent of --rate left to the contact centre's agents, who save cases through the same
    # account-wide quota: the job sends at most rate x (1 - headroom / 100).
    headroom: float = 20.0
    # Read each case's fields with GetCase before writing it: skip what already holds, keep
    # the values before the job for `bulkupdate undo`, resend nothing after a crash.
    before_images: bool = False
    read_rate: float = 4.0  # GetCase calls per second (--before-images): AWS's default quota
    read_burst: int = 10  # GetCase's default burst
    concurrency: int = 16  # calls in flight at most
    # Rows with the same patch go as one BatchUpdateCase (auto) or each as UpdateCase (off).
    batch: str = "auto"
    batch_size: int = 100  # cases per BatchUpdateCase call, 1..100 (the API's maximum)
    # BatchUpdateCase's own quota: AWS does not publish it; the emulator's default is 2/s, burst 2.
    batch_rate: float = 2.0
    batch_burst: int = 2
    max_attempts: int = 8  # per row, for 5xx/timeouts/connection errors (throttles never count)
    case_id_column: str = "case_id"
    blank: Blank = Blank.SKIP
    performed_by: str | None = None
    format: str | None = None  # csv | jsonl; from the file name when not given
    delimiter: str = ","
    encoding: str = "utf-8"  # the input's text encoding, as Python names it (cp1252, iso8859-1)
    datetime_encoding: str = "auto"  # auto | iso8601 | epoch-millis
    grace_period: float = 10.0  # seconds to finish in-flight calls after SIGTERM/SIGINT
    call_timeout: float = CALL_TIMEOUT_S  # seconds to wait for one UpdateCase answer
    # Seconds after sending a call whose answer never came (timeout, broken connection, a run
    # that ended) before its case gets another call: it may still land until then.
    settle_period: float = SETTLE_PERIOD_S
    outage_timeout: float = 300.0  # seconds of outage (no call succeeding) before stopping
    max_failures: FailureBudget | None = None  # stop once more rows than this have failed
    flush_interval: float = 0.25  # seconds between checkpoint commits
    dry_run: bool = False
    restart: bool = False
    log_format: str | None = None  # json | console; None: console on a terminal, JSON otherwise
    log_level: str = "info"
    redact: bool = False  # keep field values out of logs (the failures file still has them)
    metrics_port: int | None = None  # serve Prometheus metrics on this port
    shard: Shard | None = None  # this process's part of a sharded job; None: the whole input
    create_table: bool = True  # create a missing dynamodb:// checkpoint table on first use
    # Seconds a dynamodb:// checkpoint stays claimed by a run that stopped renewing it (killed).
    checkpoint_lease: float = 60.0
    # The case-id column holds a value of this field (id or name): SearchCases finds the case.
    match_field: str | None = None
    # A key that matched no case is searched once more this many seconds later (0: never): the
    # search index lags behind writes, and cases created just before the run may not be in it.
    match_retry_s: float = 10.0
    search_rate: float = 2.0  # SearchCases calls per second: AWS's default quota
    search_burst: int = 10
    mapping: FieldMapping = field(default_factory=FieldMapping)  # job file tables only
    job_file: str | None = None  # where the settings came from, to name its keys in errors


def _positive_float(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a positive number")
    return number


def _rate(value: Any) -> float:
    number = _positive_float(value)
    if not is_rate(number):  # a subnormal float: 1/rate overflows, no schedule exists
        raise ValueError("is too small to pace: no finite time between calls")
    return number


def _headroom(value: Any) -> float:
    try:
        number = float(str(value).strip().removesuffix("%"))
    except ValueError:
        number = math.nan
    if not 0.0 <= number < 100.0:  # NaN fails too
        raise ValueError("must be a percentage from 0 up to (not including) 100")
    return number


def _seconds(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _batch_size(value: Any) -> int:
    number = _positive_int(value)
    if number > MAX_BATCH_SIZE:
        raise ValueError(f"must be at most {MAX_BATCH_SIZE} (BatchUpdateCase's maximum)")
    return number


def _port(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("must be a port number, 0-65535 (0: any free port)")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value)
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _delimiter(value: Any) -> str:
    text = "\t" if value in ("\\t", "tab") else str(value)
    if len(text) != 1:
        raise ValueError("must be a single character")
    return text


def _encoding(value: Any) -> str:
    """A codec whose bytes 0-127 are ASCII (lines are split on b"\\n" before decoding), by its
    Python name: "latin-1" -> "iso8859-1". UTF-8 with a BOM is UTF-8, which accepts one."""
    try:
        name = codecs.lookup(str(value)).name
    except LookupError:
        raise ValueError("is not an encoding Python knows (e.g. utf-8, cp1252, latin-1)") from None
    ascii_text = "".join(map(chr, range(128)))
    try:
        keeps_ascii = bytes(range(128)).decode(name) == ascii_text
    except (UnicodeDecodeError, LookupError):
        keeps_ascii = False
    if not keeps_ascii:
        raise ValueError(
            "cannot be read line by line: it does not keep ASCII bytes as they are (UTF-16 and "
            "UTF-32 files must be saved as UTF-8 first)"
        )
    return "utf-8" if name == "utf-8-sig" else name


def _endpoint_url(value: Any) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        rest = text.partition("://")[2] if "://" in text else text
        like = f"http://{rest}" if rest else "http://HOST:PORT"
        raise ValueError(
            f"is not an http:// or https:// URL: give it with its scheme, like {like} (an "
            "emulator) or https://cases.REGION.amazonaws.com"
        )
    return text


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "endpoint_url": _endpoint_url,
    "rate": _rate,
    "headroom": _headroom,
    "burst": _positive_int,
    "before_images": _flag,
    "read_rate": _rate,
    "read_burst": _positive_int,
    "concurrency": _positive_int,
    "batch": _choice("auto", "off"),
    "batch_size": _batch_size,
    "batch_rate": _rate,
    "batch_burst": _positive_int,
    "max_attempts": _positive_int,
    "blank": lambda v: Blank(_choice("skip", "clear")(v)),
    "format": _choice("csv", "jsonl"),
    "delimiter": _delimiter,
    "encoding": _encoding,
    "datetime_encoding": _choice("auto", "iso8601", "epoch-millis"),
    "grace_period": _positive_float,
    "call_timeout": _positive_float,
    "settle_period": _positive_float,
    "outage_timeout": _positive_float,
    "max_failures": _failure_budget,
    "flush_interval": _positive_float,
    "dry_run": _flag,
    "restart": _flag,
    "log_format": _choice("json", "console"),
    "log_level": _choice("debug", "info", "warning", "error"),
    "redact": _flag,
    "metrics_port": _port,
    "create_table": _flag,
    "checkpoint_lease": _positive_float,
    "match_retry_s": _seconds,
    "search_rate": _rate,
    "search_burst": _positive_int,
}
SETTINGS = tuple(f.name for f in fields(RunConfig) if f.name not in ("mapping", "job_file"))
# Paths in a job file are relative to the job file's folder, so a job and its data travel together.
PATH_SETTINGS = ("input", "checkpoint", "failures", "summary", "state_dir")


def _apply(
    merged: dict[str, Any], values: Mapping[str, Any], describe: Callable[[str], str]
) -> None:
    for key, value in values.items():
        if key not in SETTINGS:
            raise ConfigError(describe(key), "unknown setting")
        if value is None:
            continue
        parse = _PARSERS.get(key, str)
        try:
            merged[key] = parse(value)
        except (ValueError, TypeError) as error:
            raise ConfigError(describe(key), f"{value!r} {error}") from None


def resolve(
    *,
    job: Mapping[str, Any] | None = None,
    job_path: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Defaults < job file < BULKUPDATE_* environment < flags."""
    merged: dict[str, Any] = {}

    def in_job(key: str) -> str:
        return f"{job_path or 'job file'}: {key}"

    job = dict(job or {})
    mapping = parse_mapping({k: job.pop(k) for k in MAPPING_KEYS if k in job}, in_job)
    _apply(merged, _relative_to(job, job_path), in_job)
    # Only BULKUPDATE_<SETTING> is ours: other BULKUPDATE_* variables (a runner's own, or a
    # later version's) are left alone rather than failing the run.
    env_values = {
        key: value
        for name, value in (env or {}).items()
        if name.startswith(ENV_PREFIX) and (key := name[len(ENV_PREFIX) :].lower()) in SETTINGS
    }
    _apply(merged, env_values, lambda key: ENV_PREFIX + key.upper())
    _apply(merged, flags or {}, lambda key: "--" + key.replace("_", "-"))
    for required in ("input", "domain_id"):
        if not merged.get(required):
            raise ConfigError("--" + required.replace("_", "-"), "is required")
    if str(merged.get("checkpoint") or "").startswith("s3://"):
        message = "cannot be in S3: use dynamodb://TABLE, or a file on a volume"
        raise ConfigError("--checkpoint", message)
    for key in ("input", "failures", "summary"):
        location = str(merged.get(key) or "")
        if location.startswith("s3://") and not _is_s3_object(location):
            raise ConfigError("--" + key, f"{location!r} is not an s3://BUCKET/KEY URL")
    settle_s = merged.get("settle_period", SETTLE_PERIOD_S)
    call_s = merged.get("call_timeout", CALL_TIMEOUT_S)
    if settle_s <= call_s:
        raise ConfigError(
            "--settle-period",
            f"{settle_s:g} s must be longer than --call-timeout ({call_s:g} s): a call the "
            "client gave up on may still be applied until then",
        )
    if merged.get("shard"):
        try:
            merged["shard"] = parse_shard(merged["shard"], env or {})
        except ValueError as error:
            raise ConfigError("--shard", f"{merged['shard']!r} {error}") from None
    settings = {**_derived(merged, job_path), **merged}
    shard = settings.get("shard")
    if shard is not None and shard.count > 1:  # one checkpoint and one set of files per shard
        for key in ("checkpoint", "failures", "summary"):
            value = settings.get(key)
            if value and not value.startswith("dynamodb://"):  # that store keys by shard itself
                settings[key] = shard.name(value)
    config = RunConfig(**settings, mapping=mapping, job_file=job_path)
    share_per_s = config.rate * (1.0 - config.headroom / 100)
    if shard is not None and not is_rate(shard.rate_share(share_per_s, config.burst)[0]):
        raise ConfigError("--rate", f"{config.rate} shared by {shard.count} shards is too small")
    if not is_rate(share_per_s):
        raise ConfigError(
            "--rate", f"{config.rate} less --headroom {config.headroom:g}% is too small"
        )
    batch_share_per_s = config.batch_rate * (1.0 - config.headroom / 100)
    if shard is not None:
        batch_share_per_s = shard.rate_share(batch_share_per_s, config.batch_burst)[0]
    if not is_rate(batch_share_per_s):
        raise ConfigError("--batch-rate", f"{config.batch_rate} is too small to share")
    return config


def _is_s3_object(url: str) -> bool:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bool(bucket) and bool(key) and not key.endswith("/")


def _relative_to(job: dict[str, Any], job_path: str | None) -> dict[str, Any]:
    if job_path is None:
        return job
    folder = PurePath(job_path).parent
    for key in PATH_SETTINGS:
        value = job.get(key)
        if isinstance(value, str) and value and not _is_absolute(value):
            job[key] = str(folder / value)
    return job


def _is_absolute(path: str) -> bool:
    return path == "-" or "://" in path or PurePath(path).is_absolute()


def _derived(merged: Mapping[str, Any], job_path: str | None) -> dict[str, Any]:
    """Names that follow from the input when not given: job name, checkpoint, failures file.

    They go beside the input, or into `state_dir`. For an s3:// input the failures file goes
    beside it in S3 and the checkpoint into the working folder (a container should give
    `--checkpoint dynamodb://TABLE` or a `state_dir` on a volume)."""
    source = str(merged["input"])
    remote = source.startswith("s3://")
    name = source.rpartition("/")[2] if source != "-" else "stdin"
    stem = name
    for suffix in (".gz", ".csv", ".jsonl", ".ndjson"):
        stem = stem.removesuffix(suffix)
    fmt = merged.get("format") or ("jsonl" if ".jsonl" in name or ".ndjson" in name else "csv")
    folder = str(PurePath(source).parent) if source != "-" and not remote else "."
    failures_folder = source.rpartition("/")[0] if remote else folder
    if merged.get("state_dir"):
        folder = failures_folder = str(merged["state_dir"])
    return {
        "job_name": PurePath(job_path).stem if job_path else stem,
        "checkpoint": str(PurePath(folder) / f"{stem}.checkpoint.sqlite"),
        "failures": f"{failures_folder.rstrip('/')}/{stem}.failures.{fmt}"
        if remote and not merged.get("state_dir")
        else str(PurePath(failures_folder) / f"{stem}.failures.{fmt}"),
    }
