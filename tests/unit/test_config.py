"""Run settings: defaults < job file < BULKUPDATE_* environment < flags, errors naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from bulkupdate.config import Blank, resolve
from bulkupdate.errors import ConfigError

REQUIRED = {"input": "data/crm.csv", "domain_id": "d-1"}


def test_defaults_are_aws_default_quota_and_files_beside_the_input() -> None:
    config = resolve(flags=REQUIRED)
    assert (config.rate, config.burst, config.max_attempts) == (2.0, 2, 8)
    assert config.checkpoint == "data/crm.checkpoint.sqlite"
    assert config.failures == "data/crm.failures.csv"
    assert config.job_name == "crm"
    assert config.blank is Blank.SKIP


def test_flags_beat_environment_which_beats_the_job_file() -> None:
    job = {**REQUIRED, "rate": 5, "burst": 3, "concurrency": 4}
    env = {"BULKUPDATE_RATE": "7", "BULKUPDATE_BURST": "6", "HOME": "/root"}
    config = resolve(job=job, job_path="jobs/nightly.toml", env=env, flags={"rate": 9.0})
    assert (config.rate, config.burst, config.concurrency) == (9.0, 6, 4)
    assert config.job_name == "nightly"


def test_unset_flags_do_not_override() -> None:
    config = resolve(job={**REQUIRED, "rate": 5}, flags={"rate": None, "dry_run": None})
    assert config.rate == 5.0
    assert config.dry_run is False


def test_a_gzipped_jsonl_input_gets_a_jsonl_failures_file() -> None:
    config = resolve(flags={"input": "/x/export.jsonl.gz", "domain_id": "d"})
    assert config.failures == "/x/export.failures.jsonl"


@pytest.mark.parametrize(
    ("source", "values", "key"),
    [
        ("flags", {"rate": 0}, "--rate"),
        ("flags", {"burst": 0}, "--burst"),
        ("flags", {"blank": "erase"}, "--blank"),
        ("flags", {"delimiter": ";;"}, "--delimiter"),
        ("env", {"BULKUPDATE_CONCURRENCY": "many"}, "BULKUPDATE_CONCURRENCY"),
        ("job", {"rate": float("nan")}, "job.toml: rate"),
        ("job", {"ratee": 5}, "job.toml: ratee"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(
    source: str, values: dict[str, Any], key: str
) -> None:
    arguments: dict[str, Any] = {"flags": dict(REQUIRED)}
    if source == "flags":
        arguments["flags"].update(values)
    elif source == "env":
        arguments["env"] = values
    else:
        arguments.update(job=values, job_path="job.toml")
    with pytest.raises(ConfigError) as raised:
        resolve(**arguments)
    assert raised.value.key == key


def test_input_and_domain_are_required() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(flags={"input": "a.csv"})
    assert raised.value.key == "--domain-id"


def test_other_bulkupdate_environment_variables_are_left_alone() -> None:
    config = resolve(flags=REQUIRED, env={"BULKUPDATE_LOG_LEVEL": "debug", "BULKUPDATE_X": "1"})
    assert config.rate == 2.0
