"""Run settings: one frozen RunConfig built from defaults, a TOML job file, BULKUPDATE_*
environment variables and command-line flags, in that order of precedence (flags win).

Pure: callers hand in the parsed job table, the environment and the flags. Errors name the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import PurePath
from typing import Any

from bulkupdate.errors import ConfigError

ENV_PREFIX = "BULKUPDATE_"


class Blank(StrEnum):
    SKIP = "skip"  # a blank cell leaves the field unchanged
    CLEAR = "clear"  # a blank cell clears the field (emptyValue)


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
    rate: float = 2.0  # UpdateCase calls per second: AWS's default quota
    burst: int = 2  # AWS's default burst
    concurrency: int = 16  # calls in flight at most
    max_attempts: int = 8  # per row, for 5xx/timeouts/connection errors (throttles never count)
    case_id_column: str = "case_id"
    blank: Blank = Blank.SKIP
    performed_by: str | None = None
    format: str | None = None  # csv | jsonl; from the file name when not given
    delimiter: str = ","
    datetime_encoding: str = "auto"  # auto | iso8601 | epoch-millis
    grace_period: float = 10.0  # seconds to finish in-flight calls after SIGTERM/SIGINT
    flush_interval: float = 0.25  # seconds between checkpoint commits
    dry_run: bool = False
    restart: bool = False


def _positive_float(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a positive number")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
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


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "rate": _positive_float,
    "burst": _positive_int,
    "concurrency": _positive_int,
    "max_attempts": _positive_int,
    "blank": lambda v: Blank(_choice("skip", "clear")(v)),
    "format": _choice("csv", "jsonl"),
    "delimiter": _delimiter,
    "datetime_encoding": _choice("auto", "iso8601", "epoch-millis"),
    "grace_period": _positive_float,
    "flush_interval": _positive_float,
    "dry_run": _flag,
    "restart": _flag,
}
SETTINGS = tuple(f.name for f in fields(RunConfig))


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
    _apply(merged, job or {}, lambda key: f"{job_path or 'job file'}: {key}")
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
    derived = _derived(merged, job_path)
    return RunConfig(**{**derived, **merged})


def _derived(merged: Mapping[str, Any], job_path: str | None) -> dict[str, Any]:
    """Names that follow from the input when not given: job name, checkpoint, failures file."""
    source = str(merged["input"])
    name = PurePath(source).name if source != "-" else "stdin"
    stem = name
    for suffix in (".gz", ".csv", ".jsonl", ".ndjson"):
        stem = stem.removesuffix(suffix)
    fmt = merged.get("format") or ("jsonl" if ".jsonl" in name or ".ndjson" in name else "csv")
    folder = PurePath(source).parent if source != "-" else PurePath(".")
    return {
        "job_name": PurePath(job_path).stem if job_path else stem,
        "checkpoint": str(folder / f"{stem}.checkpoint.sqlite"),
        "failures": str(folder / f"{stem}.failures.{fmt}"),
    }
